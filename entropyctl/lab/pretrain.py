"""Pretraining the lab's base model on the task's synthetic corpus, cached by config hash.

The base checkpoint (safetensors + config + tokenizer + pretrain.json) lives in
`<cache_dir>/base-<hash>/` (default `runs/.cache/`), where the hash covers every setting that changes the
weights (architecture, pretraining, task corpus). Every run and seed sharing them reuses it.
The directory is written under a temporary name and renamed, so concurrent sweeps never see
a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from entropyctl.config import MODEL_RUNTIME_KEYS, ModelConfig, TaskConfig
from entropyctl.lab.model import build_lab_model
from entropyctl.lab.task import AdditionTask
from entropyctl.lab.tokenizer import build_char_tokenizer
from entropyctl.models.loading import save_tokenizer
from entropyctl.progress import WorkProgress

CACHE_VERSION = 1  # bump when pretraining code changes the weights for the same config
LAB_TASK_KEYS = ("name", "digits", "formats", "error_offsets", "val_seed")


def base_hash(model_cfg: ModelConfig, task_cfg: TaskConfig) -> str:
    m = {k: v for k, v in asdict(model_cfg).items()
         if k not in ("name", "path", "attn_impl", *MODEL_RUNTIME_KEYS)}
    # Only what shapes the corpus (the prompt-file fields of TaskConfig leave the cache alone).
    t = {k: v for k, v in asdict(task_cfg).items() if k in LAB_TASK_KEYS}
    t["formats"] = [{k: f[k] for k in ("name", "prefix", "share", "correct")} for f in t["formats"]]
    blob = json.dumps({"v": CACHE_VERSION, "model": m, "task": t}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def base_dir(cache_dir: str | Path, model_cfg: ModelConfig, task_cfg: TaskConfig) -> Path:
    return Path(cache_dir) / f"base-{base_hash(model_cfg, task_cfg)}"


def corpus_batch(task: AdditionTask, tokenizer, rng: random.Random, n: int) -> tuple[torch.Tensor, ...]:
    """(input_ids, attention_mask, labels) for n corpus sequences; loss on completion only."""
    problems = task.sample_train(rng, n)
    prompts = tokenizer([p.prompt for p in problems], add_special_tokens=False)["input_ids"]
    comps = tokenizer([task.corpus_completion(rng, p) for p in problems], add_special_tokens=False)["input_ids"]
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    seqs = [([bos] + p, c + [eos]) for p, c in zip(prompts, comps)]
    L = max(len(p) + len(c) for p, c in seqs)
    # Padded lists, then one tensor each: a tensor per row was a third of a step's batch time.
    ids = [p + c + [pad] * (L - len(p) - len(c)) for p, c in seqs]
    attn = [[1] * (len(p) + len(c)) + [0] * (L - len(p) - len(c)) for p, c in seqs]
    labels = [[-100] * len(p) + c + [-100] * (L - len(p) - len(c)) for p, c in seqs]
    return tuple(torch.tensor(x, dtype=torch.long) for x in (ids, attn, labels))


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def pretrain(model_cfg: ModelConfig, task_cfg: TaskConfig, out_dir: Path, progress=None) -> dict:
    """Train the lab model from scratch and save it to out_dir; returns its stats."""
    from entropyctl.train.evaluate import evaluate

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(model_cfg.pretrain_seed)
    rng = random.Random(model_cfg.pretrain_seed)
    # The corpus covers every operand and its stats count every format, whatever RL trains on
    # (task.operands, task.reward_formats are not in base_hash).
    task = AdditionTask(replace(task_cfg, kind="addition", operands=None, reward_formats=None))
    tokenizer = build_char_tokenizer()
    model = build_lab_model(model_cfg, tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=model_cfg.pretrain_lr, weight_decay=0.0)
    t0, losses = time.time(), []
    model.train()
    for step in range(model_cfg.pretrain_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, model_cfg.pretrain_steps, model_cfg.pretrain_warmup, model_cfg.pretrain_lr)
        ids, attn, labels = corpus_batch(task, tokenizer, rng, model_cfg.pretrain_batch)
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, model_cfg.pretrain_steps, losses[-1])
    model.eval()
    gen = torch.Generator().manual_seed(model_cfg.pretrain_seed)
    ev = evaluate(model, tokenizer, task, temperature=1.0, max_new_tokens=task_cfg.max_new_tokens,
                  generator=gen, greedy=True)
    tail = losses[-max(1, len(losses) // 20):]
    stats = {
        "steps": model_cfg.pretrain_steps,
        "seconds": round(time.time() - t0, 1),
        "final_loss": sum(tail) / len(tail),
        "params": sum(p.numel() for p in model.parameters()),
        "corpus_accuracy": task.corpus_accuracy(),
        **{k.replace("eval/", "val_"): v for k, v in ev.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    save_tokenizer(tokenizer, out_dir)
    (out_dir / "pretrain.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def ensure_base(model_cfg: ModelConfig, task_cfg: TaskConfig, cache_dir: str | Path,
                progress: bool = True) -> tuple[Path, dict, bool]:
    """(checkpoint dir, its pretrain stats, whether it was reused from the cache)."""
    final = base_dir(cache_dir, model_cfg, task_cfg)
    if (final / "pretrain.json").is_file():
        return final, json.loads((final / "pretrain.json").read_text()), True
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    steps = model_cfg.pretrain_steps
    with WorkProgress("pretraining the lab base", steps, unit="steps", fields=("loss",), enabled=progress) as bar:
        stats = pretrain(model_cfg, task_cfg, tmp, lambda step, _total, loss: bar.update(step, loss=f"{loss:.3f}"))
    try:
        os.rename(tmp, final)
    except OSError:
        # Another process finished the same base first: theirs is identical (same seed).
        shutil.rmtree(tmp, ignore_errors=True)
        stats = json.loads((final / "pretrain.json").read_text())
    return final, stats, False
