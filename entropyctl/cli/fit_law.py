"""`entropyctl fit-law`: fit R = -a*exp(H) + b (spec §1.2) on run dirs or external logs.

A thin command: its options are declared once, as the fields of `FitLawArgs` (the command's
signature is built from them, so a new option is one field), checked here, and handed to the
library (`entropyctl.analysis.law.fit_paths`) as one `LawRequest`. This module prints (rich
table or JSON lines) and writes the outputs: fit.json into our run dirs (atomically) and the
`--plot` image, only after every fit is done and only when at least one series fitted, so a
failed call changes nothing. Input logs are only ever opened for reading. Docs: docs/fit-law.md.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
import typing
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from entropyctl import errors
from entropyctl.analysis.fitlaw import parse_window
from entropyctl.analysis.law import LawRequest, Options, Result, fit_paths, write_fit_json, write_plot
from entropyctl.analysis.logimport import FORMATS, ImportOptions
from entropyctl.cli.options import ByOpt, DebugOpt

FIT_JSON = "fit.json"


class LogFormat(str, Enum):
    auto = "auto"
    run = "run"
    trl = "trl"
    trl_console = "trl-console"
    verl = "verl"
    verl_console = "verl-console"
    wandb_csv = "wandb-csv"
    wandb = "wandb"
    csv = "csv"
    jsonl = "jsonl"


class Pairing(str, Enum):
    auto = "auto"
    same = "same"
    next = "next"


assert tuple(f.value for f in LogFormat) == FORMATS


def _opt(help: str, metavar: str | None = None, *decls: str) -> typer.models.OptionInfo:
    return typer.Option(*decls, help=help, metavar=metavar)


@dataclass
class FitLawArgs:
    """The command line of fit-law, each option declared once (its type, flag and help)."""

    paths: Annotated[list[Path], typer.Argument(
        help="entropyctl run or sweep dirs (searched recursively), TRL output dirs, log files, offline W&B "
             "runs, or wandb://ENTITY/PROJECT/RUN_ID (the W&B API).",
        show_default=False)]
    fmt: Annotated[LogFormat, _opt("Input format; auto-detected per path.", None, "--format")] = LogFormat.auto
    entropy: Annotated[Optional[str], _opt("Entropy key (default: entropy/seqmean on our runs, else the "
                                           "first alias found).", "KEY")] = None
    perf: Annotated[Optional[str], _opt("Performance key; a glob averages keys (default: eval/acc on our "
                                        "runs, else train and val aliases).", "KEY")] = None
    step: Annotated[Optional[str], _opt("Step key for CSV/JSONL (default: first alias found).", "KEY")] = None
    where: Annotated[Optional[list[str]], _opt("Keep only records with KEY=VALUE (repeatable).",
                                               "KEY=VALUE")] = None
    pairing: Annotated[Pairing, _opt("Pair R with H at the same step, or with H of the next logged step "
                                     "(validation); auto picks by key.")] = Pairing.auto
    logging_steps: Annotated[Optional[int], _opt("TRL console output: steps between printed logs (default: "
                                                 "the row index is the step).", "N")] = None
    by: ByOpt = None
    window: Annotated[Optional[str], _opt("Only steps START:END (inclusive; START: or :END).", "START:END")] = None
    early: Annotated[Optional[float], _opt("Fit on the first fraction F of the steps, report the prediction "
                                           "error on the rest.", "F")] = None
    bootstrap: Annotated[int, _opt("Bootstrap N resamples for the intervals (0: t-intervals).", "N")] = 0
    seed: Annotated[int, _opt("Seed of the bootstrap resampling.", "N")] = 0
    level: Annotated[float, _opt("Confidence level of the intervals.", "L")] = 0.95
    perf_scale: Annotated[float, _opt("Multiply R by this (0.01 turns percentages into [0, 1]).", "X")] = 1.0
    json_out: Annotated[bool, _opt("Print one JSON object per series (JSON lines).", None, "--json")] = False
    plot: Annotated[Optional[Path], _opt("Draw R vs H with the fitted curves into FILE.png.", "FILE.png")] = None
    log_h: Annotated[bool, _opt("Log scale for the entropy axis of --plot.", None, "--log-h")] = False
    write: Annotated[bool, _opt("Write fit.json into our run dirs.", None, "--write/--no-write")] = True
    debug: DebugOpt = False


def _signature(carrier: type) -> inspect.Signature:
    """The Typer signature of a command whose options are the fields of `carrier`."""
    hints = typing.get_type_hints(carrier, include_extras=True)
    params = []
    for i, f in enumerate(fields(carrier)):
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if i == 0 else inspect.Parameter.KEYWORD_ONLY
        default = inspect.Parameter.empty if f.default is f.default_factory else f.default  # type: ignore[comparison-overlap]
        params.append(inspect.Parameter(f.name, kind, default=default, annotation=hints[f.name]))
    return inspect.Signature(params, return_annotation=None)


def request(args: FitLawArgs) -> LawRequest:
    """Check the options (BadInput, one line) and turn them into the library's carrier."""
    def bad(msg: str) -> errors.BadInput:
        return errors.BadInput(f"fit-law: {msg}")

    if args.early is not None and not 0 < args.early < 1:
        raise bad(f"--early {args.early}: expected a fraction of the steps in (0, 1), e.g. 0.15")
    if args.bootstrap < 0:
        raise bad("--bootstrap N: N must be >= 0 (0 = t-intervals)")
    if not 0 < args.level < 1:
        raise bad(f"--level {args.level}: expected a confidence level in (0, 1), e.g. 0.95")
    if not math.isfinite(args.perf_scale) or args.perf_scale <= 0:
        raise bad(f"--perf-scale {args.perf_scale}: expected a positive number, e.g. 0.01 for percentages")
    if args.logging_steps is not None and args.logging_steps < 1:
        raise bad(f"--logging-steps {args.logging_steps}: expected the run's logging_steps, N >= 1")
    plot = args.plot
    if plot is not None:
        import matplotlib.figure

        if plot.suffix.lstrip(".").lower() not in matplotlib.figure.Figure().canvas.get_supported_filetypes():
            raise bad(f"--plot {plot}: unsupported image type; use a .png (or .pdf/.svg) file name")
        if not plot.parent.is_dir():
            raise bad(f"--plot {plot}: folder {plot.parent} does not exist")
        if any(plot.resolve() == Path(p).resolve() for p in args.paths):
            raise bad(f"--plot {plot}: that is an input file; choose another name")
    pairs = []
    for w in args.where or []:
        if "=" not in w:
            raise bad(f"--where {w!r}: expected KEY=VALUE, e.g. split=train")
        pairs.append(tuple(w.split("=", 1)))
    try:
        win = parse_window(args.window) if args.window else (None, None)
    except ValueError as e:
        raise bad(str(e)) from None
    opts = Options(level=args.level, early=args.early, bootstrap=args.bootstrap, seed=args.seed, window=win,
                   by=args.by, perf_scale=args.perf_scale)
    read = ImportOptions(fmt=args.fmt.value, step_key=args.step, entropy_key=args.entropy, perf_key=args.perf,
                         where=pairs, pairing=args.pairing.value, logging_steps=args.logging_steps)
    return LawRequest(list(args.paths), read, opts, plot, args.log_h)


