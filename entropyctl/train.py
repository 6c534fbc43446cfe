"""`entropyctl train`: the round loop. Reads top to bottom:

    rollout -> reward -> rescore -> advantage -> update (the interventions) -> eval -> log

`run(cfg)` sets up one run (model, task, optimiser, run store) and loops `run_round`.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
import yaml

from entropyctl import entropy as E
from entropyctl.advantage import compute_advantage
from entropyctl.batch import Rollout, Scored
from entropyctl.checkpoint import config_sha, latest_checkpoint, save_checkpoint
from entropyctl.config import TrainConfig
from entropyctl.evaluate import evaluate
from entropyctl.interventions import InterventionError, Pipeline, RoundContext, build
from entropyctl.lab.task import AdditionTask
from entropyctl.metrics import round_metrics
from entropyctl.policy import load_policy
from entropyctl.rescore import rescore
from entropyctl.reward import score
from entropyctl.rollout import sample
from entropyctl.sampling import concat_rollouts, informative_groups, kept_rows, renumber_groups
from entropyctl.runstore import (CONFIG, DROPPED, METRICS, RunStoreError, RunWriter, check_status, create_run,
                                 is_run_dir, load_run, now_iso, read_metrics, reopen_run, truncate_metrics)
from entropyctl.update import Divergence, make_optimizer, update


class Timer:
    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        yield
        self.times[f"time/{name}"] = time.perf_counter() - t0


@dataclass
class RunState:
    """Everything a round reads or advances; what a checkpoint must hold."""

    model: torch.nn.Module
    base: torch.nn.Module | None
    tokenizer: object
    optimizer: torch.optim.Optimizer
    task: AdditionTask
    pipeline: Pipeline
    prompt_rng: random.Random  # which prompts each round draws
    sample_gen: torch.Generator  # token sampling and minibatch order


def run_round(r: int, s: RunState, cfg: TrainConfig) -> dict[str, float]:
    t, ro_cfg = Timer(), cfg.rollout
    G, want = ro_cfg.group_size, ro_cfg.prompts_per_round
    rollouts, rewards_parts, formats = [], [], []
    with t("rollout"):
        # Dynamic sampling (spec §3.3): more batches until `want` groups have mixed rewards.
        for _ in range(ro_cfg.max_gen_batches if ro_cfg.dynamic_sampling else 1):
            problems = s.task.sample_train(s.prompt_rng, want)
            ro = sample(s.model, s.tokenizer, problems, G, cfg.task.max_new_tokens,
                        ro_cfg.temperature, s.sample_gen, backend=ro_cfg.backend)
            rw, fm = score(ro, s.task)
            rollouts.append(ro)
            rewards_parts.append(rw)
            formats.extend(fm)
            if int(informative_groups(torch.cat(rewards_parts), G).sum()) >= want:
                break
    ro, rewards = concat_rollouts(rollouts, s.tokenizer.pad_token_id), torch.cat(rewards_parts)
    n_sampled = ro.completion_mask.sum().item()  # every generated token, kept or not
    with t("rescore"):
        scored = rescore(s.model, s.base, ro, ro_cfg.temperature)
    sampled = {}
    if ro_cfg.dynamic_sampling:
        sampled = prefilter_metrics(ro, scored, rewards, G, len(rollouts))
        keep = kept_rows(rewards, G, want)
        if keep.numel() == 0:  # nothing informative: the first batch, unfiltered
            keep = torch.arange(rollouts[0].size)
        ro = renumber_groups(ro.select(keep), G)
        scored = Scored(scored.old_logp[keep], scored.h[keep],
                        None if scored.ref_logp is None else scored.ref_logp[keep])
        rewards, formats = rewards[keep], [formats[i] for i in keep.tolist()]
        sampled["sampling/groups"] = ro.size / G
    estimator = s.pipeline.advantage_estimator(cfg.advantage.estimator)
    adv = compute_advantage(rewards, G, estimator, cfg.advantage.eps)
    plan_mask = s.task.plan_mask(ro.completion_ids, ro.completion_mask, s.tokenizer)  # hicra
    with t("update"):
        stats = update(s.model, s.optimizer, ro, scored, adv, rewards, s.pipeline, cfg.optim,
                       ro_cfg.temperature, s.sample_gen, plan_mask=plan_mask)
    if s.pipeline.round:
        with t("round_hooks"):
            # Its own generator, seeded by (seed, round): hooks never shift the training streams.
            ctx = RoundContext(r, s.model, s.optimizer, s.tokenizer, s.task,
                               random.Random(cfg.seed * 1_000_003 + r), cfg.optim.grad_clip)
            stats.update(s.pipeline.after_round(ctx))
    ev = {}
    if (r + 1) % cfg.eval.every == 0 or r + 1 == cfg.rounds:
        with t("eval"):
            # Its own generator: evaluating (or not) never shifts the training RNG streams.
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + r)
            ev = evaluate(s.model, s.tokenizer, s.task, ro_cfg.temperature, cfg.task.max_new_tokens,
                          gen, greedy=cfg.eval.greedy, backend=ro_cfg.backend)
    row = {"round": r}
    row.update(round_metrics(ro, scored, rewards, adv, formats, s.task.format_names, ro_cfg.temperature))
    row.update(sampled)  # reward/mean stays the pre-filter mean (glossary)
    row.update(stats)
    row.update(ev)
    row.update(t.times)
    row["perf/tokens_per_s"] = n_sampled / max(t.times["time/rollout"], 1e-9)
    return row


def prefilter_metrics(ro: Rollout, scored: Scored, rewards: Tensor, group_size: int,
                      gen_batches: int) -> dict[str, float]:
    """What dynamic sampling saw before filtering (spec §1.1: log pre- and post-filter entropy)."""
    mask = ro.completion_mask
    return {
        "reward/mean": rewards.mean().item(),
        "entropy/seqmean_prefilter": E.seqmean(scored.h, mask).item(),
        "entropy/tokmean_prefilter": E.tokmean(scored.h, mask).item(),
        "sampling/gen_batches": float(gen_batches),
        "sampling/kept_frac": informative_groups(rewards, group_size).float().mean().item(),
    }


def resolve_model_path(cfg: TrainConfig, log=print) -> Path:
    if cfg.model.path:
        return Path(cfg.model.path)
    from entropyctl.lab.pretrain import ensure_base

    path, stats, reused = ensure_base(cfg.model, cfg.task, cfg.cache_dir)
    verb = "reused" if reused else "pretrained"
    log(f"base model {verb}: {path} (loss {stats['final_loss']:.3f}, sampled acc "
        f"{stats['val_acc']:.2f}, greedy acc {stats['val_greedy_acc']:.2f})")
    return path


def setup(cfg: TrainConfig, log=print) -> RunState:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # interventions that pick at random (clip_cov) use it
    pipeline = build(cfg.intervention)
    if cfg.rollout.dynamic_sampling and cfg.rollout.max_gen_batches < 1:
        raise InterventionError("rollout.max_gen_batches must be >= 1 with rollout.dynamic_sampling=true")
    estimator = pipeline.advantage_estimator(cfg.advantage.estimator)
    agg = pipeline.aggregation(cfg.optim.agg_mode, cfg.optim.loss_scale)
    if estimator != cfg.advantage.estimator or agg != (cfg.optim.agg_mode, cfg.optim.loss_scale):
        log(f"{pipeline.label} sets advantage.estimator={estimator}, optim.agg_mode={agg[0]}, "
            f"optim.loss_scale={agg[1]}")
    task = AdditionTask(cfg.task)
    path = resolve_model_path(cfg, log)
    model, tokenizer = load_policy(path, cfg.model.attn_impl)
    base, _ = load_policy(path, cfg.model.attn_impl)
    base.requires_grad_(False)
    model.eval()
    base.eval()
    return RunState(model, base, tokenizer, make_optimizer(model, cfg.optim), task, pipeline,
                    random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed))


def run_id(cfg: TrainConfig, label: str) -> str:
    return f"{label}__{cfg.model.name}__s{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


RESUMABLE = ("running", "interrupted", "failed")  # running = killed without a word
# Keys that may differ between a run and the `resume=true` command that finds it again.
_NOT_COMPARED = ("resume", "progress", "threads", "debug", "runs_dir", "cache_dir", "checkpoint_every",
                 "checkpoint_keep")


def run(cfg: TrainConfig, config_yaml: str, overrides: list[str], log=print) -> Path:
    """Train one run end to end; returns its run directory. With `resume=true`, continue this
    sweep's unfinished run of the same config instead, or skip it when it already ended."""
    if cfg.resume:
        found = find_previous(cfg, config_yaml)
        if found is not None:
            status = load_run(found).status
            if status in RESUMABLE:
                return resume(found, log, progress=cfg.progress, threads=cfg.threads)
            log(f"already {status}, not run again: {found}")
            return found
    state = setup(cfg, log)
    writer = create_run(
        Path(cfg.runs_dir), cfg.sweep, run_id(cfg, state.pipeline.label), config_yaml, overrides,
        {"intervention": state.pipeline.label, "seed": cfg.seed, "model": cfg.model.name,
         "task": cfg.task.name, "rounds_planned": cfg.rounds, "rounds_done": 0,
         "temperature": cfg.rollout.temperature, "formats": state.task.format_names},
    )
    log(f"run dir: {writer.path}")
    with _sigterm_as_interrupt():
        loop(state, cfg, writer, start=0)
    return writer.path


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


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in _NOT_COMPARED}


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
    read_metrics(run_dir / METRICS)  # a corrupted line: refuse before the slow setup
    writer = reopen_run(run_dir, RESUMABLE)  # locks the run; refuses finished/diverged ones
    try:
        state = setup(cfg, log)
        ckpt = latest_checkpoint(run_dir, config_sha(config_yaml), log)
        start = 0
        if ckpt is not None:
            ckpt.restore(model=state.model, optimizer=state.optimizer, prompt_rng=state.prompt_rng,
                         sample_gen=state.sample_gen)
            start = ckpt.round
        moved = truncate_metrics(run_dir, start)
    except BaseException:
        writer.close()  # nothing of the run was changed: leave it as it was
        raise
    resumes = [*writer.info.get("resumes", []), {"at": now_iso(), "from_round": start, "rows_dropped": moved}]
    writer.update(status="running", ended=None, error=None, host=socket.gethostname(), pid=os.getpid(),
                  rounds_done=start, resumes=resumes)
    log(f"resuming {run_dir} at round {start}/{cfg.rounds}"
        + (f" ({moved} logged line(s) after the checkpoint moved to {DROPPED})" if moved else ""))
    with _sigterm_as_interrupt():
        loop(state, cfg, writer, start=start)
    return run_dir


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a pre-empted job, `kill`) ends the run like Ctrl-C: status `interrupted`."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# torch.multinomial's message when sampling meets NaN/inf logits (rollout or eval).
_NONFINITE_PROBS = "probability tensor contains either `inf`, `nan` or element < 0"


