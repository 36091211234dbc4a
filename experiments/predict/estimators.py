"""Transferability estimators: how well features ``(N, D)`` suit labels ``(N,)``, each a number, higher is better.

Every estimator takes the features of ``N`` examples and their integer labels (any values: they are re-indexed
to the classes present) and returns a float; all work in float64 and are deterministic (the probe's held-out
split and nothing else draws, from its ``seed``).

- :func:`logme`: LogME (You et al., ICML 2021), the mean over classes of the maximised log evidence of a Bayesian
  linear model of the one-hot target, divided by ``N``; :func:`logme_fit` gives each class's ``alpha``, ``beta``.
- :func:`hscore`: the regularised H-score (Ibrahim, Ponomareva & Mazumder, ICLR 2023),
  ``tr(Σ_f(s)⁻¹ (1 - s) Σ_{E[f|y]})`` with ``Σ_f(s)`` the Ledoit-Wolf shrinkage estimate and ``s`` its shrinkage.
- :func:`transrate`: TransRate (Huang et al., ICML 2022), the coding rate of the centred features minus their
  mean coding rate within a class.
- :func:`linear_probe`: the held-out accuracy of a multinomial logistic regression trained on the features
  (full-batch L-BFGS, a fixed budget): the cheap version of training a new head on frozen stages (AnB).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

Estimator = Callable[[Tensor, Tensor], float]
LOGME_MAX_ITERATIONS, LOGME_TOLERANCE = 1000, 1e-10  # the fixed point stops when alpha and beta move less
TRANSRATE_EPS = 1e-4  # the distortion of the coding rate, as the authors' code (it plays the role of eps²)
PROBE_STEPS, PROBE_WEIGHT_DECAY, PROBE_HOLDOUT = 100, 1e-3, 0.3


def _inputs(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
    """``features`` as float64 ``(N, D)`` and the labels re-indexed ``0..C-1``; and ``C``.

    Raises:
        ValueError: Not ``(N, D)`` and ``(N,)`` of the same ``N >= 2``, or fewer than two classes.
    """
    if features.dim() != 2 or labels.dim() != 1 or len(features) != len(labels):
        raise ValueError(
            f"an estimator takes features (N, D) and labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}"
        )
    classes, index = torch.unique(labels.cpu(), return_inverse=True)
    if len(features) < 2 or len(classes) < 2:
        raise ValueError(
            f"an estimator needs at least two examples of two classes, got {len(features)} examples "
            f"of {len(classes)} class(es)"
        )
    return features.detach().cpu().to(torch.float64), index, len(classes)


# ----- LogME --------------------------------------------------------------------------------------------------
class LogMEFit(NamedTuple):
    """LogME per class (one-hot target column): the maximised log evidence (not divided by N), alpha, beta."""

    evidence: Tensor
    alpha: Tensor
    beta: Tensor


def _logme_terms(alpha: Tensor, beta: Tensor, s: Tensor, z: Tensor, outside: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For the SVD ``F = U S Vᵀ`` (``s`` = S², ``z`` = Uᵀy per class, ``outside`` = the part of ‖y‖² outside U):
    ``gamma = Σ βs/(α+βs)``, ``‖m‖²`` and ``‖y - Fm‖²`` at the posterior mean ``m = β A⁻¹ Fᵀ y``, ``A = αI + βFᵀF``."""
    shrink = alpha / (alpha + beta * s[:, None])  # (r, C)
    gamma = (1 - shrink).sum(0)
    m_norm = ((beta * s.sqrt()[:, None] * z / (alpha + beta * s[:, None])) ** 2).sum(0)
    residual = ((shrink * z) ** 2).sum(0) + outside
    return gamma, m_norm, residual


