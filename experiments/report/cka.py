"""Debiased linear CKA between two sets of features of the same examples, and its chance baseline.

``linear_cka(x, y)`` compares two sets of features of the same ``n`` examples: centred kernel alignment
(Kornblith et al. 2019, "Similarity of neural network representations revisited") of the linear Gram
matrices ``K = X Xᵀ`` and ``L = Y Yᵀ``, with HSIC estimated by the unbiased U-statistic ``HSIC_1`` of
Song et al. 2012 ("Feature selection via dependence maximization"), as in the debiased CKA of Nguyen,
Raghu & Kornblith 2021 ("Do wide and deep networks learn the same things?"). The biased estimator
(the centred Grams' plain alignment) is pulled up by width: independent Gaussian features of 1000
examples score about 0.12 at 128 dimensions and 0.70 at 2304, so with it CKA falls with a CaffeNet's
depth whether or not anything is shared. The debiased one is about 0 for independent features of any
width and 1 for features that are the same up to an orthogonal transform, an isotropic scale and a
shift; in between, how much of one side's linear similarity structure (which examples look alike) the
other shares. It can come out slightly below 0 (an estimate of 0 with noise) and is kept as measured.

``cka_and_chance(x, y)`` adds the chance baseline, measured the same way: the CKA of ``x`` against
``y`` of the examples in a seeded random order (the mean over ``CHANCE_PERMUTATIONS`` permutations).
A permutation breaks the example correspondence and keeps everything else (widths, each side's
feature statistics), so it is what those alone give. Two networks compared stage by stage:
``experiments.report.cka_features``; the table of a study's values: ``experiments.report.cka_table``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

MIN_EXAMPLES = 4  # the unbiased HSIC estimator divides by n - 3
BLOCK_BYTES = 1 << 26  # float64 working block when centring and multiplying features (64 MiB)
CHANCE_PERMUTATIONS, CHANCE_SEED = 5, 0  # the chance baseline: mean CKA over these seeded permutations


def _matrix(features: Any) -> Tensor:
    """``features`` as an ``(examples, features)`` tensor: each example flattened (a view where possible)."""
    tensor = torch.as_tensor(features)
    if tensor.dim() < 1:
        raise ValueError("CKA needs features of shape (examples, ...), got a scalar")
    return tensor.reshape(tensor.shape[0], -1)


def _centred_blocks(x: Tensor) -> Iterator[Tensor]:
    """The columns of ``x`` in float64 blocks of at most ``BLOCK_BYTES``, each column centred over the examples."""
    width = max(1, BLOCK_BYTES // (8 * max(1, x.shape[0])))
    for start in range(0, x.shape[1], width):
        block = x[:, start : start + width].to(torch.float64)
        yield block - block.mean(0, keepdim=True)


def centred_gram(features: Any) -> Tensor:
    """The ``n x n`` float64 Gram matrix of the centred features (``H X Xᵀ H``), built block by block of features.

    The unbiased HSIC does not change when the features are shifted; centring first keeps large means
    (e.g. after a ReLU) from swamping the Gram matrix's float64 precision.
    """
    x = _matrix(features)
    gram = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)
    for block in _centred_blocks(x):
        gram.addmm_(block, block.T)
    return gram


def _hollow(gram: Tensor) -> Tensor:
    """``gram`` with its diagonal set to zero (a copy)."""
    return gram - torch.diag_embed(gram.diagonal())


def unbiased_hsic(k: Tensor, l: Tensor) -> float:
    """The unbiased HSIC estimator ``HSIC_1`` (Song et al. 2012, eq. 5) of two ``n x n`` Gram matrices, n >= 4.

    With ``K̃``, ``L̃`` the Grams with zero diagonals: ``[tr(K̃ L̃) + (1ᵀK̃1)(1ᵀL̃1) / ((n-1)(n-2))
    - 2/(n-2) · 1ᵀK̃L̃1] / (n(n-3))``.

    Raises:
        ValueError: Fewer than four examples, or Grams of different sizes.
    """
    n = k.shape[0]
    if l.shape != k.shape or k.shape != (n, n):
        raise ValueError(f"HSIC needs two n x n Gram matrices, got shapes {tuple(k.shape)} and {tuple(l.shape)}")
    _check_examples(n)
    k, l = _hollow(k), _hollow(l)
    return _hsic_hollow(k, l, k.sum(0), l.sum(0))


def _hsic_hollow(k: Tensor, l: Tensor, k_sums: Tensor, l_sums: Tensor) -> float:
    """:func:`unbiased_hsic` of zero-diagonal symmetric Grams with their row sums given (reused across calls)."""
    n = k.shape[0]
    trace = (k * l).sum()
    totals = k_sums.sum() * l_sums.sum() / ((n - 1) * (n - 2))
    cross = 2.0 / (n - 2) * (k_sums @ l_sums)
    return float((trace + totals - cross) / (n * (n - 3)))


def _check_examples(n: int) -> None:
    if n < MIN_EXAMPLES:
        raise ValueError(
            f"debiased CKA needs at least {MIN_EXAMPLES} examples (its HSIC estimator divides by n - 3), got {n}"
        )


def _grams(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    """The two sides' zero-diagonal centred Grams, after checking they hold the same ``n >= 4`` examples."""
    x, y = _matrix(x), _matrix(y)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"CKA compares features of the same examples: got {n} and {y.shape[0]} examples")
    _check_examples(n)
    return _hollow(centred_gram(x)), _hollow(centred_gram(y.to(x.device)))


