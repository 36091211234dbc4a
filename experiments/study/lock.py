"""The study folder's lock: two runners never train the same cells."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from experiments.study.errors import StudyError


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """Hold the study folder's lock, so two runners never train the same cells (released even on SIGKILL).

    Raises:
        StudyError: Another runner holds it.
    """
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise StudyError(f"{root} is being run by {owner}; wait for it or stop it first") from err
        handle.seek(0)
        handle.truncate()
        handle.write(f"transferability-study pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
