"""A prediction's files: ``scores.csv``, ``scores.md``, ``scores.png``, ``scores.json``; and its W&B table.

``scores.csv`` has exactly the columns ``n,stage,estimator,variant,score,seconds`` (``scores.FIELDS``), one row per
cut point, estimator and variant. ``scores.md`` is the same as a Markdown table, a row per cut point and a column
per estimator and variant. ``scores.png`` draws each estimator's score against n, a line per variant.
``scores.json`` records what the scores were computed from (the inputs and their sha256, the sample, the settings)
and the times. Every file is written atomically (``models.files.write_atomic``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt

from experiments.predict.scores import FIELDS, VARIANTS, ScoreRow
from models.files import write_atomic

WandbMode = Literal["off", "offline", "online"]
CSV_NAME, MARKDOWN_NAME, PLOT_NAME, JSON_NAME = "scores.csv", "scores.md", "scores.png", "scores.json"
WANDB_KEY = "predict/scores"


def csv_text(rows: Sequence[ScoreRow]) -> str:
    """The rows as ``scores.csv`` (scores and seconds as Python writes floats: exact round trips)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    writer.writerows(row.values() for row in rows)
    return buffer.getvalue()


def _columns(rows: Sequence[ScoreRow]) -> list[tuple[str, str]]:
    """The (estimator, variant) pairs present, estimators in their order, variants in ``VARIANTS`` order."""
    estimators = list(dict.fromkeys(row.estimator for row in rows))
    present = {(row.estimator, row.variant) for row in rows}
    return [(name, variant) for name in estimators for variant in VARIANTS if (name, variant) in present]


def markdown(rows: Sequence[ScoreRow], title: str) -> str:
    """A table: a row per cut point (n, stage), a column per estimator and variant, scores to 4 significant digits."""
    columns = _columns(rows)
    scores = {(row.n, row.estimator, row.variant): row.score for row in rows}
    stages = {row.n: row.stage for row in rows}
    lines = [
        f"# {title}",
        "",
        "| n | stage | " + " | ".join(f"{name} {variant}" for name, variant in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for n, stage in sorted(stages.items()):
        cells = [f"{scores[n, name, variant]:.4g}" for name, variant in columns]
        lines.append(f"| {n} | {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[ScoreRow], path: Path, title: str) -> None:
    """``scores.png``: a panel per estimator, its score against n, a line per variant."""
    estimators = list(dict.fromkeys(row.estimator for row in rows))
    stages = dict(sorted((row.n, row.stage) for row in rows))
    figure, axes = plt.subplots(1, len(estimators), figsize=(4.2 * len(estimators), 3.8), squeeze=False)
    for axis, name in zip(axes[0], estimators):
        for variant in VARIANTS:
            points = sorted((row.n, row.score) for row in rows if row.estimator == name and row.variant == variant)
            if points:
                axis.plot(*zip(*points), marker="o", label=variant)
        axis.set_title(name)
        axis.set_xlabel("cut point n (stages 1..n frozen)")
        axis.set_xticks(list(stages), [f"{n}\n{stage}" for n, stage in stages.items()], fontsize=7)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("score (higher: more transferable)")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def write_files(rows: Sequence[ScoreRow], record: Mapping[str, Any], folder: Path, title: str) -> list[Path]:
    """Write the four files into ``folder`` (created); their paths."""
    paths = [folder / name for name in (CSV_NAME, MARKDOWN_NAME, PLOT_NAME, JSON_NAME)]
    write_atomic(paths[0], csv_text(rows))
    write_atomic(paths[1], markdown(rows, title))
    plot(rows, paths[2], title)
    write_atomic(paths[3], json.dumps(record, indent=2, allow_nan=True, default=str) + "\n")
    return paths


def log_wandb(rows: Sequence[ScoreRow], record: Mapping[str, Any], folder: Path, mode: WandbMode, project: str) -> None:
    """Log the rows as a W&B table (and the plot, where written) through a ``WandbLogger`` in ``folder``.

    The run starts through ``experiments.wandb_setup.prepare_wandb``: offline unless ``mode`` is ``online``, and an
    online run whose server cannot be reached falls back to offline instead of waiting for it.
    """
    if mode == "off":
        return
    from lightning.pytorch.loggers import WandbLogger

    from experiments.wandb_setup import prepare_wandb

    logger = WandbLogger(project=project, save_dir=str(folder), offline=mode == "offline", job_type="predict")
    prepare_wandb(logger)
    logger.log_hyperparams({key: value for key, value in record.items() if key in ("inputs", "settings")})
    logger.log_table(WANDB_KEY, columns=list(FIELDS), data=[list(row.values()) for row in rows])
    if (folder / PLOT_NAME).is_file():
        logger.log_image("predict/curves", [str(folder / PLOT_NAME)])
    logger.experiment.summary["wall_time_s"] = record.get("wall_time_s")
    logger.experiment.finish()
