"""The error that stops a study, raised by its planning and its runner and shown as one message."""

from __future__ import annotations


class StudyError(RuntimeError):
    """A study that cannot go on (or did not finish), with every reason and what to do."""
