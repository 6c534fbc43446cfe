"""Statistics behind `entropyctl compare`: per-run summaries, group intervals, tests vs a baseline.

The question: did an intervention keep exploration alive, at what cost in reward, and is the
difference real across seeds? Each run is reduced to one number per metric (a "final" value is
the mean of its last k logged values); a group's seeds then give a mean with a 95 % Student-t
interval. Against the baseline group: difference of means with the Welch–Satterthwaite interval,
Welch's t-test (scipy._stats().ttest_ind, equal_var=False), Holm's step-down correction across the
groups compared on the same metric, and Hedges' g. The ceiling b - a comes from `fitlaw.fit_law`
(spec §1.2), t_dom from spec §7.5, pass@k keys from spec §6.

Pure functions on rows already read from the run store (I/O lives in commands/compare.py):
numpy and scipy only, never torch.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from entropyctl.errors import BadInput
from entropyctl.analysis.fitlaw import fit_law
from entropyctl.analysis.runs import law_pairs
from entropyctl.runstore.glossary import PER_RESPONSE_ENTROPY_KEY
from entropyctl.runstore.store import json_safe, series


def _stats():
    # scipy.stats takes ~0.7 s to import: only when a test or interval is computed, so that
    # `entropyctl --help` stays instant.
    from scipy import stats

    return stats


LEVEL = 0.95  # every interval compare reports
DOM_Q = 0.9  # t_dom threshold: one format's share >= 90 % (spec §7.5 t_dom(q))
DEFAULT_BASELINE = "grpo"
COMPLETE = "finished"
SHARE_PREFIX = "format/share/"
ZERO_SPREAD = 1e-12  # relative standard error below which seeds count as identical
PASS_PREFIX = "eval/pass@"


class CompareError(BadInput):
    """Input compare cannot work with, phrased for the user in one line."""


@dataclass
class RunInput:
    """One run as compare sees it: identity, its group and its metrics rows."""

    id: str
    group: str
    status: str
    seed: Any
    rows: list[dict[str, Any]]
    path: str
    error: str | None  # run.json's one-line reason for a failed/diverged run


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    doc: str


# Row order of every table. "final" = mean of the last k logged values of that key.
METRICS: tuple[Metric, ...] = (
    Metric("reward/mean", "reward", "final mean rollout reward"),
    Metric("eval/acc", "val acc", "final validation accuracy (sampled)"),
    Metric("eval/greedy_acc", "greedy acc", "final validation accuracy (greedy)"),
    Metric("entropy/tokmean", "H tok-mean", "final token-pooled entropy (nats)"),
    Metric("entropy/seqmean", "H seq-mean", "final per-response mean token entropy (nats)"),
    Metric("entropy/seqsum", "H per-resp", "final per-response entropy, summed over tokens (nats)"),
    Metric("entropy/first", "H first", "final entropy at the first completion position (nats)"),
    Metric("half_life", "H half-life", "rounds until per-response entropy first falls to half its first value"),
    Metric("reward_auc", "reward AUC", "area under the reward curve per round spanned (= time-averaged reward)"),
    Metric("ceiling", "ceiling b-a", "per-run fitted ceiling b - a of R = -a exp(H) + b (eval/acc vs entropy/seqmean)"),
    Metric("format/top_share", "top format", "final share of the most common answer format"),
    Metric("t_dom", "t_dom(90%)", "first round where one format's share >= 90 %"),
    Metric("kl/base_k3", "KL to base", "final k3 KL(policy || base) per token"),
)


# ----------------------------------------------------------------------------- per run


def last_k_mean(rows: list[dict[str, Any]], key: str, k: int) -> float:
    """Mean of the last k finite values of `key` (eval keys are sparser than rounds)."""
    _, ys = series(rows, key)
    return float(np.mean(ys[-k:])) if ys else math.nan


def half_life(rounds: Sequence[float], H: Sequence[float]) -> float:
    """Rounds from the first logged value until H first drops to half of it; NaN if never.

    Integer rounds, no interpolation: the answer is a round a reader can look up in the log.
    """
    if len(H) == 0 or not H[0] > 0:
        return math.nan
    for r, h in zip(rounds, H):
        if h <= H[0] / 2:
            return float(r - rounds[0])
    return math.nan


def reward_auc(rounds: Sequence[float], R: Sequence[float]) -> float:
    """Trapezoid area under R(round) divided by the rounds spanned, so runs of different
    lengths compare on the reward scale; a single point is its own value."""
    if len(R) == 0:
        return math.nan
    if len(R) == 1:
        return float(R[0])
    x, y = np.asarray(rounds, dtype=np.float64), np.asarray(R, dtype=np.float64)
    span = x[-1] - x[0]
    if span <= 0:
        return math.nan
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / span)


def format_shares(rows: list[dict[str, Any]]) -> list[str]:
    """The format names logged as `format/share/<name>`, in order of first appearance."""
    names: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key.startswith(SHARE_PREFIX):
                names.setdefault(key.removeprefix(SHARE_PREFIX))
    return list(names)


def t_dom(rows: list[dict[str, Any]], q: float) -> float:
    """First round at which one format's share is >= q (spec §7.5); NaN if it never is."""
    for row in rows:
        shares = [v for k, v in row.items() if k.startswith(SHARE_PREFIX) and _is_num(v)]
        if shares and max(shares) >= q:
            return float(row.get("round", math.nan))
    return math.nan


def winner(rows: list[dict[str, Any]], k: int) -> str | None:
    """The format with the largest final (last-k mean) share, or None if none is logged."""
    finals = {n: last_k_mean(rows, SHARE_PREFIX + n, k) for n in format_shares(rows)}
    finals = {n: v for n, v in finals.items() if math.isfinite(v)}
    return max(finals, key=finals.get) if finals else None


