"""Adaptive entropy control (Skywork-OR1, He et al. 2025, arXiv 2505.22312; spec §15;
references Skywork-OR1 `EntController` and TRL `use_adaptive_entropy`).

A penalty stage with state: an entropy bonus -c h per token (aggregated with the surrogate, as
`entropy_bonus`) whose coefficient c a controller steers toward a target entropy H*:

    after each optimiser step, with H the step's mean token entropy (current policy):
        c <- min(c + delta, c_max)   if H <= H*
        c <- max(c - delta, c_min)   otherwise
    the bonus applies (with the updated c) only while the last measured H <= H*

so the bonus switches off as soon as entropy is back above the target. Skywork-OR1 updates once
per training step, which in its scripts is one optimiser step (mini-batch = rollout batch); TRL
updates every optimiser step, as here (the lab takes 8 per round). The first step applies no
bonus (nothing measured yet; Skywork starts from c = 0 anyway). Skywork compares H < H*, TRL and
the spec H <= H*; the spec's form is used.

The controller's state (c and the last H) is part of the run's checkpoint.

Run: entropyctl train intervention=adaptive_entropy
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from entropyctl.interventions import InterventionError, register
from entropyctl.interventions._control import StepController
from entropyctl.maths.batch import TokenBatch
from entropyctl.maths.losses import masked_mean


@dataclass
class AdaptiveEntropyConfig:
    target: float = 0.2  # H* in nats: Skywork-OR1 or1_scripts TGT_ENTROPY (TRL entropy_target too)
    coef_init: float = 0.0  # Skywork ENTROPY_COEFF (TRL entropy_coef is the initial value)
    delta: float = 1e-4  # Skywork DELTA_ENT_COEF (TRL default 0.005)
    coef_min: float = 0.0  # Skywork MIN_ENT_COEF
    coef_max: float = 5e-3  # Skywork MAX_ENT_COEF (TRL default 1.0)

    def __post_init__(self) -> None:
        if self.target < 0 or self.delta < 0:
            raise InterventionError(f"adaptive_entropy.target={self.target}, delta={self.delta}; both must be >= 0")
        if not self.coef_min <= self.coef_init <= self.coef_max:
            raise InterventionError(
                f"adaptive_entropy.coef_init={self.coef_init} is outside [coef_min, coef_max] = "
                f"[{self.coef_min}, {self.coef_max}]; give coef_min <= coef_init <= coef_max")


class EntropyCoefController(StepController):
    """c and the last measured entropy; `applied` is the coefficient the loss uses now."""

    FIELDS = ("coef", "last_entropy")

    def __init__(self, cfg: AdaptiveEntropyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.coef = float(cfg.coef_init)
        self.last_entropy: Optional[float] = None

    @property
    def applied(self) -> float:
        on = self.last_entropy is not None and self.last_entropy <= self.cfg.target
        return self.coef if on else 0.0

    def update(self, measured: float) -> None:
        c = self.cfg
        if measured <= c.target:
            self.coef = min(self.coef + c.delta, c.coef_max)
        else:
            self.coef = max(self.coef - c.delta, c.coef_min)
        self.last_entropy = measured


@register("adaptive_entropy", AdaptiveEntropyConfig, stage="penalty", controller=EntropyCoefController)
def adaptive_entropy(b: TokenBatch, cfg: AdaptiveEntropyConfig, ctrl: EntropyCoefController
                     ) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token penalty (B, T) = -c_applied h; records this call's mean entropy for the step's
    update. {"adaptive_entropy/coef": c, "adaptive_entropy/coef_applied", "adaptive_entropy/error":
    this call's mean entropy - target}."""
    h = masked_mean(b.h.detach(), b.mask)
    ctrl.observe(h.item())
    coef = ctrl.applied
    return -coef * b.h, {
        "adaptive_entropy/coef": torch.tensor(ctrl.coef),
        "adaptive_entropy/coef_applied": torch.tensor(coef),
        "adaptive_entropy/error": h - cfg.target,
    }
