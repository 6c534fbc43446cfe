"""GSPO: Group Sequence Policy Optimization (Zheng et al. 2025, arXiv 2507.18071; spec §15;
reference verl `compute_policy_loss_gspo`, the "GSPO-token" form).

The importance ratio is the length-normalised sequence ratio, clipped per sequence, while the
gradient still flows per token:

    s_i = exp((1/|y_i|) sum_t (logp_t - old_logp_t))          over the valid tokens of y_i
    r~_{i,t} = sg(s_i) * exp(logp_t - sg(logp_t))             value s_i, d r~/d logp_t = s_i
    l_t = max(-A r~, -A clamp(r~, 1 - eps_low, 1 + eps_high))

Every token of a sequence has the same ratio, so the clip binds for the whole sequence or for
none of it (with a sequence-level A). As in verl, log r~ is capped at 10 and there is no dual clip.
verl aggregates GSPO with `seq-mean-token-mean` whatever the run's mode (the paper's objective
is a mean over sequences), so `agg_mode` sets the run's aggregation; null keeps optim.agg_mode.

The paper's clip range (3e-4 / 4e-4) is tiny because s_i is an average over tokens: it only
acts once training is off-policy (later minibatches of a round, or several epochs).

Run: entropyctl train intervention=gspo
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from entropyctl.interventions import InterventionError, RunSettings, register
from entropyctl.maths.batch import TokenBatch
from entropyctl.maths.losses import AGG_MODES, masked_mean

MAX_LOG_RATIO = 10.0  # verl clamps log r~ above at 10 (numerical safety)


@dataclass
class GspoConfig:
    eps_low: float = 3e-4  # verl examples/gspo_trainer clip_ratio_low (GSPO paper v2 §5.1)
    eps_high: float = 4e-4  # clip_ratio_high
    # verl's GSPO forces seq-mean-token-mean; null = the run's optim.agg_mode
    agg_mode: Optional[str] = "seq-mean-token-mean"

    def __post_init__(self) -> None:
        if self.agg_mode is not None and self.agg_mode not in AGG_MODES:
            raise InterventionError(f"gspo.agg_mode is {self.agg_mode!r}; choose one of "
                                    f"{', '.join(AGG_MODES)}, or null for optim.agg_mode")
        if not (0 <= self.eps_low < 1 and self.eps_high >= 0):
            raise InterventionError(f"gspo.eps_low={self.eps_low}, eps_high={self.eps_high}; "
                                    "give 0 <= eps_low < 1 and eps_high >= 0")


def sequence_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(r~ (B, T) with value s_i and per-token gradient, s (B,) detached)."""
    log_s = ((logp - old_logp) * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B,)
    log_r = logp - logp.detach() + log_s.detach()[:, None]
    return torch.exp(torch.clamp(log_r, max=MAX_LOG_RATIO)), torch.exp(log_s.detach())


def gspo_settings(cfg: GspoConfig) -> RunSettings:
    return RunSettings(agg_mode=cfg.agg_mode)


@register("gspo", GspoConfig, stage="surrogate", settings=gspo_settings)
def gspo(b: TokenBatch, cfg: GspoConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token loss (B, T); {"clip/frac": share of valid tokens where the clip binds,
    "gspo/seq_clip_frac": share of responses with a bound token, "gspo/seq_log_ratio": mean
    |log s_i| over responses}."""
    ratio, s = sequence_ratio(b.logp, b.old_logp, b.mask)
    l1 = -b.adv * ratio
    l2 = -b.adv * torch.clamp(ratio, 1.0 - cfg.eps_low, 1.0 + cfg.eps_high)
    bound = (l2 > l1) & b.mask.bool()
    rows = b.mask.sum(1) > 0  # empty responses have no ratio
    return torch.maximum(l1, l2), {
        "clip/frac": masked_mean(bound.float(), b.mask),
        "gspo/seq_clip_frac": bound.any(1)[rows].float().mean() if rows.any() else torch.tensor(0.0),
        "gspo/seq_log_ratio": s[rows].log().abs().mean() if rows.any() else torch.tensor(0.0),
    }
