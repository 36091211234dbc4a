"""Loader defaults that scale with the ranks, and a 2-rank start whose mean image is not cached yet."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment

import datamodules.mean_image
from datamodules import FashionMNISTHalf
from datamodules.base import MAX_AUTO_WORKERS, auto_workers, cpus_per_rank
from experiments.cli import main, run_cli
from models.dropout import global_rank
from tests.helpers.fake_data import needs_debian_fashion_mnist
from tests.helpers.fits import fit_args, imagenet_args, make_half_tree, run_subprocess
from tests.helpers.run_dirs import run_dir

pytestmark = pytest.mark.usefixtures("one_thread")


def fake_trainer(devices: int, environment: Any = None) -> Any:
    """What ``cpus_per_rank`` reads of a trainer: its devices per machine and its cluster environment."""
    return SimpleNamespace(num_devices=devices, strategy=SimpleNamespace(cluster_environment=environment))


def test_cpus_are_shared_by_the_ranks_of_a_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 CPUs, 8 ranks: 8 each, 7 workers; under SLURM each task's own CPUs; one CPU: still one worker."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert cpus_per_rank(fake_trainer(8)) == 8 and auto_workers(8) == 7
    assert cpus_per_rank(None) == 64 and auto_workers(64) == MAX_AUTO_WORKERS
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert cpus_per_rank(fake_trainer(8, SLURMEnvironment())) == 6
    assert cpus_per_rank(fake_trainer(8)) == 8  # SLURM's variable alone: ranks this trainer started itself
    assert auto_workers(1) == 1


def test_auto_workers_size_both_loaders(monkeypatch: pytest.MonkeyPatch) -> None:
    """``num_workers: auto`` follows the CPUs per rank; validation's ``auto`` takes at most 2 of them."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    dm = FashionMNISTHalf(num_workers="auto", images_per_class=2, batch_size=4)
    assert (dm.num_workers, dm.val_num_workers) == (8, 2)
    dm.trainer = fake_trainer(4)  # 4 CPUs a rank
    assert (dm.num_workers, dm.val_num_workers) == (3, 2)
    assert FashionMNISTHalf(num_workers=0).val_num_workers == 0  # in memory: no workers unless asked for
    assert FashionMNISTHalf(num_workers=4, val_num_workers=1).val_num_workers == 1
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0 or 'auto'"):
        FashionMNISTHalf(num_workers="many")


@needs_debian_fashion_mnist
def test_auto_workers_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--data.init_args.num_workers auto` parses, and the fit's loaders get the resolved counts."""
    monkeypatch.setattr(sys, "argv", ["transferability"])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    args = fit_args(
        tmp_path,
        [
            "--data",
            "datamodules.FashionMNISTHalf",
            "--data.init_args.images_per_class",
            "2",
            "--data.init_args.batch_size",
            "5",
        ],
        max_steps=1,
        every=1,
        val_every=1,
    )
    cli = run_cli(
        [
            *args,
            "--data.init_args.num_workers",
            "auto",
            "--model.num_outputs",
            "null",
            "--model.widths",
            "[8, 8, 8, 8, 8, 16, 16]",
            "--model.conv1_kernel",
            "5",
            "--model.conv1_stride",
            "1",
        ]
    )
    assert cli.trainer.train_dataloader.num_workers == 2
    assert cli.trainer.val_dataloaders.num_workers == 2


# --- a 2-rank start without a cached mean image --------------------------------------------------------


def start_main(out: str, tree: str) -> None:
    """The launch (``python -m tests.datamodules.test_ddp_loaders start OUT TREE``): a 2-rank fit whose mean image
    is not cached.

    Writing the mean image takes 3 s longer and is recorded with the rank that wrote it (``OUT/writers``).
    """
    save = datamodules.mean_image.save_atomic

    def slow_save(value: Any, path: Path) -> None:
        time.sleep(3)
        with open(Path(out, "writers"), "a") as file:
            file.write(f"{global_rank()} {Path(path).name}\n")
        save(value, path)

    datamodules.mean_image.save_atomic = slow_save
    main(
        [
            *fit_args(Path(out, "fit"), imagenet_args(Path(tree)), max_steps=2, every=2, val_every=2),
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--data.init_args.num_workers",
            "0",
            "--data.init_args.cache_dir",
            str(Path(out, "cache")),
            "--data.init_args.batch_size",
            "64",
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
        ]
    )


if __name__ == "__main__" and sys.argv[1:2] == ["start"]:
    start_main(sys.argv[2], sys.argv[3])


def test_two_ranks_start_without_a_cached_mean(tmp_path: Path) -> None:
    """2 gloo ranks, no mean cache: rank 0 computes it in prepare_data while rank 1 waits, then both train on it."""
    tree = make_half_tree(tmp_path / "imagenet")
    code, output = run_subprocess(
        "tests.datamodules.test_ddp_loaders", ["start", str(tmp_path), str(tree)], timeout=300
    )
    assert code == 0, output[-3000:]
    assert "Starting with 2 processes" in output
    writers = (tmp_path / "writers").read_text().splitlines()
    assert len(writers) == 1 and writers[0].startswith("0 mean_"), writers
    (cache,) = (tmp_path / "cache").glob("mean_*.pt")
    assert torch.load(cache, weights_only=True).shape == (3, 32, 32)
    assert torch.load(run_dir(tmp_path / "fit") / "checkpoints" / "step=2.ckpt", weights_only=True)["global_step"] == 2
