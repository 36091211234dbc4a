"""The whole report of a study from its results table, in one call: summary, effects, convergence, figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from experiments.report import figures
from experiments.report.convergence import check, write_convergence
from experiments.report.effects import effects, write_effects
from experiments.report.table import Row, write_summary


def write_report(rows: list[Row], folder: Path, paper: Sequence[Row] | None = None) -> list[Path]:
    """Write the report of ``rows`` into ``folder``; return the files written.

    ``summary.csv`` (every plotted point with its 95 % interval), ``effects.csv`` and ``effects.md``
    (the paper's claims with intervals and verdicts, the paper's value beside each for an ImageNet
    study or where ``paper`` is given), ``convergence.json`` and ``convergence.txt``, and
    ``figures/figure2.{png,svg}``, ``figures/figure3.{png,svg}`` (noted where the convergence check failed).

    Args:
        rows: The study's results table (``experiments.report.table.read_table``).
        folder: The study's folder.
        paper: The paper's rows to overlay and compare with (``experiments.report.paper.paper_rows()``), or None.
    """
    folder.mkdir(parents=True, exist_ok=True)
    convergence = check(rows)
    written = figures.draw(rows, folder / "figures", paper, convergence.note())
    write_summary(folder / "summary.csv", rows)
    written.append(folder / "summary.csv")
    written += write_effects(folder, effects(rows, paper))
    written += write_convergence(folder, convergence)
    return written
