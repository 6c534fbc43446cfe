"""Resuming a run: find it again (`train ... resume=true`), check it can go on, restore its
newest checkpoint and cut metrics.jsonl back to the rounds before it, so that every round is
logged exactly once (docs/reliability.md). The cut rows move to metrics.dropped.jsonl."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import yaml

from entropyctl.train.checkpoint import config_sha, latest_checkpoint
from entropyctl.config import TrainConfig
from entropyctl.runstore.store import (CONFIG, DROPPED, METRICS, RunStoreError, check_status, is_run_dir,
                                 load_run, now_iso, read_metrics, reopen_run, truncate_metrics)
from entropyctl.runstore.inputs import changed_inputs, input_paths, input_stamps
from entropyctl.runstore.samples import truncate_samples
from entropyctl.train.loop import _sigterm_as_interrupt, loop, recorded_config, run, setup

RESUMABLE = ("running", "interrupted", "failed")  # running = killed without a word
# Keys that may differ between a run and the `resume=true` command that finds it again.
_NOT_COMPARED = ("resume", "progress", "threads", "debug", "runs_dir", "cache_dir", "checkpoint_every", "tracking",
                 "checkpoint_keep")


def load_config(config_yaml: str, where: Path) -> TrainConfig:
    """A run's saved config.yaml, safe-loaded and type-checked against TrainConfig."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        data = yaml.safe_load(config_yaml)
        merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), data if isinstance(data, dict) else {})
        return OmegaConf.to_object(merged)
    except (yaml.YAMLError, OmegaConfBaseException) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RunStoreError(f"{where}: unusable config.yaml ({msg}); restore it or start a new run") from None


def _absolute_paths(cfg: TrainConfig, run_dir: Path) -> None:
    """Runs record absolute runs_dir and cache_dir. An older run's relative ones are taken
    from where the run directory lies (<runs_dir>/<sweep>/<run>), never from the current
    folder, which would silently pretrain a new base model elsewhere."""
    runs_root = run_dir.resolve().parent.parent
    rel = Path(cfg.runs_dir)
    if rel.is_absolute():
        return
    parts = tuple(p for p in rel.parts if p != ".")
    if parts and runs_root.parts[-len(parts):] != parts:
        raise RunStoreError(f"{run_dir}: its config.yaml has runs_dir={cfg.runs_dir}, which does not lead to "
                            "this run; set runs_dir in config.yaml to the absolute folder it was started in")
    started_in = Path(*runs_root.parts[: len(runs_root.parts) - len(parts)])
    cfg.runs_dir = str(runs_root)
    if not Path(cfg.cache_dir).is_absolute():
        cfg.cache_dir = str(started_in / cfg.cache_dir)


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in _NOT_COMPARED}


def _check_inputs(run_dir: Path, cfg: TrainConfig) -> None:
    """The checkpoint and prompt files the run started from must be the same: the rest of the
    run would train on other weights or data under the same config."""
    recorded = load_run(run_dir).info.get("inputs") or {}  # runs before inputs were recorded: {}
    gone = changed_inputs(recorded, input_stamps(cfg), input_paths(cfg))
    if gone:
        raise RunStoreError(f"{run_dir}: {gone[0]} since the run started"
                            + (f" (and {len(gone) - 1} more)" if len(gone) > 1 else "")
                            + "; resuming would train the rest of it on other inputs: restore the file, "
                            "or start a new run")


