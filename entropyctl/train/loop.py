"""`entropyctl train`: a run's lifecycle, start -> loop -> finish. A round reads top to bottom:

    rollout -> reward -> rescore (+ mismatch) -> advantage -> update (the interventions)
    -> push weights to the rollout backend -> eval -> log

`run(cfg)` starts one run (`setup`: model, task, optimiser; `create_run`: its directory, with
the config that will run, `recorded_config`), then `loop` runs its rounds and records how it
ended. Resuming (train/resume.py) sits beside this: it restores a run and calls `loop`; this
module never imports it.
"""

from __future__ import annotations

import dataclasses
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
from entropyctl.interventions import Pipeline, RoundContext, build
from entropyctl.train.metrics import round_metrics
from entropyctl.models.loading import load_policy, resolve_device
from entropyctl.models.precision import compute_precision, grad_scaler
from entropyctl.models.scoring import ForwardBudget
from entropyctl.train.rescore import base_logp, rescore
from entropyctl.train.reward import readable_samples, score
from entropyctl.train.backends import Backend, make_backend
from entropyctl.train.rollout import mismatch, sample
from entropyctl.runstore.inputs import input_stamps
from entropyctl.runstore.store import CONFIG, METRICS, SAMPLES, RunWriter, create_run, read_metrics
from entropyctl.train.preflight import check_probe_prompts, check_prompt_fit
from entropyctl.train.sampling import collect_rollouts, keep_informative
from entropyctl.tasks import Task, build as build_task
from entropyctl.tasks.base import enter_round, observe_round
from entropyctl.train.update import RoundBatch, UpdateSettings, make_optimizer, update


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
    base: torch.nn.Module | None  # the frozen base, loaded only when something reads it
    tokenizer: object
    optimizer: torch.optim.Optimizer
    task: Task
    pipeline: Pipeline
    prompt_rng: random.Random  # which prompts each round draws
    sample_gen: torch.Generator  # token sampling and minibatch order, on the policy's device
    budget: ForwardBudget  # how much one scoring pass may hold (rescore, update)
    backend: Backend  # samples the rollouts; follows the policy's weights after every update
    scaler: torch.amp.GradScaler | None = None  # float16's loss scale (models/precision.py)

    @property
    def device(self) -> torch.device:
        return self.sample_gen.device


def run_round(r: int, s: RunState, cfg: TrainConfig, samples: list | None = None) -> dict[str, float]:
    """The round's metrics row; `log.samples_per_round` readable completions go to `samples`."""
    t, ro_cfg = Timer(), cfg.rollout
    evaluating = (r + 1) % cfg.eval.every == 0 or r + 1 == cfg.rounds

    def draw():
        problems = s.task.sample_train(s.prompt_rng, ro_cfg.prompts_per_round)
        ro = sample(s.model, s.tokenizer, problems, ro_cfg.group_size, cfg.task.max_new_tokens,
                    ro_cfg.temperature, s.sample_gen, backend=s.backend)
        return (ro, *score(ro, s.task))

    with t("rollout"):
        ro, rewards, formats, batches = collect_rollouts(draw, ro_cfg, s.tokenizer.pad_token_id)
    n_sampled = ro.completion_mask.sum().item()  # every generated token, kept or not
    with t("rescore"):
        # The base's forward pass here only when the loss reads it (kl_anchor); for the KL
        # metric alone it runs with the eval, on eval rounds.
        scored = rescore(s.model, s.base if s.pipeline.needs_ref else None, ro, ro_cfg.temperature, s.budget)
    seen = {}
    if ro_cfg.dynamic_sampling:
        ro, scored, rewards, formats, seen = keep_informative(ro, scored, rewards, formats, ro_cfg, batches)
    scored, mism = mismatch(ro, scored, ro_cfg)  # raw metrics; correction weights when asked
    rewards = rewards.to(s.device)  # scored on the host; trained on with the rollout's tensors
    estimator = s.pipeline.advantage_estimator(cfg.advantage.estimator)
    adv = compute_advantage(rewards, ro_cfg.group_size, estimator, cfg.advantage.eps)
    plan_mask = s.task.plan_mask(ro.completion_ids, ro.completion_mask, s.tokenizer)  # hicra
    with t("update"):
        batch = RoundBatch(ro, scored, adv, rewards, None if plan_mask is None else plan_mask.to(s.device))
        stats = update(s.model, s.optimizer, batch, s.pipeline,
                       UpdateSettings(cfg.optim, ro_cfg.temperature, s.sample_gen, s.budget, s.scaler))
    if s.pipeline.round:
        with t("round_hooks"):
            # Its own generator, seeded by (seed, round): hooks never shift the training streams.
            ctx = RoundContext(r, s.model, s.optimizer, s.tokenizer, s.task,
                               random.Random(cfg.seed * 1_000_003 + r), cfg.optim.grad_clip, s.scaler)
            stats.update(s.pipeline.after_round(ctx))
    with t("push"):
        s.backend.push_weights(s.model)  # the next rollout (and eval) samples the new weights
    ev = {}
    if evaluating:
        with t("eval"):
            if s.base is not None and scored.ref_logp is None:  # the base is frozen: any time will do
                ref = base_logp(s.base, ro, ro_cfg.temperature, s.budget).to(s.device)
                scored = dataclasses.replace(scored, ref_logp=ref)
            # Its own generator: evaluating (or not) never shifts the training RNG streams.
            gen = torch.Generator(s.device).manual_seed(cfg.seed * 100_003 + r)
            ev = evaluate(s.model, s.tokenizer, s.task, ro_cfg.temperature, cfg.task.max_new_tokens,
                          gen, greedy=cfg.eval.greedy, backend=s.backend)
    if samples is not None and cfg.log.samples_per_round:
        # Its own generator: which completions get logged never shifts the training streams.
        pick = random.Random(cfg.seed * 10_007 + r)
        samples.extend(readable_samples(r, ro, rewards, formats, cfg.log.samples_per_round, pick))
    row = {"round": r}
    step_size = cfg.optim.lr * cfg.optim.minibatches * cfg.optim.epochs  # cov/pred_dH's eta
    row.update(round_metrics(ro, scored, rewards, adv, formats, s.task.format_names, ro_cfg.temperature,
                             plan_mask, step_size))
    row.update(seen)
    row.update(mism)
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
    path, stats, reused = ensure_base(cfg.model, cfg.task, cfg.cache_dir, progress=cfg.progress)
    verb = "reused" if reused else "pretrained"
    log(f"base model {verb}: {path} (loss {stats['final_loss']:.3f}, sampled acc "
        f"{stats['val_acc']:.2f}, greedy acc {stats['val_greedy_acc']:.2f})")
    return path


