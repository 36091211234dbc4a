"""Each job's full config: a cell's rendered from the study's and its own settings, written and checked.

A cell's config is the study's fit configs and overrides, its panel's settings and its own (seeds, halves, transfer,
folders, loggers: :meth:`CellConfigs.cell_overlay`), rendered through the CLI's own parser. :meth:`CellConfigs.prepare`
writes the configs of unstarted cells and checks the started and finished ones against their fingerprints (and the
split and weights files they recorded); :meth:`CellConfigs.write_group` writes a fused group's.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml

from experiments.runs import CSV_LOGGER, WANDB_LOGGER
from experiments.study import groups
from experiments.study.cells import CellFolder
from experiments.study.config import Study
from experiments.study.errors import StudyError
from experiments.study.folders import StudyFolders
from experiments.study.grid import PRETRAINED, Cell
from experiments.study.overlays import Overlay, digest
from experiments.study.shared_config import SharedConfig, render_config
from models.files import write_atomic


class CellConfigs:
    """The full configs of a study's cells and fused groups.

    Args:
        study: The study config.
        folders: Where the study's files are.
        shared: The study's shared fit config.
        group: The W&B group of the study's runs.
    """

    def __init__(self, study: Study, folders: StudyFolders, shared: SharedConfig, group: str) -> None:
        self.study = study
        self.folders = folders
        self.shared = shared
        self.group = group

    def panel_overlays(self, cell: Cell) -> list[Overlay]:
        """The settings of the cell's panel, between the study's and the cell's own: the reduced-data solver."""
        reduced = self.study.grid.reduced_data
        if cell.images_per_class is not None and reduced is not None and reduced.overrides:
            return [reduced.overrides]
        return []

    def cell_overlay(self, cell: Cell) -> dict[str, Any]:
        """The cell's own settings: seeds (the replicate's data stream, the network's own draws), halves, transfer,
        folders, loggers."""
        folder = self.folders.cell(cell)
        base = self.folders.cell(cell.base_cell).last_checkpoint if cell.base_cell else None
        transfer: dict[str, Any] = {
            "base_checkpoint": None if base is None else str(base),
            "n": cell.n,
            "mode": cell.mode or "frozen",
        }
        if cell.base == PRETRAINED:  # the weights file, pinned by its content: a changed file is refused
            transfer |= {"base_checkpoint": self.shared.weights_file(), "base_sha256": self.shared.weights_sha256()}
        own_mean = cell.base in (cell.target, PRETRAINED)  # a pretrained base has no mean image on this data
        return {
            "seed_everything": cell.seed,
            "run_folders": False,  # the cell folder is the run's folder (a resume continues it)
            "trainer": {
                "default_root_dir": str(folder.path),
                "logger": self.loggers(folder.path, cell.name, cell.family, [cell.family, cell.split]),
            },
            "checkpoint": {
                "dirpath": str(folder.checkpoints),
                "every_n_train_steps": self.study.checkpoint_every_n_steps,
            },
            "model": {"init_args": {"init_seed": cell.network_seed, "dropout_seed": cell.network_seed}},
            "data": {
                "init_args": {
                    **self.shared.data_pins(cell.split),
                    "split": cell.split,
                    "half": cell.target,
                    "mean_half": None if own_mean else cell.base,
                    **({"images_per_class": cell.images_per_class} if cell.images_per_class is not None else {}),
                }
            },
            "transfer": transfer,
        }

    def loggers(self, folder: Path, name: str, job_type: str, tags: list[str]) -> list[dict[str, Any]]:
        """A job's loggers: CSV in its folder, and W&B (a run in the study's group, its id from ``study.json``)
        unless disabled."""
        loggers: list[dict[str, Any]] = [
            {"class_path": CSV_LOGGER, "init_args": {"save_dir": str(folder), "name": "logs"}}
        ]
        settings = self.study.wandb
        if settings.enabled:
            loggers.append(
                {
                    "class_path": WANDB_LOGGER,
                    "init_args": {
                        "save_dir": str(folder),
                        "project": settings.project,
                        "entity": settings.entity,
                        "group": self.group,
                        "name": name,
                        "job_type": job_type,
                        "offline": settings.offline,
                        "id": self.folders.wandb_id(name),
                        "resume": "allow",
                        "tags": tags,
                    },
                }
            )
        return loggers

    def prepare(self, cells: list[Cell]) -> list[Cell]:
        """Write the configs of unstarted cells and check the others; return the cells still to run.

        Raises:
            StudyError: A finished or started cell whose config changed, a finished base whose
                ``last.ckpt`` is gone, or a config that cannot work (every problem listed).
        """
        problems: list[str] = []
        pending: list[Cell] = []
        copying = [cell for cell in cells if cell.base == PRETRAINED]
        deepest = max(copying, key=lambda cell: cell.n) if copying else None
        for cell in cells:
            folder = self.folders.cell(cell)
            overlays = [*self.shared.overlays(), *self.panel_overlays(cell), self.cell_overlay(cell)]
            text = render_config(overlays, f"cell {cell.name}")
            config = yaml.safe_load(text)
            problems += self._check_config(cell, config)
            misfit = self.shared.weights_misfit(cell.n, config) if cell == deepest else None
            if misfit:
                problems.append(f"cell {cell.name} cannot copy stages 1..{cell.n} from the weights file: {misfit}")
            fingerprint = digest(overlays, self.folders.out)
            if folder.finished() or folder.started():
                recorded = folder.read_spec().get("digest") if folder.spec.is_file() else None
                if recorded != fingerprint:
                    changed = self._changed_file(cell, folder)
                    if changed:
                        problems.append(changed)
                        continue
                    state = "finished" if folder.finished() else "started"
                    problems.append(
                        f"cell {cell.name} {state} with a different config than the study now gives it "
                        f"({_changes(folder.config, text)}). Keep the old settings, use a new output_dir, or "
                        f"delete {folder.path} to train it again"
                    )
                    continue
            if not folder.finished():
                pending.append(cell)
                if not folder.started() or not folder.config.is_file():
                    write_atomic(folder.config, text)
                    write_atomic(folder.spec, json.dumps(_spec(cell, fingerprint), indent=2) + "\n")
        for cell in pending:
            if cell.base_cell is None:
                continue
            base, base_folder = cell.base_cell, self.folders.cell(cell.base_cell)
            if base_folder.finished() and not base_folder.last_checkpoint.is_file():
                problems.append(
                    f"cell {cell.name} needs the final weights of its base network {base.name} at "
                    f"{base_folder.last_checkpoint}, which is missing although that base finished. Restore "
                    f"the file, or delete {base_folder.path} (and the finished cells that copied it) to "
                    "train the base again"
                )
        if problems:
            raise StudyError("the study cannot go on:\n- " + "\n- ".join(problems))
        return pending

    def write_group(self, group: list[Cell], folder: Path, name: str) -> None:
        """Write a fused group's ``config.yaml`` and ``group.json`` into ``folder`` unless its fit has started.

        Raises:
            StudyError: the members' configs cannot train together, or the group's config is invalid.
        """
        members = [(cell, self.folders.cell(cell)) for cell in group]
        loggers = self.loggers(folder, name, "fused", ["fused", group[0].split])
        try:
            config = groups.group_config(members, folder, loggers)
        except ValueError as err:
            raise StudyError(f"fused group {folder.name}: {err}") from err
        if not CellFolder(folder).started() or not CellFolder(folder).config.is_file():
            write_atomic(CellFolder(folder).config, render_config([config], f"fused group {folder.name}"))
            groups.write_members(folder, [cell_folder for _, cell_folder in members])

    def _check_config(self, cell: Cell, config: dict[str, Any]) -> list[str]:
        trainer = config["trainer"]
        max_steps, every = trainer.get("max_steps") or -1, self.study.checkpoint_every_n_steps
        if max_steps <= 0 or every <= 0:
            return [
                f"cell {cell.name}: a study needs trainer.max_steps > 0 (got {max_steps}; cells end by "
                f"steps, not epochs) and checkpoint_every_n_steps > 0 (got {every})"
            ]
        if self.study.launcher == "inprocess" and "ddp" in str(trainer.get("strategy")):
            return [
                f"cell {cell.name} trains with strategy {trainer.get('strategy')!r}: a multi-process (DDP) "
                "cell cannot run inside the runner; use launcher subprocess or slurm, or trainer.devices 1"
            ]
        return []

    def _changed_file(self, cell: Cell, folder: CellFolder) -> str | None:
        """Why a trained cell's split file or pretrained weights file no longer matches it (its recorded sha256), or
        None."""
        recorded = (yaml.safe_load(folder.config.read_text()) if folder.config.is_file() else {}) or {}
        if cell.base == PRETRAINED:
            before_weights = (recorded.get("transfer") or {}).get("base_sha256")
            if before_weights and before_weights != self.shared.weights_sha256():
                return (
                    f"cell {cell.name} copied weights file {self.shared.weights_file()} (grid.pretrained.weights) "
                    f"with sha256 {before_weights[:16]}..., which is now {self.shared.weights_sha256()[:16]}...: "
                    "the file changed since its networks were trained. Restore the file, or train from the new one "
                    "in a new output_dir"
                )
        before = ((recorded.get("data") or {}).get("init_args") or {}).get("split_checksums") or {}
        now = self.shared.data_pins(cell.split).get("split_checksums") or {}
        if cell.split not in before or before.get(cell.split) == now.get(cell.split):
            return None
        path = (self.shared.data_init_args().get("split_files") or {}).get(cell.split)
        return (
            f"cell {cell.name} was trained on split file {path} (split {cell.split!r}) with sha256 "
            f"{before[cell.split][:16]}..., which is now {str(now.get(cell.split))[:16]}...: the split changed "
            "since its networks were trained. Restore the file, or train the new split in a new output_dir"
        )


def _spec(cell: Cell, fingerprint: str) -> dict[str, Any]:
    """The cell's ``cell.json``: which network it is and its config's fingerprint."""
    return {
        "name": cell.name,
        "family": cell.family,
        "digest": fingerprint,
        "cell": {
            "split": cell.split,
            "base_half": cell.base,
            "target_half": cell.target,
            "n": cell.n,
            "mode": cell.mode,
            "seed": cell.seed,
            "images_per_class": cell.images_per_class,
        },
    }


def _changes(old: Path, new_text: str, limit: int = 4) -> str:
    """The first changed lines between a cell's saved config and the one the study gives it now."""
    old_lines = old.read_text().splitlines() if old.is_file() else []
    lines = [
        line
        for line in difflib.unified_diff(old_lines, new_text.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    shown = "; ".join(line.strip() for line in lines[:limit])
    return f"{old}: {shown}" + (" ..." if len(lines) > limit else "")
