"""The one forward pass every stage shares (rescoring, update, base-model scoring): log-probs and
entropy at the completion positions, without ever holding the float32 logits of a whole batch.

Three ways to spend less on the same values: rows in groups of similar completion length, each
cut to its longest row (models/buckets.py); a batch over `budget.rows_tokens` in row chunks; a
prompt that many rows share read once (models/prefix.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from entropyctl.maths.entropy import entropy_from_logits
from entropyctl.maths.losses import chunked_logprobs_entropy, logprobs_from_logits
from entropyctl.models.buckets import plan_groups, row_lengths
from entropyctl.models.loading import is_checkpointing, positions
from entropyctl.models.prefix import SharedPrompts, continue_rows, read_prompts

# Config attributes of models whose logits are not plain lm_head(hidden) (Gemma's soft cap,
# Cohere's and Granite's scales): those take the full forward pass instead of the chunked one.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def completion_logits(model, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor,
                      completion_mask: Tensor, temperature: float) -> Tensor:
    """Temperature-scaled logits (B, T, V) predicting each completion token (spec §0: entropy
    and log-probs are for the distribution the rollout sampled from), on the model's device
    (inputs are moved there; a no-op when they sit there already)."""
    prompt_ids, prompt_mask, completion_ids, completion_mask = on_model_device(
        model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attn = torch.cat([prompt_mask, completion_mask.long()], dim=1)
    P, T = prompt_ids.shape[1], completion_ids.shape[1]
    logits = model(input_ids=ids, attention_mask=attn, position_ids=positions(attn)).logits
    return logits[:, P - 1 : P - 1 + T].float() / temperature


def on_model_device(model, *tensors: Tensor) -> list[Tensor]:
    dev = model.get_input_embeddings().weight.device
    return [t.to(dev) for t in tensors]


@dataclass(frozen=True)
class ForwardBudget:
    """How much one scoring pass may hold (the values come from the run's config).

    rows_tokens: padded (prompt + completion) tokens per forward pass; a batch with more is
    scored in row chunks (None = the whole batch in one pass). logits_mb: MiB of float32
    logits at a time; a batch whose full logits fit takes the plain forward pass, else the
    head is applied to chunks of completion tokens."""

    rows_tokens: Optional[int]
    logits_mb: float


def has_plain_head(model) -> bool:
    """Whether logits are lm_head(decoder(x)) with a decoder we can call on its own."""
    cfg = getattr(model, "config", None)
    try:
        decoder = model.get_decoder()
    except (AttributeError, NotImplementedError):
        return False
    return (decoder is not None and decoder is not model and model.get_output_embeddings() is not None
            and not any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in _LOGIT_TRANSFORMS))


def completion_hidden(model, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor,
                      completion_mask: Tensor) -> Tensor | None:
    """(B, T, hidden): the decoder's outputs that predict each completion token, on the model's
    device (inputs are moved there), for a caller that applies the output head a chunk of
    positions at a time; None when the logits are not lm_head(hidden) (see has_plain_head)."""
    if not has_plain_head(model):
        return None
    prompt_ids, prompt_mask, completion_ids, completion_mask = on_model_device(
        model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attn = torch.cat([prompt_mask, completion_mask.long()], dim=1)
    P, T = prompt_ids.shape[1], completion_ids.shape[1]
    hidden = model.get_decoder()(input_ids=ids, attention_mask=attn, position_ids=positions(attn)).last_hidden_state
    return hidden[:, P - 1 : P - 1 + T]


def completion_scores(model, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor,
                      completion_mask: Tensor, temperature: float, budget: ForwardBudget,
                      entropy: bool = True) -> tuple[Tensor, Tensor | None]:
    """(logp (B, T), h (B, T) or None), float32, of each completion token under temperature-
    scaled logits (spec §0), on the model's device, within `budget`; 0 after a row's last real
    token. Rows are scored in groups of similar completion length, each cut to its longest row
    (models/buckets.py). Inputs may sit on another device (the base model's): they are moved
    to the model's."""
    args = on_model_device(model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    dev = args[0].device
    B, P, T = args[0].shape[0], args[0].shape[1], args[2].shape[1]
    # Activation checkpointing drops a layer's cache argument in training: no shared prompts there.
    shared = (read_prompts(model.get_decoder(), args[0], args[1], budget.rows_tokens)
              if has_plain_head(model) and not is_checkpointing(model) else None)
    groups = plan_groups(row_lengths(args[3]).tolist(), 0 if shared else P)
    if len(groups) == 1 and groups[0][1] == T:
        return _score_budget(model, args, torch.arange(B, device=dev), shared, temperature, budget, entropy)
    parts, order = [], []
    for rows, t in groups:
        idx = torch.tensor(rows, device=dev)
        sub = [args[0][idx], args[1][idx], args[2][idx, :t], args[3][idx, :t]]
        lp, h = _score_budget(model, sub, idx, shared, temperature, budget, entropy)
        parts.append((F.pad(lp, (0, T - t)), None if h is None else F.pad(h, (0, T - t))))
        order.extend(rows)
    inv = torch.empty(B, dtype=torch.long, device=dev)
    inv[torch.tensor(order, device=dev)] = torch.arange(B, device=dev)
    logp = torch.cat([p[0] for p in parts])[inv]
    return logp, torch.cat([p[1] for p in parts])[inv] if entropy else None


def _score_budget(model, args: list[Tensor], rows: Tensor, shared: SharedPrompts | None, temperature: float,
                  budget: ForwardBudget, entropy: bool) -> tuple[Tensor, Tensor | None]:
    """One batch (`rows` of the whole), in row chunks when it holds more padded tokens than
    `budget.rows_tokens`."""
    B, L = args[0].shape[0], args[0].shape[1] + args[2].shape[1]
    n = B if not budget.rows_tokens else max(1, budget.rows_tokens // L)
    if n >= B:
        return _score_rows(model, args, rows, shared, temperature, budget, entropy)
    parts = [_score_rows(model, [a[i:i + n] for a in args], rows[i:i + n], shared, temperature, budget, entropy)
             for i in range(0, B, n)]
    logp = torch.cat([p[0] for p in parts])
    return logp, torch.cat([p[1] for p in parts]) if entropy else None


def _score_rows(model, args: list[Tensor], rows: Tensor, shared: SharedPrompts | None, temperature: float,
                budget: ForwardBudget, entropy: bool) -> tuple[Tensor, Tensor | None]:
    prompt_ids, prompt_mask, completion_ids, completion_mask = args
    P, T = prompt_ids.shape[1], completion_ids.shape[1]
    V = model.get_output_embeddings().weight.shape[0] if has_plain_head(model) else None
    chunk_tokens = int(budget.logits_mb * 2**20) // (4 * V) if V else None
    head = model.get_output_embeddings()
    if shared is not None:
        hidden = continue_rows(model.get_decoder(), shared, rows, prompt_mask, completion_ids, completion_mask)
        if hidden.shape[0] * T <= chunk_tokens:
            logits = head(hidden).float() / temperature
            return logprobs_from_logits(logits, completion_ids), entropy_from_logits(logits) if entropy else None
        return chunked_logprobs_entropy(hidden, head, completion_ids, temperature, max(1, chunk_tokens), entropy)
    if V is None or prompt_ids.shape[0] * (P + T) <= chunk_tokens:
        # Everything fits: the plain forward pass (the lab always takes this path).
        logits = completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature)
        return logprobs_from_logits(logits, completion_ids), entropy_from_logits(logits) if entropy else None
    hidden = completion_hidden(model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    return chunked_logprobs_entropy(hidden, head, completion_ids, temperature, max(1, chunk_tokens), entropy)
