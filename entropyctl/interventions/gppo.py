"""GPPO, gradient-preserving clipping (Su et al. 2025, Klear-Reasoner, arXiv 2508.07629;
spec §2; reference `compute_gppo_loss` in suu990901/KlearReasoner).

Same forward values as clip-higher PPO (spec §3.1) with dual clip; what differs is the
gradient of clipped tokens. The bounds are the constants times r / sg(r), so they equal the
constants in value but carry r's gradient: a token clipped at 1 + eps_high (A > 0) keeps
the gradient -A (1 + eps_high) on logp, one clipped at 1 - eps_low (A < 0) keeps
-A (1 - eps_low), instead of 0. The dual clip for A < 0 still zeroes the gradient where it binds.

    lo = (1 - eps_low) r / sg(r),  hi = (1 + eps_high) r / sg(r)
    l = max(-A r, -A clamp(r, lo, hi));  if A < 0: l = min(l, -A c)

Plus, as in the authors' recipe, `sft_coef` * token-mean NLL over the tokens of correct
responses (reward 1, the task's correct score), aggregated on its own and added after the
surrogate's aggregation (`actor.positive_loss_coeff`; 0 turns it off).

Run: entropyctl train intervention=gppo
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import check_param, check_ppo_clip, register
from entropyctl.maths.losses import clip_stats, dual_clip, masked_mean, nll

CORRECT_REWARD = 1.0  # what the task's scoring gives a correct response


@dataclass
class GppoConfig:
    eps_low: float = 0.2  # recipe/dapo/perf_run_dapo_ours_math.sh
    eps_high: float = 0.28
    clip_c: float = 10.0  # clip_ratio_c
    sft_coef: float = 0.1  # actor.positive_loss_coeff: NLL on correct responses; 0 = off

    def __post_init__(self) -> None:
        check_ppo_clip("gppo", self)
        check_param("gppo", self, "sft_coef", 0 <= self.sft_coef < float("inf"), "a number >= 0")


def gppo_surrogate(logp: Tensor, old_logp: Tensor, adv: Tensor, eps_low: float, eps_high: float,
                   clip_c: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(loss, ratio, L1, L2), all (B, T): the gradient-preserving clipped surrogate."""
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))
    carry = ratio / ratio.detach()  # 1 in value, d/dlogp = 1: the bounds keep r's gradient
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, (1.0 - eps_low) * carry, (1.0 + eps_high) * carry)
    return dual_clip(torch.maximum(l1, l2), adv, clip_c), ratio, l1, l2


def gppo_sft(b: TokenBatch, cfg: GppoConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Scalar sft_coef * NLL over the tokens of correct responses (0 when there are none),
    and {"gppo/sft_nll": that NLL}."""
    correct = b.mask * (b.rewards == CORRECT_REWARD).to(b.mask.dtype)[:, None]  # (B, T)
    if cfg.sft_coef == 0 or correct.sum() == 0:
        return b.logp.new_zeros(()), {"gppo/sft_nll": torch.tensor(0.0)}
    value = nll(b.logp, correct)
    return cfg.sft_coef * value, {"gppo/sft_nll": value.detach()}


@register("gppo", GppoConfig, stage="surrogate", extra=gppo_sft)
def gppo(b: TokenBatch, cfg: GppoConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token loss (B, T) and {"clip/frac", "clip/frac_high", "clip/frac_low"} (forward
    values, identical to clip-higher's)."""
    loss, ratio, l1, l2 = gppo_surrogate(b.logp, b.old_logp, b.adv, cfg.eps_low, cfg.eps_high, cfg.clip_c)
    return loss, {"clip/frac": masked_mean((l2 > l1).float(), b.mask),
                  **clip_stats(ratio, b.adv, b.mask, cfg.eps_low, cfg.eps_high)}
