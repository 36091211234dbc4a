"""The study's console output while it trains: one line per cell, with the time spent and the time left."""

from __future__ import annotations

import time
from typing import Any

from experiments.report.table import METRIC
from experiments.study.grid import Cell


class Progress:
    """One line per cell, with the time spent and an estimate of the time left."""

    def __init__(self, total: int) -> None:
        self.total, self.count, self.begin = total, 0, time.monotonic()

    def start(self, cell: Cell) -> None:
        print(f"[{self.count + 1}/{self.total}] {cell.name}: {cell.describe()} ...", flush=True)

    def skip(self) -> None:
        self.count += 1

    def done(self, cell: Cell, result: dict[str, Any]) -> None:
        self.count += 1
        resumed = f", resumed at step {result['resumed_from_step']}" if result.get("resumed_from_step") else ""
        print(
            f"[{self.count}/{self.total}] {cell.name} done in {result['wall_time_s']:.1f} s{resumed}: "
            f"top-1 {result['top1']:.4f}, paper metric {result[METRIC]:.4f} | {self._times()}",
            flush=True,
        )

    def failed(self, cell: Cell, error: BaseException) -> None:
        self.count += 1
        print(
            f"[{self.count}/{self.total}] {cell.name} FAILED: {type(error).__name__}: {error} | {self._times()}",
            flush=True,
        )

    def _times(self) -> str:
        elapsed = time.monotonic() - self.begin
        left = elapsed / self.count * (self.total - self.count)
        return f"{clock(elapsed)} elapsed, about {clock(left)} left"


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"
