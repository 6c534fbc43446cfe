"""The glossary: every metric key entropyctl logs, with its one-line definition.

This module is the single place that names a metric. It imports nothing heavy so that
`fit-law`, `compare` and the docs can read it without torch. The tensors behind these
numbers are computed in `entropyctl.train.metrics`.

Entropies are in nats of the temperature-scaled policy (spec §0, §1.1); the temperature
is logged with them as `entropy/temperature`. Rollout entropies are measured in the
no-grad rescoring pass of the rollout policy, before the round's update (spec §1.1).
"""

from __future__ import annotations

import re

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
    "entropy/plan": "token-mean entropy over planning tokens (the task's plan mask; the lab: the format prefix; spec §8.2); NaN if none",
    "entropy/exec": "token-mean entropy over execution tokens (response tokens outside the plan mask; spec §8.2); NaN if none",
    "entropy/p10": "10th percentile of the round's response-token entropies",
    "entropy/p50": "median of the round's response-token entropies",
    "entropy/p90": "90th percentile of the round's response-token entropies",
    "entropy/fork": "mean entropy of the top 20 % highest-entropy response tokens (forking tokens, k = ceil(0.2 N); spec §4)",
    "entropy/nonfork": "mean entropy of the other 80 % of response tokens (spec §4)",
    "cov/pred_dH": "covariance prediction of the entropy change from this round's update, -eta * cov/mean with eta = lr x optimiser steps (spec §1.3); compare pairs it with entropy/tokmean[r+1] - entropy/tokmean[r]",
    "format/entropy": "entropy (nats) of the distribution of answer formats over the round's rollouts",
    "format/share/<name>": "share of the round's rollouts written in format <name> ('unknown' = none)",
    "format/acc/<name>": "share of full-reward responses among the round's rollouts in format <name> (null when none)",
    "format/top_share": "share of the most common format this round",
    "loss/policy": "policy loss of the update, mean over minibatches (what is minimised, penalties included)",
    "clip/frac": "share of valid tokens where the PPO clip is active (L2 > L1; spec §5.2 pg_clipfrac)",
    "cov/mean": "mean centred Cov(logp, A) over the round's response tokens (spec §1.3)",
    "kl/base_k3": "k3 estimate of KL(policy || base) per response token, on the round's rollouts (spec §5.4); every round with kl_anchor, else on eval rounds (eval.every)",
    "response/length": "mean number of completion tokens, end-of-sequence included",
    "time/rollout": "seconds spent sampling the round's rollouts",
    "time/rescore": "seconds spent in the no-grad rescoring pass (old logp, entropy, base logp)",
    "time/update": "seconds spent in the policy update",
    "time/eval": "seconds spent on validation",
    "perf/tokens_per_s": "completion tokens sampled per second of rollout time",
    "grad/norm": "gradient norm before clipping, mean over optimiser steps",
    "time/push": "seconds spent pushing the updated weights to the rollout backend (0 for rollout=torch)",
    # Train/inference mismatch (spec §14), raw: before any correction. δ = old_logp − logp_roll
    # per valid token, logp_roll the backend's sampling log-prob, ρ = exp(δ).
    "mismatch/kl_k1": "mean of −δ over valid tokens: k1 estimate of KL(rollout engine ‖ trainer) (spec §14)",
    "mismatch/kl_k3": "mean of (ρ − 1) − δ over valid tokens: k3 estimate of KL(rollout engine ‖ trainer) (spec §14)",
    "mismatch/ratio_p01": "1st percentile of ρ = π_trainer/π_rollout over valid tokens, before correction (spec §14)",
    "mismatch/ratio_p50": "median of ρ = π_trainer/π_rollout over valid tokens, before correction (spec §14)",
    "mismatch/ratio_p99": "99th percentile of ρ = π_trainer/π_rollout over valid tokens, before correction (spec §14)",
    "mismatch/ratio_max": "largest ρ = π_trainer/π_rollout over valid tokens, before correction (spec §14)",
    "mismatch/seq_logratio_mean": "per-response log-ratio Σ_t δ, mean over responses (what seq_* corrections act on)",
    "mismatch/seq_logratio_absmax": "per-response log-ratio Σ_t δ, largest |·| over responses",
}

