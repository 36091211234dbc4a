"""The effects table: the paper's claims as estimates with 95 % intervals and verdicts, from a results table.

Every row is a difference of top-1 accuracy (the paper's metric), left minus right:

- **co-adaptation dip**: BnB(n) - base, n = 3..5 pooled and each n; the paper: negative.
- **specificity**: AnB(n) - BnB(n) at n = 6 and 7; the paper: negative.
- **lasting boost**: AnB+ - base and AnB+ - BnB+, pooled over n = 1..7, 3..7 and 5..7 (Table 1);
  the paper: positive.
- **dissimilar split**: (AnB - its base) on the dissimilar split minus (AnB - its base) on the random
  splits, pooled over their shared n and each n (the combined figure's top-left against Figure 2);
  the paper: negative (a dissimilar base task transfers worse).
- **random features**: (random frozen features - their base) minus (AnB - its base) on the random
  splits, pooled and each n; the paper: negative.

"base" is the base network of the same replicate ``(split, target half, seed)``; the unpaired
estimate uses every Figure-2 target base (:func:`experiments.report.curves.figure2_target_bases`),
as the paper's 0.6251. A row is estimated (``pairing="auto"``):

- **paired** where at least two units have both sides. Per unit, the mean over the row's n (where both
  sides have that n) of left - right; the estimate is the mean of these per-unit differences, the
  interval a t-interval over units (df = units - 1). The unit is the replicate for the Figure-2 rows
  (e.g. BnB(n, seed s) - base(target half, seed s)) and the seed for the two cross-panel rows (each
  side's network-minus-its-base averaged over that seed's splits and directions). Averaging over n
  inside a unit first keeps networks that share one base from counting as independent.
- **unpaired** otherwise: the pooled mean of every left network minus the pooled mean of every right
  network, with Welch's interval (networks as independent; pooled over several n, the spread across
  n counts as noise, so the interval is wide). This is how the paper pooled Table 1;
  ``pairing="unpaired"`` reproduces Table 1 from the paper's own runs. In a balanced study (every
  replicate at every n) both estimates are the same number.

Verdict: ``shown`` (the interval excludes zero in the paper's direction), ``not shown`` (it holds
zero), ``reversed`` (it excludes zero in the other direction), ``no interval`` (one unit only).
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

from experiments.report.curves import figure2_target_bases, relative_values, replicate, value
from experiments.report.intervals import Interval, mean_interval, welch_interval
from experiments.report.table import Row, is_random_split
from models.files import write_atomic

Pairing = Literal["auto", "unpaired"]
Verdict = Literal["shown", "not shown", "reversed", "no interval"]
# (unit, n) -> values; n None: a reference that holds at every n (a base network)
Side = dict[tuple[Hashable, int | None], list[float]]
FIELDS: tuple[str, ...] = ("claim", "contrast", "layers", "direction", "estimate", "ci_low", "ci_high", "count",
                           "method", "verdict", "paper_estimate")


@dataclass(frozen=True)
class Effect:
    """One row to estimate.

    Args:
        claim: The paper's claim, e.g. ``co-adaptation dip``.
        contrast: Left minus right, one of ``CONTRASTS``.
        layers: The n pooled over.
        sign: The paper's direction: -1 (left below right) or +1.
    """

    claim: str
    contrast: str
    layers: tuple[int, ...]
    sign: Literal[-1, 1]

    @property
    def label(self) -> str:
        """The layers as text: ``3-5``, ``7`` or ``1,3,5,7``."""
        first, last = self.layers[0], self.layers[-1]
        if len(self.layers) > 1 and self.layers == tuple(range(first, last + 1)):
            return f"{first}-{last}"
        return ",".join(map(str, self.layers))


@dataclass(frozen=True)
class EffectRow:
    """An estimated effect: its interval, how it was computed, the verdict and the paper's value."""

    effect: Effect
    interval: Interval
    method: str
    verdict: Verdict
    paper: float | None = None


def _family(name: str) -> Callable[[list[Row]], Side]:
    def side(rows: list[Row]) -> Side:
        values: Side = defaultdict(list)
        for row in rows:
            if is_random_split(row["split"]) and row["family"] == name and value(row) is not None:
                values[replicate(row), row["n"]].append(value(row))
        return values
    return side


