"""The curves the figures draw, from a results table: the networks of every panel, grouped by n.

Figure 2 (random A/B splits: the networks, and each network minus the base of its replicate), the
dissimilar split, random frozen features, and the bottom panel of the combined figure (each curve minus
its own n=0 reference, network by network).

A network is paired with its base through its *replicate* ``(split, target half, seed)``: the base
network trained on the same half of the same split with the same seed.

Figure 2's curves come in two *comparisons* (``COMPARISONS``), each read alone: ``random``, the random A/B
splits (A and B halves of one data set), and ``pretrained``, the transfers from a pretrained weights file (base
half ``pretrained``: A is the data the file was trained on, e.g. ImageNet) with the base and selffers on their
target, B (``experiments.study.grid.PretrainedCells``).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from typing import Literal

from experiments.families import BASE, FIGURE2_FAMILIES, PRETRAINED, RANDOM_FEATURES, REDUCED_DATA
from experiments.report.table import METRIC, Points, Replicate, Row, is_base, is_random_split

Comparison = Literal["random", "pretrained"]
COMPARISONS: tuple[Comparison, ...] = ("random", "pretrained")
Unit = tuple[Hashable, ...]  # a replicate, or (split, seed)
# curve -> n -> unit -> that unit's value minus its own n=0 reference
Relative = dict[str, dict[int, dict[Unit, float]]]


def replicate(row: Row) -> Replicate:
    """The row's ``(split, target half, seed)``: the base network with this key is its reference."""
    return row["split"], row["target_half"], row["seed"]


def value(row: Row) -> float | None:
    """The paper's metric of the row, or None where it is missing or NaN."""
    metric = row.get(METRIC)
    return None if metric is None or math.isnan(metric) else metric


def _points(rows: Iterable[Row]) -> Points:
    points: Points = defaultdict(list)
    for row in rows:
        if (metric := value(row)) is not None:
            points[row["n"]].append(metric)
    return dict(sorted(points.items()))


def figure2_rows(rows: list[Row], comparison: Comparison = "random") -> list[Row]:
    """The rows one Figure-2 comparison reads (see the module docstring).

    ``random``: every row on a random split. ``pretrained``: on each target of a pretrained base (a split and half
    that a row with base half ``pretrained`` trains on, never a random split), its base networks and the
    BnB, AnB, BnB+ and AnB+ networks.
    """
    if comparison == "random":
        return [row for row in rows if is_random_split(row["split"])]
    targets = {(row["split"], row["target_half"]) for row in rows if row.get("base_half") == PRETRAINED}
    return [
        row
        for row in rows
        if (row["split"], row["target_half"]) in targets
        and not is_random_split(row["split"])
        and (is_base(row) or row["family"] in FIGURE2_FAMILIES)
    ]


def figure2_target_bases(rows: list[Row], comparison: Comparison = "random") -> list[Row]:
    """The base networks of Figure 2: those on a random split's half that some BnB/AnB/BnB+/AnB+ targets.

    Every base network of the random splits when no transfer network is in the table yet. In the paper
    every half was a target, so these are all 8 base networks (mean 0.6251); a study that trains
    towards half B only compares against base B alone. ``comparison`` ``pretrained``: the bases of the targets
    of a pretrained base (:func:`figure2_rows`).
    """
    chosen = figure2_rows(rows, comparison)
    targets = {(row["split"], row["target_half"]) for row in chosen if row["family"] in FIGURE2_FAMILIES}
    bases = [row for row in chosen if is_base(row)]
    return [row for row in bases if not targets or (row["split"], row["target_half"]) in targets]


def base_label(rows: list[Row], comparison: Comparison = "random") -> str:
    """The legend name of Figure 2's base points: ``base B``, or ``base A/B`` where both halves are targets; for a
    pretrained base, the target's own base trained from scratch."""
    if comparison == "pretrained":
        return "base B (the target, from scratch)"
    halves = sorted({row["target_half"] for row in figure2_target_bases(rows)})
    return f"base {'/'.join(halves)}" if halves else "base"


def figure2_points(rows: list[Row], comparison: Comparison = "random") -> dict[str, Points]:
    """Figure 2's networks of one comparison: ``base`` (:func:`figure2_target_bases`) and BnB, AnB, BnB+, AnB+.

    ``base`` is the one n=0 point of every family; a family's own points start at n=1 (empty: none in the table).
    """
    chosen = figure2_rows(rows, comparison)
    curves = {"base": _points(figure2_target_bases(rows, comparison))}
    for family in FIGURE2_FAMILIES:
        curves[family] = _points(row for row in chosen if row["family"] == family)
    return curves


