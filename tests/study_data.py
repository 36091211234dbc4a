"""A tiny in-memory data module with the class-split interface of ``datamodules.HalfDataModule``, for study tests."""

from __future__ import annotations

import os
import signal
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

    def __init__(self, split: str = "random0", half: str = "A", batch_size: int = 8, images_per_class: int = 4,
                 mean_half: str | None = None) -> None:
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
