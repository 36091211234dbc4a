"""Each transferable stage's features of a sample of target images, pooled to a bounded width.

The network runs in eval mode without gradients, one batch at a time through all its stages, and each stage's
output is pooled at once, so memory holds the pooled features only (``N x max_dim`` per stage), never a stage's
full feature maps for every image. Pooling (the ``pooling`` setting):

- ``avg``: feature maps ``(B, C, H, W)`` averaged over space, token sequences ``(B, T, D)`` over the tokens
  (class token included): ``C`` or ``D`` features.
- ``grid``: feature maps average-pooled to ``k x k`` (``adaptive_avg_pool2d``) and flattened, ``k`` the largest
  ``<= grid`` with ``C k² <= max_dim``; token sequences: the patch tokens (all but the first, the class token of
  torchvision's ViT) laid out as their square grid and pooled the same way.

Vectors ``(B, D)`` are kept as they are. Any result wider than ``max_dim`` is narrowed by averaging groups of
adjacent features (``adaptive_avg_pool1d``): a fixed linear map, the same for every image.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from models.network import StagedNetwork
from models.transfer import transferable_stages

Pooling = Literal["avg", "grid"]
POOLINGS: tuple[str, ...] = ("avg", "grid")
GRID, MAX_DIM = 2, 1024


def _grid_side(channels: int, grid: int, max_dim: int) -> int:
    """The largest ``k <= grid`` with ``channels k² <= max_dim`` (at least 1)."""
    side = grid
    while side > 1 and channels * side * side > max_dim:
        side -= 1
    return side


def pool(x: Tensor, pooling: Pooling = "avg", grid: int = GRID, max_dim: int = MAX_DIM) -> Tensor:
    """A stage's output ``x`` as ``(B, D)`` features, ``D <= max_dim`` (see the module's docstring).

    Raises:
        ValueError: An unknown pooling, ``grid`` or ``max_dim`` < 1, an output of another shape, or ``grid`` pooling of
            tokens that are not a class token and a square grid of patches.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if grid < 1 or max_dim < 1:
        raise ValueError(f"grid and max_dim must be positive, got grid={grid}, max_dim={max_dim}")
    if x.dim() == 3:  # tokens (B, T, D)
        if pooling == "avg":
            x = x.mean(1)
        else:
            side = math.isqrt(x.shape[1] - 1)
            if side * side != x.shape[1] - 1:
                raise ValueError(
                    f"grid pooling lays out the patch tokens as a square: {x.shape[1]} tokens are not "
                    "a class token and a square of patches; use pooling avg"
                )
            x = x[:, 1:].transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)
    if x.dim() == 4:  # feature maps (B, C, H, W)
        side = 1 if pooling == "avg" else _grid_side(x.shape[1], grid, max_dim)
        x = F.adaptive_avg_pool2d(x, side).flatten(1)
    if x.dim() != 2:
        raise ValueError(
            f"a stage's output must be (batch, features), (batch, tokens, features) or feature maps "
            f"(batch, channels, height, width), got {tuple(x.shape)}"
        )
    if x.shape[1] > max_dim:
        x = F.adaptive_avg_pool1d(x[:, None], max_dim)[:, 0]
    return x


def stage_features(
    net: StagedNetwork,
    batches: Iterable[Any],
    pooling: Pooling = "avg",
    grid: int = GRID,
    max_dim: int = MAX_DIM,
    device: str | torch.device = "cpu",
) -> tuple[list[Tensor], Tensor]:
    """Every transferable stage's pooled features of the images of ``batches``, and their labels.

    Args:
        net: The network (put in eval mode, and back in its mode at the end).
        batches: ``(images, labels)`` batches, as the network takes the images.
        pooling, grid, max_dim: The pooling (see the module's docstring).
        device: Where the network runs (it is moved there); the features come back float32 on the CPU.

    Returns:
        One ``(N, D_n)`` tensor per stage 1..L-1, and the labels ``(N,)``.

    Raises:
        ValueError: Images the network does not take (``check_input``), or a pooling it refuses (:func:`pool`).
    """
    stages = transferable_stages(net.stage_names)
    features: list[list[Tensor]] = [[] for _ in stages]
    labels: list[Tensor] = []
    was_training = net.training
    net.to(device).eval()
    try:
        for images, targets in batches:
            net.check_input(images[:1])
            x = images.to(device)
            with torch.no_grad():
                for index in range(1, len(stages) + 1):
                    x = net.forward_stages(x, index, index)
                    features[index - 1].append(pool(x, pooling, grid, max_dim).float().cpu())
            labels.append(torch.as_tensor(targets).cpu())
    finally:
        net.train(was_training)
    if not labels:
        raise ValueError("no images to compute features of (no batches)")
    return [torch.cat(parts) for parts in features], torch.cat(labels)