def setup(cfg: TrainConfig, log=print) -> RunState:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    pipeline = build(cfg.intervention)
    estimator = pipeline.advantage_estimator(cfg.advantage.estimator)
    agg = pipeline.aggregation(cfg.optim.agg_mode, cfg.optim.loss_scale)
    if estimator != cfg.advantage.estimator or agg != (cfg.optim.agg_mode, cfg.optim.loss_scale):
        log(f"{pipeline.label} sets advantage.estimator={estimator}, optim.agg_mode={agg[0]}, "
            f"optim.loss_scale={agg[1]}")
    task = build_task(cfg.task)
    check_probe_prompts(cfg, task)  # before pretraining a lab base
    m = cfg.model
    device = resolve_device(cfg.device)  # a missing CUDA is refused before any pretraining
    base_device = resolve_device(m.base_device) if m.base_device else device
    path = resolve_model_path(cfg, log)
    # float32 master weights whatever model.dtype: the round runs under compute_precision
    model, tokenizer = load_policy(path, m.attn_impl, "float32", device, m.gradient_checkpointing)
    model.eval()
    task.bind(tokenizer)  # prompts rendered for this tokenizer (chat template)
    check_prompt_fit(cfg, task, model)
    check_probe_prompts(cfg, task)  # again: prompts over task.max_prompt_tokens have left
    if hasattr(task, "describe"):
        log(task.describe())
    base = None
    if m.base_kl or pipeline.needs_ref:  # kl/base_k3, kl_anchor
        base, _ = load_policy(path, m.attn_impl, m.dtype, base_device)
        base.requires_grad_(False)
        base.eval()
    backend = make_backend(cfg.rollout.backend, cfg.rollout, path, model, cfg.seed, m.dtype)
    # Seeded last: pretraining on a cache miss must not shift the run's random streams.
    torch.manual_seed(cfg.seed)  # interventions that pick at random (clip_cov) use it
    return RunState(model, base, tokenizer, make_optimizer(model, cfg.optim), task, pipeline,
                    random.Random(cfg.seed), torch.Generator(device).manual_seed(cfg.seed),
                    ForwardBudget(cfg.optim.micro_batch_tokens, m.logits_chunk_mb), backend,
                    grad_scaler(m.dtype, device))


def numerics(model, dtype: str) -> dict:
    """What sets a run's last bits besides its seed and config, for run.json: the same code on an
    AVX-512 CPU, with another thread count or another torch gives other rounding, and from there
    another sample path. `dtype`: the passes' precision (the weights are float32)."""
    import transformers

    p = next(model.parameters())
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "device": str(p.device), "dtype": dtype}


