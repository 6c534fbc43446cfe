"""entropyctl.analysis.fitlaw: the closed-form fit of R = -a*exp(H) + b (spec §1.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from entropyctl.analysis.fitlaw import (LawFit, looks_like_percent, early_prediction, fit_law, fit_law_batch, fit_law_bootstrap,
                               parse_window, window_mask)

A, B = 0.2, 0.75  # R stays in [0.08, 0.55] for H in [0.05, 1.2]


def law(H, a=A, b=B):
    return b - a * np.exp(H)


def test_noiseless_data_is_recovered_exactly():
    H = np.linspace(1.2, 0.05, 40)
    fit = fit_law(H, law(H))
    assert fit.ok and fit.n == 40
    assert fit.a == pytest.approx(A, abs=1e-12)
    assert fit.b == pytest.approx(B, abs=1e-12)
    assert fit.ceiling == pytest.approx(B - A, abs=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12) and fit.rmse < 1e-12
    assert fit.ceiling_ci[1] - fit.ceiling_ci[0] < 1e-9
    assert fit.h_range == pytest.approx((0.05, 1.2)) and fit.r_range[0] == pytest.approx(law(1.2))
    np.testing.assert_allclose(fit.predict(H), law(H), atol=1e-12)


def test_matches_a_hand_worked_example():
    # x = exp(H) = 1, 2, 3 (H = log x); R = 0.9, 0.6, 0.4 -> slope = -0.25, b = 1.133.., a = 0.25
    H = np.log([1.0, 2.0, 3.0])
    fit = fit_law(H, [0.9, 0.6, 0.4])
    assert fit.a == pytest.approx(0.25)
    assert fit.b == pytest.approx(0.6333333 + 0.25 * 2)
    # residuals 0.01667, -0.03333, 0.01667 -> SSE = 1/600; s2 = SSE/1; se(slope) = sqrt(s2/2)
    half = 12.706204736 * math.sqrt((1 / 600) / 2)
    assert fit.a_ci == pytest.approx((0.25 - half, 0.25 + half), rel=1e-6)


def test_ceiling_interval_covers_truth_in_90_to_99_percent_of_seeded_trials():
    trials, hits, hits_a = 400, 0, 0
    H = np.linspace(1.2, 0.05, 30)
    for seed in range(trials):
        R = law(H) + np.random.default_rng(seed).normal(0, 0.02, len(H))
        fit = fit_law(H, R)
        hits += fit.ceiling_ci[0] <= B - A <= fit.ceiling_ci[1]
        hits_a += fit.a_ci[0] <= A <= fit.a_ci[1]
    assert 0.90 <= hits / trials <= 0.99, hits / trials
    assert 0.90 <= hits_a / trials <= 0.99, hits_a / trials


def test_batch_fit_equals_one_by_one_fits_with_nan_padding():
    rng = np.random.default_rng(1)
    S, N = 7, 25
    H = rng.uniform(0.05, 1.3, (S, N))
    R = law(H) + rng.normal(0, 0.03, (S, N))
    R[2, 10:] = np.nan  # a shorter series
    H[4, :] = 0.5  # constant entropy: refused
    R[5, 2:] = np.nan  # two points: refused
    batch = fit_law_batch(H, R, chunk=3)
    for i in range(S):
        one = fit_law(H[i], R[i])
        assert bool(batch.ok[i]) == one.ok
        if one.ok:
            assert batch.n[i] == one.n
            for k in ("a", "b", "ceiling", "r2", "rmse"):
                assert getattr(batch, k)[i] == pytest.approx(getattr(one, k), rel=1e-9, abs=1e-12)
            np.testing.assert_allclose(batch.ceiling_ci[i], one.ceiling_ci, rtol=1e-9)
            np.testing.assert_allclose(batch.a_ci[i], one.a_ci, rtol=1e-9)
        else:
            assert math.isnan(batch.a[i])
    assert not batch.ok[4] and not batch.ok[5] and batch.ok[2]


@pytest.mark.parametrize("H,R,reason", [
    ([0.5, 0.4], [0.2, 0.3], "only 2 finite point"),
    ([np.nan] * 5, [0.1] * 5, "all 5 points are NaN"),
    ([0.5, 0.4, 0.3, np.nan, 0.2], [0.1, np.nan, 0.2, 0.3, np.nan], "(3 NaN/null dropped)"),
    ([0.7] * 6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "entropy is constant"),
    ([800.0, 700.0, 600.0], [0.1, 0.2, 0.3], "overflows"),
])
def test_each_unfittable_case_gives_its_reason(H, R, reason):
    fit = fit_law(np.array(H), np.array(R))
    assert not fit.ok
    assert reason in fit.error
    assert math.isnan(fit.a) and "\n" not in fit.error


def test_r_above_one_fits_scale_free():
    """A summed reward on [0, 4] is legitimate: the fit scales with R (issue 9)."""
    H = np.array([1.0, 0.8, 0.5, 0.2])
    R = np.array([0.12, 0.25, 0.40, 0.51])
    one, four = fit_law(H, R), fit_law(H, 4 * R)
    assert four.ok and four.ceiling == pytest.approx(4 * one.ceiling)
    assert looks_like_percent(100 * R) and not looks_like_percent(4 * R)


def test_negative_a_is_reported_not_hidden():
    H = np.linspace(1.0, 0.1, 10)
    fit = fit_law(H, 0.1 + 0.2 * np.exp(H))  # performance falls as entropy falls
    assert fit.ok and fit.a == pytest.approx(-0.2)


def test_bootstrap_is_seeded_and_close_to_the_t_interval_on_gaussian_noise():
    H = np.linspace(1.2, 0.05, 60)
    R = law(H) + np.random.default_rng(3).normal(0, 0.02, len(H))
    f1 = fit_law_bootstrap(H, R, 400, seed=7)
    f2 = fit_law_bootstrap(H, R, 400, seed=7)
    t = fit_law(H, R)
    assert f1.ci_method == "bootstrap" and t.ci_method == "t"
    assert f1.ceiling_ci == f2.ceiling_ci and f1.a == t.a
    assert f1.ceiling_ci[0] < f1.ceiling < f1.ceiling_ci[1]
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert 0.6 < width(f1.ceiling_ci) / width(t.ceiling_ci) < 1.6
    assert f1.extra["bootstrap"]["n_boot"] == 400


def test_early_prediction_on_noiseless_data_predicts_the_rest_exactly():
    steps = np.arange(100)
    H = 1.2 * np.exp(-steps / 30) + 0.05
    e = early_prediction(steps, H, law(H), 0.15)
    assert "error" not in e
    assert e["n_fit"] == 15 and e["n_test"] == 85 and e["cutoff_step"] == pytest.approx(14.85)
    assert e["rmse"] < 1e-10 and e["mae"] < 1e-10
    assert e["final_predicted"] == pytest.approx(e["final_actual"]) == pytest.approx(law(H[-1]))
    assert e["a"] == pytest.approx(A)


def test_early_prediction_uses_the_step_range_and_reports_a_biased_window():
    steps = np.arange(0, 200, 10)  # sparse validation
    H = np.linspace(1.2, 0.05, len(steps))
    R = law(H)
    R[steps >= 100] -= 0.05  # the late part drifts below the early law
    e = early_prediction(steps, H, R, 0.5)
    assert e["n_fit"] == 10 and e["final_error"] == pytest.approx(0.05)
    assert e["mae"] == pytest.approx(0.05)


def test_early_prediction_with_too_few_early_points_says_why():
    steps = np.arange(0, 100, 25)
    e = early_prediction(steps, np.linspace(1, 0.1, 4), np.linspace(0.1, 0.5, 4), 0.15)
    assert "only 1 finite point" in e["error"] and e["n_fit"] == 1


def test_window_parsing_and_mask():
    assert parse_window("10:50") == (10, 50)
    assert parse_window("10:") == (10, None) and parse_window(":7") == (None, 7)
    for bad in ("10", "a:b", "50:10", "1:2:3"):
        with pytest.raises(ValueError, match="--window"):
            parse_window(bad)
    assert window_mask(np.arange(10), 3, 5).tolist() == [False] * 3 + [True] * 3 + [False] * 4


def test_lawfit_keeps_the_fields_compare_relies_on():
    d = fit_law(np.linspace(1, 0.1, 5), law(np.linspace(1, 0.1, 5))).to_dict()
    for k in ("a", "b", "ceiling", "a_ci", "b_ci", "ceiling_ci", "r2", "rmse", "n", "error"):
        assert k in d
    assert isinstance(d["ceiling_ci"], list)
    assert LawFit(n=0, error="x").ok is False
