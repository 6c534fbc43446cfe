"""The rollout backend interface: what the round loop asks of whatever samples completions.

A backend turns prompts into sampled token ids (and, when it can, the log-prob it sampled
each token with); `entropyctl.train.rollout.sample` turns that raw output into the Rollout.
Entropy and the log-probs used for training come from the torch policy: from its rescoring
pass (spec §14), so another engine's log-probs only measure the mismatch; or, for a backend
that samples with the trainer's own model and weights (`same_policy`, the torch one), from the
sampler itself, which computed that very distribution at every step (no second forward pass).

Lifecycle, driven by the loop: `generate` every round (and for validation), `push_weights`
after every change of the policy's weights (the update, round hooks), `close` at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import torch
from torch import Tensor


@dataclass
class RawRollout:
    """A backend's output for B = len(prompts) * n rows, the n samples of a prompt contiguous."""

    prompt_ids: Tensor  # (B, P) long, left-padded, beginning-of-sequence first
    prompt_mask: Tensor  # (B, P) long, 1 on prompt tokens
    completion_ids: Tensor  # (B, T) long, pad after end-of-sequence
    # (B, T) float: log-prob of each sampled token under the distribution it was drawn from
    # (temperature applied); None when the backend cannot say. Junk after end-of-sequence.
    logp: Optional[Tensor]
    # (B, T) float: entropy of the distribution each token was drawn from (temperature applied),
    # or None. Only a `same_policy` backend's is the trainer's (it stands in for rescoring).
    entropy: Optional[Tensor] = None


@runtime_checkable
class Backend(Protocol):
    name: str
    # True when it samples with the trainer's own model object at its current weights, so its
    # log-probs and entropy are the rollout policy's (the rescoring pass can be skipped).
    same_policy: bool

    def generate(self, model, tokenizer, prompts: list[str], n: int, max_new_tokens: int,
                 temperature: float, generator: torch.Generator, greedy: bool = False) -> RawRollout:
        """n completions of each prompt, seeded from `generator`."""
        ...

    def push_weights(self, model) -> None:
        """Make the next `generate` sample from `model`'s current weights."""
        ...

    def close(self) -> None:
        ...
