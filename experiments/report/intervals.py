"""95 % confidence intervals from Student's t distribution, with no dependency beyond the standard library.

Every interval of the report is a t-interval: for a mean over ``k`` networks (or over ``k`` paired
differences), ``mean ± t(0.975, k-1) · s / sqrt(k)``; for the difference of two unpaired groups,
Welch's interval with the Welch-Satterthwaite degrees of freedom. With one value there is no
estimate of the spread and the interval is undefined (``low`` and ``high`` are None).

Named ``intervals`` rather than ``statistics`` so that it never shadows the standard library module.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval.

    Args:
        estimate: The mean (or the difference of means).
        low: The interval's lower end, or None where it is undefined (one value).
        high: The interval's upper end, or None.
        count: How many independent values the interval rests on (networks, or paired replicates).
        std: The sample standard deviation of those values (None for one value or for Welch).
    """

    estimate: float
    low: float | None
    high: float | None
    count: int
    std: float | None = None

    @property
    def defined(self) -> bool:
        """Whether the interval exists (at least two values)."""
        return self.low is not None and self.high is not None


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz), x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return result


def regularized_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom (not necessarily an integer)."""
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@cache
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, e.g. ``t_quantile(0.975, 9)`` = 2.262.

    Found by bisection on :func:`t_cdf` to 1e-12.

    Raises:
        ValueError: ``p`` outside (0, 1) or ``df`` not positive.
    """
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    while high - low > 1e-12 * max(1.0, high):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return 0.5 * (low + high)


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of ``values`` with its t-interval over them (undefined for one value).

    Raises:
        ValueError: No values.
    """
    if not values:
        raise ValueError("an interval needs at least one value")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, None, None, 1)
    std = statistics.stdev(values)
    half = t_quantile(0.5 + level / 2, len(values) - 1) * std / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, len(values), std)


def rounded(number: float | None, digits: int = 6) -> float | None:
    """``number`` rounded for a results file; an undefined value (None, NaN) as None (an empty cell)."""
    return None if number is None or math.isnan(number) else round(number, digits)


def interval_columns(values: Sequence[float]) -> dict[str, float | None]:
    """A point's columns in the report's tables: mean, 95 % t-interval (None for one value), std, min, max, rounded.

    Raises:
        ValueError: No values.
    """
    interval = mean_interval(values)
    return {
        "mean": rounded(interval.estimate),
        "ci_low": rounded(interval.low),
        "ci_high": rounded(interval.high),
        "std": rounded(interval.std),
        "min": rounded(min(values)),
        "max": rounded(max(values)),
    }


def welch_interval(left: Sequence[float], right: Sequence[float], level: float = LEVEL) -> Interval:
    """``mean(left) - mean(right)`` with Welch's t-interval (undefined unless each side has two values).

    Raises:
        ValueError: A side without values.
    """
    if not left or not right:
        raise ValueError("a difference needs values on both sides")
    difference = statistics.fmean(left) - statistics.fmean(right)
    count = len(left) + len(right)
    if len(left) < 2 or len(right) < 2:
        return Interval(difference, None, None, count)
    variance, df = _welch(left, right)
    if variance == 0.0:  # no spread on either side: the difference is exact
        return Interval(difference, difference, difference, count)
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(variance)
    return Interval(difference, difference - half, difference + half, count)


def _welch(left: Sequence[float], right: Sequence[float]) -> tuple[float, float]:
    """The variance of ``mean(left) - mean(right)`` and its Welch-Satterthwaite degrees of freedom (each side >= 2
    values; the degrees of freedom are NaN where neither side has spread)."""
    a, b = statistics.variance(left) / len(left), statistics.variance(right) / len(right)
    if a + b == 0.0:
        return 0.0, math.nan
    return a + b, (a + b) ** 2 / (a * a / (len(left) - 1) + b * b / (len(right) - 1))


def p_value(values: Sequence[float]) -> float | None:
    """The two-sided p-value of Student's one-sample t-test of mean zero over ``values``; None for one value.

    Values without spread give 0 where their mean is not zero and 1 where it is.
    """
    if len(values) < 2:
        return None
    mean, std = statistics.fmean(values), statistics.stdev(values)
    if std == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    t = abs(mean) / (std / math.sqrt(len(values)))
    return min(1.0, 2.0 * (1.0 - t_cdf(t, len(values) - 1)))


@dataclass(frozen=True)
class HolmStep:
    """One hypothesis of Holm's step-down procedure (Holm 1979).

    Args:
        adjusted_p: Holm's adjusted p-value: the running maximum of ``(m - rank + 1) * p`` in ascending order
            of p, capped at 1; rejected at family-wise level alpha exactly when it is at most alpha.
        level: The confidence level the procedure tested this hypothesis at, ``1 - alpha / (m - rank + 1)``:
            the adjusted interval is the t-interval at this level.
    """

    adjusted_p: float
    level: float


def holm(p_values: Sequence[float | None], alpha: float = 1.0 - LEVEL) -> list[HolmStep | None]:
    """Holm's step-down adjustment of ``p_values`` (one family, e.g. the rows of one report), in their order.

    A None (a row without an interval, so without a test) stays None and is not counted in the family.
    """
    tested = [(index, p) for index, p in enumerate(p_values) if p is not None]
    m = len(tested)
    steps: list[HolmStep | None] = [None] * len(p_values)
    running = 0.0
    for rank, (index, p) in enumerate(sorted(tested, key=lambda pair: pair[1]), start=1):
        running = max(running, min(1.0, (m - rank + 1) * p))
        steps[index] = HolmStep(running, 1.0 - alpha / (m - rank + 1))
    return steps


def welch_p_value(left: Sequence[float], right: Sequence[float]) -> float | None:
    """The two-sided p-value of Welch's t-test of ``mean(left) == mean(right)``; None unless each side has two
    values (no spread on either side: 0 where the means differ, 1 where they do not)."""
    if len(left) < 2 or len(right) < 2:
        return None
    difference = statistics.fmean(left) - statistics.fmean(right)
    variance, df = _welch(left, right)
    if variance == 0.0:
        return 1.0 if difference == 0.0 else 0.0
    return min(1.0, 2.0 * (1.0 - t_cdf(abs(difference) / math.sqrt(variance), df)))
