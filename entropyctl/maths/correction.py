"""Train/inference mismatch and rollout correction (spec §14).

The rollout engine samples token y_t with log-prob `logp_roll` (vLLM's processed log-probs:
temperature applied); the torch policy rescoring the same token before the update gives
`old_logp`. Per token δ = old_logp − logp_roll and ρ = exp(δ).

`mismatch_metrics` logs the raw disagreement (before any correction). `correction_weights`
turns it into a detached per-token weight that multiplies the surrogate loss, reweighting
toward the engine's distribution (the PPO ratio stays π_θ/π_old with π_old the rescoring):

    token_tis  w_t = min(ρ_t, C)                       truncated IS (Yao et al. 2025)
    token_mis  w_t = 1 if 1/C ≤ ρ_t ≤ C else 0          masked IS ("IcePop")
    seq_tis    w_i = min(exp(Σ_t δ_it), C)              one weight per response
    seq_mis    w_i = 1 if 1/C ≤ exp(mean_t δ_it) ≤ C    geometric-mean rejection

A masked token keeps its place in the aggregation's denominator (the weight multiplies its
loss; the token count is unchanged), as the spec's "the weight multiplies each token's
surrogate loss" reads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from entropyctl.config import ROLLOUT_CORRECTIONS as CORRECTIONS


def log_ratio(old_logp: Tensor, logp_roll: Tensor, mask: Tensor) -> Tensor:
    """δ (B, T) = old_logp − logp_roll on valid tokens, 0 elsewhere (padding never counts)."""
    return torch.where(mask.bool(), old_logp - logp_roll, torch.zeros_like(old_logp))


def mismatch_metrics(old_logp: Tensor, logp_roll: Tensor, mask: Tensor) -> dict[str, float]:
    """The raw mismatch of one round: k1 and k3 estimates of KL(π_roll ‖ π_train) per token,
    quantiles of ρ over valid tokens, and the per-response log-ratio Σ_t δ."""
    valid = mask.bool()
    d = log_ratio(old_logp, logp_roll, mask).double()
    n = valid.sum().clamp(min=1)
    rho = d[valid].exp()
    k3 = (d.exp() - 1 - d) * valid  # (B, T), 0 on padding since exp(0) - 1 - 0 = 0
    if rho.numel() == 0:
        rho = torch.ones(1, dtype=torch.float64)
    q = torch.quantile(rho, torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64))
    seq = d.sum(1)  # (B,)
    return {
        "mismatch/kl_k1": (-d.sum() / n).item() + 0.0,  # + 0.0: no "-0.0" in the log when d is 0
        "mismatch/kl_k3": (k3.sum() / n).item(),
        "mismatch/ratio_p01": q[0].item(),
        "mismatch/ratio_p50": q[1].item(),
        "mismatch/ratio_p99": q[2].item(),
        "mismatch/ratio_max": rho.max().item(),
        "mismatch/seq_logratio_mean": seq.mean().item(),
        "mismatch/seq_logratio_absmax": seq.abs().max().item() if seq.numel() else 0.0,
    }


def correction_weights(old_logp: Tensor, logp_roll: Tensor, mask: Tensor, mode: str,
                       threshold: float) -> tuple[Tensor, float]:
    """(w (B, T) detached, share corrected): the weight of each token's surrogate loss and the
    share of valid tokens (token_*) or of responses (seq_*) that were truncated or masked.
    `mode` is one of CORRECTIONS other than none; `threshold` is C > 1."""
    valid = mask.bool()
    d = log_ratio(old_logp, logp_roll, mask).detach()
    log_c = math.log(threshold)
    if mode == "token_tis":
        w = d.clamp(max=log_c).exp()  # min(ρ, C) without overflowing exp
        hit = (d > log_c) & valid
        share = hit.sum().item() / max(1, int(valid.sum()))
    elif mode == "token_mis":
        keep = d.abs() <= log_c  # 1/C ≤ ρ ≤ C
        w = keep.to(d.dtype)
        share = (~keep & valid).sum().item() / max(1, int(valid.sum()))
    elif mode in ("seq_tis", "seq_mis"):
        n_tok = valid.sum(1)  # (B,)
        if mode == "seq_tis":
            s = d.sum(1)
            w_seq = s.clamp(max=log_c).exp()
            hit = s > log_c
        else:
            s = d.sum(1) / n_tok.clamp(min=1)  # log of the geometric-mean ratio
            hit = s.abs() > log_c
            w_seq = (~hit).to(d.dtype)
        w = w_seq[:, None].expand_as(d)
        rows = n_tok > 0
        share = (hit & rows).sum().item() / max(1, int(rows.sum()))
    else:
        raise ValueError(f"unknown rollout correction {mode!r}; choose one of {CORRECTIONS}")
    return w * mask, share
