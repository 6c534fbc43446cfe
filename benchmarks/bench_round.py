"""Seconds per lab round (eval excluded) and rollout throughput against transformers' `generate`.

The demo's config (64 prompts x G=8 = 512 completions, 8 minibatches), 2 threads. A round's
time is the wall time of `run_round` minus its eval: rollout, scoring, update, metrics, all of
it. The median of `rounds` rounds after one warm-up round. Pretrains the lab base first if
runs/.cache lacks it (not counted).

Rollout: the torch backend's KV-cache sampler against `model.generate(do_sample=True)` on the
same model, the same 64 prompts x G = 8 and the same token budget, alternating, `pairs` times; tokens
per second counts completion tokens up to and including end-of-sequence, the same way for both.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THREADS = 2


def demo_state(rounds: int):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from entropyctl.config import register_schemas
    from entropyctl.train.loop import setup

    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        # eval.every beyond the timed rounds: eval is excluded from the target, so it never runs.
        cfg = OmegaConf.to_object(compose("config", overrides=[
            "experiment=demo", f"rounds={rounds + 100}", f"eval.every={rounds + 50}",
            f"cache_dir={REPO / 'runs' / '.cache'}", "progress=false", f"threads={THREADS}"]))
    return cfg, setup(cfg, log=lambda *_: None)


def time_rounds(cfg, state, rounds: int) -> tuple[list[float], list[dict]]:
    from entropyctl.train.loop import run_round

    walls, rows = [], []
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        row = run_round(r, state, cfg)
        wall = time.perf_counter() - t0 - row.get("time/eval", 0.0)
        if r:  # round 0 warms up
            walls.append(wall)
            rows.append(row)
    return walls, rows


def completion_tokens(ids, eos: int) -> int:
    is_eos = ids == eos
    return int(((is_eos.long().cumsum(1) - is_eos.long()) == 0).sum())


def rollout_vs_generate(cfg, state, pairs: int) -> dict:
    import torch

    from entropyctl.models.loading import encode_prompts
    from entropyctl.train.backends.torch_backend import sample_torch

    tok, model = state.tokenizer, state.model
    problems = state.task.sample_train(random.Random(1), cfg.rollout.prompts_per_round)
    G, T = cfg.rollout.group_size, cfg.task.max_new_tokens
    unique = [p.prompt for p in problems]
    # generate gets the 512 rows (it repeats num_return_sequences' inputs before its prefill anyway)
    ids, mask = encode_prompts(tok, [p for p in unique for _ in range(G)])
    ours, theirs = [], []
    for i in range(pairs + 1):
        gen = torch.Generator().manual_seed(i)
        t0 = time.perf_counter()
        _, _, out, _, _ = sample_torch(model, tok, unique, T, 1.0, gen, n=G)
        t_ours = time.perf_counter() - t0
        n_ours = completion_tokens(out, tok.eos_token_id)
        torch.manual_seed(i)
        t0 = time.perf_counter()
        with torch.no_grad():
            full = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0,
                                  top_k=0, top_p=1.0, max_new_tokens=T, pad_token_id=tok.pad_token_id,
                                  eos_token_id=tok.eos_token_id)
        t_theirs = time.perf_counter() - t0
        n_theirs = completion_tokens(full[:, ids.shape[1]:], tok.eos_token_id)
        if i:  # the first pair warms up
            ours.append(n_ours / t_ours)
            theirs.append(n_theirs / t_theirs)
    ratios = [a / b for a, b in zip(ours, theirs)]
    return {"ours_tokens_per_s": [round(x) for x in ours], "generate_tokens_per_s": [round(x) for x in theirs],
            "ratio_median": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)]}


def main(out_dir: str | Path | None = None, rounds: int = 10, pairs: int = 5) -> dict:
    import torch

    cfg, state = demo_state(rounds)
    walls, rows = time_rounds(cfg, state, rounds)
    per_round = statistics.median(walls)
    phases = {k: round(statistics.median(r[k] for r in rows), 4) for k in rows[0] if k.startswith("time/")}
    gen = rollout_vs_generate(cfg, state, pairs)
    return {
        "benchmark": "round",
        "config": "experiment=demo: 64 prompts x G=8, 8 minibatches, eval excluded, threads=2",
        "threads": torch.get_num_threads(),
        "round_s": [round(w, 4) for w in walls],
        "phases_median_s": phases,
        "completion_tokens_per_round": statistics.median(r["response/length"] * 512 for r in rows),
        "rollout_vs_generate": gen,
        "rows": [
            {"measure": "seconds per lab round, eval excluded", "value": round(per_round, 3), "unit": "s",
             "target": "<= 0.25 s", "ok": per_round <= 0.25},
            {"measure": "rollout tokens/s vs transformers generate, batch 512", "unit": "x",
             "value": round(gen["ratio_median"], 2), "target": ">= 2x", "ok": gen["ratio_median"] >= 2},
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
