"""`entropyctl fit-law`: fit R = -a*exp(H) + b (spec §1.2) on run dirs or external logs.

Reading is `entropyctl.analysis.logimport`, the maths `entropyctl.analysis.fitlaw`; this module fits each
series, pools `--by` groups, prints (rich table or JSON lines), and writes the outputs:
fit.json into our run dirs (atomically) and the `--plot` image. It writes only after every
fit is done and only when at least one series fitted, so a failed call changes nothing.
Input logs are only ever opened for reading. No torch; matplotlib is imported for --plot only.
Docs: docs/fit-law.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from entropyctl import __version__
from entropyctl.analysis import fitlaw
from entropyctl.runstore import store as runstore
from entropyctl.analysis.fitlaw import LawFit, early_prediction, fit_law_bootstrap, parse_window, window_mask
from entropyctl.analysis.logimport import FORMATS, ImportOptions, LogImportError, Series, load_series

FIT_JSON = "fit.json"


class LogFormat(str, Enum):
    auto = "auto"
    run = "run"
    trl = "trl"
    trl_console = "trl-console"
    verl = "verl"
    verl_console = "verl-console"
    wandb_csv = "wandb-csv"
    csv = "csv"
    jsonl = "jsonl"


class Pairing(str, Enum):
    auto = "auto"
    same = "same"
    next = "next"


assert tuple(f.value for f in LogFormat) == FORMATS


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
    if fit.a < 0:
        w.append(f"a = {fit.a:.4g} < 0: performance falls as entropy falls (the law expects a > 0)")
    if fit.h_range[1] > 20:
        w.append(f"H reaches {fit.h_range[1]:.3g} nats: is it a per-token entropy (not a sequence sum or bits)?")
    if fit.r_range[0] < 0 or fit.r_range[1] > 1:
        hint = ("; it looks like a percentage: --perf-scale 0.01 puts it on [0, 1]"
                if fitlaw.looks_like_percent(R) else "")
        w.append(f"R lies outside [0, 1]: a, b and the ceiling are in R's own units{hint}")
    if fit.n_dropped:
        w.append(f"{fit.n_dropped} NaN/null point(s) dropped")
    return w


def fit_all(series: list[Series], opts: Options) -> list[Result]:
    """Fit every series (window, scale, early prediction), then one pooled fit per --by group."""
    results = []
    for s in series:
        if s.error:
            results.append(Result(s.source, s.name, LawFit(n=0, error=s.error, level=opts.level), s,
                                  warnings=list(s.warnings)))
            continue
        keep = window_mask(s.steps, *opts.window)
        steps, H, R = s.steps[keep], s.H[keep], s.R[keep] * opts.perf_scale
        fit = _fit_points(steps, H, R, opts)
        if not fit.ok and opts.window != (None, None) and keep.sum() < len(keep):
            fit.error += f" [in --window; {int(keep.sum())} of {len(keep)} points]"
        early = early_prediction(steps, H, R, opts.early, opts.level) if opts.early and fit.ok else None
        results.append(Result(s.source, s.name, fit, s, steps, H, R, early,
                              list(s.warnings) + _fit_warnings(fit, H, R)))
    if opts.by:
        groups: dict[str, list[Result]] = {}
        for r in results:  # pool what fitted alone: one unit mistake or collapsed run cannot skew a group
            if r.ok:
                groups.setdefault(str(r.series.meta.get(opts.by, "(missing)")), []).append(r)
        for value, members in sorted(groups.items()):
            steps, H, R = (np.concatenate([getattr(m, k) for m in members]) for k in ("steps", "H", "R"))
            fit = _fit_points(steps, H, R, opts)
            results.append(Result("pooled", f"{opts.by}={value}", fit, None, steps, H, R, None,
                                  _fit_warnings(fit, H, R),
                                  {"by": opts.by, "value": value, "members": [m.name for m in members]}))
    return results


# ----------------------------------------------------------------------------- output


def _ci(v: float, ci: tuple[float, float]) -> str:
    if not math.isfinite(v):
        return "-"
    if not all(math.isfinite(c) for c in ci):
        return f"{v:.3g}"
    lo, hi = ci
    if math.isclose(v - lo, hi - v, rel_tol=1e-6, abs_tol=1e-12):  # t-interval: symmetric
        return f"{v:.3g} ± {hi - v:.2g}"
    return f"{v:.3g} [{lo:.3g}, {hi:.3g}]"


def _rng(r: tuple[float, float]) -> str:
    return f"{r[0]:.3g}–{r[1]:.3g}"


def print_table(results: list[Result], opts: Options) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(highlight=False, width=max(console.width, 160))
    method = f"{opts.bootstrap}-resample bootstrap" if opts.bootstrap else "t"
    table = Table(title=f"R = -a*exp(H) + b  ({opts.level:.0%} intervals, {method})", title_justify="left")
    for col in ("series", "n", "a", "b", "ceiling b-a", "R²", "RMSE", "H range", "R range"):
        table.add_column(col, justify="left" if col == "series" else "right", overflow="fold")
    if opts.early:
        table.add_column(f"early {opts.early:g}: RMSE/MAE", justify="right")
        table.add_column("final pred/actual", justify="right")
    for r in results:
        if not r.ok:
            continue
        f = r.fit
        a = _ci(f.a, f.a_ci)
        row = [r.name, str(f.n), f"[red]{a}[/red]" if f.a < 0 else a, _ci(f.b, f.b_ci),
               _ci(f.ceiling, f.ceiling_ci), f"{f.r2:.3f}", f"{f.rmse:.3g}", _rng(f.h_range), _rng(f.r_range)]
        if opts.early:
            e = r.early or {}
            if "rmse" in e:
                row += [f"{e['rmse']:.3g}/{e['mae']:.3g}", f"{e['final_predicted']:.3g}/{e['final_actual']:.3g}"]
            else:
                row += ["-", "-"]
        table.add_row(*row)
    console.print(table)
    for r in results:
        label = f"{r.name} ({r.source})" if r.series is not None and r.series.format != "run" else r.name
        if not r.ok:
            console.print(f"[red]not fitted[/red] {label}: {r.fit.error}", markup=True)
            continue
        if r.series is not None:
            console.print(f"[dim]{r.name}: H={r.series.entropy_key}, R={r.series.perf_key}, "
                          f"pairing {r.series.pairing}[/dim]")
        if r.early and "error" in r.early:
            console.print(f"[yellow]early[/yellow] {r.name}: {r.early['error']}")
        for w in r.warnings:
            console.print(f"[yellow]warning[/yellow] {r.name}: {w}")


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


# ----------------------------------------------------------------------------- command


def _fail(msg: str) -> typer.Exit:
    typer.echo(f"fit-law: {msg}", err=True)
    return typer.Exit(2)


def _check_usage(paths: list[Path], early: float | None, bootstrap: int, level: float, plot: Path | None,
                 where: list[str], perf_scale: float) -> list[tuple[str, str]]:
    if early is not None and not 0 < early < 1:
        raise _fail(f"--early {early}: expected a fraction of the steps in (0, 1), e.g. 0.15")
    if bootstrap < 0:
        raise _fail("--bootstrap N: N must be >= 0 (0 = t-intervals)")
    if not 0 < level < 1:
        raise _fail(f"--level {level}: expected a confidence level in (0, 1), e.g. 0.95")
    if not math.isfinite(perf_scale) or perf_scale <= 0:
        raise _fail(f"--perf-scale {perf_scale}: expected a positive number, e.g. 0.01 for percentages")
    if plot is not None:
        import matplotlib.figure

        if plot.suffix.lstrip(".").lower() not in matplotlib.figure.Figure().canvas.get_supported_filetypes():
            raise _fail(f"--plot {plot}: unsupported image type; use a .png (or .pdf/.svg) file name")
        if not plot.parent.is_dir():
            raise _fail(f"--plot {plot}: folder {plot.parent} does not exist")
        if any(plot.resolve() == Path(p).resolve() for p in paths):
            raise _fail(f"--plot {plot}: that is an input file; choose another name")
    pairs = []
    for w in where:
        if "=" not in w:
            raise _fail(f"--where {w!r}: expected KEY=VALUE, e.g. split=train")
        k, v = w.split("=", 1)
        pairs.append((k, v))
    return pairs


Paths = Annotated[list[Path], typer.Argument(help="entropyctl run or sweep dirs (searched recursively), "
                                                  "TRL output dirs or log files.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object per series (JSON lines).")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks instead of one-line errors.")]


def _opt(help: str, metavar: str | None = None, *decls: str) -> Any:
    return typer.Option(*decls, help=help, metavar=metavar)


def fit_law(
    paths: Paths,
    *,
    fmt: Annotated[LogFormat, _opt("Input format; auto-detected per path.", None, "--format")] = LogFormat.auto,
    entropy: Annotated[Optional[str], _opt("Entropy key (default: entropy/seqmean on our runs, else the "
                                           "first alias found).", "KEY")] = None,
    perf: Annotated[Optional[str], _opt("Performance key; a glob averages keys (default: eval/acc on our "
                                        "runs, else train and val aliases).", "KEY")] = None,
    step: Annotated[Optional[str], _opt("Step key for CSV/JSONL (default: first alias found).", "KEY")] = None,
    where: Annotated[Optional[list[str]], _opt("Keep only records with KEY=VALUE (repeatable).",
                                               "KEY=VALUE")] = None,
    pairing: Annotated[Pairing, _opt("Pair R with H at the same step, or with H of the next logged step "
                                     "(validation); auto picks by key.")] = Pairing.auto,
    logging_steps: Annotated[Optional[int], _opt("TRL console output: steps between printed logs.", "N")] = None,
    by: Annotated[Optional[str], _opt("Also fit pooled series per value of this run.json or dotted config "
                                      "key (e.g. intervention).", "KEY")] = None,
    window: Annotated[Optional[str], _opt("Only steps START:END (inclusive; START: or :END).", "START:END")] = None,
    early: Annotated[Optional[float], _opt("Fit on the first fraction F of the steps, report the prediction "
                                           "error on the rest.", "F")] = None,
    bootstrap: Annotated[int, _opt("Bootstrap N resamples for the intervals (0: t-intervals).", "N")] = 0,
    seed: Annotated[int, _opt("Seed of the bootstrap resampling.", "N")] = 0,
    level: Annotated[float, _opt("Confidence level of the intervals.", "L")] = 0.95,
    perf_scale: Annotated[float, _opt("Multiply R by this (0.01 turns percentages into [0, 1]).", "X")] = 1.0,
    json_out: JsonOpt = False,
    plot: Annotated[Optional[Path], _opt("Draw R vs H with the fitted curves into FILE.png.", "FILE.png")] = None,
    log_h: Annotated[bool, _opt("Log scale for the entropy axis of --plot.", None, "--log-h")] = False,
    write: Annotated[bool, _opt("Write fit.json into our run dirs.", None, "--write/--no-write")] = True,
    debug: DebugOpt = False,
) -> None:
    """Fit R = -a*exp(H) + b (closed-form least squares) per run or log series.

    Example: entropyctl fit-law runs/law-7b --early 0.15 --by intervention --plot law.png
    Exit 0 when at least one series fitted, 2 on bad usage or when none could be fitted.
    """
    try:
        _fit_law(paths, fmt.value, entropy, perf, step, where or [], pairing.value, logging_steps, by, window,
                 early, bootstrap, seed, level, perf_scale, json_out, plot, log_h, write)
    except typer.Exit:
        raise
    except (LogImportError, runstore.RunStoreError) as e:
        if debug:
            raise
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        typer.echo("fit-law: interrupted; nothing was written", err=True)
        raise typer.Exit(130) from None
    except Exception as e:  # a bug, or a file we failed to anticipate: one line, not a traceback
        if debug:
            raise
        typer.echo(f"fit-law: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
                   err=True)
        raise typer.Exit(1) from None


def _fit_law(paths, fmt, entropy, perf, step, where, pairing, logging_steps, by, window, early, bootstrap,
             seed, level, perf_scale, json_out, plot, log_h, write) -> None:
    pairs = _check_usage(paths, early, bootstrap, level, plot, where, perf_scale)
    try:
        win = parse_window(window) if window else (None, None)
    except ValueError as e:
        raise _fail(str(e)) from None
    opts = Options(level=level, early=early, bootstrap=bootstrap, seed=seed, window=win, by=by,
                   perf_scale=perf_scale)
    iopts = ImportOptions(fmt=fmt, step_key=step, entropy_key=entropy, perf_key=perf, where=pairs,
                          pairing=pairing, logging_steps=logging_steps)
    results = fit_all(load_series(paths, iopts), opts)
    fitted = [r for r in results if r.ok]
    if json_out:
        for r in results:
            sys.stdout.write(json.dumps(r.to_json(opts)) + "\n")
    elif fitted:
        print_table(results, opts)
    if not fitted:
        if not json_out:
            for r in results:
                typer.echo(f"fit-law: {r.name} ({r.source}): {r.fit.error}", err=True)
        raise typer.Exit(2)
    if plot is not None:  # first: if the image cannot be written, nothing else has been either
        try:
            write_plot(results, plot, opts, log_h)
        except OSError as e:
            raise _fail(f"cannot write --plot {plot}: {e.strerror or e}") from None
    if write:
        try:
            write_fit_json(results, opts)
        except OSError as e:  # a read-only run store still gets its table
            typer.echo(f"fit-law: warning: could not write fit.json ({e.strerror or e}); "
                       "use --no-write on read-only runs", err=True)
