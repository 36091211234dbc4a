"""Run a study's frozen transfer cells that share a base network and a target half as one fused fit.

The study runner hands a group of cells (same split, base network, target half and seed; frozen;
n >= 1) to :func:`run_group`. It reads the cells' own saved configs, trains them together with
:func:`experiments.fused.fit_fused` (one data stream, the base's frozen layers once per batch) and
finishes each cell exactly as a single fit would (:func:`experiments.cell.finish_cell`), so the cell
folders and the results table do not depend on whether a cell was fused.

The group's own folder (``<study>/fused/<group>``) holds its resumable checkpoint; a killed group
resumes from it. Each cell's ``checkpoints/last.ckpt`` is exported at every group checkpoint.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from experiments.atomic import write_atomic
from experiments.cell import CellFolder, checkpoint_step, finish_cell, finish_wandb_run
from experiments.cli import LINKED_FROM_DATA
from experiments.grid import Cell

# Trainer settings a fused group takes from its cells' configs; loggers, callbacks and folders are its own.
TRAINER_KEYS = ("accelerator", "devices", "precision", "max_steps", "val_check_interval", "check_val_every_n_epoch",
                "limit_train_batches", "limit_val_batches", "log_every_n_steps", "num_sanity_val_steps",
                "enable_progress_bar", "enable_model_summary", "deterministic", "benchmark")
MEMBERS = "cells.json"


def group_key(cell: Cell) -> tuple[str, str, str, int] | None:
    """What fused cells must share (split, base network, target half, seed); None if the cell cannot be fused."""
    if cell.mode != "frozen" or cell.base is None or cell.n < 1:
        return None
    return cell.split, cell.base, cell.target, cell.seed


def group_name(cells: Sequence[Cell]) -> str:
    """A folder name for the group, e.g. ``random0_A-to-B_s0_n1-2-3``."""
    first = cells[0]
    return f"{first.split}_{first.base}-to-{first.target}_s{first.seed}_n{'-'.join(str(c.n) for c in cells)}"


def fusable(config: dict[str, Any]) -> bool:
    """Whether a cell's fit config can train fused: one process, one device, no compile, no fp16 scaler."""
    trainer, model = config["trainer"], config["model"]
    single = "ddp" not in str(trainer.get("strategy")) and trainer.get("devices") in (1, "1", "auto", None)
    return single and not model.get("compile") and not str(trainer.get("precision", "32")).startswith("16")


def _instantiate(entry: dict[str, Any]) -> Any:
    """An object from a config's ``class_path`` and ``init_args``."""
    module, _, name = entry["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**(entry.get("init_args") or {}))


def run_group(folders: Sequence[CellFolder], cells: Sequence[Cell], group_dir: Path) -> list[dict[str, Any]]:
    """Train ``cells`` together and write each one's ``result.json``; return their results.

    Args:
        folders: The cells' folders, with ``config.yaml`` and ``cell.json`` written by the runner.
        cells: The cells (same split, base, target half and seed; frozen).
        group_dir: The group's folder (resumable checkpoint, logs, member list).

    Raises:
        ValueError: The cells' configs differ in more than their transfer depth and folders.
    """
    from lightning.pytorch.loggers import CSVLogger

    from callbacks.checkpoint import BestAndLastCheckpoint
    from experiments.fused import FusedCell, fit_fused

    configs = [yaml.safe_load(folder.config.read_text()) for folder in folders]
    first = configs[0]
    for folder, config in zip(folders[1:], configs[1:]):
        for key in ("model", "data", "seed_everything"):
            if config[key] != first[key]:
                raise ValueError(f"cannot fuse {folder.path} with {folders[0].path}: their {key} settings differ")
        if config["transfer"]["base_checkpoint"] != first["transfer"]["base_checkpoint"]:
            raise ValueError(f"cannot fuse {folder.path} with {folders[0].path}: different base checkpoints")
    write_atomic(group_dir / MEMBERS, json.dumps([str(f.path) for f in folders], indent=2) + "\n")
    resume = group_dir / "checkpoints" / "last.ckpt"
    resume_step = checkpoint_step(resume)
    trainer = {key: first["trainer"][key] for key in TRAINER_KEYS if key in first["trainer"]}
    trainer["logger"] = [CSVLogger(str(group_dir), name="logs"), *_wandb_loggers(first, group_dir)]
    # The group's resumable checkpoint, as often as a single cell's; plus the cells' own extra callbacks.
    every = (first.get("checkpoint") or {}).get("every_n_train_steps")
    trainer["callbacks"] = [
        BestAndLastCheckpoint(dirpath=str(group_dir / "checkpoints"), save_last=True, save_top_k=0,
                              every_n_train_steps=every),
        *(_instantiate(entry) for entry in first["trainer"].get("callbacks") or []),
    ]
    model = {key: value for key, value in first["model"].items() if key not in LINKED_FROM_DATA}
    start = time.monotonic()
    try:
        rows = fit_fused(
            [FusedCell(n=cell.n, root=str(folder.path), seed=cell.seed, name=cell.name)
             for cell, folder in zip(cells, folders)],
            _instantiate(first["data"]), first["transfer"]["base_checkpoint"], model=model,
            trainer_kwargs=trainer, group_dir=str(group_dir), seed=first["seed_everything"],
            ckpt_path=str(resume) if resume_step else None,
        )
    except BaseException:
        finish_wandb_run(exit_code=1)
        raise
    finish_wandb_run(exit_code=0)
    share = (time.monotonic() - start) / len(cells)  # the group's wall time, shared equally
    return [finish_cell(folder.path, _metrics(row), resume_step, share) for folder, row in zip(folders, rows)]


def _wandb_loggers(config: dict[str, Any], group_dir: Path) -> list[Any]:
    """The cells' W&B logger, as one run for the group (its metrics prefixed by cell), in the study's group."""
    from lightning.pytorch.loggers import WandbLogger

    loggers = []
    for entry in config["trainer"].get("logger") or []:
        if isinstance(entry, dict) and entry.get("class_path", "").endswith("WandbLogger"):
            args = dict(entry.get("init_args") or {})
            prefix = str(args.get("id") or "").split("-", 1)[0]
            args.update(save_dir=str(group_dir), name=f"fused_{group_dir.name}", job_type="fused",
                        id=f"{prefix}-fused-{group_dir.name}"[:64] if prefix else None)
            loggers.append(WandbLogger(**args))
    return loggers


def _metrics(row: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in row.items() if key.startswith("val/") and value is not None}


def members(group_dir: Path) -> list[str]:
    """The cell folders a started group trains (empty if the group has not started)."""
    path = group_dir / MEMBERS
    return json.loads(path.read_text()) if path.is_file() else []
