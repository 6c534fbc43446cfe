"""Loading a causal LM + tokenizer from a local directory onto a device (refusing what cannot
work), and the small pieces every pass over it shares: prompt encoding, stop tokens, positions,
the KV-cache keyword, the precision context. The scoring passes are in models/scoring.py.

The lab's pretrained base and a user's Hugging Face checkpoint load through the same
`load_policy`; nothing is ever fetched from a hub (local_files_only)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from torch import Tensor

from entropyctl.errors import BadInput
from entropyctl.models.precision import DTYPES


def resolve_device(name: str) -> torch.device:
    """`auto` = the first CUDA device when there is one, else the CPU. A CUDA device asked for
    on a machine without one is a user error, said in one line."""
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
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    # Loading a local checkpoint needs no per-shard progress bars between our own.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    path = Path(path)
    check_is_checkpoint(path)
    check_architecture(path)
    tokenizer = load_tokenizer(path)  # before the weights: a 7B model takes a minute to read
    kwargs = {"local_files_only": True}
    if attn_impl:
        kwargs["attn_implementation"] = attn_impl
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], **kwargs).to(device)
    check_causal(path, model)
    if gradient_checkpointing:
        enable_checkpointing(model)
    check_pair(path, model, tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def check_is_checkpoint(path: Path) -> None:
    """A folder holding config.json, else one line: with the checkpoints found inside it (a
    training output folder) or the folder holding it (a file of a checkpoint) when there are."""
    if (path / "config.json").is_file():
        return
    hint = "give a directory saved with save_pretrained, or leave model.path unset for the lab model"
    if path.is_file() and (path.parent / "config.json").is_file():
        hint = f"it is a file of a checkpoint: give the folder, model.path={path.parent}"
    elif path.is_dir():
        inside = sorted((d for d in path.iterdir() if (d / "config.json").is_file()), key=_step_order)
        if inside:
            more = f" (and {len(inside) - 3} more)" if len(inside) > 3 else ""
            names = ", ".join(d.name for d in inside[-3:])
            hint = f"it holds checkpoints: give one, e.g. model.path={inside[-1]}; found {names}{more}"
    raise BadInput(f"model.path {str(path)!r} is not a local Hugging Face checkpoint (no config.json); {hint}")


def _step_order(d: Path) -> tuple:
    """checkpoint-500 before checkpoint-1000 (a trainer's output folder), then by name."""
    digits = "".join(c for c in d.name.rsplit("-", 1)[-1] if c.isdigit())
    return (int(digits) if digits else -1, d.name)


# transformers 5 saves a tokenizer without a model-specific class under this name, which
# transformers 4 cannot resolve; both read the older name as the same class.
NEW_GENERIC, PORTABLE_GENERIC = "TokenizersBackend", "PreTrainedTokenizerFast"


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    import transformers

    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise BadInput(f"model.path {str(path)!r} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save "
                       "the checkpoint's tokenizer into it: AutoTokenizer.from_pretrained(SOURCE).save_pretrained(DIR)")
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except ValueError as e:
        if NEW_GENERIC in str(e):
            raise BadInput(f"model.path {str(path)!r}: its tokenizer was saved by transformers 5 (tokenizer_class "
                           f"{NEW_GENERIC!r}), which transformers {transformers.__version__} cannot read; use "
                           f"transformers>=5, or set \"tokenizer_class\": \"{PORTABLE_GENERIC}\" in its "
                           "tokenizer_config.json") from None
        raise BadInput(f"model.path {str(path)!r}: transformers {transformers.__version__} cannot read its "
                       f"tokenizer ({e}); save it again with save_pretrained") from None


def save_tokenizer(tokenizer, out: Path) -> None:
    """save_pretrained, with a generic tokenizer's class written under the name both
    transformers 4 and 5 read: a lab base or an export is then loadable by either."""
    tokenizer.save_pretrained(out)
    config_file = out / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    if config.get("tokenizer_class") == NEW_GENERIC:
        config["tokenizer_class"] = PORTABLE_GENERIC
        config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


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
