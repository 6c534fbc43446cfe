"""Sampling completions: `sample(model, tokenizer, problems, ..., backend) -> Rollout`.

`sample` is the one entry: it asks a rollout backend (entropyctl.train.backends: `torch`,
`vllm`) for token ids and their sampling log-probs, and turns that raw output into the
Rollout. The torch backend is `sample_torch` below, a batched sampler with a KV cache (one
prefill, then one token per step for every unfinished row). Sampling is seeded through an
explicit torch.Generator, so a round is reproducible on CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import DynamicCache

from entropyctl.config import RolloutConfig
from entropyctl.maths.batch import Rollout, Scored
from entropyctl.maths.correction import correction_weights, mismatch_metrics
from entropyctl.maths.losses import masked_mean
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
                 generator: torch.Generator, greedy: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(prompt_ids (B, P), prompt_mask (B, P), completion_ids (B, T), logp (B, T)) with a KV
    cache; logp is each sampled token's log-prob at `temperature` (the mismatch metrics' logp_roll)."""
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    B = prompt_ids.shape[0]
    pos = positions(prompt_mask)
    # Our own cache object, filled in place by every call: no reading it back from the output
    # under a name that changes between transformers releases.
    cache = {cache_kwarg(model): DynamicCache()}
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=pos, use_cache=True, **cache)
    logits = out.logits[:, -1]
    attn, next_pos = prompt_mask, pos[:, -1:] + 1
    done = torch.zeros(B, dtype=torch.bool)
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
        attn = torch.cat([attn, torch.ones(B, 1, dtype=attn.dtype)], dim=1)
        out = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos,
                    use_cache=True, **cache)
        logits, next_pos = out.logits[:, -1], next_pos + 1
    return prompt_ids, prompt_mask, torch.stack(steps, dim=1), torch.stack(step_logp, dim=1)


def sample(model, tokenizer, problems: list, group_size: int, max_new_tokens: int,
           temperature: float, generator: torch.Generator, greedy: bool = False,
           backend="torch") -> Rollout:
    """`group_size` completions for each problem; responses of one problem are contiguous.
    `backend`: a Backend (entropyctl.train.backends) or the name of a stateless one (torch)."""
    if isinstance(backend, str):
        from entropyctl.train.backends import make_backend

        backend = make_backend(backend)
    rows = [p for p in problems for _ in range(group_size)]
    raw = backend.generate(model, tokenizer, [p.prompt for p in problems], group_size, max_new_tokens,
                           temperature, generator, greedy)
    prompt_ids, prompt_mask, ids = raw.prompt_ids, raw.prompt_mask, raw.completion_ids
    mask, finished = completion_mask_from_ids(ids, tokenizer.eos_token_id)
    # Text of each completion without end-of-sequence; whether it ended travels as `finished`
    # (the task decides what a truncated answer earns).
    keep = (mask.bool() & (ids != tokenizer.eos_token_id))
    texts = tokenizer.batch_decode([row[k].tolist() for row, k in zip(ids, keep)], skip_special_tokens=True)
    group_ids = torch.arange(len(problems)).repeat_interleave(group_size)
    logp = None if raw.logp is None else raw.logp * mask  # 0 after end-of-sequence
    return Rollout(prompt_ids, prompt_mask, ids, mask, texts, group_ids, rows, finished, rollout_logp=logp)


def mismatch(ro: Rollout, scored: Scored, cfg: RolloutConfig) -> tuple[Scored, dict[str, float]]:
    """The round's train/inference mismatch (spec §14), raw, and `scored` with the
    correction weights `rollout.correction` asks for. A backend that reports no log-probs
    is taken to sample the trainer's distribution (δ = 0)."""
    mask = ro.completion_mask
    logp_roll = scored.old_logp if ro.rollout_logp is None else ro.rollout_logp
    stats = mismatch_metrics(scored.old_logp, logp_roll, mask)
    if cfg.correction != "none":
        w, share = correction_weights(scored.old_logp, logp_roll, mask, cfg.correction,
                                      cfg.correction_threshold)
        scored = Scored(scored.old_logp, scored.h, scored.ref_logp, is_weight=w)
        stats["correction/frac"] = share
        stats["correction/weight_mean"] = masked_mean(w, mask).item()
    return scored, stats
