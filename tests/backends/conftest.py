"""The conformance suite's world: a tiny random Llama checkpoint (head size 32, which vLLM's CPU
attention accepts) with a 16-token character tokenizer, built at test time, and one backend per
parametrisation. A vLLM engine takes seconds to start, so each backend is built once per session.

Set ENTROPYCTL_CONFORMANCE_OUT=FILE to collect the measured agreements as JSON (make test-vllm).
"""

from __future__ import annotations

import json
import os
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch

BACKENDS = ["torch", "vllm"]
VLLM_MISSING = "vllm is not installed (make test-vllm builds .venv-vllm with the CPU build)"


def build_checkpoint(out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *"0123456789+="])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>",
                                  pad_token="<pad>", unk_token="<unk>")
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         initializer_range=0.2)  # peaked next-token distributions, not near-uniform
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def report():
    """Measured values, written as JSON at the end when ENTROPYCTL_CONFORMANCE_OUT is set."""
    found: dict = {}
    yield found
    out = os.environ.get("ENTROPYCTL_CONFORMANCE_OUT")
    if out:
        Path(out).write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")


_engines: dict = {}


@pytest.fixture(scope="session", params=BACKENDS)
def world(request, checkpoint):
    """(backend, model, tokenizer): the policy loaded from the checkpoint and a backend that
    samples from it."""
    from entropyctl.config import RolloutConfig
    from entropyctl.models.loading import load_policy
    from entropyctl.train.backends import make_backend

    name = request.param
    if name == "vllm" and find_spec("vllm") is None:
        pytest.skip(VLLM_MISSING)
    model, tok = load_policy(checkpoint, "eager")
    model.eval()
    backend = make_backend(name, RolloutConfig(backend=name), checkpoint, model, seed=0)
    yield backend, model, tok
    backend.close()