# Keys logged only when the intervention or switch that owns them is on (one line each). Kept
# apart from GLOSSARY, whose every key is in every round's row; describe() reads both.
CONDITIONAL: dict[str, str] = {
    "grad/skipped": "model.dtype=float16: share of the round's optimiser steps skipped because the scaled loss "
                    "overflowed float16 (that step is not taken and the loss scale halves)",
    "clip/frac_high": "share of valid tokens with A > 0 and r > 1 + eps_high (clip_higher, gppo; spec §3.1); "
                      "cispo: share with r above the weight cap",
    "clip/frac_low": "share of valid tokens with A < 0 and r < 1 - eps_low (clip_higher, gppo; spec §3.1)",
    "clip_cov/frac_detached": "share of valid tokens Clip-Cov detached (spec §1.4)",
    "clip_cov/candidates": "tokens whose centred covariance lies in (cov_low, cov_high), per loss call (spec §1.4)",
    "kl_cov/frac_penalised": "share of valid tokens KL-Cov penalised with |logp - old_logp| (spec §1.5)",
    "kl_cov/abs_log_ratio": "mean |logp - old_logp| over valid tokens in KL-Cov's loss calls (verl ppo_kl; spec §1.5)",
    "gppo/sft_nll": "token-mean NLL on correct responses that GPPO adds with sft_coef (spec §2)",
    "forking/frac_selected": "share of valid tokens the forking-token mask trains on (spec §4)",
    "forking/h_threshold": "lowest current-policy entropy among the selected forking tokens (spec §4)",
    "entropy_bonus/h": "mean current-policy token entropy the bonus acts on (spec §5.3)",
    "kl_anchor/kl": "mean KL-to-base estimate (kl_anchor.kind) the anchor penalises, in the update (spec §5.4)",
    "gspo/seq_clip_frac": "share of responses whose sequence ratio s_i is clipped (GSPO; spec §15)",
    "gspo/seq_log_ratio": "mean |log s_i| over responses: how far GSPO's sequence ratios are off-policy (spec §15)",
    "sapo/gate_weight": "mean SAPO gradient weight 4 sigma (1 - sigma) over valid tokens; 1 on-policy (spec §15)",
    "sapo/frac_gated": "share of valid tokens whose SAPO gradient weight is below 1/2: the soft gate's clipped share (spec §15)",
    "adaptive_entropy/coef": "the adaptive entropy coefficient c the controller holds (Skywork-OR1; spec §15)",
    "adaptive_entropy/coef_applied": "the coefficient the bonus used: c while the last measured entropy <= target, else 0",
    "adaptive_entropy/error": "controller error: mean current-policy token entropy of a loss call minus the target (spec §15)",
    "entropic/alpha": "EntroPIC's PI output alpha in [-1, 1]: > 0 pushes entropy down, < 0 up (spec §15)",
    "entropic/error": "EntroPIC's error e = mean current-policy token entropy of a loss call minus the target",
    "entropic/integral": "EntroPIC's integral: sum of the optimiser steps' mean errors so far",
    "entropic/frac_high": "share of valid tokens with p > entropic.prob_threshold, the tokens EntroPIC's term acts on",
    "entropy_advantage/bonus": "mean entropy bonus min(alpha h, |A| / kappa) added to the advantage over valid tokens (spec §15)",
    "entropy_advantage/frac_capped": "share of valid tokens (A != 0) where the |A| / kappa cap binds the entropy bonus",
    "hicra/plan_frac": "share of valid tokens that are planning tokens, whose advantage HICRA scales (spec §8.3)",
    "sft_refresh/steps": "SFT steps on demonstrations taken after this round's update (0 off schedule)",
    "sft_refresh/nll": "mean demonstration NLL over this round's SFT-refresh steps (rounds with steps only)",
    "correction/frac": "share of valid tokens (token_*) or responses (seq_*) that rollout.correction truncated or masked (spec §14)",
    "correction/weight_mean": "mean rollout-correction weight over valid tokens (rollout.correction != none; spec §14)",
    "time/round_hooks": "seconds spent in round-stage interventions after the update (sft_refresh)",
    "entropy/seqmean_prefilter": "entropy/seqmean over all generated rollouts, before dynamic-sampling filtering (spec §1.1)",
    "entropy/tokmean_prefilter": "entropy/tokmean over all generated rollouts, before dynamic-sampling filtering (spec §1.1)",
    "sampling/gen_batches": "rollout batches generated this round by dynamic sampling (spec §3.3)",
    "sampling/kept_frac": "share of generated groups whose rewards were not all equal (spec §3.3)",
    "sampling/groups": "prompt groups trained on after dynamic-sampling filtering (spec §3.3)",
}

