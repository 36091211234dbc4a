"""The study runner: the paper's grid from one command, resumable, with its table, effects and figures.

``transferability-study --config experiments/configs/studies/fmnist_default.yaml`` expands the grid
into cells (``experiments.grid``), writes one full Lightning CLI config per cell
(``experiments.cell_config``), runs the cells bases first (``experiments.launchers``), rebuilds the
results table from the cell folders after every cell (``experiments.report.table``) and draws the
figures from the table (``experiments.report.figures``). Running it again skips finished cells and resumes
interrupted ones from their last checkpoint. ``--plan`` lists the cells and runs nothing;
``--figures_only`` redraws the figures from the table.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import importlib
import json
import logging
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from experiments.report.table import METRIC, TableError, read_table, write_table
from experiments.study import groups
from experiments.study.config import Study, build_parser, study_from_config
from experiments.study.grid import Cell, expand
from experiments.study.jobs import CellError, CellFolder
from experiments.study.launchers import make_launcher
from experiments.study.overlays import ConfigError, Overlay, digest, render
from experiments.study.schedule import Job, run_jobs
from models.files import write_atomic

CSV_LOGGER = "lightning.pytorch.loggers.CSVLogger"
WANDB_LOGGER = "lightning.pytorch.loggers.WandbLogger"


class StudyError(RuntimeError):
    """A study that cannot go on (or did not finish), with every reason and what to do."""


class StudyRunner:
    """Plans, runs and reports one study; everything it knows comes from the config and the cell folders."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.out = study.output_dir or os.path.join("studies", study.name)
        self.root = Path(self.out)
        self.table = self.root / "results.csv"
        self.figures = self.root / "figures"
        self.group = study.wandb.group or study.name
        self._halves: Any = None

    # ----- planning -------------------------------------------------------------------------------
    def folder(self, cell: Cell) -> CellFolder:
        """The folder of ``cell``."""
        return CellFolder(self.root / "cells" / cell.name)

    def overlays(self) -> list[Overlay]:
        """The study's fit configs and its overrides: every cell's config before the cell's own settings."""
        return [*self.study.fit_configs, *([self.study.overrides] if self.study.overrides else [])]

    def cells(self) -> list[Cell]:
        """Every cell of the grid, bases before the cells that copy them.

        Raises:
            StudyError: The grid names a half or a layer the data or the network does not have.
        """
        try:
            return expand(self.study.grid, self._split_halves)
        except ValueError as err:
            raise StudyError(f"grid: {err}") from err

    def _split_halves(self, split: str) -> tuple[str, ...]:
        if self._halves is None:
            config = yaml.safe_load(self._render(self.overlays(), "the study's fit configs"))
            class_path = (config.get("data") or {}).get("class_path")
            module, _, name = (class_path or "").rpartition(".")
            data_class = getattr(importlib.import_module(module), name, None) if module else None
            if not callable(getattr(data_class, "halves", None)):
                raise StudyError(
                    f"the study's data class {class_path!r} has no halves(split): the study needs a data module "
                    "of class splits such as datamodules.FashionMNISTHalf or datamodules.ImageNetHalf"
                )
            self._halves = data_class.halves
        return tuple(self._halves(split))

    def cell_overlay(self, cell: Cell) -> dict[str, Any]:
        """The cell's own settings: seeds (the replicate's data stream, the network's own draws), halves, transfer,
        folders, loggers."""
        folder = self.folder(cell)
        base = self.folder(cell.base_cell).last_checkpoint if cell.base_cell else None
        return {
            "seed_everything": cell.seed,
            "trainer": {"default_root_dir": str(folder.path),
                        "logger": self.loggers(folder.path, cell.name, cell.family, [cell.family, cell.split])},
            "checkpoint": {"dirpath": str(folder.checkpoints),
                           "every_n_train_steps": self.study.checkpoint_every_n_steps},
            "model": {"init_args": {"init_seed": cell.network_seed, "dropout_seed": cell.network_seed}},
            "data": {"init_args": {"split": cell.split, "half": cell.target,
                                   "mean_half": cell.base if cell.base != cell.target else None}},
            "transfer": {"base_checkpoint": None if base is None else str(base), "n": cell.n,
                         "mode": cell.mode or "frozen"},
        }

    def loggers(self, folder: Path, name: str, job_type: str, tags: list[str]) -> list[dict[str, Any]]:
        """A job's loggers: CSV in its folder, and W&B (a run in the study's group) unless disabled."""
        loggers: list[dict[str, Any]] = [{"class_path": CSV_LOGGER, "init_args": {"save_dir": str(folder),
                                                                                  "name": "logs"}}]
        settings = self.study.wandb
        if settings.enabled:
            loggers.append({"class_path": WANDB_LOGGER, "init_args": {
                "save_dir": str(folder), "project": settings.project, "entity": settings.entity,
                "group": self.group, "name": name, "job_type": job_type, "offline": settings.offline,
                "id": self._wandb_id(name), "resume": "allow", "tags": tags,
            }})
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
        for cell in cells:
            folder = self.folder(cell)
            overlays = [*self.overlays(), self.cell_overlay(cell)]
            text = self._render(overlays, f"cell {cell.name}")
            problems += self._check_config(cell, yaml.safe_load(text))
            fingerprint = digest(overlays, self.out)
            if folder.finished() or folder.started():
                recorded = folder.read_spec().get("digest") if folder.spec.is_file() else None
                if recorded != fingerprint:
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
            return [f"cell {cell.name}: a study needs trainer.max_steps > 0 (got {max_steps}; cells end by "
                    f"steps, not epochs) and checkpoint_every_n_steps > 0 (got {every})"]
        if self.study.launcher == "inprocess" and "ddp" in str(trainer.get("strategy")):
            return [f"cell {cell.name} trains with strategy {trainer.get('strategy')!r}: a multi-process (DDP) "
                    "cell cannot run inside the runner; use launcher subprocess or slurm, or trainer.devices 1"]
        return []

    @staticmethod
    def _spec(cell: Cell, fingerprint: str) -> dict[str, Any]:
        return {"name": cell.name, "family": cell.family, "digest": fingerprint,
                "cell": {"split": cell.split, "base_half": cell.base, "target_half": cell.target, "n": cell.n,
                         "mode": cell.mode, "seed": cell.seed}}

    # ----- results --------------------------------------------------------------------------------
    def write_table(self, cells: list[Cell]) -> int:
        """Rebuild ``results.csv`` from the finished cells' results (grid order); return its row count."""
        rows = []
        for cell in cells:
            folder = self.folder(cell)
            if folder.finished():
                result = folder.read_result()
                rows.append({**result, "checkpoint": str(folder.path / result["checkpoint"])})
        write_table(self.table, rows)
        return len(rows)

    def draw(self) -> list[Path]:
        """The report from the results table alone: summary, effects, convergence check, figures; return the files."""
        from experiments.report.paper import paper_rows
        from experiments.report.write import write_report

        return write_report(read_table(self.table), self.root, paper_rows() if self.study.paper_overlay else None)

    def log_to_wandb(self, files: list[Path]) -> None:
        """Log the table and the figures as the study's last W&B run (offline unless configured otherwise)."""
        settings = self.study.wandb
        if not settings.enabled:
            return
        from lightning.pytorch.loggers import WandbLogger

        from experiments.report.table import COLUMNS

        rows = read_table(self.table)
        logger = WandbLogger(project=settings.project, entity=settings.entity, group=self.group,
                             name=f"{self.study.name}-results", job_type="results", offline=settings.offline,
                             save_dir=str(self.root), id=self._wandb_id("results"), resume="allow")
        logger.log_table("results", columns=list(COLUMNS), data=[[row[c] for c in COLUMNS] for row in rows])
        for path in files:
            if path.suffix == ".png":
                logger.log_image(f"figures/{path.stem}", images=[str(path)])
        logger.experiment.finish()

    # ----- running --------------------------------------------------------------------------------
    def run(self, plan_only: bool = False) -> None:
        """Run every unfinished cell, bases first, then write the table, the figures and the W&B summary.

        Raises:
            StudyError: The study cannot start (see :meth:`prepare`), or some cells failed (listed, with
                their ``error.txt``); the table and figures still hold every finished cell.
        """
        with exclusive(self.root):
            self._run(plan_only)

    def _run(self, plan_only: bool) -> None:
        if self.table.is_file():
            read_table(self.table)  # a corrupt table stops the study before anything runs
        cells = self.cells()
        try:
            pending = self.prepare(cells)
        finally:
            self.write_table(cells)
        done = len(cells) - len(pending)
        resumed = sum(self.folder(cell).started() for cell in pending)
        print(f"study {self.study.name}: {len(cells)} cells in {self.root}, {done} finished, {len(pending)} to run "
              f"({resumed} to resume), launcher {self.study.launcher}", flush=True)
        if plan_only:
            for cell in cells:
                folder = self.folder(cell)
                state = "finished" if folder.finished() else "resume" if folder.started() else "todo"
                print(f"  {state:8} {cell.name:32} {cell.describe()}")
            return
        failures = self._run_pending(cells, pending)
        self.write_table(cells)
        files = self.draw()
        self.log_to_wandb(files)
        convergence = self.root / "convergence.txt"
        if convergence.is_file():
            print(convergence.read_text().rstrip(), flush=True)
        print(f"results: {self.table}; effects: {self.root / 'effects.md'}; figures: {self.figures}", flush=True)
        if failures:
            raise StudyError(f"{len(failures)} cell(s) did not finish (the others are in {self.table}):\n- "
                             + "\n- ".join(failures))

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
            started = set(groups.members(self.fused_dir(group)))
            group = [cell for cell in group
                     if str(self.folder(cell).path) in started or not self.folder(cell).started()]
            if len(group) > 1:
                chosen.append(group)
        return chosen

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
        return Job(name, folder, tuple(cell.name for cell in group), (group[0].base_cell.name,))

    def _run_pending(self, cells: list[Cell], pending: list[Cell]) -> list[str]:
        jobs = self.plan_jobs(pending)
        by_name = {cell.name: cell for cell in cells}
        failures: list[str] = []
        progress = _Progress(len(pending))
        fused = sum(len(job.cells) > 1 for job in jobs)
        print(f"{len(jobs)} job(s) ({fused} fused group(s)) with launcher {self.study.launcher}", flush=True)

        def ended(job: Job, error: BaseException | None) -> None:
            for name in job.cells:
                cell = by_name[name]
                if error is None:
                    progress.done(cell, self.folder(cell).read_result())
                else:
                    where = self.folder(cell).error if len(job.cells) == 1 else job.folder / "error.txt"
                    failures.append(f"{cell.name}: {type(error).__name__}: {error} (see {where})")
                    progress.failed(cell, error)
            self.write_table(cells)

        def skipped(job: Job, need: str) -> None:
            for name in job.cells:
                failures.append(f"{name}: not run, its base {need} did not finish")
                progress.skip()

        def starting(job: Job) -> None:
            if len(job.cells) > 1:
                print(f"fused: training {len(job.cells)} cells on one data stream ({', '.join(job.cells)}) ...",
                      flush=True)
            elif self.study.launcher in ("inprocess", "subprocess"):
                progress.start(by_name[job.cells[0]])

        launcher = make_launcher(self.study.launcher, gpus=self.study.gpus, slurm=self.study.slurm,
                                 log_folder=self.root / "submitit")
        run_jobs(jobs, launcher, ended, skipped, on_start=starting)
        return failures


