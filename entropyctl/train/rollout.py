"""Sampling completions: `sample(model, tokenizer, problems, ...) -> Rollout`.

The torch backend is a batched sampler with a KV cache (one prefill, then one token per
step for every unfinished row). A vLLM backend slots in behind the same signature through
BACKENDS. Sampling is seeded through an explicit torch.Generator, so a round is
reproducible on CPU.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from transformers import DynamicCache

from entropyctl.maths.batch import Rollout
from entropyctl.errors import Divergence
from entropyctl.models.loading import cache_kwarg, encode_prompts, positions


def completion_mask_from_ids(ids: Tensor, eos_id: int) -> tuple[Tensor, Tensor]:
    """(mask (B, T) float: tokens up to and including the first end-of-sequence,
    finished (B,) bool: whether the row emitted end-of-sequence)."""
    is_eos = ids == eos_id
    before = (is_eos.long().cumsum(1) - is_eos.long()) == 0
    return before.float(), is_eos.any(1)


@torch.no_grad()
def sample_torch(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float,
                 generator: torch.Generator, greedy: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """(prompt_ids (B, P), prompt_mask (B, P), completion_ids (B, T)) with a KV cache."""
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
        done = done | (nxt == eos)
        if bool(done.all()):
            break
        # Finished rows keep decoding pad tokens; their outputs are masked out afterwards.
        attn = torch.cat([attn, torch.ones(B, 1, dtype=attn.dtype, device=dev)], dim=1)
        out = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos,
                    use_cache=True, **cache)
        logits, next_pos = out.logits[:, -1], next_pos + 1
    return prompt_ids, prompt_mask, torch.stack(steps, dim=1)


BACKENDS: dict[str, Callable] = {"torch": sample_torch}


def sample(model, tokenizer, problems: list, group_size: int, max_new_tokens: int,
           temperature: float, generator: torch.Generator, greedy: bool = False,
           backend: str = "torch") -> Rollout:
    """`group_size` completions for each problem; responses of one problem are contiguous."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown rollout.backend {backend!r}; choose one of {sorted(BACKENDS)}")
    rows = [p for p in problems for _ in range(group_size)]
    prompt_ids, prompt_mask, ids = BACKENDS[backend](
        model, tokenizer, [p.prompt for p in rows], max_new_tokens, temperature, generator, greedy
    )
    mask, finished = completion_mask_from_ids(ids, tokenizer.eos_token_id)
    # Text of each completion without end-of-sequence; an unfinished one is marked so that
    # the reward can refuse it (the answer must end within max_new_tokens).
    keep = (mask.bool() & (ids != tokenizer.eos_token_id))
    ids_host, keep = ids.cpu(), keep.cpu()  # one copy, not one per row
    texts = tokenizer.batch_decode([row[k].tolist() for row, k in zip(ids_host, keep)], skip_special_tokens=True)
    texts = [t if f else t + "\u2026" for t, f in zip(texts, finished.tolist())]
    group_ids = torch.arange(len(problems)).repeat_interleave(group_size)
    return Rollout(prompt_ids, prompt_mask, ids, mask, texts, group_ids, rows)