# Probe keys (issue 10; docs/collapse-or-convergence.md): logged every `probe.every` rounds, at
# round 0 and at the last round, measured before that round's rollout (round 0 = the base).
PROBES: dict[str, str] = {
    "eval/pass@<k>": "unbiased pass@k (spec §6) on probe.pass_prompts held-out prompts, probe.pass_k_max samples each, at the rollout temperature",
    "eval/base_pass@<k>": "the same pass@k of the base model (round 0 row only; cached per base and task)",
    "kl/rev_exact": "exact KL(policy || base) over the full vocabulary per response token, on policy samples of the pass@k prompts (spec §9 kl_rev_tok)",
    "kl/fwd_exact": "exact KL(base || policy) per response token, on fixed base-model samples of the pass@k prompts (spec §9 kl_fwd_tok)",
    "repr/cka/layer<i>": "linear CKA (debiased below 512 prompts; spec §10.1) between policy and base last-prompt-token hidden states at layer i (0 = embeddings) on fixed validation prompts; 1 = same representation",
    "repr/sparsity/<stat>/familiar": "mean <stat> (hoyer, top5_energy, gini; spec §10.2) of the last layer's last-prompt-token hidden state on validation prompts",
    "repr/sparsity/<stat>/unfamiliar": "the same on the task's unfamiliar prompts (the lab: wider operands, shuffled characters) or probe.unfamiliar_file",
    "time/probes": "seconds spent on this round's probes (the first probe of a run also counts building the probe sets and the base curve)",
}

# task=curriculum, the plasticity probe (issue 10, spec §9; entropyctl/tasks/curriculum.py):
# task A for task.curriculum.switch_round = N rounds, then task B.
CURRICULUM: dict[str, str] = {
    "curriculum/phase": "the task the round trains, evaluates and scores on: 0 = A (rounds < N), 1 = B (every round of a curriculum run)",
    "curriculum/eval_acc_a": "eval/acc of a round on A (rounds < N): A's validation accuracy",
    "curriculum/eval_acc_b": "eval/acc of a round on B (rounds >= N): B's validation accuracy, the reward on B",
    "curriculum/kl_at_switch": "KL(policy || base) per token of the policy after N rounds on A, logged in round N's row: kl/rev_exact when probes ran in round N (on A's probe prompts), else kl/base_k3 of round N (on B's first rollouts)",
    "curriculum/kl_at_switch_exact": "1 when curriculum/kl_at_switch is the exact probe value kl/rev_exact, 0 when it is the k3 estimate kl/base_k3",
    "curriculum/rounds_to_threshold": "rounds of training on B until B's eval/acc first reaches task.curriculum.threshold (1 = after B's first round); logged once, in that round's row; absent = not reached",
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
    if key in CONDITIONAL:
        return CONDITIONAL[key]
    if key in PROBES:
        return PROBES[key]
    if key in CURRICULUM:
        return CURRICULUM[key]
    for pattern, text in PROBES.items():
        if "<" in pattern and re.fullmatch(re.sub(r"<[^>]+>", "[^/]+", re.escape(pattern)), key):
            return text
    for prefix in ("format/share/", "format/acc/", "eval/format/"):
        if key.startswith(prefix):
            return GLOSSARY[f"{prefix}<name>"].replace("<name>", key.removeprefix(prefix))
    return "metric logged by an intervention or backend (see its module docstring)"
