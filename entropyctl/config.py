"""Config schemas: one dataclass per conf/ group. Types and the only defaults live here.

The YAML files under conf/ select and override these values (with a comment naming the
source of each value); Hydra checks every override against these types, so a typo or a
wrong type fails at composition with a message naming the key. Intervention parameters are
not here: each intervention's dataclass sits next to its function in
`entropyctl/interventions/<name>.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from entropyctl.errors import BadInput

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "bfloat16", "float16")
LOSS_NORMS = ("minibatch", "micro_batch")


def _check_device(key: str, value: str) -> None:
    """auto | cpu | cuda | cuda:N. Availability is checked when the run is set up."""
    if value in DEVICES or (value.startswith("cuda:") and value[5:].isdigit()):
        return
    raise BadInput(f"{key}={value} is not a device; give auto, cpu, cuda or cuda:N")


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
    # Weights and activations of the policy (and the frozen base); log-probs and entropy are
    # always computed in float32 from these logits.
    dtype: str = "float32"
    # Recompute each layer's activations in the backward pass (less memory, ~30% more time).
    gradient_checkpointing: bool = False
    # Where the frozen base model sits (None = with the policy): e.g. cpu to free the GPU.
    base_device: Optional[str] = None
    # Log kl/base_k3 (KL of the policy to the base model) every round. The base model is
    # loaded only when this is on or an intervention needs its log-probs (kl_anchor; the
    # metric is then logged anyway).
    base_kl: bool = True
    # MiB of float32 logits held at once: log-probs and entropy are computed over chunks of
    # tokens this size (64 x 1024 tokens x 152k vocab would be 40 GB in one piece).
    logits_chunk_mb: float = 512.0

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise BadInput(f"model.dtype={self.dtype} is not supported; give one of {', '.join(DTYPES)}")
        if self.base_device is not None:
            _check_device("model.base_device", self.base_device)
        if not self.logits_chunk_mb > 0:
            raise BadInput(f"model.logits_chunk_mb={self.logits_chunk_mb} is out of range; give a size in MiB > 0")


# ModelConfig settings of how a run holds and runs the model, not of its weights: the lab's
# base-model cache key (lab/pretrain.base_hash) leaves them out, so they never re-pretrain.
MODEL_RUNTIME_KEYS = ("dtype", "gradient_checkpointing", "base_device", "base_kl", "logits_chunk_mb")


@dataclass
class FormatConfig:
    name: str = "equals"
    prefix: str = "="  # text between the prompt and the answer digits
    share: float = 1.0  # share of the pretraining corpus written in this format
    correct: float = 1.0  # share of this format's corpus answers that are correct


def _lab_formats() -> List[FormatConfig]:
    # Issue 2: the common format is the least accurate, so RL has a reason to move off it.
    return [
        FormatConfig("equals", "=", 0.55, 0.35),
        FormatConfig("arrow", " => answer ", 0.30, 0.50),
        FormatConfig("hash", " #### ", 0.15, 0.75),
    ]


@dataclass
class TaskConfig:
    name: str = "addition"
    digits: int = 2  # operands are fixed-width, zero-padded
    formats: List[FormatConfig] = field(default_factory=_lab_formats)
    # Wrong corpus answers are the sum plus one of these (never below 0).
    error_offsets: List[int] = field(default_factory=lambda: [-10, -2, -1, 1, 2, 10])
    max_new_tokens: int = 16
    n_val: int = 256  # fixed validation prompts, held out of training
    val_seed: int = 1234


@dataclass
class RolloutConfig:
    backend: str = "torch"  # torch (KV-cache sampler) | vllm (GPU, later)
    prompts_per_round: int = 64
    group_size: int = 8  # G completions per prompt
    temperature: float = 1.0
    # DAPO dynamic sampling (spec §3.3): drop groups whose rewards are all equal, refill.
    dynamic_sampling: bool = False
    max_gen_batches: int = 4


@dataclass
class AdvantageConfig:
    estimator: str = "grpo"  # grpo | dr_grpo (no std normalisation)
    eps: float = 1e-6  # spec §5.1


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    minibatches: int = 8  # optimiser steps per epoch over the round's rollouts
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


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # {intervention name: its parameters}; validated against each intervention's dataclass.
    intervention: Dict[str, Any] = field(default_factory=dict)
    sweep: str = "default"
    seed: int = 0
    rounds: int = 100
    runs_dir: str = "runs"
    # Pretrained lab base models, keyed by config hash; shared by every sweep under runs_dir.
    cache_dir: str = "${runs_dir}/.cache"
    threads: int = 0  # torch intra-op threads; 0 = torch's default
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
        _check_device("device", self.device)


def register_schemas() -> None:
    ConfigStore.instance().store(name="config_schema", node=TrainConfig)
