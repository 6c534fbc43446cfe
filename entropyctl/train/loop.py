"""`entropyctl train`: the round loop. Reads top to bottom:

    rollout -> reward -> rescore -> advantage -> update (the interventions) -> eval -> log

`run(cfg)` sets up one run (model, task, optimiser, run store) and loops `run_round`.
"""

from __future__ import annotations

import random
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from entropyctl.maths.advantage import compute_advantage
from entropyctl.train.checkpoint import config_sha, save_checkpoint
from entropyctl.config import TrainConfig
from entropyctl.errors import Divergence
from entropyctl.train.evaluate import evaluate
from entropyctl.interventions import InterventionError, Pipeline, RoundContext, build
from entropyctl.train.metrics import round_metrics
from entropyctl.models.loading import load_policy
from entropyctl.train.rescore import rescore
from entropyctl.train.reward import score
from entropyctl.train.rollout import sample
from entropyctl.runstore.store import CONFIG, RunWriter, create_run
from entropyctl.train.sampling import collect_rollouts, keep_informative
from entropyctl.tasks import Task, build as build_task
from entropyctl.train.update import make_optimizer, update


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
    task: Task
    pipeline: Pipeline
    prompt_rng: random.Random  # which prompts each round draws
    sample_gen: torch.Generator  # token sampling and minibatch order


def run_round(r: int, s: RunState, cfg: TrainConfig) -> dict[str, float]:
    t, ro_cfg = Timer(), cfg.rollout

    def draw():
        problems = s.task.sample_train(s.prompt_rng, ro_cfg.prompts_per_round)
        ro = sample(s.model, s.tokenizer, problems, ro_cfg.group_size, cfg.task.max_new_tokens,
                    ro_cfg.temperature, s.sample_gen, backend=ro_cfg.backend)
        return (ro, *score(ro, s.task))

    with t("rollout"):
        ro, rewards, formats, batches = collect_rollouts(draw, ro_cfg, s.tokenizer.pad_token_id)
    n_sampled = ro.completion_mask.sum().item()  # every generated token, kept or not
    with t("rescore"):
        scored = rescore(s.model, s.base, ro, ro_cfg.temperature)
    seen = {}
    if ro_cfg.dynamic_sampling:
        ro, scored, rewards, formats, seen = keep_informative(ro, scored, rewards, formats, ro_cfg, batches)
    estimator = s.pipeline.advantage_estimator(cfg.advantage.estimator)
    adv = compute_advantage(rewards, ro_cfg.group_size, estimator, cfg.advantage.eps)
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
    step_size = cfg.optim.lr * cfg.optim.minibatches * cfg.optim.epochs  # cov/pred_dH's eta
    row.update(round_metrics(ro, scored, rewards, adv, formats, s.task.format_names, ro_cfg.temperature,
                             plan_mask, step_size))
    row.update(seen)
    row.update(stats)
    row.update(ev)
    row.update(t.times)
    row["perf/tokens_per_s"] = n_sampled / max(t.times["time/rollout"], 1e-9)
    return row


def resolve_model_path(cfg: TrainConfig, log=print) -> Path:
    if cfg.model.kind == "hf" or cfg.model.path:
        if not cfg.model.path:
            raise FileNotFoundError("model=hf needs model.path=/path/to/checkpoint")
        return Path(cfg.model.path)
    from entropyctl import plugins

    ensure_base = plugins.load(plugins.MODELS, cfg.model.kind)
    path, stats, reused = ensure_base(cfg.model, cfg.task, cfg.cache_dir)
    verb = "reused" if reused else "pretrained"
    log(f"base model {verb}: {path} (loss {stats['final_loss']:.3f}, sampled acc "
        f"{stats['val_acc']:.2f}, greedy acc {stats['val_greedy_acc']:.2f})")
    return path


def setup(cfg: TrainConfig, log=print) -> RunState:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    pipeline = build(cfg.intervention)
    if cfg.rollout.dynamic_sampling and cfg.rollout.max_gen_batches < 1:
        raise InterventionError("rollout.max_gen_batches must be >= 1 with rollout.dynamic_sampling=true")
    estimator = pipeline.advantage_estimator(cfg.advantage.estimator)
    agg = pipeline.aggregation(cfg.optim.agg_mode, cfg.optim.loss_scale)
    if estimator != cfg.advantage.estimator or agg != (cfg.optim.agg_mode, cfg.optim.loss_scale):
        log(f"{pipeline.label} sets advantage.estimator={estimator}, optim.agg_mode={agg[0]}, "
            f"optim.loss_scale={agg[1]}")
    task = build_task(cfg.task)
    path = resolve_model_path(cfg, log)
    model, tokenizer = load_policy(path, cfg.model.attn_impl)
    base, _ = load_policy(path, cfg.model.attn_impl)
    base.requires_grad_(False)
    model.eval()
    base.eval()
    # Seeded last: pretraining on a cache miss must not shift the run's random streams.
    torch.manual_seed(cfg.seed)  # interventions that pick at random (clip_cov) use it
    return RunState(model, base, tokenizer, make_optimizer(model, cfg.optim), task, pipeline,
                    random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed))


def run_id(cfg: TrainConfig, label: str) -> str:
    return f"{label}__{cfg.model.name}__s{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def run(cfg: TrainConfig, config_yaml: str, overrides: list[str], log=print) -> Path:
    """Train one run end to end; returns its run directory. With `resume=true`, continue this
    sweep's unfinished run of the same config instead, or skip it when it already ended."""
    if cfg.resume:
        from entropyctl.train.resume import resume_matching

        found = resume_matching(cfg, config_yaml, log)
        if found is not None:
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


def _check_weights(model: torch.nn.Module) -> None:
    """A finite update step can still leave inf/NaN weights; stop before the next round samples."""
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise Divergence(f"non-finite weights after the update ({name})")


def loop(state: RunState, cfg: TrainConfig, writer: RunWriter, start: int) -> None:
    """Rounds start..rounds-1: one metrics row each, then run.json, then (every
    `checkpoint_every` rounds and after the last) a checkpoint of the state before the next."""
    from entropyctl.train.progress import RoundProgress

    sha = config_sha((writer.path / CONFIG).read_text())

    def checkpoint(next_round: int) -> None:
        save_checkpoint(writer.path, next_round, model=state.model, optimizer=state.optimizer,
                        prompt_rng=state.prompt_rng, sample_gen=state.sample_gen,
                        config_yaml_sha=sha, keep=cfg.checkpoint_keep)

    every = cfg.checkpoint_every
    r = start
    try:
        probes = None
        if cfg.probe.every > 0:
            from entropyctl.train.probes import Probes

            probes = Probes(state, cfg, first_round=start)
        label = f"{writer.info.get('intervention', '')} s{writer.info.get('seed', '')}"
        with RoundProgress(label, cfg.rounds, start, enabled=cfg.progress) as bar:
            if every > 0 and start == 0:
                checkpoint(0)  # resume never depends on re-running setup the same way
            for r in range(start, cfg.rounds):
                # Before the round: probes measure the policy that samples it (round 0 = base).
                probed = probes.run(r) if probes is not None else {}
                row = run_round(r, state, cfg)
                row.update(probed)
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
