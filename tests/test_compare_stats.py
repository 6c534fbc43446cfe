"""compare's rliable statistics (analysis/robust.py, stats.py) wired into compare: hand-worked
IQM / probability of improvement, the counts-based bootstrap against sorting every resample and
against scipy.stats.bootstrap, clipping to a metric's range, the default --stat, bands, and the
law's legend signs. Runs are fabricated (runstore.create_run), never trained."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from entropyctl.analysis import robust
from entropyctl.analysis.columns import columns, law_points
from entropyctl.analysis.compare import compare_runs
from entropyctl.analysis.report_plots import law_text
from entropyctl.analysis.runs import law_pairs
from entropyctl.analysis.stats import (
    boot_stats, bootstrap_ci, curve_band, iqm, probability_of_improvement, resample_counts,
)
from entropyctl.cli.compare import load_inputs
from entropyctl.runstore.store import create_run


def write_run(root, intervention, seed, rewards, status="finished"):
    w = create_run(root, "sw", f"{intervention}__lab__s{seed}__t", yaml.safe_dump({}), [],
                   {"intervention": intervention, "seed": seed})
    for r, x in enumerate(rewards):
        w.append({"round": r, "reward/mean": x, "eval/acc": x})
    w.finish(status)
    return w.path


def test_iqm_and_poi_by_hand():
    # n = 5: int(1.25) = 1 dropped from each end -> mean of 0.2, 0.3, 0.4 = 0.3
    assert iqm([0.9, 0.2, 0.4, 0.0, 0.3]) == pytest.approx(0.3)
    # x = [0.5, 0.5], y = [0.5, 0.1]: pairs 0.5=0.5 (half), 0.5>0.1, twice -> (2 * 0.5 + 2) / 4 = 0.75
    assert probability_of_improvement([0.5, 0.5], [0.5, 0.1]) == pytest.approx(0.75)
    # a run that did not log the metric is left out, not counted as a loss: [0.5] vs [0.1] -> 1
    assert probability_of_improvement([0.5, math.nan], [0.1]) == 1.0


def test_counts_bootstrap_equals_sorting_every_resample():
    rng = np.random.default_rng(0)
    for n in (3, 4, 7, 12):
        a = rng.normal(size=n).round(1)  # ties on purpose
        counts = resample_counts(np.random.default_rng(n), n, 300)
        idx = np.random.default_rng(n).integers(0, n, size=(300, n))  # the same draws, as indices
        assert (counts == np.stack([np.bincount(i, minlength=n) for i in idx])).all()
        naive = np.array([iqm(a[i]) for i in idx])
        assert np.allclose(boot_stats(a, counts, iqm), naive)
        assert np.allclose(boot_stats(a, counts, np.mean), a[idx].mean(axis=1))


def test_iqm_bootstrap_interval_agrees_with_scipy():
    from scipy.stats import bootstrap, trim_mean

    x = np.array([0.61, 0.72, 0.55, 0.68, 0.70, 0.64, 0.59, 0.75])
    ours = bootstrap_ci(x, iqm, n_boot=20000, seed=3)
    ref = bootstrap((x,), lambda v, axis: trim_mean(v, 0.25, axis=axis), n_resamples=20000, method="percentile",
                    confidence_level=0.95, random_state=np.random.default_rng(4)).confidence_interval
    # Monte-Carlo tolerance: with 20,000 resamples the ends move by well under 0.005 between seeds
    assert ours.low == pytest.approx(ref.low, abs=0.005) and ours.high == pytest.approx(ref.high, abs=0.005)


def test_ranges_and_clipping():
    assert robust.metric_range("eval/acc") == (0.0, 1.0)
    assert robust.metric_range("format/acc/code") == (0.0, 1.0)
    assert robust.metric_range("entropy/seqsum") == (0.0, math.inf)
    assert robust.metric_range("kl/base_k3") == (0.0, math.inf)
    assert robust.metric_range("ceiling") is None  # an extrapolation: no natural range
    assert robust.range_for("reward/mean", [0.2, 0.9]) == (0.0, 1.0)
    assert robust.range_for("reward/mean", [0.2, 4.0]) is None  # a score, not a [0, 1] reward
    assert robust.diff_range((0.0, 1.0)) == (-1.0, 1.0)


def test_t_interval_of_a_reward_is_clipped_to_0_1(tmp_path):
    # mean 0.633, sd 0.55: the t-interval (2 dof) is 0.633 ± 1.37, far outside [0, 1]
    for seed, r in enumerate([0.0, 0.9, 1.0]):
        write_run(tmp_path, "grpo", seed, [r])
    res = compare_runs(load_inputs([tmp_path / "sw"], None), baseline=None, last_k=1, include_incomplete=False,
                       by=None)
    m = res["groups"][0]["metrics"]["reward/mean"]
    assert (m["lo"], m["hi"]) == (0.0, 1.0)
    assert 0.0 <= m["iqm_lo"] <= m["iqm"] <= m["iqm_hi"] <= 1.0
    assert res["ranges"]["reward/mean"] == [0.0, 1.0]


def test_default_stat_follows_the_smallest_group(tmp_path):
    assert robust.choose_stat(None, [3, 8])[0] == "bootstrap"
    assert robust.choose_stat(None, [6, 8])[0] == "welch"
    assert robust.choose_stat("welch", [2])[0] == "welch"
    for seed in range(6):
        write_run(tmp_path, "grpo", seed, [0.1 * seed])
        write_run(tmp_path, "clip_cov", seed, [0.1 * seed + 0.05])
    runs = load_inputs([tmp_path / "sw"], None)
    res = compare_runs(runs, baseline=None, last_k=1, include_incomplete=False, by=None)
    assert res["stat"] == "welch" and "n > 5" in res["stat_reason"]
    vs = res["groups"][1]["vs_baseline"]["reward/mean"]
    # PoI by hand: clip_cov = grpo + 0.05 seed by seed: 21 of 36 pairs win (i >= j), none tie
    assert vs["poi"] == pytest.approx(21 / 36)
    assert vs["iqm_diff"] == pytest.approx(0.05) and vs["iqm_method"] == "bootstrap"
    few = compare_runs([r for r in runs if r.seed < 3], baseline=None, last_k=1, include_incomplete=False, by=None)
    assert few["stat"] == "bootstrap" and "n=3" in few["stat_reason"]


def test_curve_band_bootstrap_min_max_and_none():
    v = np.array([[0.1, 0.2, 0.5], [0.3, 0.4, np.nan], [0.5, np.nan, np.nan], [0.7, np.nan, np.nan]])
    mean, lo, hi, n = curve_band(v)
    assert n.tolist() == [4, 2, 1] and mean == pytest.approx([0.4, 0.3, 0.5])
    assert 0.1 <= lo[0] < 0.4 < hi[0] <= 0.7  # bootstrap: inside the runs' range
    assert (lo[1], hi[1]) == (0.2, 0.4)  # two runs: min-max
    assert math.isnan(lo[2]) and math.isnan(hi[2])  # one run: no band


def test_law_legend_has_the_right_sign():
    assert law_text(0.141, 0.8) == "R = −0.141·exp(H) + 0.8"
    assert law_text(-0.141, 0.8) == "R = 0.141·exp(H) + 0.8"  # never "--0.141"
    assert law_text(0.2, -0.1) == "R = −0.2·exp(H) − 0.1"


def test_vectorised_law_points_equal_law_pairs():
    rng = np.random.default_rng(5)
    for trial in range(20):
        rows = []
        for r in range(int(rng.integers(1, 15))):
            row = {"round": r}
            if rng.random() < 0.7:
                row["entropy/seqmean"] = float(rng.random())
            if rng.random() < 0.5:
                row["eval/acc"] = float(rng.random())
            rows.append(row)
        H, R = law_pairs(rows)
        h, r = law_points(columns(rows))
        assert np.array_equal(H, h) and np.array_equal(R, r), rows
