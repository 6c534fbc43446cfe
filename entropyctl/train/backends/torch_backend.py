"""`rollout=torch`: the trainer's own policy samples, through the KV-cache sampler in
entropyctl.train.rollout. Nothing to push: it always samples from the current weights."""

from __future__ import annotations

import torch

from entropyctl.train.backends.base import RawRollout


class TorchBackend:
    name = "torch"

    def generate(self, model, tokenizer, prompts: list[str], n: int, max_new_tokens: int,
                 temperature: float, generator: torch.Generator, greedy: bool = False) -> RawRollout:
        from entropyctl.train.rollout import sample_torch  # rollout imports this package lazily too

        rows = [p for p in prompts for _ in range(n)]
        return RawRollout(*sample_torch(model, tokenizer, rows, max_new_tokens, temperature, generator, greedy))

    def push_weights(self, model) -> None:
        pass

    def close(self) -> None:
        pass
