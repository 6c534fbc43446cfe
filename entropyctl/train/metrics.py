"""Round metrics from the tensors of a round. The keys and their definitions are in
`entropyctl.runstore.glossary.GLOSSARY` (the glossary); this module only computes them."""

from __future__ import annotations

import math
from collections import Counter

import torch
from torch import Tensor

from entropyctl.maths import entropy as E
from entropyctl.maths.batch import Rollout, Scored
from entropyctl.tasks.base import UNKNOWN
from entropyctl.maths.losses import centred_cov, kl_estimate, masked_mean


def format_metrics(formats: list[str], names: list[str]) -> dict[str, float]:
    """Share of each format (and 'unknown'), the format distribution's entropy, top share."""
    counts = Counter(formats)
    n = max(1, len(formats))
    shares = {name: counts.get(name, 0) / n for name in [*names, UNKNOWN]}
    ent = -sum(p * math.log(p) for p in shares.values() if p > 0)
    out = {f"format/share/{k}": v for k, v in shares.items()}
    out["format/entropy"] = ent
    out["format/top_share"] = max(shares.values())
    return out


def format_accuracy(formats: list[str], rewards: Tensor, names: list[str]) -> dict[str, float]:
    """`format/acc/<name>`: share of full-reward responses among those written in each format
    (and 'unknown'); NaN (null in metrics.jsonl) for a format nobody used this round."""
    correct = (rewards >= 1.0).tolist()
    out = {}
    for name in [*names, UNKNOWN]:
        hits = [c for f, c in zip(formats, correct) if f == name]
        out[f"format/acc/{name}"] = sum(hits) / len(hits) if hits else math.nan
    return out


FORK_RHO = 0.2  # forking tokens: the top 20 % by entropy (spec §4, rho = 0.2)


def entropy_split_metrics(h: Tensor, mask: Tensor, plan_mask: Tensor | None) -> dict[str, float]:
    """Where the entropy sits: planning vs execution tokens (spec §8.2, token-mean over each
    set; NaN when a round has none of one kind), percentiles of the token entropies, and the
    top-20 % entropy ("forking") tokens vs the rest (spec §4; k = ceil(0.2 N))."""
    out: dict[str, float] = {}
    if plan_mask is not None:
        for name, m in (("plan", plan_mask * mask), ("exec", (1 - plan_mask) * mask)):
            n = m.sum()
            out[f"entropy/{name}"] = ((h * m).sum() / n).item() if n > 0 else math.nan
    vals = h[mask > 0].double()
    if vals.numel() == 0:
        return {**out, **{k: math.nan for k in ("entropy/p10", "entropy/p50", "entropy/p90",
                                                "entropy/fork", "entropy/nonfork")}}
    q = torch.quantile(vals, torch.tensor([0.1, 0.5, 0.9], dtype=vals.dtype))
    out.update({"entropy/p10": q[0].item(), "entropy/p50": q[1].item(), "entropy/p90": q[2].item()})
    k = math.ceil(FORK_RHO * vals.numel())
    ranked = vals.sort(descending=True).values
    out["entropy/fork"] = ranked[:k].mean().item()
    out["entropy/nonfork"] = ranked[k:].mean().item() if k < vals.numel() else math.nan
    return out


def round_metrics(ro: Rollout, scored: Scored, rewards: Tensor, adv: Tensor, formats: list[str],
                  format_names: list[str], temperature: float, plan_mask: Tensor | None = None,
                  step_size: float | None = None) -> dict[str, float]:
    mask, h = ro.completion_mask, scored.h
    out = {
        "reward/mean": rewards.mean().item(),
        "entropy/tokmean": E.tokmean(h, mask).item(),
        "entropy/seqmean": E.seqmean(h, mask).item(),
        "entropy/seqsum": E.seqsum(h, mask).item(),
        "entropy/first": E.first(h, mask).item(),
        "entropy/temperature": temperature,
        "cov/mean": masked_mean(centred_cov(scored.old_logp, adv[:, None] * mask, mask), mask).item(),
        "response/length": mask.sum(1).mean().item(),
    }
    out.update(entropy_split_metrics(h, mask, plan_mask))
    if step_size is not None:
        # Spec §1.3, natural-gradient form: dH ~ -eta Cov(logp, A). eta is the round's summed
        # learning rate; under Adam the scale is only nominal, the sign and the ranking over
        # rounds are what compare checks against the measured change of the next round.
        out["cov/pred_dH"] = -step_size * out["cov/mean"]
    if scored.ref_logp is not None:
        out["kl/base_k3"] = masked_mean(kl_estimate(scored.old_logp, scored.ref_logp, "k3"), mask).item()
    out.update(format_metrics(formats, format_names))
    out.update(format_accuracy(formats, rewards, format_names))
    return out
