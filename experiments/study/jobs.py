"""A study's jobs: one cell, or a fused group of cells; each a folder whose fit (fresh or resumed) ends in results.

A job folder holds ``config.yaml`` (the full Lightning CLI config: ``transferability fit --config
config.yaml`` re-runs it by hand), ``checkpoints/``, ``logs/``, ``wandb/`` and, after a failure,
``error.txt`` (``experiments.study.cells``). A fused group's folder (``experiments.study.groups``) also lists its
member cells in ``group.json``; each member's ``last.ckpt`` and ``metrics.json`` are written into the member's own
folder by the group's fit.

``python -m experiments.study.jobs <folder>`` runs one job (cell or group); the study runner calls
:func:`run_job` in-process, as a subprocess, on one GPU each, or as a SLURM array task.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from experiments.study.cells import CellError
from experiments.study.groups import is_group, run_group
from experiments.study.worker import run_cell

__all__ = ["CellError", "Job", "run_job"]


@dataclass(frozen=True)
class Job:
    """One unit the launchers run: a cell, or a fused group of cells.

    Args:
        name: The cell's name, or ``fused_<group>``.
        folder: The job's folder (``config.yaml``).
        cells: The names of the cells it finishes.
        needs: The names of the jobs that must finish first (those training its base networks).
    """

    name: str
    folder: Path
    cells: tuple[str, ...]
    needs: tuple[str, ...] = field(default_factory=tuple)


def run_job(path: str | Path) -> None:
    """Run one job folder to the end: a fused group (``group.json``) or a single cell."""
    if is_group(Path(path)):
        run_group(Path(path))
    else:
        run_cell(path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m experiments.study.jobs <cell or group folder>")
    try:
        run_job(sys.argv[1])
    except CellError as error:
        sys.exit(f"error: {error}")
