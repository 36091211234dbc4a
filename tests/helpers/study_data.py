"""A tiny in-memory data module with the class-split interface of ``datamodules.HalfDataModule``, for study tests,
and callbacks that interrupt a cell's fit once (a SIGKILL, or USR2 to its SLURM job)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

HALVES = {"dissimilar": ("clothing", "footwear_bags"), "whole": ("all",)}
CLASSES = {"A": 3, "B": 3, "clothing": 4, "footwear_bags": 2, "all": 6}


class StudyData(LightningDataModule):
    """Random 1x28x28 images of one half of a split (random labels: the accuracy stays near chance).

    Args:
        split: ``random<seed>`` (halves ``A``, ``B``), ``dissimilar`` or ``whole`` (half ``all``).
        half: A half of ``split``.
        batch_size: Batch size.
        images_per_class: Training (and validation) images per class.
        mean_half: Accepted for the interface; unused.
    """

    def __init__(
        self,
        split: str = "random0",
        half: str = "A",
        batch_size: int = 8,
        images_per_class: int = 4,
        mean_half: str | None = None,
    ) -> None:
        super().__init__()
        if half not in self.halves(split):
            raise ValueError(f"unknown half {half!r} of split {split!r}")
        self.num_classes = CLASSES[half]
        self.in_channels, self.input_size = 1, 28  # linked into the model by the CLI
        self.batch_size = batch_size
        generator = torch.Generator().manual_seed(sum(map(ord, split + half)))
        count = images_per_class * self.num_classes
        labels = torch.arange(count) % self.num_classes
        self.train_set = TensorDataset(torch.randn(count, 1, 28, 28, generator=generator), labels)
        self.val_set = TensorDataset(torch.randn(count, 1, 28, 28, generator=generator), labels)

    @staticmethod
    def halves(split: str) -> tuple[str, ...]:
        """The half names of ``split``."""
        if split.startswith("random"):
            return ("A", "B")
        if split not in HALVES:
            raise ValueError(f"unknown split {split!r}")
        return HALVES[split]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)


class KillOnce(Callback):
    """SIGKILLs its own process after training step ``step`` of the cell ``cell``, once (``marker`` remembers).

    Args:
        cell: The cell folder name (the trainer's ``default_root_dir``) to kill in.
        step: The global step after which to kill.
        marker: A file written just before the kill; while it exists, nothing is killed.
    """

    def __init__(self, cell: str, step: int, marker: str) -> None:
        self.cell, self.step, self.marker = cell, step, Path(marker)

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        here = Path(trainer.default_root_dir).name == self.cell
        if here and trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)


class SignalOnce(Callback):
    """Sends USR2 to its own SLURM job after training step ``step`` of the cell ``cell``, once, and waits for it.

    ``scancel --signal=USR2 $SLURM_JOB_ID`` is what Slurm sends before a time limit (submitit's
    ``--signal=USR2@90``): submitit's handler checkpoints the task, requeues it with ``scontrol requeue`` and
    exits, so the fit never gets past this step in its first run.

    Args:
        cell: The cell folder name (the trainer's ``default_root_dir``) to interrupt.
        step: The global step after which to signal.
        marker: A file written just before the signal; while it exists, nothing is signalled.
        wait_s: How long to wait for the signal before failing the fit.
    """

    def __init__(self, cell: str, step: int, marker: str, wait_s: float = 60.0) -> None:
        self.cell, self.step, self.marker, self.wait_s = cell, step, Path(marker), wait_s

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        here = Path(trainer.default_root_dir).name == self.cell
        if not here or trainer.global_step != self.step or self.marker.exists():
            return
        job = os.environ.get("SLURM_JOB_ID")
        if not job:
            raise RuntimeError(f"SignalOnce: cell {self.cell} is not running as a SLURM job (no SLURM_JOB_ID)")
        self.marker.write_text(f"USR2 to job {job} after step {self.step}\n")
        subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:  # submitit's handler ends the fit from inside this sleep
            time.sleep(0.1)
        raise RuntimeError(f"SignalOnce: USR2 sent to job {job} did not interrupt it within {self.wait_s:.0f} s")
