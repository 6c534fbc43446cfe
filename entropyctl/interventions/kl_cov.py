"""KL-Cov (Cui et al. 2025, arXiv 2505.22617; spec §1.5; verl `compute_policy_loss_kl_cov`):
penalise |logp - old_logp| on the few tokens with the largest centred covariance
(A - mean A)(logp - mean logp), and drop the PPO clip everywhere.

Differs from the clipped surrogate: no clip at all (l = -A r), plus coef * |logp - old_logp|
on the k = max(1, floor(frac * N)) valid tokens with the largest covariance (sign matters,
not |cov|). `frac` is a fraction (verl `kl_cov_ratio`), not the PRIME-RL fork's percentage.
Pitfall (spec §1.7): |x| has zero gradient at 0, so on a fully on-policy loss call (the first
minibatch of a round) the penalty has no effect; it acts from the second minibatch on.
Selection is per loss call by default (reference); `scope: minibatch | round` widens it.

Run: entropyctl train intervention=kl_cov
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import check_param, check_scope, register
from entropyctl.maths.losses import centred_cov, masked_mean, top_k_mask


@dataclass
class KlCovConfig:
    # The authors' 7B script: 2e-3 (k_percent 0.2 %); 32B and verl's library default: 2e-4. Both
    # penalise ~1 token of the lab's ~600 per minibatch; 0.05 is what shows in the lab (YAML).
    frac: float = 0.05
    coef: float = 1.0  # beta (ppo_kl_coef): 1 in all the authors' scripts; verl's YAML says 0.1
    scope: str = "micro_batch"  # micro_batch (per loss call, reference) | minibatch | round

    def __post_init__(self) -> None:
        check_param("kl_cov", self, "frac", 0 < self.frac <= 1, "a share in (0, 1]")
        check_param("kl_cov", self, "coef", 0 <= self.coef < float("inf"), "a number >= 0")
        check_scope("kl_cov", self.scope)


def kl_cov_select(b: TokenBatch, cfg: KlCovConfig) -> Tensor:
    """(B, T) bool: the max(1, floor(frac * N)) valid tokens with the largest covariance."""
    n_valid = int(b.mask.sum().item())
    k = max(1, int(n_valid * cfg.frac))
    return top_k_mask(centred_cov(b.logp, b.adv, b.mask), b.mask.bool(), k)


@register("kl_cov", KlCovConfig, stage="surrogate", select=kl_cov_select)
def kl_cov(b: TokenBatch, cfg: KlCovConfig, chosen: Tensor | None = None
           ) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token loss (B, T), {"kl_cov/frac_penalised", "kl_cov/abs_log_ratio"}.
    `chosen`: this call's rows of a selection made over a wider scope (None = pick here)."""
    log_ratio = b.logp - b.old_logp
    ratio = torch.exp(torch.clamp(log_ratio, -20.0, 20.0))
    if chosen is None:
        chosen = kl_cov_select(b, cfg)
    chosen = chosen & b.mask.bool()
    loss = -b.adv * ratio + cfg.coef * log_ratio.abs() * chosen.to(ratio.dtype)
    return loss, {
        "kl_cov/frac_penalised": masked_mean(chosen.float(), b.mask),
        "kl_cov/abs_log_ratio": masked_mean(log_ratio.detach().abs(), b.mask),  # verl ppo_kl
    }
