"""The SLURM array task of one job: a submitit ``Checkpointable``, so a preempted or timed-out task is requeued
and the requeued task resumes the job (cell or fused group) from its ``last.ckpt``."""

from __future__ import annotations

import submitit

from experiments.study.jobs import run_job


class JobTask(submitit.helpers.Checkpointable):
    """Run one job folder to the end (``experiments.study.jobs.run_job``)."""

    def __call__(self, folder: str) -> None:
        run_job(folder)
