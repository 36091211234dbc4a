"""The effects table: the paper's claims as estimates with intervals and verdicts, from a results table.

Every row is a difference of top-1 accuracy (the paper's metric), left minus right:

- **co-adaptation dip**: BnB(n) - base, n = 3..5 pooled and each n; the paper: negative.
- **specificity**: AnB(n) - BnB(n) at n = 6 and 7; the paper: negative.
- **lasting boost**: AnB+ - base and AnB+ - BnB+, pooled over the n run within 1..7, 3..7 and 5..7 (Table 1's
  ranges; the label lists the n actually pooled); the paper: positive.

These ranges are the paper's for its 7 layers (CaffeNet's transferable stages). For a network with S transferable
stages they are read from the top (:class:`ClaimStages`): the dip at 3..S-2, specificity at S-1 and S, the boosts
over 1..S, 3..S and S-2..S; S = 7 gives the paper's ranges.
- **dissimilar split**: (AnB - its base) on the dissimilar split minus (AnB - its base) on the random
  splits, pooled over their shared n and each n; the paper: negative (a dissimilar base task transfers worse).
- **random features**: (random frozen features - their base) minus (AnB - its base) on the random
  splits, pooled and each n; the paper: negative.

A study with a pretrained base (``experiments.study.grid.PretrainedCells``) gets the Figure-2 rows (dip,
specificity, boost) a second time for it, marked ``(A: pretrained weights)``: there A is the data the weights file
was trained on (e.g. ImageNet), not a half, and B the target data; "base" is B's own network trained from scratch.

**One estimator, fixed by the design: the paired t-interval over units.** The unit is the replicate
``(split, target half, seed)`` for the Figure-2 rows ("base" is the base network of the same replicate) and
the seed for the two cross-panel rows (each side's network-minus-its-base averaged over that seed's splits
and directions). Per unit, the mean over the row's n (where both sides have that n) of left - right; the
estimate is the mean of these per-unit differences and the interval a t-interval over units (df = units - 1).
n is never a replicate: averaging over n happens inside a unit. A row with one unit has no interval
(``no interval (1 seed)``); networks of the row without a partner are counted in its ``method``, never
silently dropped.

**Multiplicity**: Holm's step-down procedure over every row of one report that has an interval (the
family): each row's two-sided t-test of zero gets Holm's adjusted p-value, and its *adjusted interval* is
its t-interval at the level Holm tested it at (``1 - 0.05 / (m - rank + 1)``). Verdict: ``shown`` (Holm
rejects zero and the estimate has the paper's sign), ``reversed`` (rejects, the other sign), ``not shown``
(Holm does not reject), ``no interval (1 seed)``. Then, as read against the convergence check
(``experiments.report.convergence``): the dip and the boost need converged networks, and read
``not interpretable: not converged (...)`` (or ``... convergence unchecked``) unless the study passed; a
shown or reversed effect smaller than twice the check's tolerance tau is marked ``within the convergence
tolerance``.

The paper's value beside a row (ImageNet studies) is the paper's own pooling: the mean of every left network
minus the mean of every right network at the row's n (:func:`pooled_difference`), as Table 1 was computed.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from experiments.report.convergence import Convergence
from experiments.report.curves import (
    COMPARISONS,
    Comparison,
    figure2_rows,
    figure2_target_bases,
    relative_values,
    replicate,
    value,
)
from experiments.report.intervals import LEVEL, Interval, holm, mean_interval, p_value
from experiments.report.table import Row
from models.files import write_atomic

Test = Literal["shown", "not shown", "reversed", "no interval (1 seed)"]
# (unit, n) -> values; n None: a reference that holds at every n (a base network)
Side = dict[tuple[Hashable, int | None], list[float]]
PAPER_STAGES = 7  # the paper's transferable layers (CaffeNet conv1..fc7), where its ranges are stated
ALPHA = 1.0 - LEVEL  # the family-wise error rate Holm controls over one report's rows
NEEDS_CONVERGENCE: tuple[str, ...] = ("co-adaptation dip", "lasting boost")
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


@dataclass(frozen=True)
class Effect:
    """One row to estimate.

    Args:
        claim: The paper's claim, e.g. ``co-adaptation dip``.
        contrast: Left minus right, one of ``CONTRASTS``.
        layers: The n pooled over (within each unit).
        sign: The paper's direction: -1 (left below right) or +1.
        comparison: Which Figure-2 networks (``experiments.report.curves.COMPARISONS``): the random splits', or a
            pretrained base's (A: its pretraining data).
    """

    claim: str
    contrast: str
    layers: tuple[int, ...]
    sign: Literal[-1, 1]
    comparison: Comparison = "random"

    @property
    def title(self) -> str:
        """The claim as the table prints it: marked where A is a pretrained weights file's data, not a half."""
        return self.claim + (" (A: pretrained weights)" if self.comparison == "pretrained" else "")

    @property
    def label(self) -> str:
        """The n actually pooled, as text: ``3-5`` for a run of consecutive n, else ``1,3,5,7``."""
        first, last = self.layers[0], self.layers[-1]
        if len(self.layers) > 1 and self.layers == tuple(range(first, last + 1)):
            return f"{first}-{last}"
        return ",".join(map(str, self.layers))


