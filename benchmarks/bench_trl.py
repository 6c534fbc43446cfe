"""The same RL round in TRL's GRPOTrainer and in entropyctl, timed in alternating pairs (issue 14).

One process, one machine state for both: TRL's trainer runs its loop, and a callback runs one
entropyctl round after every TRL round (one generation batch + its optimiser steps), timing it
separately and leaving it out of TRL's interval. Both start from the lab base checkpoint
(two model objects loaded from the same directory), draw the lab task's training prompts,
score completions with the task's own scorer, and run on the CPU with the same torch threads.
The first pair warms both up and is dropped; each later pair gives TRL time / entropyctl time.

Matched (demo config): 64 prompts x G = 8 completions, 16 new tokens at temperature 1 (no top-k,
no top-p), 8 optimiser steps of 64 completions each, one epoch (num_iterations 1), AdamW at
optim.lr with constant rate, grad-clip 1, clip 0.2, no KL in the loss (beta 0), rewards
normalised by the group's std, loss averaged over a minibatch's tokens (TRL loss_type=bnpo),
float32, no gradient checkpointing, no eval, no logging, no saving.

Run: .venv/bin/python benchmarks/run_all.py --out bench-results --only bench_trl
TRL is the optional `bench` extra (pip install -e '.[bench]'); without it the row is skipped.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MEASURE = "same round in TRL GRPOTrainer / entropyctl (median of N pair ratios)"
TARGET = 3.0


def _row(value, ok, **extra) -> dict:
    return {"measure": MEASURE, "value": value, "unit": "x", "target": f">= {TARGET:g}x", "ok": ok, **extra}


def main(out_dir: str | Path | None = None, pairs: int = 8, prompts: int = 64, threads: int = 2) -> dict:
    try:
        import trl
    except ImportError:
        return {"benchmark": "trl",
                "rows": [_row(None, None, skipped="TRL is not installed: pip install -e '.[bench]'")]}
    import torch
    from datasets import Dataset
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from entropyctl.config import register_schemas
    from entropyctl.models.loading import load_policy
    from entropyctl.train.loop import resolve_model_path, run_round, setup

    never = 10**9  # rounds and eval.every beyond any timed round: no round evaluates
    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = OmegaConf.to_object(compose("config", overrides=[
            f"rounds={never}", f"eval.every={never}", f"threads={threads}", "progress=false",
            f"rollout.prompts_per_round={prompts}", f"cache_dir={REPO / 'runs' / '.cache'}"]))
    torch.set_num_threads(threads)
    state = setup(cfg, log=lambda *_: None)  # pretrains the lab base on a cache miss
    path = resolve_model_path(cfg, log=lambda *_: None)
    ro, opt, G = cfg.rollout, cfg.optim, cfg.rollout.group_size
    rounds = pairs + 1  # the first pair warms both trainers up
    completions = ro.prompts_per_round * G
    if completions % opt.minibatches:
        raise ValueError(f"{completions} completions do not split into {opt.minibatches} minibatches")

    model, tokenizer = load_policy(path, cfg.model.attn_impl, cfg.model.dtype, "cpu")
    # entropyctl puts beginning-of-sequence before each prompt (encode_prompts); TRL tokenizes the
    # prompt text as given, and the lab tokenizer reads the literal "<bos>" as that token.
    problems = state.task.sample_train(random.Random(cfg.seed + 1), ro.prompts_per_round * rounds)
    texts = [tokenizer.bos_token + p.prompt for p in problems]
    first = tokenizer(texts[0])["input_ids"]
    if first[0] != tokenizer.bos_token_id or len(first) != len(problems[0].prompt) + 1:
        raise RuntimeError(f"TRL's prompts would not tokenize as entropyctl's: {first}")
    data = Dataset.from_dict({"prompt": texts, "idx": list(range(len(problems)))})
    eos, task = tokenizer.eos_token_id, state.task

    generations: list[dict] = []  # per TRL generation batch: a check that both rounds do the same work

    def lab_reward(prompts, completions, completion_ids, idx, **_):
        # entropyctl's score(): a completion that never emitted end-of-sequence is unfinished.
        scores = [task.score(text, problems[i], eos in ids) for text, ids, i in zip(completions, completion_ids, idx)]
        # Lengths count end-of-sequence, as entropyctl's response/length does.
        generations.append({"reward": sum(scores) / len(scores),
                            "length": sum(len(ids) for ids in completion_ids) / len(completion_ids)})
        return scores

    # transformers 5.2x renamed gradient_checkpointing (GRPOConfig turns it on by default).
    no_ckpt = next(k for k in ("activation_checkpointing", "gradient_checkpointing")
                   if k in GRPOConfig.__dataclass_fields__)
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench_trl_"), use_cpu=True, bf16=False, fp16=False,
        **{no_ckpt: False}, seed=cfg.seed, report_to="none", logging_strategy="no",
        save_strategy="no", eval_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        per_device_train_batch_size=completions // opt.minibatches, gradient_accumulation_steps=1,
        steps_per_generation=opt.minibatches, num_generations=G, num_iterations=opt.epochs,
        max_completion_length=cfg.task.max_new_tokens, temperature=ro.temperature, top_p=1.0, top_k=0,
        beta=0.0, epsilon=cfg.intervention.get("grpo", {}).get("eps_low", 0.2), loss_type="bnpo",
        scale_rewards="group", learning_rate=opt.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=opt.weight_decay, adam_beta1=opt.beta1, adam_beta2=opt.beta2, max_grad_norm=opt.grad_clip,
        max_steps=opt.minibatches * rounds, log_completions=False,
    )
    measured: list[dict] = []

    class Pairs(TrainerCallback):
        """After each TRL round, one entropyctl round; TRL's clock skips it."""

        def on_train_begin(self, *_, **__):
            torch.set_num_threads(threads)  # in case a library reset it while building the trainer
            self.t = time.perf_counter()

        def on_step_end(self, _args, st, *_, **__):
            if st.global_step % opt.minibatches:
                return
            trl_s = time.perf_counter() - self.t
            r = len(measured)
            t0 = time.perf_counter()
            row = run_round(r, state, cfg)
            wall = time.perf_counter() - t0 - row.get("time/eval", 0.0)
            timers = sum(v for k, v in row.items() if k.startswith("time/") and k != "time/eval")
            measured.append({"pair": r, "trl_s": round(trl_s, 4), "entropyctl_s": round(wall, 4),
                             "entropyctl_timers_s": round(timers, 4), "ratio": round(trl_s / wall, 3),
                             "trl_reward": round(generations[-1]["reward"], 4),
                             "entropyctl_reward": round(row["reward/mean"], 4),
                             "trl_length": round(generations[-1]["length"], 3),
                             "entropyctl_length": round(row["response/length"], 3),
                             "threads": torch.get_num_threads()})
            self.t = time.perf_counter()

    trainer = GRPOTrainer(model=model, reward_funcs=lab_reward, args=args, train_dataset=data,
                          processing_class=tokenizer, callbacks=[Pairs()])
    trainer.remove_callback(PrinterCallback)  # disable_tqdm puts a printer of every log in its place
    try:
        trainer.train()
    finally:
        shutil.rmtree(args.output_dir, ignore_errors=True)  # save_strategy=no: nothing worth keeping

    timed = measured[1:]
    ratios = [p["ratio"] for p in timed]
    med = statistics.median(ratios) if ratios else None
    return {
        "benchmark": "trl",
        "rows": [_row(None if med is None else round(med, 3), None if med is None else med >= TARGET,
                      range=[min(ratios), max(ratios)] if ratios else None, n_pairs=len(ratios))],
        "pairs": measured,
        "entropyctl_round_s_median": statistics.median(p["entropyctl_s"] for p in timed) if timed else None,
        "entropyctl_timers_s_median": statistics.median(p["entropyctl_timers_s"] for p in timed) if timed else None,
        "trl_round_s_median": statistics.median(p["trl_s"] for p in timed) if timed else None,
        "trl_version": trl.__version__,
        "threads": threads,
        "config": (f"lab base, {ro.prompts_per_round} prompts x G={G}, {cfg.task.max_new_tokens} new tokens, "
                   f"T={ro.temperature}, {opt.minibatches} optimiser steps of {completions // opt.minibatches}, "
                   f"lr {opt.lr}, beta 0, TRL loss_type=bnpo and optim={getattr(args.optim, 'value', args.optim)}, "
                   f"cpu float32, {threads} threads, eval excluded; "
                   "first pair dropped; entropyctl time = run_round wall minus eval"),
    }


if __name__ == "__main__":
    import json
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    p = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    print(json.dumps(main(pairs=n, prompts=p), indent=2))
