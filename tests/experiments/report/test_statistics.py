"""The report's confidence intervals: Student's t quantiles, the t-interval of a mean, Welch's interval."""

from __future__ import annotations

import math
import random

import pytest

from experiments.report.intervals import (
    Interval,
    interval_columns,
    mean_interval,
    rounded,
    t_cdf,
    t_quantile,
    welch_interval,
)


@pytest.mark.parametrize(
    "df, expected", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (30, 2.042), (1e7, 1.960)]
)
def test_t_quantile_matches_the_tables(df: float, expected: float):
    """t(0.975, df) as printed in every t table (three decimals)."""
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.9995])
def test_t_quantile_matches_closed_forms_for_one_and_two_degrees_of_freedom(p: float):
    """df=1 is Cauchy: tan(pi (p - 1/2)); df=2: (2p - 1) / sqrt(2 p (1 - p))."""
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_quantile(1 - p, 5) == pytest.approx(-t_quantile(p, 5), rel=1e-12)
    assert t_cdf(t_quantile(p, 5.5), 5.5) == pytest.approx(p, abs=1e-10)  # non-integer df (Welch)


def test_t_quantile_rejects_impossible_arguments():
    with pytest.raises(ValueError, match="0 < p < 1"):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="df > 0"):
        t_quantile(0.975, 0)


def test_mean_interval_by_hand_and_undefined_for_one_value():
    """[0.1, 0.2, 0.3]: mean 0.2, std 0.1, half-width 4.303 * 0.1 / sqrt(3); one value: no interval."""
    interval = mean_interval([0.1, 0.2, 0.3])
    half = t_quantile(0.975, 2) * 0.1 / math.sqrt(3)
    assert (interval.estimate, interval.count, interval.std) == pytest.approx((0.2, 3, 0.1))
    assert (interval.low, interval.high) == pytest.approx((0.2 - half, 0.2 + half))
    single = mean_interval([0.7])
    assert (single.estimate, single.low, single.high, single.count, single.defined) == (0.7, None, None, 1, False)
    with pytest.raises(ValueError, match="at least one value"):
        mean_interval([])


def test_welch_interval_by_hand():
    """[1, 2, 3, 4] - [2, 4, 6, 8, 10]: -3.5, df 5.521 (Welch-Satterthwaite), half-width t * 1.5546."""
    interval = welch_interval([1, 2, 3, 4], [2, 4, 6, 8, 10])
    a, b = (5 / 3) / 4, 10 / 5
    df = (a + b) ** 2 / (a * a / 3 + b * b / 4)
    assert df == pytest.approx(5.5208, abs=1e-4)
    half = t_quantile(0.975, df) * math.sqrt(a + b)
    assert 2.447 < t_quantile(0.975, df) < 2.571  # between the table's df 6 and df 5
    assert (interval.estimate, interval.low, interval.high) == pytest.approx((-3.5, -3.5 - half, -3.5 + half))
    assert not welch_interval([1.0], [2.0, 3.0]).defined
    assert welch_interval([1.0, 1.0], [2.0, 2.0]).low == pytest.approx(-1.0)  # no spread: exact


def test_intervals_cover_the_true_mean_95_percent_of_the_time():
    """3 draws (df 2, where a normal 1.96 would cover only about 81 %) and Welch with unequal spreads."""
    rng = random.Random(1)
    trials = 4000
    means = sum(_covers(mean_interval([rng.gauss(5, 2) for _ in range(3)]), 5) for _ in range(trials))
    welch = sum(
        _covers(welch_interval([rng.gauss(1, 0.5) for _ in range(4)], [rng.gauss(0, 3) for _ in range(6)]), 1)
        for _ in range(trials)
    )
    assert 0.935 < means / trials < 0.965
    assert 0.935 < welch / trials < 0.97  # Welch is slightly conservative


def _covers(interval: Interval, true: float) -> bool:
    return interval.low <= true <= interval.high


def test_interval_columns_are_the_rounded_mean_interval_and_range_with_undefined_values_empty() -> None:
    columns = interval_columns([0.1234567891, 0.2, 0.3])
    interval = mean_interval([0.1234567891, 0.2, 0.3])
    assert columns == {
        "mean": round(interval.estimate, 6),
        "ci_low": round(interval.low, 6),
        "ci_high": round(interval.high, 6),
        "std": round(interval.std, 6),
        "min": 0.123457,
        "max": 0.3,
    }
    assert interval_columns([0.5]) == {
        "mean": 0.5,
        "ci_low": None,
        "ci_high": None,
        "std": None,
        "min": 0.5,
        "max": 0.5,
    }
    assert rounded(float("nan")) is None and rounded(None) is None