@dataclass(frozen=True)
class EffectRow:
    """An estimated effect.

    Args:
        effect: What was estimated.
        interval: The estimate and its unadjusted 95 % t-interval over ``interval.count`` units.
        method: How: the estimator, its units and any network left without a partner.
        test: Holm's verdict on the interval alone (module docstring).
        verdict: ``test`` as read against the convergence check and its tolerance.
        p: The unadjusted two-sided p-value (None: one unit).
        p_holm: Holm's adjusted p-value over the report's rows (None: one unit).
        adjusted: The interval at Holm's level (None: one unit).
        adjusted_level: That level, ``1 - 0.05 / (m - rank + 1)``.
        paper: The paper's value at the same n (its own pooling), or None.
    """

    effect: Effect
    interval: Interval
    method: str
    test: Test
    verdict: str
    p: float | None = None
    p_holm: float | None = None
    adjusted: Interval | None = None
    adjusted_level: float | None = None
    paper: float | None = None


SideOf = Callable[[list[Row], Comparison], Side]


def _family(name: str) -> SideOf:
    def side(rows: list[Row], comparison: Comparison) -> Side:
        values: Side = defaultdict(list)
        for row in figure2_rows(rows, comparison):
            if row["family"] == name and (metric := value(row)) is not None:
                values[replicate(row), row["n"]].append(metric)
        return values

    return side


def _bases(rows: list[Row], comparison: Comparison) -> Side:
    return {
        (replicate(row), None): [metric]
        for row in figure2_target_bases(rows, comparison)
        if (metric := value(row)) is not None
    }


def _relative(curve: str) -> SideOf:
    def side(rows: list[Row], comparison: Comparison) -> Side:
        values: Side = defaultdict(list)
        for n, units in relative_values(rows).get(curve, {}).items():
            for unit, difference in units.items():
                if n > 0:
                    values[unit[-1], n].append(difference)  # every unit ends with its seed
        return values

    return side


CONTRASTS: dict[str, tuple[SideOf, SideOf]] = {
    "BnB - base": (_family("BnB"), _bases),
    "AnB - base": (_family("AnB"), _bases),
    "BnB+ - base": (_family("BnB+"), _bases),
    "AnB - BnB": (_family("AnB"), _family("BnB")),
    "AnB+ - base": (_family("AnB+"), _bases),
    "AnB+ - BnB+": (_family("AnB+"), _family("BnB+")),
    "dissimilar - random split (AnB - base)": (_relative("AnB, dissimilar split"), _relative("AnB, random splits")),
    "random features - AnB (each - base)": (_relative("random features"), _relative("AnB, random splits")),
}
CROSS_PANEL: tuple[tuple[str, str], ...] = (
    ("dissimilar split", "dissimilar - random split (AnB - base)"),
    ("random features", "random features - AnB (each - base)"),
)


