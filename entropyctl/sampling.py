"""Dynamic sampling (DAPO, arXiv 2503.14476; spec §3.3): keep a prompt's group only if its
rewards are not all equal, and generate more batches until enough groups survive.

Pure functions over rewards and rollouts; `train.run_round` drives the generation loop:
it samples batches of `rollout.prompts_per_round` prompts until `informative_groups` counts
at least that many groups or `rollout.max_gen_batches` batches were drawn, then trains on the
first `prompts_per_round` informative groups (`kept_rows`). If fewer survive it trains on
those; if none does, on the first batch unfiltered (advantages are then all 0, so only
penalties act) -- verl would raise instead. Groups of size 1 are always kept (verl).
"""

from __future__ import annotations

import torch
from torch import Tensor

from entropyctl.batch import Rollout


def informative_groups(rewards: Tensor, group_size: int) -> Tensor:
    """(B,) rewards of contiguous groups -> (B // G,) bool: rewards not all equal (std > 0)."""
    r = rewards.view(-1, group_size)
    if group_size == 1:
        return torch.ones(r.shape[0], dtype=torch.bool)
    return (r != r[:, :1]).any(1)


def kept_rows(rewards: Tensor, group_size: int, max_groups: int) -> Tensor:
    """(K,) long: row indices of the first `max_groups` informative groups, whole groups in order."""
    groups = informative_groups(rewards, group_size).nonzero().squeeze(1)[:max_groups]
    return (groups[:, None] * group_size + torch.arange(group_size)[None, :]).flatten()


def _pad_to(x: Tensor, length: int, value, left: bool) -> Tensor:
    extra = length - x.shape[1]
    if extra <= 0:
        return x
    pad = torch.full((x.shape[0], extra), value, dtype=x.dtype)
    return torch.cat([pad, x] if left else [x, pad], dim=1)


def concat_rollouts(rollouts: list[Rollout], pad_id: int) -> Rollout:
    """One rollout from several: prompts left-padded and completions right-padded to the
    longest, group ids renumbered so groups stay contiguous and distinct."""
    if len(rollouts) == 1:
        return rollouts[0]
    P = max(r.prompt_ids.shape[1] for r in rollouts)
    T = max(r.completion_ids.shape[1] for r in rollouts)
    offsets, n = [], 0
    for r in rollouts:
        offsets.append(n)
        n += int(r.group_ids.max().item()) + 1 if r.size else 0
    return Rollout(
        prompt_ids=torch.cat([_pad_to(r.prompt_ids, P, pad_id, left=True) for r in rollouts]),
        prompt_mask=torch.cat([_pad_to(r.prompt_mask, P, 0, left=True) for r in rollouts]),
        completion_ids=torch.cat([_pad_to(r.completion_ids, T, pad_id, left=False) for r in rollouts]),
        completion_mask=torch.cat([_pad_to(r.completion_mask, T, 0.0, left=False) for r in rollouts]),
        texts=[t for r in rollouts for t in r.texts],
        group_ids=torch.cat([r.group_ids + o for r, o in zip(rollouts, offsets)]),
        problems=[p for r in rollouts for p in r.problems],
    )


def renumber_groups(ro: Rollout, group_size: int) -> Rollout:
    """Group ids 0..n-1 in order, for a rollout made of whole contiguous groups."""
    ro.group_ids = torch.arange(ro.size // group_size).repeat_interleave(group_size)
    return ro
