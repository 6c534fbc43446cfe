"""rliable-style estimators (analysis/stats.py) on data worked out by hand, and the bootstrap
against scipy.stats.bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropyctl.analysis.stats import (
    bootstrap_ci, bootstrap_diff, iqm, performance_profile, probability_of_improvement,
)


def test_iqm_drops_a_quarter_from_each_end():
    # n = 8: drop 2 from each end -> mean of 3, 4, 5, 6 = 4.5, whatever the outliers are
    assert iqm([100.0, 1, 2, 3, 4, 5, 6, -50]) == pytest.approx((2 + 3 + 4 + 5) / 4)
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)
    # n = 3: int(0.75) = 0 values dropped -> the mean
    assert iqm([0.1, 0.2, 0.9]) == pytest.approx(0.4)
    assert math.isnan(iqm([]))


def test_iqm_equals_scipy_trim_mean():
    from scipy.stats import trim_mean

    rng = np.random.default_rng(3)
    for n in range(1, 12):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(trim_mean(x, 0.25))


def test_probability_of_improvement_counts_pairs_and_half_ties():
    # pairs (x, y): 3>1, 3>2, 3=3 (half), 2>1, 2=2 (half), 2<3 -> (3 + 2 * 0.5) / 6 = 2/3
    assert probability_of_improvement([3, 2], [1, 2, 3]) == pytest.approx(2 / 3)
    assert probability_of_improvement([1, 1], [1, 1]) == 0.5
    assert probability_of_improvement([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert probability_of_improvement([0.1], [0.9]) == 0.0


def test_performance_profile():
    assert performance_profile([0.1, 0.5, 0.9, 0.7], [0.0, 0.6, 0.95]).tolist() == [1.0, 0.5, 0.0]


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap():
    from scipy.stats import bootstrap

    x = np.array([0.61, 0.72, 0.55, 0.68, 0.70])
    ours = bootstrap_ci(x, np.mean, n_boot=20000, seed=1)
    ref = bootstrap((x,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95,
                    random_state=np.random.default_rng(2)).confidence_interval
    assert ours.method == "bootstrap" and ours.point == pytest.approx(x.mean())
    assert ours.low == pytest.approx(ref.low, abs=0.006) and ours.high == pytest.approx(ref.high, abs=0.006)
    # a percentile interval never leaves the range the runs span
    assert x.min() <= ours.low < ours.point < ours.high <= x.max()


def test_bootstrap_is_seeded_and_clipped():
    x = [0.95, 0.99, 1.0, 0.97]
    a, b = bootstrap_ci(x, seed=4), bootstrap_ci(x, seed=4)
    assert a == b
    clipped = bootstrap_ci([-0.5, 0.2, 1.4, 0.3], np.mean, clip_to=(0.0, 1.0))
    assert clipped.low >= 0.0 and clipped.high <= 1.0


def test_too_few_runs_give_min_max_labelled_so():
    iv = bootstrap_ci([0.2, 0.6])
    assert (iv.low, iv.high, iv.method) == (0.2, 0.6, "min-max")
    d = bootstrap_diff([0.5, 0.7], [0.1, 0.2, 0.3])
    # differences can range from 0.5 - 0.3 to 0.7 - 0.1
    assert d.method == "min-max" and d.low == pytest.approx(0.2) and d.high == pytest.approx(0.6)


def test_bootstrap_diff_separates_clearly_different_groups():
    hi = [0.80, 0.82, 0.79, 0.81, 0.83]
    lo = [0.60, 0.62, 0.61, 0.58, 0.59]
    d = bootstrap_diff(hi, lo, seed=0)
    assert d.low > 0.15 and d.high < 0.25 and d.point == pytest.approx(iqm(hi) - iqm(lo))
    same = bootstrap_diff(hi, hi, seed=0)
    assert same.low < 0 < same.high
