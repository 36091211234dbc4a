"""Two finished studies side by side: the same transfer contrasts at each n, each with its interval, and their
difference with Welch's interval (``transferability-compare``).

The question it answers: do one backbone's features transfer as another's do (a ViT's against CaffeNet's, a
study on one dataset against the same study on another)? Every quantity is a per-unit value, as in the
effects table (``experiments.report.effects``): for Figure 2, each network minus the base of its replicate
(split, target half, seed), or AnB minus BnB of the same replicate; for the dissimilar split and random
features, the bottom curves of Figure 3 (``experiments.report.curves.relative_values``); the layer
similarity, each seed pair's CKA(A, B) from the study's ``cka.csv``; and, for studies with the pretrained panel, AnB
and AnB+ from the weights file minus the target's base (rows marked "(A: pretrained weights)"). Within a study the
interval is a t-interval over its units; between studies the networks are independent, so the difference of the two
means gets Welch's t-test and interval over the two studies' units. **Multiplicity**: Holm's step-down procedure over
every row of the comparison with an interval; each row's adjusted interval is its Welch interval at the level Holm
tested it at. Verdict: ``differs`` (Holm rejects a zero difference), ``no difference shown`` (it does not), or
``no interval`` (a side with a single unit). Each study's convergence status
(``experiments.report.convergence``) heads the table: a difference between studies that did not both converge may
be a difference in how far they trained. A CKA table from before the debiased estimator (no chance column) is
biased by width and left out of the comparison.

n is a position in each network's stage list, so the same n can name different stages (CaffeNet's conv3,
a ViT's block2); the stage names are listed where the studies' CKA tables give them.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from experiments.report.cka_table import read_cka_table
from experiments.report.convergence import TOLERANCE, Convergence, check
from experiments.report.curves import Comparison as Networks
from experiments.report.curves import figure2_target_bases, relative_values, value
from experiments.report.effects import Effect, csv_number, unit_differences
from experiments.report.figures import CKA_COLOR, STYLE, finish, mean_with_interval
from experiments.report.intervals import (
    LEVEL,
    Interval,
    holm,
    mean_interval,
    welch_interval,
    welch_p_value,
)
from experiments.report.table import Row, TableError, read_table
from models.files import write_atomic

# (quantity, what each unit contributes at n, whose Figure-2 networks): contrasts of experiments.report.effects on
# the random splits' networks or on a pretrained base's (A: its pretraining data), Figure 3's bottom curves, the
# bases' own accuracy (n = 0) and the layer similarity.
BASE = "base top-1"
CKA = "CKA(A, B)"
RELATIVE = ("AnB, dissimilar split", "random features")  # curves of experiments.report.curves.relative_values
PRETRAINED_MARK = " (A: pretrained weights)"
QUANTITIES: tuple[tuple[str, str, Networks], ...] = (
    ("base", BASE, "random"),
    ("frozen selffer", "BnB - base", "random"),
    ("frozen transfer", "AnB - base", "random"),
    ("specificity", "AnB - BnB", "random"),
    ("fine-tuned selffer", "BnB+ - base", "random"),
    ("fine-tuned transfer", "AnB+ - base", "random"),
    ("transfer against selffer, fine-tuned", "AnB+ - BnB+", "random"),
    ("dissimilar split", "AnB, dissimilar split", "random"),
    ("random features", "random features", "random"),
    ("layer similarity", CKA, "random"),
    ("frozen transfer" + PRETRAINED_MARK, "AnB - base", "pretrained"),
    ("fine-tuned transfer" + PRETRAINED_MARK, "AnB+ - base", "pretrained"),
)
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


@dataclass(frozen=True)
class Study:
    """A finished study's tables: its results and, where computed, its layer-similarity table."""

    label: str
    rows: list[Row]
    cka: list[Row]
    convergence: Convergence | None = None  # None: checked at the default tolerance

    def __post_init__(self) -> None:
        if self.convergence is None:
            object.__setattr__(self, "convergence", check(self.rows))

    @property
    def convergence_status(self) -> str:
        """The convergence check's verdict (``convergence``, which ``__post_init__`` filled in)."""
        if self.convergence is None:
            raise RuntimeError("Study.convergence is unset: __post_init__ did not run")
        return self.convergence.status

    @property
    def debiased_cka(self) -> bool:
        """Whether the CKA table was computed with the debiased estimator (it has the chance column)."""
        return any(row.get("chance") is not None for row in self.cka)

    @classmethod
    def read(cls, where: Path, label: str | None = None, tolerance: float = TOLERANCE) -> Study:
        """The study in ``where``, labelled ``label`` or by its name, with its convergence check at ``tolerance``.

        ``where`` is a study's output folder (its ``results.csv`` and, if there, ``cka.csv``) or a results table
        itself, e.g. ``docs/fmnist_vit_results.csv``, whose CKA table is the file beside it named with ``cka``
        for ``results`` (``docs/fmnist_vit_cka.csv``), if there.

        Raises:
            FileNotFoundError: neither a results table nor a folder with one.
            TableError: a table is unreadable (as ``read_table`` and ``read_cka_table`` say).
        """
        if where.is_file():
            results, name = where, where.stem.removesuffix("results").rstrip("_") or where.parent.name
            cka = where.with_name(where.name.replace("results", "cka")) if "results" in where.name else None
        else:
            results, name, cka = where / "results.csv", where.name, where / "cka.csv"
        if not results.is_file():
            raise FileNotFoundError(
                f"study folder {str(where)!r} has no results.csv: give the output_dir of a "
                "study that has finished at least one cell (transferability-study writes it), "
                "or its results table"
            )
        similarity = read_cka_table(cka) if cka is not None and cka.is_file() else []
        rows = read_table(results)
        return cls(label or name, rows, similarity, check(rows, tolerance))

    def stage(self, n: int) -> str:
        """The name of stage n where the CKA table gives it, else empty."""
        return next((row["stage"] for row in self.cka if row["n"] == n), "")


