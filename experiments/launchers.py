"""Where a batch of independent cells runs: in this process, one subprocess each, one per GPU, or on SLURM.

Each launcher takes cell folders whose configs are written and yields ``(folder, error or None)`` as
each cell ends; every one of them ends in :func:`experiments.cell.run_cell`, so a cell's result
does not depend on where it ran. Parallelism comes from existing engines: a thread pool over
subprocesses (one GPU each) and submitit's SLURM job arrays.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

from experiments.cell import CellError, run_cell

LauncherName = Literal["inprocess", "subprocess", "gpus", "slurm"]
Outcome = tuple[Path, Exception | None]


def launch(name: LauncherName, folders: Sequence[Path], gpus: Sequence[int] | None = None,
           slurm: dict[str, Any] | None = None, log_folder: Path | None = None) -> Iterator[Outcome]:
    """Run ``folders`` (independent cells) with the named launcher; yield each outcome as it comes.

    Args:
        name: ``inprocess`` (one after another in this process, the default: no per-cell imports),
            ``subprocess`` (one after another, each in a fresh ``python -m experiments.cell``; needed
            for a DDP cell), ``gpus`` (one subprocess per GPU at a time, ``CUDA_VISIBLE_DEVICES`` set)
            or ``slurm`` (a submitit job array, one task per cell).
        folders: The cells to run.
        gpus: GPU indices for ``gpus`` (None: every visible GPU).
        slurm: submitit ``AutoExecutor`` parameters for ``slurm`` (``cluster`` picks the executor:
            None auto-detects SLURM, ``local`` or ``debug`` run here).
        log_folder: Where submitit keeps its job files.
    """
    if not folders:
        return iter(())
    if name == "inprocess":
        return _in_process(folders)
    if name == "subprocess":
        return ((folder, _subprocess(folder)) for folder in folders)
    if name == "gpus":
        return _on_gpus(folders, list(gpus) if gpus is not None else _visible_gpus())
    if name == "slurm":
        return _on_slurm(folders, dict(slurm or {}), log_folder or folders[0].parent.parent / "submitit")
    raise ValueError(f"unknown launcher {name!r}; choose inprocess, subprocess, gpus or slurm")


def _in_process(folders: Sequence[Path]) -> Iterator[Outcome]:
    for folder in folders:
        try:
            run_cell(folder)
        except Exception as error:  # the cell failed; KeyboardInterrupt and SystemExit stop the study
            yield folder, error
        else:
            yield folder, None


def _subprocess(folder: Path, gpu: int | None = None) -> Exception | None:
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    process = subprocess.run([sys.executable, "-m", "experiments.cell", str(folder)], env=env, check=False)
    if process.returncode:
        return CellError(f"cell {folder} exited with status {process.returncode}; see {folder / 'error.txt'}")
    return None


def _visible_gpus() -> list[int]:
    import torch

    count = torch.cuda.device_count()
    if not count:
        raise CellError("launcher 'gpus' found no GPU: use launcher inprocess or subprocess")
    return list(range(count))


def _on_gpus(folders: Sequence[Path], gpus: list[int]) -> Iterator[Outcome]:
    free: queue.Queue[int] = queue.Queue()
    for gpu in gpus:
        free.put(gpu)

    def one(folder: Path) -> Exception | None:
        gpu = free.get()
        try:
            return _subprocess(folder, gpu)
        finally:
            free.put(gpu)

    with ThreadPoolExecutor(max_workers=len(gpus)) as pool:
        futures = {pool.submit(one, folder): folder for folder in folders}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _on_slurm(folders: Sequence[Path], parameters: dict[str, Any], log_folder: Path) -> Iterator[Outcome]:
    try:
        import submitit
    except ImportError as err:
        raise CellError("launcher 'slurm' needs submitit: pip install -e '.[cluster]'") from err
    from experiments.slurm_job import CellJob

    executor = submitit.AutoExecutor(folder=log_folder, cluster=parameters.pop("cluster", None))
    executor.update_parameters(**parameters)
    jobs = executor.map_array(CellJob(), [str(folder) for folder in folders])
    folder_of = {job.job_id: folder for job, folder in zip(jobs, folders)}
    print(f"submitted {len(jobs)} cell(s) as job array {jobs[0].job_id.split('_')[0]} (logs in {log_folder})")
    try:
        for job in submitit.helpers.as_completed(jobs):
            try:
                job.result()
            except Exception as error:  # the task failed; its traceback is in the cell's error.txt
                yield folder_of[job.job_id], error
            else:
                yield folder_of[job.job_id], None
    except KeyboardInterrupt:
        pending = [job.job_id for job in jobs if not job.done()]
        print(f"the runner stopped; {len(pending)} task(s) still queued or running: cancel them with "
              f"`scancel {jobs[0].job_id.split('_')[0]}` before running the study again")
        raise