def sides(effect: Effect, rows: list[Row]) -> tuple[Side, Side]:
    """The left and right side of ``effect``'s contrast in ``rows`` (its comparison's networks)."""
    left, right = CONTRASTS[effect.contrast]
    return left(rows, effect.comparison), right(rows, effect.comparison)


@dataclass(frozen=True)
class ClaimStages:
    """The n each of the paper's layer-range claims pools, for a network with ``stages`` transferable stages.

    The paper's ranges for its 7 layers, counted from the top so that they carry over to any depth: the dip in
    the middle, stages 3..S-2 (the paper: 3..5); specificity at the top two, S-1 and S (6 and 7); Table 1's boosts
    from the bottom, from stage 3 and over the top three, each up to S (1..7, 3..7, 5..7).

    Args:
        stages: S, the network's transferable stages (``models.transfer.max_depth``; CaffeNet: 7).
    """

    stages: int = PAPER_STAGES

    def __post_init__(self) -> None:
        if self.stages < 1:
            raise ValueError(f"stages must be at least 1 (a network's transferable stages), got {self.stages}")

    @property
    def dip(self) -> tuple[int, ...]:
        """The middle: stages 3..S-2."""
        return tuple(range(3, self.stages - 1))

    @property
    def specificity(self) -> tuple[int, ...]:
        """The top two stages."""
        return tuple(n for n in (self.stages - 1, self.stages) if n >= 1)

    @property
    def boost_starts(self) -> tuple[int, ...]:
        """Where Table 1's boost ranges start (each ends at S): the bottom, stage 3, the top three."""
        return tuple(sorted({n for n in (1, 3, self.stages - 2) if 1 <= n <= self.stages}))

    def check(self, rows: Sequence[Row]) -> None:
        """Refuse a table with a transfer deeper than S: the ranges would be another network's.

        Raises:
            ValueError: A row's n is above ``stages``.
        """
        deepest = max((row["n"] for row in rows if row["n"] is not None), default=0)
        if deepest > self.stages:
            raise ValueError(
                f"the results table has transfers at n = {deepest}, deeper than stages={self.stages}: pass the "
                f"network's number of transferable stages (models.transfer.max_depth of its stage names), so that "
                f"the effects pool the right stages"
            )


def plan(rows: list[Row], stages: ClaimStages | None = None) -> list[Effect]:
    """The effects that ``rows`` hold networks for, in the module docstring's order (a pretrained base's after).

    Args:
        rows: The study's results table.
        stages: The claims' ranges for the study's network (None: the paper's 7 stages).
    """
    stages = stages or ClaimStages()
    stages.check(rows)
    effects: list[Effect] = []
    for comparison in COMPARISONS:
        effects += _figure2_effects(rows, comparison, stages)
        if comparison == "random":
            effects += _cross_panel_effects(rows)
    return list(dict.fromkeys(effects))  # a study with few n can make two Table-1 ranges the same