def _bases(rows: list[Row]) -> Side:
    return {(replicate(row), None): [value(row)] for row in figure2_target_bases(rows) if value(row) is not None}


def _relative(curve: str) -> Callable[[list[Row]], Side]:
    def side(rows: list[Row]) -> Side:
        values: Side = defaultdict(list)
        for n, units in relative_values(rows).get(curve, {}).items():
            for unit, difference in units.items():
                if n > 0:
                    values[unit[-1], n].append(difference)  # every unit ends with its seed
        return values
    return side


CONTRASTS: dict[str, tuple[Callable[[list[Row]], Side], Callable[[list[Row]], Side]]] = {
    "BnB - base": (_family("BnB"), _bases),
    "AnB - base": (_family("AnB"), _bases),
    "BnB+ - base": (_family("BnB+"), _bases),
    "AnB - BnB": (_family("AnB"), _family("BnB")),
    "AnB+ - base": (_family("AnB+"), _bases),
    "AnB+ - BnB+": (_family("AnB+"), _family("BnB+")),
    "dissimilar - random split (AnB - base)": (_relative("AnB, dissimilar split"), _relative("AnB, random splits")),
    "random features - AnB (each - base)": (_relative("random features"), _relative("AnB, random splits")),
}


def plan(rows: list[Row]) -> list[Effect]:
    """The effects that ``rows`` hold networks for, in the module docstring's order."""
    def layers(contrast: str, side: int) -> set[int]:
        return {n for _, n in CONTRASTS[contrast][side](rows) if n is not None}

    bnb, anb = layers("BnB - base", 0), layers("AnB - BnB", 0)
    anb_plus, bnb_plus = layers("AnB+ - base", 0), layers("AnB+ - BnB+", 1)
    effects: list[Effect] = []
    dip = sorted(bnb & {3, 4, 5})
    if dip:
        effects += [Effect("co-adaptation dip", "BnB - base", tuple(dip), -1)]
        effects += [Effect("co-adaptation dip", "BnB - base", (n,), -1) for n in dip if len(dip) > 1]
    effects += [Effect("specificity", "AnB - BnB", (n,), -1) for n in sorted(anb & bnb & {6, 7})]
    boosts = [("AnB+ - base", anb_plus)] + ([("AnB+ - BnB+", anb_plus | bnb_plus)] if bnb_plus else [])
    for contrast, present in boosts:
        for low in (1, 3, 5):  # Table 1's ranges
            pooled = tuple(n for n in range(low, 8) if n in present)
            if anb_plus & set(pooled):
                effects.append(Effect("lasting boost", contrast, pooled, 1))
    for claim, contrast in (("dissimilar split", "dissimilar - random split (AnB - base)"),
                            ("random features", "random features - AnB (each - base)")):
        shared = sorted(layers(contrast, 0) & layers(contrast, 1))
        if shared:
            effects.append(Effect(claim, contrast, tuple(shared), -1))
            effects += [Effect(claim, contrast, (n,), -1) for n in shared if len(shared) > 1]
    return list(dict.fromkeys(effects))  # a study with few n can make two Table-1 ranges the same


def unit_differences(effect: Effect, rows: list[Row]) -> dict[Hashable, float]:
    """Per unit (replicate or seed) with both sides, the mean over ``effect.layers`` of left - right."""
    left_side, right_side = (side(rows) for side in CONTRASTS[effect.contrast])
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


def estimate(effect: Effect, rows: list[Row], pairing: Pairing = "auto") -> tuple[Interval, str] | None:
    """The effect's estimate and interval from ``rows``, and how it was computed (module docstring); None: no data."""
    differences = unit_differences(effect, rows)
    if pairing == "auto" and len(differences) >= 2:
        units = "seeds" if len({_context(unit) for unit in differences}) == 1 else "replicates (split, half, seed)"
        return mean_interval(list(differences.values())), f"paired, {len(differences)} {units}"
    left_side, right_side = (side(rows) for side in CONTRASTS[effect.contrast])
    left = [v for (_, n), values in left_side.items() if n in effect.layers for v in values]
    right = [v for (_, n), values in right_side.items() if n is None or n in effect.layers for v in values]
    if not left or not right:
        return None
    return welch_interval(left, right), f"unpaired (Welch), {len(left)} vs {len(right)} networks"


def _context(unit: Hashable) -> Hashable:
    return unit[:-1] if isinstance(unit, tuple) else None


