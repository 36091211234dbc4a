"""Errors the user caused (a setting, a file, a checkpoint), which the console scripts show as one message.

Code that refuses a setting raises :class:`SettingError` (a ``ValueError``), code that misses a file the user
named raises :class:`InputFileError` (a ``FileNotFoundError``): both are :class:`UserError`, which the entry
points (``experiments.entry``) print as ``<command>: error: <message>`` with exit status 2 and no traceback.
Every other exception is a bug and keeps its traceback. :func:`user_error` turns what a class raised while
the CLI built it from its config into a ``UserError`` that names the setting. ``--debug`` or
``TRANSFERABILITY_DEBUG=1`` keeps the traceback of user errors too, and jsonargparse's full usage text for parse errors.
"""

from __future__ import annotations

import os
import re
import sys
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from jsonargparse import Namespace

DEBUG_ENV = "TRANSFERABILITY_DEBUG"
DEBUG_HINT = f"(--debug or {DEBUG_ENV}=1 shows the traceback)"
# Lines of jsonargparse's Union messages that say nothing about the setting ("or it could have been None").
_NOISE = re.compile(
    r"(Does not validate against any of the Union subtypes|Subtypes: |Errors:$|"
    r"- Expected a <class 'NoneType'>|Given value type: |Given value: )"
)


class UserError(Exception):
    """Something the user set or gave is wrong; the message names it and what to do."""


class SettingError(UserError, ValueError):
    """A setting out of range, or at odds with another setting, the network or a checkpoint."""


class InputFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


def debugging() -> bool:
    """Whether tracebacks are wanted (``TRANSFERABILITY_DEBUG`` set to anything but empty or 0)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def tidy_parse_error(message: str) -> str:
    """jsonargparse's error message as one line that starts with the setting (``--model.widht: ...``).

    The Union boilerplate (subtypes, ``NoneType``, the given value) is dropped and nested keys are joined, so
    ``Parser key "model": ... class_path 'models.CaffeNetClassifier': Option 'widht' is not accepted`` reads
    ``--model.widht: not a setting of models.CaffeNetClassifier``. An unknown shape is kept, its lines joined.
    """
    keys: list[str] = []
    parts: list[str] = []
    owner = None
    for line in message.splitlines():
        text = line.strip()
        if not text or _NOISE.match(text):
            continue
        text = text.removeprefix("- ").strip()
        if match := re.fullmatch(r'Parser key "([^"]+)":\s*(.*)', text):
            keys.append(match[1])
            text = match[2]
        if match := re.fullmatch(r"Problem with given class_path '([^']+)':", text):
            owner = match[1]
            continue
        if match := re.fullmatch(r"Option '([^']+)' is not accepted", text):
            keys.append(match[1])
            text = f"not a setting of {owner or 'this group'}"
        if text:
            parts.append(text)
    text = "; ".join(parts)
    text = re.sub(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)", r"expected one of \1, got \2", text)
    return f"--{'.'.join(keys)}: {text}" if keys else text


class ShortParseErrors:
    """Mixin for a jsonargparse parser: a parse error is its key line and a hint, not the whole usage text.

    With ``exit_on_error=False`` (a parser used from code) or while debugging, jsonargparse's own behaviour.
    """

    prog: str
    exit_on_error: bool

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print ``<prog>: error: <setting>: <problem>`` and how to list the settings; exit 2."""
        if not self.exit_on_error or debugging():
            super().error(message, ex)  # type: ignore[misc]
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(
            f"{prog}: error: {tidy_parse_error(message)}\n"
            f"Run `{prog} --help` for the settings {DEBUG_HINT.replace('traceback', 'full message')}\n"
        )
        raise SystemExit(2)


def user_error(err: BaseException, config: Namespace, class_groups: Mapping[str, type]) -> UserError | None:
    """The error a class raised while being built from the config, as a ``UserError`` naming its setting.

    jsonargparse wraps a constructor's exception in its own ``ValueError`` ("Does not validate against any of
    the Union subtypes ..."); the constructor's is at the end of the ``__cause__`` chain. A ``ValueError`` or
    ``FileNotFoundError`` there is the class refusing its settings; anything else is a bug (None: re-raise).

    Args:
        err: What building the classes raised.
        config: The parsed config the classes were built from.
        class_groups: The config groups of one class each (the CLI's ``transfer``, ``trainer``, ...); the others,
            ``model`` and ``data``, name theirs in ``class_path``.
    """
    cause = err
    while cause.__cause__ is not None:
        cause = cause.__cause__
    if not isinstance(cause, (UserError, ValueError, FileNotFoundError)):
        return None
    message = str(cause)
    group, setting = _refusing_setting(cause, config, class_groups)
    if setting and f"--{setting}" not in message:
        # "images_per_class must be ..." reads "--data.init_args.images_per_class must be ..."
        head = re.match(rf"(?:\w+ )?{re.escape(setting.rsplit('.', 1)[-1])}(:?)\s+", message)
        rest = message[head.end() :] if head else message
        message = f"--{setting}{':' if not head or head[1] else ''} {rest}"
    elif group:
        message = f"{group}: {message}"
    kind = InputFileError if isinstance(cause, FileNotFoundError) else SettingError
    return kind(message)


def _refusing_setting(
    err: BaseException, config: Namespace, class_groups: Mapping[str, type]
) -> tuple[str | None, str | None]:
    """The config group whose class raised ``err`` (``data (datamodules.FashionMNISTHalf)``) and, when the
    message names exactly one of its arguments, that setting's dotted key (``data.init_args.images_per_class``)."""
    from jsonargparse import Namespace  # here: the console scripts import this module before any parser

    from models.loading import import_path  # here: it imports torch and the classifiers

    raised = None
    for frame, _ in _frames(err.__traceback__):
        instance = frame.f_locals.get("self") if frame.f_code.co_name == "__init__" else None
        if instance is not None and not type(instance).__module__.startswith(("jsonargparse", "lightning.pytorch.cli")):
            raised = type(instance)
            break
    for group in ("model", "data", *class_groups):
        value = config.get(group)
        if not isinstance(value, Namespace):
            continue
        if group in class_groups:
            owner, arguments, prefix = class_groups[group], value, f"{group}."
        elif value.get("class_path"):
            try:
                owner = import_path(value.class_path)
            except (ImportError, AttributeError, ValueError):
                continue
            arguments, prefix = value.get("init_args") or Namespace(), f"{group}.init_args."
        else:
            continue
        if raised is None or not (isinstance(owner, type) and issubclass(raised, owner)):
            continue
        named = [
            (match.start(), key)
            for key in arguments.keys()
            if "." not in key
            if (match := re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", str(err)))
        ]
        label = f"{group} ({value.class_path})" if group not in class_groups else group
        return label, prefix + named[0][1] if len(named) == 1 else None  # several: the group's class says which
    return None, None


def _frames(traceback: types.TracebackType | None) -> list[tuple[types.FrameType, int]]:
    """The frames of a traceback, outermost first."""
    frames = []
    while traceback is not None:
        frames.append((traceback.tb_frame, traceback.tb_lineno))
        traceback = traceback.tb_next
    return frames
