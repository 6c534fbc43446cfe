"""The no-grad rescoring pass before the update: old log-probs and token entropy of the
rollout policy (spec §1.1: H is measured on the policy *before* the step's update), and
log-probs under the frozen base model for the KL metrics and anchors."""

from __future__ import annotations

import torch

from entropyctl.maths.batch import Rollout, Scored
from entropyctl.maths.entropy import entropy_from_logits
from entropyctl.maths.losses import logprobs_from_logits
from entropyctl.models.loading import completion_logits


@torch.no_grad()
def rescore(model, base, ro: Rollout, temperature: float) -> Scored:
    args = (ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask, temperature)
    logits = completion_logits(model, *args)
    old_logp = logprobs_from_logits(logits, ro.completion_ids)
    h = entropy_from_logits(logits)
    ref_logp = None
    if base is not None:
        ref_logp = logprobs_from_logits(completion_logits(base, *args), ro.completion_ids)
    return Scored(old_logp=old_logp, h=h, ref_logp=ref_logp)
