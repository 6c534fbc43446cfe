"""The `entropyctl` command line: train | pretrain | fit-law | compare.

Each command parses, calls one library function and prints. torch, transformers and Hydra's
task code are imported inside the commands, so `entropyctl --help` stays instant.
`train` alone knows Hydra: its trailing words are Hydra overrides (`-m` sweeps included).
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from entropyctl import __version__
from entropyctl.commands.compare import compare
from entropyctl.commands.fit_law import fit_law

app = typer.Typer(
    name="entropyctl",
    help="Entropy-collapse experiments for RL on language models: train, fit-law, compare.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,
)

_HYDRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"entropyctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Entropy-collapse experiments for RL on language models."""


@app.command(context_settings=_HYDRA_ARGS, add_help_option=False)
def train(ctx: typer.Context) -> None:
    """Run RL rounds on the lab (or a local checkpoint); trailing words are Hydra overrides.

    Example: entropyctl train -m intervention=grpo,clip_cov seed=0,1 sweep=mine
    (`entropyctl train --help` lists the config groups and their options.)
    """
    from entropyctl.hydra_entry import run_hydra

    raise typer.Exit(run_hydra("train", ctx.args))


@app.command(context_settings=_HYDRA_ARGS, add_help_option=False)
def pretrain(ctx: typer.Context) -> None:
    """Pretrain (or reuse from runs/.cache) the lab's base model for the composed config.

    Example: entropyctl pretrain experiment=smoke
    """
    from entropyctl.hydra_entry import run_hydra

    raise typer.Exit(run_hydra("pretrain", ctx.args))


app.command("fit-law")(fit_law)
app.command("compare")(compare)


def main() -> None:
    app(prog_name="entropyctl")


if __name__ == "__main__":
    sys.exit(main())
