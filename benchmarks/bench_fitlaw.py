"""Benchmark: closed-form law fits vs scipy.optimize.curve_fit (issue 4).

10,000 synthetic series x 1,000 points from R = -a*exp(H) + b + noise. Times
  - `fit_law_batch` (all series at once, vectorised closed form),
  - `fit_law` called once per series (closed form, with t-intervals),
  - `scipy.optimize.curve_fit` called once per series (iterative least squares).
curve_fit is timed on a subset first; if all series would take longer than CURVE_FIT_BUDGET_S
it is extrapolated linearly from the subset, and the JSON says so (`curve_fit_extrapolated`).

Run: .venv/bin/python benchmarks/bench_fitlaw.py [--series 10000 --points 1000]
or via `make bench` (benchmarks/run_all.py), which writes bench-results/bench_fitlaw.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from entropyctl.analysis.fitlaw import fit_law, fit_law_batch  # noqa: E402

CURVE_FIT_SUBSET = 1000
CURVE_FIT_BUDGET_S = 40.0


def make_data(S: int, N: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 0.4, S)
    b = a + rng.uniform(0.4, 0.9, S)  # ceiling b - a in [0.4, 0.9]
    tau = rng.uniform(N / 10, N / 3, S)
    t = np.arange(N)
    H = (rng.uniform(0.6, 1.5, S)[:, None] * np.exp(-t[None, :] / tau[:, None]) + 0.05)  # (S, N)
    R = b[:, None] - a[:, None] * np.exp(H) + rng.normal(0, 0.01, (S, N))
    return H, R, a, b


def main(out_dir: str | Path | None = None, series: int = 10_000, points: int = 1_000) -> dict:
    from scipy.optimize import curve_fit

    H, R, a_true, b_true = make_data(series, points)

    t0 = time.perf_counter()
    batch = fit_law_batch(H, R)
    t_batch = time.perf_counter() - t0

    t0 = time.perf_counter()
    loop_a = np.array([fit_law(H[i], R[i]).a for i in range(series)])
    t_loop = time.perf_counter() - t0

    def model(h, a, b):
        return b - a * np.exp(h)

    def run_curve_fit(rows):
        return np.array([curve_fit(model, H[i], R[i])[0][0] for i in rows])

    sub = min(CURVE_FIT_SUBSET, series)
    t0 = time.perf_counter()
    cf_a = run_curve_fit(range(sub))
    t_sub = time.perf_counter() - t0
    projected = t_sub * series / sub
    extrapolated = projected > CURVE_FIT_BUDGET_S and sub < series
    if not extrapolated and sub < series:
        t0 = time.perf_counter()
        cf_a = np.concatenate([cf_a, run_curve_fit(range(sub, series))])
        t_cf = t_sub + time.perf_counter() - t0
        timed = series
    else:
        t_cf, timed = projected, sub

    result = {
        "benchmark": "fit_law",
        "series": series,
        "points_per_series": points,
        "closed_form_batch_s": round(t_batch, 4),
        "closed_form_loop_s": round(t_loop, 4),
        "curve_fit_loop_s": round(t_cf, 3),
        "curve_fit_series_timed": timed,
        "curve_fit_extrapolated": bool(extrapolated),
        "speedup_batch_vs_curve_fit": round(t_cf / t_batch, 1),
        "speedup_loop_vs_curve_fit": round(t_cf / t_loop, 1),
        "max_abs_diff_a_batch_vs_loop": float(np.nanmax(np.abs(batch.a - loop_a))),
        "max_abs_diff_a_curve_fit_vs_closed_form": float(np.max(np.abs(cf_a - batch.a[: len(cf_a)]))),
        "max_abs_err_a_vs_truth": float(np.max(np.abs(batch.a - a_true))),
        "max_abs_err_ceiling_vs_truth": float(np.max(np.abs(batch.ceiling - (b_true - a_true)))),
        "all_fitted": bool(batch.ok.all()),
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "bench_fitlaw.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", type=int, default=10_000)
    p.add_argument("--points", type=int, default=1_000)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    print(json.dumps(main(args.out, args.series, args.points), indent=2))
