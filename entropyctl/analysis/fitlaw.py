"""The saturation law R = -a*exp(H) + b (Cui et al. 2025, arXiv 2505.22617; spec §1.2).

The model is linear in (a, b) with regressor x = exp(H), so ordinary least squares gives the
exact optimum in closed form: a = -cov(x, R)/var(x), b = mean(R) + a*mean(x). No iterative
curve fitting: the answer is exact, and `fit_law_batch` fits thousands of series at once.
Intervals come from the OLS covariance with a Student-t quantile, or from a case bootstrap
(`fit_law_bootstrap`). The ceiling is R at H = 0: b - a. `early_prediction` is the paper's
protocol: fit on the first fraction of steps, predict the rest from the observed H.
numpy/scipy only: fit-law and compare never import torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def t_ppf(q: float | np.ndarray, dof: float | np.ndarray) -> float | np.ndarray:
    """Student-t quantile, the same numbers as scipy.stats.t.ppf (which calls this stdtrit).
    scipy.special imports in a fraction of scipy.stats' 0.7-3 s, which fit-law on a large
    log cannot afford; imported here, when an interval is computed, so `--help` stays instant."""
    from scipy.special import stdtrit

    return stdtrit(dof, q)


# var(exp(H)) below this (relative to mean^2) means entropy did not move: refuse to fit.
MIN_REL_VAR_X = 1e-10
MIN_POINTS = 3


@dataclass
class LawFit:
    n: int
    a: float = math.nan
    b: float = math.nan
    ceiling: float = math.nan
    a_ci: tuple[float, float] = (math.nan, math.nan)
    b_ci: tuple[float, float] = (math.nan, math.nan)
    ceiling_ci: tuple[float, float] = (math.nan, math.nan)
    r2: float = math.nan
    rmse: float = math.nan
    h_range: tuple[float, float] = (math.nan, math.nan)
    r_range: tuple[float, float] = (math.nan, math.nan)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    n_dropped: int = 0  # non-finite (H, R) pairs left out before fitting
    level: float = 0.95
    ci_method: str = "t"  # "t" (OLS covariance) or "bootstrap"

    @property
    def ok(self) -> bool:
        return self.error is None

    def predict(self, H: np.ndarray) -> np.ndarray:
        return self.b - self.a * np.exp(np.asarray(H, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in list(d.items()):
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def unfittable_reason(H: np.ndarray, R: np.ndarray, n_dropped: int = 0) -> str | None:
    """Why (H, R) cannot be fitted, or None. H and R are already finite and paired;
    `n_dropped` is how many non-finite pairs were removed before (for the message)."""
    if len(H) < MIN_POINTS:
        if len(H) == 0 and n_dropped:
            return f"all {n_dropped} points are NaN/null: nothing to fit (check the run for divergence or the keys)"
        dropped = f" ({n_dropped} NaN/null dropped)" if n_dropped else ""
        return (f"only {len(H)} finite point(s){dropped}; the law needs at least {MIN_POINTS} "
                "(log eval more often or widen --window)")
    with np.errstate(over="ignore"):
        x = np.exp(H)
    if not np.all(np.isfinite(x)):
        return "exp(H) overflows: entropy above 700 nats is not a per-token entropy in nats (check --entropy)"
    if np.var(x) <= MIN_REL_VAR_X * max(np.mean(x) ** 2, 1e-300):
        return ("entropy is constant (exp(H) has ~zero variance): nothing to fit "
                "(a collapsed run, or --entropy names the wrong key)")
    return None  # R outside [0, 1] is legitimate (a summed reward): the law is scale-free


def percent_range(lo: float, hi: float) -> bool:
    """R's finite range [lo, hi] on a 0-100 scale (not a summed reward on [0, 4]): worth
    suggesting --perf-scale 0.01."""
    return lo >= 0.0 and 10.0 < hi <= 100.0


def looks_like_percent(R: np.ndarray) -> bool:
    """`percent_range` of R's finite values (False when there are none)."""
    R = np.asarray(R, dtype=np.float64)
    R = R[np.isfinite(R)]
    return bool(len(R)) and percent_range(R.min(), R.max())


def _t_quantile(level: float, dof: float) -> float:
    return float(t_ppf(0.5 + level / 2, dof))