def find_previous(cfg: TrainConfig, config_yaml: str) -> Path | None:
    """The run of this sweep with the same config (up to _NOT_COMPARED), for `resume=true`:
    the newest resumable one, else the newest that ended, else None."""
    from entropyctl.interventions import build

    prefix = f"{build(cfg.intervention).label}__{cfg.model.name}__s{cfg.seed}__"
    want = _comparable(yaml.safe_load(config_yaml))
    same = []
    for p in sorted((Path(cfg.runs_dir) / cfg.sweep).glob(prefix + "*")):
        try:
            if is_run_dir(p) and _comparable(yaml.safe_load((p / CONFIG).read_text()) or {}) == want:
                same.append((load_run(p).status, p))
        except (OSError, yaml.YAMLError, RunStoreError, AttributeError):
            continue  # not a run this config could have written
    for wanted in (RESUMABLE, ("finished", "diverged")):
        hits = [p for status, p in same if status in wanted]
        if hits:
            return hits[-1]
    return None


def resume(run_dir: Path, log=print, progress: bool | None = None, threads: int | None = None) -> Path:
    """Continue a killed, interrupted or failed run in its own directory from its newest
    checkpoint: metrics.jsonl is cut back to the rounds before it (the cut rows move to
    metrics.dropped.jsonl) and the rounds after it are recomputed, so each round is logged once."""
    run_dir = Path(run_dir)
    # Read-only checks first, so a refused resume changes nothing (not even the lock file).
    check_status(run_dir, RESUMABLE)
    try:
        config_yaml = (run_dir / CONFIG).read_text()
    except FileNotFoundError:
        raise RunStoreError(f"{run_dir}: no {CONFIG}, so the run cannot be rebuilt; start a new run") from None
    cfg = load_config(config_yaml, run_dir / CONFIG)
    if progress is not None:
        cfg.progress = progress
    if threads is not None:
        cfg.threads = threads
    _absolute_paths(cfg, run_dir)
    read_metrics(run_dir / METRICS)  # a corrupted line: refuse before the slow setup
    _check_inputs(run_dir, cfg)
    writer = reopen_run(run_dir, RESUMABLE)  # locks the run; refuses finished/diverged ones
    try:
        state = setup(cfg, log)
        ckpt = latest_checkpoint(run_dir, config_sha(config_yaml), log)
        start = 0
        if ckpt is not None:
            ckpt.restore(model=state.model, optimizer=state.optimizer, prompt_rng=state.prompt_rng,
                         sample_gen=state.sample_gen, pipeline=state.pipeline, scaler=state.scaler)
            start = ckpt.round
        moved = truncate_metrics(run_dir, start)
        truncate_samples(run_dir, start)  # the recomputed rounds log their samples again
    except BaseException as e:
        writer.close()  # nothing of the run was changed: leave it as it was
        e.run_dir = run_dir  # rounds are on disk: the report must say where, never "nothing written"
        raise
    resumes = [*writer.info.get("resumes", []), {"at": now_iso(), "from_round": start, "rows_dropped": moved}]
    writer.update(status="running", ended=None, error=None, host=socket.gethostname(), pid=os.getpid(),
                  rounds_done=start, resumes=resumes)
    log(f"resuming {run_dir} at round {start}/{cfg.rounds}"
        + (f" ({moved} logged line(s) after the checkpoint moved to {DROPPED})" if moved else ""))
    with _sigterm_as_interrupt():
        loop(state, cfg, writer, start=start)
    return run_dir




def train_or_resume(cfg: TrainConfig, overrides: list[str], log=print) -> Path:
    """`entropyctl train`: a new run, or with `resume=true` this sweep's unfinished run of the
    same config (an ended one is left as it is)."""
    if cfg.resume:
        found = resume_matching(cfg, log)
        if found is not None:
            return found
    return run(cfg, overrides, log)


def resume_matching(cfg: TrainConfig, log=print) -> Path | None:
    """For `train ... resume=true`: resume this sweep's run of the same config, or leave an
    ended one as it is; None when there is none (the caller starts a new run)."""
    found = find_previous(cfg, recorded_config(cfg)[1])
    if found is None:
        return None
    status = load_run(found).status
    if status in RESUMABLE:
        return resume(found, log, progress=cfg.progress, threads=cfg.threads)
    log(f"already {status}, not run again: {found}")
    return found
