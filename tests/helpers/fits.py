"""CLI fits that checkpoint every few steps, and the checks that a resumed fit equals the uninterrupted one (exact
resume, DDP, backbone transfers): the fit arguments, the data, callbacks that copy ``last.ckpt`` or kill the fit at a
step (by class path: ``--trainer.callbacks+=tests.helpers.fits.KillAtStep``), and the comparison."""

from __future__ import annotations

import csv
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torchvision.io import encode_jpeg

from datamodules.imagenet_lists import imagenet_wnids
from datamodules.splits import IMAGENET_SPLITS
from tests.helpers.ranks import run_module
from tests.helpers.run_dirs import run_dir

TINY_MODEL = [
    "--model.num_outputs",
    "null",
    "--model.widths",
    "[8, 8, 8, 8, 8, 16, 16]",
    "--model.conv1_kernel",
    "5",
    "--model.conv1_stride",
    "1",
    "--model.init",
    "kaiming",
]  # dropout 0.5 stays on
FASHION = [
    "--data",
    "datamodules.FashionMNISTHalf",
    "--data.init_args.images_per_class",
    "20",  # 100 images
    "--data.init_args.batch_size",
    "16",
    "--data.init_args.pixel_scale",
    "0.0078125",
]
IMAGENET_HALF = ("natman", "natural")  # 449 classes


def make_half_tree(root: Path, per_class: int = 1) -> Path:
    """``root/{train,val}/<wnid>/`` for the classes of :data:`IMAGENET_HALF`, small noise JPEGs (crops differ)."""
    generator = torch.Generator().manual_seed(0)
    for subset in ("train", "val"):
        for c in IMAGENET_SPLITS.classes(*IMAGENET_HALF):
            wnid = imagenet_wnids()[c]
            (root / subset / wnid).mkdir(parents=True, exist_ok=True)
            for j in range(per_class):
                image = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8, generator=generator)
                (root / subset / wnid / f"{wnid}_{j}.JPEG").write_bytes(encode_jpeg(image, quality=90).numpy())
    return root


def imagenet_args(tree: Path) -> list[str]:
    """ImageNetHalf on the generated tree: 449 images, 9 batches an epoch, 2 persistent workers (the default)."""
    return [
        "--data",
        "datamodules.ImageNetHalf",
        "--data.init_args.root",
        str(tree),
        "--data.init_args.split",
        IMAGENET_HALF[0],
        "--data.init_args.half",
        IMAGENET_HALF[1],
        "--data.init_args.cache_dir",
        str(tree / ".cache"),
        "--data.init_args.batch_size",
        "50",
        "--data.init_args.num_workers",
        "2",
        "--data.init_args.image_size",
        "32",
        "--data.init_args.crop_size",
        "28",
        "--data.init_args.pixel_scale",
        "0.0078125",
    ]


def fit_args(root: Path, data: list[str], max_steps: int, every: int, val_every: int) -> list[str]:
    """A CLI fit that checkpoints every ``every`` steps (``step=N.ckpt``) and logs every step to a CSV file."""
    return [
        "fit",
        "--seed_everything",
        "0",
        *data,
        *TINY_MODEL,
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "1",
        "--trainer.max_steps",
        str(max_steps),
        "--trainer.val_check_interval",
        str(val_every),
        "--trainer.check_val_every_n_epoch",
        "null",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--checkpoint.monitor",
        "null",
        "--checkpoint.save_top_k",
        "-1",
        "--checkpoint.every_n_train_steps",
        str(every),
        "--checkpoint.filename",
        "{step}",
        "--trainer.default_root_dir",
        str(root),
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir",
        str(root),
    ]


class CopyLastAt(Callback):
    """Copies ``last.ckpt`` to ``at<step>.ckpt`` before training step ``step``: what a kill there leaves behind."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        last = Path(trainer.checkpoint_callback.dirpath, "last.ckpt")  # the run folder's checkpoints
        if trainer.global_step == self.step:
            shutil.copy(last, last.with_name(f"at{self.step}.ckpt"))


class KillAtStep(Callback):
    """SIGKILLs its process group (the fit, its DDP ranks and loader workers) once ``step`` steps are trained."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step:
            os.killpg(os.getpgid(0), signal.SIGKILL)


def run_subprocess(module: str, args: list[str], timeout: int = 240) -> tuple[int, str]:
    """``python -m MODULE ARGS`` in its own process group, one torch thread (as the in-process fits)."""
    return run_module(module, args, "the fit", timeout, env={"OMP_NUM_THREADS": "1"})


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two checkpoint trees differ (tensors compared exactly, dtype and shape included)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(map(str, a.keys() ^ b.keys()))}"]
        return [d for key in a for d in differences(a[key], b[key], f"{path}/{key}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [f"{path}: tensors differ"]
    return [] if type(a) is type(b) and a == b else [f"{path}: {a!r} != {b!r}"]


def checkpoint_at(root: Path, step: int) -> dict[str, Any]:
    """The run's step-``step`` checkpoint, without ModelCheckpoint's own state (file paths of this run's folder).

    A step file, not ``last.ckpt``: which moment ``last.ckpt`` holds at the end of a fit depends on the
    checkpoint callback's bookkeeping (a resumed fit writes it once more after the epoch end).
    """
    checkpoint = torch.load(run_dir(root) / "checkpoints" / f"step={step}.ckpt", weights_only=True)
    checkpoint["callbacks"] = {key: value for key, value in checkpoint["callbacks"].items() if "Checkpoint" not in key}
    return checkpoint


def logged_from(root: Path, step: int) -> list[tuple[str, ...]]:
    """The metrics the run's latest fit logged at logger steps >= ``step`` (its CSV logger's newest ``version_*`` in the
    run folder; training throughput, a timing, left out)."""
    latest = max(run_dir(root).glob("version_*"), key=lambda folder: int(folder.name.removeprefix("version_")))
    with open(latest / "metrics.csv") as file:
        rows = [row for row in csv.DictReader(file) if int(row["step"]) >= step]
    return sorted(tuple(sorted(f"{k}={v}" for k, v in row.items() if v and "per_sec" not in k)) for row in rows)


def assert_same_fit(whole: Path, resumed: Path, resumed_at: int, compared_at: int) -> None:
    """The checkpoints at step ``compared_at`` (weights, optimizer, schedule, loops, RNG and loader states, training
    accuracy totals, validation history) and the metrics logged since the resume: all bit-identical."""
    assert compared_at > resumed_at
    assert not differences(checkpoint_at(whole, compared_at), checkpoint_at(resumed, compared_at))
    assert logged_from(whole, resumed_at) == logged_from(resumed, resumed_at)
    assert any("train/top1_epoch" in field for row in logged_from(resumed, resumed_at) for field in row)
