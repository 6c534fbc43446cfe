"""`entropyctl runs [DIR...]`: the sweeps and runs under a runs folder, with status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from entropyctl.runstore.listing import SHOWN, list_runs, to_json

SHORT = ("reward", "val acc", "H", "top fmt")  # SHOWN's columns, narrow enough for 80 columns


def runs(
    paths: Annotated[Optional[List[Path]], typer.Argument(help="Runs folders, sweeps or run dirs (default: runs).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list on stdout.")] = False,
) -> None:
    """List runs: status, intervention, seed, rounds, last metrics, and how to resume each.

    Stale: marked running, but no process holds its lock (a killed job); resumable.

    Example: entropyctl runs runs/demo-20261201-120000
    """
    paths = paths or [Path("runs")]
    missing = [p for p in paths if not p.exists()]
    if missing:
        typer.echo(f"error: {missing[0]}: no such folder; give a runs folder, a sweep or a run directory",
                   err=True)
        raise typer.Exit(2)
    lines = list_runs(paths)
    if as_json:
        typer.echo(json.dumps(to_json(lines), indent=1))
        return
    if not lines:
        typer.echo(f"no runs under {', '.join(map(str, paths))}")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(lines)} runs; last logged values")
    table.add_column("sweep/run", overflow="fold", ratio=3)
    for col in ("status", "seed", "rounds", *SHORT):
        table.add_column(col, no_wrap=True)
    for r in lines:
        planned = "?" if r.rounds_planned is None else r.rounds_planned
        table.add_row(escape(f"{r.sweep}/{r.id}"), r.status, "?" if r.seed is None else str(r.seed),
                      f"{r.rounds_done}/{planned}",
                      *(f"{r.last[k]:.3f}" if k in r.last else "" for k in SHOWN))
    console = Console()
    console.print(table)
    for r in lines:
        if r.resume:
            console.print(f"{r.status}: {escape(r.resume)}", markup=False, highlight=False)
