"""``predict``: per-stage transferability scores of a base network for a target dataset, in seconds.

For a base network (A) and target data (B), every cut point ``n = 1..L-1`` (the transferable stages; AnB copies and
freezes stages ``1..n`` and trains the rest) is scored by every estimator from the features of stage ``n`` on a
seeded sample of the target's validation images (``experiments.predict.target``), pooled to a bounded width
(``experiments.predict.features``). With the target's own base (B) the scores of its features too (``selffer``) and
the difference (``experiments.predict.scores``). No network is trained.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from experiments.errors import SettingError
from experiments.predict import outputs
from experiments.predict.features import GRID, MAX_DIM, POOLINGS, Pooling, stage_features
from experiments.predict.networks import Network, load_checkpoint, load_weights
from experiments.predict.scores import ESTIMATOR_NAMES, ScoreRow, estimator_functions, score_stages
from experiments.predict.target import build_module, count_of, reading, sample_indices
from experiments.validation_data import validation_batches
from models.transfer import transferable_stages

IMAGES, BATCH_SIZE = 1000, 250
WANDB_PROJECT = "transferability"


def sha256(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _label(path: Path) -> str:
    """A network file's name for a title: ``<run or cell>/last.ckpt`` for a file in a ``checkpoints`` folder."""
    return f"{path.parents[1].name}/{path.name}" if path.parent.name == "checkpoints" else path.name


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as err:
        raise SettingError(f"--device {device!r}: {err}; use auto, cpu or cuda") from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise SettingError(f"--device {device}: torch sees no CUDA device; use --device cpu")
    return chosen


def _check_settings(
    images: int, pooling: str, grid: int, max_dim: int, estimators: Sequence[str], batch_size: int, wandb: str
) -> None:
    """Refuse, by name, a setting out of range before anything is loaded."""
    if pooling not in POOLINGS:
        raise SettingError(f"--pooling {pooling!r}: must be one of {', '.join(POOLINGS)}")
    for name, value in (("grid", grid), ("max_dim", max_dim), ("batch_size", batch_size), ("images", images)):
        if value < 1:
            raise SettingError(f"--{name} {value}: must be positive")
    try:
        estimator_functions(estimators, 0)
    except ValueError as err:
        raise SettingError(f"--estimators: {err}") from err
    if wandb not in ("off", "offline", "online"):
        raise SettingError(f"--wandb {wandb!r}: must be off, offline or online")


class _Features:
    """Reads each network's features of the sample, building each distinct data section's module once."""

    def __init__(
        self,
        data: Mapping[str, Any],
        module: Any,
        indices: list[int],
        settings: dict[str, Any],
        device: torch.device,
        match_mean: bool,
    ) -> None:
        self.modules = {self._key(data): module}
        self.indices, self.settings, self.device, self.match_mean = indices, settings, device, match_mean
        self.data = data

    @staticmethod
    def _key(data: Mapping[str, Any]) -> str:
        return json.dumps(data, sort_keys=True, default=str)

    def __call__(self, network: Network, what: str) -> tuple[list[Tensor], Tensor, dict[str, Any]]:
        start = time.perf_counter()
        read = reading(self.data, network.recorded_data, self.match_mean)
        key = self._key(read.data)
        if key not in self.modules:
            self.modules[key] = build_module(read.data, f"the target data as {what} reads it")
        batches = validation_batches(self.modules[key], self.indices, self.settings["batch_size"])
        try:
            features, labels = stage_features(
                network.net,
                batches,
                self.settings["pooling"],
                self.settings["grid"],
                self.settings["max_dim"],
                self.device,
            )
        except ValueError as err:
            raise SettingError(f"{what} {network.path}: {err}") from err
        seconds = time.perf_counter() - start
        record = {
            "path": str(network.path),
            "reads": read.note,
            "data": read.data,
            "feature_seconds": seconds,
            "widths": [int(f.shape[1]) for f in features],
        }
        return features, labels, record


