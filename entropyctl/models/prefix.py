"""A prompt read once for all the completions that share it. A round's rows come G to a prompt,
and a full forward pass over (prompt, completion) recomputes the prompt for each of them: with
a 300-token prompt, 200-token completions and G = 8, more than half of a scoring pass. When
enough prompt tokens repeat, the decoder runs once over the distinct prompts, each row gets its
prompt's KV cache (a gather, through which gradients flow back into the shared pass), and the
completions continue from there. The values are those of the full pass up to float rounding:
the same sums in another order (tests/test_prefix.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import DynamicCache

from entropyctl.models.loading import cache_kwarg, positions

# When a shared pass pays for its extra decoder call and the gather (measured on the CPU, a
# 2-layer model, G = 8, 32-token completions; tests/test_prefix.py's docstring has the table):
# prompts of 8 tokens gained 1.25x on a whole round and lost 14 % in the update's 64-row
# minibatches, 32-token ones gained 2.3x and lost 20 %, 64-token ones gained 2.8x and 1.5x.
# So: prompts of at least MIN_PROMPT_TOKENS on average, and MIN_SAVED_TOKENS saved in the pass.
# The lab's 6-token prompts never share: its numbers are those of the full pass.
MIN_PROMPT_TOKENS = 32
MIN_SAVED_TOKENS = 1024


@dataclass
class SharedPrompts:
    inverse: Tensor  # (B,) each row's distinct prompt
    kv: list[tuple[Tensor, Tensor]]  # per layer: keys, values (U, heads, P, head_dim)
    last: Tensor  # (U, hidden) the decoder's output at each prompt's last position


def distinct_prompts(prompt_ids: Tensor, prompt_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(ids (U, P), mask (U, P), inverse (B,)): the distinct prompts, each row's."""
    P = prompt_ids.shape[1]
    rows, inverse = torch.unique(torch.cat([prompt_ids, prompt_mask.long()], 1), dim=0, return_inverse=True)
    return rows[:, :P], rows[:, P:], inverse


def worth_sharing(n_rows: int, n_distinct: int, distinct_tokens: int) -> bool:
    """Whether reading `n_distinct` prompts of `distinct_tokens` real tokens in all once, instead
    of once for each of `n_rows` rows, pays (the constants above)."""
    mean = distinct_tokens / max(1, n_distinct)
    return mean >= MIN_PROMPT_TOKENS and (n_rows - n_distinct) * mean >= MIN_SAVED_TOKENS


def read_prompts(decoder, prompt_ids: Tensor, prompt_mask: Tensor,
                 rows_tokens: int | None = None) -> SharedPrompts | None:
    """The distinct prompts through `decoder` (a causal LM's get_decoder()) once, in passes of at
    most `rows_tokens` padded tokens when set (the scoring passes' budget); None when sharing
    does not pay (worth_sharing)."""
    if prompt_mask.shape[1] < MIN_PROMPT_TOKENS:  # no sort of the rows for the lab's short prompts
        return None
    ids, mask, inverse = distinct_prompts(prompt_ids, prompt_mask)
    if not worth_sharing(len(inverse), len(ids), int(mask.sum())):
        return None
    n = len(ids) if not rows_tokens else max(1, rows_tokens // ids.shape[1])
    kv, last = [], []
    for i in range(0, len(ids), n):
        cache = DynamicCache()
        out = decoder(input_ids=ids[i:i + n], attention_mask=mask[i:i + n], position_ids=positions(mask[i:i + n]),
                      use_cache=True, **{cache_kwarg(decoder): cache})
        kv.append(_tensors(cache))
        last.append(out.last_hidden_state[:, -1])
    if len(kv) > 1:
        kv = [[tuple(torch.cat([part[layer][j] for part in kv]) for j in (0, 1)) for layer in range(len(kv[0]))]]
    return SharedPrompts(inverse, kv[0], torch.cat(last))


def continue_rows(decoder, shared: SharedPrompts, rows: Tensor, prompt_mask: Tensor, completion_ids: Tensor,
                  completion_mask: Tensor) -> Tensor:
    """(b, t, hidden): the decoder's output predicting each completion token of `rows` (indices
    into the batch `shared` was read from; the other tensors are those rows' own): the prompt's
    last output, then the completion's own outputs but the last, attending to the prompt's cache."""
    own = shared.inverse[rows]
    first = shared.last[own][:, None]
    t = completion_ids.shape[1]
    if t <= 1:
        return first[:, :t]
    cache = DynamicCache()
    for layer, (k, v) in enumerate(shared.kv):
        cache.update(k[own], v[own], layer)
    attn = torch.cat([prompt_mask, completion_mask[:, : t - 1].long()], 1)
    out = decoder(input_ids=completion_ids[:, : t - 1], attention_mask=attn,
                  position_ids=positions(attn)[:, prompt_mask.shape[1]:], use_cache=True,
                  **{cache_kwarg(decoder): cache})
    return torch.cat([first, out.last_hidden_state], 1)


def _tensors(cache) -> list[tuple[Tensor, Tensor]]:
    """Keys and values per layer: transformers 5 holds them in `layers`, 4.x in two lists."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))
