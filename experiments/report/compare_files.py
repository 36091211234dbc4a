"""Two finished studies side by side: the same transfer contrasts at each n, each with its interval, and their
difference with Welch's interval (``transferability-compare``).

The comparison's files and command: ``compare.csv`` (``FIELDS``, accuracy as fractions), ``compare.md``
(:func:`markdown`), ``compare.png`` (:func:`figure`), written by :func:`write_comparison`, and the command line
(:func:`main`). What is compared, and how (the studies, the per-unit values, Welch's intervals and Holm's verdicts):
:mod:`experiments.report.compare`.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from experiments.report.compare import BASE, CKA, Comparison, Study, compare, unit_values
from experiments.report.convergence import TOLERANCE
from experiments.report.effects_table import csv_number
from experiments.report.figures import CKA_COLOR, STYLE, finish, mean_with_interval
from experiments.report.intervals import Interval
from experiments.report.table import TableError
from models.files import write_atomic

FIELDS: tuple[str, ...] = (
    "quantity",
    "contrast",
    "n",
    "left_stage",
    "right_stage",
    "left_mean",
    "left_ci_low",
    "left_ci_high",
    "left_count",
    "right_mean",
    "right_ci_low",
    "right_ci_high",
    "right_count",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "p_value",
    "p_holm",
    "adjusted_level",
    "difference_adj_ci_low",
    "difference_adj_ci_high",
    "verdict",
    "left_convergence",
    "right_convergence",
)


def _record(left: Study, right: Study, row: Comparison) -> dict[str, object]:
    record: dict[str, object] = {
        "quantity": row.quantity,
        "contrast": row.contrast,
        "n": row.n,
        "left_stage": left.stage(row.n),
        "right_stage": right.stage(row.n),
    }
    for side, interval in (("left", row.left), ("right", row.right)):
        record |= {
            f"{side}_mean": csv_number(interval.estimate),
            f"{side}_ci_low": csv_number(interval.low),
            f"{side}_ci_high": csv_number(interval.high),
            f"{side}_count": interval.count,
        }
    difference, adjusted = row.difference, row.adjusted
    return record | {
        "difference": csv_number(difference.estimate),
        "difference_ci_low": csv_number(difference.low),
        "difference_ci_high": csv_number(difference.high),
        "p_value": csv_number(row.p),
        "p_holm": csv_number(row.p_holm),
        "adjusted_level": csv_number(row.adjusted_level),
        "difference_adj_ci_low": csv_number(None if adjusted is None else adjusted.low),
        "difference_adj_ci_high": csv_number(None if adjusted is None else adjusted.high),
        "verdict": row.verdict,
        "left_convergence": left.convergence_status,
        "right_convergence": right.convergence_status,
    }


def _text(number: float | None, contrast: str, signed: bool) -> str:
    if number is None:
        return "n/a"
    if contrast == CKA:
        return f"{number:+.3f}" if signed else f"{number:.3f}"
    return f"{100 * number:+.2f}" if signed else f"{100 * number:.2f}"


def _with_interval(interval: Interval, contrast: str, signed: bool) -> str:
    estimate = _text(interval.estimate, contrast, signed)
    if not interval.defined:
        return f"{estimate} (one unit)"
    return f"{estimate} ({_text(interval.low, contrast, signed)} to {_text(interval.high, contrast, signed)})"


def markdown(left: Study, right: Study, rows: Sequence[Comparison]) -> str:
    """The comparison as a Markdown table: accuracies in percent, differences in points, CKA as is."""
    family = sum(row.p is not None for row in rows)
    lines = [
        f"# {left.label} against {right.label}",
        "",
        f"Convergence: {left.label} **{left.convergence_status}**, {right.label} **{right.convergence_status}** "
        "(experiments.report.convergence; a difference between studies that did not both converge may be a "
        "difference in how far they trained).",
        "",
        "Each study's mean over its units (networks minus the base of their replicate, Figure 3's paired "
        "differences, or seed pairs for CKA) with its 95 % t-interval and unit count, and the difference "
        f"{left.label} - {right.label} with Welch's 95 % interval and, adjusted by Holm's step-down procedure over "
        f"the {family} rows with an interval, its interval at Holm's level and Holm's p. Accuracy in percent (base) "
        "or percentage points; debiased CKA in its own units. differs: Holm rejects a zero difference.",
        "",
    ]
    for study in (left, right):
        if study.cka and not study.debiased_cka:
            lines += [f"{study.label}'s CKA table predates the debiased estimator (biased by width): CKA left out.", ""]
    lines += [
        f"| quantity | contrast | n | stages ({left.label} / {right.label}) | {left.label} | {right.label} | "
        "difference | adjusted (Holm) | p (Holm) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        signed = row.contrast != BASE and row.contrast != CKA
        stages = " / ".join(stage or "-" for stage in (left.stage(row.n), right.stage(row.n))) if row.n else "-"
        lines.append(
            f"| {row.quantity} | {row.contrast} | {row.n} | {stages} | "
            f"{_with_interval(row.left, row.contrast, signed)}, {row.left.count} | "
            f"{_with_interval(row.right, row.contrast, signed)}, {row.right.count} | "
            f"{_with_interval(row.difference, row.contrast, True)} | "
            f"{'n/a' if row.adjusted is None else _with_interval(row.adjusted, row.contrast, True)} | "
            f"{'n/a' if row.p_holm is None else f'{row.p_holm:.3g}'} | {row.verdict} |"
        )
    if not rows:
        lines.append("| (the two studies share no quantity at any n) |" + " |" * 9)
    return "\n".join(lines) + "\n"


PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("frozen: network minus its base", ("BnB - base", "AnB - base")),
    ("fine-tuned: network minus its base", ("BnB+ - base", "AnB+ - base")),
    ("layer similarity of base A and base B", (CKA,)),
)


def figure(left: Study, right: Study) -> Figure:
    """The two studies' transferability curves on shared axes: each contrast of ``PANELS`` with its 95 % interval
    per n, ``left`` solid and ``right`` dashed (CKA panel only where both studies have one)."""
    panels = [panel for panel in PANELS if panel[1] != (CKA,) or (left.debiased_cka and right.debiased_cka)]
    fig = Figure(figsize=(7, 3.6 * len(panels)))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)
    for ax, (title, contrasts) in zip(axes[:, 0], panels):
        for study, linestyle, shift in ((left, "-", -0.06), (right, "--", 0.06)):
            for contrast in contrasts:
                family = contrast.split(" - ")[0]
                color, marker = (
                    (CKA_COLOR, "s") if contrast == CKA else (STYLE[family]["color"], STYLE[family]["marker"])
                )
                name = CKA if contrast == CKA else family
                mean_with_interval(
                    ax,
                    unit_values(study, contrast),
                    color,
                    marker,
                    f"{name}, {study.label}",
                    linestyle=linestyle,
                    shift=shift,
                )
        if contrasts != (CKA,):
            ax.axhline(0.0, color="black", lw=0.8)
        ax.set_title(title, fontsize=10)
        finish(
            ax,
            "stage n (its position in each network's stage list)",
            "debiased linear CKA(A, B)" if contrasts == (CKA,) else "top-1 difference",
        )
    fig.suptitle(
        f"{left.label} (solid, {left.convergence_status}) against {right.label} (dashed, "
        f"{right.convergence_status}): 95% t-intervals over seeds",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def write_comparison(folder: Path, left: Study, right: Study) -> list[Path]:
    """Write ``compare.csv`` (fractions), ``compare.md`` and ``compare.png`` into ``folder``; return their paths."""
    rows = compare(left, right)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_record(left, right, row) for row in rows)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "compare.csv", buffer.getvalue())
    write_atomic(folder / "compare.md", markdown(left, right, rows))
    drawn = figure(left, right)
    drawn.savefig(folder / "compare.png", dpi=150, bbox_inches="tight")
    return [folder / "compare.csv", folder / "compare.md", folder / "compare.png"]


def main(argv: Sequence[str] | None = None) -> int:
    """``transferability-compare LEFT RIGHT``: compare two finished studies' folders; 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="transferability-compare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "left",
        type=Path,
        help="a study's output_dir (with results.csv, and cka.csv if computed), "
        "or a results table (its CKA table beside it: *cka* for *results*)",
    )
    parser.add_argument("right", type=Path, help="the other study, likewise")
    parser.add_argument("--labels", nargs=2, metavar=("LEFT", "RIGHT"), help="names for the two (default: folders)")
    parser.add_argument(
        "--convergence_tolerance",
        type=float,
        default=TOLERANCE,
        help="tau of each study's convergence check, a fraction of top-1 (default 0.005: 0.5 points)",
    )
    parser.add_argument(
        "--output_dir", type=Path, help="write compare.csv, compare.md and compare.png here (default: print the table)"
    )
    args = parser.parse_args(argv)
    labels = args.labels or (None, None)
    try:
        if not 0 < args.convergence_tolerance < 1:
            raise ValueError(
                f"--convergence_tolerance is a fraction of top-1 in (0, 1), got {args.convergence_tolerance}"
            )
        left = Study.read(args.left, labels[0], args.convergence_tolerance)
        right = Study.read(args.right, labels[1], args.convergence_tolerance)
    except (FileNotFoundError, TableError, ValueError) as err:
        print(f"transferability-compare: {err}", file=sys.stderr)
        return 2
    if args.output_dir is None:
        print(markdown(left, right, compare(left, right)), end="")
        return 0
    for path in write_comparison(args.output_dir, left, right):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    from experiments.entry import compare as _compare

    raise SystemExit(_compare())
