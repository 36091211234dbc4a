"""The layer-similarity panel of a finished study: debiased linear CKA between base A and base B at each stage, per
seed, with its chance baseline (the same measure on permuted examples).

For every random split and seed whose two Figure 2 base networks (on halves A and B) have finished,
both networks are loaded from their cells' ``checkpoints/last.ckpt`` (``models.loading.load_network``)
and compared stage by stage (``experiments.report.cka_features.stage_cka_and_chance``) on the target half's
validation images: the data section of base B's ``config.yaml`` (its data module built from ``class_path`` and
``init_args``, ``prepare_data`` and ``setup("validate")``, no Trainer), at most ``MAX_IMAGES`` of them
spread evenly over the validation set. Base B reads them as it was trained; base A reads the same
images with its own half's mean image subtracted (``mean_half: A``, as the AnB transfers read them),
where the data module takes a ``mean_half``. No network is trained.

Writes ``cka.csv`` (one row per stage, see ``experiments.report.cka_table``) and ``cka.json`` (every pair's
cells, images, values and chance values, and what they were computed from) in the study folder. A later
run reuses them while the bases' checkpoints and data and the estimator (``ESTIMATOR``) are unchanged;
a ``cka.json`` of another estimator (e.g. the biased CKA, without a chance baseline) is recomputed. The
panel is optional: without a pair of finished bases it is skipped with a printed line (and stale files
removed); a base that cannot be loaded or whose data cannot be built raises :class:`SimilarityError`
naming the file.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import Tensor

from experiments.report.cka import CHANCE_PERMUTATIONS, CHANCE_SEED
from experiments.report.cka_features import MAX_IMAGES, collect_images, stage_cka_and_chance
from experiments.report.cka_table import PairCKA, describe, write_cka_table
from experiments.report.table import Row, is_base, is_random_split
from experiments.study.cells import CellFolder
from experiments.validation_data import spread_indices, validation_batches, validation_count, validation_module
from models.files import write_atomic
from models.network import StagedNetwork

CSV_NAME, JSON_NAME = "cka.csv", "cka.json"
HALVES = ("A", "B")  # the Figure 2 bases compared: A's and B's, on B's validation images
# what the values are; a cka.json with another is recomputed, not reused
ESTIMATOR = (
    f"debiased linear CKA (unbiased HSIC, Song et al. 2012; Nguyen et al. 2021), chance: mean over "
    f"{CHANCE_PERMUTATIONS} permutations of the examples (torch.Generator seed {CHANCE_SEED})"
)


class SimilarityError(RuntimeError):
    """A base network or its data that cannot be read for the layer-similarity panel, with the file and the fix."""


@dataclass(frozen=True)
class BasePair:
    """The two Figure 2 bases of one random split and seed: their cell names in the study folder."""

    split: str
    seed: int
    cell_a: str
    cell_b: str

    @property
    def label(self) -> str:
        return f"{self.split}_s{self.seed}"


def base_pairs(rows: Sequence[Row]) -> tuple[list[BasePair], list[str]]:
    """The finished base pairs of ``rows`` (a results table), by split and seed; and the replicates lacking a base."""
    found: dict[tuple[str, int], dict[str, str]] = {}
    for row in rows:
        if is_base(row) and is_random_split(row["split"]) and row["target_half"] in HALVES:
            found.setdefault((row["split"], row["seed"]), {})[row["target_half"]] = row["cell"]
    pairs, missing = [], []
    for (split, seed), cells in sorted(found.items()):
        if all(half in cells for half in HALVES):
            pairs.append(BasePair(split, seed, cells["A"], cells["B"]))
        else:
            lacking = [half for half in HALVES if half not in cells]
            missing.append(f"{split} seed {seed} (no finished base {'/'.join(lacking)})")
    return pairs, missing


def write_similarity(root: Path, rows: Sequence[Row], max_images: int = MAX_IMAGES) -> Path | None:
    """Compute the panel for the finished bases among ``rows`` and write ``cka.csv`` and ``cka.json`` in ``root``.

    Args:
        root: The study folder (cells in ``root/cells/<cell>``).
        rows: Its results table (``experiments.report.table.read_table``).
        max_images: Validation images per pair.

    Returns:
        ``cka.csv``, or None where no split and seed has both bases (the panel is skipped).

    Raises:
        SimilarityError: A base's checkpoint or config that cannot be read, or data its network does not take.
    """
    csv_path, json_path = root / CSV_NAME, root / JSON_NAME
    pairs, missing = base_pairs(rows)
    if missing:
        print(f"layer similarity: skipping {', '.join(missing)}", flush=True)
    if not pairs:
        print(
            "layer similarity: skipped (no random split and seed with both base networks A and B finished)", flush=True
        )
        csv_path.unlink(missing_ok=True)
        json_path.unlink(missing_ok=True)
        return None
    previous = _previous(json_path, max_images)
    records, results = [], []
    try:
        for pair in pairs:
            inputs = _inputs(root, pair, max_images)
            record = previous.get(pair.label)
            if record is None or record.get("inputs") != inputs:
                print(f"layer similarity: CKA between {pair.cell_a} and {pair.cell_b} ...", flush=True)
                values, chance, count = _compute(root, pair, max_images)
                record = {
                    "label": pair.label,
                    "split": pair.split,
                    "seed": pair.seed,
                    "base_a": pair.cell_a,
                    "base_b": pair.cell_b,
                    "images": count,
                    "inputs": inputs,
                    "cka": values,
                    "chance": chance,
                }
            records.append(record)
            results.append(
                PairCKA(
                    pair.label,
                    {stage: float(value) for stage, value in record["cka"].items()},
                    {stage: float(value) for stage, value in record["chance"].items()},
                )
            )
    except SimilarityError:  # no stale panel in the report
        csv_path.unlink(missing_ok=True)
        json_path.unlink(missing_ok=True)
        raise
    table = write_cka_table(csv_path, results)
    summary = {
        "measure": "debiased linear CKA between base A and base B at each stage, on the validation images "
        "of half B, and its chance baseline (B's features of permuted images)",
        "estimator": ESTIMATOR,
        "max_images": max_images,
        "pairs": records,
    }
    write_atomic(json_path, json.dumps(summary, indent=2, allow_nan=True) + "\n")
    print(f"layer similarity: {describe(table)} -> {csv_path}", flush=True)
    return csv_path


def _previous(path: Path, max_images: int) -> dict[str, dict[str, Any]]:
    """The pairs of an earlier ``cka.json`` computed with the same settings and estimator (none if unreadable)."""
    try:
        previous = json.loads(path.read_text())
        if previous.get("max_images") != max_images or previous.get("estimator") != ESTIMATOR:
            return {}
        return {record["label"]: record for record in previous["pairs"] if "chance" in record}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _inputs(root: Path, pair: BasePair, max_images: int) -> dict[str, Any]:
    """What a pair's values depend on: each checkpoint's size and time, and base B's data section."""
    stamps = {}
    for cell in (pair.cell_a, pair.cell_b):
        path = CellFolder(root / "cells" / cell).last_checkpoint
        stat = path.stat() if path.is_file() else None
        stamps[cell] = None if stat is None else [stat.st_size, stat.st_mtime_ns]
    return {"checkpoints": stamps, "data": _data_section(root, pair.cell_b), "max_images": max_images}


