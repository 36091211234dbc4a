"""The results table (one row per finished cell, derived from the cell folders) and the curves the figures draw.

The table is rewritten whole and atomically from the cells' ``result.json`` files, so it never
holds a duplicate or a half-written row; reading checks that, and says how to rebuild a broken one.
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from experiments.atomic import write_atomic

COLUMNS: tuple[str, ...] = (
    "split", "base_half", "target_half", "n", "mode", "family", "seed",
    "top1_best_k_mean", "best_k", "top1", "top5", "epochs", "steps", "wall_time_s", "checkpoint", "cell",
)
INTEGERS = frozenset({"n", "seed", "best_k", "epochs", "steps"})
FLOATS = frozenset({"top1_best_k_mean", "top1", "top5", "wall_time_s"})
REQUIRED = frozenset({"split", "target_half", "n", "family", "seed", "top1_best_k_mean", "cell"})
# The paper's metric: the mean of the best_k highest validation top-1 values (k = 10 in the paper).
METRIC = "top1_best_k_mean"

Row = dict[str, Any]
Points = dict[int, list[float]]  # n -> the metric of every network at that n


class TableError(ValueError):
    """A results table that cannot be read back."""


def write_table(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` (only ``COLUMNS``, None as empty) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if row.get(key) is None else row[key] for key in COLUMNS} for row in rows)
    write_atomic(path, buffer.getvalue())


def read_table(path: Path) -> list[Row]:
    """Read and check a results table: exact header, complete typed rows, each cell once.

    Raises:
        TableError: Missing, unreadable or corrupt table (the message names the line and the fix).
    """
    fix = (f"The table is derived from the cell folders next to it: delete {path} and run the study again "
           "to rebuild it (finished cells are not trained again).")
    try:
        with path.open(newline="") as file:
            lines = list(csv.reader(file))
    except FileNotFoundError as err:
        raise TableError(f"no results table at {path}: run the study first") from err
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise TableError(f"results table {path} is unreadable ({err}). {fix}") from err
    if not lines or tuple(lines[0]) != COLUMNS:
        found = lines[0] if lines else "nothing"
        raise TableError(f"results table {path} is corrupt: its header is {found}, expected {list(COLUMNS)}. {fix}")
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for number, values in enumerate(lines[1:], start=2):
        if len(values) != len(COLUMNS):
            raise TableError(
                f"results table {path} is corrupt: line {number} has {len(values)} fields, expected "
                f"{len(COLUMNS)} (a half-written or hand-edited row). {fix}"
            )
        row = _typed(dict(zip(COLUMNS, values)), path, number, fix)
        if row["cell"] in seen:
            raise TableError(
                f"results table {path} is corrupt: line {number} repeats cell {row['cell']!r} of line "
                f"{seen[row['cell']]}. {fix}"
            )
        seen[row["cell"]] = number
        rows.append(row)
    return rows


def _typed(raw: dict[str, str], path: Path, number: int, fix: str) -> Row:
    row: Row = {}
    for key, text in raw.items():
        if text == "":
            if key in REQUIRED:
                raise TableError(f"results table {path} is corrupt: line {number} has no {key}. {fix}")
            row[key] = None
            continue
        try:
            row[key] = int(text) if key in INTEGERS else float(text) if key in FLOATS else text
        except ValueError as err:
            raise TableError(
                f"results table {path} is corrupt: line {number}, column {key}: {text!r} is not a number. {fix}"
            ) from err
    return row


def is_random_split(split: str) -> bool:
    """Whether ``split`` is one of the paper's random A/B splits (``random<seed>``)."""
    return re.fullmatch(r"random\d+", split) is not None


def _points(rows: Iterable[Row]) -> Points:
    points: Points = defaultdict(list)
    for row in rows:
        if row.get(METRIC) is not None and not math.isnan(row[METRIC]):
            points[row["n"]].append(row[METRIC])
    return dict(sorted(points.items()))


