"""The whole report of a study from its results table, in one call: summary, effects, convergence, figures."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from experiments.report import cka_table, figures
from experiments.report.claims import PAPER_STAGES
from experiments.report.convergence import TOLERANCE, Convergence, check, write_convergence
from experiments.report.effects import effects
from experiments.report.effects_table import write_effects
from experiments.report.summary import SUMMARY_FIELDS, write_summary
from experiments.report.table import Points, Row
from models.files import write_atomic


def write_report(
    rows: list[Row],
    folder: Path,
    paper: Sequence[Row] | None = None,
    tolerance: float = TOLERANCE,
    stages: int = PAPER_STAGES,
) -> list[Path]:
    """Write the report of ``rows`` into ``folder``; return the files written.

    ``summary.csv`` (every plotted point with its 95 % interval), ``effects.csv`` and ``effects.md``
    (the paper's claims with intervals and verdicts, the paper's value beside each for an ImageNet
    study or where ``paper`` is given), ``convergence.json`` and ``convergence.txt``, and
    ``figures/figure2.{png,svg}``, ``figures/figure3.{png,svg}`` (each captioned with the convergence status).
    Where the study folder holds the layer-similarity panel (``cka.csv``, ``experiments.study.similarity``),
    Figure 2 draws it as a third panel with its chance baseline, and ``summary.csv`` gets its rows (panel ``cka``,
    one per layer n for CKA(A, B) and, where the table has it, one per layer n for the chance baseline).

    Args:
        rows: The study's results table (``experiments.report.table.read_table``).
        folder: The study's folder.
        paper: The paper's rows to overlay and compare with (``experiments.report.paper.paper_rows()``), or None.
        tolerance: The convergence check's tau (a fraction of top-1), against which the verdicts are read.
        stages: The study network's transferable stages, where the effects' layer ranges are placed
            (``experiments.report.claims.ClaimStages``; CaffeNet: 7).
    """
    folder.mkdir(parents=True, exist_ok=True)
    convergence = check(rows, tolerance)
    similarity = read_similarity(folder / "cka.csv")
    written = figures.draw(rows, folder / "figures", paper, convergence.note(), *similarity_panel(similarity))
    return written + write_tables(rows, folder, convergence, paper, similarity, stages)


def read_similarity(path: Path) -> list[Row] | None:
    """A study's layer-similarity table (its folder's ``cka.csv``), or None where there is none."""
    return cka_table.read_cka_table(path) if path.is_file() else None


def similarity_panel(similarity: list[Row] | None) -> tuple[Points | None, Points | None]:
    """Figure 2's layer-similarity panel and its chance baseline from the table (None, None: no panel)."""
    if not similarity:
        return None, None
    return cka_table.cka_points(similarity), cka_table.chance_points(similarity) or None


def write_tables(
    rows: list[Row],
    folder: Path,
    convergence: Convergence,
    paper: Sequence[Row] | None = None,
    similarity: list[Row] | None = None,
    stages: int = PAPER_STAGES,
) -> list[Path]:
    """The report's text files in ``folder``: ``summary.csv`` (with the similarity rows, where given), effects (their
    ranges placed for a network of ``stages`` transferable stages) and convergence; return them."""
    written = []
    write_summary(folder / "summary.csv", rows, convergence.status)
    if similarity:
        _append_summary(folder / "summary.csv", cka_table.summary_rows(similarity), convergence.status)
        written.append(folder / "cka.csv")
    written.append(folder / "summary.csv")
    written += write_effects(folder, effects(rows, paper, convergence, stages), convergence, stages)
    written += write_convergence(folder, convergence)
    return written


def _append_summary(path: Path, rows: list[Row], convergence: str) -> None:
    """Add ``rows`` (``SUMMARY_FIELDS``; None as empty; the study's convergence status) to the summary ``path``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    writer.writerows(
        {key: "" if row.get(key) is None else row[key] for key in SUMMARY_FIELDS} | {"convergence": convergence}
        for row in rows
    )
    write_atomic(path, path.read_text() + buffer.getvalue())
