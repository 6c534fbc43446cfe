"""One round's policy update: minibatches of the rollout, each split into `micro_batches`
loss calls (gradient accumulation, each call weighted 1/micro_batches as in verl's
reference), the intervention pipeline's loss, one optimiser step per minibatch (spec §5.2;
cleanrl-style PPO epochs).

Token selections wider than a loss call (an intervention's `scope`): `round` is picked once,
before the first step, on the rescoring pass (the rollout policy's logp and entropy);
`minibatch` is picked on the current policy after the minibatch's forward passes. Each loss
call then gets its rows of those selections."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from entropyctl.maths.batch import Rollout, Scored, TokenBatch
from entropyctl.config import OptimConfig
from entropyctl.maths.entropy import entropy_from_logits
from entropyctl.errors import Divergence
from entropyctl.interventions import Pipeline
from entropyctl.maths.losses import logprobs_from_logits
from entropyctl.models.loading import completion_logits


def make_optimizer(model, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                             betas=(cfg.beta1, cfg.beta2))


def _detached_cat(bs: list[TokenBatch]) -> TokenBatch:
    """The loss calls of one minibatch as one detached batch (same T: rows of one rollout)."""
    def cat(name):
        parts = [getattr(b, name) for b in bs]
        return None if parts[0] is None else torch.cat([p.detach() for p in parts])

    return TokenBatch(**{f: cat(f) for f in ("logp", "old_logp", "adv", "mask", "h", "rewards",
                                             "ref_logp", "plan_mask")})


def update(model, optimizer, ro: Rollout, scored: Scored, adv: Tensor, rewards: Tensor,
           pipeline: Pipeline, cfg: OptimConfig, temperature: float, generator: torch.Generator,
           plan_mask: Tensor | None = None) -> dict[str, float]:
    """Train on the rollout; returns means over optimiser steps of loss and grad norm, and over
    loss calls of the interventions' statistics."""
    B, T = ro.completion_ids.shape
    mask = ro.completion_mask
    adv_tok = adv[:, None] * mask  # (B, T)
    agg_mode, scale = pipeline.aggregation(cfg.agg_mode, cfg.loss_scale)

    def token_batch(idx: Tensor) -> TokenBatch:
        logits = completion_logits(model, ro.prompt_ids[idx], ro.prompt_mask[idx],
                                   ro.completion_ids[idx], mask[idx], temperature)
        if not torch.isfinite(logits).all():
            raise Divergence("non-finite logits in the update")
        return TokenBatch(
            logp=logprobs_from_logits(logits, ro.completion_ids[idx]),
            old_logp=scored.old_logp[idx], adv=adv_tok[idx], mask=mask[idx],
            h=entropy_from_logits(logits), rewards=rewards[idx],
            ref_logp=None if scored.ref_logp is None else scored.ref_logp[idx],
            plan_mask=None if plan_mask is None else plan_mask[idx],
        )

    chosen: dict[str, Tensor] = {}  # name -> (B, T) bool, selections wider than a loss call
    if "round" in pipeline.scopes:
        chosen.update(pipeline.select(TokenBatch(
            logp=scored.old_logp, old_logp=scored.old_logp, adv=adv_tok, mask=mask, h=scored.h,
            rewards=rewards, ref_logp=scored.ref_logp, plan_mask=plan_mask), "round"))
    acc: dict[str, list[float]] = defaultdict(list)
    model.train()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(B, generator=generator).chunk(cfg.minibatches):
            calls = idx.chunk(cfg.micro_batches)
            batches = None
            if "minibatch" in pipeline.scopes:
                batches = [token_batch(c) for c in calls]
                for name, sel in pipeline.select(_detached_cat(batches), "minibatch").items():
                    full = torch.zeros(B, T, dtype=torch.bool)
                    full[idx] = sel  # rows of cat(calls) are idx, in order
                    chosen[name] = full
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for j, c in enumerate(calls):
                b = batches[j] if batches is not None else token_batch(c)
                loss, stats = pipeline.loss(b, agg_mode, scale, {k: v[c] for k, v in chosen.items()})
                if not torch.isfinite(loss):
                    raise Divergence(f"non-finite loss ({loss.item()})")
                (loss / len(calls)).backward()
                total += loss.item() / len(calls)
                for k, v in stats.items():
                    acc[k].append(float(v))
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if not torch.isfinite(norm):
                raise Divergence(f"non-finite gradient norm ({norm.item()})")
            optimizer.step()
            pipeline.step()  # controllers (adaptive_entropy, entropic) move once per optimiser step
            acc["loss/policy"].append(total)
            acc["grad/norm"].append(norm.item())
    model.eval()
    return {k: sum(v) / len(v) for k, v in acc.items()}
