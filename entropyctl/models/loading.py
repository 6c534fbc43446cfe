"""Loading a causal LM + tokenizer from a local directory onto a device, and the one forward
pass every stage shares (rescoring, update, base-model scoring): log-probs and entropy at the
completion positions, computed without ever holding the float32 logits of a whole batch.

The lab's pretrained base and a user's Hugging Face checkpoint load through the same
`load_policy`; nothing is ever fetched from a hub (local_files_only)."""

from __future__ import annotations

import contextlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from entropyctl.errors import BadInput
from entropyctl.maths.entropy import entropy_from_logits
from entropyctl.models.buckets import plan_groups, row_lengths
from entropyctl.maths.losses import chunked_logprobs_entropy, logprobs_from_logits

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Config attributes of models whose logits are not plain lm_head(hidden) (Gemma's soft cap,
# Cohere's and Granite's scales): those take the full forward pass instead of the chunked one.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def resolve_device(name: str) -> torch.device:
    """`auto` = the first CUDA device when there is one, else the CPU. A CUDA device asked for
    on a machine without one is a user error, said in one line."""
    from entropyctl.errors import BadInput

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"device={name} but torch sees no CUDA device (torch {torch.__version__}); "
                       "give device=cpu or device=auto, or install a CUDA build of torch")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise BadInput(f"device={name} but there are {torch.cuda.device_count()} CUDA devices; "
                       "give cuda:0 .. cuda:N-1")
    return dev


# Any of these makes a directory's tokenizer loadable (fast, sentencepiece, byte-level BPE).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def load_policy(path: str | Path, attn_impl: str | None = None, dtype: str = "float32",
                device: str | torch.device = "cpu", gradient_checkpointing: bool = False):
    """(model, tokenizer) from a local checkpoint directory, in `dtype` on `device`; one clear
    error if it is not a checkpoint."""
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
    check_architecture(path)
    kwargs = {"local_files_only": True}
    if attn_impl:
        kwargs["attn_implementation"] = attn_impl
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], **kwargs).to(device)
    check_causal(path, model)
    if gradient_checkpointing:
        enable_checkpointing(model)
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise BadInput(f"model.path {str(path)!r} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save "
                       "the checkpoint's tokenizer into it: AutoTokenizer.from_pretrained(SOURCE).save_pretrained(DIR)")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    check_pair(path, model, tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def check_architecture(path: Path) -> None:
    """An architecture with no causal LM in transformers (T5, BART: encoder-decoders; ViT...)
    refused from its config.json, before any weights are read."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    import transformers

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (ValueError, KeyError, OSError) as e:  # an unknown model_type, custom code, bad JSON
        try:
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
        except (ValueError, AttributeError) as bad:
            raise BadInput(f"model.path {str(path)!r}: config.json is not a JSON object ({bad}); "
                           "save the checkpoint again with save_pretrained") from None
        raise BadInput(f"model.path {str(path)!r}: transformers {transformers.__version__} cannot read its "
                       f"config.json (model_type {model_type!r}: {type(e).__name__}); give a checkpoint of an "
                       "architecture this transformers knows") from None
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        kind = "an encoder-decoder" if getattr(config, "is_encoder_decoder", False) else "not a causal language model"
        raise BadInput(f"model.path {str(path)!r} is a {config.model_type} checkpoint, {kind}: entropyctl trains "
                       "decoder-only models; give one (Llama, Qwen, Mistral, Gemma, GPT-2 ...)")


def check_causal(path: Path, model) -> None:
    """A model whose prediction at a position depends on later tokens (BERT loaded through its
    LM head without is_decoder) would score completions that see their own future: every
    log-prob and entropy would be wrong. Two 8-token passes that differ in their last 4 tokens
    must agree on the first 4 positions: to the bit in float32 on the CPU; the margin covers a
    GPU's reduction order (even a random-initialised BERT moves them by 1e-3 of their scale)."""
    V = model.get_input_embeddings().num_embeddings
    dev = model.get_input_embeddings().weight.device
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (1, 8), generator=gen)
    alt = ids.clone()
    alt[0, 4:] = (ids[0, 4:] + 1 + torch.randint(0, V - 1, (4,), generator=gen)) % V  # each one differs
    with torch.no_grad():
        a, b = (model(input_ids=x.to(dev)).logits[0, :4].float() for x in (ids, alt))
    margin = 1e-4 if model.get_input_embeddings().weight.dtype == torch.float32 else 1e-2
    if float((a - b).abs().max()) > margin * float(a.abs().max()):
        raise BadInput(f"model.path {str(path)!r} ({model.config.model_type}) is not causal: its prediction at a "
                       "position changes with the tokens after it; give a decoder-only checkpoint (Llama, Qwen, "
                       "Mistral, Gemma, GPT-2 ...)")


