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

import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from experiments.errors import SettingError
from experiments.report.table import TableError, read_table
from experiments.study.cells import CellError
from experiments.study.config import Study, build_parser, study_from_config
from experiments.study.errors import StudyError
from experiments.study.grid import Cell
from experiments.study.launchers import make_launcher
from experiments.study.lock import exclusive
from experiments.study.plan import StudyPlan
from experiments.study.progress import Progress
from experiments.study.results import StudyResults
from experiments.study.schedule import Job, run_jobs


class StudyRunner:
    """Runs one study: its plan (``StudyPlan``), the jobs by their dependencies (``run_jobs``), then its results
    (``StudyResults``: the table, the layer-similarity panel, the report, the W&B results run).

    Args:
        study: The study config.
    """

    def __init__(self, study: Study) -> None:
        self.study = study
        self.plan = StudyPlan(study)
        self.results = StudyResults(study, self.plan)
        self.root = self.plan.root
        self.table = self.results.table
        self.figures = self.results.figures

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
            self.results.write_table(cells)
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
        self.results.write_table(cells)
        similarity = self.results.similarity()
        files = self.results.draw()
        self.results.log_to_wandb(files)
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
        progress = Progress(len(pending))
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
            self.results.write_table(cells)

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
            for path in runner.results.draw():
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
