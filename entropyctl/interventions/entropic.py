"""EntroPIC: entropy stabilisation with a PI controller (arXiv 2511.15248; spec §15; reference
yk7333/EntroPIC `compute_policy_loss_entropic` and its actor's controller).

A penalty stage with state. Each loss call measures the error e = H - H* (H: token-mean entropy
of the current policy over the call's valid tokens) and sets

    alpha = clip(K_p e + K_i I, -1, 1)        I = sum of the errors of the steps so far
    term  = alpha * mean over high-probability tokens of (-r |A|)
            high-probability: valid and p > prob_threshold (logp > log 0.95);  r = exp(logp - old_logp)

added to the surrogate's aggregated loss (the reference adds it to verl's vanilla PPO loss,
which is `grpo` here). Sign: entropy above target -> alpha > 0 -> minimising -alpha r |A| raises
the confident tokens' probability (entropy falls); below target -> alpha < 0 pushes them down
(entropy rises). I grows by the step's mean error after each optimiser step; the reference adds
each micro-batch's error weighted by its share of the mini-batch, which is the same sum.

The reference aggregates the term with the run's loss_agg_mode over the high-probability
tokens; its script uses verl's default token-mean, the mean used here whatever optim.agg_mode.
The integral I is part of the run's checkpoint.

Run: entropyctl train intervention=entropic
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.interventions import InterventionError, register
from entropyctl.interventions._control import StepController
from entropyctl.maths.batch import TokenBatch
from entropyctl.maths.losses import masked_mean

ALPHA_LIMIT = 1.0  # the reference clips alpha to [-1, 1]


@dataclass
class EntropicConfig:
    target: float = 0.1  # H* in nats: run_entropic.sh actor.target_entropy
    k_p: float = 1.0  # actor.entropy_control_p
    k_i: float = 0.01  # actor.entropy_control_i
    prob_threshold: float = 0.95  # compute_policy_loss_entropic high_prob_thresh

    def __post_init__(self) -> None:
        if self.target < 0 or self.k_p < 0 or self.k_i < 0:
            raise InterventionError(f"entropic.target={self.target}, k_p={self.k_p}, k_i={self.k_i}; "
                                    "all must be >= 0")
        if not 0 < self.prob_threshold < 1:
            raise InterventionError(f"entropic.prob_threshold is {self.prob_threshold}; give a probability in (0, 1)")


class PiController(StepController):
    """The integral of the entropy error, one term per optimiser step."""

    FIELDS = ("integral",)

    def __init__(self, cfg: EntropicConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.integral = 0.0

    def alpha(self, error: float) -> float:
        a = self.cfg.k_p * error + self.cfg.k_i * self.integral
        return min(max(a, -ALPHA_LIMIT), ALPHA_LIMIT)

    def update(self, measured: float) -> None:
        self.integral += measured


def entropic_term(logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, alpha: float,
                  prob_threshold: float) -> tuple[Tensor, Tensor]:
    """(alpha * token-mean of -r |A| over the high-probability tokens (0 when there are none),
    the (B, T) high-probability mask)."""
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))
    high = mask * (logp.detach() > math.log(prob_threshold)).to(mask.dtype)
    return alpha * masked_mean(-ratio * adv.abs(), high), high


@register("entropic", EntropicConfig, stage="penalty", controller=PiController)
def entropic(b: TokenBatch, cfg: EntropicConfig, ctrl: PiController) -> tuple[Tensor, dict[str, Tensor]]:
    """Scalar term (aggregated over its own tokens); {"entropic/alpha", "entropic/error" (H - H*
    of this call), "entropic/integral", "entropic/frac_high" (share of valid tokens with p >
    prob_threshold)}."""
    error = (masked_mean(b.h.detach(), b.mask) - cfg.target).item()
    alpha = ctrl.alpha(error)
    ctrl.observe(error)
    term, high = entropic_term(b.logp, b.old_logp, b.adv, b.mask, alpha, cfg.prob_threshold)
    return term, {
        "entropic/alpha": torch.tensor(alpha),
        "entropic/error": torch.tensor(error),
        "entropic/integral": torch.tensor(ctrl.integral),
        "entropic/frac_high": masked_mean(high, b.mask),
    }
