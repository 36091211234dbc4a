"""The effects table's estimates: each claim of :mod:`experiments.report.claims` estimated from a results table, tested
and read against the convergence check (how it is estimated and read).

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

What is estimated: :mod:`experiments.report.claims`; the files the rows are written to:
:mod:`experiments.report.effects_table`.
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

from experiments.report.claims import PAPER_STAGES, ClaimStages, Effect, plan, sides
from experiments.report.convergence import Convergence
from experiments.report.intervals import LEVEL, Interval, holm, mean_interval, p_value
from experiments.report.table import Row

Test = Literal["shown", "not shown", "reversed", "no interval (1 seed)"]
ALPHA = 1.0 - LEVEL  # the family-wise error rate Holm controls over one report's rows
NEEDS_CONVERGENCE: tuple[str, ...] = ("co-adaptation dip", "lasting boost")


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


def effects(
    rows: list[Row],
    paper: Sequence[Row] | None = None,
    convergence: Convergence | None = None,
    stages: int = PAPER_STAGES,
) -> list[EffectRow]:
    """Every effect of :func:`plan`, estimated from ``rows`` with Holm over the rows, with the paper's value.

    Args:
        rows: The study's results table.
        paper: The paper's rows (``experiments.report.paper.paper_rows()``), pooled as the paper pooled and printed
            beside each row; None: no paper column. A study passes them where it sets ``paper_overlay``: they are
            CaffeNet's on ImageNet, so beside another network's n they would compare different stages.
        convergence: The study's convergence check; None: verdicts are not read against it.
        stages: The study network's transferable stages, which place the claims' ranges (:class:`ClaimStages`).

    Raises:
        ValueError: ``rows`` hold a transfer deeper than ``stages``.
    """
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
