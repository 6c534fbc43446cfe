"""`rollout=torch`: the trainer's own policy samples, with a batched KV-cache sampler (one
prefill, then one token per step for every unfinished row). Nothing to push: it always samples
from the current weights. Sampling is seeded through an explicit torch.Generator, so a round is
reproducible on CPU."""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import DynamicCache

from entropyctl.errors import Divergence
from entropyctl.maths.batch import pad_to
from entropyctl.maths.entropy import entropy_from_logits
from entropyctl.models.loading import cache_kwarg, encode_prompts, positions, stop_ids
from entropyctl.train.backends.base import RawRollout


class TorchBackend:
    name = "torch"
    same_policy = True  # the trainer's model object itself: its step log-probs are the policy's

    def __init__(self, max_rows: int = 0):
        self.max_rows = max_rows  # rows decoded at once (rollout.max_rows); 0 = all

    def generate(self, model, tokenizer, prompts: list[str], n: int, max_new_tokens: int,
                 temperature: float, generator: torch.Generator, greedy: bool = False) -> RawRollout:
        per = len(prompts) if not self.max_rows else max(1, self.max_rows // n)  # whole groups
        parts = [sample_torch(model, tokenizer, prompts[i:i + per], max_new_tokens, temperature, generator,
                              greedy, n=n) for i in range(0, len(prompts), per)]
        return RawRollout(*(parts[0] if len(parts) == 1 else _concat(parts, tokenizer.pad_token_id)))

    def push_weights(self, model) -> None:
        pass

    def close(self) -> None:
        pass


def _concat(parts: list[tuple[Tensor, ...]], pad: int) -> tuple[Tensor, ...]:
    """Chunks of sample_torch's output as one: prompts left-padded, completions right-padded."""
    P = max(x[0].shape[1] for x in parts)
    T = max(x[2].shape[1] for x in parts)

    def cat(i: int, width: int, value, left: bool) -> Tensor:
        return torch.cat([pad_to(x[i], width, value, left) for x in parts])

    return (cat(0, P, pad, True), cat(1, P, 0, True), cat(2, T, pad, False), cat(3, T, 0.0, False),
            cat(4, T, 0.0, False))


# A batch is compacted to its unfinished rows only while it keeps at least this many: below
# about a dozen rows the CPU matrix kernels switch path and a row's logits change in the last
# bit, which would change draws; 32 leaves a margin.
MIN_COMPACT_ROWS = 32


def draw(probs: Tensor, noise: Tensor) -> Tensor:
    """(A, V) probabilities, (A, V) Exp(1) noise -> (A,) token ids: argmax p / q, the
    exponential race (Gumbel-max with exp applied), an exact sample from each row. It is what
    torch.multinomial(probs, 1) computes on the CPU, so with the same noise the draws are the
    same bit for bit."""
    return (probs / noise).argmax(-1)


def exp_noise(B: int, V: int, rows: Tensor | None, generator: torch.Generator) -> Tensor:
    """Exp(1) noise for the rows `rows` (None: all) of a (B, V) draw: on the CPU bit for bit
    `torch.empty(B, V).exponential_(generator=generator)[rows]`, which draws a float64 uniform u
    per element and returns -log1p(-u) in float32 (tests/test_rollout.py holds torch to it).
    The uniforms are drawn for the whole batch, so which rows are still decoding never shifts
    the generator's stream; the logarithm, the costly part, only for the rows that need it."""
    u = torch.empty(B, V, dtype=torch.float64, device=generator.device).uniform_(generator=generator)
    return (-torch.log1p(-(u if rows is None else u[rows]))).float()


# no_grad, not inference_mode: the ids come back as inputs of the update's forward pass, whose
# embedding saves them for the backward pass (inference tensors cannot be saved).
@torch.no_grad()
def sample_torch(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float,
                 generator: torch.Generator, greedy: bool = False, n: int = 1
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """`n` completions of each prompt, contiguous: (prompt_ids (B, P), prompt_mask (B, P),
    completion_ids (B, T), logp (B, T), entropy (B, T)) for B = n * len(prompts), with a KV
    cache; logp is each sampled token's log-prob and entropy that of the distribution it was
    drawn from, both at `temperature` and in float32, as the rescoring pass computes them
    (0 after a row's end-of-sequence). Finished rows leave the batch (its cache included) once
    a quarter of it has finished: a lab completion is half the token budget on average."""
    dev = model.get_input_embeddings().weight.device  # everything below is created there
    prompt_ids, prompt_mask = (t.to(dev) for t in encode_prompts(tokenizer, prompts))
    stops, pad = torch.tensor(stop_ids(model, tokenizer), device=dev), tokenizer.pad_token_id
    pos = positions(prompt_mask)
    # Our own cache object, filled in place by every call: no reading it back from the output
    # under a name that changes between transformers releases.
    dyn = DynamicCache()
    cache = {cache_kwarg(model): dyn}
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=pos, use_cache=True, **cache)
    logits = out.logits[:, -1]
    if n > 1:
        # Each prompt is read once and its cache copied to its n rows: the prefill was about
        # half of a lab rollout's arithmetic when every row recomputed it.
        dyn.batch_repeat_interleave(n)
        prompt_ids, prompt_mask, pos, logits = (t.repeat_interleave(n, dim=0) for t in (prompt_ids, prompt_mask, pos, logits))
    B, P = prompt_ids.shape
    V = logits.shape[-1]
    # The rows the model's batch holds (indices into B), with their mask and next position.
    rows = torch.arange(B, device=dev)
    attn = torch.cat([prompt_mask, prompt_mask.new_ones(B, max_new_tokens)], dim=1)
    next_pos = pos[:, -1:] + 1
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    ids = torch.full((B, max_new_tokens), pad, dtype=torch.long, device=dev)
    logp = torch.zeros(B, max_new_tokens, device=dev)
    ent = torch.zeros(B, max_new_tokens, device=dev)
    steps = 0
    for t in range(max_new_tokens):
        if not torch.isfinite(logits).all():
            raise Divergence("non-finite logits while sampling")
        scaled = logits.float() / temperature
        probs = torch.softmax(scaled, dim=-1)
        if greedy:
            nxt = logits.argmax(-1)
        else:
            nxt = draw(probs, exp_noise(B, V, rows if len(rows) < B else None, generator))
        held_done = done[rows]
        nxt = torch.where(held_done, torch.full_like(nxt, pad), nxt)
        ids[rows, t] = nxt
        # Beside (not instead of) the softmax above, so the draws stay bit-identical.
        logp[rows, t] = torch.log_softmax(scaled, -1).gather(1, nxt[:, None]).squeeze(1)
        ent[rows, t] = entropy_from_logits(scaled, probs)
        held_done = held_done | torch.isin(nxt, stops)
        done[rows] = held_done
        steps = t + 1
        live = ~held_done
        n_live = int(live.sum())
        if n_live == 0:
            break
        if MIN_COMPACT_ROWS <= n_live <= 0.75 * len(rows):
            keep = live.nonzero().squeeze(1)
            dyn.batch_select_indices(keep)
            rows, nxt, attn, next_pos = rows[keep], nxt[keep], attn[keep], next_pos[keep]
        # Finished rows still held keep decoding pad tokens; their outputs are masked out.
        out = model(input_ids=nxt[:, None], attention_mask=attn[:, : P + t + 1], position_ids=next_pos,
                    use_cache=True, **cache)
        logits, next_pos = out.logits[:, -1], next_pos + 1
    return prompt_ids, prompt_mask, ids[:, :steps], logp[:, :steps], ent[:, :steps]
