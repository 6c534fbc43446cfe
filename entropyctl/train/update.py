"""One round's policy update: minibatches of the rollout, each split into loss calls (gradient
accumulation: `optim.micro_batches` calls, or as many rows per call as fit in
`optim.micro_batch_tokens`), the intervention pipeline's loss, one optimiser step per minibatch
(spec §5.2; cleanrl-style PPO epochs).

How calls add up (`optim.loss_norm`, docs/models.md): `minibatch` weights each call's
aggregated loss by `losses.call_weight`, so the minibatch's loss and gradient equal one call
over all its rows whatever the split (token-mean divides by the minibatch's token count, spec
§3.2 global path); `micro_batch` weights each call 1/#calls (older verl). With one call per
minibatch the two are the same, to the bit.

Token selections wider than a loss call (an intervention's `scope`): `round` is picked once,
before the first step, on the rescoring pass (the rollout policy's logp and entropy);
`minibatch` is picked on the current policy after the minibatch's forward passes. Each loss
call then gets its rows of those selections."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.config import OptimConfig
from entropyctl.errors import Divergence
from entropyctl.interventions import Pipeline
from entropyctl.maths.batch import Rollout, Scored, TokenBatch
from entropyctl.maths.losses import call_weight
from entropyctl.models.precision import backward, clip_and_step
from entropyctl.models.scoring import ForwardBudget, completion_scores


@dataclass
class RoundBatch:
    """The round's tensors the update trains on, all on the policy's device."""

    ro: Rollout
    scored: Scored
    adv: Tensor  # (B,)
    rewards: Tensor  # (B,)
    plan_mask: Tensor | None = None  # (B, T), 1 on planning tokens (hicra)


@dataclass
class UpdateSettings:
    """How to train on it: the optimiser settings, the rollout's temperature (log-probs are of
    the distribution it sampled from), the generator of minibatch order, the forward budget,
    float16's loss scaler (models/precision.py; None in other precisions)."""

    optim: OptimConfig
    temperature: float
    generator: torch.Generator
    budget: ForwardBudget
    scaler: torch.amp.GradScaler | None = None


def make_optimizer(model, cfg: OptimConfig) -> torch.optim.Optimizer:
    # foreach: one kernel per step for all parameters instead of a Python loop over them (torch
    # picks it on CUDA, not on the CPU); the same arithmetic, bit for bit.
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                             betas=(cfg.beta1, cfg.beta2), foreach=True)


def _detached_cat(bs: list[TokenBatch]) -> TokenBatch:
    """The loss calls of one minibatch as one detached batch (same T: rows of one rollout)."""
    def cat(name):
        parts = [getattr(b, name) for b in bs]
        return None if parts[0] is None else torch.cat([p.detach() for p in parts])

    return TokenBatch(**{f: cat(f) for f in ("logp", "old_logp", "adv", "mask", "h", "rewards",
                                             "ref_logp", "plan_mask")})


