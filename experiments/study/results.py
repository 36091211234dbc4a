"""A study's results from its cell folders: the table, the layer-similarity panel, the report and its W&B run."""

from __future__ import annotations

from pathlib import Path

from experiments.report.table import read_table, write_table
from experiments.study.config import Study
from experiments.study.grid import Cell
from experiments.study.plan import StudyPlan
from models.transfer import max_depth


class StudyResults:
    """What a study's finished cells give: ``results.csv``, ``cka.csv``, the report files and the results W&B run.

    Args:
        study: The study config.
        plan: Its plan (the cells' folders, the W&B group and run ids).
    """

    def __init__(self, study: Study, plan: StudyPlan) -> None:
        self.study = study
        self.plan = plan
        self.root = plan.root
        self.table = self.root / "results.csv"
        self.figures = self.root / "figures"

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
            max_depth(self.plan.shared.network_stage_names()),
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
