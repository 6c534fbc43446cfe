"""Benchmark: fit-law at scale (issue 14) and closed-form fits vs scipy.optimize.curve_fit (issue 4).

`rows` (issue 14's targets, one row each: measure, value, unit, target, ok):
  - `entropyctl fit-law` on a 1,000,000-row CSV and on the same rows as JSONL, run as a real
    child process (_procs.entropyctl): wall time (<= 3 s) and peak resident memory (<= 300 MB,
    the child's own, measured by a small launcher). The files are written to <out>/tmp and
    deleted afterwards;
  - fitting 10,000 series x 1,000 points through fit-law's library path (`law.fit_all`, the
    maths after reading: closed forms, intervals, warnings), best of 3 (<= 0.3 s).
And, as before, on the same 10,000 synthetic series from R = -a*exp(H) + b + noise:
  - `fit_law_batch` (all series at once, vectorised closed form),
  - `fit_law` called once per series (closed form, with t-intervals),
  - `scipy.optimize.curve_fit` called once per series (iterative least squares).
curve_fit is timed on a subset first; if all series would take longer than CURVE_FIT_BUDGET_S
it is extrapolated linearly from the subset, and the JSON says so (`curve_fit_extrapolated`).

Run: .venv/bin/python benchmarks/run_all.py --out bench-results --only bench_fitlaw
(`make bench` runs it with the others; run_all.py writes bench-results/bench_fitlaw.json).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _procs import entropyctl  # noqa: E402
from entropyctl.analysis.fitlaw import fit_law, fit_law_batch  # noqa: E402

CURVE_FIT_SUBSET = 1000
CURVE_FIT_BUDGET_S = 40.0
LOG_ROWS = 1_000_000
TARGET_S, TARGET_MB, TARGET_FIT_S = 3.0, 300.0, 0.3


def write_logs(folder: Path, rows: int, runs: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """A generic training log of `rows` rows (step, run, entropy, reward, loss; `runs` runs
    interleaved) as CSV and as JSONL with the same values."""
    rng = np.random.default_rng(seed)
    step = np.arange(rows) // runs
    run = np.arange(rows) % runs
    H = 1.2 * np.exp(-step / max(rows / runs / 5, 1)) + 0.05
    R = 0.8 - 0.2 * np.exp(H) + rng.normal(0, 0.01, rows)
    loss = rng.normal(0, 1, rows)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, jsonl_path = folder / "log.csv", folder / "log.jsonl"
    with open(csv_path, "w") as c, open(jsonl_path, "w") as j:
        c.write("step,run,entropy,reward,loss\n")
        for i in range(0, rows, 100_000):
            part = list(zip(*(a[i:i + 100_000].tolist() for a in (step, run, H, R, loss))))
            c.write("".join(f"{s},r{r},{h!r},{x!r},{l!r}\n" for s, r, h, x, l in part))
            j.write("".join(json.dumps({"step": s, "run": f"r{r}", "entropy": h, "reward": x, "loss": l}) + "\n"
                            for s, r, h, x, l in part))
    return csv_path, jsonl_path


def row(measure: str, value: float, unit: str, target: float) -> dict:
    return {"measure": measure, "value": round(value, 3), "unit": unit, "target": f"<= {target:g} {unit}",
            "ok": bool(value <= target)}


def fit_law_rows(out_dir: Path, rows: int, H: np.ndarray, R: np.ndarray) -> list[dict]:
    from entropyctl.analysis.law import Options, fit_all
    from entropyctl.analysis.logimport import Series

    out = []
    tmp = out_dir / "tmp"
    try:
        for path in write_logs(tmp, rows):
            kind = path.suffix.lstrip(".").upper()
            runs = [entropyctl("fit-law", str(path), "--json", "--no-write") for _ in range(2)]
            label = f"fit-law, {rows:,}-row {kind}"
            out.append(row(f"{label}: wall time (best of 2)", min(r["s"] for r in runs), "s", TARGET_S))
            out.append(row(f"{label}: peak RSS", max(r["peak_mb"] for r in runs), "MB", TARGET_MB))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steps = np.arange(H.shape[1], dtype=np.float64)
    series = [Series("bench", f"s{i}", "csv", steps, H[i], R[i]) for i in range(len(H))]
    best = min(_timed(lambda: fit_all(series, Options())) for _ in range(3))
    out.append(row(f"fit-law, {len(H):,} series x {H.shape[1]:,} points (law.fit_all, best of 3)", best, "s",
                   TARGET_FIT_S))
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def make_data(S: int, N: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 0.4, S)
    b = a + rng.uniform(0.4, 0.9, S)  # ceiling b - a in [0.4, 0.9]
    tau = rng.uniform(N / 10, N / 3, S)
    t = np.arange(N)
    H = (rng.uniform(0.6, 1.5, S)[:, None] * np.exp(-t[None, :] / tau[:, None]) + 0.05)  # (S, N)
    R = b[:, None] - a[:, None] * np.exp(H) + rng.normal(0, 0.01, (S, N))
    return H, R, a, b


def main(out_dir: str | Path | None = None, series: int = 10_000, points: int = 1_000,
         log_rows: int = LOG_ROWS) -> dict:
    """The result run_all.py writes to <out>/bench_fitlaw.json (`rows`: the make bench rows)."""
    from scipy.optimize import curve_fit

    H, R, a_true, b_true = make_data(series, points)
    rows = fit_law_rows(Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp()), log_rows, H, R)

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
        "rows": rows,
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
    return result
