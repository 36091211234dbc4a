"""The transferability estimators (``experiments.predict.estimators``) against independent numpy computations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from experiments.predict import estimators
from experiments.predict.estimators import (
    ESTIMATORS,
    hscore,
    ledoit_wolf_shrinkage,
    linear_probe,
    logme,
    logme_fit,
    transrate,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # as the prediction runs them (experiments.predict.scores)


def blobs(n: int, d: int, classes: int, spread: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points in ``d`` dimensions around one random centre per class (labels cycle through the classes)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, d, generator=generator) * 3
    return centres[labels] + spread * torch.randn(n, d, generator=generator), labels


def numpy_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log p(y | F, alpha, beta) of the Bayesian linear model ``y = F w + noise``, ``w ~ N(0, I/alpha)``, noise
    ``N(0, I/beta)``: the Gaussian density of ``y`` with covariance ``F Fᵀ/alpha + I/beta``, explicit inverse and
    determinant (well conditioned also where beta is huge, the limit an N < D model may tend to)."""
    n = len(f)
    cov = f @ f.T / alpha + np.eye(n) / beta
    _, log_det = np.linalg.slogdet(cov)
    return float(-0.5 * y @ np.linalg.inv(cov) @ y - 0.5 * log_det - n / 2 * np.log(2 * np.pi))


