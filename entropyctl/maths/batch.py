"""What moves between the stages of a round. Shapes: B responses, P prompt tokens (left
padded), T completion tokens (right padded after end-of-sequence)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import Tensor



def pad_to(x: Tensor, length: int, value, left: bool) -> Tensor:
    """(B, L) -> (B, length): `value` added on the left (prompts) or the right (completions)."""
    extra = length - x.shape[1]
    if extra <= 0:
        return x
    pad = torch.full((x.shape[0], extra), value, dtype=x.dtype, device=x.device)
    return torch.cat([pad, x] if left else [x, pad], dim=1)

@dataclass
class Rollout:
    prompt_ids: Tensor  # (B, P) long, left-padded
    prompt_mask: Tensor  # (B, P) long, 1 on prompt tokens
    completion_ids: Tensor  # (B, T) long, pad after end-of-sequence
    completion_mask: Tensor  # (B, T) float, 1 on sampled tokens (end-of-sequence included)
    texts: list[str]  # decoded completions, without end-of-sequence
    group_ids: Tensor  # (B,) long, index of the prompt each response answers
    problems: list  # (B,) task problems, one per response
    # (B,) bool: the completion ended with end-of-sequence within the token budget. Tasks
    # decide what an unfinished (truncated) completion earns; the lab gives it nothing.
    finished: Optional[Tensor] = None
    # (B, T) float: the rollout backend's log-prob of each sampled token (its processed
    # log-probs, temperature applied; 0 on padding), or None: logp_roll of spec §14.
    rollout_logp: Optional[Tensor] = None
    # (B, T) float: entropy of each token's sampling distribution (0 on padding), when the
    # backend sampled with the trainer's own weights (it then stands in for rescoring), or None.
    rollout_h: Optional[Tensor] = None

    def __post_init__(self) -> None:
        if self.finished is None:
            self.finished = self.completion_mask.new_ones(self.completion_ids.shape[0], dtype=torch.bool)

    @property
    def size(self) -> int:
        return self.completion_ids.shape[0]

    def select(self, idx: Tensor) -> "Rollout":
        """The responses at `idx` (a 1-D long tensor), in that order."""
        i = idx.tolist()
        return Rollout(
            self.prompt_ids[idx], self.prompt_mask[idx], self.completion_ids[idx],
            self.completion_mask[idx], [self.texts[k] for k in i], self.group_ids[idx],
            [self.problems[k] for k in i], self.finished[idx],
            rollout_logp=None if self.rollout_logp is None else self.rollout_logp[idx],
            rollout_h=None if self.rollout_h is None else self.rollout_h[idx],
        )


@dataclass
class Scored:
    """The no-grad rescoring of a rollout (before the update)."""

    old_logp: Tensor  # (B, T) log-prob of sampled tokens under the rollout policy
    h: Tensor  # (B, T) token entropy of the rollout policy
    ref_logp: Optional[Tensor]  # (B, T) log-prob under the frozen base model
    # (B, T) detached rollout-correction weight of each token's surrogate loss (spec §14), or
    # None (no correction); set by the loop after rescoring.
    is_weight: Optional[Tensor] = None

    def select(self, idx: Tensor) -> "Scored":
        def rows(x):
            return None if x is None else x[idx]

        return Scored(self.old_logp[idx], self.h[idx], rows(self.ref_logp), rows(self.is_weight))


@dataclass
class TokenBatch:
    """Everything a loss sees for one loss call. All (B, T) unless said."""

    logp: Tensor  # current policy, carries gradient
    old_logp: Tensor  # rollout policy, no gradient
    adv: Tensor  # advantage broadcast over response tokens
    mask: Tensor  # 1 on response tokens: the aggregation's denominator
    h: Tensor  # token entropy of the current policy, carries gradient
    rewards: Tensor  # (B,)
    ref_logp: Optional[Tensor] = None  # base model, no gradient
    plan_mask: Optional[Tensor] = None  # 1 on planning tokens, as the task defines them
    # Tokens whose loss counts (numerator). A mask-stage intervention may narrow it while the
    # denominator keeps `mask` (e.g. forking tokens with normalize_by=all).
    loss_mask: Optional[Tensor] = None
    # Rollout correction (spec §14): detached weight multiplying each token's surrogate loss.
    is_weight: Optional[Tensor] = None

    def __post_init__(self) -> None:
        if self.loss_mask is None:
            self.loss_mask = self.mask

    def replace(self, **changes) -> "TokenBatch":
        return replace(self, **changes)