def run_id(cfg: TrainConfig, label: str) -> str:
    return f"{label}__{cfg.model.name}__s{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def recorded_config(cfg: TrainConfig) -> tuple[TrainConfig, str]:
    """The config as it will run, and its YAML for config.yaml: runs_dir and cache_dir made
    absolute (so `entropyctl resume` works from any folder), and the run-level settings an
    intervention applies (dr_grpo's estimator and aggregation) in place of the ones it replaces."""
    import copy

    from omegaconf import OmegaConf

    cfg = copy.deepcopy(cfg)
    cfg.runs_dir = str(Path(cfg.runs_dir).expanduser().absolute())
    cfg.cache_dir = str(Path(cfg.cache_dir).expanduser().absolute())
    pipeline = build(cfg.intervention)
    cfg.advantage.estimator = pipeline.advantage_estimator(cfg.advantage.estimator)
    cfg.optim.agg_mode, cfg.optim.loss_scale = pipeline.aggregation(cfg.optim.agg_mode, cfg.optim.loss_scale)
    return cfg, OmegaConf.to_yaml(OmegaConf.structured(cfg))


def run(cfg: TrainConfig, overrides: list[str], log=print) -> Path:
    """Start one run and train it to the end; returns its run directory."""
    asked = (cfg.advantage.estimator, cfg.optim.agg_mode, cfg.optim.loss_scale)
    cfg, config_yaml = recorded_config(cfg)
    if (cfg.advantage.estimator, cfg.optim.agg_mode, cfg.optim.loss_scale) != asked:
        log(f"the interventions set advantage.estimator={cfg.advantage.estimator}, optim.agg_mode="
            f"{cfg.optim.agg_mode}, optim.loss_scale={cfg.optim.loss_scale} (recorded in config.yaml)")
    state = setup(cfg, log)
    writer = create_run(
        Path(cfg.runs_dir), cfg.sweep, run_id(cfg, state.pipeline.label), config_yaml, overrides,
        {"intervention": state.pipeline.label, "seed": cfg.seed, "model": cfg.model.name,
         "task": cfg.task.name, "rounds_planned": cfg.rounds, "rounds_done": 0,
         "temperature": cfg.rollout.temperature, "formats": state.task.format_names,
         "numerics": numerics(state.model, cfg.model.dtype),
         "inputs": input_stamps(cfg)},
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
    from entropyctl.analysis.law_summary import law_summary
    from entropyctl.runstore import wandb_mirror
    from entropyctl.progress import WorkProgress

    wandb_mirror.attach(writer, cfg.tracking, summary=law_summary)  # the run's law fit ends in its summary
    sha = config_sha((writer.path / CONFIG).read_text())

    def checkpoint(next_round: int) -> None:
        save_checkpoint(writer.path, next_round, model=state.model, optimizer=state.optimizer, scaler=state.scaler,
                        prompt_rng=state.prompt_rng, sample_gen=state.sample_gen,
                        config_yaml_sha=sha, keep=cfg.checkpoint_keep,
                        interventions=state.pipeline.state_dict())

    every = cfg.checkpoint_every
    r = start
    try:
        probes = None
        if cfg.probe.every > 0:
            from entropyctl.train.probes import Probes

            probes = Probes(state, cfg, first_round=start)
        label = f"{writer.info.get('intervention', '')} s{writer.info.get('seed', '')}"
        with WorkProgress(label, cfg.rounds, unit="rounds", start=start, fields=("reward", "H"),
                          enabled=cfg.progress) as bar:
            if every > 0 and start == 0:
                checkpoint(0)  # resume never depends on re-running setup the same way
            if start > 0:
                state.backend.push_weights(state.model)  # resumed weights, not the base's
                if hasattr(state.task, "observe"):  # what the task folded from the rounds before
                    for old in read_metrics(writer.path / METRICS).rows:
                        observe_round(state.task, old)
            for r in range(start, cfg.rounds):
                phased = enter_round(state.task, r)  # a task that changes over rounds (curriculum)
                # Before the round: probes measure the policy that samples it (round 0 = base).
                samples: list = []
                with compute_precision(cfg.model.dtype, state.device):
                    probed = probes.run(r) if probes is not None else {}
                    row = run_round(r, state, cfg, samples)
                row.update(probed)
                row.update(phased)
                row.update(observe_round(state.task, row))
                writer.append(row)
                writer.append(*samples, to=SAMPLES)
                writer.update(rounds_done=r + 1)
                _check_weights(state.model)
                if every > 0 and ((r + 1) % every == 0 or r + 1 == cfg.rounds):
                    checkpoint(r + 1)
                bar.update(r + 1, reward=f"{row['reward/mean']:.3f}", H=f"{row['entropy/seqmean']:.3f}")
        writer.finish("finished")
    except BaseException as e:
        # The run directory first: a second Ctrl-C while the status is written still reports
        # where the rounds are (errors.classify follows the exception chain).
        e.run_dir, e.round = writer.path, r
        if isinstance(e, Divergence):
            writer.finish("diverged", error=f"round {r}: {e}", diverged_round=r)
        elif isinstance(e, KeyboardInterrupt):
            writer.finish("interrupted", error=f"interrupted in round {r}")
        elif isinstance(e, Exception):
            writer.finish("failed", error=f"round {r}: {type(e).__name__}: {e}".splitlines()[0])
        raise
    finally:
        state.backend.close()
        writer.close()
