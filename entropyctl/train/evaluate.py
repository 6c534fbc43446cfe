"""Validation on the task's fixed held-out prompts: sampled and greedy accuracy."""

from __future__ import annotations

import torch

from entropyctl.train.reward import score
from entropyctl.train.rollout import sample


@torch.no_grad()
def evaluate(model, tokenizer, task, temperature: float, max_new_tokens: int,
             generator: torch.Generator, greedy: bool = True, backend="torch") -> dict[str, float]:
    problems = task.val_problems
    out = {}
    ro = sample(model, tokenizer, problems, 1, max_new_tokens, temperature, generator, backend=backend)
    rewards, formats = score(ro, task)
    out["eval/acc"] = rewards.mean().item()
    for name in task.format_names:
        out[f"eval/format/{name}"] = sum(f == name for f in formats) / len(formats)
    if greedy:
        ro = sample(model, tokenizer, problems, 1, max_new_tokens, temperature, generator,
                    greedy=True, backend=backend)
        out["eval/greedy_acc"] = score(ro, task)[0].mean().item()
    return out
