"""Fused groups: a study's frozen transfer cells that share a base network and a target half, as one job.

A group's ``config.yaml`` is a full CLI config whose model is ``models.fused.FusedTransfer``, made from
its members' own configs (:func:`group_config`): every trainer, data, logger and callback setting is
theirs, each cell's ``n`` is the ``transfer.n`` of its config, the base its ``transfer.base_checkpoint``.
``transferability fit --config <group>/config.yaml`` re-runs it by hand. After the fit each member is
finished exactly as a single fit would be (:func:`experiments.study.cells.finish_cell`), so the cell
folders and the results table do not depend on whether a cell was fused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from experiments.study.cells import CellError, CellFolder, errors_recorded, finish_cell, resume_from
from experiments.study.grid import Cell
from experiments.study.worker import fit
from models.files import write_atomic
from models.fused import METRICS_FILE, PER_CELL, FusedTransfer, unfusable_setting

MEMBERS = "group.json"
FUSED_MODEL = f"{FusedTransfer.__module__}.{FusedTransfer.__qualname__}"  # a fused group's model.class_path


def group_key(cell: Cell) -> tuple[str, str, str, int] | None:
    """What fused cells must share (split, base network, target half, seed); None if the cell is no frozen transfer."""
    if cell.mode != "frozen" or cell.base is None or cell.n < 1:
        return None
    return cell.split, cell.base, cell.target, cell.seed


def group_name(cells: Sequence[Cell]) -> str:
    """A folder name for the group, e.g. ``random0_A-to-B_s0_n1-2-3``."""
    first = cells[0]
    return f"{first.split}_{first.base}-to-{first.target}_s{first.seed}_n{'-'.join(str(c.n) for c in cells)}"


def unfusable(config: dict[str, Any]) -> str | None:
    """Why a cell's fit config cannot train in a fused group (None: it can): a study fuses only frozen transfers on
    one device (this rule), with settings that a fused group trains with (``models.fused.unfusable_setting``)."""
    trainer, model, transfer = config["trainer"], config["model"]["init_args"], config["transfer"]
    if transfer.get("mode") != "frozen" or not transfer.get("n") or not transfer.get("base_checkpoint"):
        return "not a frozen transfer from a base network"
    if "ddp" in str(trainer.get("strategy")) or trainer.get("devices") not in (1, "1", "auto", None):
        return f"trains on several devices (strategy {trainer.get('strategy')!r}, devices {trainer.get('devices')!r})"
    return unfusable_setting(trainer.get("precision"), model.get("compile"), transfer.get("frozen_norm", "eval"))


def group_config(members: Sequence[tuple[Cell, CellFolder]], group_dir: Path, loggers: list[Any]) -> dict[str, Any]:
    """The group's fit config: its members' shared config with the fused model, the group's folders and loggers.

    Raises:
        ValueError: the members' configs differ in more than their transfer depth, folders and loggers.
    """
    configs = [yaml.safe_load(folder.config.read_text()) for _, folder in members]
    first = configs[0]
    for (_, folder), config in zip(members[1:], configs[1:]):
        for key in ("model", "data", "seed_everything", "lr_monitor"):
            if _shared(config, key) != _shared(first, key):
                raise ValueError(f"cannot fuse {folder.path} with {members[0][1].path}: their {key} settings differ")
        if _base(config) != _base(first):
            raise ValueError(f"cannot fuse {folder.path} with {members[0][1].path}: different base checkpoints")
        if _trainer(config) != _trainer(first):
            raise ValueError(f"cannot fuse {folder.path} with {members[0][1].path}: their trainer settings differ")
    network = {key: value for key, value in first["model"]["init_args"].items() if key not in PER_CELL}
    cells = [
        {"n": config["transfer"]["n"], "root": str(folder.path), "seed": _network_seed(config), "name": cell.name}
        for (cell, folder), config in zip(members, configs)
    ]
    return {
        **first,
        "model": {
            "class_path": FUSED_MODEL,
            "init_args": {
                "base_checkpoint": first["transfer"]["base_checkpoint"],
                "cells": cells,
                "network": network,
                "network_class": first["model"]["class_path"],
                "base_sha256": first["transfer"].get("base_sha256"),
            },
        },
        "transfer": {"base_checkpoint": None, "n": 0, "mode": "frozen"},
        "checkpoint": {
            **first["checkpoint"],
            "dirpath": str(group_dir / "checkpoints"),
            "monitor": None,
            "save_top_k": 0,
        },
        "trainer": {**first["trainer"], "default_root_dir": str(group_dir), "logger": loggers},
    }


def _base(config: dict[str, Any]) -> tuple[Any, Any]:
    """The base a cell copies: its file and the sha256 the file must have."""
    return config["transfer"]["base_checkpoint"], config["transfer"].get("base_sha256")


def _shared(config: dict[str, Any], key: str) -> Any:
    """A config section less what is each network's own (its seeds)."""
    if key != "model":
        return config.get(key)
    return {
        **config["model"],
        "init_args": {k: v for k, v in config["model"]["init_args"].items() if k not in PER_CELL},
    }


def _network_seed(config: dict[str, Any]) -> int:
    """The cell's network seed: its ``init_seed`` (the study always sets it; else the fit's seed)."""
    init_args = config["model"]["init_args"]
    seeds = {init_args.get("init_seed"), init_args.get("dropout_seed")} - {None}
    if len(seeds) > 1:
        raise ValueError("a fused cell has one network seed: its config sets init_seed and dropout_seed differently")
    return seeds.pop() if seeds else config["seed_everything"]


def _trainer(config: dict[str, Any]) -> dict[str, Any]:
    """A cell's trainer settings less its own folder and loggers."""
    return {key: value for key, value in config["trainer"].items() if key not in ("default_root_dir", "logger")}


def is_group(folder: Path) -> bool:
    """Whether ``folder`` is a fused group's job folder."""
    return (folder / MEMBERS).is_file()


def write_members(group_dir: Path, members: Sequence[CellFolder]) -> None:
    """Record the group's member cell folders (what :func:`run_group` finishes)."""
    write_atomic(group_dir / MEMBERS, json.dumps([str(f.path) for f in members], indent=2) + "\n")


def members(group_dir: Path) -> list[str]:
    """The cell folders of a group (empty if the group folder has none)."""
    path = group_dir / MEMBERS
    return json.loads(path.read_text()) if path.is_file() else []


def run_group(group_dir: Path) -> list[dict[str, Any]]:
    """Fit the group (resuming from its ``last.ckpt``) through the CLI, then finish each member cell.

    Raises:
        CellError: a member did not reach ``trainer.max_steps`` or wrote no metrics.
    """
    folder = CellFolder(group_dir)
    cells = [CellFolder(Path(path)) for path in members(group_dir)]
    with errors_recorded(folder):
        resume_step = resume_from(folder)
        start = time.monotonic()
        fit(folder, resume_step)
        share = (time.monotonic() - start) / len(cells)  # the group's wall time, shared equally
        return [finish_cell(cell.path, _metrics(cell), resume_step, share) for cell in cells]


def _metrics(cell: CellFolder) -> dict[str, float]:
    path = cell.path / METRICS_FILE
    if not path.is_file():
        raise CellError(f"the fused group wrote no {path}: did its fit reach a checkpoint?")
    row = json.loads(path.read_text())
    return {key: float(value) for key, value in row.items() if key.startswith("val/") and value is not None}
