"""Clip-Cov (Cui et al. 2025, arXiv 2505.22617; spec §1.4): detach a random few of the
tokens whose centred covariance (A - mean A)(logp - mean logp) lies in (cov_low, cov_high).

Same as the clipped PPO surrogate except: the chosen tokens get weight 0 (no value, no
gradient) while the denominator still counts them, and there is no dual clip. Selection is
per loss call by default (the reference's micro-batch scope); `scope: minibatch | round`
picks over a wider scope (interventions/__init__.py). Picks use torch's global RNG, which
the run seeds, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import check_param, check_ppo_clip, check_scope, register
from entropyctl.maths.losses import centred_cov, masked_mean, ppo_terms


@dataclass
class ClipCovConfig:
    # Share (not percent) of valid tokens to detach. The authors' 7B/32B scripts use 2e-4, which
    # detaches ~1 token of the lab's ~600 per minibatch; 0.02 is what the lab needs to act.
    frac: float = 0.02
    cov_low: float = 1.0  # omega_low
    cov_high: float = 5.0  # omega_high
    eps_low: float = 1.0  # the authors' Clip-Cov runs set the PPO clip to 1/1: clamp(r, 0, 2)
    eps_high: float = 1.0
    scope: str = "micro_batch"  # micro_batch (per loss call, reference) | minibatch | round

    def __post_init__(self) -> None:
        check_param("clip_cov", self, "frac", 0 < self.frac <= 1, "a share in (0, 1]")
        check_param("clip_cov", self, "cov_high", self.cov_low < self.cov_high,
                    f"above cov_low={self.cov_low} (the band is (cov_low, cov_high))")
        # eps_low = 1 is the authors' setting (clamp(r, 0, 2)), so [0, 1] here
        check_ppo_clip("clip_cov", self, eps_low_closed=True)
        check_scope("clip_cov", self.scope)


def clip_cov_candidates(cov: Tensor, valid: Tensor, cov_low: float, cov_high: float) -> Tensor:
    """(B, T) bool: valid tokens with cov_low < cov < cov_high (strict)."""
    return valid & (cov > cov_low) & (cov < cov_high)


def _candidates(b: TokenBatch, cfg: ClipCovConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(L1, L2, clipped_by_ppo, candidates), all (B, T)."""
    _, l1, l2 = ppo_terms(b.logp, b.old_logp, b.adv, cfg.eps_low, cfg.eps_high)
    valid = b.mask.bool()
    clipped_by_ppo = (l2 > l1) & valid  # the PPO clip already handles these
    cov = centred_cov(b.logp, b.adv, b.mask)
    return l1, l2, clipped_by_ppo, clip_cov_candidates(cov, valid & ~clipped_by_ppo, cfg.cov_low, cfg.cov_high)


def _pick(cand: Tensor, n_valid: int, frac: float) -> Tensor:
    """(B, T) bool: max(1, floor(frac * N)) candidates, uniformly at random."""
    n_clip = max(1, int(frac * n_valid))
    idx = cand.flatten().nonzero().squeeze(1)
    out = torch.zeros(cand.numel(), dtype=torch.bool, device=cand.device)
    out[idx[torch.randperm(idx.numel())[:n_clip]]] = True
    return out.view_as(cand)


def clip_cov_select(b: TokenBatch, cfg: ClipCovConfig) -> Tensor:
    """(B, T) bool: the tokens Clip-Cov detaches, picked over all tokens of `b`."""
    *_, cand = _candidates(b, cfg)
    return _pick(cand, int(b.mask.sum().item()), cfg.frac)


@register("clip_cov", ClipCovConfig, stage="surrogate", select=clip_cov_select)
def clip_cov(b: TokenBatch, cfg: ClipCovConfig, chosen: Tensor | None = None
             ) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token loss (B, T), {"clip/frac", "clip_cov/frac_detached", "clip_cov/candidates"}.
    `chosen`: this call's rows of a selection made over a wider scope (None = pick here)."""
    l1, l2, clipped_by_ppo, cand = _candidates(b, cfg)
    n_valid = int(b.mask.sum().item())
    if chosen is None:
        chosen = _pick(cand, n_valid, cfg.frac)
    chosen = chosen & b.mask.bool()
    loss = torch.maximum(l1, l2) * (~chosen).to(l1.dtype)
    return loss, {
        "clip/frac": masked_mean(clipped_by_ppo.float(), b.mask),
        "clip_cov/frac_detached": torch.tensor(chosen.sum().item() / max(1, n_valid)),
        "clip_cov/candidates": torch.tensor(float(cand.sum().item())),
    }
