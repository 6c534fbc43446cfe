"""Shared loss pieces: log-probs, the PPO clipped surrogate, loss aggregation and KL
estimators. Interventions build on these instead of copying each other (spec §3.2, §5)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from entropyctl.maths.entropy import entropy_from_logits

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def logprobs_from_logits(logits: Tensor, ids: Tensor) -> Tensor:
    """(B, T, V), (B, T) -> (B, T): log-prob of each given token."""
    return torch.log_softmax(logits, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)


def chunked_logprobs_entropy(hidden: Tensor, head: Callable[[Tensor], Tensor], ids: Tensor,
                             temperature: float, chunk_tokens: int, entropy: bool = True
                             ) -> tuple[Tensor, Tensor | None]:
    """(B, T, H) final hidden states, the output head, (B, T) ids -> (logp (B, T), h (B, T) or
    None) in float32, `chunk_tokens` positions at a time: the float32 logits of one chunk
    exist at once, never those of the batch. Each position's softmax is over its own vocab
    row, so chunking positions changes no value. With gradients on, each chunk is
    recomputed in the backward pass (activation checkpointing) instead of keeping its logits."""
    B, T, H = hidden.shape
    flat, flat_ids = hidden.reshape(B * T, H), ids.reshape(B * T)

    def piece(x: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        z = head(x).float() / temperature
        lp = torch.log_softmax(z, dim=-1).gather(-1, i[:, None]).squeeze(-1)
        return lp, entropy_from_logits(z) if entropy else torch.zeros_like(lp)

    grad = torch.is_grad_enabled() and hidden.requires_grad
    outs = [checkpoint(piece, flat[s:s + chunk_tokens], flat_ids[s:s + chunk_tokens], use_reentrant=False)
            if grad else piece(flat[s:s + chunk_tokens], flat_ids[s:s + chunk_tokens])
            for s in range(0, B * T, chunk_tokens)]
    logp = torch.cat([o[0] for o in outs]).view(B, T)
    return logp, torch.cat([o[1] for o in outs]).view(B, T) if entropy else None


def call_weight(call_mask: Tensor, minibatch_mask: Tensor, mode: str) -> Tensor:
    """Weight of one loss call's aggregated loss so that the weighted calls of a minibatch add
    up to the mode applied to the whole minibatch at once (spec §3.2, the global path):
    token-mean: the call's share of the minibatch's valid tokens; the seq-mean modes: its
    share of non-empty responses; seq-mean-token-sum-norm (a sum over a constant C): 1.
    A 0-dim tensor on the masks' device (no host sync)."""
    if mode == "token-mean":
        return call_mask.sum() / minibatch_mask.sum().clamp(min=1)
    if mode in ("seq-mean-token-sum", "seq-mean-token-mean"):
        rows = (call_mask.sum(1) > 0).sum()
        return rows / (minibatch_mask.sum(1) > 0).sum().clamp(min=1)
    if mode == "seq-mean-token-sum-norm":
        return torch.ones((), device=call_mask.device)
    raise ValueError(f"unknown optim.agg_mode {mode!r}; choose one of {', '.join(AGG_MODES)}")


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def agg_loss(loss: Tensor, mask: Tensor, mode: str, scale: float | None = None,
             loss_mask: Tensor | None = None) -> Tensor:
    """Aggregate a per-token loss (B, T) to a scalar (spec §3.2, the earlier verl form).

    `mask` sets the denominators; `loss_mask` (default: mask) which tokens count in the
    numerator, so a token selection can keep the all-token normaliser."""
    num = loss * (mask if loss_mask is None else loss_mask)
    if mode == "token-mean":
        return num.sum() / mask.sum().clamp(min=1)
    n_tok = mask.sum(1)
    rows = n_tok > 0  # empty responses are skipped, never 0/0
    if mode == "seq-mean-token-sum":
        return num.sum(1)[rows].mean()
    if mode == "seq-mean-token-mean":
        return (num.sum(1)[rows] / n_tok[rows]).mean()
    if mode == "seq-mean-token-sum-norm":
        C = float(scale) if scale is not None else float(loss.shape[1])
        return num.sum() / C
    raise ValueError(f"unknown optim.agg_mode {mode!r}; choose one of {', '.join(AGG_MODES)}")


