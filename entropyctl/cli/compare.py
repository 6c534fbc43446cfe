"""`entropyctl compare`: did an intervention keep exploration alive, at what cost, and is it real?

Reads run stores only (docs/run-store.md), groups runs by intervention (or any config key with
--by), prints a rich table and writes report.md, report.html, compare.json and PNG plots.
Statistics live in `entropyctl.analysis.compare`, the report in `entropyctl.analysis.report`; this module does the
I/O at the edges. Bad input gives one line on stderr and exit code 2, before anything is written.
No torch here, nor in anything it imports.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from entropyctl.analysis.compare import CompareError, RunInput, compare_runs, to_json
from entropyctl.analysis.verdict import narrowing, narrowing_table
from entropyctl.runstore.store import RunStoreError, find_runs, is_run_dir

UNSET = "(unset)"
OUT_DIR = "compare"


def compare(
    paths: Annotated[list[Path], typer.Argument(help="Sweep dirs (runs/<sweep>) or run dirs.", show_default=False)],
    *,
    by: Annotated[Optional[str], typer.Option(
        "--by", help="Group by this config key (dotted, e.g. optim.lr) instead of the intervention.")] = None,
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", help="Group the others are tested against (default: grpo when present).")] = None,
    last_k: Annotated[int, typer.Option(
        "--last-k", min=1, help="'Final' values are the mean of each run's last k logged values.")] = 5,
    include_incomplete: Annotated[bool, typer.Option(
        "--include-incomplete", help="Also count failed, diverged and unfinished runs in the statistics.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Folder for report.md, report.html, compare.json, plots (default: <first sweep>/compare).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print compare.json instead of the table.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks.")] = False,
) -> None:
    """Compare groups of runs across seeds: final metrics, intervals, Welch tests vs a baseline.

    Example: entropyctl compare runs/demo --baseline grpo --last-k 10
    """
    try:
        runs = load_inputs(paths, by)
        result = compare_runs(runs, baseline=baseline, last_k=last_k,
                              include_incomplete=include_incomplete, by=by)
        result["narrowing"] = narrowing(result, runs)
        dest = out if out is not None else default_out(paths[0])
        if dest.exists() and not dest.is_dir():
            raise CompareError(f"--out {dest} is a file; pass a folder")
        from entropyctl.analysis.report import build_report

        files = build_report(result, runs)  # everything in memory before the first write
        write_files(dest, files)
    except (RunStoreError, CompareError) as e:
        if debug:
            raise
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:
        if debug:
            raise
        typer.echo(f"error: {e.filename or ''}: {e.strerror or e}; check the path and its permissions", err=True)
        raise typer.Exit(2) from None
    except Exception as e:  # noqa: BLE001 - a traceback is for --debug only
        if debug:
            raise
        typer.echo(f"error: internal error ({type(e).__name__}: {e}); rerun with --debug and report it", err=True)
        raise typer.Exit(1) from None

    if as_json:
        sys.stdout.write(to_json(result))
        return
    print_tables(result)
    typer.echo(f"report: {dest / 'report.html'}  (also report.md, compare.json, *.png)")


# ----------------------------------------------------------------------------- reading


def load_inputs(paths: list[Path], by: str | None) -> list[RunInput]:
    """Every run under `paths` with its group and rows. Raises RunStoreError on bad input."""
    for p in paths:
        if not p.exists():
            raise RunStoreError(f"{p}: no such file or directory; pass a sweep dir (runs/<sweep>) or a run dir")
        if not p.is_dir():
            raise RunStoreError(f"{p}: not a directory; pass a sweep dir (runs/<sweep>) or a run dir")
    runs = find_runs(paths)
    if not runs:
        where = ", ".join(str(p) for p in paths)
        raise RunStoreError(f"no runs under {where} (no <run>/run.json found); "
                            "pass a sweep dir written by `entropyctl train`, e.g. runs/<sweep>")
    found_key = by is None
    out = []
    for run in runs:
        try:
            rows = run.metrics()
        except FileNotFoundError:
            raise RunStoreError(f"{run.path}: no metrics.jsonl; restore it or leave this run out") from None
        if by is None:
            group = run.intervention
        else:
            value = lookup(run.config(), by)
            if value is None:
                value = lookup(run.info, by)
            found_key = found_key or value is not None
            group = UNSET if value is None else as_name(value)
        out.append(RunInput(id=run.id, group=group, status=run.status, seed=run.seed, rows=rows,
                            path=str(run.path), error=run.info.get("error")))
    if not found_key:
        raise RunStoreError(f"no run has config key {by!r} (in config.yaml or run.json); "
                            "use a dotted path such as optim.lr")
    return out


def lookup(tree: dict[str, Any], dotted: str) -> Any:
    """tree['a']['b'] for 'a.b', or None when any part is missing."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def as_name(value: Any) -> str:
    """A config value as a group name: YAML spelling for scalars, JSON for lists/dicts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def default_out(first: Path) -> Path:
    """Inside the first sweep dir (the run's parent when a run dir is given)."""
    sweep = first.parent if is_run_dir(first) else first
    return sweep / OUT_DIR


def write_files(dest: Path, files: dict[str, bytes]) -> None:
    """Write each file via a temp name + rename, so a reader never sees half a report."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        tmp = dest / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, dest / name)


# ----------------------------------------------------------------------------- terminal


def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from entropyctl.analysis.report import baseline_table, metric_table, runs_table

    console = Console()
    t = lambda s: Text(printable(s))  # noqa: E731 - run texts are never rich markup

    head, rows = metric_table(result, long=False)
    table = Table(title=f"by {printable(result['by'])}: mean ±95% CI across seeds "
                        f"(final = last {result['last_k']} values)", title_justify="left")
    for h in head:
        table.add_column(t(h), overflow="fold")
    for r in rows:
        table.add_row(*map(t, r))
    console.print(table)

    bt = baseline_table(result, long=False)
    if bt:
        table = Table(title=f"vs baseline {printable(result['baseline'])}: diff ±95% CI (Welch), "
                            "Holm-adjusted p, Hedges' g", title_justify="left")
        for h in bt[0]:
            table.add_column(t(h), overflow="fold")
        for r in bt[1]:
            table.add_row(*map(t, r))
        console.print(table)
    nt = narrowing_table(result, long=False)
    if nt:
        table = Table(title="collapse or convergence? each group vs the baseline (docs/collapse-or-convergence.md)",
                      title_justify="left")
        for h in nt[0]:
            table.add_column(t(h), overflow="fold")
        for r in nt[1]:
            table.add_row(*map(t, r))
        console.print(table)
    for note in result["notes"]:
        console.print(t(f"note: {note}"))

    head, rows = runs_table(result)
    left_out = [r for r in rows if r[-1] != "yes"]
    if left_out:
        table = Table(title="left out of the statistics", title_justify="left")
        for h in head:
            table.add_column(t(h), overflow="fold")
        for r in left_out:
            table.add_row(*map(t, r))
        console.print(table)


def printable(text: Any) -> str:
    """Run texts without terminal control characters (a run name must not drive the terminal)."""
    return "".join(c if c.isprintable() or c == "\n" else "?" for c in str(text))
