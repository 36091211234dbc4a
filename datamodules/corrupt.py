"""Unreadable images: skip them with a warning, count them across worker processes, log the count per epoch.

A run of days should not die on one truncated JPEG. The dataset returns ``None`` for an image that does
not decode (warning with its path, counter + 1), the collate function drops it from the batch
(:func:`drop_unreadable`), and :class:`SkippedImagesLogger` logs ``data/skipped_train`` and
``data/skipped_val`` (summed over ranks) at the end of every epoch. ``ImageNetHalf.setup`` adds the
logger to the trainer's callbacks.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import default_collate, get_worker_info
from typing_extensions import override


class UnreadableImageWarning(UserWarning):
    """An image file that did not decode was skipped."""


class SkipCounter:
    """A count of skipped images shared by the main process and its DataLoader workers.

    Each process adds to its own slot of a shared-memory tensor, so no lock is needed.

    Args:
        slots: Slots for the main process and the workers (worker ``i`` uses slot ``1 + i % (slots - 1)``).
    """

    def __init__(self, slots: int = 129) -> None:
        self._counts = torch.zeros(slots, dtype=torch.int64).share_memory_()

    def add(self, path: str, error: BaseException) -> None:
        """Record one skipped image and warn, naming the file."""
        info = get_worker_info()
        slot = 0 if info is None else 1 + info.id % (len(self._counts) - 1)
        self._counts[slot] += 1
        warnings.warn(f"skipped unreadable image {path}: {error}", UnreadableImageWarning, stacklevel=2)

    @property
    def total(self) -> int:
        """Images skipped so far, over all processes."""
        return int(self._counts.sum())


def drop_unreadable(samples: Sequence[Any]) -> list[Any]:
    """The samples that are not ``None`` (unreadable images).

    Raises:
        RuntimeError: Every image of the batch was unreadable, which points at the data, not at bad luck.
    """
    kept = [s for s in samples if s is not None]
    if not kept:
        raise RuntimeError(
            f"all {len(samples)} images of a batch failed to decode (see the warnings above): check the image files"
        )
    return kept


def collate_skipping_unreadable(samples: Sequence[Any]) -> Any:
    """``default_collate`` over the samples that are not ``None`` (the unreadable ones).

    Raises:
        RuntimeError: Every image of the batch was unreadable.
    """
    return default_collate(drop_unreadable(samples))


class SkippedImagesLogger(Callback):
    """Logs the images skipped in each epoch as ``data/skipped_train`` and ``data/skipped_val``.

    Reads ``trainer.datamodule.skipped_images`` (totals per dataset, ``{"train": n, "val": m}``) and logs
    the increase since the last epoch, summed over ranks.
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    @staticmethod
    def _totals(trainer: Trainer) -> dict[str, int]:
        # Lightning sets this Trainer attribute at run time; its class does not declare it.
        return getattr(trainer.datamodule, "skipped_images", {})  # type: ignore[attr-defined]

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        totals = self._totals(trainer)
        if stage not in totals:
            return
        new = totals[stage] - self._seen.get(stage, 0)
        self._seen[stage] = totals[stage]
        pl_module.log(f"data/skipped_{stage}", float(new), reduce_fx="sum", sync_dist=True)

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._seen = dict(self._totals(trainer))  # count from here, not what earlier runs skipped

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "train")

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "val")
