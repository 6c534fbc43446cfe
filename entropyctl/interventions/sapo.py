"""SAPO: soft adaptive policy optimisation (arXiv 2511.20347; spec §15; references verl
`compute_policy_loss_sapo`, TRL `loss_type="sapo"`; the form both implement, UNVERIFIED
against the paper's text).

A smooth sigmoid gate replaces the hard clip:

    r = exp(logp - old_logp);  tau = tau_pos if A > 0 else tau_neg
    l_t = -(4 / tau) sigma(tau (r - 1)) A_t
    d l / d logp_t = -A_t r w,  w = 4 sigma (1 - sigma) in (0, 1]

On-policy (r = 1) w = 1 and the gradient is plain policy gradient; as r drifts either way w
decays smoothly instead of dropping to 0 at 1 +- eps. tau_neg > tau_pos damps negative-advantage
tokens a little faster (the paper's argument: their gradients spread over many vocabulary
entries). verl and TRL both aggregate SAPO per sequence (`seq-mean-token-mean`), so `agg_mode`
sets the run's aggregation; null keeps optim.agg_mode.

Run: entropyctl train intervention=sapo
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from entropyctl.interventions import InterventionError, RunSettings, register
from entropyctl.maths.batch import TokenBatch
from entropyctl.maths.losses import AGG_MODES, masked_mean


@dataclass
class SapoConfig:
    tau_pos: float = 1.0  # verl actor.tau_pos / TRL sapo_temperature_pos (paper, Qwen3-30B-A3B)
    tau_neg: float = 1.05  # verl actor.tau_neg / TRL sapo_temperature_neg
    agg_mode: Optional[str] = "seq-mean-token-mean"  # verl and TRL; null = optim.agg_mode

    def __post_init__(self) -> None:
        if self.tau_pos <= 0 or self.tau_neg <= 0:
            raise InterventionError(f"sapo.tau_pos={self.tau_pos}, tau_neg={self.tau_neg}; both must be > 0")
        if self.agg_mode is not None and self.agg_mode not in AGG_MODES:
            raise InterventionError(f"sapo.agg_mode is {self.agg_mode!r}; choose one of "
                                    f"{', '.join(AGG_MODES)}, or null for optim.agg_mode")


def sapo_gate(logp: Tensor, old_logp: Tensor, adv: Tensor, tau_pos: float, tau_neg: float
              ) -> tuple[Tensor, Tensor]:
    """(gate (4 / tau) sigma(tau (r - 1)) with gradient, gradient weight 4 sigma (1 - sigma)
    detached), both (B, T)."""
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))
    tau = torch.where(adv > 0, torch.full_like(adv, tau_pos), torch.full_like(adv, tau_neg))
    sig = torch.sigmoid(tau * (ratio - 1.0))
    return sig * (4.0 / tau), (4.0 * sig * (1.0 - sig)).detach()


def sapo_settings(cfg: SapoConfig) -> RunSettings:
    return RunSettings(agg_mode=cfg.agg_mode)


@register("sapo", SapoConfig, stage="surrogate", settings=sapo_settings)
def sapo(b: TokenBatch, cfg: SapoConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token loss (B, T); {"sapo/gate_weight": mean w over valid tokens (1 on-policy),
    "sapo/frac_gated": share of valid tokens with w < 1/2, the soft gate's "clipped" share}."""
    gate, w = sapo_gate(b.logp, b.old_logp, b.adv, cfg.tau_pos, cfg.tau_neg)
    return -gate * b.adv, {
        "sapo/gate_weight": masked_mean(w, b.mask),
        "sapo/frac_gated": masked_mean((w < 0.5).float(), b.mask),
    }
