"""One cell's fit in this process: the Lightning CLI on the cell's ``config.yaml``, fresh or resumed, then its result.

:func:`run_cell` is what every launcher ends in for a cell (``experiments.study.jobs.run_job``); :func:`fit` is the
in-process CLI fit that a fused group (``experiments.study.groups``) runs too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from experiments.study.cells import CellFolder, checkpoint_step, errors_recorded, finish_cell, last_logged, resume_from


def _is_main_process() -> bool:
    """False in the extra processes of a multi-GPU (DDP) fit, which Lightning or srun start with a rank > 0."""
    return all(int(os.environ.get(key, "0") or 0) == 0 for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def fit(folder: CellFolder, resume_step: int) -> None:
    """Run the cell's Lightning CLI fit in this process (resuming from ``last.ckpt`` when ``resume_step > 0``)."""
    from experiments.cli import main  # Lightning, torch and the data modules: imported once per process

    args = ["fit", "--config", str(folder.config)]
    if resume_step:
        args += ["--ckpt_path", str(folder.last_checkpoint)]
    main(args)  # closes the cell's W&B run, so the next in-process cell starts its own


def run_cell(path: str | Path) -> dict[str, Any]:
    """Fit one cell to the end (resuming an interrupted fit) and write its ``result.json``; return the result.

    Args:
        path: The cell folder, with ``config.yaml`` and ``cell.json`` written by the study runner.

    Raises:
        CellError: The fit stopped before ``trainer.max_steps`` or logged no validation metrics; the
            traceback of any failure is also written to ``error.txt``.
    """
    folder = CellFolder(Path(path))
    if folder.finished():
        return folder.read_result()
    main = _is_main_process()
    with errors_recorded(folder, record=main):
        resume_step = resume_from(folder) if main else checkpoint_step(folder.last_checkpoint)
        start = time.monotonic()
        fit(folder, resume_step)
        if not main:  # another DDP rank of the same fit: rank 0 writes the result
            return {}
        return finish_cell(folder.path, last_logged(folder.logs), resume_step, time.monotonic() - start)
