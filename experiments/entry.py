"""The console scripts (``pyproject.toml``): each runs its command's ``main`` through :func:`console`.

:func:`console` is the one place where a user error (``experiments.errors.UserError``) becomes a message and
exit status 2, and where the messages that are noise for this project are silenced (``experiments.noise``).
``main`` functions themselves raise (for tests and for callers in Python).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from experiments.errors import DEBUG_ENV, DEBUG_HINT, UserError, debugging
from experiments.noise import silence_noise

Main = Callable[..., "int | None"]


def console(prog: str, main: Main, argv: Sequence[str] | None = None) -> int:
    """Run ``main`` as the console script ``prog``; return its exit status.

    ``--debug`` anywhere in the arguments is taken out and sets ``TRANSFERABILITY_DEBUG=1`` (inherited by the
    processes it starts). A ``UserError`` prints ``<prog>: error: <message>`` and returns 2, unless debugging.

    Args:
        prog: The command's name, for its messages.
        main: The command's ``main``, called with ``argv`` (no argument when ``argv`` is None: ``sys.argv``).
        argv: The arguments, or None for ``sys.argv[1:]`` (edited in place when ``--debug`` is there).
    """
    args = sys.argv if argv is None else ["", *argv]
    if "--debug" in args[1:]:
        args[1:] = [arg for arg in args[1:] if arg != "--debug"]
        os.environ[DEBUG_ENV] = "1"
    silence_noise()
    try:
        status = main() if argv is None else main(args[1:])
    except UserError as err:
        if debugging():
            raise
        print(f"{prog}: error: {err}\n{DEBUG_HINT}", file=sys.stderr)
        return 2
    return int(status or 0)


def transferability() -> int:
    """``transferability fit|validate|test ...`` (``experiments.cli``)."""
    from experiments.cli import main

    return console("transferability", main)


def study() -> int:
    """``transferability-study --config ...`` (``experiments.study.runner``)."""
    from experiments.study.runner import main

    return console("transferability-study", main)


def prepare_imagenet() -> int:
    """``transferability-prepare-imagenet ROOT ...`` (``datamodules.prepare``)."""
    from datamodules.prepare import main

    return console("transferability-prepare-imagenet", main)


def compare() -> int:
    """``transferability-compare LEFT RIGHT`` (``experiments.report.compare_files``)."""
    from experiments.report.compare_files import main

    return console("transferability-compare", main)


def predict() -> int:
    """``transferability-predict --base ... --config ...`` (``experiments.predict.cli``)."""
    from experiments.predict.cli import main

    return console("transferability-predict", main)