def predict(
    base: str | Path,
    data: Mapping[str, Any],
    target_base: str | Path | None = None,
    backbone: str | None = None,
    backbone_options: Mapping[str, Any] | None = None,
    images: int = IMAGES,
    seed: int = 0,
    pooling: Pooling = "avg",
    grid: int = GRID,
    max_dim: int = MAX_DIM,
    estimators: Sequence[str] = ESTIMATOR_NAMES,
    match_mean: bool = True,
    batch_size: int = BATCH_SIZE,
    device: str = "cpu",
    output: str | Path | None = None,
    wandb: outputs.WandbMode = "off",
    wandb_project: str = WANDB_PROJECT,
    config_files: Sequence[str | Path] = (),
    quiet: bool = False,
) -> list[ScoreRow]:
    """Score every cut point of ``base`` for the target ``data`` with every estimator (module docstring).

    Args:
        base: Base A: a checkpoint of this project (a fit's or a study cell's), or with ``backbone`` a torchvision
            weights file.
        data: The target data section (``class_path``, ``init_args``), as in a fit config.
        target_base: The target's own base B (a checkpoint), for the ``selffer`` and ``difference`` variants.
        backbone: The torchvision backbone ``base`` holds weights of (``models.backbones.build_backbone``).
        backbone_options: Its options (e.g. ``{"stem": "small"}``).
        images: Validation images in the sample (all where fewer).
        seed: Draws the sample and the probe's held-out part.
        pooling: ``avg`` or ``grid`` (``experiments.predict.features``).
        grid: The ``grid`` pooling's side.
        max_dim: The most features per stage.
        estimators: Names among ``logme``, ``hscore``, ``transrate``, ``probe``.
        match_mean: Each network reads the images with its own training data's mean image, where its checkpoint says
            (``experiments.predict.target``).
        batch_size: Images per forward pass.
        device: Where the networks run: ``cpu``, ``cuda`` or ``auto``.
        output: A folder for ``scores.csv``, ``scores.md``, ``scores.png``, ``scores.json``; None: no files.
        wandb: ``off``, or log the table to W&B ``offline`` or ``online`` (needs ``output``).
        wandb_project: The W&B project.
        config_files: The files ``data`` came from, recorded with their sha256 in ``scores.json``.
        quiet: Print nothing.

    Returns:
        One :class:`ScoreRow` per cut point, estimator and variant.

    Raises:
        SettingError, InputFileError: A setting, file or data module the prediction cannot use, named.
    """
    start = time.perf_counter()
    say = (lambda text: None) if quiet else (lambda text: print(f"predict: {text}", flush=True))
    estimators = list(estimators)
    _check_settings(images, pooling, grid, max_dim, estimators, batch_size, wandb)
    if wandb != "off" and output is None:
        raise SettingError("--wandb logs the scores of a run with an --output folder: give one")
    chosen = _device(device)
    data = {"class_path": data["class_path"], "init_args": dict(data.get("init_args") or {})}
    module = build_module(data)
    total = count_of(module, data)
    indices = sample_indices(total, images, seed)
    settings = {
        "images": images,
        "seed": seed,
        "pooling": pooling,
        "grid": grid,
        "max_dim": max_dim,
        "estimators": estimators,
        "match_mean": match_mean,
        "batch_size": batch_size,
        "device": str(chosen),
        "backbone": backbone,
        "backbone_options": dict(backbone_options or {}),
    }
    if backbone is None:
        network_a = load_checkpoint(base, "--base")
    else:
        network_a = load_weights(
            base,
            backbone,
            backbone_options or {},
            module.in_channels,
            module.input_size,
            getattr(module, "num_classes", 1),
            "--base",
        )
    network_b = None if target_base is None else load_checkpoint(target_base, "--target_base")
    stages = transferable_stages(network_a.net.stage_names)
    if network_b is not None and tuple(network_b.net.stage_names) != tuple(network_a.net.stage_names):
        raise SettingError(
            f"--target_base {target_base} has stages {network_b.net.stage_names}, --base {base} "
            f"{network_a.net.stage_names}: the selffer variant compares the same stages"
        )
    say(f"{len(indices)} of {total} validation images (seed {seed}); {len(stages)} stages of {network_a.path}")
    read = _Features(data, module, indices, settings, chosen, match_mean)
    raw, labels, record_a = read(network_a, "--base")
    say(f"base: features in {record_a['feature_seconds']:.1f} s, reading {record_a['reads']}")
    selffer, record_b = None, None
    if network_b is not None:
        selffer, labels_b, record_b = read(network_b, "--target_base")
        if not torch.equal(labels, labels_b):
            raise SettingError(
                "the target data gave other labels to the two networks' reads of the same images: "
                "its validation set is not in a fixed order"
            )
        say(f"target base: features in {record_b['feature_seconds']:.1f} s, reading {record_b['reads']}")
    try:
        rows = score_stages(stages, raw, labels, selffer, estimators, seed)
    except ValueError as err:  # e.g. a sample of one class
        raise SettingError(f"cannot score the sample of {len(labels)} images: {err}") from err
    record = {
        "inputs": {
            "base": {"path": str(network_a.path), "sha256": sha256(network_a.path)},
            "target_base": None
            if network_b is None
            else {"path": str(network_b.path), "sha256": sha256(network_b.path)},
            "config_files": [{"path": str(path), "sha256": sha256(Path(path))} for path in config_files],
            "data": data,
        },
        "sample": {
            "set": "validation",
            "seed": seed,
            "images": len(indices),
            "of": total,
            "classes": int(labels.unique().numel()),
        },
        "settings": settings,
        "networks": {"base": record_a, "target_base": record_b},
        "stages": list(stages),
        "estimator_seconds": sum(row.seconds for row in rows),
    }
    if output is not None:
        folder = Path(output)
        title = f"{_label(network_a.path)} on {data['class_path']} {data['init_args'].get('half', '')}".strip()
        if network_b is not None:
            title += f" (selffer: {_label(network_b.path)})"
        record["wall_time_s"] = time.perf_counter() - start
        outputs.write_files(rows, record, folder, title)
        outputs.log_wandb(rows, record, folder, wandb, wandb_project)
        say(f"{len(rows)} scores in {record['wall_time_s']:.1f} s -> {folder / outputs.CSV_NAME}")
    else:
        say(f"{len(rows)} scores in {time.perf_counter() - start:.1f} s")
    return rows
