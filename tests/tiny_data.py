"""A tiny in-memory DataModule of random images, for fast tests through the real Trainer and CLI."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset


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

    def __init__(self, num_classes: int = 4, num_samples: int = 32, batch_size: int = 8, image_size: int = 28,
                 channels: int = 1, shuffle: bool = False, seed: int = 0) -> None:
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
