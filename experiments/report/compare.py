"""Two finished studies compared: the same transfer contrasts at each n, each with its interval, and their
difference with Welch's interval and Holm's verdict (the computation).

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

The comparison's files (``compare.csv``, ``compare.md``, ``compare.png``) and the command ``transferability-compare``:
:mod:`experiments.report.compare_files`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from experiments.report.cka_table import read_cka_table
from experiments.report.claims import Effect
from experiments.report.convergence import TOLERANCE, Convergence, check
from experiments.report.curves import Comparison as Networks
from experiments.report.curves import figure2_target_bases, relative_values, value
from experiments.report.effects import unit_differences
from experiments.report.intervals import (
    LEVEL,
    Interval,
    holm,
    mean_interval,
    welch_interval,
    welch_p_value,
)
from experiments.report.table import Row, read_table

# (quantity, what each unit contributes at n, whose Figure-2 networks): contrasts of experiments.report.claims on
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
