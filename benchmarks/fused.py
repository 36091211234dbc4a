"""Fused transfer training against training the same cells one after another.

The seven frozen AnB cells (n = 1..7) of one base network and one target half, on the small 28-pixel
network of the default study and data held in memory: first one fit per cell (CaffeNetClassifier +
TransferCallback, as the study runs a cell), then all seven in one ``one fused fit``. Both train the same
steps with the same validation and both write their checkpoints; the times include every fit's
set-up, as a study pays it (wall clock, and this process's CPU time, steadier on a shared machine).
Goal: fused at least 2x faster.

The data is Fashion-MNIST's random0 half B (``FashionMNISTHalf``) when its files are present, else
random images of the same shape held in memory.

    python -m benchmarks.fused [--steps 200] [--batch 128] [--val-every 100] [--repeats 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer, seed_everything
from torch.utils.data import TensorDataset

from benchmarks.common import SMALL, machine, markdown
from callbacks.transfer import TransferCallback
from models.caffenet import STAGE_NAMES
from models.caffenet_classifier import CaffeNetClassifier
from models.fused import FusedCell, FusedTransfer
from models.transfer import depths

CELLS = depths(STAGE_NAMES)


def datamodule(batch: int) -> tuple[LightningDataModule, int, str]:
    """Fashion-MNIST random0 half B in memory, or random images of its shape; with its number of classes."""
    try:
        from datamodules import FashionMNISTHalf

        data = FashionMNISTHalf(split="random0", half="B", batch_size=batch)
        data.setup("fit")
        return data, data.num_classes, "Fashion-MNIST random0 half B (in memory)"
    except (ImportError, RuntimeError, OSError) as err:
        generator = torch.Generator().manual_seed(0)

        def random_set(count: int) -> TensorDataset:
            return TensorDataset(
                torch.randn(count, 1, 28, 28, generator=generator), torch.randint(0, 5, (count,), generator=generator)
            )

        random_data = LightningDataModule.from_datasets(random_set(30_000), random_set(5_000), batch_size=batch)
        return random_data, 5, f"random 28x28 images in memory (Fashion-MNIST unavailable: {type(err).__name__})"


def trainer_settings(steps: int, val_every: int, val_batches: int) -> dict[str, Any]:
    return dict(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        limit_val_batches=val_batches,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def one_after_another(
    root: Path, base: str, data: LightningDataModule, model: dict[str, Any], settings: dict[str, Any], seed: int
) -> tuple[float, float]:
    """(wall, CPU) seconds to train the cells one fit each, as the study runs them."""
    start, cpu = time.perf_counter(), time.process_time()
    for n in CELLS:
        seed_everything(seed, verbose=False)
        module = CaffeNetClassifier(**model)
        callbacks: list[Callback] = [TransferCallback(base, n=n)]
        trainer = Trainer(**settings, default_root_dir=root / f"AnB_n{n}", callbacks=callbacks)
        trainer.fit(module, datamodule=data)
        trainer.save_checkpoint(root / f"AnB_n{n}" / "checkpoints" / "last.ckpt")
    return time.perf_counter() - start, time.process_time() - cpu


def fused(
    root: Path, base: str, data: LightningDataModule, model: dict[str, Any], settings: dict[str, Any], seed: int
) -> tuple[float, float]:
    """(wall, CPU) seconds to train the same cells in one fused fit."""
    start, cpu = time.perf_counter(), time.process_time()
    cells = [FusedCell(n, str(root / f"AnB_n{n}"), seed=seed) for n in CELLS]
    seed_everything(seed, workers=True, verbose=False)  # as the CLI seeds before building the group
    module = FusedTransfer.from_network_arguments(base, cells, model)
    trainer = Trainer(**{**settings, "enable_checkpointing": False}, default_root_dir=root / "group")
    trainer.fit(module, datamodule=data)
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--val-batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's); 1 is steadier on a machine shared with other jobs",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data, num_classes, described = datamodule(args.batch)
    model = {**SMALL, "num_classes": num_classes}
    settings = trainer_settings(args.steps, args.val_every, args.val_batches)
    seq_times, fused_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seed_everything(0, verbose=False)
        base = root / "base.ckpt"  # an untrained base: the cost of a step does not depend on the weights
        torch.save({"state_dict": CaffeNetClassifier(**model).state_dict()}, base)
        for repeat in range(args.repeats):
            seq_times.append(one_after_another(root / f"seq{repeat}", str(base), data, model, settings, seed=1))
            fused_times.append(fused(root / f"fused{repeat}", str(base), data, model, settings, seed=1))
    (seq, seq_cpu), (fus, fus_cpu) = min(seq_times), min(fused_times)
    cell_steps = len(CELLS) * args.steps
    rows = [
        [
            f"{len(CELLS)} fits, one after another",
            f"{seq:.1f}",
            f"{seq_cpu:.1f}",
            f"{seq / cell_steps * 1e3:.1f}",
            "1.00",
            "1.00",
        ],
        [
            f"1 fused fit of {len(CELLS)} cells",
            f"{fus:.1f}",
            f"{fus_cpu:.1f}",
            f"{fus / cell_steps * 1e3:.1f}",
            f"{seq / fus:.2f}",
            f"{seq_cpu / fus_cpu:.2f}",
        ],
    ]
    report = "\n".join(
        [
            f"Fused transfer training: frozen AnB n=1..7, small network, batch {args.batch}, {args.steps} steps per "
            f"cell, validation every {args.val_every} steps on {args.val_batches} batches; {described}; "
            f"best of {args.repeats}, {torch.get_num_threads()} torch threads",
            f"Machine: {machine()}; {datetime.date.today()}",
            "",
            markdown(
                rows, ["training", "wall s", "CPU s", "wall ms per cell-step", "speed-up (wall)", "speed-up (CPU)"]
            ),
        ]
    )
    print(report)
    return report


if __name__ == "__main__":
    main()
