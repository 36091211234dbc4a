"""The SLURM array task of one cell: a submitit ``Checkpointable``, so a preempted or timed-out task is requeued
and the requeued task resumes the cell from its ``last.ckpt``."""

from __future__ import annotations

from typing import Any

import submitit

from experiments.cell import run_cell


class CellJob(submitit.helpers.Checkpointable):
    """Run one cell folder to the end (``experiments.cell.run_cell``)."""

    def __call__(self, folder: str) -> dict[str, Any]:
        return run_cell(folder)
