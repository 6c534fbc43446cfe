"""Clip-higher: DAPO's decoupled clip (Yu et al. 2025, arXiv 2503.14476; spec §3.1).

Same PPO surrogate as `grpo` (spec §5.2) except the upper bound: eps_high = 0.28 > eps_low
= 0.2 lets low-probability tokens with A > 0 grow further before the clip stops their
gradient, and the DAPO scripts' dual clip c = 10. Also logs the share of tokens at each bound.

    r = exp(logp - old_logp);  l = max(-A r, -A clamp(r, 1 - eps_low, 1 + eps_high))
    if A < 0: l = min(l, -A c)

Run: entropyctl train intervention=clip_higher
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import check_ppo_clip, register
from entropyctl.maths.losses import clip_stats, dual_clip, masked_mean, ppo_terms


@dataclass
class ClipHigherConfig:
    eps_low: float = 0.2  # DAPO run_dapo_qwen2.5_32b.sh clip_ratio_low
    eps_high: float = 0.28  # DAPO clip_ratio_high
    clip_c: float = 10.0  # DAPO scripts' clip_ratio_c (dual clip for A < 0)

    def __post_init__(self) -> None:
        check_ppo_clip("clip_higher", self)


@register("clip_higher", ClipHigherConfig, stage="surrogate")
def clip_higher(b: TokenBatch, cfg: ClipHigherConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token loss (B, T) and {"clip/frac", "clip/frac_high", "clip/frac_low"}."""
    ratio, l1, l2 = ppo_terms(b.logp, b.old_logp, b.adv, cfg.eps_low, cfg.eps_high)
    loss = dual_clip(torch.maximum(l1, l2), b.adv, cfg.clip_c)
    return loss, {"clip/frac": masked_mean((l2 > l1).float(), b.mask),
                  **clip_stats(ratio, b.adv, b.mask, cfg.eps_low, cfg.eps_high)}