@dataclass(frozen=True)
class Comparison:
    """One quantity at one n in both studies, and their difference."""

    quantity: str
    contrast: str
    n: int
    left: Interval
    right: Interval
    difference: Interval
    p: float | None = None
    p_holm: float | None = None
    adjusted: Interval | None = None
    adjusted_level: float | None = None

    @property
    def verdict(self) -> str:
        """``differs``, ``no difference shown`` or ``no interval`` (module docstring)."""
        if self.p_holm is None:
            return "no interval"
        return "differs" if self.p_holm <= 1.0 - LEVEL else "no difference shown"


def unit_values(study: Study, contrast: str, networks: Networks = "random") -> dict[int, list[float]]:
    """n -> each unit's value of ``contrast`` in ``study`` (see the module docstring); empty where it has none.

    ``networks`` picks the Figure-2 contrasts' networks: the random splits' or a pretrained base's.
    """
    rows = study.rows
    if contrast == BASE:
        bases = [metric for row in figure2_target_bases(rows) if (metric := value(row)) is not None]
        return {0: bases} if bases else {}
    if contrast == CKA:
        if not study.debiased_cka:
            return {}
        defined = {
            row["n"]: [v for v in row["values"].values() if v is not None and not math.isnan(v)] for row in study.cka
        }
        return {n: values for n, values in defined.items() if values}
    if contrast in RELATIVE:
        curve = relative_values(rows).get(contrast, {})
        return {n: list(units.values()) for n, units in curve.items() if n > 0 and units}
    layers = sorted({row["n"] for row in rows if row["n"] > 0})
    values = {n: list(unit_differences(Effect(contrast, contrast, (n,), 1, networks), rows).values()) for n in layers}
    return {n: found for n, found in values.items() if found}


def compare(left: Study, right: Study) -> list[Comparison]:
    """Every quantity of ``QUANTITIES`` at every n that both studies have values for, in that order, with Holm's
    adjustment over the rows (module docstring)."""
    found = []
    for quantity, contrast, networks in QUANTITIES:
        left_values, right_values = unit_values(left, contrast, networks), unit_values(right, contrast, networks)
        found += [
            (quantity, contrast, n, left_values[n], right_values[n])
            for n in sorted(set(left_values) & set(right_values))
        ]
    p_values = [welch_p_value(ours, theirs) for *_, ours, theirs in found]
    comparisons = []
    for (quantity, contrast, n, ours, theirs), p, step in zip(found, p_values, holm(p_values)):
        comparisons.append(
            Comparison(
                quantity,
                contrast,
                n,
                mean_interval(ours),
                mean_interval(theirs),
                welch_interval(ours, theirs),
                p,
                None if step is None else step.adjusted_p,
                None if step is None else welch_interval(ours, theirs, step.level),
                None if step is None else step.level,
            )
        )
    return comparisons


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
