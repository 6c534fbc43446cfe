"""entropyctl.analysis.compare: per-run summaries, group intervals, Welch vs scipy, Holm, Hedges' g.

Run stores are written with runstore.create_run and read back the way the command reads them,
with numbers chosen so every expected value is worked out in a comment.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from scipy import stats

from entropyctl.cli.compare import load_inputs
from entropyctl.analysis.compare import (
    CompareError, compare_runs, half_life, hedges_g, holm, mean_ci, reward_auc, run_summary, t_dom,
    welch, winner,
)
from entropyctl.runstore.store import create_run

T975_2 = 4.302652729911275  # t quantile 0.975 with 2 degrees of freedom


def write_run(root, intervention, seed, rows, status="finished", config=None, sweep="sw"):
    w = create_run(root, sweep, f"{intervention}__lab__s{seed}__t", yaml.safe_dump(config or {}), [],
                   {"intervention": intervention, "seed": seed})
    for row in rows:
        w.append(row)
    w.finish(status, error="loss became NaN" if status == "diverged" else None)
    return w.path


def flat(reward, n=4):
    """n rounds with a constant reward: every 'final' reward value is `reward`."""
    return [{"round": r, "reward/mean": reward} for r in range(n)]


# ----------------------------------------------------------------------------- per-run numbers


def test_half_life_auc_t_dom_by_hand():
    assert half_life([0, 1, 2, 3], [8, 6, 4, 3]) == 2.0  # 4 <= 8/2 first at round 2
    assert half_life([5, 6, 7], [8, 5, 3.9]) == 2.0  # counted from the first logged round
    assert math.isnan(half_life([0, 1, 2], [8, 7, 6]))  # never halves
    # trapezoid over rounds 0..3 of [0, 1, 1, 1] = 0.5 + 1 + 1 = 2.5, per round spanned: 2.5 / 3
    assert reward_auc([0, 1, 2, 3], [0, 1, 1, 1]) == pytest.approx(2.5 / 3)
    rows = [{"round": r, "format/share/code": c, "format/share/prose": 1 - c}
            for r, c in enumerate([0.5, 0.2, 0.05, 0.03])]
    assert t_dom(rows, 0.9) == 2.0  # prose reaches 0.95 at round 2
    assert winner(rows, 2) == "prose"
    assert math.isnan(t_dom(rows[:2], 0.9))


def test_run_summary_last_k_and_law_ceiling():
    H = np.array([1.0, 0.8, 0.6, 0.4, 0.2])
    # eval/acc of round i is the policy after round i's update, whose entropy round i + 1 logs
    # (the last round's falls back to its own): spec §1.2's pairing, as fit-law pairs it
    after = [H[min(i + 1, len(H) - 1)] for i in range(len(H))]
    rows = [{"round": i, "reward/mean": float(i), "entropy/seqmean": float(h),
             "eval/acc": float(0.9 - 0.2 * math.exp(a)), "eval/pass@4": 0.5} for i, (h, a) in enumerate(zip(H, after))]
    s = run_summary(rows, 2, ["eval/pass@4"])
    assert s["reward/mean"] == pytest.approx(3.5)  # mean of the last 2 rewards: 3 and 4
    assert s["ceiling"] == pytest.approx(0.7)  # exact law: b - a = 0.9 - 0.2
    assert s["eval/pass@4"] == 0.5
    assert math.isnan(s["entropy/first"])  # not logged


# ----------------------------------------------------------------------------- statistics


def test_mean_ci_by_hand():
    s = mean_ci([0.2, 0.3, 0.4], 0.95)  # mean 0.3, sd 0.1, half = t * 0.1 / sqrt(3)
    half = T975_2 * 0.1 / math.sqrt(3)
    assert (s["mean"], s["n"]) == (pytest.approx(0.3), 3)
    assert (s["lo"], s["hi"]) == (pytest.approx(0.3 - half), pytest.approx(0.3 + half))
    one = mean_ci([0.7, math.nan], 0.95)
    assert one["n"] == 1 and one["mean"] == 0.7 and math.isnan(one["lo"])


def test_welch_matches_scipy_and_the_formula():
    x, y = [1.0, 2.0, 3.5], [2.0, 4.0, 5.0, 7.0]
    w = welch(x, y, 0.95)
    ref = stats.ttest_ind(x, y, equal_var=False)
    assert w["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    # Welch–Satterthwaite by hand: se^2 = vx/nx + vy/ny, df from the same terms
    vx, vy = np.var(x, ddof=1) / 3, np.var(y, ddof=1) / 4
    df = (vx + vy) ** 2 / (vx**2 / 2 + vy**2 / 3)
    half = stats.t.ppf(0.975, df) * math.sqrt(vx + vy)
    diff = np.mean(x) - np.mean(y)
    assert w["diff"] == pytest.approx(diff)
    assert (w["lo"], w["hi"]) == (pytest.approx(diff - half), pytest.approx(diff + half))
    ci = ref.confidence_interval(0.95)
    assert (w["lo"], w["hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert w["p"] == pytest.approx(2 * stats.t.sf(abs(diff) / math.sqrt(vx + vy), df))


def test_welch_refuses_with_fewer_than_two_seeds():
    w = welch([0.5], [0.1, 0.2, 0.3], 0.95)
    assert w["diff"] == pytest.approx(0.3) and math.isnan(w["p"])
    assert w["note"] == "n<2: no test possible"
    same = welch([0.5, 0.5], [0.5, 0.5], 0.95)
    assert math.isnan(same["p"]) and same["note"].startswith("zero variance")


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01 = 0.03, 2*0.03 = 0.06, max(0.06, 1*0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adj = holm([0.02, math.nan, 0.6])  # NaN is not a test: m = 2
    assert adj[0] == pytest.approx(0.04) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.6)
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1


def test_hedges_g_by_hand():
    # diff -2, pooled sd sqrt((2*1 + 2*4)/4) = sqrt(2.5), J = 1 - 3/(4*6 - 9) = 0.8
    g = hedges_g(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert g == pytest.approx(-2 / math.sqrt(2.5) * 0.8)


# ----------------------------------------------------------------------------- a written sweep


@pytest.fixture
def sweep(tmp_path):
    for seed, r in enumerate([0.2, 0.3, 0.4]):
        write_run(tmp_path, "grpo", seed, flat(r))
    for seed, r in enumerate([0.5, 0.6, 0.8]):
        write_run(tmp_path, "clip_cov", seed, flat(r))
    write_run(tmp_path, "clip_cov", 3, flat(9.0, n=2), status="diverged")  # would wreck the mean
    write_run(tmp_path, "kl_cov", 0, flat(0.5))
    write_run(tmp_path, "kl_cov", 1, flat(0.5, n=1), status="running")
    return tmp_path / "sw"


def test_group_statistics_on_a_written_sweep(sweep):
    res = compare_runs(load_inputs([sweep], None), baseline=None, last_k=2, include_incomplete=False, by=None)
    assert res["baseline"] == "grpo"  # the default when present, listed first
    g = {x["name"]: x for x in res["groups"]}
    assert [x["name"] for x in res["groups"]] == ["grpo", "clip_cov", "kl_cov"]
    assert (g["grpo"]["n"], g["clip_cov"]["n"], g["kl_cov"]["n"]) == (3, 3, 1)
    half = T975_2 * 0.1 / math.sqrt(3)
    m = g["grpo"]["metrics"]["reward/mean"]
    assert {k: m[k] for k in ("mean", "lo", "hi", "n")} == {"mean": pytest.approx(0.3), "lo": pytest.approx(0.3 - half),
                                                             "hi": pytest.approx(0.3 + half), "n": 3}
    # beside it the IQM (n = 3: nothing trimmed, the mean) with its bootstrap interval; a resample
    # of three runs is all 0.2 with probability 1/27 > 2.5 %, so the interval's ends are the runs'
    assert (m["iqm"], m["iqm_lo"], m["iqm_hi"], m["iqm_method"]) == (
        pytest.approx(0.3), pytest.approx(0.2), pytest.approx(0.4), "bootstrap")
    assert g["clip_cov"]["metrics"]["reward/mean"]["mean"] == pytest.approx(1.9 / 3)
    vs = g["clip_cov"]["vs_baseline"]["reward/mean"]
    ref = stats.ttest_ind([0.5, 0.6, 0.8], [0.2, 0.3, 0.4], equal_var=False).pvalue
    assert vs["diff"] == pytest.approx(1.9 / 3 - 0.3) and vs["p"] == pytest.approx(ref)
    # Holm over the two groups tested on reward: kl_cov has n=1, so m = 1 and p_holm = p
    assert vs["p_holm"] == pytest.approx(ref)
    assert g["kl_cov"]["vs_baseline"]["reward/mean"]["p"] is None
    assert g["kl_cov"]["vs_baseline"]["reward/mean"]["note"] == "n<2: no test possible"
    assert g["grpo"]["vs_baseline"] == {}
    # incomplete runs are listed, with their status, and left out
    out = {(r["group"], r["seed"]): r for r in res["runs"]}
    assert len(res["runs"]) == 9
    assert out[("clip_cov", 3)]["status"] == "diverged" and not out[("clip_cov", 3)]["included"]
    assert out[("clip_cov", 3)]["excluded_because"] == "status diverged"
    assert out[("clip_cov", 3)]["error"] == "loss became NaN"
    assert out[("kl_cov", 1)]["excluded_because"] == "status running"


def test_include_incomplete_counts_them(sweep):
    res = compare_runs(load_inputs([sweep], None), baseline="grpo", last_k=2, include_incomplete=True, by=None)
    g = {x["name"]: x for x in res["groups"]}
    assert g["clip_cov"]["n"] == 4
    assert g["clip_cov"]["metrics"]["reward/mean"]["mean"] == pytest.approx((0.5 + 0.6 + 0.8 + 9.0) / 4)
    assert all(r["included"] for r in res["runs"])


def test_holm_across_groups_on_one_metric(tmp_path):
    base, a, b = [0.1, 0.2, 0.3], [0.5, 0.6, 0.8], [0.25, 0.3, 0.4]
    for name, vals in (("grpo", base), ("a", a), ("b", b)):
        for seed, r in enumerate(vals):
            write_run(tmp_path, name, seed, flat(r))
    res = compare_runs(load_inputs([tmp_path / "sw"], None), baseline=None, last_k=1,
                       include_incomplete=False, by=None)
    p = [stats.ttest_ind(v, base, equal_var=False).pvalue for v in (a, b)]
    expected = holm(p)
    got = {x["name"]: x["vs_baseline"]["reward/mean"]["p_holm"] for x in res["groups"] if x["name"] != "grpo"}
    assert got == {"a": pytest.approx(expected[0]), "b": pytest.approx(expected[1])}
    assert min(p) * 2 == pytest.approx(min(expected))  # the smallest p is doubled (m = 2)


def test_by_dotted_config_key(tmp_path):
    for seed, (lr, r) in enumerate([(1e-3, 0.2), (1e-3, 0.4), (3e-4, 0.7), (3e-4, 0.9)]):
        write_run(tmp_path, "grpo", seed, flat(r), config={"optim": {"lr": lr}})
    runs = load_inputs([tmp_path / "sw"], "optim.lr")
    res = compare_runs(runs, baseline="0.001", last_k=1, include_incomplete=False, by="optim.lr")
    g = {x["name"]: x for x in res["groups"]}
    assert set(g) == {"0.001", "0.0003"} and res["by"] == "optim.lr"
    assert g["0.0003"]["metrics"]["reward/mean"]["mean"] == pytest.approx(0.8)
    assert g["0.0003"]["vs_baseline"]["reward/mean"]["diff"] == pytest.approx(0.5)


def test_nothing_to_compare_is_a_user_error(tmp_path):
    write_run(tmp_path, "grpo", 0, flat(0.1), status="failed")
    runs = load_inputs([tmp_path / "sw"], None)
    with pytest.raises(CompareError, match="--include-incomplete"):
        compare_runs(runs, baseline=None, last_k=1, include_incomplete=False, by=None)
    with pytest.raises(CompareError, match="baseline 'nope'"):
        compare_runs(runs, baseline="nope", last_k=1, include_incomplete=True, by=None)


def test_numerics_notes_within_and_between_groups():
    from entropyctl.analysis.runs import numerics_notes

    groups = ["grpo", "grpo", "clip_cov", "clip_cov", "clip_cov"]
    nums = [{"torch": "2.13.0", "threads": 2}, {"torch": "2.13.0", "threads": 1},
            {"torch": "2.12.1", "threads": 2}, {"torch": "2.12.1", "threads": 2}, None]  # None: an older run
    notes = numerics_notes(groups, nums)
    assert notes == [
        "the groups ran with different numerics.torch (clip_cov: 2.12.1; grpo: 2.13.0): a difference between "
        "them may come from that as well as from what they compare",
        "group(s) grpo pool runs with numerics.threads = 1 / 2: the same seed gives other numbers there; "
        "--by numerics.threads splits them"]
    assert numerics_notes(groups, nums, by="numerics.torch") == notes[1:]
    assert numerics_notes(groups[:1], nums[:1]) == [] and numerics_notes(["a"], [None]) == []
