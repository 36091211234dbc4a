"""The files of one cell and its completion: :class:`CellFolder`, the progress a checkpoint holds, ``result.json``.

A cell folder holds::

    config.yaml          the full Lightning CLI config: `transferability fit --config config.yaml`
    cell.json            which network this is (split, halves, n, mode, seed, family) and its config digest
    checkpoints/         last.ckpt (the final weights when finished), periodic and best checkpoints
    logs/version_<k>/    metrics.csv and the CLI's own copy of the config, one version per attempt
    wandb/               the offline W&B run (`wandb sync` uploads it)
    result.json          the completion marker: the cell's row of the results table
    error.txt            the traceback of the last failed attempt, if any

A fused group's folder (``experiments.study.groups``) has the same ``config.yaml``, ``checkpoints/``, ``logs/`` and
``error.txt``, and lists its member cells in ``group.json``. :func:`finish_cell` is the last step of every way of
training a cell (``experiments.study.worker`` for one fit, ``experiments.study.groups`` for a fused group).
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from models.files import write_atomic

LAST = "last.ckpt"


class CellError(RuntimeError):
    """A cell that did not finish, with what to do about it."""


@dataclass(frozen=True)
class CellFolder:
    """The files of one cell (see the module docstring)."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def spec(self) -> Path:
        return self.path / "cell.json"

    @property
    def result(self) -> Path:
        return self.path / "result.json"

    @property
    def error(self) -> Path:
        return self.path / "error.txt"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def finished(self) -> bool:
        """Whether the cell's result (its completion marker) exists."""
        return self.result.is_file()

    def started(self) -> bool:
        """Whether a fit of this cell has left a checkpoint."""
        return self.checkpoints.is_dir() and any(self.checkpoints.iterdir())

    def read_spec(self) -> dict[str, Any]:
        """The cell's identity and config digest (``cell.json``)."""
        return _read_json(self.spec)

    def read_result(self) -> dict[str, Any]:
        """The finished cell's result (``result.json``)."""
        return _read_json(self.result)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CellError(
            f"cannot read {path}: {err}. Delete the cell folder {path.parent} to run the cell again"
        ) from err


def checkpoint_progress(path: Path) -> tuple[int, int, list[float]]:
    """``(global_step, epoch, validation top-1 history)`` stored in a Lightning checkpoint.

    Raises:
        CellError: The file does not load as a checkpoint.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        history = [float(value) for value in checkpoint.get("val_top1_history", [])]
        return int(checkpoint["global_step"]), int(checkpoint["epoch"]), history
    except Exception as err:  # truncated, corrupt or not a Lightning checkpoint
        raise CellError(f"checkpoint {path} is unreadable ({type(err).__name__}: {err})") from err


def last_logged(logs: Path) -> dict[str, float]:
    """The last logged value of every metric, over all attempts (``logs/version_*/metrics.csv``, newest last)."""
    values: dict[str, float] = {}
    versions = sorted(logs.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    for path in versions:
        with path.open(newline="") as file:
            for row in csv.DictReader(file):
                values.update({key: float(value) for key, value in row.items() if key and value not in ("", None)})
    return values


def resume_from(folder: CellFolder) -> int:
    """The step an interrupted fit resumes from (0: fresh); an unreadable last checkpoint is moved aside."""
    try:
        return checkpoint_step(folder.last_checkpoint)
    except CellError as err:
        aside = folder.path / f"checkpoints.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.move(str(folder.checkpoints), aside)
        warnings.warn(
            f"{err}; moved {folder.checkpoints} to {aside} and training the cell from the start", stacklevel=2
        )
        return 0


def checkpoint_step(path: Path) -> int:
    """The global step stored in the checkpoint at ``path``; 0 when there is none (a fresh start)."""
    return checkpoint_progress(path)[0] if path.is_file() else 0


@contextlib.contextmanager
def errors_recorded(folder: CellFolder, record: bool = True) -> Iterator[None]:
    """Write the traceback of a failure inside the block to the job's ``error.txt`` (when ``record``), then re-raise."""
    try:
        yield
    except BaseException:
        if record:
            write_atomic(folder.error, traceback.format_exc())
        raise


def finish_cell(
    path: str | Path, metrics: Mapping[str, float], resume_step: int = 0, wall_time: float = 0.0
) -> dict[str, Any]:
    """Check that the cell's training reached ``trainer.max_steps`` and write its ``result.json`` (atomically).

    The last step of every way of training a cell (one CLI fit here; a fused group calls it once per
    member with that cell's metrics).

    Args:
        path: The cell folder.
        metrics: The last logged value of ``val/top1``, ``val/top5`` and ``val/top1_best<k>_mean``.
        resume_step: The step the finishing attempt started from (0: fresh).
        wall_time: Seconds the finishing attempt took.

    Raises:
        CellError: ``last.ckpt`` missing or short of ``max_steps``, or a metric missing.
    """
    folder = CellFolder(Path(path))
    spec = folder.read_spec()
    config = yaml.safe_load(folder.config.read_text())
    max_steps = config["trainer"]["max_steps"]
    if not folder.last_checkpoint.is_file():
        raise CellError(f"cell {folder.path} ended without {folder.last_checkpoint}")
    steps, epoch, history = checkpoint_progress(folder.last_checkpoint)
    if steps != max_steps:
        raise CellError(
            f"cell {folder.path} stopped at step {steps} of trainer.max_steps={max_steps} (interrupted, or "
            "max_epochs ended it first); run the study again to resume it"
        )
    best_k = config["model"]["init_args"]["best_k"]
    paper_metric = f"val/top1_best{best_k}_mean"
    missing = [key for key in (paper_metric, "val/top1", "val/top5") if key not in metrics]
    if missing:
        raise CellError(f"cell {folder.path} logged no {', '.join(missing)}: did validation run?")
    result = {
        **spec["cell"],
        "family": spec["family"],
        "cell": spec["name"],
        "top1_best_k_mean": metrics[paper_metric],
        "best_k": best_k,
        "top1": metrics["val/top1"],
        "top5": metrics["val/top5"],
        "epochs": epoch + 1,  # epochs begun: Lightning's epoch index at the last step, plus one
        "steps": steps,
        "wall_time_s": round(wall_time, 2),
        "resumed_from_step": resume_step,
        "checkpoint": str(folder.last_checkpoint.relative_to(folder.path)),
        "val_top1_history": history,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_atomic(folder.result, json.dumps(result, indent=2) + "\n")
    folder.error.unlink(missing_ok=True)
    return result
