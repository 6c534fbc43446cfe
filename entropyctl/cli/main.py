"""The `entropyctl` command line: train | pretrain | resume | fit-law | compare | runs | export | doctor |
config show.

Each command parses, calls one library function and prints. torch, transformers and Hydra's
task code are imported inside the commands, so `entropyctl --help` stays instant.
`train` alone knows Hydra: its trailing words are Hydra overrides (`-m` sweeps included).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from entropyctl import __version__
from entropyctl import errors
from entropyctl.cli.compare import compare
from entropyctl.cli.config_cmd import config_show
from entropyctl.cli.doctor import doctor
from entropyctl.cli.export import export
from entropyctl.cli.fit_law import fit_law
from entropyctl.cli.runs import runs

class _OneErrorPath(TyperGroup):
    """Every command ends here: its exit code, or one line and the code of what stopped it
    (errors.report), usage errors included (no usage box). In-process test runners and the
    console script both see the same thing."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        with errors.debug_scope():
            try:
                code = super().main(args=args, prog_name=prog_name or "entropyctl", complete_var=complete_var,
                                    standalone_mode=False, **extra)
            except BaseException as e:  # noqa: BLE001 - the one place errors become exit codes
                if isinstance(e, SystemExit):
                    raise
                code = errors.report(e)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="entropyctl",
    cls=_OneErrorPath,
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
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks (also HYDRA_FULL_ERROR=1).")
    ] = False,
) -> None:
    """Entropy-collapse experiments for RL on language models."""
    if debug:
        errors.enable_debug()


@app.command(context_settings=_HYDRA_ARGS, add_help_option=False)
def train(ctx: typer.Context) -> None:
    """Run RL rounds on the lab (or a local checkpoint); trailing words are Hydra overrides.

    Example: entropyctl train -m intervention=grpo,clip_cov seed=0,1 sweep=mine
    (`entropyctl train --help` lists the config groups and their options.)
    """
    from entropyctl.cli.train_cmd import run_hydra

    raise typer.Exit(run_hydra("train", ctx.args))


@app.command(context_settings=_HYDRA_ARGS, add_help_option=False)
def pretrain(ctx: typer.Context) -> None:
    """Pretrain (or reuse from runs/.cache) the lab's base model for the composed config.

    Example: entropyctl pretrain experiment=smoke
    """
    from entropyctl.cli.train_cmd import run_hydra

    raise typer.Exit(run_hydra("pretrain", ctx.args))


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The run directory, runs/<sweep>/<run_id>.")],
    progress: Annotated[
        Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar (default: as the run had).")
    ] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch threads (default: as the run had).")] = None,
) -> None:
    """Continue a killed, interrupted or failed run from its last checkpoint, in its own directory.

    Example: entropyctl resume runs/mine/grpo__lab__s0__20250101-120000
    (`entropyctl train ... resume=true` does the same for the run its config would start.)
    """
    from entropyctl.cli.train_cmd import resume_cli

    raise typer.Exit(resume_cli(run_dir, progress=progress, threads=threads))


app.command("fit-law")(fit_law)
app.command("compare")(compare)
app.command("runs")(runs)
app.command("export")(export)
app.command("doctor")(doctor)

config_app = typer.Typer(help="The composed config: `entropyctl config show [OVERRIDES]`.", no_args_is_help=True,
                         context_settings={"help_option_names": ["-h", "--help"]})
config_app.command("show", context_settings={"ignore_unknown_options": True})(config_show)
app.add_typer(config_app, name="config")


def main() -> None:
    app(prog_name="entropyctl")


if __name__ == "__main__":
    main()