def fit_law(H: np.ndarray, R: np.ndarray, level: float = 0.95) -> LawFit:
    """Closed-form OLS fit of R = -a*exp(H) + b with `level` t-intervals.

    H, R: 1-D arrays of paired points (entropy in nats, performance in [0, 1]). Non-finite
    pairs are dropped first. Returns a LawFit whose `error` says why when it cannot fit.
    """
    H = np.asarray(H, dtype=np.float64).ravel()
    R = np.asarray(R, dtype=np.float64).ravel()
    if H.shape != R.shape:
        return LawFit(n=0, error=f"H and R differ in length ({len(H)} vs {len(R)})", level=level)
    keep = np.isfinite(H) & np.isfinite(R)
    dropped = int(len(H) - keep.sum())
    H, R = H[keep], R[keep]
    n = len(H)
    reason = unfittable_reason(H, R, dropped)
    if reason:
        return LawFit(n=n, error=reason, n_dropped=dropped, level=level)
    x = np.exp(H)
    xm, rm = x.mean(), R.mean()
    sxx = np.sum((x - xm) ** 2)
    slope = np.sum((x - xm) * (R - rm)) / sxx  # dR/dx = -a
    a = -slope + 0.0  # + 0.0: a flat R gives a = 0, not -0
    b = rm + a * xm
    resid = R - (b - a * x)
    sse = float(np.sum(resid**2))
    sst = float(np.sum((R - rm) ** 2))
    r2 = 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else math.nan)
    rmse = math.sqrt(sse / n)
    fit = LawFit(
        n=n, a=float(a), b=float(b), ceiling=float(b - a), r2=float(r2), rmse=rmse,
        h_range=(float(H.min()), float(H.max())), r_range=(float(R.min()), float(R.max())),
        n_dropped=dropped, level=level,
    )
    if n > 2:
        s2 = sse / (n - 2)
        # Cov of (b, slope): standard OLS with intercept; ceiling = b - a = b + slope.
        var_slope = s2 / sxx
        var_b = s2 * (1.0 / n + xm**2 / sxx)
        cov_b_slope = -s2 * xm / sxx
        var_ceiling = var_b + var_slope + 2 * cov_b_slope
        t = _t_quantile(level, n - 2)
        for name, centre, var in (("a", a, var_slope), ("b", b, var_b), ("ceiling", b - a, var_ceiling)):
            half = t * math.sqrt(max(var, 0.0))
            setattr(fit, f"{name}_ci", (float(centre - half), float(centre + half)))
    return fit


# ----------------------------------------------------------------------------- many series


@dataclass
class BatchFit:
    """`fit_law` on S series at once; every field is an array of length S ((S, 2) for CIs).
    Rows with ok = False (fewer than 3 points, constant entropy) hold NaN."""

    n: np.ndarray
    a: np.ndarray
    b: np.ndarray
    ceiling: np.ndarray
    a_ci: np.ndarray
    b_ci: np.ndarray
    ceiling_ci: np.ndarray
    r2: np.ndarray
    rmse: np.ndarray
    ok: np.ndarray


