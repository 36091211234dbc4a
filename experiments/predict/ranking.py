"""Rank agreement between predicted and measured curves: Kendall's tau-b, Spearman's rho, exact p-values.

A transferability estimator predicts a curve over the transferred layers n; the study measured one. Their
agreement is read as a rank correlation over the values of n, tested against the null hypothesis that every
ordering of the measured values relative to the predicted ones is equally likely. With at most 8 values of n
(8! = 40320 orderings) that null distribution is enumerated whole, so the p-value is exact (a permutation
test, conditional on the ties): two-sided, the share of orderings whose statistic is at least as far from 0
as the observed one. No normal or t approximation is used: with 7 points either would be poor.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

MAX_EXACT = 8  # 8! = 40320 orderings, enumerated in well under a second
TOLERANCE = 1e-9  # a permuted statistic within this of the observed one counts as "as extreme" (float rounding)


def _check(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x_array, y_array = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_array.ndim != 1 or x_array.shape != y_array.shape:
        raise ValueError(f"rank statistics need two sequences of the same length, got {len(x)} and {len(y)}")
    if len(x_array) < 2:
        raise ValueError(f"rank statistics need at least 2 pairs, got {len(x_array)}")
    if not (np.isfinite(x_array).all() and np.isfinite(y_array).all()):
        raise ValueError("rank statistics need finite values (a NaN or infinite score or accuracy)")
    return x_array, y_array


def ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The ranks 1..k of ``values``, tied values sharing the mean of their ranks (mid-ranks)."""
    array = np.asarray(values, dtype=float)
    order = np.argsort(array, kind="stable")
    result = np.empty(len(array))
    start = 0
    while start < len(array):
        end = start
        while end + 1 < len(array) and array[order[end + 1]] == array[order[start]]:
            end += 1
        result[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return result


def _kendall_rows(x: np.ndarray, y_orderings: np.ndarray) -> np.ndarray:
    """Tau-b of ``x`` against every row of ``y_orderings``; NaN where either side is constant."""
    i, j = np.triu_indices(len(x), k=1)
    sign_x = np.sign(x[j] - x[i])
    sign_y = np.sign(y_orderings[:, j] - y_orderings[:, i])
    untied_x = np.count_nonzero(sign_x)
    untied_y = np.count_nonzero(sign_y, axis=1)  # the same for every ordering of the same values
    denominator = np.sqrt(untied_x * untied_y.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (sign_y @ sign_x) / np.where(denominator > 0, denominator, 1.0), np.nan)


def _spearman_rows(x: np.ndarray, y_orderings: np.ndarray, ranked: bool = False) -> np.ndarray:
    """Spearman's rho (Pearson's r of the mid-ranks) of ``x`` against every row; NaN where a side is constant.

    ``ranked``: the rows are orderings of mid-ranks already (so they are their own ranks).
    """
    rank_x = ranks(x) - (len(x) + 1) / 2.0
    rank_y = (y_orderings if ranked else np.apply_along_axis(ranks, 1, y_orderings)) - (len(x) + 1) / 2.0
    denominator = np.sqrt((rank_x @ rank_x) * np.einsum("ij,ij->i", rank_y, rank_y))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rank_y @ rank_x) / np.where(denominator > 0, denominator, 1.0), np.nan)


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: ``(C - D) / sqrt((P - T_x) (P - T_y))``, ties handled; NaN where either side is constant.

    C and D count the concordant and discordant pairs, P the pairs, T_x and T_y the pairs tied in x and in y.
    """
    x_array, y_array = _check(x, y)
    return float(_kendall_rows(x_array, y_array[None, :])[0])


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the mid-ranks; NaN where either side is constant."""
    x_array, y_array = _check(x, y)
    return float(_spearman_rows(x_array, y_array[None, :])[0])


STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "kendall": _kendall_rows,
    "spearman": _spearman_rows,
}


@cache
def _orderings(k: int) -> np.ndarray:
    """Every permutation of ``range(k)``, one per row (k! rows)."""
    return np.array(list(itertools.permutations(range(k))), dtype=np.int64).reshape(-1, k)


@cache
def _null(statistic: str, x: tuple[float, ...], y: tuple[float, ...]) -> np.ndarray:
    """The statistic of mid-ranks ``x`` against every ordering of mid-ranks ``y``, as absolute values."""
    orderings = np.asarray(y)[_orderings(len(y))]
    if statistic == "kendall":
        return np.abs(_kendall_rows(np.asarray(x), orderings))
    return np.abs(_spearman_rows(np.asarray(x), orderings, ranked=True))


def exact_p_value(statistic: str, x: Sequence[float], y: Sequence[float]) -> float:
    """The exact two-sided permutation p-value of ``statistic`` ("kendall" or "spearman") for ``x`` against ``y``.

    ``P(|S(x, y_perm)| >= |S(x, y)|)`` over all ``len(y)!`` orderings of y, each equally likely under the null;
    the observed ordering is one of them, so the p-value is at least ``1 / len(y)!``. Ties keep their values
    (the test is conditional on them). NaN where the statistic is undefined (a constant side).

    Raises:
        ValueError: More than ``MAX_EXACT`` pairs (too many orderings to enumerate), fewer than 2, or unequal lengths.
    """
    x_array, y_array = _check(x, y)
    if len(x_array) > MAX_EXACT:
        raise ValueError(f"the exact p-value enumerates all orderings: at most {MAX_EXACT} pairs, got {len(x_array)}")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    rows: Callable[[np.ndarray, np.ndarray], np.ndarray] = STATISTICS[statistic]
    observed = rows(x_array, y_array[None, :])[0]
    if np.isnan(observed):
        return float("nan")
    null = _null(statistic, tuple(ranks(x_array)), tuple(ranks(y_array)))  # ranks: the statistics depend on no more
    return float(np.mean(null >= abs(observed) - TOLERANCE))


@dataclass(frozen=True)
class Agreement:
    """The rank agreement of a predicted curve with a measured one over ``count`` values of n.

    Args:
        tau: Kendall's tau-b.
        tau_p: Its exact two-sided permutation p-value.
        rho: Spearman's rho.
        rho_p: Its exact two-sided permutation p-value.
        count: The number of (n, predicted, measured) points.
    """

    tau: float
    tau_p: float
    rho: float
    rho_p: float
    count: int


def agreement(predicted: Sequence[float], measured: Sequence[float]) -> Agreement:
    """Tau-b and rho of ``predicted`` against ``measured`` (paired by position), each with its exact p-value."""
    return Agreement(
        kendall_tau_b(predicted, measured),
        exact_p_value("kendall", predicted, measured),
        spearman_rho(predicted, measured),
        exact_p_value("spearman", predicted, measured),
        len(predicted),
    )
