"""Two staged networks' features compared stage by stage with debiased linear CKA (``experiments.report.cka``).

``stage_cka(net_a, net_b, images)`` (and ``stage_cka_and_chance``) run two ``models.network.StagedNetwork``s
stage by stage over the same images and compare them at every transferable stage (all but the head,
``models.transfer.transferable_stages``): the study's layer-similarity panel, CKA between base A and base B
at layer n, shows where the two halves' features stop being shared without training a transfer network
(``experiments.study.similarity`` computes it for a finished study).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

import torch
from torch import Tensor

from experiments.report.cka import MIN_EXAMPLES, cka_and_chance, linear_cka
from models.network import StagedNetwork
from models.transfer import transferable_stages

MAX_IMAGES = 1000  # images compared per network pair (the first ones given)
BATCH_SIZE = 100  # images per forward pass of a stage
T = TypeVar("T")


def collect_images(images_or_loader: Tensor | Iterable[Any], max_images: int = MAX_IMAGES) -> Tensor:
    """The first ``max_images`` images of a tensor ``(N, C, H, W)`` or of a loader's batches (a batch is the images,
    or a tuple/list whose first item is), read no further than needed.

    Raises:
        ValueError: ``max_images`` < ``MIN_EXAMPLES`` (4), or no images.
    """
    if max_images < MIN_EXAMPLES:
        raise ValueError(
            f"max_images must be at least {MIN_EXAMPLES} (debiased CKA compares examples), got {max_images}"
        )
    if isinstance(images_or_loader, Tensor):
        return images_or_loader[:max_images]
    batches, count = [], 0
    for batch in images_or_loader:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        batches.append(images[: max_images - count])
        count += len(batches[-1])
        if count >= max_images:
            break
    if not batches:
        raise ValueError("no images to compare the networks on (an empty loader)")
    return torch.cat(batches)


def stage_features(
    net: StagedNetwork, images: Tensor, batch_size: int = BATCH_SIZE
) -> Generator[tuple[str, Tensor], None, None]:
    """``(stage name, that stage's outputs for every image)`` for each transferable stage in order, in eval mode
    without gradients.

    Memory: the images are released after the first stage, and at any time only one stage's outputs and
    the next's, as they are computed, are held (``2 x len(images) x`` the larger stage's outputs per image),
    on the network's device. The network is put in eval mode and back in the mode it was in at the end.

    Raises:
        ValueError: ``images`` is not a batch of the network's input (``check_input``).
    """
    net.check_input(images[:1])
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        x = images
        del images
        for index, name in enumerate(transferable_stages(net.stage_names), start=1):
            out: Tensor | None = None
            for start in range(0, len(x), batch_size):
                with torch.no_grad():
                    part = net.forward_stages(x[start : start + batch_size].to(device), index, index)
                if out is None:
                    out = part.new_empty((len(x), *part.shape[1:]))
                out[start : start + len(part)] = part
            if out is None:
                raise ValueError("stage_features needs at least one image")
            x = out
            yield name, x
    finally:
        net.train(was_training)


def stage_cka(
    net_a: StagedNetwork,
    net_b: StagedNetwork,
    images_or_loader: Tensor | Iterable[Any],
    max_images: int = MAX_IMAGES,
    *,
    images_b: Tensor | Iterable[Any] | None = None,
    batch_size: int = BATCH_SIZE,
) -> dict[str, float]:
    """Debiased linear CKA between ``net_a`` and ``net_b`` at each transferable stage (all but the head), on the
    same images.

    Both networks run stage by stage (eval mode, no gradients) over at most ``max_images`` images (the first
    ones of ``images_or_loader``, default 1000): memory is bounded by the images and about four stage outputs
    (two per network, see :func:`stage_features`) of ``max_images`` images each, plus a few ``max_images²``
    float64 Gram matrices.

    Args:
        net_a, net_b: Networks with the same stages (e.g. base A and base B).
        images_or_loader: Images ``(N, C, H, W)`` or a loader of batches (images, or ``(images, labels)``).
        max_images: How many images to compare on (at least 4).
        images_b: The same images as ``net_b`` takes them where its preprocessing differs from ``net_a``'s
            (e.g. another mean image subtracted), in the same order; None: ``net_b`` takes ``images_or_loader``.
        batch_size: Images per forward pass.

    Returns:
        Stage name -> CKA, in stage order.

    Raises:
        ValueError: Networks with different stages, inputs of different shapes, or images the networks do not take.
    """
    return _by_stage(linear_cka, net_a, net_b, images_or_loader, max_images, images_b, batch_size)


def stage_cka_and_chance(
    net_a: StagedNetwork,
    net_b: StagedNetwork,
    images_or_loader: Tensor | Iterable[Any],
    max_images: int = MAX_IMAGES,
    *,
    images_b: Tensor | Iterable[Any] | None = None,
    batch_size: int = BATCH_SIZE,
) -> dict[str, tuple[float, float]]:
    """As :func:`stage_cka`, each stage's value with its chance baseline (``experiments.report.cka.cka_and_chance``),
    from the same features in one pass: stage name -> (CKA, chance)."""
    return _by_stage(cka_and_chance, net_a, net_b, images_or_loader, max_images, images_b, batch_size)


def _by_stage(
    measure: Callable[[Tensor, Tensor], T],
    net_a: StagedNetwork,
    net_b: StagedNetwork,
    images_or_loader: Tensor | Iterable[Any],
    max_images: int,
    images_b: Tensor | Iterable[Any] | None,
    batch_size: int,
) -> dict[str, T]:
    """``measure`` of the two networks' outputs at each transferable stage (see :func:`stage_cka`)."""
    if tuple(net_a.stage_names) != tuple(net_b.stage_names):
        raise ValueError(f"the networks have different stages: {net_a.stage_names} and {net_b.stage_names}")
    inputs_a = collect_images(images_or_loader, max_images)
    inputs_b = inputs_a if images_b is None else collect_images(images_b, max_images)
    if inputs_a.shape != inputs_b.shape:
        raise ValueError(
            f"images_b must be the same images as images_or_loader: shapes {tuple(inputs_a.shape)} and "
            f"{tuple(inputs_b.shape)}"
        )
    modes = [(net, net.training) for net in (net_a, net_b)]
    features_a = stage_features(net_a, inputs_a, batch_size)
    features_b = stage_features(net_b, inputs_b, batch_size)
    del inputs_a, inputs_b  # held by the generators until their first stage only
    try:
        return {name: measure(x, y) for (name, x), (_, y) in zip(features_a, features_b)}
    finally:  # both generators done, then each network in its mode (net_a may be net_b)
        features_a.close()
        features_b.close()
        for net, mode in modes:
            net.train(mode)
