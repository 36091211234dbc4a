"""The layer-similarity table (``cka.csv``): written from each seed pair's CKA, read back, and the report's points.

The table has one row per stage: its layer n and name, the mean CKA over seed pairs with its 95 % t-interval
(``experiments.report.intervals``, undefined for one pair), std, min, max, the mean chance baseline
(``chance``), one column per seed pair (``<split>_s<seed>``) with that pair's CKA, then one per seed pair
(``chance_<split>_s<seed>``) with that pair's chance baseline. A table written before the chance baseline
(no ``chance`` columns) still reads, its chance values None. The values: ``experiments.report.cka`` (the
estimator) and ``experiments.report.cka_features`` (two networks stage by stage).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments.report.intervals import interval_columns, rounded
from experiments.report.table import Points, Row, TableError
from models.files import write_atomic

FIELDS: tuple[str, ...] = ("n", "stage", "count", "mean", "ci_low", "ci_high", "std", "min", "max")
CHANCE = "chance"  # the column after FIELDS (mean chance baseline); each pair's is CHANCE_PREFIX + label
CHANCE_PREFIX = "chance_"
PANEL, CURVE, CHANCE_CURVE = "cka", "CKA(A, B)", "chance (permuted examples)"  # the panel's rows in summary.csv


@dataclass(frozen=True)
class PairCKA:
    """One pair of networks' CKA at each stage, and its chance baseline where measured.

    Args:
        label: The pair's column in the table, e.g. ``random0_s0`` (split and seed of the two bases).
        values: Stage name -> CKA, in stage order (stage n is the n-th).
        chance: Stage name -> the chance baseline (``experiments.report.cka.cka_and_chance``) for the same stages,
            or None.
    """

    label: str
    values: Mapping[str, float]
    chance: Mapping[str, float] | None = None


def _defined(values: Iterable[float | None]) -> list[float]:
    return [value for value in values if value is not None and not math.isnan(value)]


def cka_rows(pairs: Sequence[PairCKA]) -> list[Row]:
    """The table's rows: one per stage with n, name, count, mean, 95 % t-interval, std, min, max, the mean chance
    baseline (``chance``), each pair's CKA (``values``) and each pair's chance baseline (``chance_values``).

    NaN values (undefined CKA) are left out of the statistics. The interval is over seed pairs, undefined
    (None) for one pair. A pair without a chance baseline has None there.

    Raises:
        ValueError: No pairs, pairs over different stages, or two pairs with one label.
    """
    if not pairs:
        raise ValueError("a CKA table needs at least one pair of networks")
    stages = list(pairs[0].values)
    labels = [pair.label for pair in pairs]
    if len(set(labels)) != len(labels) or set(labels) & {*FIELDS, CHANCE}:
        raise ValueError(f"pair labels must be unique and not a column name: {labels}")
    for pair in pairs:
        for what, values in (("stages", pair.values), ("chance stages", pair.chance)):
            if values is not None and list(values) != stages:
                raise ValueError(f"pair {pair.label} has {what} {list(values)}, {pairs[0].label} has stages {stages}")
    rows = []
    for n, stage in enumerate(stages, start=1):
        defined = _defined(pair.values[stage] for pair in pairs)
        row: Row = {"n": n, "stage": stage, "count": len(defined)}
        row |= interval_columns(defined) if defined else {}
        chance = {pair.label: None if pair.chance is None else rounded(pair.chance[stage]) for pair in pairs}
        defined_chance = _defined(chance.values())
        row[CHANCE] = rounded(sum(defined_chance) / len(defined_chance)) if defined_chance else None
        row["values"] = {pair.label: rounded(pair.values[stage]) for pair in pairs}
        row["chance_values"] = chance
        rows.append(row)
    return rows


def write_cka_table(path: Path, pairs: Sequence[PairCKA]) -> list[Row]:
    """Write :func:`cka_rows` as CSV (``FIELDS``, ``chance``, one column per pair, then ``chance_<pair>`` per pair;
    undefined values empty), atomically; return the rows."""
    rows = cka_rows(pairs)
    labels = [pair.label for pair in pairs]
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=[*FIELDS, CHANCE, *labels, *(CHANCE_PREFIX + label for label in labels)], lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        flat = (
            {key: row.get(key) for key in (*FIELDS, CHANCE)}
            | dict(row["values"])
            | {CHANCE_PREFIX + label: value for label, value in row["chance_values"].items()}
        )
        writer.writerow({key: "" if value is None else value for key, value in flat.items()})
    write_atomic(path, buffer.getvalue())
    return rows


def _labels(header: list[str]) -> tuple[list[str], bool] | None:
    """The pair labels of a CKA table's header and whether it has the chance columns; None if it is no CKA table."""
    if header[: len(FIELDS)] != list(FIELDS):
        return None
    rest = header[len(FIELDS) :]
    if rest[:1] != [CHANCE]:  # written before the chance baseline: one column per pair
        return (rest, False) if rest else None
    rest = rest[1:]
    labels = rest[: len(rest) // 2]
    if not labels or rest[len(labels) :] != [CHANCE_PREFIX + label for label in labels]:
        return None
    return labels, True


def read_cka_table(path: Path) -> list[Row]:
    """Read a table :func:`write_cka_table` wrote: rows with ``FIELDS`` and ``chance`` (typed, None where empty),
    ``values`` and ``chance_values``. A table written before the chance baseline reads with every chance None.

    Raises:
        TableError: Unreadable or not a CKA table (it is derived from the study's base networks: delete it and
            run the study again to recompute it).
    """
    fix = f"{path} is derived from the study's base networks: delete it and run the study again to recompute it"
    try:
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            header = list(reader.fieldnames or [])
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise TableError(f"CKA table {path} is unreadable ({err}). {fix}") from err
    found = _labels(header)
    if found is None:
        raise TableError(
            f"CKA table {path} is corrupt: its header is {header}, expected {list(FIELDS)}, "
            f"{CHANCE!r}, one column per seed pair and one {CHANCE_PREFIX}<pair> column per seed pair. "
            f"{fix}"
        )
    labels, has_chance = found
    rows = []
    for number, line in enumerate(lines, start=2):
        try:
            if None in line or any(value is None for value in line.values()):
                raise ValueError("a row of the wrong length")

            def number_or_none(key: str, present: bool = True, line: dict[str, str] = line) -> float | None:
                return None if not present or line[key] == "" else float(line[key])

            row: Row = {"n": int(line["n"]), "stage": line["stage"], "count": int(line["count"])}
            row |= {key: number_or_none(key) for key in FIELDS[3:]}
            row[CHANCE] = number_or_none(CHANCE, has_chance)
            row["values"] = {label: number_or_none(label) for label in labels}
            row["chance_values"] = {label: number_or_none(CHANCE_PREFIX + label, has_chance) for label in labels}
        except (ValueError, TypeError) as err:
            raise TableError(f"CKA table {path} is corrupt at line {number} ({err}). {fix}") from err
        rows.append(row)
    return rows


def cka_points(table: Sequence[Row]) -> Points:
    """The panel's points: layer n -> every seed pair's CKA at that stage (undefined ones left out)."""
    return {row["n"]: _defined(row["values"].values()) for row in table}


def chance_points(table: Sequence[Row]) -> Points:
    """The chance baseline's points: layer n -> every seed pair's chance value at that stage, for the stages that
    have one (none for a table written before the chance baseline)."""
    points = {row["n"]: _defined(row.get("chance_values", {}).values()) for row in table}
    return {n: values for n, values in points.items() if values}


def summary_rows(table: Sequence[Row]) -> list[Row]:
    """The table as rows of the report's ``summary.csv`` (panel ``cka``, n = the stage): curve ``CKA(A, B)``, then
    curve ``chance (permuted examples)`` where the table has the chance baseline."""
    rows = [
        {
            "panel": PANEL,
            "curve": CURVE,
            "n": row["n"],
            "count": row["count"],
            **{key: row[key] for key in ("mean", "ci_low", "ci_high", "std", "min", "max")},
        }
        for row in table
    ]
    rows += [
        {"panel": PANEL, "curve": CHANCE_CURVE, "n": n, "count": len(values), **interval_columns(values)}
        for n, values in chance_points(table).items()
    ]
    return rows


def describe(table: Sequence[Row]) -> str:
    """One line of the per-stage means, e.g. ``CKA(A, B) by layer (2 seed pairs): conv1 0.98 (chance 0.001), ...``."""
    pairs = max((len(row["values"]) for row in table), default=0)

    def stage(row: Row) -> str:
        text = f"{row['stage']} {row['mean']:.3f}" if row["mean"] is not None else f"{row['stage']} -"
        return text if row.get(CHANCE) is None else f"{text} (chance {row[CHANCE]:.3f})"

    return f"{CURVE} by layer ({pairs} seed pair{'s' if pairs != 1 else ''}): {', '.join(map(stage, table))}"
