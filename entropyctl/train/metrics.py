"""Round metrics from the tensors of a round. The keys and their definitions are in
`entropyctl.runstore.glossary.GLOSSARY` (the glossary); this module only computes them."""

from __future__ import annotations

import math
from collections import Counter

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


def round_metrics(ro: Rollout, scored: Scored, rewards: Tensor, adv: Tensor, formats: list[str],
                  format_names: list[str], temperature: float) -> dict[str, float]:
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
    if scored.ref_logp is not None:
        out["kl/base_k3"] = masked_mean(kl_estimate(scored.old_logp, scored.ref_logp, "k3"), mask).item()
    out.update(format_metrics(formats, format_names))
    out.update(format_accuracy(formats, rewards, format_names))
    return out
