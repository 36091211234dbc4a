"""Dropout whose masks come from a generator of its own: a network's masks independent of everything else."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn


def dropout_seed(seed: int, layer: str) -> int:
    """Seed of the dropout after ``layer`` of a network seeded with ``seed`` (never equal to ``seed``)."""
    digest = hashlib.sha256(f"transferability/dropout/{layer}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class SeededDropout(nn.Module):
    """``nn.Dropout``'s computation (keep with probability 1 - p, scale by 1 / (1 - p)) on its own generator.

    Several networks trained on one data stream in one process (a fused group) each draw their masks
    from their own generator, so a network's masks depend neither on the others nor on the data
    loader's draws. The generators' states are the module's extra state: they travel in the network's
    ``state_dict`` and so in every checkpoint, and a resumed fit draws the masks it would have drawn.

    Args:
        p: Probability of zeroing an element.
        seed: Seed of the generator (one generator per device, created on first use).
    """

    def __init__(self, p: float, seed: int) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        """The generator of ``device``, seeded with ``seed`` on first use."""
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        noise = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator(x.device))
        return x * noise.div_(1.0 - self.p)

    def get_extra_state(self) -> dict[str, Any]:
        """The generators' states by device (saved with the network's weights)."""
        return {device: generator.get_state() for device, generator in self._generators.items()}

    def set_extra_state(self, state: Any) -> None:
        for device, value in dict(state or {}).items():
            self.generator(torch.device(device)).set_state(value.cpu())

    def extra_repr(self) -> str:
        return f"p={self.p}, seed={self.seed}"
