"""The plan of a study: its cells, their configs from overlays, and the jobs (cells and fused groups) that train them.

Everything the plan knows comes from the study config and the cell folders: it expands the grid
(``experiments.study.grid``), renders each cell's full CLI config through the CLI's own parser
(``experiments.study.overlays``), checks finished and started cells against their fingerprints,
groups the frozen transfers that can train fused (``experiments.study.groups``) and says which job
needs which (a transfer needs the job that trains its base).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from experiments.runs import CSV_LOGGER, WANDB_LOGGER
from experiments.study import groups
from experiments.study.cells import CellFolder
from experiments.study.config import Study
from experiments.study.grid import PRETRAINED, Cell, expand
from experiments.study.jobs import Job
from experiments.study.overlays import ConfigError, Overlay, digest, render
from models.classifier import DEFAULT_CLASSIFIER, LINKED_FROM_DATA
from models.files import write_atomic
from models.loading import import_path
from models.network import StagedNetwork
from models.transfer import copy_stages, load_base, sha256_of, transferable_stages


class StudyError(RuntimeError):
    """A study that cannot go on (or did not finish), with every reason and what to do."""


class StudyPlan:
    """The cells of a study, their folders and configs, and the jobs that train them.

    Args:
        study: The study config.
    """

    def __init__(self, study: Study) -> None:
        self.study = study
        self.out = study.output_dir or os.path.join("studies", study.name)
        self.root = Path(self.out)
        self.group = study.wandb.group or study.name
        self._halves: Any = None
        self._stage_names: tuple[str, ...] | None = None
        self._fit_config: dict[str, Any] | None = None
        self._pins: dict[str, dict[str, Any]] = {}
        self._weights_sha256: str | None = None

    def folder(self, cell: Cell) -> CellFolder:
        """The folder of ``cell``."""
        return CellFolder(self.root / "cells" / cell.name)

    def overlays(self) -> list[Overlay]:
        """The study's fit configs and its overrides: every cell's config before the cell's own settings."""
        return [*self.study.fit_configs, *([self.study.overrides] if self.study.overrides else [])]

    def cells(self) -> list[Cell]:
        """Every cell of the grid, bases before the cells that copy them.

        Raises:
            StudyError: The grid names a half or a stage the data or the network does not have.
        """
        try:
            return expand(self.study.grid, self._split_halves, self.network_stage_names())
        except ValueError as err:
            raise StudyError(f"grid: {err}") from err

    def network_stage_names(self) -> tuple[str, ...]:
        """The stages of the study's network (the head last), from its model config, built without memory.

        Raises:
            StudyError: the model config cannot be built.
        """
        if self._stage_names is None:
            model = self.fit_config().get("model") or {}
            class_path = model.get("class_path") or DEFAULT_CLASSIFIER
            arguments = {
                key: value for key, value in (model.get("init_args") or {}).items() if key not in LINKED_FROM_DATA
            }
            arguments["num_classes"] = 2  # the stages do not depend on the task; 2: the fewest a classifier takes
            try:
                self._stage_names = tuple(_meta_network(class_path, arguments).stage_names)
            except Exception as err:
                raise StudyError(f"the study's model ({class_path}) cannot be built from its config: {err}") from err
        return self._stage_names

    def fit_config(self) -> dict[str, Any]:
        """The study's fit configs and overrides rendered once: every cell's config before its own settings."""
        if self._fit_config is None:
            self._fit_config = yaml.safe_load(self._render(self.overlays(), "the study's fit configs"))
        return self._fit_config

    def _split_halves(self, split: str) -> tuple[str, ...]:
        if self._halves is None:
            class_path = (self.fit_config().get("data") or {}).get("class_path")
            try:
                data_class = import_path(class_path) if class_path and "." in class_path else None
            except AttributeError:  # the module has no such class
                data_class = None
            if data_class is None or not callable(getattr(data_class, "halves", None)):
                raise StudyError(
                    f"the study's data class {class_path!r} has no halves(split): the study needs a data module "
                    "of class splits such as datamodules.FashionMNISTHalf or datamodules.ImageNetHalf"
                )
            # A data set whose classes are read from disk (datamodules.ImageFolderHalves) says its halves from its
            # settings; the others from their class.
            study_halves = getattr(data_class, "study_halves", None)
            self._halves = self._from_data(study_halves, self._data_init_args()) if study_halves else data_class.halves
        return tuple(self._halves(split))

    def _data_init_args(self) -> dict[str, Any]:
        return dict((self.fit_config().get("data") or {}).get("init_args") or {})

    @staticmethod
    def _from_data(hook: Any, *args: Any) -> Any:
        """A hook of the data class called on the study's data settings; its errors stop the study, by name."""
        try:
            return hook(*args)
        except (OSError, ValueError) as err:
            raise StudyError(f"the study's data (data.init_args): {err}") from err

    def data_pins(self, split: str) -> dict[str, Any]:
        """The data settings a cell on ``split`` records of data read from disk (its classes, the checksum of its
        split file: ``study_pins`` of the data class), so that a cell trained on other data is refused; {} for
        the others."""
        if split not in self._pins:
            class_path = (self.fit_config().get("data") or {}).get("class_path") or ""
            data_class = import_path(class_path) if "." in class_path else None
            hook = getattr(data_class, "study_pins", None)
            self._pins[split] = self._from_data(hook, self._data_init_args(), split) if hook else {}
        return self._pins[split]

    def _changed_file(self, cell: Cell, folder: CellFolder) -> str | None:
        """Why a trained cell's split file or pretrained weights file no longer matches it (its recorded sha256), or
        None."""
        recorded = (yaml.safe_load(folder.config.read_text()) if folder.config.is_file() else {}) or {}
        if cell.base == PRETRAINED:
            before_weights = (recorded.get("transfer") or {}).get("base_sha256")
            if before_weights and before_weights != self.weights_sha256():
                return (
                    f"cell {cell.name} copied weights file {self.weights_file()} (grid.pretrained.weights) with "
                    f"sha256 {before_weights[:16]}..., which is now {self.weights_sha256()[:16]}...: the file "
                    "changed since its networks were trained. Restore the file, or train from the new one in a "
                    "new output_dir"
                )
        before = ((recorded.get("data") or {}).get("init_args") or {}).get("split_checksums") or {}
        now = self.data_pins(cell.split).get("split_checksums") or {}
        if cell.split not in before or before.get(cell.split) == now.get(cell.split):
            return None
        path = (self._data_init_args().get("split_files") or {}).get(cell.split)
        return (
            f"cell {cell.name} was trained on split file {path} (split {cell.split!r}) with sha256 "
            f"{before[cell.split][:16]}..., which is now {str(now.get(cell.split))[:16]}...: the split changed "
            "since its networks were trained. Restore the file, or train the new split in a new output_dir"
        )

    def panel_overlays(self, cell: Cell) -> list[Overlay]:
        """The settings of the cell's panel, between the study's and the cell's own: the reduced-data solver."""
        reduced = self.study.grid.reduced_data
        if cell.images_per_class is not None and reduced is not None and reduced.overrides:
            return [reduced.overrides]
        return []

    def cell_overlay(self, cell: Cell) -> dict[str, Any]:
        """The cell's own settings: seeds (the replicate's data stream, the network's own draws), halves, transfer,
        folders, loggers."""
        folder = self.folder(cell)
        base = self.folder(cell.base_cell).last_checkpoint if cell.base_cell else None
        transfer: dict[str, Any] = {
            "base_checkpoint": None if base is None else str(base),
            "n": cell.n,
            "mode": cell.mode or "frozen",
        }
        if cell.base == PRETRAINED:  # the weights file, pinned by its content: a changed file is refused
            transfer |= {"base_checkpoint": self.weights_file(), "base_sha256": self.weights_sha256()}
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
                    **self.data_pins(cell.split),
                    "split": cell.split,
                    "half": cell.target,
                    "mean_half": None if own_mean else cell.base,
                    **({"images_per_class": cell.images_per_class} if cell.images_per_class is not None else {}),
                }
            },
            "transfer": transfer,
        }

    def weights_file(self) -> str:
        """The pretrained-base panel's weights file (``grid.pretrained.weights``).

        Raises:
            StudyError: the study has no pretrained panel, or its file is missing.
        """
        spec = self.study.grid.pretrained
        if spec is None or not os.path.isfile(spec.weights):
            given = "no grid.pretrained" if spec is None else f"grid.pretrained.weights {spec.weights!r} is not a file"
            raise StudyError(
                f"{given}: give the weights file the pretrained cells copy, e.g. saved once with torch.save("
                'torchvision.models.resnet18(weights="IMAGENET1K_V1").state_dict(), "resnet18.pth")'
            )
        return spec.weights

    def weights_sha256(self) -> str:
        """The sha256 of the weights file, read once per plan (the cells record it)."""
        if self._weights_sha256 is None:
            self._weights_sha256 = sha256_of(self.weights_file())
        return self._weights_sha256

    def loggers(self, folder: Path, name: str, job_type: str, tags: list[str]) -> list[dict[str, Any]]:
        """A job's loggers: CSV in its folder, and W&B (a run in the study's group) unless disabled."""
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
                        "id": self._wandb_id(name),
                        "resume": "allow",
                        "tags": tags,
                    },
                }
            )
        return loggers

    def _wandb_id(self, name: str) -> str:
        """A W&B run id unique to this study folder and cell, stable across resumes."""
        info = self.root / "study.json"
        if not info.is_file():
            write_atomic(info, json.dumps({"name": self.study.name, "wandb_id_prefix": secrets.token_hex(4)}) + "\n")
        prefix = json.loads(info.read_text())["wandb_id_prefix"]
        return f"{prefix}-{re.sub(r'[^A-Za-z0-9_-]', 'p', name)}"[:64]

    def _render(self, overlays: Sequence[Overlay], what: str) -> str:
        try:
            return render(overlays)
        except ConfigError as err:
            raise StudyError(f"the config of {what} is invalid: {err}") from err

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
            folder = self.folder(cell)
            overlays = [*self.overlays(), *self.panel_overlays(cell), self.cell_overlay(cell)]
            text = self._render(overlays, f"cell {cell.name}")
            config = yaml.safe_load(text)
            problems += self._check_config(cell, config)
            if cell == deepest:
                problems += self._check_weights(cell, config)
            fingerprint = digest(overlays, self.out)
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
                    write_atomic(folder.spec, json.dumps(self._spec(cell, fingerprint), indent=2) + "\n")
        for cell in pending:
            base = cell.base_cell
            if base is not None and self.folder(base).finished() and not self.folder(base).last_checkpoint.is_file():
                problems.append(
                    f"cell {cell.name} needs the final weights of its base network {base.name} at "
                    f"{self.folder(base).last_checkpoint}, which is missing although that base finished. Restore "
                    f"the file, or delete {self.folder(base).path} (and the finished cells that copied it) to "
                    "train the base again"
                )
        if problems:
            raise StudyError("the study cannot go on:\n- " + "\n- ".join(problems))
        return pending

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

    def _check_weights(self, cell: Cell, config: dict[str, Any]) -> list[str]:
        """Whether the weights file gives stages 1..n to the network of ``cell`` (its deepest copy), checked on
        shapes alone before anything trains: a file of another architecture is refused now, not after base B."""
        data, model = config["data"], config["model"]
        try:
            module = import_path(data["class_path"])(**(data.get("init_args") or {}))
            arguments = {**(model.get("init_args") or {}), **{key: getattr(module, key) for key in LINKED_FROM_DATA}}
            net = _meta_network(model.get("class_path") or DEFAULT_CLASSIFIER, arguments)
            weights = self.weights_file()
            stages = transferable_stages(tuple(net.stage_names))[: cell.n]
            copy_stages(load_base(weights)[0], net, stages, f"grid.pretrained.weights {weights!r}", dry_run=True)
        except (ValueError, TypeError, FileNotFoundError) as err:
            return [f"cell {cell.name} cannot copy stages 1..{cell.n} from the weights file: {err}"]
        return []

    @staticmethod
    def _spec(cell: Cell, fingerprint: str) -> dict[str, Any]:
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

    def fused_groups(self, pending: list[Cell]) -> list[list[Cell]]:
        """Pending frozen transfer cells to train together: same split, base network, target half and seed.

        A cell already started alone is left to resume alone; a started group resumes with its members.
        """
        if not self.study.fused:
            return []
        found: dict[tuple[str, str, str, int], list[Cell]] = {}
        for cell in pending:
            key = groups.group_key(cell)
            if key is not None and groups.unfusable(yaml.safe_load(self.folder(cell).config.read_text())) is None:
                found.setdefault(key, []).append(cell)
        chosen = []
        for group in found.values():
            resumed = self._started_groups(group)
            chosen += resumed
            in_resumed = {cell for started in resumed for cell in started}
            fresh = [cell for cell in group if cell not in in_resumed and not self.folder(cell).started()]
            if len(fresh) > 1:
                chosen.append(fresh)
        return chosen

    def _started_groups(self, cells: list[Cell]) -> list[list[Cell]]:
        """The groups among ``cells`` (one group key) that a fit already started, each with its members as it
        started (under this grid or an earlier one, e.g. before ``grid.n`` changed): such a group resumes as it was,
        from its own checkpoint; its members' folders hold only their weights, so none of them can resume alone."""
        prefix = groups.group_name(cells[:1]).rsplit("_n", 1)[0] + "_n"
        by_folder = {str(self.folder(cell).path): cell for cell in cells}
        started = []
        for folder in sorted((self.root / "fused").glob(f"{prefix}*")):
            names = groups.members(folder)
            if CellFolder(folder).started() and names and all(name in by_folder for name in names):
                started.append([by_folder[name] for name in names])
        return started

    def fused_dir(self, group: list[Cell]) -> Path:
        """The folder of a fused group's job."""
        return self.root / "fused" / groups.group_name(group)

    def plan_jobs(self, pending: list[Cell]) -> list[Job]:
        """The jobs that train ``pending``: fused groups (their ``config.yaml`` written) and single cells.

        Raises:
            StudyError: a group's config is invalid.
        """
        fused = self.fused_groups(pending)
        in_group = {cell: group for group in fused for cell in group}
        jobs: list[Job] = []
        for cell in pending:
            group = in_group.get(cell)
            if group is None:
                needs = (cell.base_cell.name,) if cell.base_cell is not None else ()
                jobs.append(Job(cell.name, self.folder(cell).path, (cell.name,), needs))
            elif cell is group[0]:
                jobs.append(self._group_job(group))
        return jobs

    def _group_job(self, group: list[Cell]) -> Job:
        folder = self.fused_dir(group)
        name = f"fused_{folder.name}"
        members = [(cell, self.folder(cell)) for cell in group]
        loggers = self.loggers(folder, name, "fused", ["fused", group[0].split])
        try:
            config = groups.group_config(members, folder, loggers)
        except ValueError as err:
            raise StudyError(f"fused group {folder.name}: {err}") from err
        if not CellFolder(folder).started() or not CellFolder(folder).config.is_file():
            write_atomic(CellFolder(folder).config, self._render([config], f"fused group {folder.name}"))
            groups.write_members(folder, [self.folder(cell) for cell in group])
        base = group[0].base_cell  # None: a pretrained weights file, which nothing trains
        return Job(name, folder, tuple(cell.name for cell in group), (base.name,) if base is not None else ())


def _meta_network(class_path: str, arguments: dict[str, Any]) -> StagedNetwork:
    """The network of the classifier at ``class_path`` built on the meta device: shapes only, no weights allocated or
    drawn."""
    with torch.device("meta"):
        return import_path(class_path)(**arguments).net


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
