"""Progress over a long loop (preparing ImageNet, a mean image): tqdm's bar on a terminal, plain lines in a log.

tqdm redraws its bar with carriage returns, which a log file (SLURM's, a study cell's) keeps as one long line of
``\\r``-separated bars. Where stderr is not a terminal, :func:`progress` prints a plain line every tenth of the
way (and at the end) instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
STEPS = 10  # plain lines per loop of known length


def progress(items: Iterable[T], desc: str, unit: str, total: int | None = None, leave: bool = True) -> Iterator[T]:
    """Yield ``items``, showing progress on stderr: a tqdm bar on a terminal, else a line every tenth.

    Args:
        items: What to loop over.
        desc: What is counted (``train classes``).
        unit: The unit's name (``class``).
        total: How many items there are (None: ``len(items)`` where it has one).
        leave: Keep the finished bar on a terminal.
    """
    if total is None:
        total = len(items) if isinstance(items, Sized) else None
    if sys.stderr.isatty():
        yield from tqdm(items, total=total, desc=desc, unit=unit, leave=leave)
        return
    begin, count, next_line = time.monotonic(), 0, 1
    for item in items:
        yield item
        count += 1
        if total and count * STEPS >= next_line * total:
            next_line = count * STEPS // total + 1
            _line(desc, unit, count, total, begin)
    if not total or count < total:
        _line(desc, unit, count, total, begin)


def _line(desc: str, unit: str, count: int, total: int | None, begin: float) -> None:
    of = f"/{total}" if total else ""
    print(f"{desc}: {count}{of} {unit} in {time.monotonic() - begin:.0f} s", file=sys.stderr, flush=True)
