"""Entropy-based advantage shaping (Cheng et al. 2025, "Reasoning with Exploration: An Entropy
Perspective", arXiv 2506.14758; spec §15).

An advantage stage: every valid token's advantage gains a bonus from its (detached) entropy,
capped so that it never flips the sign of A:

    A'_t = A_t + min(alpha sg(h_t), |A_t| / kappa)          kappa > 1

A token with A = 0 gets nothing (its cap is 0); with A < 0 the bonus is at most |A| / kappa,
so A' <= A (1 - 1/kappa) < 0. h is the current policy's token entropy in the loss call (equal
to the rollout policy's on the round's first minibatch), detached: the bonus shapes the credit,
it adds no entropy gradient. alpha and kappa are the paper's GRPO values as recalled
(UNVERIFIED: no public code; both exposed).

Run: entropyctl train intervention=entropy_advantage
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.interventions import InterventionError, register
from entropyctl.maths.batch import TokenBatch
from entropyctl.maths.losses import masked_mean


@dataclass
class EntropyAdvantageConfig:
    alpha: float = 0.4  # the paper's alpha for GRPO (UNVERIFIED)
    kappa: float = 2.0  # the paper's kappa: the bonus is at most |A| / kappa (UNVERIFIED)

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise InterventionError(f"entropy_advantage.alpha is {self.alpha}; give alpha >= 0")
        if self.kappa <= 1:
            raise InterventionError(f"entropy_advantage.kappa is {self.kappa}; give kappa > 1 "
                                    "(at kappa <= 1 the bonus could flip a negative advantage)")


def entropy_bonus_advantage(adv: Tensor, h: Tensor, mask: Tensor, alpha: float, kappa: float
                            ) -> tuple[Tensor, Tensor]:
    """(A', bonus), both (B, T): A + min(alpha sg(h), |A| / kappa) on valid tokens."""
    bonus = torch.minimum(alpha * h.detach(), adv.abs() / kappa) * mask
    return adv + bonus, bonus


@register("entropy_advantage", EntropyAdvantageConfig, stage="advantage")
def entropy_advantage(b: TokenBatch, cfg: EntropyAdvantageConfig) -> tuple[TokenBatch, dict[str, Tensor]]:
    """`b` with the shaped advantage; {"entropy_advantage/bonus": mean bonus over valid tokens,
    "entropy_advantage/frac_capped": share of valid tokens with A != 0 where |A| / kappa binds}."""
    adv, bonus = entropy_bonus_advantage(b.adv, b.h, b.mask, cfg.alpha, cfg.kappa)
    capped = (cfg.alpha * b.h.detach() > b.adv.abs() / cfg.kappa) & (b.adv != 0)
    return b.replace(adv=adv), {
        "entropy_advantage/bonus": masked_mean(bonus, b.mask),
        "entropy_advantage/frac_capped": masked_mean(capped.float(), b.mask),
    }
