"""The saturation law R = -a*exp(H) + b (Cui et al. 2025, arXiv 2505.22617; spec §1.2).

The model is linear in (a, b) with regressor x = exp(H), so ordinary least squares gives the
exact optimum in closed form: a = -cov(x, R)/var(x), b = mean(R) + a*mean(x). Intervals come
from the OLS covariance with a Student-t quantile. The ceiling is R at H = 0: b - a.
numpy/scipy only: fit-law and compare never import torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

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


def unfittable_reason(H: np.ndarray, R: np.ndarray) -> str | None:
    """Why (H, R) cannot be fitted, or None. H and R are already finite and paired."""
    if len(H) < MIN_POINTS:
        return f"only {len(H)} point(s); the law needs at least {MIN_POINTS}"
    x = np.exp(H)
    if np.var(x) <= MIN_REL_VAR_X * max(np.mean(x) ** 2, 1e-300):
        return "entropy is constant (exp(H) has ~zero variance): nothing to fit"
    if np.max(R) > 1.0 + 1e-9 and np.max(R) <= 100.0 and np.min(R) >= 0.0:
        return "reward goes above 1 and looks like a percentage; divide by 100 (R must be in [0, 1])"
    return None


def fit_law(H: np.ndarray, R: np.ndarray, level: float = 0.95) -> LawFit:
    """Closed-form OLS fit of R = -a*exp(H) + b with `level` t-intervals.

    H, R: 1-D arrays of paired points (entropy in nats, performance in [0, 1]). Non-finite
    pairs are dropped first. Returns a LawFit whose `error` says why when it cannot fit.
    """
    H = np.asarray(H, dtype=np.float64).ravel()
    R = np.asarray(R, dtype=np.float64).ravel()
    if H.shape != R.shape:
        return LawFit(n=0, error=f"H and R differ in length ({len(H)} vs {len(R)})")
    keep = np.isfinite(H) & np.isfinite(R)
    H, R = H[keep], R[keep]
    n = len(H)
    reason = unfittable_reason(H, R)
    if reason:
        return LawFit(n=n, error=reason)
    x = np.exp(H)
    xm, rm = x.mean(), R.mean()
    sxx = np.sum((x - xm) ** 2)
    slope = np.sum((x - xm) * (R - rm)) / sxx  # dR/dx = -a
    a = -slope
    b = rm + a * xm
    resid = R - (b - a * x)
    sse = float(np.sum(resid**2))
    sst = float(np.sum((R - rm) ** 2))
    r2 = 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else math.nan)
    rmse = math.sqrt(sse / n)
    fit = LawFit(
        n=n, a=float(a), b=float(b), ceiling=float(b - a), r2=float(r2), rmse=rmse,
        h_range=(float(H.min()), float(H.max())), r_range=(float(R.min()), float(R.max())),
    )
    if n > 2:
        s2 = sse / (n - 2)
        # Cov of (b, slope): standard OLS with intercept; ceiling = b - a = b + slope.
        var_slope = s2 / sxx
        var_b = s2 * (1.0 / n + xm**2 / sxx)
        cov_b_slope = -s2 * xm / sxx
        var_ceiling = var_b + var_slope + 2 * cov_b_slope
        t = stats.t.ppf(0.5 + level / 2, n - 2)
        for name, centre, var in (("a", a, var_slope), ("b", b, var_b), ("ceiling", b - a, var_ceiling)):
            half = t * math.sqrt(max(var, 0.0))
            setattr(fit, f"{name}_ci", (float(centre - half), float(centre + half)))
    return fit
