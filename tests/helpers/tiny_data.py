"""The tests' tiny network and a tiny in-memory DataModule of random images, for fast tests through the real
Trainer and CLI: one definition of each, shared by the test modules."""

from __future__ import annotations

import json
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset

# A four-class CaffeNet on 1x28x28 inputs: the network's own settings, and the task's (the data supplies them).
TINY_NETWORK: dict[str, Any] = dict(
    num_outputs=4, widths=(8, 8, 8, 8, 8, 16, 16), conv1_kernel=5, conv1_stride=1, init="kaiming"
)
TINY_SHAPE: dict[str, Any] = dict(num_classes=4, in_channels=1, input_size=28)
TINY_MODEL: dict[str, Any] = {**TINY_SHAPE, **TINY_NETWORK}  # CaffeNetClassifier(**TINY_MODEL)


def tiny_model_args(**changes: Any) -> list[str]:
    """``TINY_NETWORK`` (with ``changes``) as CLI arguments (``--model.widths [8, 8, ...]`` ...)."""

    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(list(value) if isinstance(value, tuple) else value)

    return [arg for key, value in {**TINY_NETWORK, **changes}.items() for arg in (f"--model.{key}", text(value))]


class TinyData(LightningDataModule):
    """Random ``channels x size x size`` images with random labels, the same on every call and rank.

    Args:
        num_classes: Number of labels.
        num_samples: Training images (validation gets half as many).
        batch_size: Batch size of every loader.
        image_size: Side of the square images.
        channels: Image channels.
        shuffle: Shuffle the training loader.
        seed: Seed of the data itself (independent of the global seed).
    """

    def __init__(
        self,
        num_classes: int = 4,
        num_samples: int = 32,
        batch_size: int = 8,
        image_size: int = 28,
        channels: int = 1,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels, self.input_size = channels, image_size  # linked into the model by the CLI
        self.batch_size = batch_size
        self.shuffle = shuffle
        generator = torch.Generator().manual_seed(seed)

        def make(count: int) -> TensorDataset:
            images = torch.randn(count, channels, image_size, image_size, generator=generator)
            labels = torch.randint(0, num_classes, (count,), generator=generator)
            return TensorDataset(images, labels)

        self.train_set = make(num_samples)
        self.val_set = make(max(num_samples // 2, 1))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)