def logme_evidence(alpha: Tensor, beta: Tensor, s: Tensor, z: Tensor, outside: Tensor, n: int) -> Tensor:
    """The log evidence ``log p(y | F, α, β)`` of each class from the SVD terms (see :func:`_logme_terms`).

    ``D/2 log α + N/2 log β - N/2 log 2π - β/2 ‖y - Fm‖² - α/2 ‖m‖² - ½ log|A|``, where the ``D - r`` zero
    eigenvalues of ``FᵀF`` contribute ``log α`` each to ``log|A|`` and so cancel against ``D/2 log α``.
    """
    _, m_norm, residual = _logme_terms(alpha, beta, s, z, outside)
    log_det = torch.log(alpha + beta * s[:, None]).sum(0)
    return (
        len(s) / 2 * torch.log(alpha)
        + n / 2 * torch.log(beta)
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * residual
        - alpha / 2 * m_norm
        - log_det / 2
    )


def _spectrum(f: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """``s`` = the squared singular values of ``F`` (``r = min(N, D)`` of them) and ``z = Uᵀ Y``, from the
    eigendecomposition of the smaller Gram matrix (``FᵀF`` or ``FFᵀ``: cheaper than the SVD of ``F``).

    Directions with ``s`` below ``r · eps · max(s)`` count as ``s = 0`` with ``z = 0``: their share of ``Y`` is then
    in ``‖Y‖² - ‖z‖²``, which is where a zero singular value's share goes anyway.
    """
    n, d = f.shape
    if d <= n:
        s, v = torch.linalg.eigh(f.T @ f)  # F = U S Vᵀ: Uᵀy = S⁻¹ Vᵀ Fᵀ y
        kept = s > len(s) * torch.finfo(s.dtype).eps * s.max().clamp_min(0)
        s = torch.where(kept, s, torch.zeros_like(s))
        z = (v.T @ (f.T @ targets)) / torch.where(kept, s, torch.ones_like(s)).sqrt()[:, None]
        return s, z * kept[:, None]
    s, u = torch.linalg.eigh(f @ f.T)
    kept = s > len(s) * torch.finfo(s.dtype).eps * s.max().clamp_min(0)
    return torch.where(kept, s, torch.zeros_like(s)), (u.T @ targets) * kept[:, None]


def logme_fit(
    features: Tensor, labels: Tensor, max_iterations: int = LOGME_MAX_ITERATIONS, tolerance: float = LOGME_TOLERANCE
) -> LogMEFit:
    """Maximise each class's evidence over ``alpha`` (prior precision) and ``beta`` (noise precision).

    The fixed point of You et al. (Algorithm 1, MacKay's updates) from ``alpha = beta = 1``, on the SVD of ``F``:
    ``gamma = Σ βs/(α+βs)``, ``α ← gamma/‖m‖²``, ``β ← (N - gamma)/‖y - Fm‖²``, until both change by less than
    ``tolerance`` (relative) for every class or ``max_iterations``; the evidence is then evaluated exactly at the
    final ``alpha``, ``beta`` (its own posterior mean, not the previous iteration's).

    Raises:
        ValueError: Features and labels that do not match, or fewer than two classes.
    """
    f, index, classes = _inputs(features, labels)
    n = len(f)
    targets = torch.nn.functional.one_hot(index, classes).to(torch.float64)  # (N, C)
    s, z = _spectrum(f, targets)
    outside = ((targets**2).sum(0) - (z**2).sum(0)).clamp_min(0)
    tiny = torch.finfo(torch.float64).tiny
    alpha, beta = torch.ones(classes, dtype=torch.float64), torch.ones(classes, dtype=torch.float64)
    for _ in range(max_iterations):
        gamma, m_norm, residual = _logme_terms(alpha, beta, s, z, outside)
        new_alpha = gamma / m_norm.clamp_min(tiny)
        new_beta = (n - gamma) / residual.clamp_min(tiny)
        change = torch.maximum((new_alpha - alpha).abs() / alpha, (new_beta - beta).abs() / beta)
        alpha, beta = new_alpha.clamp_min(tiny), new_beta.clamp_min(tiny)
        if bool((change < tolerance).all()):
            break
    return LogMEFit(logme_evidence(alpha, beta, s, z, outside, n), alpha, beta)


def logme(features: Tensor, labels: Tensor) -> float:
    """LogME: the mean over classes of the maximised log evidence, divided by ``N`` (:func:`logme_fit`)."""
    return float(logme_fit(features, labels).evidence.mean() / len(features))


# ----- H-score ------------------------------------------------------------------------------------------------
def ledoit_wolf_shrinkage(centred: Tensor) -> float:
    """The Ledoit-Wolf (2004) shrinkage of the covariance ``S = XᵀX/N`` of centred features towards ``tr(S)/D · I``.

    ``min(b̄², d²)/d²`` with ``d² = ‖S - μI‖²/D`` and ``b̄² = (Σ_k ‖x_k‖⁴ - N‖S‖²)/(N² D)`` (``‖·‖`` Frobenius;
    ``Σ_k ‖x_k x_kᵀ - S‖² = Σ_k ‖x_k‖⁴ - N‖S‖²``); 0 where ``S`` is already a multiple of the identity.
    """
    n, d = centred.shape
    cov = centred.T @ centred / n
    mu = torch.trace(cov) / d
    d2 = ((cov - mu * torch.eye(d, dtype=cov.dtype)) ** 2).sum() / d
    b2 = ((centred**2).sum(1) ** 2).sum() - n * (cov**2).sum()
    b2 = b2 / (n**2 * d)
    return 0.0 if float(d2) <= 0 else float(torch.minimum(b2, d2) / d2)


def hscore(features: Tensor, labels: Tensor, shrinkage: float | None = None) -> float:
    """The regularised H-score ``tr(Σ_f(s)⁻¹ (1 - s) Σ_{E[f|y]})`` (Ibrahim et al. 2023).

    ``Σ_f(s) = (1 - s) Σ_f + s tr(Σ_f)/D · I``, ``Σ_f`` the features' covariance and ``Σ_{E[f|y]}`` the covariance of
    each example's class mean (both normalised by ``N``).

    Args:
        features: ``(N, D)``.
        labels: ``(N,)``.
        shrinkage: ``s``; None: the Ledoit-Wolf estimate (:func:`ledoit_wolf_shrinkage`); 0: the original
            H-score of Bao et al. 2019, ``tr(Σ_f⁺ Σ_{E[f|y]})`` with the pseudo-inverse.

    Raises:
        ValueError: Mismatched inputs, fewer than two classes, or a shrinkage outside ``[0, 1)``.
    """
    f, index, classes = _inputs(features, labels)
    n, d = f.shape
    centred = f - f.mean(0)
    s = ledoit_wolf_shrinkage(centred) if shrinkage is None else shrinkage
    if not 0.0 <= s < 1.0:
        raise ValueError(f"hscore shrinkage must be in [0, 1), got {s}")
    cov = centred.T @ centred / n
    shrunk = (1 - s) * cov + s * torch.trace(cov) / d * torch.eye(d, dtype=f.dtype)
    counts = torch.bincount(index, minlength=classes).to(f.dtype)
    means = torch.zeros(classes, d, dtype=f.dtype).index_add_(0, index, centred) / counts[:, None]  # (C, D)
    # Σ_{E[f|y]} = Σ_c (n_c/N) μ_c μ_cᵀ for the centred class means μ_c, so the trace is a sum of quadratic forms
    if s > 0:  # positive definite
        solved = torch.cholesky_solve(means.T, torch.linalg.cholesky(shrunk))  # (D, C)
    else:
        solved = torch.linalg.pinv(shrunk, hermitian=True) @ means.T
    return float((1 - s) * ((means.T * solved).sum(0) * counts / n).sum())


# ----- TransRate ----------------------------------------------------------------------------------------------
def coding_rate(z: Tensor, eps: float = TRANSRATE_EPS) -> Tensor:
    """``R(Z, ε) = ½ logdet(I + ZᵀZ / (n ε))`` of ``n`` examples, from the eigenvalues of the smaller Gram matrix
    (``ZᵀZ`` and ``ZZᵀ`` share their non-zero ones)."""
    gram = z.T @ z if z.shape[1] <= z.shape[0] else z @ z.T
    return 0.5 * torch.log1p(torch.linalg.eigvalsh(gram).clamp_min(0) / (len(z) * eps)).sum()


def transrate(features: Tensor, labels: Tensor, eps: float = TRANSRATE_EPS) -> float:
    """TransRate ``R(Z, ε) - R(Z, ε | Y)`` on the centred features (Huang et al. 2022).

    ``R(Z, ε | Y)`` is the mean over classes of each class's coding rate ``R(Z_y, ε)`` (its own ``n_y``), as the
    authors' code computes it; ``eps`` (default 1e-4, the authors' code's) is the distortion.

    Raises:
        ValueError: Mismatched inputs, fewer than two classes, or ``eps <= 0``.
    """
    if eps <= 0:
        raise ValueError(f"transrate eps must be positive, got {eps}")
    f, index, classes = _inputs(features, labels)
    z = f - f.mean(0)
    within = torch.stack([coding_rate(z[index == c], eps) for c in range(classes)]).mean()
    return float(coding_rate(z, eps) - within)


# ----- linear probe -------------------------------------------------------------------------------------------
def holdout_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices ``(train, held_out)``: from each class, ``round(fraction * n_c)`` examples drawn with ``seed``.

    Raises:
        ValueError: ``fraction`` outside (0, 1), or a split with no example on one side.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the probe's holdout fraction must be in (0, 1), got {fraction}")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    held = []
    for c in torch.unique(labels):
        members = order[labels[order] == c]
        held.append(members[: round(fraction * len(members))])
    held_out = torch.cat(held).sort().values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_out] = False
    train = torch.nonzero(mask).flatten()
    if len(train) == 0 or len(held_out) == 0:
        raise ValueError(
            f"the probe's holdout fraction {fraction} leaves no examples to train on or to test on of "
            f"{len(labels)}: give more images"
        )
    return train, held_out