def _figure2_effects(rows: list[Row], comparison: Comparison, stages: ClaimStages) -> list[Effect]:
    """The dip, specificity and boost rows of one comparison's networks, over ``stages``' ranges."""

    def layers(contrast: str, side: int) -> set[int]:
        return {n for _, n in CONTRASTS[contrast][side](rows, comparison) if n is not None}

    bnb, anb = layers("BnB - base", 0), layers("AnB - BnB", 0)
    anb_plus, bnb_plus = layers("AnB+ - base", 0), layers("AnB+ - BnB+", 1)
    effects: list[Effect] = []
    dip = sorted(bnb & set(stages.dip))
    if dip:
        effects += [Effect("co-adaptation dip", "BnB - base", tuple(dip), -1, comparison)]
        effects += [Effect("co-adaptation dip", "BnB - base", (n,), -1, comparison) for n in dip if len(dip) > 1]
    top = sorted(anb & bnb & set(stages.specificity))
    effects += [Effect("specificity", "AnB - BnB", (n,), -1, comparison) for n in top]
    boosts = [("AnB+ - base", anb_plus)] + ([("AnB+ - BnB+", anb_plus | bnb_plus)] if bnb_plus else [])
    for contrast, present in boosts:
        for low in stages.boost_starts:  # Table 1's ranges
            pooled = tuple(n for n in range(low, stages.stages + 1) if n in present)
            if anb_plus & set(pooled):
                effects.append(Effect("lasting boost", contrast, pooled, 1, comparison))
    return effects


def _cross_panel_effects(rows: list[Row]) -> list[Effect]:
    """The dissimilar-split and random-features rows (the random splits' AnB against another panel's curve)."""
    effects: list[Effect] = []
    for claim, contrast in CROSS_PANEL:
        left, right = (side(rows, "random") for side in CONTRASTS[contrast])
        shared = sorted({n for _, n in left if n is not None} & {n for _, n in right if n is not None})
        if shared:
            effects.append(Effect(claim, contrast, tuple(shared), -1))
            effects += [Effect(claim, contrast, (n,), -1) for n in shared if len(shared) > 1]
    return effects


def unit_differences(effect: Effect, rows: list[Row]) -> dict[Hashable, float]:
    """Per unit (replicate or seed) with both sides, the mean over ``effect.layers`` of left - right."""
    left_side, right_side = sides(effect, rows)
    differences: dict[Hashable, float] = {}
    for unit in dict.fromkeys(unit for unit, n in left_side if n in effect.layers):
        per_n = []
        for n in effect.layers:
            right = right_side.get((unit, n)) or right_side.get((unit, None))
            if (unit, n) in left_side and right:
                per_n.append(statistics.fmean(left_side[unit, n]) - statistics.fmean(right))
        if per_n:
            differences[unit] = statistics.fmean(per_n)
    return differences


def unpaired_count(effect: Effect, rows: list[Row]) -> int:
    """How many of the row's left-side networks (at its n) have no right-side partner in their unit."""
    left_side, right_side = sides(effect, rows)
    return sum(
        len(values)
        for (unit, n), values in left_side.items()
        if n in effect.layers and not (right_side.get((unit, n)) or right_side.get((unit, None)))
    )


def estimate(effect: Effect, rows: list[Row]) -> tuple[list[float], str] | None:
    """The per-unit differences of ``effect`` in ``rows`` and the method line; None: no unit has both sides."""
    differences = unit_differences(effect, rows)
    if not differences:
        return None
    count = len(differences)
    units = (
        ("seed" if count == 1 else "seeds")
        if len({_context(unit) for unit in differences}) == 1
        else "replicates (split, half, seed)"
    )
    method = f"paired t over {count} {units}"
    missing = unpaired_count(effect, rows)
    if missing:
        method += f"; {missing} network(s) without a partner not used"
    return list(differences.values()), method


def pooled_difference(effect: Effect, rows: Sequence[Row]) -> float | None:
    """The paper's pooling: the mean of every left network minus the mean of every right network at the row's n."""
    left_side, right_side = sides(effect, list(rows))
    left = [v for (_, n), values in left_side.items() if n in effect.layers for v in values]
    right = [v for (_, n), values in right_side.items() if n is None or n in effect.layers for v in values]
    return statistics.fmean(left) - statistics.fmean(right) if left and right else None


def _context(unit: Hashable) -> Hashable:
    return unit[:-1] if isinstance(unit, tuple) else None


