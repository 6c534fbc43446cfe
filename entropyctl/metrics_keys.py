"""The glossary: every metric key entropyctl logs, with its one-line definition.

This module is the single place that names a metric. It imports nothing heavy so that
`fit-law`, `compare` and the docs can read it without torch. The tensors behind these
numbers are computed in `entropyctl.metrics`.

Entropies are in nats of the temperature-scaled policy (spec §0, §1.1); the temperature
is logged with them as `entropy/temperature`. Rollout entropies are measured in the
no-grad rescoring pass of the rollout policy, before the round's update (spec §1.1).
"""

from __future__ import annotations

# key -> one-line definition (and spec section where one applies)
GLOSSARY: dict[str, str] = {
    "round": "RL round index, 0-based; one round = rollouts, rescoring, update, eval",
    "reward/mean": "mean reward of the round's rollouts (before dynamic-sampling filtering)",
    "eval/acc": "validation accuracy, one sample per prompt at the rollout temperature",
    "eval/greedy_acc": "validation accuracy of greedy decoding",
    "eval/format/<name>": "share of validation samples (at the rollout temperature) in format <name>",
    "entropy/tokmean": "token entropy pooled over all response tokens of the round (spec §1.1 H_tokmean)",
    "entropy/seqmean": "per-response mean token entropy, then mean over responses (spec §1.1 H_seqmean)",
    "entropy/seqsum": "per-response entropy: sum of token entropies of a response, mean over responses",
    "entropy/first": "mean token entropy at the first completion position (where the lab's format is chosen)",
    "entropy/temperature": "sampling temperature the entropies above are measured at",
    "format/entropy": "entropy (nats) of the distribution of answer formats over the round's rollouts",
    "format/share/<name>": "share of the round's rollouts written in format <name> ('unknown' = none)",
    "format/top_share": "share of the most common format this round",
    "loss/policy": "policy loss of the update, mean over minibatches (what is minimised, penalties included)",
    "clip/frac": "share of valid tokens where the PPO clip is active (L2 > L1; spec §5.2 pg_clipfrac)",
    "cov/mean": "mean centred Cov(logp, A) over the round's response tokens (spec §1.3)",
    "kl/base_k3": "k3 estimate of KL(policy || base) per response token, on the round's rollouts (spec §5.4)",
    "response/length": "mean number of completion tokens, end-of-sequence included",
    "time/rollout": "seconds spent sampling the round's rollouts",
    "time/rescore": "seconds spent in the no-grad rescoring pass (old logp, entropy, base logp)",
    "time/update": "seconds spent in the policy update",
    "time/eval": "seconds spent on validation",
    "perf/tokens_per_s": "completion tokens sampled per second of rollout time",
    "grad/norm": "gradient norm before clipping, mean over optimiser steps",
}

# What fit-law and compare read by default: the paper's H is the per-response mean
# (train_entropy/all in the authors' fork), R a validation score.
DEFAULT_ENTROPY_KEY = "entropy/seqmean"
DEFAULT_PERF_KEY = "eval/acc"
PER_RESPONSE_ENTROPY_KEY = "entropy/seqsum"


def describe(key: str) -> str:
    """Definition of `key`, with `format/share/<name>` and intervention keys resolved."""
    if key in GLOSSARY:
        return GLOSSARY[key]
    for prefix in ("format/share/", "eval/format/"):
        if key.startswith(prefix):
            return GLOSSARY[f"{prefix}<name>"].replace("<name>", key.removeprefix(prefix))
    return "metric logged by an intervention or backend (see its module docstring)"
