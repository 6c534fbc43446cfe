"""GRPO's policy loss: the PPO clipped surrogate with decoupled bounds and dual clip
(Shao et al. 2024, arXiv 2402.03300; verl `vanilla`; spec §5.2). The baseline every other
surrogate departs from, and the default when no surrogate is selected.

    r = exp(logp - old_logp);  l = max(-A r, -A clamp(r, 1 - eps_low, 1 + eps_high))
    if A < 0: l = min(l, -A c)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import check_ppo_clip, register
from entropyctl.maths.losses import dual_clip, masked_mean, ppo_terms


@dataclass
class GrpoConfig:
    eps_low: float = 0.2  # verl clip_ratio_low
    eps_high: float = 0.2  # verl clip_ratio_high
    clip_c: float = 3.0  # verl clip_ratio_c (dual clip for A < 0; must be > 1)

    def __post_init__(self) -> None:
        check_ppo_clip("grpo", self)


@register("grpo", GrpoConfig, stage="surrogate")
def grpo(b: TokenBatch, cfg: GrpoConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token loss (B, T) and {"clip/frac": share of valid tokens with L2 > L1}."""
    _, l1, l2 = ppo_terms(b.logp, b.old_logp, b.adv, cfg.eps_low, cfg.eps_high)
    loss = dual_clip(torch.maximum(l1, l2), b.adv, cfg.clip_c)
    return loss, {"clip/frac": masked_mean((l2 > l1).float(), b.mask)}
