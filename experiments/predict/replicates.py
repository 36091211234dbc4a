"""A study's AnB replicates: their measured curves, the networks to score, and the table of their scores.

A replicate is ``(split, base half, target half, seed)``: its AnB networks at every n, base A (trained on the base
half) and the target half's own base. Scoring one reads base A's features of the target data (the config of its AnB
cell with the smallest n) at every stage, and base B's for the selffer variant (``experiments.predict.scores``).
The score table has one row per replicate, n, estimator and variant: ``UNIT_COLUMNS`` say which replicate and which
networks (each base's cell and its measured metric, so a results table of other networks is caught), then the
columns of ``experiments.predict``'s ``scores.csv``.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from experiments.errors import InputFileError, SettingError
from experiments.report.table import METRIC, Row, is_base, is_random_split
from models.files import write_atomic

SCORE_COLUMNS: tuple[str, ...] = ("n", "stage", "estimator", "variant", "score", "seconds")  # experiments.predict
UNIT_COLUMNS: tuple[str, ...] = (
    "panel",
    "split",
    "base_half",
    "target_half",
    "seed",
    "base_cell",
    "base_top1",
    "target_base_cell",
    "target_base_top1",
    "images",
    "sample_seed",
)
COLUMNS: tuple[str, ...] = UNIT_COLUMNS + SCORE_COLUMNS
UNSCORED_COLUMNS: tuple[str, ...] = (*UNIT_COLUMNS, "reason")


def anb_curves(rows: list[Row], random: bool = True) -> dict[tuple[str, str, str], dict[int, dict[int, float]]]:
    """AnB's measured metric: ``(split, base half, target half)`` -> seed -> n -> value, on random or other splits."""
    curves: dict[tuple[str, str, str], dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        if (
            row["family"] == "AnB"
            and is_random_split(row["split"]) == random
            and row["target_half"] != "all"
            and row[METRIC] is not None
            and not math.isnan(row[METRIC])
        ):
            curves[row["split"], row["base_half"], row["target_half"]][row["seed"]][row["n"]] = row[METRIC]
    return {
        key: {seed: dict(sorted(by_n.items())) for seed, by_n in sorted(by_seed.items())}
        for key, by_seed in sorted(curves.items())
    }


def base_metrics(rows: list[Row]) -> dict[tuple[str, str, int], float]:
    """Each base network's metric by ``(split, half, seed)``."""
    return {(row["split"], row["target_half"], row["seed"]): row[METRIC] for row in rows if is_base(row)}


@dataclass(frozen=True)
class Unit:
    """One AnB replicate to score: base A's features on the target's data, the target's base as the selffer.

    Args:
        panel: ``random`` (a Figure 2 split) or ``dissimilar``.
        split, base_half, target_half, seed: The replicate.
        base: Base A's row in the results table; ``target_base``: the target half's base row.
        config: The fit config of the replicate's AnB cell with the smallest n (its data is the target data).
    """

    panel: str
    split: str
    base_half: str
    target_half: str
    seed: int
    base: Row
    target_base: Row
    config: Path


def units(folder: Path, rows: list[Row]) -> list[Unit]:
    """Every AnB replicate of the study ``folder`` whose two bases are in ``rows`` (its results table).

    Raises:
        InputFileError: A base's checkpoint or a cell's config missing from the folder.
    """
    bases = {(row["split"], row["target_half"], row["seed"]): row for row in rows if is_base(row)}
    first: dict[tuple[str, str, str, int], Row] = {}
    for row in rows:
        if row["family"] == "AnB" and row["target_half"] != "all":
            key = (row["split"], row["base_half"], row["target_half"], row["seed"])
            if key not in first or row["n"] < first[key]["n"]:
                first[key] = row
    found = []
    for (split, base_half, target_half, seed), cell in sorted(first.items()):
        base, target_base = bases.get((split, base_half, seed)), bases.get((split, target_half, seed))
        if base is None or target_base is None:
            continue
        config = folder / "cells" / cell["cell"] / "config.yaml"
        for path in (config, checkpoint(folder, base), checkpoint(folder, target_base)):
            if not path.is_file():
                raise InputFileError(f"{path} is missing: --score needs the study's checkpoints and cell configs")
        found.append(
            Unit(
                "random" if is_random_split(split) else "dissimilar",
                split,
                base_half,
                target_half,
                seed,
                base,
                target_base,
                config,
            )
        )
    return found


def checkpoint(folder: Path, row: Row) -> Path:
    """The checkpoint of a network of the study ``folder`` (its table's path is relative to the folder)."""
    return folder / (row.get("checkpoint") or f"cells/{row['cell']}/checkpoints/last.ckpt")


# (base checkpoint, target fit config, target base checkpoint, images, seed) -> rows with SCORE_COLUMNS
Scorer = Callable[[Path, Path, Path, int | None, int], list[Mapping[str, Any]]]


def _check_finite(path: Path) -> None:
    """Refuse a checkpoint with NaN or infinite weights (a network that diverged in training), naming its layers.

    Raises:
        SettingError: Such weights.
    """
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True).get("state_dict", {})
    broken = [
        name
        for name, value in state.items()
        if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if broken:
        raise SettingError(
            f"{path} has NaN or infinite weights in {len(broken)} tensors ({', '.join(broken[:3])}"
            f"{', ...' if len(broken) > 3 else ''}): the network diverged in training"
        )


def predict_scorer(**options: Any) -> Scorer:
    """:func:`experiments.predict.run.predict` as a :data:`Scorer`: the target data is the config's ``data`` section.

    Args:
        options: More of ``predict``'s settings (``device``, ``pooling``, ...), the same for every replicate.
    """
    from experiments.predict.run import predict

    def scorer(base: Path, config: Path, target_base: Path, images: int | None, seed: int) -> list[Mapping[str, Any]]:
        try:
            data = yaml.safe_load(config.read_text())["data"]
        except (OSError, yaml.YAMLError, TypeError, KeyError) as err:
            raise SettingError(f"{config} has no readable data section ({type(err).__name__}: {err})") from err
        for path in (base, target_base):
            _check_finite(path)
        settings = options | ({} if images is None else {"images": images})
        rows = predict(base, data, target_base, seed=seed, config_files=[config], quiet=True, **settings)
        return [{column: getattr(row, column) for column in SCORE_COLUMNS} for row in rows]

    return scorer


def score_units(
    study_units: Sequence[Unit],
    folder: Path,
    scorer: Scorer,
    images: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Score every unit: one row (``COLUMNS``) per unit, n, estimator and variant; and one row (``UNSCORED_COLUMNS``)
    per unit the scorer refused (a ``ValueError`` or ``RuntimeError``, e.g. a diverged network), with its reason.
    A missing file is not a refusal: it raises."""
    scored, unscored = [], []
    for unit in study_units:
        log(f"scoring {unit.panel} {unit.split} {unit.base_half} -> {unit.target_half}, seed {unit.seed}")
        described = {
            "panel": unit.panel,
            "split": unit.split,
            "base_half": unit.base_half,
            "target_half": unit.target_half,
            "seed": unit.seed,
            "base_cell": unit.base["cell"],
            "base_top1": repr(unit.base[METRIC]),
            "target_base_cell": unit.target_base["cell"],
            "target_base_top1": repr(unit.target_base[METRIC]),
            "images": "" if images is None else images,
            "sample_seed": seed,
        }
        try:
            rows = scorer(
                checkpoint(folder, unit.base), unit.config, checkpoint(folder, unit.target_base), images, seed
            )
        except (ValueError, RuntimeError) as err:
            reason = f"{type(err).__name__}: {' '.join(str(err).split())}"
            log(f"  not scored: {reason}")
            unscored.append(described | {"reason": reason})
            continue
        for row in rows:
            missing = [column for column in SCORE_COLUMNS if column not in row]
            if missing:
                raise ValueError(f"the scorer's rows lack {missing}: expected {list(SCORE_COLUMNS)}")
            scored.append(described | {column: row[column] for column in SCORE_COLUMNS})
    return scored, unscored


def write_scores(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> None:
    """Write score rows (``COLUMNS``, or the unscored units' ``UNSCORED_COLUMNS``) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


def read_scores(path: Path) -> list[Row]:
    """Read a score table written by :func:`write_scores` (numbers typed).

    Raises:
        SettingError: Its header is not ``COLUMNS``.
    """
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise SettingError(
                f"{path} is not a score table: header {reader.fieldnames}, expected {list(COLUMNS)}; "
                "write it again with --score"
            )
        rows = list(reader)
    for row in rows:
        row["seed"], row["n"] = int(row["seed"]), int(row["n"])
        for key in ("base_top1", "target_base_top1", "score", "seconds"):
            row[key] = float(row[key]) if row[key] != "" else math.nan
    return rows


def read_unscored(path: Path) -> list[dict[str, str]]:
    """The units a score table lacks and why (:func:`score_units`), from ``path``; none where it does not exist."""
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def scores_by_unit(scores: list[Row]) -> dict[tuple[str, str, str, str, str], dict[int, dict[int, float]]]:
    """``(split, base half, target half, estimator, variant)`` -> seed -> n -> score."""
    nested: dict[tuple[str, str, str, str, str], dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in scores:
        key = (row["split"], row["base_half"], row["target_half"], row["estimator"], row["variant"])
        nested[key][row["seed"]][row["n"]] = row["score"]
    return {key: dict(by_seed) for key, by_seed in nested.items()}
