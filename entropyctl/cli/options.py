"""Typer options more than one command takes, defined once so they read and behave the same."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from entropyctl import errors


def _debug(value: bool) -> bool:
    if value:
        errors.enable_debug()
    return value


DebugOpt = Annotated[bool, typer.Option("--debug", callback=_debug,
                                        help="Show the Python traceback above the one-line error.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ByOpt = Annotated[Optional[str], typer.Option(
    "--by", metavar="KEY",
    help="Group by this dotted config key (e.g. optim.lr) or run.json key (e.g. intervention, task); "
         "an unknown key is an error.")]
