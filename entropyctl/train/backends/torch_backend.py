"""`rollout=torch`: the trainer's own policy samples, with a batched KV-cache sampler (one
prefill, then one token per step for every unfinished row). Nothing to push: it always samples
from the current weights. Sampling is seeded through an explicit torch.Generator, so a round is
reproducible on CPU."""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import DynamicCache

from entropyctl.errors import Divergence
from entropyctl.models.loading import cache_kwarg, encode_prompts, positions
from entropyctl.train.backends.base import RawRollout


class TorchBackend:
    name = "torch"

    def generate(self, model, tokenizer, prompts: list[str], n: int, max_new_tokens: int,
                 temperature: float, generator: torch.Generator, greedy: bool = False) -> RawRollout:
        rows = [p for p in prompts for _ in range(n)]
        return RawRollout(*sample_torch(model, tokenizer, rows, max_new_tokens, temperature, generator, greedy))

    def push_weights(self, model) -> None:
        pass

    def close(self) -> None:
        pass


@torch.no_grad()
def sample_torch(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float,
                 generator: torch.Generator, greedy: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(prompt_ids (B, P), prompt_mask (B, P), completion_ids (B, T), logp (B, T)) with a KV
    cache; logp is each sampled token's log-prob at `temperature` (the mismatch metrics' logp_roll)."""
    dev = model.get_input_embeddings().weight.device  # everything below is created there
    prompt_ids, prompt_mask = (t.to(dev) for t in encode_prompts(tokenizer, prompts))
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    B = prompt_ids.shape[0]
    pos = positions(prompt_mask)
    # Our own cache object, filled in place by every call: no reading it back from the output
    # under a name that changes between transformers releases.
    cache = {cache_kwarg(model): DynamicCache()}
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=pos, use_cache=True, **cache)
    logits = out.logits[:, -1]
    attn, next_pos = prompt_mask, pos[:, -1:] + 1
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    steps: list[Tensor] = []
    step_logp: list[Tensor] = []
    for _ in range(max_new_tokens):
        if not torch.isfinite(logits).all():
            raise Divergence("non-finite logits while sampling")
        if greedy:
            nxt = logits.argmax(-1)
        else:
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        steps.append(nxt)
        # Beside (not instead of) the softmax above, so the draws stay bit-identical.
        step_logp.append(torch.log_softmax(logits.float() / temperature, -1).gather(1, nxt[:, None]).squeeze(1))
        done = done | (nxt == eos)
        if bool(done.all()):
            break
        # Finished rows keep decoding pad tokens; their outputs are masked out afterwards.
        attn = torch.cat([attn, torch.ones(B, 1, dtype=attn.dtype, device=dev)], dim=1)
        out = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos,
                    use_cache=True, **cache)
        logits, next_pos = out.logits[:, -1], next_pos + 1
    return prompt_ids, prompt_mask, torch.stack(steps, dim=1), torch.stack(step_logp, dim=1)