def numpy_evidence_weights(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """The same evidence in the paper's weight-space form, with ``A = alpha I + beta FᵀF`` and ``m = beta A⁻¹ Fᵀ y``."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.inv(a) @ f.T @ y
    _, log_det = np.linalg.slogdet(a)
    return float(
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * np.sum((y - f @ m) ** 2)
        - alpha / 2 * np.sum(m**2)
        - log_det / 2
    )


@pytest.mark.parametrize("n, d", [(60, 8), (20, 30)], ids=["tall", "wide"])
def test_logme_maximises_the_closed_form_evidence(n: int, d: int) -> None:
    """Each class's evidence at the returned alpha, beta is numpy's closed form there, and no neighbour beats it."""
    features, labels = blobs(n, d, 3, spread=2.0)
    fit = logme_fit(features, labels)
    f = features.double().numpy()
    for c in range(3):
        y = (labels.numpy() == c).astype(np.float64)
        alpha, beta = float(fit.alpha[c]), float(fit.beta[c])
        best = numpy_evidence(f, y, alpha, beta)
        assert float(fit.evidence[c]) == pytest.approx(best, rel=1e-8, abs=1e-8)
        if n > d:
            assert numpy_evidence_weights(f, y, alpha, beta) == pytest.approx(best, rel=1e-8)
        for a, b in itertools.product((0.5, 0.9, 0.99, 1.0, 1.01, 1.1, 2.0), repeat=2):
            assert numpy_evidence(f, y, a * alpha, b * beta) <= best + 1e-9 * abs(best)
    assert logme(features, labels) == pytest.approx(float(fit.evidence.mean()) / n, rel=1e-12)


def numpy_ledoit_wolf(x: np.ndarray) -> float:
    """Ledoit & Wolf (2004)'s shrinkage from its definition: one outer product per example."""
    n, d = x.shape
    x = x - x.mean(0)
    s = x.T @ x / n
    mu = np.trace(s) / d
    d2 = np.sum((s - mu * np.eye(d)) ** 2) / d
    b2 = sum(np.sum((np.outer(row, row) - s) ** 2) / d for row in x) / n**2
    return min(b2, d2) / d2


def numpy_class_mean_cov(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    g = np.stack([x[y == label].mean(0) for label in y])  # each example's class mean
    g = g - g.mean(0)
    return g.T @ g / len(x)


@pytest.mark.parametrize("n, d", [(50, 6), (12, 20)], ids=["tall", "wide"])
def test_hscore_is_the_closed_form_with_ledoit_wolf_shrinkage(n: int, d: int) -> None:
    """The regularised H-score is tr(inv((1-s) S + s tr(S)/d I) (1-s) cov(E[f|y])), s Ledoit-Wolf's."""
    features, labels = blobs(n, d, 3, spread=2.0, seed=1)
    x, y = features.double().numpy(), labels.numpy()
    s = numpy_ledoit_wolf(x)
    assert ledoit_wolf_shrinkage(features.double() - features.double().mean(0)) == pytest.approx(s, rel=1e-10)
    centred = x - x.mean(0)
    cov = centred.T @ centred / n
    shrunk = (1 - s) * cov + s * np.trace(cov) / d * np.eye(d)
    expected = np.trace(np.linalg.inv(shrunk) @ ((1 - s) * numpy_class_mean_cov(x, y)))
    assert hscore(features, labels) == pytest.approx(expected, rel=1e-9)
    # the unregularised limit: Bao et al.'s H-score with the pseudo-inverse (singular covariance where d > n)
    plain = np.trace(np.linalg.pinv(cov) @ numpy_class_mean_cov(x, y))
    assert hscore(features, labels, shrinkage=0.0) == pytest.approx(plain, rel=1e-6)


@pytest.mark.parametrize("n, d", [(60, 5), (15, 24)], ids=["tall", "wide"])
def test_transrate_is_the_logdet_difference(n: int, d: int) -> None:
    """TransRate is ½ logdet(I + ZᵀZ/(n eps)) of the centred features minus the classes' mean of the same."""
    features, labels = blobs(n, d, 3, seed=2)
    eps = 1e-2

    def rate(z: np.ndarray) -> float:
        return 0.5 * np.linalg.slogdet(np.eye(z.shape[1]) + z.T @ z / (len(z) * eps))[1]

    z = features.double().numpy()
    z = z - z.mean(0)
    y = labels.numpy()
    expected = rate(z) - np.mean([rate(z[y == c]) for c in range(3)])
    assert transrate(features, labels, eps=eps) == pytest.approx(expected, rel=1e-9)


def test_the_probe_separates_separable_data_and_guesses_on_shuffled_labels() -> None:
    """100 % held-out accuracy on well separated classes; about 1/C on labels shuffled away from the features."""
    features, labels = blobs(600, 10, 4, spread=0.3)
    assert linear_probe(features, labels) == 1.0
    shuffled = labels[torch.randperm(600, generator=torch.Generator().manual_seed(5))]
    accuracy = linear_probe(features, shuffled)
    assert abs(accuracy - 0.25) < 0.1, accuracy  # 180 held-out examples: the standard error is 0.032


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_each_estimator_is_deterministic_and_prefers_the_true_labels(name: str) -> None:
    """The same inputs give the same float; the true labels score above labels shuffled away from the features."""
    features, labels = blobs(120, 12, 3, spread=2.0, seed=3)
    shuffled = labels[torch.randperm(120, generator=torch.Generator().manual_seed(9))]
    estimator = ESTIMATORS[name]
    first = estimator(features, labels)
    assert isinstance(first, float) and math.isfinite(first)
    assert estimator(features, labels) == first
    assert estimator(features, shuffled) < first


def test_labels_are_reindexed_and_bad_inputs_refused() -> None:
    """Label values do not matter, only which examples share one; shapes and a single class are refused."""
    features, labels = blobs(40, 4, 2)
    for name, estimator in ESTIMATORS.items():
        assert estimator(features, labels * 7 + 3) == estimator(features, labels), name
    with pytest.raises(ValueError, match="features \\(N, D\\) and labels"):
        logme(features, labels[:-1])
    with pytest.raises(ValueError, match="two classes"):
        hscore(features, torch.zeros(40, dtype=torch.long))
    with pytest.raises(ValueError, match="eps must be positive"):
        transrate(features, labels, eps=0)
    with pytest.raises(ValueError, match="holdout fraction"):
        estimators.holdout_split(labels, 1.0, 0)
