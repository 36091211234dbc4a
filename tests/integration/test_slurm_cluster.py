"""submitit on a real single-node SLURM cluster (tests/slurm_cluster.py): a job array, a dependency, a task
interrupted (``scancel --signal=USR2``) that requeues itself and resumes from its checkpoint, one requeued from
outside (``scontrol requeue``) that runs again, and a plain ``scancel``. Skipped unless root with SLURM installed."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.slurm_cluster import SlurmCluster

submitit = pytest.importorskip("submitit")
import cloudpickle  # noqa: E402 (submitit's dependency)

# The jobs unpickle this module's functions in a fresh interpreter where tests/ is not importable.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def square(x: int, marks: str) -> tuple[int, str | None]:
    time.sleep(1)
    (Path(marks) / f"square-{x}").touch()
    return x * x, os.environ.get("SLURM_ARRAY_TASK_ID")


def after(marks: str) -> list[str]:
    return sorted(path.name for path in Path(marks).iterdir())


def _wait_for(path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


class Steps(submitit.helpers.Checkpointable):
    """Counts to ``total``; in its first run it stops after ``pause_at`` steps and waits to be interrupted.

    ``self.done`` travels in the checkpoint submitit writes when it is interrupted, so the requeued run resumes.
    """

    def __init__(self) -> None:
        self.done = 0
        self.resumed_from: int | None = None

    def __call__(self, marks: str, total: int, pause_at: int) -> tuple[int | None, int, str | None]:
        self.resumed_from = self.done if os.environ.get("SLURM_RESTART_COUNT") else None
        while self.done < total:
            self.done += 1
            if self.done == pause_at and not os.environ.get("SLURM_RESTART_COUNT"):
                (Path(marks) / "paused").touch()
                time.sleep(120)  # interrupted here
        return self.resumed_from, self.done, os.environ.get("SLURM_RESTART_COUNT")


def run_count(marks: str) -> int:
    """Counts its runs in a file; the first run waits to be requeued from outside."""
    counter = Path(marks) / "runs"
    runs = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(runs))
    if runs == 1:
        (Path(marks) / "first-run").touch()
        time.sleep(120)  # killed and requeued here
    return runs


def test_submitit_on_a_real_slurm_cluster(slurm_env: SlurmCluster, tmp_path: Path) -> None:
    cluster = slurm_env
    assert cluster.command("sinfo", "-h", "-o", "%T").split() == ["idle"]
    marks = tmp_path / "marks"
    marks.mkdir()
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit" / "%j", cluster="slurm")
    # timeout_min=60: submitit reads a signal as preemption (not time-out) before 80% of the time limit
    executor.update_parameters(timeout_min=60, cpus_per_task=1, slurm_partition=cluster.partition)

    # a job array of two tasks, and a job that may start only after both succeeded
    array = executor.map_array(square, [2, 3], [str(marks)] * 2)
    array_id = array[0].job_id.split("_")[0]
    assert [job.job_id for job in array] == [f"{array_id}_0", f"{array_id}_1"]
    executor.update_parameters(slurm_additional_parameters={"dependency": f"afterok:{array_id}"})
    dependent = executor.submit(after, str(marks))
    executor.update_parameters(slurm_additional_parameters={})
    assert [job.result() for job in array] == [(4, "0"), (9, "1")]
    assert dependent.result() == ["square-2", "square-3"]

    # interrupted (scancel --signal=USR2, what Slurm sends before a time limit: submitit's --signal=USR2@90):
    # submitit checkpoints, requeues the job with `scontrol requeue`, and the rerun resumes from the checkpoint.
    # Not submitit's job._interrupt(): its two scancel calls (SIGTERM, then USR2) race, and a SIGTERM that lands
    # after the USR2 kills the step's `scontrol requeue` (2 failures in 27 runs here).
    steps = executor.submit(Steps(), str(marks), 5, 3)
    _wait_for(marks / "paused")
    cluster.command("scancel", "--signal=USR2", steps.job_id)
    assert steps.result() == (3, 5, "1")
    assert cluster.job_field(steps.job_id, "Restarts") == "1"

    # requeued from outside (scontrol requeue): the task is killed and runs again
    (marks / "runs").unlink(missing_ok=True)
    counted = executor.submit(run_count, str(marks))
    _wait_for(marks / "first-run")
    cluster.command("scontrol", "requeue", counted.job_id)
    assert counted.result() == 2

    # cancelled for good: Slurm (and, with accounting, submitit through sacct) sees it cancelled
    cancelled = executor.submit(time.sleep, 120)
    deadline = time.monotonic() + 30
    while cluster.job_field(cancelled.job_id, "JobState") != "RUNNING":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
    cancelled.cancel()
    deadline = time.monotonic() + 30
    while cluster.job_field(cancelled.job_id, "JobState") != "CANCELLED":
        assert time.monotonic() < deadline, cluster.job_field(cancelled.job_id, "JobState")
        time.sleep(0.2)
    if cluster.accounting:
        deadline = time.monotonic() + 30
        while not cancelled.done(force_check=True):
            assert time.monotonic() < deadline, cancelled.state
            time.sleep(0.5)
        assert cancelled.state.startswith("CANCELLED")
