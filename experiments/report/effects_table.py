"""The effects table's files: ``effects.csv`` (accuracy as fractions) and ``effects.md`` (in percentage points).

The rows are estimated, tested and read by :mod:`experiments.report.effects`, from the claims of
:mod:`experiments.report.claims`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from experiments.report.claims import PAPER_STAGES, ClaimStages
from experiments.report.convergence import Convergence
from experiments.report.effects import EffectRow
from models.files import write_atomic

PRETRAINED_NOTE = (
    "Rows marked (A: pretrained weights): A is the data the weights file was trained on (e.g. "
    "ImageNet), not a half of this study's data; B is the target data, base its own network trained "
    "from scratch, BnB and BnB+ copy that base. AnB - base is what the pretrained features give or cost "
    "at n; AnB+ - base the boost of starting from them."
)
FIELDS: tuple[str, ...] = (
    "claim",
    "contrast",
    "layers",
    "direction",
    "estimate",
    "ci_low",
    "ci_high",
    "units",
    "method",
    "p_value",
    "p_holm",
    "adjusted_level",
    "adj_ci_low",
    "adj_ci_high",
    "test",
    "verdict",
    "convergence",
    "paper_estimate",
)


def _record(row: EffectRow, status: str) -> dict[str, object]:
    interval, adjusted = row.interval, row.adjusted
    return {
        "claim": row.effect.title,
        "contrast": row.effect.contrast,
        "layers": row.effect.label,
        "direction": "negative" if row.effect.sign < 0 else "positive",
        "estimate": round(interval.estimate, 6),
        "ci_low": csv_number(interval.low),
        "ci_high": csv_number(interval.high),
        "units": interval.count,
        "method": row.method,
        "p_value": csv_number(row.p),
        "p_holm": csv_number(row.p_holm),
        "adjusted_level": csv_number(row.adjusted_level),
        "adj_ci_low": csv_number(None if adjusted is None else adjusted.low),
        "adj_ci_high": csv_number(None if adjusted is None else adjusted.high),
        "test": row.test,
        "verdict": row.verdict,
        "convergence": status,
        "paper_estimate": csv_number(row.paper),
    }


def csv_number(number: float | None) -> float | str:
    """A CSV cell: the number to 6 decimals, empty for None."""
    return "" if number is None else round(number, 6)


def write_effects(
    folder: Path, rows: list[EffectRow], convergence: Convergence | None = None, stages: int = PAPER_STAGES
) -> list[Path]:
    """Write ``effects.csv`` (``FIELDS``, accuracy as fractions) and ``effects.md`` (in points) into ``folder``;
    ``stages``: the network's transferable stages, which placed the claims' n (said in ``effects.md`` unless 7)."""
    status = "not checked" if convergence is None else convergence.status
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_record(row, status) for row in rows)
    write_atomic(folder / "effects.csv", buffer.getvalue())
    write_atomic(folder / "effects.md", markdown(rows, convergence, stages))
    return [folder / "effects.csv", folder / "effects.md"]


def markdown(rows: list[EffectRow], convergence: Convergence | None = None, stages: int = PAPER_STAGES) -> str:
    """The effects as a Markdown table, differences in percentage points of top-1 accuracy; a network of other than
    the paper's 7 stages gets a line saying where its claims' n were placed."""
    with_paper = any(row.paper is not None for row in rows)
    status = (
        "Convergence: not checked."
        if convergence is None
        else f"Convergence: **{convergence.status}** ({convergence.note()})."
    )
    family = sum(row.p is not None for row in rows)
    lines = [
        "# Effects",
        "",
        status,
        "",
        "Differences of top-1 accuracy in percentage points, left minus right. One estimator for every row: the "
        "paired t-interval over units (a network minus the base of its half and seed, or the partner of its unit; "
        "the n of a row averaged within each unit first, never counted as replicates). 95 % CI: unadjusted; "
        f"adjusted CI and p (Holm): Holm's step-down procedure over the {family} rows with an interval, each "
        "interval at the level Holm tested it at. shown / reversed: Holm rejects zero, in the paper's direction "
        "or the other; not shown: it does not. The dip and the boost need converged networks: unless the "
        "convergence check passed they read 'not interpretable'. An effect under twice the check's tolerance is "
        "'within the convergence tolerance'.",
        "",
        *([stage_note(stages), ""] if stages != PAPER_STAGES else []),
        *([PRETRAINED_NOTE, ""] if any(row.effect.comparison == "pretrained" for row in rows) else []),
        "| claim | contrast | n | paper's sign | estimate | 95 % CI | units | adjusted CI | p (Holm) | verdict |"
        + (" paper |" if with_paper else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if with_paper else ""),
    ]
    for row in rows:
        interval, adjusted = row.interval, row.adjusted
        ci = f"{_points(interval.low)} to {_points(interval.high)}" if interval.defined else "no interval"
        adj = (
            f"{_points(adjusted.low)} to {_points(adjusted.high)}"
            if adjusted is not None and adjusted.defined
            else "no interval"
        )
        p = "n/a" if row.p_holm is None else f"{row.p_holm:.3g}"
        units = f"{interval.count} {'seed' if interval.count == 1 else 'seeds'}"
        line = (
            f"| {row.effect.title} | {row.effect.contrast} | {row.effect.label} | "
            f"{'-' if row.effect.sign < 0 else '+'} | {_points(interval.estimate)} | {ci} | {units} | {adj} | "
            f"{p} | {row.verdict} |"
        )
        lines.append(line + (f" {_points(row.paper)} |" if with_paper else ""))
    if not rows:
        lines.append("| (no effect has networks on both sides yet) |" + " |" * (9 + with_paper))
    return "\n".join(lines) + "\n"


def stage_note(stages: int) -> str:
    """Where the claims' n lie for a network of ``stages`` transferable stages (``claims.ClaimStages``)."""
    claims = ClaimStages(stages)

    def listed(ns: tuple[int, ...]) -> str:
        return ", ".join(map(str, ns)) or "none"

    return (
        f"This network has {stages} transferable stages; the paper's ranges (for its 7 layers) are counted from its "
        f"top: the dip at n = {listed(claims.dip)}, specificity at n = {listed(claims.specificity)}, the boosts from "
        f"n = {listed(claims.boost_starts)} up to {stages}."
    )


def _points(number: float | None) -> str:
    return "n/a" if number is None else f"{100 * number:+.2f}"
