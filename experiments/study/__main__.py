"""``python -m experiments.study``: the ``transferability-study`` command."""

import sys

from experiments.entry import study

if __name__ == "__main__":
    sys.exit(study())
