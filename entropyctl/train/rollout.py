"""Sampling completions: `sample(model, tokenizer, problems, ..., backend) -> Rollout`.

`sample` is the one entry: it asks a rollout backend (entropyctl.train.backends: `torch`,
`vllm`) for token ids and their sampling log-probs, and turns that raw output into the
Rollout. The torch backend's KV-cache sampler lives in entropyctl/train/backends/torch_backend.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

from entropyctl.config import RolloutConfig
from entropyctl.maths.batch import Rollout, Scored
from entropyctl.maths.correction import correction_weights, mismatch_metrics
from entropyctl.maths.losses import masked_mean
from entropyctl.models.loading import stop_ids
from entropyctl.train.backends import make_backend


def completion_mask_from_ids(ids: Tensor, eos_ids: int | list[int]) -> tuple[Tensor, Tensor]:
    """(mask (B, T) float: tokens up to and including the first end-of-sequence (any of
    `eos_ids`), finished (B,) bool: whether the row emitted one)."""
    is_eos = torch.isin(ids, torch.tensor(eos_ids, device=ids.device))
    before = (is_eos.long().cumsum(1) - is_eos.long()) == 0
    return before.float(), is_eos.any(1)


def sample(model, tokenizer, problems: list, group_size: int, max_new_tokens: int,
           temperature: float, generator: torch.Generator, greedy: bool = False,
           backend="torch") -> Rollout:
    """`group_size` completions for each problem; responses of one problem are contiguous.
    `backend`: a Backend (entropyctl.train.backends) or the name of a stateless one (torch)."""
    if isinstance(backend, str):
        backend = make_backend(backend)
    rows = [p for p in problems for _ in range(group_size)]
    raw = backend.generate(model, tokenizer, [p.prompt for p in problems], group_size, max_new_tokens,
                           temperature, generator, greedy)
    prompt_ids, prompt_mask, ids = raw.prompt_ids, raw.prompt_mask, raw.completion_ids
    stops = stop_ids(model, tokenizer)
    mask, finished = completion_mask_from_ids(ids, stops)
    # Text of each completion without end-of-sequence; whether it ended travels as `finished`
    # (the task decides what a truncated answer earns).
    keep = mask.bool() & ~torch.isin(ids, torch.tensor(stops, device=ids.device))
    ids_host, keep = ids.cpu(), keep.cpu()  # one copy, not one per row
    texts = tokenizer.batch_decode([row[k].tolist() for row, k in zip(ids_host, keep)], skip_special_tokens=True)
    group_ids = torch.arange(len(problems)).repeat_interleave(group_size)
    logp = None if raw.logp is None else raw.logp * mask  # 0 after end-of-sequence
    h = raw.entropy * mask if raw.entropy is not None and backend.same_policy else None
    return Rollout(prompt_ids, prompt_mask, ids, mask, texts, group_ids, rows, finished,
                   rollout_logp=logp, rollout_h=h)


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
