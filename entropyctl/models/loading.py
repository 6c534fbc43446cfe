"""Loading a causal LM + tokenizer from a local directory, and the one forward pass every
stage shares (rescoring, update, base-model scoring): logits at the completion positions.

The lab's pretrained base and a user's Hugging Face checkpoint load through the same
`load_policy`; nothing is ever fetched from a hub (local_files_only)."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import Tensor


def load_policy(path: str | Path, attn_impl: str | None = None):
    """(model, tokenizer) from a local checkpoint directory; one clear error if it is not one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # Loading a local checkpoint needs no per-shard progress bars between our own.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model.path {str(path)!r} is not a local Hugging Face checkpoint (no config.json); "
            "give a directory saved with save_pretrained, or leave model.path unset for the lab model"
        )
    kwargs = {"local_files_only": True}
    if attn_impl:
        kwargs["attn_implementation"] = attn_impl
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def encode_prompts(tokenizer, prompts: list[str]) -> tuple[Tensor, Tensor]:
    """Left-padded prompt ids (B, P) and mask (B, P), beginning-of-sequence first."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    seqs = [bos + ids for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    P = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), P), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), P), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, P - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, P - len(s):] = 1
    return ids, mask


def positions(mask: Tensor) -> Tensor:
    """Position ids that skip left padding: 0 at each row's first real token."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def cache_kwarg(model) -> str:
    """The keyword a model's forward takes its KV cache under: transformers 5.2x renamed
    `past_key_values` to `cache` (the old name warns on every call and is removed in 5.40),
    while the releases vLLM's CPU build pins still know only the old one."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def completion_logits(model, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor,
                      completion_mask: Tensor, temperature: float) -> Tensor:
    """Temperature-scaled logits (B, T, V) predicting each completion token (spec §0: entropy
    and log-probs are for the distribution the rollout sampled from)."""
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attn = torch.cat([prompt_mask, completion_mask.long()], dim=1)
    P, T = prompt_ids.shape[1], completion_ids.shape[1]
    logits = model(input_ids=ids, attention_mask=attn, position_ids=positions(attn)).logits
    return logits[:, P - 1 : P - 1 + T].float() / temperature
