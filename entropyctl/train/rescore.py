"""The no-grad rescoring pass before the update: old log-probs and token entropy of the
rollout policy (spec §1.1: H is measured on the policy *before* the step's update), and
log-probs under the frozen base model for the KL metrics and anchors (when one is loaded;
it may sit on another device, its log-probs come back to the policy's)."""

from __future__ import annotations

import torch

from entropyctl.maths.batch import Rollout, Scored
from entropyctl.models.loading import ForwardBudget, completion_scores


@torch.no_grad()
def rescore(model, base, ro: Rollout, temperature: float, budget: ForwardBudget) -> Scored:
    args = (ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask, temperature, budget)
    old_logp, h = completion_scores(model, *args)
    ref_logp = None
    if base is not None:
        ref_logp, _ = completion_scores(base, *args, entropy=False)
        ref_logp = ref_logp.to(old_logp.device)
    return Scored(old_logp=old_logp, h=h, ref_logp=ref_logp)
