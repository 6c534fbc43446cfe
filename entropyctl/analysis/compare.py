"""Statistics behind `entropyctl compare`: per-run summaries, group intervals, tests vs a baseline.

The question: did an intervention keep exploration alive, at what cost in reward, and is the
difference real across seeds? Each run is reduced to one number per metric (a "final" value is
the mean of its last k logged values); a group's seeds then give a mean with a 95 % Student-t
interval. Against the baseline group: difference of means with the Welch–Satterthwaite interval,
Welch's t-test (scipy._stats().ttest_ind, equal_var=False), Holm's step-down correction across the
groups compared on the same metric, and Hedges' g. Beside them, rliable's estimators
(analysis/robust.py): the IQM with a bootstrap interval, the IQM difference with a stratified
bootstrap interval and the probability of improvement; every interval clipped to the metric's
natural range. The per-run numbers are analysis/perrun.py's.

Pure functions on rows already read from the run store (I/O lives in commands/compare.py):
numpy and scipy only, never torch.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from typing import Any, Sequence

import numpy as np

from entropyctl.errors import BadInput
from entropyctl.analysis import robust
from entropyctl.analysis.fitlaw import fit_law
from entropyctl.analysis.perrun import (
    COMPLETE, DOM_Q, IMPORTED, METRICS, PASS_PREFIX, SHARE_PREFIX, Metric, RunInput, Rows, ceilings,
    format_shares, half_life, last_k_mean, law_points, pass_keys, reward_auc, run_summary, t_dom, winner,
)
from entropyctl.analysis.stats import clip_pair, curve_band

# What callers import from here: the per-run numbers live in perrun.py and are re-exported.
__all__ = [
    "COMPLETE", "DOM_Q", "IMPORTED", "METRICS", "PASS_PREFIX", "SHARE_PREFIX", "Metric", "RunInput", "Rows",
    "ceilings", "format_shares", "half_life", "last_k_mean", "law_points", "pass_keys", "reward_auc",
    "run_summary", "t_dom", "winner", "LEVEL", "CompareError", "mean_ci", "hedges_g", "welch", "holm",
    "band", "is_included", "resolve_baseline", "compare_runs", "to_json",
]
from entropyctl.runstore.store import json_safe


def _stats():
    # scipy.stats takes ~0.7 s to import: only when a test or interval is computed, so that
    # `entropyctl --help` stays instant.
    from scipy import stats

    return stats


LEVEL = 0.95  # every interval compare reports
DEFAULT_BASELINE = "grpo"
ZERO_SPREAD = 1e-12  # relative standard error below which seeds count as identical
FORMAT_ACC_PREFIX = "format/acc/"


class CompareError(BadInput):
    """Input compare cannot work with, phrased for the user in one line."""


# ----------------------------------------------------------------------------- across seeds


def mean_ci(values: Sequence[float], level: float) -> dict[str, float]:
    """Mean and Student-t interval over the finite values; lo = hi = NaN when n < 2."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    m = float(x.mean())
    if n < 2:
        return {"mean": m, "lo": math.nan, "hi": math.nan, "n": 1}
    half = _stats().t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return {"mean": m, "lo": float(m - half), "hi": float(m + half), "n": n}


