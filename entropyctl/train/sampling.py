"""Dynamic sampling (DAPO, arXiv 2503.14476; spec §3.3): keep a prompt's group only if its
rewards are not all equal, and generate more batches until enough groups survive.

`collect_rollouts` samples batches of `rollout.prompts_per_round` prompts until
`informative_groups` counts at least that many groups or `rollout.max_gen_batches` batches were
drawn; `keep_informative` then keeps the first `prompts_per_round` informative groups
(`kept_rows`) and reports what was seen before filtering. If fewer survive it trains on
those; if none does, on the first batch unfiltered (advantages are then all 0, so only
penalties act) -- verl would raise instead. Groups of size 1 are always kept (verl).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from entropyctl.maths import entropy as E
from entropyctl.maths.batch import Rollout, Scored, pad_to
from entropyctl.config import RolloutConfig


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
        prompt_ids=torch.cat([pad_to(r.prompt_ids, P, pad_id, left=True) for r in rollouts]),
        prompt_mask=torch.cat([pad_to(r.prompt_mask, P, 0, left=True) for r in rollouts]),
        completion_ids=torch.cat([pad_to(r.completion_ids, T, pad_id, left=False) for r in rollouts]),
        completion_mask=torch.cat([pad_to(r.completion_mask, T, 0.0, left=False) for r in rollouts]),
        texts=[t for r in rollouts for t in r.texts],
        group_ids=torch.cat([r.group_ids + o for r, o in zip(rollouts, offsets)]),
        problems=[p for r in rollouts for p in r.problems],
        finished=torch.cat([r.finished for r in rollouts]),
        rollout_logp=None if rollouts[0].rollout_logp is None else
        torch.cat([pad_to(r.rollout_logp, T, 0.0, left=False) for r in rollouts]),
        rollout_h=None if rollouts[0].rollout_h is None else
        torch.cat([pad_to(r.rollout_h, T, 0.0, left=False) for r in rollouts]),
    )


def renumber_groups(ro: Rollout, group_size: int) -> Rollout:
    """Group ids 0..n-1 in order, for a rollout made of whole contiguous groups."""
    ro.group_ids = torch.arange(ro.size // group_size).repeat_interleave(group_size)
    return ro


def collect_rollouts(draw: Callable[[], tuple[Rollout, Tensor, list[str]]], cfg: RolloutConfig,
                     pad_id: int) -> tuple[Rollout, Tensor, list[str], int]:
    """(rollout, rewards, formats, batches drawn): one batch from `draw`, or with dynamic
    sampling, batches until enough groups have mixed rewards."""
    rollouts, rewards, formats = [], [], []
    for _ in range(cfg.max_gen_batches if cfg.dynamic_sampling else 1):
        ro, rw, fm = draw()
        rollouts.append(ro)
        rewards.append(rw)
        formats.extend(fm)
        if int(informative_groups(torch.cat(rewards), cfg.group_size).sum()) >= cfg.prompts_per_round:
            break
    return concat_rollouts(rollouts, pad_id), torch.cat(rewards), formats, len(rollouts)


def keep_informative(ro: Rollout, scored: Scored, rewards: Tensor, formats: list[str],
                     cfg: RolloutConfig, batches: int):
    """The informative groups of a dynamically sampled round, and what it saw before
    filtering (spec §1.1 asks for pre- and post-filter entropy):
    (rollout, scored, rewards, formats, prefilter metrics)."""
    G = cfg.group_size
    mask = ro.completion_mask
    seen = {
        "reward/mean": rewards.mean().item(),  # the glossary's reward is the pre-filter mean
        "entropy/seqmean_prefilter": E.seqmean(scored.h, mask).item(),
        "entropy/tokmean_prefilter": E.tokmean(scored.h, mask).item(),
        "sampling/gen_batches": float(batches),
        "sampling/kept_frac": informative_groups(rewards, G).float().mean().item(),
    }
    keep = kept_rows(rewards, G, cfg.prompts_per_round)
    if keep.numel() == 0:  # nothing informative: the first batch, unfiltered
        keep = torch.arange(cfg.prompts_per_round * G)
    ro = renumber_groups(ro.select(keep), G)
    seen["sampling/groups"] = ro.size / G
    return ro, scored.select(keep), rewards[keep], [formats[i] for i in keep.tolist()], seen
