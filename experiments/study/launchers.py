"""Where a job (a cell or a fused group) runs: in this process, a subprocess, one per GPU, several on the CPU's
cores, or on SLURM.

A launcher starts job folders whose configs are written and hands back one future per job, which
completes (with the job's exception, if it failed) when the job ends. Every launcher ends in
:func:`experiments.study.jobs.run_job`, so a job's result does not depend on where it ran.
``capacity`` says how many jobs it runs at once; the scheduler (``experiments.study.schedule``)
starts a job as soon as its own dependencies are done and there is room. Parallelism comes from
existing engines: a thread pool over subprocesses (one GPU each, or a share of the CPU's cores each) and
submitit's SLURM job arrays.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

from experiments.study.jobs import CellError, run_job

LauncherName = Literal["inprocess", "subprocess", "gpus", "cpus", "slurm"]


class Launcher(Protocol):
    """Runs job folders; ``capacity`` of them at once."""

    capacity: int

    def start(self, folders: Sequence[Path]) -> list[Future[None]]:
        """Start ``folders`` (at most the free capacity); one future per folder."""

    def close(self) -> None:
        """Release what the launcher holds (threads); jobs already started run to their end."""


class InProcess:
    """One job at a time in this process (the default: Lightning and the data are imported once)."""

    capacity = 1

    def start(self, folders: Sequence[Path]) -> list[Future[None]]:
        futures = []
        for folder in folders:
            future: Future[None] = Future()
            try:
                run_job(folder)
            except Exception as error:  # the job failed; KeyboardInterrupt and SystemExit stop the study
                future.set_exception(error)
            else:
                future.set_result(None)
            futures.append(future)
        return futures

    def close(self) -> None:
        pass


class Subprocesses:
    """Each job in a fresh ``python -m experiments.study.jobs`` (needed for a DDP cell), one per slot at a time.

    Args:
        slots: One environment change per job that may run at once (``{}``: one job at a time, as this process);
            ``gpu_slots`` and ``cpu_slots`` make them.
    """

    def __init__(self, slots: Sequence[Mapping[str, str]] = ({},)) -> None:
        self.slots: queue.Queue[dict[str, str]] = queue.Queue()
        for slot in slots:
            self.slots.put(dict(slot))
        self.capacity = self.slots.qsize()
        self.pool = ThreadPoolExecutor(max_workers=self.capacity)

    def start(self, folders: Sequence[Path]) -> list[Future[None]]:
        return [self.pool.submit(self._run, folder) for folder in folders]

    def _run(self, folder: Path) -> None:
        slot = self.slots.get()
        try:
            process = subprocess.run([sys.executable, "-m", "experiments.study.jobs", str(folder)],
                                     env={**os.environ, **slot}, check=False)
            if process.returncode:
                raise CellError(f"job {folder} exited with status {process.returncode}; see {folder / 'error.txt'}")
        finally:
            self.slots.put(slot)

    def close(self) -> None:
        self.pool.shutdown(wait=False)


def gpu_slots(gpus: Sequence[int]) -> list[dict[str, str]]:
    """One job per GPU: each sees only its own (``CUDA_VISIBLE_DEVICES``)."""
    return [{"CUDA_VISIBLE_DEVICES": str(gpu)} for gpu in gpus]


def cpu_slots(workers: int, cores: int | None = None) -> list[dict[str, str]]:
    """``workers`` jobs at once on the CPU, each with ``cores // workers`` (at least 1) threads and no GPU.

    Small networks use one core's worth of threads better than several: on 2 cores, two 1-thread jobs
    train more networks per hour than one 2-thread job (README, "Jobs and launchers").

    Raises:
        ValueError: ``workers`` below 1, naming the setting.
    """
    if workers < 1:
        raise ValueError(f"study cpu_workers must be at least 1, got {workers}")
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = str(max(1, cores // workers))
    return [{"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": ""}] * workers


class Slurm:
    """Each batch of ready jobs as one submitit job array (one task per job); SLURM queues them.

    Args:
        parameters: submitit ``AutoExecutor`` parameters (``cluster`` picks the executor: None
            auto-detects SLURM, ``local`` or ``debug`` run here; ``slurm_array_parallelism`` bounds
            the tasks running at once, and the jobs this launcher keeps submitted).
        log_folder: Where submitit keeps its job files.
    """

    def __init__(self, parameters: dict[str, Any], log_folder: Path) -> None:
        try:
            import submitit
        except ImportError as err:
            raise CellError("launcher 'slurm' needs submitit: pip install -e '.[cluster]'") from err
        parameters = dict(parameters)
        if "timeout_min" not in parameters:
            warnings.warn("study slurm settings have no timeout_min: submitit asks SLURM for 5 minutes a task, and a "
                          "task requeued on every time-out fails after 3; set slurm.timeout_min to a job's length",
                          stacklevel=2)
        self.executor = submitit.AutoExecutor(folder=log_folder, cluster=parameters.pop("cluster", None))
        self.executor.update_parameters(**parameters)
        self.capacity = int(parameters.get("slurm_array_parallelism") or 256)
        self.log_folder = log_folder
        self.jobs: list[Any] = []

    def start(self, folders: Sequence[Path]) -> list[Future[None]]:
        from experiments.study.slurm_job import JobTask

        jobs = self.executor.map_array(JobTask(), [str(folder) for folder in folders])
        self.jobs += jobs
        kind = "array" if "_" in jobs[0].job_id else "job"
        print(f"submitted {len(jobs)} job(s) as {kind} {jobs[0].job_id.split('_')[0]} (logs in {self.log_folder})",
              flush=True)
        futures = []
        for job in jobs:
            future: Future[None] = Future()
            threading.Thread(target=_wait_for, args=(job, future), daemon=True).start()
            futures.append(future)
        return futures

    def close(self) -> None:
        running = [job.job_id for job in self.jobs if not job.done()]
        if running:
            print(f"the runner stopped; {len(running)} SLURM task(s) still queued or running ({', '.join(running)}): "
                  "cancel them with scancel before running the study again", flush=True)


def _wait_for(job: Any, future: Future[None]) -> None:
    try:
        job.result()  # submitit polls the scheduler; a failed task raises with its traceback
    except Exception as error:
        future.set_exception(error)
    else:
        future.set_result(None)


def make_launcher(name: LauncherName, gpus: Sequence[int] | None = None, slurm: dict[str, Any] | None = None,
                  log_folder: Path | None = None, cpu_workers: int = 2) -> Launcher:
    """The named launcher.

    Raises:
        CellError: ``gpus`` on a machine without GPU, ``slurm`` without submitit.
        ValueError: an unknown name, ``cpu_workers`` below 1.
    """
    if name == "inprocess":
        return InProcess()
    if name == "subprocess":
        return Subprocesses()
    if name == "gpus":
        return Subprocesses(gpu_slots(list(gpus) if gpus is not None else _visible_gpus()))
    if name == "cpus":
        return Subprocesses(cpu_slots(cpu_workers))
    if name == "slurm":
        return Slurm(dict(slurm or {}), log_folder or Path("submitit"))
    raise ValueError(f"unknown launcher {name!r}; choose inprocess, subprocess, gpus, cpus or slurm")


def _visible_gpus() -> list[int]:
    import torch

    count = torch.cuda.device_count()
    if not count:
        raise CellError("launcher 'gpus' found no GPU: use launcher inprocess or subprocess, or list study.gpus")
    return list(range(count))
