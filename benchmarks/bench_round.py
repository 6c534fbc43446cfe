"""Seconds per RL round on the embedded lab (the demo's config), by phase.

A baseline for the speed targets ahead (vLLM rollouts, larger models): the median over
`rounds` rounds after one warm-up round of rollout, rescoring, update and eval time, and
completion tokens sampled per second. Pretrains the lab base first if runs/.cache lacks it
(reported separately, not in the per-round figures).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(out_dir: str | Path | None = None, rounds: int = 10) -> dict:
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from entropyctl.config import register_schemas
    from entropyctl.train.loop import run_round, setup

    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = OmegaConf.to_object(compose("config", overrides=[
            f"rounds={rounds + 1}", f"cache_dir={REPO / 'runs' / '.cache'}", "progress=false"]))
    t0 = time.perf_counter()
    state = setup(cfg, log=lambda *_: None)
    setup_s = time.perf_counter() - t0
    rows = [run_round(r, state, cfg) for r in range(rounds + 1)][1:]  # round 0 warms up
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k.startswith(("time/", "perf/"))}
    per_round = statistics.median(sum(v for k, v in r.items() if k.startswith("time/")) for r in rows)
    return {
        "benchmark": "round",
        "config": "lab default: 64 prompts x G=8, 8 minibatches, eval on 256 prompts (sampled + greedy)",
        "rounds_timed": rounds,
        "threads": torch.get_num_threads(),
        "setup_s": round(setup_s, 2),
        "round_s_median": round(per_round, 4),
        **{f"{k}_median": round(v, 4) for k, v in med.items()},
        "completion_tokens_per_round": statistics.median(r["response/length"] * 512 for r in rows),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
