"""fit-law as a library: fit R = -a*exp(H) + b (spec §1.2) on every series of some run dirs or
external logs, pool `--by` groups, and write the outputs (fit.json into our run dirs, a plot).

`fit_paths(LawRequest)` is what `entropyctl fit-law` runs; the command (cli/fit_law.py) only
declares its options, prints and writes. Reading is `logimport` (our runs through the one run
reader, analysis/runs.py), the maths `fitlaw`. Writes happen only after every fit is done.
No torch; matplotlib is imported for the plot only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from entropyctl import __version__
from entropyctl.analysis import fitlaw
from entropyctl.analysis.fitlaw import LawFit, early_prediction, fit_law_bootstrap, window_mask
from entropyctl.analysis.logimport import ImportOptions, Series, load_series
from entropyctl.analysis.runs import as_name, by_value, check_by
from entropyctl.runstore import store as runstore

FIT_JSON = "fit.json"


@dataclass
class Options:
    """What to compute for each series (the command-line flags that are not about reading)."""

    level: float = 0.95
    early: float | None = None
    bootstrap: int = 0
    seed: int = 0
    window: tuple[float | None, float | None] = (None, None)
    by: str | None = None
    perf_scale: float = 1.0


@dataclass
class Result:
    source: str
    name: str
    fit: LawFit
    series: Series | None = None  # None for pooled groups
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    H: np.ndarray = field(default_factory=lambda: np.zeros(0))
    R: np.ndarray = field(default_factory=lambda: np.zeros(0))
    early: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    group: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.fit.ok

    def to_json(self, opts: Options) -> dict[str, Any]:
        d = self.fit.to_dict()
        extra = d.pop("extra")
        s = self.series
        out = {
            "source": self.source, "series": self.name,
            "format": s.format if s else "pooled",
            "entropy_key": s.entropy_key if s else None, "perf_key": s.perf_key if s else None,
            "pairing": s.pairing if s else None,
            **d,
            "step_range": [float(self.steps.min()), float(self.steps.max())] if len(self.steps) else None,
            "window": list(opts.window) if opts.window != (None, None) else None,
            "perf_scale": opts.perf_scale,
            "early": self.early,
            "warnings": self.warnings,
            "error": self.fit.error,
        }
        if "bootstrap" in extra:
            out["bootstrap"] = extra["bootstrap"]
        if self.group is not None:
            out["group"] = self.group
        return runstore.json_safe(out)


def _fit_points(steps: np.ndarray, H: np.ndarray, R: np.ndarray, opts: Options) -> LawFit:
    if opts.bootstrap:
        return fit_law_bootstrap(H, R, opts.bootstrap, opts.level, opts.seed)
    return fitlaw.fit_law(H, R, opts.level)


def _fit_warnings(fit: LawFit, H: np.ndarray, R: np.ndarray) -> list[str]:
    w = []
    if not fit.ok:
        return w
    if fit.r_range[0] == fit.r_range[1]:
        # R^2 is 1 by convention (a flat line fits exactly): that must not read as support
        w.append(f"R is {fit.r_range[0]:.4g} at all {fit.n} points: a flat line fits it exactly (a = 0, R² = 1), "
                 "which says nothing about the law; check the performance key (--perf) or train longer")
    elif fit.a < 0:
        w.append(f"a = {fit.a:.4g} < 0: performance falls as entropy falls (the law expects a > 0)")
    if fit.h_range[1] > 20:
        w.append(f"H reaches {fit.h_range[1]:.3g} nats: is it a per-token entropy (not a sequence sum or bits)?")
    if fit.r_range[0] < 0 or fit.r_range[1] > 1:
        # with no point dropped, r_range is the finite R's range: the percent check without a pass
        percent = fitlaw.percent_range(*fit.r_range) if fit.n_dropped == 0 else fitlaw.looks_like_percent(R)
        hint = "; it looks like a percentage: --perf-scale 0.01 puts it on [0, 1]" if percent else ""
        w.append(f"R lies outside [0, 1]: a, b and the ceiling are in R's own units{hint}")
    elif fit.ceiling > 1:
        # A 0-1 reward cannot pass 1: the fitted curve is still rising where the data end.
        w.append(f"the ceiling b - a = {fit.ceiling:.3g} is above 1, the top of a [0, 1] R (R reached "
                 f"{fit.r_range[1]:.3g}): R was still climbing where the data end; read it as 'not saturated yet'")
    if fit.n_dropped:
        w.append(f"{fit.n_dropped} NaN/null point(s) dropped")
    return w


def fit_all(series: list[Series], opts: Options) -> list[Result]:
    """Fit every series (window, scale, early prediction), then one pooled fit per --by group.
    Without --bootstrap all closed forms are computed at once (fitlaw.fit_law_many)."""
    points = []
    for s in series:
        if s.error:
            continue
        if opts.window == (None, None):  # all points: no copies (10,000 series fit in 0.3 s)
            keep, steps, H, R = None, s.steps, s.H, s.R
        else:
            keep = window_mask(s.steps, *opts.window)
            steps, H, R = s.steps[keep], s.H[keep], s.R[keep]
        points.append((s, keep, steps, H, R * opts.perf_scale if opts.perf_scale != 1.0 else R))
    if opts.bootstrap:
        fits = [_fit_points(steps, H, R, opts) for _, _, steps, H, R in points]
    else:
        fits = fitlaw.fit_law_many([(H, R) for _, _, _, H, R in points], opts.level)
    fitted = {id(p[0]): (p, f) for p, f in zip(points, fits)}
    results = []
    for s in series:
        if s.error:
            results.append(Result(s.source, s.name, LawFit(n=0, error=s.error, level=opts.level), s,
                                  warnings=list(s.warnings)))
            continue
        (_, keep, steps, H, R), fit = fitted[id(s)]
        if not fit.ok and keep is not None and keep.sum() < len(keep):
            fit.error += f" [in --window; {int(keep.sum())} of {len(keep)} points]"
        early = early_prediction(steps, H, R, opts.early, opts.level) if opts.early and fit.ok else None
        results.append(Result(s.source, s.name, fit, s, steps, H, R, early,
                              list(s.warnings) + _fit_warnings(fit, H, R)))
    if opts.by:
        # the same --by rule as compare (analysis/runs.py): config leaf, else run.json; unknown = error
        value_of = {id(r): by_value(r.series.meta.get("_config", {}), r.series.meta, opts.by)
                    for r in results if r.series is not None}
        check_by(list(value_of.values()), opts.by)
        groups: dict[str, list[Result]] = {}
        for r in results:  # pool what fitted alone: one unit mistake or collapsed run cannot skew a group
            if r.ok:
                groups.setdefault(as_name(value_of[id(r)]), []).append(r)
        for value, members in sorted(groups.items()):
            steps, H, R = (np.concatenate([getattr(m, k) for m in members]) for k in ("steps", "H", "R"))
            fit = _fit_points(steps, H, R, opts)
            results.append(Result("pooled", f"{opts.by}={value}", fit, None, steps, H, R, None,
                                  _fit_warnings(fit, H, R),
                                  {"by": opts.by, "value": value, "members": [m.name for m in members]}))
    return results


@dataclass
class LawRequest:
    """The carrier of one fit-law call: what to read, what to compute, what to write."""

    paths: list[Path]
    read: ImportOptions = field(default_factory=ImportOptions)
    opts: Options = field(default_factory=Options)
    plot: Path | None = None
    log_h: bool = False


def fit_paths(req: LawRequest) -> list[Result]:
    """Read every series under `req.paths` and fit it (and its --by group)."""
    return fit_all(load_series(req.paths, req.read), req.opts)


def write_fit_json(results: list[Result], opts: Options) -> list[Path]:
    """fit.json beside metrics.jsonl for each of our runs that fitted (temp file + rename)."""
    per_run: dict[Path, list[dict[str, Any]]] = {}
    for r in results:
        if r.ok and r.series is not None and r.series.run_dir is not None:
            per_run.setdefault(r.series.run_dir, []).append(r.to_json(opts))
    for d, fits in per_run.items():
        doc = {"written_by": f"entropyctl fit-law {__version__}", "created": runstore.now_iso(), "fits": fits}
        runstore.atomic_write_text(d / FIT_JSON, json.dumps(doc, indent=2) + "\n")
    return list(per_run)


def write_plot(results: list[Result], path: Path, opts: Options, log_h: bool) -> None:
    """R vs H per fitted series: points, fitted curve, early-window points filled and the
    early fit dashed. The entropy axis runs high -> low, i.e. in training-time order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    shown = [r for r in results if r.ok][:12]  # beyond a dozen curves the plot is unreadable
    for i, r in enumerate(shown):
        color = f"C{i % 10}"
        early = r.steps <= r.early["cutoff_step"] if r.early and "cutoff_step" in r.early else np.zeros(len(r.H), bool)
        ax.scatter(r.H[~early], r.R[~early], s=12, facecolors="none", edgecolors=color)
        if early.any():
            ax.scatter(r.H[early], r.R[early], s=14, color=color, label=f"{r.name}: early {opts.early:g} (fit window)")
        hh = np.linspace(np.nanmin(r.H), np.nanmax(r.H), 200)
        ax.plot(hh, r.fit.predict(hh), color=color,
                label=f"{r.name}: a={r.fit.a:.3g}, b={r.fit.b:.3g}, R²={r.fit.r2:.3f}")
        if r.early and "a" in r.early:
            ax.plot(hh, r.early["b"] - r.early["a"] * np.exp(hh), color=color, ls="--", lw=1)
    if log_h:
        ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("entropy H (nats; axis reversed: training runs left to right)")
    ax.set_ylabel("performance R")
    ax.set_title("R = -a·exp(H) + b")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


