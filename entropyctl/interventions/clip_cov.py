"""Clip-Cov (Cui et al. 2025, arXiv 2505.22617; spec §1.4): detach a random few of the
tokens whose centred covariance (A - mean A)(logp - mean logp) lies in (cov_low, cov_high).

Same as the clipped PPO surrogate except: the chosen tokens get weight 0 (no value, no
gradient) while the denominator still counts them, and there is no dual clip. Selection is
per loss call (the reference's micro-batch scope). Picks use torch's global RNG, which the
run seeds, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.batch import TokenBatch
from entropyctl.interventions import register
from entropyctl.losses import centred_cov, masked_mean, ppo_terms


@dataclass
class ClipCovConfig:
    frac: float = 2e-4  # share (not percent) of valid tokens to detach; authors' 7B/32B scripts
    cov_low: float = 1.0  # omega_low
    cov_high: float = 5.0  # omega_high
    eps_low: float = 1.0  # the authors' Clip-Cov runs set the PPO clip to 1/1: clamp(r, 0, 2)
    eps_high: float = 1.0


def clip_cov_candidates(cov: Tensor, valid: Tensor, cov_low: float, cov_high: float) -> Tensor:
    """(B, T) bool: valid tokens with cov_low < cov < cov_high (strict)."""
    return valid & (cov > cov_low) & (cov < cov_high)


@register("clip_cov", ClipCovConfig, stage="surrogate")
def clip_cov(b: TokenBatch, cfg: ClipCovConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token loss (B, T), {"clip/frac", "clip_cov/frac_detached", "clip_cov/candidates"}."""
    _, l1, l2 = ppo_terms(b.logp, b.old_logp, b.adv, cfg.eps_low, cfg.eps_high)
    valid = b.mask.bool()
    clipped_by_ppo = (l2 > l1) & valid  # the PPO clip already handles these
    cov = centred_cov(b.logp, b.adv, b.mask)
    cand = clip_cov_candidates(cov, valid & ~clipped_by_ppo, cfg.cov_low, cfg.cov_high)
    n_valid = int(b.mask.sum().item())
    n_clip = max(1, int(cfg.frac * n_valid))
    idx = cand.flatten().nonzero().squeeze(1)
    chosen = idx[torch.randperm(idx.numel())[:n_clip]]
    corr = torch.ones_like(b.logp).flatten()
    corr[chosen] = 0.0
    loss = torch.maximum(l1, l2) * corr.view_as(b.logp)
    return loss, {
        "clip/frac": masked_mean(clipped_by_ppo.float(), b.mask),
        "clip_cov/frac_detached": torch.tensor(chosen.numel() / max(1, n_valid)),
        "clip_cov/candidates": torch.tensor(float(idx.numel())),
    }