@contextlib.contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """Hold the study folder's lock, so two runners never train the same cells (released even on SIGKILL).

    Raises:
        StudyError: Another runner holds it.
    """
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise StudyError(f"{root} is being run by {owner}; wait for it or stop it first") from err
        handle.seek(0)
        handle.truncate()
        handle.write(f"transferability-study pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield


def _changes(old: Path, new_text: str, limit: int = 4) -> str:
    """The first changed lines between a cell's saved config and the one the study gives it now."""
    old_lines = old.read_text().splitlines() if old.is_file() else []
    lines = [line for line in difflib.unified_diff(old_lines, new_text.splitlines(), lineterm="", n=0)
             if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    shown = "; ".join(line.strip() for line in lines[:limit])
    return f"{old}: {shown}" + (" ..." if len(lines) > limit else "")


class _Progress:
    """One line per cell, with the time spent and an estimate of the time left."""

    def __init__(self, total: int) -> None:
        self.total, self.count, self.begin = total, 0, time.monotonic()

    def start(self, cell: Cell) -> None:
        print(f"[{self.count + 1}/{self.total}] {cell.name}: {cell.describe()} ...", flush=True)

    def skip(self) -> None:
        self.count += 1

    def done(self, cell: Cell, result: dict[str, Any]) -> None:
        self.count += 1
        resumed = f", resumed at step {result['resumed_from_step']}" if result.get("resumed_from_step") else ""
        print(f"[{self.count}/{self.total}] {cell.name} done in {result['wall_time_s']:.1f} s{resumed}: "
              f"top-1 {result['top1']:.4f}, paper metric {result[METRIC]:.4f} | {self._times()}", flush=True)

    def failed(self, cell: Cell, error: Exception) -> None:
        self.count += 1
        print(f"[{self.count}/{self.total}] {cell.name} FAILED: {type(error).__name__}: {error} | {self._times()}",
              flush=True)

    def _times(self) -> str:
        elapsed = time.monotonic() - self.begin
        left = elapsed / self.count * (self.total - self.count)
        return f"{_clock(elapsed)} elapsed, about {_clock(left)} left"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def _quiet_lightning() -> None:
    """One progress line per cell instead of Lightning's per-fit banners (warnings still show)."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(args: Sequence[str] | None = None) -> None:
    """Console-script entry point (``transferability-study``)."""
    parser = build_parser()
    config = parser.parse_args(args)
    study = study_from_config(parser, config)
    if study.wandb.offline:
        os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    runner = StudyRunner(study)
    try:
        if config.figures_only:
            for path in runner.draw():
                print(path)
            return
        if study.launcher == "inprocess":
            _quiet_lightning()
        runner.run(plan_only=config.plan)
    except (StudyError, TableError, CellError) as err:
        sys.exit(f"transferability-study: error: {err}")
    except SystemExit as stop:  # Lightning turns Ctrl-C into exit 1 and SIGTERM into exit 0 inside a fit
        print(f"transferability-study: interrupted. Finished cells are kept in {runner.root}; run the same "
              "command again to resume", file=sys.stderr)
        sys.exit(stop.code or 1)


if __name__ == "__main__":
    main()
