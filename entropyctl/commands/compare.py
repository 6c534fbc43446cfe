"""`entropyctl compare` (placeholder until the fit-law issue lands)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def compare(paths: Annotated[list[Path], typer.Argument(help="Run dirs, sweep dirs or log files.")]) -> None:
    """Compare interventions across seeds."""
    raise typer.Exit(2)
