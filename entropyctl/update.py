"""One round's policy update: minibatches of the rollout, each one forward pass, the
intervention pipeline's loss, one optimiser step (spec §5.2; cleanrl-style PPO epochs)."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from entropyctl.batch import Rollout, Scored, TokenBatch
from entropyctl.config import OptimConfig
from entropyctl.entropy import entropy_from_logits
from entropyctl.interventions import Pipeline
from entropyctl.losses import logprobs_from_logits
from entropyctl.policy import completion_logits


class Divergence(RuntimeError):
    """Non-finite loss, gradient or logits: the run stops as `diverged`."""


def make_optimizer(model, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                             betas=(cfg.beta1, cfg.beta2))


def update(model, optimizer, ro: Rollout, scored: Scored, adv: Tensor, rewards: Tensor,
           pipeline: Pipeline, cfg: OptimConfig, temperature: float, generator: torch.Generator,
           plan_mask: Tensor | None = None) -> dict[str, float]:
    """Train on the rollout; returns means over optimiser steps of loss, grad norm and the
    interventions' statistics."""
    B = ro.size
    mask = ro.completion_mask
    adv_tok = adv[:, None] * mask  # (B, T)
    acc: dict[str, list[float]] = defaultdict(list)
    model.train()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(B, generator=generator).chunk(cfg.minibatches):
            logits = completion_logits(model, ro.prompt_ids[idx], ro.prompt_mask[idx],
                                       ro.completion_ids[idx], mask[idx], temperature)
            if not torch.isfinite(logits).all():
                raise Divergence("non-finite logits in the update")
            b = TokenBatch(
                logp=logprobs_from_logits(logits, ro.completion_ids[idx]),
                old_logp=scored.old_logp[idx], adv=adv_tok[idx], mask=mask[idx],
                h=entropy_from_logits(logits), rewards=rewards[idx],
                ref_logp=None if scored.ref_logp is None else scored.ref_logp[idx],
                plan_mask=None if plan_mask is None else plan_mask[idx],
            )
            loss, stats = pipeline.loss(b, cfg.agg_mode, cfg.loss_scale)
            if not torch.isfinite(loss):
                raise Divergence(f"non-finite loss ({loss.item()})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if not torch.isfinite(norm):
                raise Divergence(f"non-finite gradient norm ({norm.item()})")
            optimizer.step()
            acc["loss/policy"].append(loss.item())
            acc["grad/norm"].append(norm.item())
            for k, v in stats.items():
                acc[k].append(float(v))
    model.eval()
    return {k: sum(v) / len(v) for k, v in acc.items()}