def loss_calls(idx: Tensor, cfg: OptimConfig, row_tokens: int) -> tuple[Tensor, ...]:
    """A minibatch's row indices split into loss calls: by the token budget when set (rows of
    `row_tokens` padded tokens each, at least one row per call), else into micro_batches."""
    if cfg.micro_batch_tokens:
        return idx.split(max(1, cfg.micro_batch_tokens // row_tokens))
    return idx.chunk(cfg.micro_batches)


def minibatch_rows(group_ids: Tensor, n: int, shuffle: str, generator: torch.Generator) -> list[Tensor]:
    """A round's rows dealt into `n` minibatches (optim.shuffle): `rows`, a permutation of all
    rows cut in n; `groups`, a permutation of the groups cut in n, each minibatch holding all the
    rows of its groups. Indices on group_ids' device."""
    dev = generator.device
    if shuffle == "rows":
        return list(torch.randperm(len(group_ids), generator=generator, device=dev).to(group_ids.device).chunk(n))
    groups = torch.unique(group_ids)
    order = groups[torch.randperm(len(groups), generator=generator, device=dev).to(groups.device)]
    # tensor_split: n parts as even as possible (chunk would give 4 parts of 12 groups for n = 5)
    return [torch.cat([torch.nonzero(group_ids == g).squeeze(1) for g in part])
            for part in order.tensor_split(n) if len(part)]


def update(model, optimizer, batch: RoundBatch, pipeline: Pipeline, s: UpdateSettings) -> dict[str, float]:
    """Train on the round's rollouts; returns means over optimiser steps of loss and grad norm,
    and over loss calls of the interventions' statistics."""
    ro, scored, cfg = batch.ro, batch.scored, s.optim
    B, T = ro.completion_ids.shape
    mask = ro.completion_mask
    adv_tok = batch.adv[:, None] * mask  # (B, T)
    plan_mask = batch.plan_mask
    agg_mode, scale = pipeline.aggregation(cfg.agg_mode, cfg.loss_scale)
    row_tokens = ro.prompt_ids.shape[1] + T

    def token_batch(idx: Tensor) -> TokenBatch:
        logp, h = completion_scores(model, ro.prompt_ids[idx], ro.prompt_mask[idx], ro.completion_ids[idx],
                                    mask[idx], s.temperature, s.budget)
        if not (torch.isfinite(logp).all() and torch.isfinite(h).all()):
            raise Divergence("non-finite logits in the update")
        return TokenBatch(
            logp=logp, old_logp=scored.old_logp[idx], adv=adv_tok[idx], mask=mask[idx], h=h,
            rewards=batch.rewards[idx],
            ref_logp=None if scored.ref_logp is None else scored.ref_logp[idx],
            plan_mask=None if plan_mask is None else plan_mask[idx],
            is_weight=None if scored.is_weight is None else scored.is_weight[idx],
        )

    chosen: dict[str, Tensor] = {}  # name -> (B, T) bool, selections wider than a loss call
    if "round" in pipeline.scopes:
        chosen.update(pipeline.select(TokenBatch(
            logp=scored.old_logp, old_logp=scored.old_logp, adv=adv_tok, mask=mask, h=scored.h,
            rewards=batch.rewards, ref_logp=scored.ref_logp, plan_mask=plan_mask), "round"))
    acc: dict[str, list] = defaultdict(list)  # tensors until the end: no host sync per call
    model.train()
    for _ in range(cfg.epochs):
        for idx in minibatch_rows(ro.group_ids.to(mask.device), cfg.minibatches, cfg.shuffle, s.generator):
            calls = loss_calls(idx, cfg, row_tokens)
            batches = None
            if "minibatch" in pipeline.scopes:
                batches = [token_batch(c) for c in calls]
                for name, sel in pipeline.select(_detached_cat(batches), "minibatch").items():
                    full = torch.zeros(B, T, dtype=torch.bool, device=mask.device)
                    full[idx] = sel  # rows of cat(calls) are idx, in order
                    chosen[name] = full
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for j, c in enumerate(calls):
                b = batches[j] if batches is not None else token_batch(c)
                loss, stats = pipeline.loss(b, agg_mode, scale, {k: v[c] for k, v in chosen.items()})
                if not torch.isfinite(loss):
                    raise Divergence(f"non-finite loss ({loss.item()})")
                w = (call_weight(mask[c], mask[idx], agg_mode) if cfg.loss_norm == "minibatch"
                     else 1.0 / len(calls))
                backward(loss * w, s.scaler)
                total = total + (loss.detach() * w)
                for k, v in stats.items():
                    acc[k].append(v.detach() if isinstance(v, Tensor) else v)
            norm = clip_and_step(model, optimizer, s.scaler, cfg.grad_clip)
            if s.scaler is not None:
                acc["grad/skipped"].append(float(norm is None))
            if norm is None:  # float16's loss scale overflowed: no step was taken
                continue
            pipeline.step()  # controllers (adaptive_entropy, entropic) move once per optimiser step
            acc["loss/policy"].append(total)
            acc["grad/norm"].append(norm)
    model.eval()
    for key in ("loss/policy", "grad/norm"):  # NaN in a round whose float16 steps all overflowed
        acc.setdefault(key, [])
    return {k: sum(float(x) for x in v) / len(v) if v else float("nan") for k, v in acc.items()}