def check_pair(path: Path, model, tokenizer) -> None:
    """A tokenizer the weights cannot read, or one that cannot end a completion, refused in one
    line: otherwise an IndexError or a shape error in the first round, after the run dir exists."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise BadInput(f"model.path {str(path)!r}: the tokenizer has {len(tokenizer)} tokens but the model's "
                       f"embedding has {rows} rows; the tokenizer and the weights come from different "
                       "checkpoints: save the model's own tokenizer with it")
    if not stop_ids(model, tokenizer):
        raise BadInput(f"model.path {str(path)!r}: neither the tokenizer nor generation_config.json names an "
                       "end-of-sequence token, so no completion could end; set eos_token in tokenizer_config.json")


def compute_precision(dtype: str, device: torch.device):
    """The context a trained policy's passes run in: autocast to `dtype` over its float32
    weights (mixed precision, as verl's FSDP actor), nothing for float32. The weights stay
    float32 because AdamW's steps at RL learning rates are below bfloat16's resolution: at
    lr 1e-6, three steps on a bfloat16 copy of the test model moved 2 % of its weights."""
    if dtype == "float32":
        return contextlib.nullcontext()
    # No cast cache: the context spans a whole round, and cached bfloat16 copies of the weights
    # would outlive the optimiser's steps (every minibatch and the eval scored the round's first
    # weights: the lab's reward fell from 0.30 to 0.05 in one round).
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype], cache_enabled=False)


def enable_checkpointing(model) -> None:
    """Recompute each layer in the backward pass. Non-reentrant: works with inputs that need no
    gradient and with our chunked head. transformers 5.2x renamed gradient_checkpointing_enable
    to activation_checkpointing_enable (the old name warns, and goes in v6); older releases
    have only the old one."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def is_checkpointing(model) -> bool:
    name = "is_activation_checkpointing" if hasattr(model, "is_activation_checkpointing") else "is_gradient_checkpointing"
    return bool(getattr(model, name, False))


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


def stop_ids(model, tokenizer) -> list[int]:
    """The tokens that end a completion: the tokenizer's end-of-sequence, then those of the
    checkpoint's generation_config.json, on which `generate` and vLLM stop too (Qwen2.5
    Instruct ends with <|im_end|> or <|endoftext|>; Llama 3.0 Instruct's tokenizer names
    <|end_of_text|> while its turns end with <|eot_id|>)."""
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [tokenizer.eos_token_id, *(extra if isinstance(extra, (list, tuple)) else [extra])]
    return list(dict.fromkeys(i for i in ids if i is not None))


def context_length(config) -> int | None:
    """The positions a checkpoint was built for (prompt + completion), or None if its config
    does not say."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        n = getattr(config, key, None)
        if isinstance(n, int) and n > 0:
            return n
    return None


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


@dataclass(frozen=True)
class ForwardBudget:
    """How much one scoring pass may hold (the values come from the run's config).

    rows_tokens: padded (prompt + completion) tokens per forward pass; a batch with more is
    scored in row chunks (None = the whole batch in one pass). logits_mb: MiB of float32
    logits at a time; a batch whose full logits fit takes the plain forward pass, else the
    head is applied to chunks of completion tokens."""

    rows_tokens: Optional[int]
    logits_mb: float


def _chunkable(model) -> bool:
    """Whether logits are lm_head(decoder(x)) with a decoder we can call on its own."""
    cfg = getattr(model, "config", None)
    try:
        decoder = model.get_decoder()
    except (AttributeError, NotImplementedError):
        return False
    return (decoder is not None and decoder is not model and model.get_output_embeddings() is not None
            and not any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in _LOGIT_TRANSFORMS))


def _score_rows(model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature: float,
                budget: ForwardBudget, entropy: bool) -> tuple[Tensor, Tensor | None]:
    P, T = prompt_ids.shape[1], completion_ids.shape[1]
    V = model.get_output_embeddings().weight.shape[0] if _chunkable(model) else None
    chunk_tokens = int(budget.logits_mb * 2**20) // (4 * V) if V else None
    if V is None or prompt_ids.shape[0] * (P + T) <= chunk_tokens:
        # Everything fits: the plain forward pass (the lab always takes this path).
        logits = completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature)
        return logprobs_from_logits(logits, completion_ids), entropy_from_logits(logits) if entropy else None
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attn = torch.cat([prompt_mask, completion_mask.long()], dim=1)
    hidden = model.get_decoder()(input_ids=ids, attention_mask=attn, position_ids=positions(attn)).last_hidden_state
    return chunked_logprobs_entropy(hidden[:, P - 1 : P - 1 + T], model.get_output_embeddings(),
                                    completion_ids, temperature, max(1, chunk_tokens), entropy)


def completion_scores(model, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor,
                      completion_mask: Tensor, temperature: float, budget: ForwardBudget,
                      entropy: bool = True) -> tuple[Tensor, Tensor | None]:
    """(logp (B, T), h (B, T) or None), float32, of each completion token under temperature-
    scaled logits (spec §0), on the model's device, within `budget`; 0 after a row's last real
    token. Rows are scored in groups of similar completion length, each cut to its longest row
    (models/buckets.py). Inputs may sit on another device (the base model's): they are moved
    to the model's."""
    dev = model.get_input_embeddings().weight.device
    args = [t.to(dev) for t in (prompt_ids, prompt_mask, completion_ids, completion_mask)]
    B, P, T = args[0].shape[0], args[0].shape[1], args[2].shape[1]
    groups = plan_groups(row_lengths(args[3]).tolist(), P)
    if len(groups) == 1 and groups[0][1] == T:
        return _score_budget(model, args, temperature, budget, entropy)
    parts, order = [], []
    for rows, t in groups:
        idx = torch.tensor(rows, device=dev)
        sub = [args[0][idx], args[1][idx], args[2][idx, :t], args[3][idx, :t]]
        lp, h = _score_budget(model, sub, temperature, budget, entropy)
        parts.append((F.pad(lp, (0, T - t)), None if h is None else F.pad(h, (0, T - t))))
        order.extend(rows)
    inv = torch.empty(B, dtype=torch.long, device=dev)
    inv[torch.tensor(order, device=dev)] = torch.arange(B, device=dev)
    logp = torch.cat([p[0] for p in parts])[inv]
    return logp, torch.cat([p[1] for p in parts])[inv] if entropy else None


def _score_budget(model, args: list[Tensor], temperature: float, budget: ForwardBudget,
                  entropy: bool) -> tuple[Tensor, Tensor | None]:
    """One batch, in row chunks when it holds more padded tokens than `budget.rows_tokens`."""
    B, L = args[0].shape[0], args[0].shape[1] + args[2].shape[1]
    rows = B if not budget.rows_tokens else max(1, budget.rows_tokens // L)
    if rows >= B:
        return _score_rows(model, *args, temperature, budget, entropy)
    parts = [_score_rows(model, *(a[i:i + rows] for a in args), temperature, budget, entropy)
             for i in range(0, B, rows)]
    logp = torch.cat([p[0] for p in parts])
    return logp, torch.cat([p[1] for p in parts]) if entropy else None
