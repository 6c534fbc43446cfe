"""Across-seed statistics researchers trust at 2–5 seeds (Agarwal et al. 2021, "Deep RL at the
edge of the statistical precipice", the estimators of the rliable library, written here with
numpy): the interquartile mean (IQM), percentile bootstrap intervals stratified by group, the
probability of improvement, and performance profiles.

Why not only Student-t: at 3 seeds a t interval of a reward in [0, 1] can span -1 to 1.7. The
bootstrap interval stays inside the range the data spans, and `clip_to` clips any interval to a
metric's natural range. Pure numpy; no torch, no scipy import at module load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

N_BOOT = 2000  # bootstrap resamples: the CI ends move by < 0.01 of the spread between reruns
LEVEL = 0.95


def iqm(x: Sequence[float]) -> float:
    """Interquartile mean: the mean after dropping int(n/4) values from each end, as rliable
    computes it (scipy.stats.trim_mean(x, 0.25)). With n < 4 nothing is dropped: at 3 seeds the
    IQM is the mean. Robust to one outlying seed from n = 4 on, less noisy than the median."""
    v = np.sort(np.asarray(x, dtype=np.float64))
    if v.size == 0:
        return math.nan
    cut = int(0.25 * v.size)
    return float(v[cut:v.size - cut].mean())


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) for one run drawn from each group, ties counting one half (the Mann–Whitney
    U statistic over n·m): 0.5 = no difference, 1 = every run of x beats every run of y."""
    a, b = _finite(x), _finite(y)  # a missing value is no evidence either way: left out
    if a.size == 0 or b.size == 0:
        return math.nan
    gt = (a[:, None] > b[None, :]).sum()
    eq = (a[:, None] == b[None, :]).sum()
    return float((gt + 0.5 * eq) / (a.size * b.size))


def performance_profile(x: Sequence[float], taus: Sequence[float]) -> np.ndarray:
    """Fraction of runs whose score exceeds each threshold tau (rliable's run-score profile)."""
    a = np.asarray(x, dtype=np.float64)
    return np.array([(a > t).mean() if a.size else math.nan for t in taus])


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float
    method: str  # "bootstrap" | "min-max" (n < 3: too few seeds to resample meaningfully)


def _finite(x: Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def resample_counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n): how many times each of n runs is drawn in each resample with replacement
    (the same draws as indexing with rng.integers(0, n, (n_boot, n)), kept as counts so that a
    statistic of every resample is a matrix product, not a Python loop)."""
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.int32)


def boot_stats(a: np.ndarray, counts: np.ndarray, stat: Callable = iqm) -> np.ndarray:
    """stat of each resample given as counts (resample_counts), for the n values `a`.

    mean: counts @ a / n. iqm: with `a` sorted, a resample is `a` with multiplicities c; its
    trimmed mean keeps, of the n drawn values in sorted order, positions cut .. n - cut - 1,
    so value i contributes the overlap of [C_i - c_i, C_i) (C = cumulative counts) with
    [cut, n - cut). Equal to sorting each resample (tests check), at the cost of a cumsum.
    """
    n = a.size
    if stat is np.mean:
        return counts @ a / n
    if stat is iqm:
        order = np.argsort(a, kind="stable")
        c = counts[:, order]
        upper = np.cumsum(c, axis=1, dtype=np.int32)
        lower = np.subtract(upper, c, dtype=np.int32)
        cut = int(0.25 * n)
        np.minimum(upper, n - cut, out=upper)  # in place: at 1,000 runs these are the hot arrays
        np.maximum(lower, cut, out=lower)
        np.subtract(upper, lower, out=upper)
        np.maximum(upper, 0, out=upper)
        return upper @ (a[order] / (n - 2 * cut))
    return np.array([stat(np.repeat(a, row)) for row in counts])  # any other statistic


def percentile_interval(dist: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    lo, hi = np.quantile(dist, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_ci(x: Sequence[float], stat: Callable = iqm, level: float = LEVEL, n_boot: int = N_BOOT,
                 seed: int = 0, clip_to: tuple[float, float] | None = None) -> Interval:
    """Percentile bootstrap interval of `stat` over runs (seeded: the same inputs give the same
    interval). Fewer than 3 runs: the min–max of the runs, labelled so."""
    a = _finite(x)
    if a.size == 0:
        return Interval(math.nan, math.nan, math.nan, "none")
    point = float(stat(a))
    if a.size < 3:
        lo, hi, method = float(a.min()), float(a.max()), "min-max"
    else:
        boots = boot_stats(a, resample_counts(np.random.default_rng(seed), a.size, n_boot), stat)
        (lo, hi), method = percentile_interval(boots, level), "bootstrap"
    return _clip(Interval(point, float(lo), float(hi), method), clip_to)


def bootstrap_diff(x: Sequence[float], y: Sequence[float], stat: Callable = iqm, level: float = LEVEL,
                   n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Interval of stat(x) - stat(y), resampling each group on its own (stratified by group, as
    rliable stratifies by task): the groups' seeds are independent runs."""
    a, b = _finite(x), _finite(y)
    if a.size == 0 or b.size == 0:
        return Interval(math.nan, math.nan, math.nan, "none")
    point = float(stat(a) - stat(b))
    if min(a.size, b.size) < 3:
        return Interval(point, float(a.min() - b.max()), float(a.max() - b.min()), "min-max")
    rng = np.random.default_rng(seed)
    d = (boot_stats(a, resample_counts(rng, a.size, n_boot), stat)
         - boot_stats(b, resample_counts(rng, b.size, n_boot), stat))
    lo, hi = percentile_interval(d, level)
    return Interval(point, lo, hi, "bootstrap")


