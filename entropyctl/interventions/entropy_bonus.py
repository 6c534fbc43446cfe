"""Entropy bonus (verl actor.entropy_coeff; spec §5.3): loss -= coef * agg(h).

A penalty stage: adds -coef * h per token, aggregated with the run's mode together with the
surrogate, with gradient through the current forward pass's entropy. A sensitive knob: per
Cui et al.'s summary, 1e-4..1e-3 barely changes collapse and 0.01 can make entropy explode.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import check_param, register
from entropyctl.maths.losses import masked_mean


@dataclass
class EntropyBonusConfig:
    # c_H. verl's default 0 turns the bonus off; the literature's 1e-4..1e-3 barely acts in the
    # lab, 0.02 visibly slows collapse.
    coef: float = 0.02

    def __post_init__(self) -> None:
        check_param("entropy_bonus", self, "coef", abs(self.coef) < float("inf"), "a finite number")


@register("entropy_bonus", EntropyBonusConfig, stage="penalty")
def entropy_bonus(b: TokenBatch, cfg: EntropyBonusConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token penalty (B, T) = -coef * h, and {"entropy_bonus/h": masked mean of h}."""
    return -cfg.coef * b.h, {"entropy_bonus/h": masked_mean(b.h.detach(), b.mask)}