def figure2_points(rows: list[Row]) -> dict[str, Points]:
    """Figure 2's networks on the random splits: ``base`` (every base network, n=0) and BnB, AnB, BnB+, AnB+.

    A family's n=0 point is its own reference: the base networks trained on the halves (and seeds) that
    the family's networks are trained on. In the paper every half was a target, so each reference is
    the mean of all base networks; a study that trains towards one half only (the Fashion-MNIST
    default: B, whose classes are harder than A's) compares against that half's base alone.
    """
    on_random = [row for row in rows if is_random_split(row["split"])]
    bases = [row for row in on_random if row["n"] == 0]
    curves = {"base": _points(bases)}
    for family in ("BnB", "AnB", "BnB+", "AnB+"):
        members = [row for row in on_random if row["family"] == family]
        targets = {(row["split"], row["target_half"], row["seed"]) for row in members}
        reference = [row for row in bases if (row["split"], row["target_half"], row["seed"]) in targets]
        curves[family] = _points(reference + members) if members else {}
    return curves


def dissimilar_points(rows: list[Row]) -> dict[str, Points]:
    """The dissimilar-split panel: per target half, its base (n=0) and the frozen transfers to it."""
    curves: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if not is_random_split(row["split"]) and row["family"] in ("base", "AnB") and row["target_half"] != "all":
            curves[row["target_half"]].append(row)
    return {target: _points(group) for target, group in sorted(curves.items())}


def random_features_points(rows: list[Row]) -> Points:
    """The random-features panel: the base on the whole label set (n=0) and random frozen features per n."""
    splits = {row["split"] for row in rows if row["family"] == "random"}
    return _points(row for row in rows if row["split"] in splits and row["family"] in ("base", "random"))


def mean_curve(points: Points) -> dict[int, float]:
    """The mean over networks at each n."""
    return {n: statistics.fmean(points[n]) for n in sorted(points) if points[n]}


def relative_curves(rows: list[Row]) -> dict[str, dict[int, float]]:
    """The bottom panel: each curve minus its own n=0 reference (empty curves left out).

    ``AnB, random splits``: mean AnB minus the mean of its reference bases (see :func:`figure2_points`).
    ``AnB, dissimilar split``: the average over the two directions of (mean AnB to a half minus that
    half's base).
    ``random features``: mean random-features network minus the base on the same labels.
    """
    figure2 = figure2_points(rows)
    curves = {
        "AnB, random splits": _relative(figure2["AnB"]),
        "AnB, dissimilar split": _average([_relative(pts) for pts in dissimilar_points(rows).values()]),
        "random features": _relative(random_features_points(rows)),
    }
    return {name: curve for name, curve in curves.items() if len(curve) > 1}


def _relative(points: Points) -> dict[int, float]:
    means = mean_curve(points)
    if 0 not in means:
        return {}
    return {n: mean - means[0] for n, mean in means.items()}


def _average(curves: list[dict[int, float]]) -> dict[int, float]:
    curves = [curve for curve in curves if curve]
    if not curves:
        return {}
    shared = set.intersection(*(set(curve) for curve in curves))
    return {n: statistics.fmean(curve[n] for curve in curves) for n in sorted(shared)}


def summary(rows: list[Row]) -> list[Row]:
    """Mean, standard deviation, count, min and max of the paper's metric for every plotted curve and n."""
    panels: list[tuple[str, str, Points]] = [("figure2", name, pts) for name, pts in figure2_points(rows).items()]
    panels += [("dissimilar", f"to {target}", pts) for target, pts in dissimilar_points(rows).items()]
    panels.append(("random_features", "random", random_features_points(rows)))
    out = []
    for panel, curve, points in panels:
        for n, values in points.items():
            out.append({
                "panel": panel, "curve": curve, "n": n, "count": len(values),
                "mean": round(statistics.fmean(values), 6),
                "std": round(statistics.stdev(values), 6) if len(values) > 1 else None,
                "min": round(min(values), 6), "max": round(max(values), 6),
            })
    return out


def write_summary(path: Path, rows: list[Row]) -> None:
    """Write :func:`summary` as CSV, atomically."""
    buffer = io.StringIO()
    fields = ("panel", "curve", "n", "count", "mean", "std", "min", "max")
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in summary(rows))
    write_atomic(path, buffer.getvalue())