def _clip(iv: Interval, bounds: tuple[float, float] | None) -> Interval:
    if bounds is None:
        return iv
    return Interval(iv.point, *clip_pair(iv.low, iv.high, bounds), iv.method)


def clip_pair(lo: float, hi: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """[lo, hi] intersected with a metric's natural range (NaN ends stay NaN)."""
    if bounds is None:
        return lo, hi
    return (max(lo, bounds[0]) if math.isfinite(lo) else lo, min(hi, bounds[1]) if math.isfinite(hi) else hi)


BAND_BOOT = 1000  # resamples for the bands on the curves (a drawing; the tables use N_BOOT)


@lru_cache(maxsize=8)
def _band_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """The resamples of n runs for every band of a report (the same for each curve of n runs)."""
    counts = resample_counts(np.random.default_rng(seed), n, n_boot).astype(np.float64)
    counts.flags.writeable = False
    return counts


def curve_band(values: np.ndarray, level: float = LEVEL, n_boot: int = BAND_BOOT,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column of `values` (runs x rounds, NaN = not logged): the mean over runs and a band,
    the percentile bootstrap interval of the mean where >= 3 runs logged the round, else the
    min-max (no band for one run). One set of resamples for every round: counts @ values.
    Returns (mean, lo, hi, n)."""
    v = np.asarray(values, dtype=np.float64)
    logged = np.isfinite(v)
    n = logged.sum(axis=0)
    filled = np.where(logged, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / n
        lo = np.where(n >= 2, np.where(logged, v, np.inf).min(axis=0), np.nan)
        hi = np.where(n >= 2, np.where(logged, v, -np.inf).max(axis=0), np.nan)
        boot = n >= 3
        if boot.any() and v.shape[0] >= 3:
            counts = _band_counts(v.shape[0], n_boot, seed)
            dist = (counts @ filled[:, boot]) / (counts @ logged[:, boot])
            # a resample that drew no run logging the round has no mean: it counts as the mean
            # (rare at n >= 3 logged; keeps the quantile one vectorised call, not one per round)
            dist = np.where(np.isfinite(dist), dist, mean[boot])
            q = np.quantile(dist, [(1 - level) / 2, (1 + level) / 2], axis=0)
            lo[boot], hi[boot] = q[0], q[1]
    return mean, lo, hi, n