def _data_section(root: Path, cell: str) -> dict[str, Any]:
    path = CellFolder(root / "cells" / cell).config
    try:
        data = (yaml.safe_load(path.read_text()) or {}).get("data")
    except (OSError, yaml.YAMLError) as err:
        raise SimilarityError(
            f"cannot read the config of base {cell} at {path}: {err}. Restore it, or delete "
            f"{path.parent} to train the base again"
        ) from err
    if not isinstance(data, dict) or not data.get("class_path"):
        raise SimilarityError(
            f"the config of base {cell} at {path} has no data.class_path to build its validation images from"
        )
    return {"class_path": data["class_path"], "init_args": dict(data.get("init_args") or {})}


def _compute(root: Path, pair: BasePair, max_images: int) -> tuple[dict[str, float], dict[str, float], int]:
    """The pair's CKA and chance baseline per stage (from the same features) and the number of images they rest on."""
    net_a, net_b = (_load(root, cell) for cell in (pair.cell_a, pair.cell_b))
    data = _data_section(root, pair.cell_b)
    images_b = validation_images(data, max_images, f"base {pair.cell_b}")
    mean_a = _with_mean_half(data, "A")
    images_a = images_b if mean_a is None else validation_images(mean_a, max_images, f"base {pair.cell_b}")
    try:
        both = stage_cka_and_chance(net_a, net_b, images_a, max_images, images_b=images_b)
    except (ValueError, RuntimeError) as err:
        raise SimilarityError(
            f"cannot compare {pair.cell_a} and {pair.cell_b} on the validation images of {pair.cell_b}: {err}"
        ) from err
    values = {stage: value for stage, (value, _) in both.items()}
    return values, {stage: chance for stage, (_, chance) in both.items()}, len(images_b)


def _load(root: Path, cell: str) -> StagedNetwork:
    from models.loading import load_network  # the networks' modules only when a panel is computed

    path = CellFolder(root / "cells" / cell).last_checkpoint
    try:
        return load_network(path)
    except Exception as err:  # missing, truncated, corrupt, or not a network's checkpoint
        raise SimilarityError(
            f"cannot load base network {cell} from {path} ({type(err).__name__}: {err}). Restore "
            f"the file, or delete {path.parents[1]} (and the cells that copied it) to train it "
            "again"
        ) from err


def _with_mean_half(data: dict[str, Any], half: str) -> dict[str, Any] | None:
    """``data`` with ``mean_half: half`` where its class takes a ``mean_half``; None where it does not."""
    try:
        parameters = inspect.signature(_data_class(data["class_path"], "")).parameters
    except (TypeError, ValueError):
        return None
    if "mean_half" not in data["init_args"] and "mean_half" not in parameters:
        return None
    return {**data, "init_args": {**data["init_args"], "mean_half": half}}


def _data_class(class_path: str, what: str) -> Any:
    from models.loading import import_path

    try:
        return import_path(class_path)
    except (ImportError, AttributeError, ValueError) as err:
        raise SimilarityError(f"cannot import the data class {class_path!r} of {what}: {err}") from err


def validation_images(data: dict[str, Any], max_images: int, what: str = "the study") -> Tensor:
    """At most ``max_images`` validation images of a data section (``class_path``, ``init_args``), as the network
    takes them, spread evenly over the validation set (its order, every ``len // max_images``-th image).

    The data module is built without a Trainer and read through its hooks (``experiments.validation_data``).

    Raises:
        SimilarityError: The data module cannot be built or yields no images.
    """
    _data_class(data["class_path"], what)
    try:
        module = validation_module(data)
        total = validation_count(module)
        indices = None if total is None else spread_indices(total, max_images)
        return collect_images(validation_batches(module, indices, min(256, max_images)), max_images)
    except Exception as err:
        raise SimilarityError(
            f"cannot build the validation images of {what} from its data section "
            f"{data['class_path']} {data['init_args']} ({type(err).__name__}: {err})"
        ) from err
