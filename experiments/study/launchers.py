"""Where a job (a cell or a fused group) runs: in this process, a subprocess, one per GPU, several on the CPU's
cores, or on SLURM.

A launcher starts job folders whose configs are written and hands back one future per job, which
completes (with the job's exception, if it failed) when the job ends. Every launcher ends in
:func:`experiments.study.jobs.run_job`, so a job's result does not depend on where it ran.
``capacity`` says how many jobs it runs at once; the scheduler (``experiments.study.schedule``)
starts a job as soon as its own dependencies are done and there is room. Parallelism comes from
existing engines: a thread pool over subprocesses (one GPU each, or a share of the CPU's cores each) and
submitit's SLURM job arrays. On SLURM itself the scheduler is SLURM's: :meth:`Slurm.submit` hands it every job
at once, each with an ``afterok`` dependency on the jobs training its bases, and the study needs no process
of its own while it runs.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

from experiments.study.cells import CellError, CellFolder
from experiments.study.jobs import Job, run_job
from models.files import write_atomic

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
        self.running: set[subprocess.Popen[bytes]] = set()
        self.closed = False

    def start(self, folders: Sequence[Path]) -> list[Future[None]]:
        return [self.pool.submit(self._run, folder) for folder in folders]

    def _run(self, folder: Path) -> None:
        slot = self.slots.get()
        try:
            if self.closed:  # the study stopped while this job waited for a slot
                raise CellError(f"job {folder} not started: the study was stopped")
            process = subprocess.Popen(
                [sys.executable, "-m", "experiments.study.jobs", str(folder)], env={**os.environ, **slot}
            )
            self.running.add(process)
            try:
                returncode = process.wait()
            finally:
                self.running.discard(process)
            if returncode:
                raise CellError(f"job {folder} exited with status {returncode}; see {folder / 'error.txt'}")
        finally:
            self.slots.put(slot)

    def close(self, grace_s: float = 60.0) -> None:
        """Stop: jobs still running (the study was interrupted) get SIGTERM, which ends a fit at its next step
        (its last periodic checkpoint is where the next run resumes), and SIGKILL after ``grace_s``; none is left
        behind to write into a cell that a later run of the study trains again."""
        self.closed = True
        self.pool.shutdown(wait=False, cancel_futures=True)
        running = list(self.running)
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def gpu_slots(gpus: Sequence[int]) -> list[dict[str, str]]:
    """One job per GPU: each sees only its own (``CUDA_VISIBLE_DEVICES``)."""
    return [{"CUDA_VISIBLE_DEVICES": str(gpu)} for gpu in gpus]


def cpu_slots(workers: int, cores: int | None = None) -> list[dict[str, str]]:
    """``workers`` jobs at once on the CPU, each with ``cores // workers`` (at least 1) threads and no GPU.

    Small networks use one core's worth of threads better than several: on 2 cores, two 1-thread jobs
    train more networks per hour than one 2-thread job (docs/study.md, "Jobs and launchers").

    Raises:
        ValueError: ``workers`` below 1, naming the setting.
    """
    if workers < 1:
        raise ValueError(f"study cpu_workers must be at least 1, got {workers}")
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = str(max(1, cores // workers))
    return [{"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": ""}] * workers


# squeue states of a job that has ended; in any other (PENDING, RUNNING, REQUEUED, SUSPENDED ...) SLURM still holds it
ENDED = frozenset(
    {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT"}
)


class Slurm:
    """submitit on SLURM: every job of the study submitted at once, and SLURM runs each after the jobs it needs.

    On a SLURM cluster :meth:`submit` gives each job an ``afterok`` dependency on the jobs that train its bases
    (jobs with the same dependencies go out as one job array), so the study runs to its end after the submitting
    process has exited. The job ids are kept in ``<log_folder>/jobs.json``: submitting the study again leaves out
    the finished cells (the plan does) and the jobs SLURM still holds (``squeue``), and submits the rest.
    submitit's ``local`` and ``debug`` executors have no dependencies: there each batch of ready jobs goes out as
    one array (:meth:`start`) and the runner waits for them.

    Args:
        parameters: submitit ``AutoExecutor`` parameters (``cluster`` picks the executor: None
            auto-detects SLURM, ``local`` or ``debug`` run here; ``slurm_array_parallelism`` bounds
            the tasks of one array running at once; ``slurm_additional_parameters`` go to every job).
        log_folder: Where submitit keeps its job files, and ``jobs.json``.
    """

    def __init__(self, parameters: dict[str, Any], log_folder: Path) -> None:
        try:
            import submitit
        except ImportError as err:
            raise CellError("launcher 'slurm' needs submitit: pip install -e '.[cluster]'") from err
        parameters = dict(parameters)
        if "timeout_min" not in parameters:
            warnings.warn(
                "study slurm settings have no timeout_min: submitit asks SLURM for 5 minutes a task, and a "
                "task requeued on every time-out fails after 3; set slurm.timeout_min to a job's length",
                stacklevel=2,
            )
        self.executor = submitit.AutoExecutor(folder=log_folder, cluster=parameters.pop("cluster", None))
        self.executor.update_parameters(**parameters)
        self.additional = dict(parameters.get("slurm_additional_parameters") or {})
        self.detached = self.executor.cluster == "slurm"  # SLURM runs the jobs by their dependencies: see submit
        self.capacity = int(parameters.get("slurm_array_parallelism") or 256)
        self.log_folder = log_folder
        self.record = log_folder / "jobs.json"
        self.jobs: list[Any] = []

    def start(self, folders: Sequence[Path]) -> list[Future[None]]:
        from experiments.study.slurm_job import JobTask

        jobs = self.executor.map_array(JobTask(), [str(folder) for folder in folders])
        self.jobs += jobs
        self._announce(jobs)
        futures = []
        for job in jobs:
            future: Future[None] = Future()
            threading.Thread(target=_wait_for, args=(job, future), daemon=True).start()
            futures.append(future)
        return futures

    def submit(self, jobs: Sequence[Job]) -> None:
        """Hand SLURM every job it does not hold yet, each ``afterok`` on the jobs it needs, and return at once.

        A job queued or running from an earlier submission (``jobs.json``, asked of ``squeue``) is kept when the
        jobs it needs are kept too. A job whose need failed or was cancelled is cancelled by SLURM
        (``--kill-on-invalid-dep``), and submitting the study again submits both anew.

        Args:
            jobs: In plan order (a job's needs before it); a need not among them is a finished cell.

        Raises:
            CellError: A cell of ``jobs`` is in a job SLURM still holds that cannot be kept (its base is submitted
                anew, or the cell is now planned in another fused group): cancel that job or wait for it.
        """
        names = {job.name for job in jobs}
        cells = {cell for job in jobs for cell in job.cells}
        recorded: dict[str, dict[str, Any]] = json.loads(self.record.read_text()) if self.record.is_file() else {}
        active = _active(entry["id"] for entry in recorded.values() if cells.intersection(entry["cells"]))
        ids: dict[str, str] = {}
        for job in jobs:
            entry = recorded.get(job.name)
            if (
                entry is not None
                and entry["id"] in active
                and entry["cells"] == list(job.cells)
                and all(need in ids for need in job.needs if need in names)
            ):
                ids[job.name] = entry["id"]
        pending = {cell for job in jobs if job.name not in ids for cell in job.cells}
        held = sorted(
            f"{cell} (job {entry['id']})"
            for name, entry in recorded.items()
            if entry["id"] in active and name not in ids
            for cell in entry["cells"]
            if cell in pending
        )
        if held:
            raise CellError(
                f"SLURM still holds {', '.join(held)} from an earlier submission, planned differently "
                "now; wait for those jobs to end or scancel them, then run the study again"
            )
        kept = len(ids)
        arrays: dict[tuple[str, ...], list[Job]] = {}  # by the needs still to run: one array per dependency
        for job in jobs:
            if job.name not in ids:
                arrays.setdefault(tuple(need for need in job.needs if need in names), []).append(job)
        for needs, batch in arrays.items():  # in plan order, so the jobs each array needs are submitted already
            retried = [job.name for job in batch if CellFolder(job.folder).error.is_file()]
            if retried:
                print(
                    f"submitting again {len(retried)} job(s) that failed before (see their error.txt): "
                    f"{', '.join(retried)}",
                    flush=True,
                )
            after = [ids[need] for need in needs]
            for job, job_id in zip(batch, self._submit_array(batch, after)):
                ids[job.name] = job_id
                recorded[job.name] = {"id": job_id, "cells": list(job.cells)}
            write_atomic(self.record, json.dumps(recorded, indent=2) + "\n")  # at once: a re-run never duplicates
        print(
            f"SLURM holds the study's {len(jobs)} job(s): {len(jobs) - kept} submitted now, {kept} still queued or "
            "running from an earlier submission. They run without this process: run the same command again to see "
            "which cells are done and resubmit any that failed; once every cell is done it writes the full table "
            "and figures.",
            flush=True,
        )

    def _submit_array(self, batch: Sequence[Job], after: Sequence[str]) -> list[str]:
        """Submit ``batch`` as one array that starts after the jobs ``after`` succeeded; its job ids."""
        from experiments.study.slurm_job import JobTask

        dependency = {"dependency": "afterok:" + ":".join(after), "kill_on_invalid_dep": "yes"} if after else {}
        self.executor.update_parameters(slurm_additional_parameters={**self.additional, **dependency})
        jobs = self.executor.map_array(JobTask(), [str(job.folder) for job in batch])
        self._announce(jobs, after)
        return [job.job_id for job in jobs]

    def _announce(self, jobs: Sequence[Any], after: Sequence[str] = ()) -> None:
        kind = "array" if "_" in jobs[0].job_id else "job"
        waits = f" after {', '.join(after)}" if after else ""
        print(
            f"submitted {len(jobs)} job(s) as {kind} {jobs[0].job_id.split('_')[0]}{waits} (logs in {self.log_folder})",
            flush=True,
        )

    def close(self) -> None:
        running = [job.job_id for job in self.jobs if not job.done()]
        if running:
            print(
                f"the runner stopped; {len(running)} SLURM task(s) still queued or running ({', '.join(running)}): "
                "cancel them with scancel before running the study again",
                flush=True,
            )


def _active(job_ids: Iterable[str]) -> set[str]:
    """The ids among ``job_ids`` (``<job>`` or ``<array>_<task>``) that SLURM still holds, queued or running.

    Raises:
        CellError: ``squeue`` failed, so which jobs still run is unknown.
    """
    wanted = sorted(set(job_ids))
    if not wanted:
        return set()
    process = subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i %T", f"--jobs={','.join(wanted)}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if process.returncode:
        if "Invalid job id" in process.stderr:  # none of them is known to SLURM any more
            return set()
        raise CellError(
            f"squeue failed ({process.stderr.strip()}): cannot tell which of the study's SLURM jobs are "
            "still queued; run the study again when squeue answers"
        )
    states = dict(line.split()[:2] for line in process.stdout.splitlines() if line.strip())
    return {job_id for job_id in wanted if states.get(job_id, "COMPLETED") not in ENDED}


def _wait_for(job: Any, future: Future[None]) -> None:
    try:
        job.result()  # submitit polls the scheduler; a failed task raises with its traceback
    except Exception as error:
        future.set_exception(error)
    else:
        future.set_result(None)


def make_launcher(
    name: LauncherName,
    gpus: Sequence[int] | None = None,
    slurm: dict[str, Any] | None = None,
    log_folder: Path | None = None,
    cpu_workers: int = 2,
) -> Launcher:
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
