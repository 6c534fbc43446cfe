"""Prompts read once for the rows that share them (models/prefix.py) against the full pass over
every row, where the scoring picks sharing: a 2-layer Qwen2 (hidden 64) built here, 64 prompts x
G = 8, 32-token completions of random lengths, 2 threads. Two passes: a whole round without
gradients (rescoring a vLLM round, the base model's log-probs) and the update's 8 minibatches
of 64 random rows with their backward pass. Alternating pairs; the median ratio.

Not a row of issue 14's table (the lab's 6-token prompts never share); the target is that
sharing, where it is chosen, is never the slower way."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THREADS, U, G, T = 2, 64, 8, 32


def _batch(vocab: int, P: int):
    import torch

    g = torch.Generator().manual_seed(0)
    p_ids = torch.randint(3, vocab, (U, P), generator=g).repeat_interleave(G, 0)
    c_ids = torch.randint(3, vocab, (U * G, T), generator=g)
    lengths = torch.randint(1, T + 1, (U * G,), generator=g)
    return p_ids, torch.ones_like(p_ids), c_ids, (torch.arange(T)[None] < lengths[:, None]).float()


def _time(model, args, grad: bool, shared: bool) -> float:
    import torch

    from entropyctl.models import prefix
    from entropyctl.models.scoring import ForwardBudget, completion_scores

    prefix.MIN_PROMPT_TOKENS = 32 if shared else 10**9  # 10**9: the full pass, as for short prompts
    budget, B = ForwardBudget(None, 256.0), args[0].shape[0]
    t0 = time.perf_counter()
    for idx in torch.randperm(B, generator=torch.Generator().manual_seed(0)).chunk(8 if grad else 1):
        sub = [a[idx] for a in args]
        if grad:
            lp, h = completion_scores(model, *sub, 1.0, budget)
            ((lp * sub[3]).sum() + (h * sub[3]).sum()).backward()
        else:
            with torch.no_grad():
                completion_scores(model, *sub, 1.0, budget)
    return time.perf_counter() - t0


def main(out_dir: str) -> dict:
    import torch

    sys.path.insert(0, str(REPO))
    from entropyctl.models.loading import load_policy
    from tests.hf_fixtures import tiny_checkpoint

    torch.set_num_threads(THREADS)
    model, tok = load_policy(tiny_checkpoint(Path(out_dir) / "bench-prefix-qwen", "qwen2", hidden=64, layers=2))
    model.train()
    rows, detail = [], {}
    for P in (64, 256):
        args = _batch(len(tok), P)
        for grad, what in ((False, "a whole round, no gradients"), (True, "the update's 8 minibatches")):
            _time(model, args, grad, True)  # warm-up
            ratios = []
            for _ in range(3):
                full, shared = _time(model, args, grad, False), _time(model, args, grad, True)
                ratios.append(full / shared)
            ratio = statistics.median(ratios)
            detail[f"P{P}_{'update' if grad else 'round'}"] = [round(r, 3) for r in ratios]
            rows.append({"measure": f"shared {P}-token prompts vs full pass, {what}", "value": round(ratio, 2),
                         "unit": "x", "target": ">= 1x", "ok": ratio >= 1.0})
    return {"benchmark": "prefix", "config": f"qwen2 hidden 64 x 2 layers, {U} prompts x G={G}, T={T}, "
            f"threads={THREADS}", "ratios": detail, "rows": rows}
