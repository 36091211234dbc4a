"""The study runner: the paper's grid from one command, resumable, with its table, effects and figures.

``transferability-study --config experiments/configs/studies/fmnist_default.yaml`` plans the study
(``experiments.study.plan``: the grid's cells, one full Lightning CLI config per cell and per fused
group, after ``study.json`` with the prefix of its W&B run ids), runs the jobs each as soon as the jobs
it needs have finished (``experiments.study.schedule`` over ``experiments.study.launchers``), rebuilds
the results table from the cell folders after every job, computes the layer-similarity panel from the
finished base networks (``experiments.study.similarity``) and writes the report (``experiments.report``:
summary with intervals, effects, convergence check, figures). Running it again skips finished cells and
resumes interrupted ones from their last checkpoint. ``--plan`` lists the cells and runs nothing;
``--figures_only`` redraws the report from the table (and the panel's ``cka.csv``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from experiments.errors import SettingError
from experiments.report.table import METRIC, TableError, read_table, write_table
from experiments.study.cells import CellError
from experiments.study.config import Study, build_parser, study_from_config
from experiments.study.errors import StudyError
from experiments.study.grid import Cell
from experiments.study.launchers import make_launcher
from experiments.study.plan import StudyPlan
from experiments.study.schedule import Job, run_jobs


class StudyRunner:
    """Runs one study: its plan (``StudyPlan``), the jobs by their dependencies (``run_jobs``), then the report.

    Args:
        study: The study config.
    """

    def __init__(self, study: Study) -> None:
        self.study = study
        self.plan = StudyPlan(study)
        self.root = self.plan.root
        self.table = self.root / "results.csv"
        self.figures = self.root / "figures"

    # ----- results --------------------------------------------------------------------------------
    def write_table(self, cells: list[Cell]) -> int:
        """Rebuild ``results.csv`` from the finished cells' results (grid order); return its row count.

        Each row's checkpoint is a path relative to the study's folder (``cells/<cell>/checkpoints/last.ckpt``), so
        the table names nothing of the machine that made it and stays right when the folder moves.
        """
        rows = []
        for cell in cells:
            folder = self.plan.folder(cell)
            if folder.finished():
                result = folder.read_result()
                checkpoint = (folder.path / result["checkpoint"]).resolve().relative_to(self.root.resolve())
                rows.append({**result, "checkpoint": checkpoint.as_posix()})
        write_table(self.table, rows)
        return len(rows)

    def draw(self) -> list[Path]:
        """The report from the results table alone: summary, effects, convergence check, figures; return the files."""
        from experiments.report.paper import paper_rows
        from experiments.report.write import write_report

        return write_report(
            read_table(self.table),
            self.root,
            paper_rows() if self.study.paper_overlay else None,
            self.study.convergence_tolerance,
        )

    def similarity(self) -> str | None:
        """The layer-similarity panel (``cka.csv``, ``experiments.study.similarity``) from the finished bases.

        Returns:
            None, or why a base could not be read (the report is still drawn; the study then stops with it).
        """
        from experiments.study.similarity import SimilarityError, write_similarity

        try:
            write_similarity(self.root, read_table(self.table))
        except SimilarityError as err:
            print(f"layer similarity: FAILED: {err}", flush=True)
            return f"the layer-similarity panel could not be computed: {err}"
        return None

    def log_to_wandb(self, files: list[Path]) -> None:
        """Log the table and the figures as the study's last W&B run (offline unless configured otherwise).

        The results table and every report file are also the run's output artifact ``<study>-results`` (the
        files themselves, small), so the study's report is versioned beside its networks' checkpoints.
        """
        settings = self.study.wandb
        if not settings.enabled:
            return
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        from experiments.report.table import COLUMNS
        from experiments.wandb_setup import prepare_wandb

        rows = read_table(self.table)
        logger = WandbLogger(
            project=settings.project,
            entity=settings.entity,
            group=self.plan.group,
            name=f"{self.study.name}-results",
            job_type="results",
            offline=settings.offline,
            save_dir=str(self.root),
            id=self.plan.folders.wandb_id("results"),
            resume="allow",
        )
        prepare_wandb(logger)
        logger.log_table("results", columns=list(COLUMNS), data=[[row[c] for c in COLUMNS] for row in rows])
        for path in files:
            if path.suffix == ".png":
                logger.log_image(f"figures/{path.stem}", images=[str(path)])
        artifact = wandb.Artifact(f"{self.study.name}-results", type="study-results")
        for path in [self.table, *files]:
            artifact.add_file(str(path), name=str(path.relative_to(self.root)))
        logger.experiment.log_artifact(artifact)
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
        cells = self.plan.cells()
        self.plan.write_study_file()  # study.json, before the cells' configs name their W&B runs
        try:
            pending = self.plan.prepare(cells)
        finally:
            self.write_table(cells)
        done = len(cells) - len(pending)
        resumed = sum(self.plan.folder(cell).started() for cell in pending)
        print(
            f"study {self.study.name}: {len(cells)} cells in {self.root}, {done} finished, {len(pending)} to run "
            f"({resumed} to resume), launcher {self.study.launcher}",
            flush=True,
        )
        if plan_only:
            for cell in cells:
                folder = self.plan.folder(cell)
                state = "finished" if folder.finished() else "resume" if folder.started() else "todo"
                print(f"  {state:8} {cell.name:32} {cell.describe()}")
            return
        failures = self._run_pending(cells, pending)
        if failures is None:  # handed to SLURM: a later run of the same command writes the report
            print(
                f"study {self.study.name}: jobs submitted to SLURM; run the same command again to see which cells "
                "are done and, once all are, to write the table and figures",
                flush=True,
            )
            return
        self.write_table(cells)
        similarity = self.similarity()
        files = self.draw()
        self.log_to_wandb(files)
        convergence = self.root / "convergence.txt"
        if convergence.is_file():
            print(convergence.read_text().rstrip(), flush=True)
        print(f"results: {self.table}; effects: {self.root / 'effects.md'}; figures: {self.figures}", flush=True)
        if failures:
            raise StudyError(
                f"{len(failures)} cell(s) did not finish (the others are in {self.table}):\n- " + "\n- ".join(failures)
            )
        if similarity:
            raise StudyError(similarity)

    def _run_pending(self, cells: list[Cell], pending: list[Cell]) -> list[str] | None:
        """Run the pending cells' jobs; the failures (None: the jobs were handed to SLURM, which runs them)."""
        jobs = self.plan.plan_jobs(pending)
        by_name = {cell.name: cell for cell in cells}
        failures: list[str] = []
        progress = _Progress(len(pending))
        fused = sum(len(job.cells) > 1 for job in jobs)
        print(f"{len(jobs)} job(s) ({fused} fused group(s)) with launcher {self.study.launcher}", flush=True)

        def ended(job: Job, error: BaseException | None) -> None:
            for name in job.cells:
                cell = by_name[name]
                if error is None:
                    progress.done(cell, self.plan.folder(cell).read_result())
                else:
                    where = self.plan.folder(cell).error if len(job.cells) == 1 else job.folder / "error.txt"
                    failures.append(f"{cell.name}: {type(error).__name__}: {error} (see {where})")
                    progress.failed(cell, error)
            self.write_table(cells)

        def skipped(job: Job, need: str) -> None:
            for name in job.cells:
                failures.append(f"{name}: not run, its base {need} did not finish")
                progress.skip()

        def starting(job: Job) -> None:
            if len(job.cells) > 1:
                print(
                    f"fused: training {len(job.cells)} cells on one data stream ({', '.join(job.cells)}) ...",
                    flush=True,
                )
            elif self.study.launcher in ("inprocess", "subprocess"):
                progress.start(by_name[job.cells[0]])

        launcher = make_launcher(
            self.study.launcher,
            gpus=self.study.gpus,
            slurm=self.study.slurm,
            log_folder=self.root / "submitit",
            cpu_workers=self.study.cpu_workers,
        )
        if not run_jobs(jobs, launcher, ended, skipped, on_start=starting):
            return None
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
        print(
            f"[{self.count}/{self.total}] {cell.name} done in {result['wall_time_s']:.1f} s{resumed}: "
            f"top-1 {result['top1']:.4f}, paper metric {result[METRIC]:.4f} | {self._times()}",
            flush=True,
        )

    def failed(self, cell: Cell, error: BaseException) -> None:
        self.count += 1
        print(
            f"[{self.count}/{self.total}] {cell.name} FAILED: {type(error).__name__}: {error} | {self._times()}",
            flush=True,
        )

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


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM: leave through the ``finally`` blocks (the launcher terminates the jobs it started) with 128 + 15."""
    raise SystemExit(128 + signum)


def main(args: Sequence[str] | None = None) -> None:
    """The ``transferability-study`` command (run by ``experiments.entry``).

    Raises:
        SettingError: a study setting out of range.
    """
    parser = build_parser()
    config = parser.parse_args(args)
    try:
        study = study_from_config(parser, config)
    except ValueError as err:  # a setting out of range (Study.__post_init__), named in the message
        raise SettingError(str(err)) from err
    if study.wandb.offline:
        os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    runner = StudyRunner(study)
    signal.signal(signal.SIGTERM, _stop)  # `kill`, SLURM's scancel: stop like Ctrl-C, the launcher's jobs too
    try:
        if config.figures_only:
            for path in runner.draw():
                print(path)
            return
        if study.launcher == "inprocess" or config.plan:  # --plan renders every cell's config in this process
            _quiet_lightning()
        runner.run(plan_only=config.plan)
    except (StudyError, TableError, CellError) as err:
        sys.exit(f"transferability-study: error: {err}")
    except SystemExit as stop:  # Lightning turns Ctrl-C into exit 1 and SIGTERM into exit 0 inside a fit
        print(
            f"transferability-study: interrupted. Finished cells are kept in {runner.root}; run the same "
            "command again to resume",
            file=sys.stderr,
        )
        sys.exit(stop.code or 1)


if __name__ == "__main__":
    from experiments.entry import study as _study

    sys.exit(_study())