def verdict(interval: Interval, sign: int) -> Verdict:
    """``shown``, ``not shown``, ``reversed`` or ``no interval`` (module docstring)."""
    if not interval.defined:
        return "no interval"
    if sign * interval.low > 0 and sign * interval.high > 0:
        return "shown"
    if sign * interval.low < 0 and sign * interval.high < 0:
        return "reversed"
    return "not shown"


def is_imagenet(rows: Sequence[Row]) -> bool:
    """Whether ``rows`` are an ImageNet study: it has the paper's man-made/natural split."""
    return any(row["split"] == "natman" for row in rows)


def effects(rows: list[Row], paper: Sequence[Row] | None = None, pairing: Pairing = "auto") -> list[EffectRow]:
    """Every effect of :func:`plan`, estimated from ``rows``, with the paper's value beside it.

    Args:
        rows: The study's results table.
        paper: The paper's rows (``experiments.report.paper.paper_rows()``), estimated unpaired as the paper
            pooled; None: the paper's rows for an ImageNet study (:func:`is_imagenet`), no paper column otherwise.
        pairing: ``auto`` (paired where two units have both sides) or ``unpaired`` (the paper's pooling).
    """
    if paper is None and is_imagenet(rows):
        from experiments.report.paper import paper_rows

        paper = paper_rows()
    out = []
    for effect in plan(rows):
        found = estimate(effect, rows, pairing)
        if found is None:
            continue
        interval, method = found
        reference = estimate(effect, list(paper), "unpaired") if paper else None
        out.append(EffectRow(effect, interval, method, verdict(interval, effect.sign),
                             None if reference is None else reference[0].estimate))
    return out


def _record(row: EffectRow) -> dict[str, object]:
    interval = row.interval
    return {"claim": row.effect.claim, "contrast": row.effect.contrast, "layers": row.effect.label,
            "direction": "negative" if row.effect.sign < 0 else "positive",
            "estimate": round(interval.estimate, 6), "ci_low": csv_number(interval.low),
            "ci_high": csv_number(interval.high), "count": interval.count, "method": row.method,
            "verdict": row.verdict, "paper_estimate": csv_number(row.paper)}


def csv_number(number: float | None) -> float | str:
    """A CSV cell: the number to 6 decimals, empty for None."""
    return "" if number is None else round(number, 6)


def write_effects(folder: Path, rows: list[EffectRow]) -> list[Path]:
    """Write ``effects.csv`` (``FIELDS``, accuracy as fractions) and ``effects.md`` (in points) into ``folder``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_record(row) for row in rows)
    write_atomic(folder / "effects.csv", buffer.getvalue())
    write_atomic(folder / "effects.md", markdown(rows))
    return [folder / "effects.csv", folder / "effects.md"]


def markdown(rows: list[EffectRow]) -> str:
    """The effects as a Markdown table, differences in percentage points of top-1 accuracy."""
    with_paper = any(row.paper is not None for row in rows)
    lines = [
        "# Effects", "",
        "Differences of top-1 accuracy in percentage points, left minus right. 95 % t-intervals over paired "
        "units (networks minus the base of the same half and seed, pooled over n within a unit) or, where fewer "
        "than two units pair, Welch's interval over networks. shown: the interval excludes zero in the paper's "
        "direction; not shown: it holds zero; reversed: it excludes zero the other way.", "",
        "| claim | contrast | n | paper's sign | estimate | 95 % CI | count | method | verdict |"
        + (" paper |" if with_paper else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if with_paper else ""),
    ]
    for row in rows:
        interval = row.interval
        ci = f"{_points(interval.low)} to {_points(interval.high)}" if interval.defined else "n/a (n=1)"
        line = (f"| {row.effect.claim} | {row.effect.contrast} | {row.effect.label} | "
                f"{'-' if row.effect.sign < 0 else '+'} | {_points(interval.estimate)} | {ci} | {interval.count} | "
                f"{row.method} | {row.verdict} |")
        lines.append(line + (f" {_points(row.paper)} |" if with_paper else ""))
    if not rows:
        lines.append("| (no effect has networks on both sides yet) |" + " |" * (8 + with_paper))
    return "\n".join(lines) + "\n"


def _points(number: float | None) -> str:
    return "n/a" if number is None else f"{100 * number:+.2f}"
