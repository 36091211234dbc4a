"""Debiased linear CKA on inputs with a known answer (against the biased estimator and a direct reference of the
formula), and its chance baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from experiments.report import cka
from experiments.report.cka import cka_and_chance, linear_cka
from tests.helpers.cka import gaussian


def orthogonal(size: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(gaussian(size, size, seed=seed).double())
    return q


def biased_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al.'s biased estimator: the centred Grams' alignment <HKH, HLH> / (|HKH| |HLH|), float64."""
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    h = torch.eye(len(x), dtype=torch.float64) - 1.0 / len(x)
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((k * l).sum() / (k.norm() * l.norm()))


def reference_hsic(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC_1, term by term as written, in numpy (no centring, no blocks)."""
    n = len(k)
    k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    ones = np.ones(n)
    return float(
        (
            np.trace(k @ l)
            + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * ones @ k @ l @ ones
        )
        / (n * (n - 3))
    )


def reference_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Debiased CKA from :func:`reference_hsic` of the raw (uncentred) linear Grams."""
    x, y = x.reshape(len(x), -1).double().numpy(), y.reshape(len(y), -1).double().numpy()
    k, l = x @ x.T, y @ y.T
    return reference_hsic(k, l) / math.sqrt(reference_hsic(k, k) * reference_hsic(l, l))


@pytest.mark.parametrize("shape", [(60, 12), (16, 3, 5, 5)], ids=["features", "more-features-than-examples"])
def test_identical_features_give_one(shape: tuple[int, ...]):
    """CKA(x, x) = 1, with fewer and with more features than examples, for vectors and feature maps."""
    x = gaussian(*shape)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("examples, features", [(80, 10), (12, 40)], ids=["n>d", "d>n"])
def test_invariant_to_orthogonal_transforms_isotropic_scaling_and_shifts(examples: int, features: int):
    """y = s·x·Q + c gives 1; CKA(x, y) is unchanged when either side is rotated, scaled or shifted."""
    x = gaussian(examples, features, seed=1).double()  # the transforms exact to float64's rounding
    y = x + 0.8 * gaussian(examples, features, seed=2).double()
    q = orthogonal(features, seed=3)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, 0.01 * x) == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, -2.5 * x @ q + 7.0) == pytest.approx(1.0, abs=1e-6)
    before = linear_cka(x, y)
    assert 0.2 < before < 0.99
    assert linear_cka(x @ q, 0.01 * y) == pytest.approx(before, abs=1e-9)
    assert linear_cka(3.0 * x + 1.0, y @ orthogonal(features, seed=4)) == pytest.approx(before, abs=1e-9)
    assert linear_cka(y, x) == pytest.approx(before, abs=1e-12)  # symmetric


def test_matches_a_direct_reference_of_the_unbiased_hsic_formula():
    """On n = 20 examples, with a shared part: the blocked, centred computation equals Song et al.'s formula on the
    raw Grams, also with a Gram built from many small float64 blocks; and it is not the biased estimator."""
    x, y = gaussian(20, 30, seed=5), gaussian(20, 50, seed=6)
    y[:, :30] += x
    expected = reference_cka(x, y)
    assert linear_cka(x, y) == pytest.approx(expected, abs=1e-10)
    assert linear_cka(x, y[:, :8]) == pytest.approx(reference_cka(x, y[:, :8]), abs=1e-10)  # d < n
    k = x.double() @ x.double().T
    assert cka.unbiased_hsic(k, k) == pytest.approx(reference_hsic(k.numpy(), k.numpy()), rel=1e-10)
    blocks = cka.BLOCK_BYTES
    try:
        cka.BLOCK_BYTES = 8 * 20 * 7  # 7 columns per block
        assert linear_cka(x, y) == pytest.approx(expected, abs=1e-10)
    finally:
        cka.BLOCK_BYTES = blocks
    assert abs(biased_cka(x, y) - expected) > 0.05


@pytest.mark.parametrize("features", [128, 2304])
def test_independent_random_features_give_about_zero_at_any_width(features: int):
    """Independent Gaussian features of n = 1000 examples: debiased CKA about 0 at 128 and at 2304 dimensions (as is
    the chance baseline), where the biased estimator gives about 0.12 and 0.70 (its pull with width is gone)."""
    x, y = gaussian(1000, features, seed=7), gaussian(1000, features, seed=8)
    value, chance = cka_and_chance(x, y)
    assert value == linear_cka(x, y)
    assert abs(value) < 0.03 and abs(chance) < 0.03
    assert biased_cka(x, y) > (0.5 if features == 2304 else 0.05)


def test_chance_baseline_is_about_zero_for_identical_features_and_seeded():
    """x against itself: CKA 1, chance (x against its permuted examples) about 0; the same permutations every call."""
    x = gaussian(500, 64, seed=9)
    value, chance = cka_and_chance(x, x)
    assert value == pytest.approx(1.0, abs=1e-9) and abs(chance) < 0.03
    assert cka_and_chance(x, x) == (value, chance)
    assert cka_and_chance(x, x, seed=1)[1] != chance
    with pytest.raises(ValueError, match="at least one permutation"):
        cka_and_chance(x, x, permutations=0)


def test_undefined_and_invalid_inputs():
    """Constant features have no CKA (NaN); different examples, or fewer than four, are refused naming the count."""
    assert math.isnan(linear_cka(torch.ones(10, 4), gaussian(10, 4)))
    assert all(math.isnan(value) for value in cka_and_chance(torch.ones(10, 4), gaussian(10, 4)))
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(gaussian(10, 4), gaussian(11, 4))
    for n in (1, 3):
        with pytest.raises(ValueError, match=f"at least 4 examples .*got {n}"):
            linear_cka(gaussian(n, 4), gaussian(n, 4))
        with pytest.raises(ValueError, match=f"at least 4 examples .*got {n}"):
            cka_and_chance(gaussian(n, 4), gaussian(n, 4))
    assert not math.isnan(linear_cka(gaussian(4, 4, seed=1), gaussian(4, 4, seed=2)))  # four is enough