def law_points(rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """(H, R) pairs for the law, as fit-law pairs them (analysis/runs.py `law_pairs`: eval/acc of
    round r with the entropy of the policy that produced it, logged in round r + 1)."""
    H, R = law_pairs(rows)
    return [float(h) for h in H], [float(r) for r in R]


def run_summary(rows: list[dict[str, Any]], k: int, pass_keys: Iterable[str]) -> dict[str, float]:
    """One number per metric for one run (NaN where the run did not log what it needs)."""
    out = {m.key: last_k_mean(rows, m.key, k) for m in METRICS if "/" in m.key}
    if not math.isfinite(out["format/top_share"]):
        # older runs log only per-format shares: the top share is their max
        finals = [last_k_mean(rows, SHARE_PREFIX + n, k) for n in format_shares(rows)]
        out["format/top_share"] = max(finals) if finals else math.nan
    out["half_life"] = half_life(*series(rows, PER_RESPONSE_ENTROPY_KEY))
    out["reward_auc"] = reward_auc(*series(rows, "reward/mean"))
    fit = fit_law(*law_points(rows))
    out["ceiling"] = fit.ceiling if fit.ok else math.nan
    out["t_dom"] = t_dom(rows, DOM_Q)
    for key in pass_keys:
        out[key] = last_k_mean(rows, key, k)
    return out


def pass_keys(runs: Iterable[RunInput]) -> list[str]:
    """`eval/pass@<k>` keys logged by any run, sorted by k."""
    found = {key for r in runs for row in r.rows for key in row if key.startswith(PASS_PREFIX)}
    return sorted(found, key=lambda s: (_int_or(s.removeprefix(PASS_PREFIX)), s))


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


def band(curves: list[tuple[list[float], list[float]]], level: float):
    """Per-round mean and t-interval over runs' (rounds, values) curves, aligned by round.

    Returns (rounds, mean, lo, hi) as arrays; lo/hi are NaN where fewer than two runs logged.
    """
    by_round: dict[float, list[float]] = {}
    for xs, ys in curves:
        for x, y in zip(xs, ys):
            by_round.setdefault(x, []).append(y)
    rounds = sorted(by_round)
    cis = [mean_ci(by_round[r], level) for r in rounds]
    return (np.asarray(rounds, dtype=np.float64), *(np.asarray([c[k] for c in cis], dtype=np.float64)
                                                      for k in ("mean", "lo", "hi")))


# ----------------------------------------------------------------------------- the comparison


def is_included(run: RunInput, include_incomplete: bool) -> tuple[bool, str | None]:
    """Whether a run enters the statistics, and if not, why."""
    if not run.rows:
        return False, "no rounds logged"
    if run.status != COMPLETE and not include_incomplete:
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
                 include_incomplete: bool, by: str | None) -> dict[str, Any]:
    """The compare.json object: groups with metric intervals and tests vs the baseline, runs.

    Non-finite numbers are None, as in the JSON. Raises CompareError when nothing can be compared.
    """
    if last_k < 1:
        raise CompareError(f"--last-k must be at least 1 (got {last_k})")
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
    summaries = {id(r): run_summary(r.rows, last_k, pkeys) for r in kept}
    values = {g: {k: [summaries[id(r)][k] for r in kept if r.group == g] for k in metrics} for g in names}

    groups = []
    for g in names:
        members = [r for r in kept if r.group == g]
        wins = Counter(w for w in (winner(r.rows, last_k) for r in members) if w)
        pooled = [law_points(r.rows) for r in members]
        law = fit_law(np.concatenate([p[0] for p in pooled] or [[]]),
                      np.concatenate([p[1] for p in pooled] or [[]]), level=LEVEL)
        groups.append({
            "name": g,
            "n": len(members),
            "baseline": g == base,
            "seeds": [r.seed for r in members],
            "metrics": {k: mean_ci(values[g][k], LEVEL) for k in metrics},
            "vs_baseline": {},
            "winner": {"format": wins.most_common(1)[0][0], "runs": wins.most_common(1)[0][1]} if wins else None,
            "law": {k: law.to_dict()[k] for k in ("n", "a", "b", "ceiling", "ceiling_ci", "r2", "error")},
        })
    if base:
        others = [gr for gr in groups if not gr["baseline"]]
        for k in metrics:
            tests = [welch(values[gr["name"]][k], values[base][k], LEVEL) for gr in others]
            for gr, t, p_holm in zip(others, tests, holm([t["p"] for t in tests])):
                gr["vs_baseline"][k] = {**t, "p_holm": p_holm}

    run_rows = []
    for r, (ok, reason) in zip(runs, verdicts):
        run_rows.append({"id": r.id, "group": r.group, "status": r.status, "seed": r.seed,
                         "included": ok, "excluded_because": reason, "rounds": len(r.rows),
                         "error": r.error, "path": r.path})
    notes = []
    if base is None:
        notes.append(f"no baseline group ({DEFAULT_BASELINE!r} absent): pass --baseline NAME for tests")
    return json_safe({"by": by or "intervention", "baseline": base, "last_k": last_k, "level": LEVEL,
                  "include_incomplete": include_incomplete, "metrics": metrics,
                  "groups": groups, "runs": run_rows, "notes": notes})


# ----------------------------------------------------------------------------- helpers


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, allow_nan=False) + "\n"


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_or(s: str) -> int:
    return int(s) if s.isdigit() else 1 << 30