def figure2_unit_differences(
    rows: list[Row], comparison: Comparison = "random"
) -> dict[str, dict[int, dict[Replicate, float]]]:
    """Per family, n -> replicate ``(split, target half, seed)`` -> its network minus the base of its replicate.

    The unit is the replicate, as in :mod:`experiments.report.effects`; a network whose replicate has no base is
    left out, and so is a family with no paired network. n=0 is not a point: the base minus itself is zero.
    Several networks of one replicate at one n (not in the study's design) count once, as their mean.
    """
    minus_base = _minus_base(rows)
    chosen = figure2_rows(rows, comparison)
    curves: dict[str, dict[int, dict[Replicate, float]]] = {}
    for family in FIGURE2_FAMILIES:
        units: dict[int, dict[Replicate, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in chosen:
            difference = minus_base(row)
            if row["family"] == family and difference is not None:
                units[row["n"]][replicate(row)].append(difference)
        if units:
            curves[family] = {
                n: {unit: statistics.fmean(values) for unit, values in units[n].items()} for n in sorted(units)
            }
    return curves


def figure2_differences(rows: list[Row], comparison: Comparison = "random") -> dict[str, Points]:
    """Figure 2's bottom panel: per family, n -> the replicates' differences of :func:`figure2_unit_differences`."""
    return {
        family: {n: list(units.values()) for n, units in curve.items()}
        for family, curve in figure2_unit_differences(rows, comparison).items()
    }


def _minus_base(rows: list[Row]) -> Callable[[Row], float | None]:
    """A row's metric minus that of the base of its replicate; None where either is missing."""
    bases = {replicate(row): value(row) for row in rows if is_base(row) and value(row) is not None}

    def minus_base(row: Row) -> float | None:
        reference, metric = bases.get(replicate(row)), value(row)
        return None if reference is None or metric is None else metric - reference

    return minus_base


def dissimilar_points(rows: list[Row]) -> dict[str, Points]:
    """The dissimilar-split panel: per target half, its base (n=0) and the frozen transfers to it."""
    curves: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if (
            not is_random_split(row["split"])
            and row["family"] in (BASE, "AnB")
            and row["target_half"] != "all"
            and row.get("base_half") != PRETRAINED
        ):
            curves[row["target_half"]].append(row)
    return {target: _points(group) for target, group in sorted(curves.items())}


def random_features_points(rows: list[Row]) -> Points:
    """The random-features panel: the base on the whole label set (n=0) and random frozen features per n."""
    splits = {row["split"] for row in rows if row["family"] == RANDOM_FEATURES}
    return _points(row for row in rows if row["split"] in splits and row["family"] in (BASE, RANDOM_FEATURES))


def reduced_data_points(rows: list[Row]) -> Points:
    """The reduced-data panel: the networks trained on N images per class, by N (the points' key)."""
    points: Points = defaultdict(list)
    for row in rows:
        if row["family"] == REDUCED_DATA and row.get("images_per_class") and (metric := value(row)) is not None:
            points[int(row["images_per_class"])].append(metric)
    return dict(sorted(points.items()))


def mean_curve(points: Points) -> dict[int, float]:
    """The mean over networks at each n."""
    return {n: statistics.fmean(points[n]) for n in sorted(points) if points[n]}


def relative_values(rows: list[Row]) -> Relative:
    """The bottom panel, unit by unit: each network minus its own base (empty curves left out).

    ``AnB, random splits``: per replicate, AnB(n) minus the base of its replicate.
    ``AnB, dissimilar split``: per (split, seed), the average over the split's target halves of
    AnB(n) minus that half's base; a unit counts only where every direction has a network.
    ``random features``: per (split, seed), random(n) minus the base on the same labels.
    Every unit's n=0 value is 0 (its base minus itself). Networks without their base are left out.
    """
    minus_base = _minus_base(rows)
    random_anb: dict[int, dict[Unit, float]] = defaultdict(dict)
    for row in rows:
        if is_random_split(row["split"]) and row["family"] == "AnB" and (difference := minus_base(row)) is not None:
            random_anb[row["n"]][replicate(row)] = difference
    dissimilar = _directions_averaged(
        [
            row
            for row in rows
            if not is_random_split(row["split"])
            and row["family"] == "AnB"
            and row["target_half"] != "all"
            and row.get("base_half") != PRETRAINED
        ],
        minus_base,
    )
    features: dict[int, dict[Unit, float]] = defaultdict(dict)
    for row in rows:
        if row["family"] == RANDOM_FEATURES and (difference := minus_base(row)) is not None:
            features[row["n"]][(row["split"], row["seed"])] = difference
    curves = {"AnB, random splits": random_anb, "AnB, dissimilar split": dissimilar, "random features": features}
    return {name: _with_zero(curve) for name, curve in curves.items() if curve}


def _directions_averaged(
    transfers: list[Row], minus_base: Callable[[Row], float | None]
) -> dict[int, dict[Unit, float]]:
    directions: dict[str, set[str]] = defaultdict(set)
    values: dict[tuple[str, int, int], dict[str, float]] = defaultdict(dict)
    for row in transfers:
        directions[row["split"]].add(row["target_half"])
        if (difference := minus_base(row)) is not None:
            values[row["split"], row["seed"], row["n"]][row["target_half"]] = difference
    curve: dict[int, dict[Unit, float]] = defaultdict(dict)
    for (split, seed, n), by_target in values.items():
        if set(by_target) == directions[split]:
            curve[n][(split, seed)] = statistics.fmean(by_target.values())
    return curve


def _with_zero(curve: dict[int, dict[Unit, float]]) -> dict[int, dict[Unit, float]]:
    units = {unit for by_unit in curve.values() for unit in by_unit}
    return {0: dict.fromkeys(units, 0.0)} | {n: curve[n] for n in sorted(curve)}


def relative_points(rows: list[Row]) -> dict[str, Points]:
    """:func:`relative_values` as points: the units' values at each n."""
    return {
        name: {n: list(units.values()) for n, units in curve.items()} for name, curve in relative_values(rows).items()
    }


def relative_curves(rows: list[Row]) -> dict[str, dict[int, float]]:
    """The bottom panel's means: each curve minus its own n=0, averaged over units (see :func:`relative_values`)."""
    return {name: mean_curve(points) for name, points in relative_points(rows).items() if len(points) > 1}
