"""CISPO: clipped importance-sampling-weight policy optimisation (MiniMax-M1, arXiv 2506.13585;
spec §15; reference verl `compute_policy_loss_cispo`).

Instead of clipping the surrogate (which zeroes the gradient of clipped tokens), CISPO clips
the importance weight, detaches it, and multiplies the log-probability by it:

    r = exp(logp - old_logp);  w = sg(clamp(r, 1 - eps_low, hi))
    l_t = -w A_t logp_t          d l / d logp_t = -w A_t: every token keeps a gradient

Bounds: verl's convention, hi = 1 + eps_high (its example: eps_low = 10, so no lower bound in
effect, as MiniMax sets none; eps_high = 0.2). TRL's `cispo` caps the weight at an absolute
`epsilon_high` instead (5.0 suggested, after ScaleRL) with no lower bound: give that cap as
`eps_high_abs` and it replaces 1 + eps_high (leave eps_low at 10 to match TRL exactly).

The loss *value* is -w A logp, not comparable to a PPO loss; its gradient is.

Run: entropyctl train intervention=cispo   (TRL-style: intervention.cispo.eps_high_abs=5.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from entropyctl.interventions import InterventionError, register
from entropyctl.maths.batch import TokenBatch
from entropyctl.maths.losses import masked_mean


@dataclass
class CispoConfig:
    eps_low: float = 10.0  # verl examples/cispo_trainer clip_ratio_low: no lower bound in effect
    eps_high: float = 0.2  # same script clip_ratio_high: weight cap 1 + 0.2
    eps_high_abs: Optional[float] = None  # TRL epsilon_high for loss_type=cispo: an absolute cap

    def __post_init__(self) -> None:
        if self.eps_low < 0 or self.eps_high < 0:
            raise InterventionError(f"cispo.eps_low={self.eps_low}, eps_high={self.eps_high}; both must be >= 0")
        if self.eps_high_abs is not None and self.eps_high_abs <= 0:
            raise InterventionError(f"cispo.eps_high_abs is {self.eps_high_abs}; give a cap > 0 "
                                    "(TRL suggests 5.0), or null for verl's 1 + eps_high")

    @property
    def cap(self) -> float:
        return self.eps_high_abs if self.eps_high_abs is not None else 1.0 + self.eps_high


def cispo_weight(logp: Tensor, old_logp: Tensor, eps_low: float, cap: float) -> tuple[Tensor, Tensor]:
    """(ratio, detached clipped weight), both (B, T)."""
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0)).detach()
    return ratio, torch.clamp(ratio, 1.0 - eps_low, cap)


@register("cispo", CispoConfig, stage="surrogate")
def cispo(b: TokenBatch, cfg: CispoConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token loss (B, T); {"clip/frac": share of valid tokens whose weight was clipped
    (verl), "clip/frac_high": share above the cap}."""
    ratio, w = cispo_weight(b.logp, b.old_logp, cfg.eps_low, cfg.cap)
    return -w * b.adv * b.logp, {
        "clip/frac": masked_mean((w != ratio).float(), b.mask),
        "clip/frac_high": masked_mean((ratio > cfg.cap).float(), b.mask),
    }
