"""Run a study's jobs as soon as their own dependencies are done: a job waits for its base, not for a whole level.

A transfer job depends on the job that trains its base network; bases and random-feature cells depend on
nothing. Every launcher is driven the same way: whenever it has room, the scheduler starts the ready jobs
in plan order, and each time one ends it looks again. A job whose dependency failed is not run. On a SLURM
cluster SLURM itself is the scheduler: every job goes to it at once with its dependencies, and nothing here waits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait

from experiments.study.jobs import Job
from experiments.study.launchers import Launcher, Slurm

__all__ = ["Job", "Outcome", "run_jobs"]


Outcome = Callable[[Job, BaseException | None], None]


def run_jobs(
    jobs: Sequence[Job],
    launcher: Launcher,
    on_end: Outcome,
    on_skip: Callable[[Job, str], None],
    on_start: Callable[[Job], None] | None = None,
) -> bool:
    """Run ``jobs`` with ``launcher``, each as soon as the jobs it needs have finished.

    Args:
        jobs: In plan order (a job's needs before it). A need that is not among ``jobs`` is taken as done.
        launcher: Where the jobs run.
        on_end: Called as each job ends, with its exception or None.
        on_skip: Called for each job not run, with the name of the failed job it needed.
        on_start: Called as each job is handed to the launcher.

    Returns:
        True when the jobs have ended here; False when they were handed to SLURM to run after this process.

    On a SLURM cluster (``Slurm.detached``) the jobs are submitted with their dependencies (``Slurm.submit``) and
    the call returns without waiting for them: no callback is called, and a later run of the study finds the
    cells they finished.
    """
    if jobs and isinstance(launcher, Slurm) and launcher.detached:
        try:
            launcher.submit(jobs)
        finally:
            launcher.close()
        return False
    names = {job.name for job in jobs}
    waiting = list(jobs)
    running: dict[Future[None], Job] = {}
    done: set[str] = set()
    failed: set[str] = set()
    try:
        while waiting or running:
            for job in list(waiting):
                broken = [need for need in job.needs if need in failed]
                if broken:
                    waiting.remove(job)
                    failed.add(job.name)
                    on_skip(job, broken[0])
            ready = [job for job in waiting if all(need in done or need not in names for need in job.needs)]
            room = launcher.capacity - len(running)
            batch = ready[: max(room, 0)]
            if batch:
                for job in batch:
                    waiting.remove(job)
                    if on_start is not None:
                        on_start(job)
                for job, future in zip(batch, launcher.start([job.folder for job in batch])):
                    running[future] = job
            if not running:
                if waiting:  # needs that can never be met: a cycle or a bug in the plan
                    raise RuntimeError(f"jobs wait for each other: {', '.join(job.name for job in waiting)}")
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                error = future.exception()
                (failed if error else done).add(job.name)
                on_end(job, error)
    finally:
        launcher.close()
    return True
