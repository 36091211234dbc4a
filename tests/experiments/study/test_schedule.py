"""The study's scheduler: a job starts as soon as the jobs it needs have finished, not when a whole level has."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from experiments.study.schedule import Job, run_jobs


class FakeLauncher:
    """Runs each job as a sleep of its own length on a pool of ``capacity`` workers; records start and end times."""

    def __init__(self, capacity: int, seconds: dict[str, float], fail: Sequence[str] = ()) -> None:
        self.capacity = capacity
        self.seconds, self.fail = seconds, set(fail)
        self.pool = ThreadPoolExecutor(max_workers=capacity)
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.lock = threading.Lock()

    def start(self, folders: Sequence[Path]) -> list[Future[None]]:
        return [self.pool.submit(self._run, folder.name) for folder in folders]

    def _run(self, name: str) -> None:
        with self.lock:
            self.started[name] = time.monotonic()
        time.sleep(self.seconds[name])
        with self.lock:
            self.ended[name] = time.monotonic()
        if name in self.fail:
            raise RuntimeError(f"{name} failed")

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def job(name: str, *needs: str) -> Job:
    return Job(name, Path("/jobs") / name, (name,), tuple(needs))


def test_slow_base_does_not_hold_back_a_transfer_whose_base_finished() -> None:
    """With two workers, B's transfers run while the slow base A still trains."""
    jobs = [job("baseA"), job("baseB"), job("B1B", "baseB"), job("B2B", "baseB"), job("A1B", "baseA")]
    launcher = FakeLauncher(2, {"baseA": 1.0, "baseB": 0.1, "B1B": 0.1, "B2B": 0.1, "A1B": 0.1})
    ended: list[str] = []
    run_jobs(jobs, launcher, lambda j, error: ended.append(j.name), lambda j, need: None)
    assert sorted(ended) == sorted(j.name for j in jobs)
    assert launcher.ended["B1B"] < launcher.ended["baseA"] and launcher.ended["B2B"] < launcher.ended["baseA"]
    assert launcher.started["A1B"] >= launcher.ended["baseA"]  # and a transfer never starts before its base


def test_a_failed_base_skips_its_transfers_only() -> None:
    """The jobs needing a failed job are skipped (named); the others run."""
    jobs = [job("baseA"), job("baseB"), job("A1B", "baseA"), job("B1B", "baseB")]
    launcher = FakeLauncher(1, dict.fromkeys(["baseA", "baseB", "A1B", "B1B"], 0.01), fail=["baseA"])
    outcomes: dict[str, str] = {}
    run_jobs(
        jobs,
        launcher,
        lambda j, error: outcomes.__setitem__(j.name, "failed" if error else "done"),
        lambda j, need: outcomes.__setitem__(j.name, f"skipped for {need}"),
    )
    assert outcomes == {"baseA": "failed", "baseB": "done", "A1B": "skipped for baseA", "B1B": "done"}


def test_needs_outside_the_run_count_as_done_and_cycles_are_an_error() -> None:
    """A need finished by an earlier run does not block; jobs that wait for each other are reported."""
    launcher = FakeLauncher(1, {"A1B": 0.01})
    ended: list[str] = []
    run_jobs([job("A1B", "baseA")], launcher, lambda j, error: ended.append(j.name), lambda j, need: None)
    assert ended == ["A1B"]
    with pytest.raises(RuntimeError, match="wait for each other: x, y"):
        run_jobs([job("x", "y"), job("y", "x")], FakeLauncher(1, {}), lambda j, e: None, lambda j, n: None)
