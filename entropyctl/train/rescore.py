"""The no-grad scoring of a rollout before the update: old log-probs and token entropy of the
rollout policy (spec §1.1: H is measured on the policy *before* the step's update), and
log-probs under the frozen base model for the KL metrics and anchors (when asked; the base may
sit on another device, its log-probs come back to the policy's).

When the backend sampled with the trainer's own model at its current weights (rollout=torch),
the sampler already computed each step's full distribution at the sampling temperature: its
log-probs and entropies are the rollout policy's, and a second forward pass over the batch
would only recompute them (to float rounding: a KV-cache step and a full pass sum in another
order). Other backends (vLLM) are rescored: their numbers only measure the mismatch (§14)."""

from __future__ import annotations

import torch

from entropyctl.maths.batch import Rollout, Scored
from entropyctl.models.scoring import ForwardBudget, completion_scores


@torch.no_grad()
def rescore(model, base, ro: Rollout, temperature: float, budget: ForwardBudget) -> Scored:
    """`base`: the frozen base model to score under, or None (no base log-probs this round)."""
    args = (ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask, temperature, budget)
    if ro.rollout_h is not None and ro.rollout_logp is not None:
        old_logp, h = ro.rollout_logp, ro.rollout_h
    else:
        old_logp, h = completion_scores(model, *args)
    ref_logp = None if base is None else base_logp(base, ro, temperature, budget).to(old_logp.device)
    return Scored(old_logp=old_logp, h=h, ref_logp=ref_logp)


@torch.no_grad()
def base_logp(base, ro: Rollout, temperature: float, budget: ForwardBudget) -> torch.Tensor:
    """(B, T) log-probs of the rollout's tokens under the frozen base, on the base's device."""
    return completion_scores(base, ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask,
                             temperature, budget, entropy=False)[0]
