"""Dropout whose masks come from a generator of its own: a network's masks independent of everything else."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn

SavedStates = dict[str, Tensor]  # generator states by stream key, ``rank<r>/<device type>`` (see ``stream_key``)


def dropout_seed(seed: int, layer: str) -> int:
    """Seed of the dropout after ``layer`` of a network seeded with ``seed`` (never equal to ``seed``)."""
    digest = hashlib.sha256(f"transferability/dropout/{layer}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def rank_seed(seed: int, rank: int) -> int:
    """Seed of global rank ``rank``'s random stream in a run seeded with ``seed``.

    Rank 0 keeps ``seed`` (a single process draws exactly as it always did); every other rank gets a hash of both,
    so that DDP ranks draw independent dropout masks for their different examples, as Caffe's one GPU drew one
    mask per example of the whole batch.
    """
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"transferability/rank/{rank}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def global_rank() -> int:
    """This process's rank in the initialised process group; 0 without one."""
    distributed = torch.distributed
    return distributed.get_rank() if distributed.is_available() and distributed.is_initialized() else 0


def stream_key(rank: int, device_type: str) -> str:
    """Name of a saved generator state: the rank that drew from it and its device type (not index: a state saved on
    ``cuda:1`` resumes on whichever GPU that rank gets, and one saved on ``cuda:0`` loads on a CPU-only machine)."""
    return f"rank{rank}/{device_type}"


def _as_stream_key(key: str) -> str:
    """A saved key in today's form; the ``str(device)`` keys of older checkpoints (``cpu``, ``cuda:0``) are rank 0's."""
    return key if key.startswith("rank") else stream_key(0, torch.device(key).type)


class SeededDropout(nn.Module):
    """``nn.Dropout``'s computation (keep with probability 1 - p, scale by 1 / (1 - p)) on its own generator.

    Several networks trained on one data stream in one process (a fused group) each draw their masks
    from their own generator, so a network's masks depend neither on the others nor on the data
    loader's draws. Under DDP each rank draws from its own stream (seeded with ``rank_seed(seed, rank)``).
    The generators' states are the module's extra state, keyed by ``stream_key`` (rank and device type): they
    travel in the network's ``state_dict`` and so in every checkpoint (under DDP ``callbacks.rng.GlobalRNGState``
    adds every rank's), and a resumed fit draws the masks it would have drawn. A state whose stream this process
    does not draw from (another rank's, or a GPU's on a CPU-only machine) is kept, unused, and saved again.

    Args:
        p: Probability of zeroing an element.
        seed: Seed of the generator (created on first use, on the input's device).
    """

    def __init__(self, p: float, seed: int) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}  # by stream key
        self._saved: SavedStates = {}  # loaded states of streams not drawn from yet

    def generator(self, device: torch.device) -> torch.Generator:
        """This rank's generator on ``device``; on first use seeded with ``rank_seed(seed, rank)`` or a saved state."""
        rank = global_rank()
        key = stream_key(rank, device.type)
        generator = self._generators.get(key)
        if generator is None:
            generator = torch.Generator(device=device).manual_seed(rank_seed(self.seed, rank))
            if key in self._saved:
                generator.set_state(self._saved.pop(key))
        elif generator.device != device:  # e.g. cuda:0 -> cuda:1: the stream goes on there
            generator = torch.Generator(device=device).set_state(generator.get_state())
        self._generators[key] = generator
        return generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        noise = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator(x.device))
        return x * noise.div_(1.0 - self.p)

    def get_extra_state(self) -> SavedStates:
        """The generators' states by stream key (saved with the network's weights), unused loaded ones included."""
        return {**self._saved, **{key: generator.get_state() for key, generator in self._generators.items()}}

    def set_extra_state(self, state: Any) -> None:
        """Take saved states: a stream already drawn from continues from its state, the others when first used."""
        self._saved = {}
        for key, value in dict(state or {}).items():
            key = _as_stream_key(key)
            if key in self._generators:
                self._generators[key].set_state(value.cpu())
            else:
                self._saved[key] = value.cpu()

    def extra_repr(self) -> str:
        return f"p={self.p}, seed={self.seed}"
