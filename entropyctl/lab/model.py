"""The lab's model: a transformers LlamaForCausalLM small enough to train on 2 CPU cores."""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from entropyctl.config import ModelConfig


def build_lab_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> LlamaForCausalLM:
    if cfg.hidden % cfg.heads:
        raise ValueError(f"model.hidden ({cfg.hidden}) must be divisible by model.heads ({cfg.heads})")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        intermediate_size=cfg.ffn,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation=cfg.attn_impl,
    )
    return LlamaForCausalLM(config)
