"""The results table: one row per finished cell, derived from the cell folders (its summary: ``report.summary``).

The table is rewritten whole and atomically from the cells' ``result.json`` files, so it never
holds a duplicate or a half-written row; reading checks that, and says how to rebuild a broken one.
A network's validation history (``val_top1_history``, every validation's top-1 in order) is a JSON
list in its CSV cell; tables written before that column existed are read with the history None.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from experiments.families import REDUCED_DATA
from models.files import write_atomic

COLUMNS: tuple[str, ...] = (
    "split",
    "base_half",
    "target_half",
    "n",
    "mode",
    "family",
    "seed",
    "top1_best_k_mean",
    "best_k",
    "top1",
    "top5",
    "epochs",
    "steps",
    "wall_time_s",
    "checkpoint",
    "cell",
    "val_top1_history",
    "images_per_class",
)
# Tables written before the validation history (and the reduced-data column) were recorded: read with those None.
OLD_HEADERS: tuple[tuple[str, ...], ...] = (COLUMNS, COLUMNS[:-1], COLUMNS[:-2])
LISTS = frozenset({"val_top1_history"})
INTEGERS = frozenset({"n", "seed", "best_k", "epochs", "steps", "images_per_class"})
FLOATS = frozenset({"top1_best_k_mean", "top1", "top5", "wall_time_s"})
REQUIRED = frozenset({"split", "target_half", "n", "family", "seed", "top1_best_k_mean", "cell"})
# The paper's metric: the mean of the best_k highest validation top-1 values (k = 10 in the paper).
METRIC = "top1_best_k_mean"

Row = dict[str, Any]
Points = dict[int, list[float]]  # n -> the metric of every network at that n
Replicate = tuple[str, str, int]  # (split, target half, seed): what pairs a network with its base


class TableError(ValueError):
    """A results table that cannot be read back."""


def write_table(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` (only ``COLUMNS``, None as empty, lists as JSON) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _cell_text(key, row.get(key)) for key in COLUMNS} for row in rows)
    write_atomic(path, buffer.getvalue())


def _cell_text(key: str, value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps([float(item) for item in value]) if key in LISTS else value


def read_table(path: Path) -> list[Row]:
    """Read and check a results table: exact header, complete typed rows, each cell once.

    A table with an older header (``OLD_HEADERS``: written before ``val_top1_history`` or ``images_per_class``)
    is read with those columns None.

    Raises:
        TableError: Missing, unreadable or corrupt table (the message names the line and the fix).
    """
    fix = (
        f"The table is derived from the cell folders next to it: delete {path} and run the study again "
        "to rebuild it (finished cells are not trained again)."
    )
    try:
        with path.open(newline="") as file:
            lines = list(csv.reader(file))
    except FileNotFoundError as err:
        raise TableError(f"no results table at {path}: run the study first") from err
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise TableError(f"results table {path} is unreadable ({err}). {fix}") from err
    if not lines or tuple(lines[0]) not in OLD_HEADERS:
        found = lines[0] if lines else "nothing"
        raise TableError(f"results table {path} is corrupt: its header is {found}, expected {list(COLUMNS)}. {fix}")
    header = tuple(lines[0])
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for number, values in enumerate(lines[1:], start=2):
        if len(values) != len(header):
            raise TableError(
                f"results table {path} is corrupt: line {number} has {len(values)} fields, expected "
                f"{len(header)} (a half-written or hand-edited row). {fix}"
            )
        row = _typed(dict.fromkeys(COLUMNS, "") | dict(zip(header, values)), path, number, fix)
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
            row[key] = (
                int(text)
                if key in INTEGERS
                else float(text)
                if key in FLOATS
                else _float_list(text)
                if key in LISTS
                else text
            )
        except ValueError as err:
            what = "a JSON list of numbers" if key in LISTS else "a number"
            raise TableError(
                f"results table {path} is corrupt: line {number}, column {key}: {text!r} is not {what}. {fix}"
            ) from err
    return row


def _float_list(text: str) -> list[float]:
    values = json.loads(text)  # a JSONDecodeError is a ValueError
    if not isinstance(values, list) or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in values
    ):
        raise ValueError(text)
    return [float(value) for value in values]


def is_base(row: Row) -> bool:
    """Whether ``row`` is a base network that transfers copy (n = 0, trained on all its images)."""
    return row["n"] == 0 and row["family"] != REDUCED_DATA


def is_random_split(split: str) -> bool:
    """Whether ``split`` is one of the paper's random A/B splits (``random<seed>``)."""
    return re.fullmatch(r"random\d+", split) is not None
