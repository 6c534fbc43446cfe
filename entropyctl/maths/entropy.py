"""Token entropy h (B, T) and the policy entropies H built from it (spec §1.1).

h = logsumexp(z) - sum_v softmax(z)_v z_v, on temperature-scaled logits z: the entropy of
the distribution the rollout sampled from, in nats.
"""

from __future__ import annotations

import torch
from torch import Tensor


def entropy_from_logits(logits: Tensor, probs: Tensor | None = None) -> Tensor:
    """(..., V) -> (...): full-vocabulary entropy in nats, numerically stable. `probs`: the
    logits' softmax when the caller has it already (the same value, bit for bit)."""
    p = torch.softmax(logits, dim=-1) if probs is None else probs
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(-1)


def tokmean(h: Tensor, mask: Tensor) -> Tensor:
    """H_tokmean: pool all valid tokens (verl actor/entropy)."""
    return (h * mask).sum() / mask.sum().clamp(min=1)


def seqmean(h: Tensor, mask: Tensor) -> Tensor:
    """H_seqmean: per-response mean, then mean over non-empty responses (train_entropy/all)."""
    n = mask.sum(1)
    keep = n > 0
    return ((h * mask).sum(1)[keep] / n[keep]).mean()


def seqsum(h: Tensor, mask: Tensor) -> Tensor:
    """Per-response entropy: sum of token entropies of each response, mean over responses."""
    return (h * mask).sum(1).mean()


def first(h: Tensor, mask: Tensor) -> Tensor:
    """Mean entropy at the first completion position of non-empty responses."""
    keep = mask[:, 0] > 0
    return h[keep, 0].mean()
