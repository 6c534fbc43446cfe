"""The rollout backend interface: what the round loop asks of whatever samples completions.

A backend turns prompts into sampled token ids (and, when it can, the log-prob it sampled
each token with); `entropyctl.train.rollout.sample` turns that raw output into the Rollout.
Entropy and the log-probs used for training never come from a backend: the torch policy's
rescoring pass gives them (spec §14), so a backend's log-probs only measure the mismatch.

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


@runtime_checkable
class Backend(Protocol):
    name: str

    def generate(self, model, tokenizer, prompts: list[str], n: int, max_new_tokens: int,
                 temperature: float, generator: torch.Generator, greedy: bool = False) -> RawRollout:
        """n completions of each prompt, seeded from `generator`."""
        ...

    def push_weights(self, model) -> None:
        """Make the next `generate` sample from `model`'s current weights."""
        ...

    def close(self) -> None:
        ...
