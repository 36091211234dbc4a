"""The per-pixel mean image of a training set (Caffe's ``compute_image_mean``), computed once and cached."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules.progress import progress
from models.files import save_atomic


def _sum_images(samples: Sequence[tuple[Tensor, int] | None]) -> tuple[Tensor | None, int]:
    """Collate to (pixel-wise int64 sum, count) in the worker: no stacked batch to allocate and ship."""
    images = [sample[0] for sample in samples if sample is not None]
    if not images:
        return None, 0
    total = torch.zeros(images[0].shape, dtype=torch.int64)
    for image in images:
        total += image
    return total, len(images)


def compute_mean_image(
    dataset: Dataset, batch_size: int = 64, num_workers: int = 0, desc: str = "mean image"
) -> Tensor:
    """Average a dataset of equally sized uint8 images pixel by pixel (exact integer sums).

    Args:
        dataset: Yields ``(uint8 image [C, H, W], label)``, or ``None`` for an unreadable image (skipped).
        batch_size: Images summed per worker task.
        num_workers: DataLoader worker processes.
        desc: Progress bar label.

    Returns:
        The mean image, float32 ``[C, H, W]`` on the 0-255 scale.

    Raises:
        ValueError: No image could be read.
    """
    # Its own generator: whether the mean is computed or read from the cache leaves the global one alone.
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_sum_images,
        generator=torch.Generator().manual_seed(0),
    )
    total: Tensor | None = None
    count = 0
    for batch_sum, batch_count in progress(loader, desc, "batch", leave=False):
        if batch_sum is not None:
            total = batch_sum if total is None else total + batch_sum
            count += batch_count
    if total is None:
        raise ValueError("cannot compute a mean image: the dataset has no readable image")
    return (total.double() / count).float()


def cached_mean_image(path: Path, compute: Callable[[], Tensor]) -> Tensor:
    """Load the mean image cached at ``path``, or compute it and write it there (atomically).

    Raises:
        PermissionError: The cache folder is not writable.
    """
    if path.exists():
        return torch.load(path, weights_only=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK):
            raise PermissionError(path.parent)
    except PermissionError as err:
        raise PermissionError(
            f"cannot write the mean-image cache in {path.parent}: set the datamodule's cache_dir to a writable folder"
        ) from err
    mean = compute()
    save_atomic(mean, path)
    return mean