def fit_law(*args, **kwargs) -> None:
    """Fit R = -a*exp(H) + b (closed-form least squares) per run or log series.

    Example: entropyctl fit-law runs/law-7b --early 0.15 --by intervention --plot law.png
    Exit 0 when at least one series fitted, 2 on bad usage or when none could be fitted.
    """
    a = FitLawArgs(*args, **kwargs)
    run(request(a), json_out=a.json_out, write=a.write)


fit_law.__signature__ = _signature(FitLawArgs)  # type: ignore[attr-defined]


def run(req: LawRequest, json_out: bool, write: bool) -> None:
    """Fit, print, then write (the plot first: if it cannot be written, nothing else is)."""
    results = fit_paths(req)
    fitted = [r for r in results if r.ok]
    if json_out:
        for r in results:
            sys.stdout.write(json.dumps(r.to_json(req.opts)) + "\n")
    elif fitted:
        print_table(results, req.opts)
    if not fitted:
        if not json_out:
            for r in results[:-1]:
                errors.say(f"fit-law: not fitted: {r.name} ({r.source}): {r.fit.error}")
        last = results[-1] if results else None
        raise errors.BadInput(f"fit-law: nothing could be fitted; {last.name} ({last.source}): {last.fit.error}"
                              if last else "fit-law: nothing could be fitted (no series found)")
    if req.plot is not None:
        try:
            write_plot(results, req.plot, req.opts, req.log_h)
        except OSError as e:
            raise errors.BadInput(f"fit-law: cannot write --plot {req.plot}: {e.strerror or e}") from None
    if write:
        try:
            write_fit_json(results, req.opts)
        except OSError as e:  # a read-only run store still gets its table
            errors.say(f"fit-law: warning: could not write fit.json ({e.strerror or e}); "
                       "use --no-write on read-only runs")


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