def linear_probe(
    features: Tensor,
    labels: Tensor,
    steps: int = PROBE_STEPS,
    weight_decay: float = PROBE_WEIGHT_DECAY,
    holdout: float = PROBE_HOLDOUT,
    seed: int = 0,
) -> float:
    """Held-out accuracy of a multinomial logistic regression on the features.

    A ``holdout`` fraction of each class (drawn with ``seed``) is held out; the features are standardised with the
    training part's mean and standard deviation; weights and biases start at zero and are fitted by full-batch
    L-BFGS (strong Wolfe line search) for at most ``steps`` iterations on the mean cross-entropy plus
    ``weight_decay / 2 · ‖W‖²``, in float64.

    Raises:
        ValueError: Mismatched inputs, fewer than two classes, or a split that leaves a side empty.
    """
    f, index, classes = _inputs(features, labels)
    train, held_out = holdout_split(index, holdout, seed)
    mean, std = f[train].mean(0), f[train].std(0, correction=0).clamp_min(1e-12)
    x = (f - mean) / std
    weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=steps, history_size=10, line_search_fn="strong_wolfe")

    def loss() -> Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(x[train] @ weight + bias, index[train])
        value = value + weight_decay / 2 * (weight**2).sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(loss)
    with torch.no_grad():
        predicted = (x[held_out] @ weight + bias).argmax(1)
    return float((predicted == index[held_out]).double().mean())


ESTIMATORS: dict[str, Callable[..., float]] = {
    "logme": logme,
    "hscore": hscore,
    "transrate": transrate,
    "probe": linear_probe,
}
