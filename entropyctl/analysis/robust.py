"""compare's rliable-style statistics (Agarwal et al. 2021) beside Welch/Holm: per group and
metric the interquartile mean (IQM) with a percentile bootstrap interval; against the baseline
the IQM difference with a stratified bootstrap interval (each group resampled on its own) and
the probability of improvement. Estimators: analysis/stats.py. Intervals are clipped to a
metric's natural range (RANGES, the one table of them).

`--stat` picks which of the two a reader sees first (tables, terminal); compare.json always
carries both. Default: bootstrap when the smallest group has n <= BOOTSTRAP_MAX_N seeds (where a
Student-t interval of a reward in [0, 1] can span -1 to 1.7), Welch above.
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Sequence

import numpy as np

from entropyctl.analysis.stats import (
    LEVEL, N_BOOT, boot_stats, clip_pair, iqm, percentile_interval, probability_of_improvement,
    resample_counts,
)

STATS = ("welch", "bootstrap")
BOOTSTRAP_MAX_N = 5
SEED = 0  # bootstrap seed: the same runs give the same report

# Natural range of each metric (glob on the key, first match wins): intervals are clipped to
# it. A range holds only when every value a group logged lies in it: a foreign log's "reward"
# may well be a score outside [0, 1], and then nothing is clipped.
UNIT = (0.0, 1.0)
NONNEG = (0.0, math.inf)
RANGES: tuple[tuple[str, tuple[float, float]], ...] = (
    ("reward/mean", UNIT), ("reward_auc", UNIT), ("eval/acc", UNIT), ("eval/greedy_acc", UNIT),
    ("eval/pass@*", UNIT), ("eval/base_pass@*", UNIT), ("eval/format/*", UNIT),
    ("format/top_share", UNIT), ("format/share/*", UNIT), ("format/acc/*", UNIT), ("repr/cka/*", UNIT),
    ("format/entropy", NONNEG), ("entropy/*", NONNEG), ("kl/*", NONNEG),
    ("half_life", NONNEG), ("t_dom", NONNEG), ("curriculum/kl_at_switch", NONNEG),
    ("curriculum/rounds_to_threshold", NONNEG),
)


def metric_range(key: str) -> tuple[float, float] | None:
    """The natural range of `key` (RANGES), or None (e.g. the fitted ceiling b - a)."""
    for pattern, bounds in RANGES:
        if fnmatch.fnmatchcase(key, pattern):
            return bounds
    return None


def range_for(key: str, *groups: Sequence[float]) -> tuple[float, float] | None:
    """The range to clip `key`'s intervals to: its natural range if every finite value of the
    groups lies inside it, else None."""
    bounds = metric_range(key)
    if bounds is None:
        return None
    vals = np.concatenate([np.asarray(g, dtype=np.float64) for g in groups] or [np.zeros(0)])
    vals = vals[np.isfinite(vals)]
    if vals.size and (vals.min() < bounds[0] or vals.max() > bounds[1]):
        return None
    return bounds


def diff_range(bounds: tuple[float, float] | None) -> tuple[float, float] | None:
    """A difference of two values in [lo, hi] lies in [lo - hi, hi - lo]."""
    return None if bounds is None else (bounds[0] - bounds[1], bounds[1] - bounds[0])


def choose_stat(requested: str | None, sizes: Sequence[int]) -> tuple[str, str]:
    """(stat, why) for the report: the requested one, or the default by the smallest group."""
    smallest = min(sizes) if sizes else 0
    if requested is not None:
        return requested, f"asked for with --stat; the smallest group has n={smallest}"
    if smallest <= BOOTSTRAP_MAX_N:
        return "bootstrap", (f"default: the smallest group has n={smallest} <= {BOOTSTRAP_MAX_N} seeds, "
                             "where Student-t intervals are too wide to trust")
    return "welch", f"default: every group has n > {BOOTSTRAP_MAX_N} seeds (smallest n={smallest})"


class Resampler:
    """One set of bootstrap resamples per (group, number of runs), shared by that group's
    metrics: resampling groups independently is the stratified bootstrap of a difference."""

    def __init__(self, n_boot: int = N_BOOT, seed: int = SEED):
        self.n_boot, self.seed = n_boot, seed
        self._counts: dict[tuple[int, int], np.ndarray] = {}
        self._dists: dict[tuple[int, bytes], np.ndarray] = {}

    def dist(self, group: int, a: np.ndarray) -> np.ndarray:
        """The IQM of each resample of `a` (read-only). Remembered per (group, values): the
        baseline's distribution of a metric is also each comparison's, so it is computed once."""
        a = np.ascontiguousarray(a, dtype=np.float64)
        memo = (group, a.tobytes())
        if memo in self._dists:
            return self._dists[memo]
        key = (group, a.size)
        if key not in self._counts:
            self._counts[key] = resample_counts(np.random.default_rng([self.seed, group, a.size]), a.size, self.n_boot)
        out = boot_stats(a, self._counts[key], iqm)
        out.flags.writeable = False
        self._dists[memo] = out
        return out


def _finite(x: Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a[np.isfinite(a)]


def group_iqm(x: Sequence[float], boot: Resampler, group: int, bounds: tuple[float, float] | None,
              level: float = LEVEL) -> dict[str, Any]:
    """{"iqm", "lo", "hi", "method", "n"}: bootstrap percentile interval at n >= 3, the
    min-max of the runs at n = 2 ("min-max"), no interval at n = 1; clipped to `bounds`."""
    a = _finite(x)
    out: dict[str, Any] = {"iqm": math.nan, "lo": math.nan, "hi": math.nan, "method": None, "n": int(a.size)}
    if a.size == 0:
        return out
    out["iqm"] = iqm(a)
    if a.size >= 3:
        lo, hi = percentile_interval(boot.dist(group, a), level)
        out["method"] = "bootstrap"
    elif a.size == 2:
        lo, hi = float(a.min()), float(a.max())
        out["method"] = "min-max"
    else:
        return out
    out["lo"], out["hi"] = clip_pair(lo, hi, bounds)
    return out


def iqm_diff(x: Sequence[float], y: Sequence[float], boot: Resampler, gx: int, gy: int,
             bounds: tuple[float, float] | None, level: float = LEVEL) -> dict[str, Any]:
    """x against the baseline y: {"iqm_diff", "iqm_lo", "iqm_hi", "iqm_method", "poi"}.
    The interval is the stratified bootstrap one when both sides have n >= 3, else the range
    of differences the runs allow (min-max); PoI = P(X > Y) + P(X = Y) / 2 over run pairs."""
    a, b = _finite(x), _finite(y)
    out: dict[str, Any] = {"iqm_diff": math.nan, "iqm_lo": math.nan, "iqm_hi": math.nan, "iqm_method": None,
                           "poi": probability_of_improvement(a, b)}
    if a.size == 0 or b.size == 0:
        return out
    out["iqm_diff"] = iqm(a) - iqm(b)
    if min(a.size, b.size) >= 3:
        lo, hi = percentile_interval(boot.dist(gx, a) - boot.dist(gy, b), level)
        out["iqm_method"] = "bootstrap"
    else:
        lo, hi = float(a.min() - b.max()), float(a.max() - b.min())
        out["iqm_method"] = "min-max"
    out["iqm_lo"], out["iqm_hi"] = clip_pair(lo, hi, diff_range(bounds))
    return out
