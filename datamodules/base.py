"""What every half-dataset module shares: split and half checks, the DDP batch division, the loaders."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler
from typing_extensions import override

from datamodules.resumable import ResumableLoader, ResumableSampler
from datamodules.splits import ClassSplits

Workers = int | Literal["auto"]  # a loader's worker processes per rank; "auto": sized from the CPUs per rank
MAX_AUTO_WORKERS = 8  # "auto" training workers at most (see auto_workers)
MAX_AUTO_VAL_WORKERS = 2  # "auto" validation workers: modest, they sit idle (and persistent) while training runs


def cpus_per_rank(trainer: Trainer | None) -> int:
    """The CPUs one rank may use: SLURM's ``--cpus-per-task`` when SLURM started the ranks (one a task), else
    the CPUs this process may run on, shared by the ranks of this machine (``trainer.num_devices``)."""
    environment = getattr(trainer.strategy, "cluster_environment", None) if trainer is not None else None
    if isinstance(environment, SLURMEnvironment) and "SLURM_CPUS_PER_TASK" in os.environ:
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    local_ranks = trainer.num_devices if trainer is not None else 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // max(1, local_ranks))


def auto_workers(cpus: int) -> int:
    """``auto`` training workers of a rank with ``cpus`` CPUs: one CPU left to the rank, 1 to ``MAX_AUTO_WORKERS``."""
    return max(1, min(MAX_AUTO_WORKERS, cpus - 1))


class HalfDataModule(LightningDataModule):
    """A classification dataset restricted to one half of a class split, labels re-indexed 0..K-1.

    Subclasses set ``splits`` (their :class:`ClassSplits`), ``in_channels`` and ``input_size``, and build
    ``train_set`` / ``val_set`` (and ``collate_fn`` if not torch's default) in ``setup`` after calling
    ``super().setup(stage)``. The training set receives :data:`~datamodules.resumable.SampleKey` items and
    draws its augmentation from the key's seed, so a fit resumed at any step continues exactly (see
    :mod:`datamodules.resumable`).

    Args:
        split: ``random<seed>``, a named split of the dataset, or ``whole``.
        half: A half of ``split`` (``A``/``B``, a named half, or ``all`` for ``whole``).
        batch_size: Global batch size, divided by the trainer's world size.
        num_workers: Training loader worker processes per rank; ``auto``: one fewer than the CPUs per rank
            (:func:`cpus_per_rank`), at most 8.
        pin_memory: Pin host memory (when an accelerator is present).
        persistent_workers: Keep workers alive between epochs (when ``num_workers > 0``).
        images_per_class: Keep the first N training images of each class (None: all).
        mean_half: Half of the same split whose training mean image is subtracted (None: own half).
        pixel_scale: Factor on the mean-subtracted 0-255 pixels (Caffe's ``transform_param.scale``).
        val_num_workers: Validation (and test) loader workers per rank; ``auto``: as ``num_workers``, at most 2.

    Raises:
        ValueError: An unknown split or half, or a non-positive size.
    """

    splits: ClassSplits
    in_channels: int
    input_size: int

    def __init__(
        self,
        split: str,
        half: str,
        batch_size: int,
        num_workers: Workers,
        pin_memory: bool,
        persistent_workers: bool,
        images_per_class: int | None,
        mean_half: str | None,
        pixel_scale: float,
        val_num_workers: Workers = "auto",
    ) -> None:
        super().__init__()
        self.classes = self.splits.classes(split, half)
        if mean_half is not None:
            self.splits.classes(split, mean_half)
        for name, value in (("batch_size", batch_size), ("images_per_class", images_per_class)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if pixel_scale <= 0:
            raise ValueError(f"pixel_scale must be positive, got {pixel_scale}")
        for name, workers in (("num_workers", num_workers), ("val_num_workers", val_num_workers)):
            if workers != "auto" and (not isinstance(workers, int) or workers < 0):
                raise ValueError(f"{name} must be an integer >= 0 or 'auto', got {workers!r}")
        self.num_classes = len(self.classes)
        self.split, self.half, self.mean_half = split, half, mean_half
        self.batch_size, self.workers, self.val_workers = batch_size, num_workers, val_num_workers
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers
        self.images_per_class = images_per_class
        self.pixel_scale = pixel_scale
        self.per_device_batch_size: int | None = None
        self.world_size, self.rank = 1, 0  # the trainer's, read in setup
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.collate_fn: Callable[[Any], Any] | None = None  # None: torch's default_collate

    @property
    def num_workers(self) -> int:
        """Training loader workers per rank: the ``num_workers`` setting, ``auto`` resolved for the attached trainer."""
        return self.workers if isinstance(self.workers, int) else auto_workers(cpus_per_rank(self.trainer))

    @property
    def val_num_workers(self) -> int:
        """Validation and test loader workers per rank: the ``val_num_workers`` setting; ``auto``: the training
        loader's, at most ``MAX_AUTO_VAL_WORKERS``."""
        return self.val_workers if isinstance(self.val_workers, int) else min(MAX_AUTO_VAL_WORKERS, self.num_workers)

    @classmethod
    def split_halves(cls, split: str) -> tuple[str, ...]:
        """The half names of ``split``, e.g. ``("A", "B")`` for ``random0``; ``("all",)`` for ``whole``.

        Raises:
            ValueError: Unknown split (the message lists the valid ones).
        """
        return cls.splits.halves(split)

    halves = split_halves

    @classmethod
    def split_names(cls) -> tuple[str, ...]:
        """The dataset's split names: the paper's random seeds, the dissimilar split, ``whole``."""
        return cls.splits.names()

    @override
    def setup(self, stage: str) -> None:
        self.world_size, self.rank = self._world()
        self.per_device_batch_size = self._per_device_batch_size()

    def _world(self) -> tuple[int, int]:
        """(world size, global rank) of the attached trainer; (1, 0) without one."""
        if self.trainer is None:
            return 1, 0
        return self.trainer.world_size, self.trainer.global_rank

    def _per_device_batch_size(self) -> int:
        world_size = self.world_size
        if self.batch_size % world_size:
            raise ValueError(
                f"the global batch_size {self.batch_size} does not divide across {world_size} processes "
                f"(devices x nodes): choose a multiple of {world_size}"
            )
        return self.batch_size // world_size

    @override
    def train_dataloader(self) -> ResumableLoader:
        """A fresh shuffle every epoch, drawn from the run's seed and the epoch; Lightning checkpoints its position.

        Under DDP each rank takes its share of the epoch's order (padded to a multiple of the world size).
        """
        if self.train_set is None or self.per_device_batch_size is None:
            raise RuntimeError("call setup() before asking for the train dataloader")
        # The seed seed_everything set (the CLI's seed_everything key), as Lightning's own DDP sampler reads it.
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        sampler = ResumableSampler(
            self.train_set, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed
        )
        # keyword arguments: Lightning re-instantiates a loader from them when it swaps the sampler (overfit_batches)
        return ResumableLoader(
            self.train_set,
            sampler=sampler,
            batch_size=self.per_device_batch_size,
            **self._loader_settings(self.num_workers),
        )

    @override
    def val_dataloader(self) -> DataLoader:
        """Validation counts every image exactly once, also under DDP.

        With several processes each rank takes ``indices[rank::world_size]`` (Lightning's
        ``UnrepeatedDistributedSampler``; no padding, so ranks may differ by one batch). Being a
        ``DistributedSampler``, Lightning keeps it instead of injecting its padding one. The model's
        ``validation_step`` must therefore not run collectives (``sync_dist``) per step; torchmetrics
        objects synchronise at ``compute()``.
        """
        sampler = None
        if self.world_size > 1:
            sampler = UnrepeatedDistributedSampler(
                self.val_set, num_replicas=self.world_size, rank=self.rank, shuffle=False
            )
        return self._loader(self.val_set, "val", sampler)

    @override
    def test_dataloader(self) -> DataLoader:
        """The validation set: the paper reports ILSVRC2012 val, and Fashion-MNIST's val is its test set."""
        return self.val_dataloader()

    def _loader(self, dataset: Dataset | None, name: str, sampler: Sampler | None) -> DataLoader:
        """An evaluation loader in the dataset's order."""
        if dataset is None or self.per_device_batch_size is None:
            raise RuntimeError(f"call setup() before asking for the {name} dataloader")
        # Its own generator: iterating draws nothing from the global one, which dropout draws from.
        return DataLoader(
            dataset,
            batch_size=self.per_device_batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(0),
            **self._loader_settings(self.val_num_workers),
        )

    def _loader_settings(self, workers: int) -> dict[str, Any]:
        return dict(
            num_workers=workers,
            collate_fn=self.collate_fn,
            pin_memory=self.pin_memory and torch.accelerator.is_available(),
            persistent_workers=self.persistent_workers and workers > 0,
        )
