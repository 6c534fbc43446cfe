"""SFT refresh: every `every` rounds, a few supervised steps on diverse demonstrations
(project seed notes: SFT on diverse demonstrations restores the breadth RL collapses; cf. the
format collapse of spec §7).

A round stage: after the round's RL update, if (round + 1) % every == 0, take `steps`
optimiser steps (the run's optimiser and grad clip) of token-mean NLL on `batch` correct
demonstrations written in every answer format of the task's corpus in equal shares
(`task.demonstrations`), so the formats RL abandoned are shown again. Demonstrations are
drawn from the round context's generator, seeded by (seed, round): the run's other random
streams never shift. Log-probs are of the raw policy (temperature 1), as in pretraining.

Run: entropyctl train intervention=sft_refresh  (stacks with any surrogate)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from entropyctl.interventions import RoundContext, check_param, register
from entropyctl.maths.losses import logprobs_from_logits, nll
from entropyctl.models.loading import encode_prompts
from entropyctl.models.precision import backward, clip_and_step
from entropyctl.models.scoring import completion_logits


@dataclass
class SftRefreshConfig:
    every: int = 5  # k: rounds between refreshes (5 keeps the lab's format entropy up)
    steps: int = 4  # SFT optimiser steps per refresh
    batch: int = 64  # demonstrations per step

    def __post_init__(self) -> None:
        check_param("sft_refresh", self, "every", self.every >= 1, ">= 1")
        check_param("sft_refresh", self, "steps", self.steps >= 0, ">= 0")
        check_param("sft_refresh", self, "batch", self.batch >= 1, ">= 1")


def sft_due(round_index: int, every: int) -> bool:
    """True after rounds every-1, 2*every-1, ... (0-based)."""
    return (round_index + 1) % every == 0


def sft_batch(tokenizer, prompts: list[str], completions: list[str]) -> tuple[Tensor, ...]:
    """(prompt_ids (B, P), prompt_mask (B, P), completion_ids (B, T), completion_mask (B, T)):
    prompts left-padded as the sampler does, completions + end-of-sequence right-padded."""
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts)
    rows = [ids + [tokenizer.eos_token_id]
            for ids in tokenizer(completions, add_special_tokens=False)["input_ids"]]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T))
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1.0
    return prompt_ids, prompt_mask, ids, mask


@register("sft_refresh", SftRefreshConfig, stage="round")
def sft_refresh(ctx: RoundContext, cfg: SftRefreshConfig) -> dict[str, float]:
    """{"sft_refresh/steps": steps taken this round, "sft_refresh/nll": their mean NLL (when taken)}."""
    if not sft_due(ctx.round, cfg.every) or cfg.steps == 0:
        return {"sft_refresh/steps": 0.0}
    model, losses = ctx.model, []
    model.train()
    for _ in range(cfg.steps):
        problems, completions = ctx.task.demonstrations(ctx.rng, cfg.batch)
        p_ids, p_mask, c_ids, c_mask = sft_batch(ctx.tokenizer, [p.prompt for p in problems], completions)
        logits = completion_logits(model, p_ids, p_mask, c_ids, c_mask, temperature=1.0)
        loss = nll(logprobs_from_logits(logits, c_ids), c_mask)
        ctx.optimizer.zero_grad(set_to_none=True)
        backward(loss, ctx.scaler)
        clip_and_step(model, ctx.optimizer, ctx.scaler, ctx.grad_clip)
        losses.append(loss.item())
    model.eval()
    return {"sft_refresh/steps": float(cfg.steps), "sft_refresh/nll": sum(losses) / len(losses)}
