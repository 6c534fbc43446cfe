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
        from entropyctl.errors import BadInput

        if self.every < 0:
            raise BadInput(f"probe.every={self.every} is negative; give 0 (off) or a number of rounds")
        for key in ("pass_k_max", "pass_prompts", "kl_samples"):
            if getattr(self, key) < 1:
                raise BadInput(f"probe.{key}={getattr(self, key)} is below 1; give a positive integer")
        if self.kl_samples > self.pass_k_max:
            raise BadInput(f"probe.kl_samples={self.kl_samples} exceeds probe.pass_k_max="
                           f"{self.pass_k_max}; give at most that many")
        if self.repr_prompts < 4:
            raise BadInput(f"probe.repr_prompts={self.repr_prompts} is below 4 (debiased CKA needs 4); "
                           "give 4 or more")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
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


def register_schemas() -> None:
    ConfigStore.instance().store(name="config_schema", node=TrainConfig)