def _batch_chunk(H: np.ndarray, R: np.ndarray, level: float) -> dict[str, np.ndarray]:
    x = np.exp(H)  # (S, N)
    m = np.isfinite(x) & np.isfinite(R)
    n = m.sum(axis=1)
    nf = np.maximum(n, 1).astype(np.float64)
    full = bool(m.all())  # no missing point: skip the masking passes (same numbers)
    xm = (x if full else np.where(m, x, 0.0)).sum(axis=1) / nf
    rm = (R if full else np.where(m, R, 0.0)).sum(axis=1) / nf
    dx = x - xm[:, None] if full else np.where(m, x - xm[:, None], 0.0)
    dr = R - rm[:, None] if full else np.where(m, R - rm[:, None], 0.0)
    sxx = np.einsum("ij,ij->i", dx, dx)
    ok = (n >= MIN_POINTS) & (sxx > MIN_REL_VAR_X * nf * xm**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.einsum("ij,ij->i", dx, dr) / sxx
        a = np.where(ok, -slope, np.nan) + 0.0
        b = rm + a * xm
        resid = dr - slope[:, None] * dx  # R - fit, zero where missing
        sse = np.einsum("ij,ij->i", resid, resid)
        sst = np.einsum("ij,ij->i", dr, dr)
        r2 = np.where(sst > 0, 1.0 - sse / sst, np.where(sse == 0, 1.0, np.nan))
        rmse = np.sqrt(sse / nf)
        dof = np.maximum(n - 2, 1)
        s2 = sse / dof
        var_slope = s2 / sxx
        var_b = s2 * (1.0 / nf + xm**2 / sxx)
        var_c = var_b + var_slope - 2 * s2 * xm / sxx
    t = t_ppf(0.5 + level / 2, dof)
    out = {"n": n, "a": a, "b": b, "ceiling": b - a, "r2": np.where(ok, r2, np.nan),
           "rmse": np.where(ok, rmse, np.nan), "ok": ok}
    for name, centre, var in (("a", a, var_slope), ("b", b, var_b), ("ceiling", b - a, var_c)):
        half = t * np.sqrt(np.maximum(var, 0.0))
        out[f"{name}_ci"] = np.stack([centre - half, centre + half], axis=1)
    return out


def fit_law_batch(H: np.ndarray, R: np.ndarray, level: float = 0.95, chunk: int = 1000) -> BatchFit:
    """Closed-form fits of S series at once. H, R: (S, N); NaN marks a missing point, so
    series of different lengths are padded with NaN. Same numbers as `fit_law` row by row
    (except the percent check, which is the caller's). Chunks of `chunk` rows bound memory."""
    H = np.atleast_2d(np.asarray(H, dtype=np.float64))
    R = np.atleast_2d(np.asarray(R, dtype=np.float64))
    if H.shape != R.shape:
        raise ValueError(f"H and R differ in shape ({H.shape} vs {R.shape})")
    parts = [_batch_chunk(H[i:i + chunk], R[i:i + chunk], level) for i in range(0, len(H), chunk)]
    return BatchFit(**{k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


def fit_law_many(pairs: list[tuple[np.ndarray, np.ndarray]], level: float = 0.95,
                 cells: int = 1 << 16) -> list[LawFit]:
    """`fit_law` on each (H, R) pair of 1-D arrays, all closed forms computed at once by
    `fit_law_batch` (series sorted by length, padded with NaN in chunks of about `cells`
    values: 512 KB per array, so a chunk's passes stay in a core's L2 cache; 4M-value chunks
    made 10,000 x 1,000 points 1.5x slower). A series the batch cannot fit goes through
    `fit_law` for its reason. Equal to `fit_law` series by series up to float rounding (~1e-15)."""
    out: list[LawFit | None] = [None] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda k: len(pairs[k][0]))
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and (j - i + 1) * len(pairs[order[j]][0]) <= cells:
            j += 1
        idx = order[i:j]
        lengths = [len(pairs[k][0]) for k in idx]
        if min(lengths) == max(lengths) and all(len(pairs[k][1]) == lengths[0] for k in idx):
            H = np.array([pairs[k][0] for k in idx], dtype=np.float64).reshape(len(idx), lengths[0])
            R = np.array([pairs[k][1] for k in idx], dtype=np.float64).reshape(len(idx), lengths[0])
        else:
            H = np.full((len(idx), max(1, *lengths)), np.nan)
            R = np.full(H.shape, np.nan)
            for row, k in enumerate(idx):
                h, r = pairs[k]
                H[row, :len(h)], R[row, :len(r)] = h, r
        bf = fit_law_batch(H, R, level)
        with np.errstate(invalid="ignore"):
            hmax = np.fmax.reduce(H, axis=1)  # NaN-skipping: > 700 exactly where (H > 700).any()
        big = hmax > 700  # only these rows can overflow exp(H), which fit_law names
        overflow = np.zeros(len(idx), bool)
        with np.errstate(over="ignore"):
            overflow[big] = np.isinf(np.exp(H[big])).any(axis=1)
        m = np.isfinite(H) & np.isfinite(R)
        full = bool(m.all())
        if not full:
            H, R = np.where(m, H, np.nan), np.where(m, R, np.nan)
        with np.errstate(invalid="ignore"):
            lo = np.stack([np.fmin.reduce(H, axis=1), np.fmin.reduce(R, axis=1)], axis=1).tolist()
            hi = np.stack([hmax if full else np.fmax.reduce(H, axis=1), np.fmax.reduce(R, axis=1)], axis=1).tolist()
        bad = (~bf.ok | overflow).tolist()
        rows = zip(idx, lengths, bad, lo, hi, *(getattr(bf, f).tolist() for f in (
            "n", "a", "b", "ceiling", "a_ci", "b_ci", "ceiling_ci", "r2", "rmse")))
        for k, length, no, (h0, r0), (h1, r1), n, a, b, c, a_ci, b_ci, c_ci, r2, rmse in rows:
            if no or length != len(pairs[k][1]):
                out[k] = fit_law(pairs[k][0], pairs[k][1], level)
                continue
            out[k] = LawFit(n=n, a=a, b=b, ceiling=c, a_ci=tuple(a_ci), b_ci=tuple(b_ci), ceiling_ci=tuple(c_ci),
                            r2=r2, rmse=rmse, h_range=(h0, h1), r_range=(r0, r1), n_dropped=length - n, level=level)
        i = j
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------- intervals, early, window


def fit_law_bootstrap(H: np.ndarray, R: np.ndarray, n_boot: int, level: float = 0.95,
                      seed: int = 0) -> LawFit:
    """`fit_law` with percentile intervals from `n_boot` case resamples of the (H, R) pairs.

    Resampling pairs treats points as independent, like the t-interval does; consecutive
    steps of one run are correlated, so both intervals are optimistic on real logs."""
    fit = fit_law(H, R, level)
    if not fit.ok:
        return fit
    H = np.asarray(H, dtype=np.float64).ravel()
    R = np.asarray(R, dtype=np.float64).ravel()
    keep = np.isfinite(H) & np.isfinite(R)
    H, R = H[keep], R[keep]
    idx = np.random.default_rng(seed).integers(0, len(H), size=(n_boot, len(H)))  # (B, n)
    boot = fit_law_batch(H[idx], R[idx], level)
    q = [50 * (1 - level), 50 * (1 + level)]
    for name in ("a", "b", "ceiling"):
        vals = getattr(boot, name)[boot.ok]
        if len(vals) >= 2:
            lo, hi = np.percentile(vals, q)
            setattr(fit, f"{name}_ci", (float(lo), float(hi)))
    fit.ci_method = "bootstrap"
    fit.extra["bootstrap"] = {"n_boot": int(n_boot), "n_degenerate": int((~boot.ok).sum()), "seed": seed}
    return fit


def early_prediction(steps: np.ndarray, H: np.ndarray, R: np.ndarray, frac: float,
                     level: float = 0.95) -> dict[str, Any]:
    """Fit on the points whose step lies in the first `frac` of the step range, predict R
    from the observed H on the rest. Returns the early fit, the error on the rest (RMSE,
    MAE, in R's units: x100 for percentage points) and predicted vs actual final value;
    or {"frac": ..., "error": why}."""
    steps = np.asarray(steps, dtype=np.float64).ravel()
    H = np.asarray(H, dtype=np.float64).ravel()
    R = np.asarray(R, dtype=np.float64).ravel()
    keep = np.isfinite(steps) & np.isfinite(H) & np.isfinite(R)
    steps, H, R = steps[keep], H[keep], R[keep]
    out: dict[str, Any] = {"frac": frac}
    if len(steps) == 0:
        return {**out, "error": "no finite points"}
    order = np.argsort(steps, kind="stable")
    steps, H, R = steps[order], H[order], R[order]
    cutoff = steps[0] + frac * (steps[-1] - steps[0])
    early = steps <= cutoff
    out.update(cutoff_step=float(cutoff), n_fit=int(early.sum()), n_test=int((~early).sum()))
    fit = fit_law(H[early], R[early], level)
    if not fit.ok:
        return {**out, "error": f"fit on the first {frac:g} of steps: {fit.error}"}
    if out["n_test"] == 0:
        return {**out, "error": "no points after the early window to predict"}
    err = fit.predict(H[~early]) - R[~early]
    pred_final = float(fit.predict(H[-1:])[0])
    return {
        **out, "a": fit.a, "b": fit.b, "ceiling": fit.ceiling,
        "rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))),
        "final_step": float(steps[-1]), "final_actual": float(R[-1]), "final_predicted": pred_final,
        "final_error": pred_final - float(R[-1]),
    }


def parse_window(text: str) -> tuple[float | None, float | None]:
    """'a:b', 'a:' or ':b' (inclusive steps) -> (lo, hi); ValueError with a usable message."""
    if text.count(":") != 1:
        raise ValueError(f"--window {text!r}: expected START:END, START: or :END (steps, inclusive)")
    lo_s, hi_s = (p.strip() for p in text.split(":"))
    try:
        lo = float(lo_s) if lo_s else None
        hi = float(hi_s) if hi_s else None
    except ValueError:
        raise ValueError(f"--window {text!r}: START and END must be numbers (steps)") from None
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"--window {text!r}: START is after END")
    return lo, hi


def window_mask(steps: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    steps = np.asarray(steps, dtype=np.float64)
    m = np.ones(len(steps), dtype=bool)
    if lo is not None:
        m &= steps >= lo
    if hi is not None:
        m &= steps <= hi
    return m
