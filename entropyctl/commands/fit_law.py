"""`entropyctl fit-law` (placeholder until the fit-law issue lands)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def fit_law(paths: Annotated[list[Path], typer.Argument(help="Run dirs, sweep dirs or log files.")]) -> None:
    """Fit R = -a*exp(H) + b on logged runs."""
    raise typer.Exit(2)
