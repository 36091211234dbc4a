"""Errors the user caused (a setting, a file, a checkpoint), which the console scripts show as one message.

Code that refuses a setting raises :class:`SettingError` (a ``ValueError``), code that misses a file the user
named raises :class:`InputFileError` (a ``FileNotFoundError``): both are :class:`UserError`, which the entry
points (``experiments.entry``) print as ``<command>: error: <message>`` with exit status 2 and no traceback.
Every other exception is a bug and keeps its traceback. ``--debug`` or ``TRANSFERABILITY_DEBUG=1`` keeps the
traceback of user errors too, and jsonargparse's full usage text for parse errors.
"""

from __future__ import annotations

import os
import re
import sys
from typing import NoReturn

DEBUG_ENV = "TRANSFERABILITY_DEBUG"
DEBUG_HINT = f"(--debug or {DEBUG_ENV}=1 shows the traceback)"
# Lines of jsonargparse's Union messages that say nothing about the setting ("or it could have been None").
_NOISE = re.compile(r"(Does not validate against any of the Union subtypes|Subtypes: |Errors:$|"
                    r"- Expected a <class 'NoneType'>|Given value type: |Given value: )")


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
        sys.stderr.write(f"{prog}: error: {tidy_parse_error(message)}\n"
                         f"Run `{prog} --help` for the settings {DEBUG_HINT.replace('traceback', 'full message')}\n")
        raise SystemExit(2)