def _check_weights(model: torch.nn.Module) -> None:
    """A finite update step can still leave inf/NaN weights; stop before the next round samples."""
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise Divergence(f"non-finite weights after the update ({name})")


def loop(state: RunState, cfg: TrainConfig, writer: RunWriter, start: int) -> None:
    """Rounds start..rounds-1: one metrics row each, then run.json, then (every
    `checkpoint_every` rounds and after the last) a checkpoint of the state before the next."""
    from entropyctl.progress import RoundProgress

    sha = config_sha((writer.path / CONFIG).read_text())

    def checkpoint(next_round: int) -> None:
        save_checkpoint(writer.path, next_round, model=state.model, optimizer=state.optimizer,
                        prompt_rng=state.prompt_rng, sample_gen=state.sample_gen,
                        config_yaml_sha=sha, keep=cfg.checkpoint_keep)

    every = cfg.checkpoint_every
    r = start
    try:
        with RoundProgress(writer.path.name, cfg.rounds, start, enabled=cfg.progress) as bar:
            if every > 0 and start == 0:
                checkpoint(0)  # resume never depends on re-running setup the same way
            for r in range(start, cfg.rounds):
                try:
                    row = run_round(r, state, cfg)
                except RuntimeError as e:
                    if _NONFINITE_PROBS not in str(e):
                        raise
                    raise Divergence("non-finite logits while sampling (NaN/inf probabilities)") from e
                writer.append(row)
                writer.update(rounds_done=r + 1)
                _check_weights(state.model)
                if every > 0 and ((r + 1) % every == 0 or r + 1 == cfg.rounds):
                    checkpoint(r + 1)
                bar.advance(row)
        writer.finish("finished")
    except Divergence as e:
        writer.finish("diverged", error=f"round {r}: {e}", diverged_round=r)
        e.run_dir, e.round = writer.path, r  # for the CLI's one-line report
        raise
    except KeyboardInterrupt as e:
        writer.finish("interrupted", error=f"interrupted in round {r}")
        e.run_dir = writer.path
        raise
    except Exception as e:
        writer.finish("failed", error=f"round {r}: {type(e).__name__}: {e}".splitlines()[0])
        e.run_dir = writer.path
        raise
    finally:
        writer.close()
