"""A training data stream that a fit resumes exactly from any step: order and augmentation are pure functions.

Epoch ``e``'s order is a permutation drawn from ``(seed, e)`` alone, and every sample travels to the dataset as
a :data:`SampleKey` ``(index, seed)``: its index and the seed of its augmentation, a hash of ``(seed, e, position
in the epoch)``. Neither depends on the global random generators, on the number of DataLoader workers or on
which worker loads a sample. :class:`ResumableLoader` tells Lightning (through ``state_dict`` /
``load_state_dict``, which Lightning keeps in the checkpoint) the epoch and the batches it has yielded in
it; a resumed fit then skips those batches and continues with the same keys as the uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from typing_extensions import override

_UINT64 = np.uint64
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment
_MASK63 = (1 << 63) - 1  # seeds stay non-negative int64 (what torch.Generator.manual_seed and tensors take)


# What the training sampler yields to the dataset: (sample index, seed of its augmentation). A plain tuple: a
# NamedTuple costs about 2 us a sample to build, a noticeable share of a small GPU step's main-process time.
SampleKey = tuple[int, int]


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 values (wrapping arithmetic): a bijection that scrambles every bit."""
    values = values ^ (values >> _UINT64(30))
    values = values * _UINT64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> _UINT64(27))
    values = values * _UINT64(0x94D049BB133111EB)
    return values ^ (values >> _UINT64(31))


def _chain(*values: int | np.ndarray) -> np.ndarray:
    """A hash of a sequence of non-negative integers (the last may be an array of them), as uint64."""
    state = np.zeros(1, dtype=_UINT64)
    for value in values:
        value = np.asarray(value, dtype=np.int64).astype(_UINT64)
        state = _mix(state ^ (value + _UINT64(_GOLDEN)))
    return state


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s permutation: a hash of ``(seed, epoch)``, so nearby seeds share no order."""
    return int(_chain(seed & _MASK63, epoch)[0]) & _MASK63


def sample_seeds(seed: int, epoch: int, positions: np.ndarray) -> np.ndarray:
    """The augmentation seeds of the samples at ``positions`` of epoch ``epoch``'s order (int64, non-negative)."""
    return (_chain(seed & _MASK63, epoch, positions) & _UINT64(_MASK63)).astype(np.int64)


class ResumableSampler(DistributedSampler):
    """This rank's share of epoch ``epoch``'s order, as :data:`SampleKey` items, from position ``start`` on.

    The epoch's order is ``randperm(len(dataset))`` drawn from :func:`epoch_seed` (``range`` when not
    shuffling), padded with its first indices to a multiple of ``num_replicas``; rank ``r`` takes the positions
    ``r, r + num_replicas, ...``, as torch's ``DistributedSampler`` does (being one, Lightning keeps it under
    DDP instead of injecting its own). Lightning sets ``epoch`` through ``set_epoch`` at every epoch start.

    Args:
        dataset: The training set.
        num_replicas: Processes sharing the epoch (the trainer's world size).
        rank: This process's global rank.
        shuffle: A fresh permutation every epoch (True) or the dataset's order.
        seed: The run's seed (Lightning's ``PL_GLOBAL_SEED``, set by ``seed_everything``).
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0  # position in this rank's share where the next iteration begins

    def order(self) -> torch.Tensor:
        """The epoch's order over all ranks, padded to ``total_size``."""
        n = len(self.dataset)  # type: ignore[arg-type]  # a sized Dataset (torch's Dataset declares no __len__)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch)))
        else:
            order = torch.arange(n)
        padding = self.total_size - n
        return torch.cat([order, order.repeat(padding // n + 1)[:padding]]) if padding else order

    @override
    def __iter__(self) -> Iterator[SampleKey]:
        positions = np.arange(self.rank + self.start * self.num_replicas, self.total_size, self.num_replicas)
        indices = self.order()[torch.from_numpy(positions)].tolist()
        return zip(indices, sample_seeds(self.seed, self.epoch, positions).tolist())


class ResumableLoader(DataLoader):
    """A training DataLoader over a :class:`ResumableSampler` that Lightning checkpoints and resumes mid-epoch.

    ``state_dict()`` is the epoch and the batches yielded in it; after ``load_state_dict`` the next iteration
    of that epoch skips those batches (an iteration of another epoch starts at its beginning). The real
    iterator is made at the first ``next``: Lightning creates it before it sets the sampler's epoch, and worker
    processes draw their indices as soon as it exists. Worker seeds come from the loader's own generator,
    seeded from ``(seed, epoch)``, so iterating draws nothing from the global generator (dropout's).

    Lightning may rebuild the loader with another sampler (``trainer.overfit_batches`` puts a
    ``SequentialSampler``); it then iterates as a plain DataLoader and does not resume mid-epoch.

    Args:
        dataset: The training set; it receives :data:`SampleKey` items.
        sampler: A :class:`ResumableSampler` (its epoch, rank and seed).
        batch_size: Samples per batch on this rank.
        **kwargs: Other ``DataLoader`` arguments (workers, collate, pinning).
    """

    def __init__(
        self, dataset: Dataset, sampler: Sampler | None = None, batch_size: int | None = 1, **kwargs: Any
    ) -> None:
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self.position = (0, 0)  # (epoch, batches yielded in it)
        self._resume_at: tuple[int, int] | None = None

    @override
    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]  # torch types it as its private iterator class
        return _EpochIterator(self)

    def state_dict(self) -> dict[str, int]:
        """Where the stream is: ``{"epoch": e, "batches": batches of epoch e yielded so far}``."""
        epoch, batches = self.position
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state``: the next iteration of its epoch skips the batches it had yielded."""
        self._resume_at = (int(state["epoch"]), int(state["batches"]))

    def _start_epoch(self) -> Iterator[Any]:
        """The DataLoader iterator of the sampler's current epoch, past any batches already trained on."""
        if not isinstance(self.sampler, ResumableSampler):
            self.position = (0, 0)
            return super().__iter__()
        epoch = self.sampler.epoch
        skip = self._resume_at[1] if self._resume_at is not None and self._resume_at[0] == epoch else 0
        self._resume_at = None
        self.sampler.start = skip * self.batch_size  # type: ignore[operator]
        if self.generator is not None:
            self.generator.manual_seed(epoch_seed(self.sampler.seed, epoch))
        self.position = (epoch, skip)
        return super().__iter__()


class _EpochIterator(Iterator[Any]):
    """Starts the loader's epoch at the first ``next`` and counts the batches it yields."""

    def __init__(self, loader: ResumableLoader) -> None:
        self._loader = loader
        self._iterator: Iterator[Any] | None = None

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._loader._start_epoch()
        batch = next(self._iterator)
        epoch, batches = self._loader.position
        self._loader.position = (epoch, batches + 1)
        return batch