def _cka(cross: float, self_k: float, self_l: float) -> float:
    """CKA from the three HSICs; NaN where a side's self-similarity is not positive (no variance)."""
    return cross / math.sqrt(self_k * self_l) if self_k > 0 and self_l > 0 else math.nan


def linear_cka(x: Any, y: Any) -> float:
    """Debiased linear CKA between two sets of features of the same ``n >= 4`` examples (module docstring).

    ``HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))`` with ``K = X Xᵀ``, ``L = Y Yᵀ`` of each example's
    flattened features, in float64, the Grams built block by block of features. About 0 for independent
    features of any width, 1 for ``y = s·x·Q + c`` (``Q`` orthogonal, ``s ≠ 0``); it can be slightly
    negative, and is returned as measured (not clipped). NaN where a side has no variance (every example
    alike), for which CKA is undefined.

    Args:
        x: Features ``(n, ...)`` (a tensor or anything ``torch.as_tensor`` takes).
        y: Features ``(n, ...)`` of the same examples, any number of them.

    Raises:
        ValueError: Different numbers of examples, or fewer than four.
    """
    k, l = _grams(x, y)
    k_sums, l_sums = k.sum(0), l.sum(0)
    return _cka(
        _hsic_hollow(k, l, k_sums, l_sums), _hsic_hollow(k, k, k_sums, k_sums), _hsic_hollow(l, l, l_sums, l_sums)
    )


def cka_and_chance(
    x: Any, y: Any, permutations: int = CHANCE_PERMUTATIONS, seed: int = CHANCE_SEED
) -> tuple[float, float]:
    """:func:`linear_cka` of ``x`` and ``y``, and its chance baseline from the same Gram matrices.

    The baseline is the mean debiased CKA of ``x`` against ``y`` with its examples permuted, over
    ``permutations`` permutations drawn from a ``torch.Generator`` seeded with ``seed`` (the same
    permutations for every call with the same ``n``): what the widths and each side's feature statistics
    give without the example correspondence. About 0; like the CKA, kept as measured.

    Raises:
        ValueError: Different numbers of examples, fewer than four, or ``permutations`` < 1.
    """
    if permutations < 1:
        raise ValueError(f"the chance baseline needs at least one permutation, got {permutations}")
    k, l = _grams(x, y)
    k_sums, l_sums = k.sum(0), l.sum(0)
    self_k, self_l = _hsic_hollow(k, k, k_sums, k_sums), _hsic_hollow(l, l, l_sums, l_sums)
    value = _cka(_hsic_hollow(k, l, k_sums, l_sums), self_k, self_l)
    generator = torch.Generator().manual_seed(seed)
    chance = []
    for _ in range(permutations):
        order = torch.randperm(k.shape[0], generator=generator).to(l.device)
        # a permuted Gram keeps its zero diagonal, its self-HSIC and (permuted) its row sums
        chance.append(_cka(_hsic_hollow(k, l[order][:, order], k_sums, l_sums[order]), self_k, self_l))
    return value, sum(chance) / len(chance)
