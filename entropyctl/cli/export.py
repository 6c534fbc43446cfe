"""`entropyctl export RUN_DIR OUT`: a run's trained policy as a `save_pretrained` directory
(config.json, model.safetensors, tokenizer files) that transformers and vLLM load, so it can
be evaluated elsewhere.

The weights are the run's newest intact checkpoint (train/checkpoint.py: the state after its
last checkpointed round); the architecture and tokenizer come from the model the run started
from (model.path, or the lab's cached base). OUT must not exist or be empty: export never
overwrites. It is written into a hidden sibling folder first and renamed into place, so OUT
is either complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from entropyctl.errors import BadInput

PROVENANCE = "entropyctl_export.json"


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} is a file; give a new directory (export never overwrites)")
    if out.exists() and any(out.iterdir()):
        raise BadInput(f"{out} already exists and is not empty; give a new directory (export never overwrites)")


def _make_tmp(out: Path) -> tuple[Path, list[Path]]:
    """The hidden sibling folder the export is written into, made before the slow part so that
    a path nobody can write to fails first; and the parent folders made for it (removed again
    if the export fails)."""
    made = []
    for parent in reversed(out.parents):
        if parent.is_dir():
            continue
        if parent.exists():
            raise BadInput(f"{parent} is a file, so {out} cannot be made; give a path under a folder")
        try:
            parent.mkdir()
        except OSError as e:
            _remove(made)
            raise BadInput(f"cannot make {parent} ({e.strerror}); give a path you can write to") from None
        made.append(parent)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
    except OSError as e:
        _remove(made)
        raise BadInput(f"cannot write in {out.parent} ({e.strerror}); give a path you can write to") from None
    return tmp, made


def _remove(made: list[Path]) -> None:
    for parent in reversed(made):
        try:
            parent.rmdir()
        except OSError:
            pass


def export_run(run_dir: Path, out: Path, log=print) -> Path:
    """Write the policy of `run_dir`'s newest checkpoint to `out`; returns `out`."""
    from safetensors.torch import load_model

    from entropyctl.models.loading import load_policy, save_tokenizer
    from entropyctl.runstore.store import CONFIG, is_run_dir
    from entropyctl.train.checkpoint import config_sha, latest_checkpoint
    from entropyctl.train.loop import resolve_model_path
    from entropyctl.train.resume import load_config

    run_dir, out = Path(run_dir), Path(out)
    _check_out(out)  # before anything slow
    if not is_run_dir(run_dir):
        raise BadInput(f"{run_dir} is not a run directory (no run.json and config.yaml); give runs/<sweep>/<run>")
    config_yaml = (run_dir / CONFIG).read_text()
    cfg = load_config(config_yaml, run_dir / CONFIG)
    ckpt = latest_checkpoint(run_dir, config_sha(config_yaml), log)
    if ckpt is None:
        raise BadInput(f"{run_dir} has no checkpoint to export (it ran with checkpoint_every=0 or ended "
                       "before its first one); train with checkpoint_every>=1")
    tmp, made = _make_tmp(out)
    done = False
    try:
        model, tokenizer = load_policy(resolve_model_path(cfg, log), cfg.model.attn_impl, cfg.model.dtype, "cpu")
        missing, unexpected = load_model(model, str(ckpt.path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise BadInput(f"{ckpt.path}: the weights do not fit the run's model (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}); was config.yaml edited?")
        model.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp)
        (tmp / PROVENANCE).write_text(json.dumps({
            "run_dir": str(run_dir.resolve()), "checkpoint_round": ckpt.round,
            "rounds_done_before_checkpoint": ckpt.round, "config_sha256": config_sha(config_yaml),
            "model": cfg.model.name, "dtype": cfg.model.dtype}, indent=1) + "\n")
        _check_out(out)  # nobody wrote there meanwhile
        if out.exists():
            out.rmdir()  # empty, checked just above
        os.rename(tmp, out)
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove(made)
    return out


def export(
    run_dir: Annotated[Path, typer.Argument(help="The run directory, runs/<sweep>/<run_id>.", show_default=False)],
    out: Annotated[Path, typer.Argument(help="A new (or empty) directory for the exported model.",
                                        show_default=False)],
) -> None:
    """Write a run's trained policy as a Hugging Face directory (config, weights, tokenizer).

    Example: entropyctl export runs/mine/grpo__lab__s0__20250101-120000 exported/grpo-s0
    (then AutoModelForCausalLM.from_pretrained("exported/grpo-s0"), or vllm.LLM(...) on it)
    """
    from entropyctl.runstore.store import RunStoreError
    from entropyctl.train.checkpoint import CheckpointError

    try:
        path = export_run(run_dir, out, log=lambda msg: typer.echo(msg, err=True))
    except (BadInput, RunStoreError, CheckpointError) as e:
        typer.echo(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"exported {run_dir} -> {path}")
