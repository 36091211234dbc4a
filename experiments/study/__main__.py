"""``python -m experiments.study``: the ``transferability-study`` command."""

from experiments.study.runner import main

if __name__ == "__main__":
    main()