def ppo_terms(logp: Tensor, old_logp: Tensor, adv: Tensor, eps_low: float, eps_high: float
              ) -> tuple[Tensor, Tensor, Tensor]:
    """(ratio, L1 = -A r, L2 = -A clamp(r, 1-eps_low, 1+eps_high)), all (B, T) (spec §5.2)."""
    ratio = torch.exp(torch.clamp(logp - old_logp, -20.0, 20.0))
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    return ratio, l1, l2


def dual_clip(loss: Tensor, adv: Tensor, clip_c: float) -> Tensor:
    """For A < 0 cap the loss at -A*c (spec §5.2; c > 1)."""
    return torch.where(adv < 0, torch.minimum(loss, -adv * clip_c), loss)


def kl_estimate(logp: Tensor, ref_logp: Tensor, kind: str) -> Tensor:
    """Per-token estimate of KL(pi || ref) on tokens sampled from pi (spec §5.4).

    k1 = lr, k2 = lr^2 / 2, k3 = exp(-lr) + lr - 1 with lr = logp - ref_logp. As in verl's
    `kl_penalty`, only k3 clamps: lr to +-20 inside the exponential and the value to [-10, 10];
    k1, k2, abs (and the k2 gradient of the straight-through forms) use the raw lr, so the most
    drifted tokens keep their value and gradient. A trailing '+' (e.g. 'k3+') keeps the named
    estimator's value with the gradient of k2 (straight-through)."""
    straight = kind.endswith("+")
    base = kind.rstrip("+")
    lr = logp - ref_logp
    if base == "k1":
        value = lr
    elif base == "k2":
        value = 0.5 * lr**2
    elif base == "k3":
        clamped = torch.clamp(lr, -20.0, 20.0)
        value = torch.clamp(torch.exp(-clamped) + clamped - 1.0, -10.0, 10.0)
    elif base == "abs":
        value = lr.abs()
    else:
        raise ValueError(f"unknown KL estimator {kind!r}; choose k1, k2, k3 or abs, optionally with '+'")
    if straight:
        k2 = 0.5 * lr**2
        return value.detach() + k2 - k2.detach()
    return value


def centred_cov(logp: Tensor, adv: Tensor, mask: Tensor) -> Tensor:
    """(A - mean A)(logp - mean logp) per token over the valid tokens (spec §1.3), detached;
    its masked mean is the batch Cov(logp, A)."""
    lp, a = logp.detach(), adv.detach()
    return (a - masked_mean(a, mask)) * (lp - masked_mean(lp, mask)) * mask


def clip_stats(ratio: Tensor, adv: Tensor, mask: Tensor, eps_low: float, eps_high: float
               ) -> dict[str, Tensor]:
    """Shares of valid tokens at each PPO bound (spec §3.1): `clip/frac_high` = A > 0 and
    r > 1 + eps_high (the bound clip-higher raises), `clip/frac_low` = A < 0 and r < 1 - eps_low."""
    r = ratio.detach()
    return {
        "clip/frac_high": masked_mean(((adv > 0) & (r > 1.0 + eps_high)).float(), mask),
        "clip/frac_low": masked_mean(((adv < 0) & (r < 1.0 - eps_low)).float(), mask),
    }


def nll(logp: Tensor, mask: Tensor) -> Tensor:
    """Token-mean negative log-likelihood over `mask` (0 when the mask is empty)."""
    return -masked_mean(logp, mask)


def top_k_mask(score: Tensor, valid: Tensor, k: int) -> Tensor:
    """(B, T) bool: the min(k, #valid) valid tokens with the largest `score` (ties arbitrary,
    as torch.topk). Invalid tokens are never picked, even when every valid score is lower."""
    k = min(k, int(valid.sum().item()))
    out = torch.zeros(valid.shape, dtype=torch.bool, device=valid.device)
    if k <= 0:
        return out
    s = torch.where(valid.bool(), score.detach(), torch.full_like(score, float("-inf")))
    out.view(-1)[s.flatten().topk(k).indices] = True
    return out
