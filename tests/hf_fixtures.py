"""Tiny random Hugging Face checkpoints and prompt files, built at test time (nothing is
downloaded): a byte-level BPE tokenizer trained with `tokenizers` on a small corpus, with a
chat template, and a Qwen2- or Llama-shaped model of hidden size 32 saved with save_pretrained.

    ckpt = tiny_checkpoint(tmp_path / "qwen", "qwen2")
    data = gsm8k_jsonl(tmp_path / "train.jsonl", 40)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# Chat templates in the two families' shapes (ChatML; Llama 3 headers), short enough to read.
QWEN2_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
FAMILIES = {
    # special tokens, then the roles of bos / eos / pad among them
    "qwen2": (["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
              {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, QWEN2_TEMPLATE),
    "llama": (["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|pad|>"],
              {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|pad|>"},
              LLAMA_TEMPLATE),
}


def gsm8k_rows(n: int, seed: int = 0) -> list[dict]:
    """GSM8K-shaped rows: a word problem and a worked answer ending `#### <number>`."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        rows.append({
            "question": f"Tom has {a} apples and buys {b} more. How many apples does he have now?",
            "answer": f"Tom has {a} + {b} = {a + b} apples.\n#### {a + b}",
        })
    return rows


def gsm8k_jsonl(path: Path, n: int = 40, seed: int = 0) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in gsm8k_rows(n, seed)))
    return path


def train_tokenizer(family: str, vocab_size: int = 320):
    """A byte-level BPE `PreTrainedTokenizerFast` trained on GSM8K-style text, with the
    family's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials, roles, template = FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [f"{r['question']} {r['answer']} Let me check. Notice that the answer is" for r in gsm8k_rows(200, 1)]
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **{k: v for k, v in roles.items() if v})
    fast.chat_template = template
    return fast


def tiny_checkpoint(out: Path, family: str = "qwen2", hidden: int = 32, layers: int = 1,
                    seed: int = 0) -> Path:
    """A random-initialised `family` model (qwen2 | llama) and its tokenizer, saved to `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer = train_tokenizer(family)
    shape = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                 num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                 max_position_embeddings=512, tie_word_embeddings=True,
                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                 pad_token_id=tokenizer.pad_token_id)
    config_cls, model_cls = {"qwen2": (Qwen2Config, Qwen2ForCausalLM),
                             "llama": (LlamaConfig, LlamaForCausalLM)}[family]
    torch.manual_seed(seed)
    model = model_cls(config_cls(**shape))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