def hedges_g(x: np.ndarray, y: np.ndarray) -> float:
    """Standardised mean difference (x - y) / pooled sd with the small-sample factor J."""
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return math.nan
    sp = math.sqrt(((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2))
    if sp <= ZERO_SPREAD * max(1.0, abs(x.mean()), abs(y.mean())):
        return math.nan
    return float((x.mean() - y.mean()) / sp * (1 - 3 / (4 * (nx + ny) - 9)))


def welch(x: Sequence[float], y: Sequence[float], level: float) -> dict[str, Any]:
    """x - y: difference of means, Welch–Satterthwaite interval, Welch's p and Hedges' g.

    With fewer than two finite values on either side no test is possible: p is NaN and
    `note` says so (the difference of means is still given).
    """
    xa = np.asarray([v for v in x if math.isfinite(v)], dtype=np.float64)
    ya = np.asarray([v for v in y if math.isfinite(v)], dtype=np.float64)
    out: dict[str, Any] = {"diff": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan,
                           "g": math.nan, "n": len(xa), "n_baseline": len(ya), "note": None}
    if len(xa) == 0 or len(ya) == 0:
        out["note"] = "not logged"
        return out
    out["diff"] = float(xa.mean() - ya.mean())
    if len(xa) < 2 or len(ya) < 2:
        out["note"] = "n<2: no test possible"
        return out
    vx, vy = xa.var(ddof=1) / len(xa), ya.var(ddof=1) / len(ya)
    se = math.sqrt(vx + vy)
    # identical seeds (up to rounding): t and g would be 0/0 or rounding noise blown up
    if se <= ZERO_SPREAD * max(1.0, abs(xa.mean()), abs(ya.mean())):
        out["lo"] = out["hi"] = out["diff"]
        out["note"] = "zero variance: no test possible"
        return out
    df = se**4 / (vx**2 / (len(xa) - 1) + vy**2 / (len(ya) - 1))
    half = _stats().t.ppf(0.5 + level / 2, df) * se
    out["lo"], out["hi"] = out["diff"] - half, out["diff"] + half
    with warnings.catch_warnings():  # scipy's precision warnings are for its user, we checked the spread
        warnings.simplefilter("ignore", RuntimeWarning)
        out["p"] = float(_stats().ttest_ind(xa, ya, equal_var=False).pvalue)
    out["g"] = hedges_g(xa, ya)
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and do not count in m."""
    idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
    adjusted = [math.nan] * len(pvalues)
    m, running = len(idx), 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def band(curves: list[tuple[Sequence[float], Sequence[float]]], level: float = LEVEL, n_boot: int | None = None):
    """Per-round mean and band over runs' (rounds, values) curves, aligned by round: the
    bootstrap interval of the mean where >= 3 runs logged the round, the min-max where 2 did,
    none where 1 did (stats.curve_band; n_boot=0: the mean alone, lo = hi = NaN). Returns
    (rounds, mean, lo, hi, n) as arrays."""
    curves = [(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)) for x, y in curves]
    if not curves:
        return (np.zeros(0),) * 5
    rounds, inv = np.unique(np.concatenate([x for x, _ in curves]), return_inverse=True)
    M = np.full((len(curves), rounds.size), np.nan)
    rows = np.repeat(np.arange(len(curves)), [x.size for x, _ in curves])
    M[rows, inv] = np.concatenate([y for _, y in curves])  # a repeated round: the last value
    if n_boot == 0:
        n = np.isfinite(M).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(np.isfinite(M), M, 0.0).sum(axis=0) / n
        return rounds, mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan), n
    return (rounds, *curve_band(M, level, seed=robust.SEED))


# ----------------------------------------------------------------------------- the comparison


def is_included(run: RunInput, include_incomplete: bool) -> tuple[bool, str | None]:
    """Whether a run enters the statistics, and if not, why."""
    if not run.rows:
        return False, "no rounds logged"
    if run.status not in (COMPLETE, IMPORTED) and not include_incomplete:
        return False, f"status {run.status}"
    return True, None


def resolve_baseline(groups: list[str], baseline: str | None) -> str | None:
    if baseline is None:
        return DEFAULT_BASELINE if DEFAULT_BASELINE in groups else None
    if baseline not in groups:
        raise CompareError(f"baseline {baseline!r} is not a group here; groups: {', '.join(groups)} "
                           "(pick one with --baseline)")
    return baseline


def compare_runs(runs: list[RunInput], *, baseline: str | None, last_k: int,
                 include_incomplete: bool, by: str | None, stat: str | None = None) -> dict[str, Any]:
    """The compare.json object: groups with metric intervals and tests vs the baseline, runs.

    Per metric and group: mean with its Student-t interval (`mean`, `lo`, `hi`) and the IQM with
    its bootstrap interval (`iqm`, `iqm_lo`, `iqm_hi`, `iqm_method`); against the baseline Welch
    (`diff`, `lo`, `hi`, `p`, `p_holm`, `g`) beside the IQM difference (`iqm_diff`, ...) and the
    probability of improvement (`poi`). `stat` (welch|bootstrap, None = by the smallest group)
    says which the tables show first. Non-finite numbers are None, as in the JSON. Raises
    CompareError when nothing can be compared.
    """
    if last_k < 1:
        raise CompareError(f"--last-k must be at least 1 (got {last_k})")
    if stat is not None and stat not in robust.STATS:
        raise CompareError(f"--stat {stat}: expected one of {', '.join(robust.STATS)}")
    if not runs:
        raise CompareError("no runs to compare")
    verdicts = [is_included(r, include_incomplete) for r in runs]
    kept = [r for r, (ok, _) in zip(runs, verdicts) if ok]
    if not kept:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(Counter(r.status for r in runs).items()))
        raise CompareError(f"none of the {len(runs)} runs can enter the statistics ({statuses}); "
                           "use --include-incomplete to count unfinished runs")
    names = sorted({r.group for r in runs})
    base = resolve_baseline(names, baseline)
    names = ([base] if base else []) + [n for n in names if n != base]
    pkeys = pass_keys(kept)
    metrics = [m.key for m in METRICS] + pkeys
    points = [law_points(r) for r in kept]
    ceiling = ceilings(points)
    summaries = {}
    for i, r in enumerate(kept):
        summaries[id(r)] = {**run_summary(r.cols, last_k, pkeys, fit=False), "ceiling": float(ceiling[i])}
    members_of = {g: [r for r in kept if r.group == g] for g in names}
    values = {g: {k: [summaries[id(r)][k] for r in members_of[g]] for k in metrics} for g in names}
    used, why = robust.choose_stat(stat, [len(members_of[g]) for g in names if members_of[g]])
    boot = robust.Resampler()
    gi = {g: i for i, g in enumerate(names)}
    bounds = {k: robust.range_for(k, *(values[g][k] for g in names)) for k in metrics}
    point_of = {id(r): p for r, p in zip(kept, points)}

    groups = []
    for g in names:
        members = members_of[g]
        wins = Counter(w for w in (winner(r.cols, last_k) for r in members) if w)
        pooled = [point_of[id(r)] for r in members]
        law = fit_law(np.concatenate([p[0] for p in pooled] or [[]]),
                      np.concatenate([p[1] for p in pooled] or [[]]), level=LEVEL)
        groups.append({
            "name": g,
            "n": len(members),
            "baseline": g == base,
            "seeds": [r.seed for r in members],
            "metrics": {k: _group_metric(values[g][k], boot, gi[g], bounds[k]) for k in metrics},
            "vs_baseline": {},
            "winner": {"format": wins.most_common(1)[0][0], "runs": wins.most_common(1)[0][1]} if wins else None,
            "law": {k: law.to_dict()[k] for k in ("n", "a", "b", "ceiling", "ceiling_ci", "r2", "error")},
        })
    if base:
        others = [gr for gr in groups if not gr["baseline"]]
        for k in metrics:
            tests = [welch(values[gr["name"]][k], values[base][k], LEVEL) for gr in others]
            for gr, t, p_holm in zip(others, tests, holm([t["p"] for t in tests])):
                t["lo"], t["hi"] = _clip_diff(t["lo"], t["hi"], bounds[k])
                rob = robust.iqm_diff(values[gr["name"]][k], values[base][k], boot, gi[gr["name"]], gi[base], bounds[k])
                gr["vs_baseline"][k] = {**t, "p_holm": p_holm, **rob}

    run_rows = []
    fmts = sorted({k for r in kept for k in r.cols if k.startswith(FORMAT_ACC_PREFIX)})
    format_acc = {"formats": [k.removeprefix(FORMAT_ACC_PREFIX) for k in fmts], "groups": {
        g: {k.removeprefix(FORMAT_ACC_PREFIX): _group_metric([last_k_mean(r.cols, k, last_k) for r in members_of[g]],
                                                            boot, gi[g], robust.UNIT) for k in fmts} for g in names}}
    for r, (ok, reason) in zip(runs, verdicts):
        run_rows.append({"id": r.id, "group": r.group, "status": r.status, "seed": r.seed,
                         "included": ok, "excluded_because": reason, "rounds": len(r.rows),
                         "error": r.error, "path": r.path, "source": r.source})
    notes = []
    if base is None:
        notes.append(f"no baseline group ({DEFAULT_BASELINE!r} absent): pass --baseline NAME for tests")
    return json_safe({"by": by or "intervention", "baseline": base, "last_k": last_k, "level": LEVEL,
                      "include_incomplete": include_incomplete, "stat": used, "stat_reason": why,
                      "n_boot": boot.n_boot, "ranges": {k: list(b) for k, b in bounds.items() if b},
                      "metrics": metrics, "groups": groups, "format_acc": format_acc, "runs": run_rows,
                      "notes": notes})


def _group_metric(x: list[float], boot: robust.Resampler, group: int, bounds: tuple[float, float] | None) -> dict:
    """The Student-t summary (clipped) and the IQM with its bootstrap interval, side by side."""
    t = mean_ci(x, LEVEL)
    t["lo"], t["hi"] = _clip_diff(t["lo"], t["hi"], bounds, diff=False)
    r = robust.group_iqm(x, boot, group, bounds)
    return {**t, "iqm": r["iqm"], "iqm_lo": r["lo"], "iqm_hi": r["hi"], "iqm_method": r["method"]}


def _clip_diff(lo: float, hi: float, bounds: tuple[float, float] | None, diff: bool = True) -> tuple[float, float]:
    return clip_pair(lo, hi, robust.diff_range(bounds) if diff else bounds)


# ----------------------------------------------------------------------------- helpers


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, allow_nan=False) + "\n"

