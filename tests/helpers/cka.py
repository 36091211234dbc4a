"""What the CKA tests share: a tiny CaffeNet's transferable stages and seeded Gaussian features."""

from __future__ import annotations

import torch

STAGES = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")  # a CaffeNet's stages but the head


def gaussian(*shape: int, seed: int = 0) -> torch.Tensor:
    """Standard normal values of ``shape`` from a generator seeded with ``seed``."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