def decide(interval: Interval, rejected: bool, sign: int) -> Test:
    """``shown``, ``reversed``, ``not shown`` or ``no interval (1 seed)`` (module docstring)."""
    if not interval.defined:
        return "no interval (1 seed)"
    if not rejected:
        return "not shown"
    return "shown" if sign * interval.estimate > 0 else "reversed"


def reading(effect: Effect, interval: Interval, outcome: Test, convergence: Convergence | None) -> str:
    """The verdict as read against the convergence check: not interpretable where the claim needs converged
    networks and the study did not pass; within the tolerance where a shown effect is under twice tau."""
    if convergence is not None and effect.claim in NEEDS_CONVERGENCE and not convergence.converged:
        why = "not converged" if convergence.status == "not converged" else "convergence unchecked"
        return f"not interpretable: {why} ({outcome})"
    small = abs(interval.estimate) < 2 * convergence.tolerance if convergence is not None else False
    if outcome in ("shown", "reversed") and small:
        return f"{outcome}, within the convergence tolerance"
    return outcome


def is_imagenet(rows: Sequence[Row]) -> bool:
    """Whether ``rows`` are an ImageNet study: it has the paper's man-made/natural split."""
    return any(row["split"] == "natman" for row in rows)


def effects(
    rows: list[Row],
    paper: Sequence[Row] | None = None,
    convergence: Convergence | None = None,
    stages: int = PAPER_STAGES,
) -> list[EffectRow]:
    """Every effect of :func:`plan`, estimated from ``rows`` with Holm over the rows, with the paper's value.

    Args:
        rows: The study's results table.
        paper: The paper's rows (``experiments.report.paper.paper_rows()``), pooled as the paper pooled; None:
            the paper's rows for an ImageNet study (:func:`is_imagenet`), no paper column otherwise.
        convergence: The study's convergence check; None: verdicts are not read against it.
        stages: The study network's transferable stages, which place the claims' ranges (:class:`ClaimStages`).

    Raises:
        ValueError: ``rows`` hold a transfer deeper than ``stages``.
    """
    if paper is None and is_imagenet(rows):
        from experiments.report.paper import paper_rows

        paper = paper_rows()
    estimates = [(effect, estimate(effect, rows)) for effect in plan(rows, ClaimStages(stages))]
    found = [(effect, result) for effect, result in estimates if result is not None]
    p_values = [p_value(differences) for _, (differences, _) in found]
    family = sum(p is not None for p in p_values)
    out = []
    for (effect, (differences, method)), p, step in zip(found, p_values, holm(p_values)):
        interval = mean_interval(differences)
        adjusted = mean_interval(differences, step.level) if step is not None else None
        outcome = decide(interval, step is not None and step.adjusted_p <= ALPHA, effect.sign)
        reference = pooled_difference(effect, paper) if paper else None
        out.append(
            EffectRow(
                effect,
                interval,
                method + (f"; Holm over {family} row(s)" if p is not None else ""),
                outcome,
                reading(effect, interval, outcome, convergence),
                p,
                None if step is None else step.adjusted_p,
                adjusted,
                None if step is None else step.level,
                reference,
            )
        )
    return out


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


def write_effects(folder: Path, rows: list[EffectRow], convergence: Convergence | None = None) -> list[Path]:
    """Write ``effects.csv`` (``FIELDS``, accuracy as fractions) and ``effects.md`` (in points) into ``folder``."""
    status = "not checked" if convergence is None else convergence.status
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_record(row, status) for row in rows)
    write_atomic(folder / "effects.csv", buffer.getvalue())
    write_atomic(folder / "effects.md", markdown(rows, convergence))
    return [folder / "effects.csv", folder / "effects.md"]


def markdown(rows: list[EffectRow], convergence: Convergence | None = None) -> str:
    """The effects as a Markdown table, differences in percentage points of top-1 accuracy."""
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


def _points(number: float | None) -> str:
    return "n/a" if number is None else f"{100 * number:+.2f}"
