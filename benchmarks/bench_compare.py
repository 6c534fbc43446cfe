"""Benchmark: `entropyctl compare` over 1,000 runs x 100 rounds (issue 14 target: <= 5 s).

`make_runs` writes N run dirs in the run store's real format (runstore.create_run: run.json,
config.yaml, overrides.txt, metrics.jsonl, samples.jsonl), each with R rounds of the metric keys
a lab round logs (entropy, reward, eval, formats, KL, ...), in G intervention groups. The
metrics file is written in one go (the round loop appends and fsyncs row by row: same bytes).
`main` times the whole command in-process (read, statistics, plots, report files written),
imports excluded (warm: one small compare first), and returns the `make bench` row.

Run: .venv/bin/python benchmarks/run_all.py --out bench-results --only bench_compare
(`make bench` runs it with the others; run_all.py writes bench-results/bench_compare.json).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from entropyctl.runstore.store import METRICS, SAMPLES, create_run  # noqa: E402

TARGET_S = 5.0
GROUPS = ("grpo", "clip_cov", "kl_cov", "entropy_bonus")
FORMATS = ("arrow", "equals", "hash", "unknown")
# a config.yaml of the size a composed job writes (the reader parses every one)
CONFIG = """\
seed: {seed}
runs_dir: runs
sweep: bench
progress: false
threads: 1
task:
  kind: lab
  name: addition
  digits: 2
  prompts: 256
model:
  kind: lab
  tag: base
  layers: 2
  width: 64
rollout:
  backend: torch
  temperature: 1.0
  group_size: 8
  prompts_per_round: 64
  max_new_tokens: 12
optim:
  lr: 0.001
  epochs: 1
  minibatches: 8
  micro_batches: 1
  grad_clip: 1.0
intervention:
  {intervention}: {{}}
eval:
  every: 1
  prompts: 128
probe:
  every: 0
tracking:
  wandb: false
"""


def _rows(rng: np.random.Generator, g: int, rounds: int) -> list[dict]:
    t = np.arange(rounds)
    H = (1.5 + 0.2 * g) * np.exp(-t / (20 + 10 * g)) + 0.05 + rng.normal(0, 0.01, rounds)
    acc = np.clip(0.8 + 0.02 * g - 0.2 * np.exp(H) + rng.normal(0, 0.01, rounds), 0, 1)
    shares = rng.dirichlet(np.ones(len(FORMATS)), rounds)
    rows = []
    for r in range(rounds):
        row = {"round": r, "reward/mean": float(acc[r] + 0.02), "eval/acc": float(acc[r]),
               "eval/greedy_acc": float(min(1.0, acc[r] + 0.05)), "entropy/tokmean": float(H[r] * 1.02),
               "entropy/seqmean": float(H[r]), "entropy/seqsum": float(H[r] * 8), "entropy/first": float(H[r] * 1.5),
               "format/entropy": float(-(shares[r] * np.log(shares[r])).sum()),
               "format/top_share": float(shares[r].max()), "kl/base_k3": float(0.001 * r),
               "clip/frac": 0.0, "grad/norm": 0.05, "loss/policy": -0.04, "response/length": 7.5,
               "cov/mean": 0.0, "cov/pred_dH": float(-0.001 * H[r])}
        for f, s in zip(FORMATS, shares[r]):
            row[f"format/share/{f}"] = float(s)
            row[f"format/acc/{f}"] = float(acc[r])
        rows.append(row)
    return rows


def make_runs(root: Path, n_runs: int, rounds: int, sweep: str = "bench", seed: int = 0) -> Path:
    """`n_runs` finished runs under root/sweep, spread over GROUPS; returns the sweep dir."""
    rng = np.random.default_rng(seed)
    for i in range(n_runs):
        g, s = i % len(GROUPS), i // len(GROUPS)
        name = GROUPS[g]
        w = create_run(root, sweep, f"{name}__lab__s{s}__bench", CONFIG.format(seed=s, intervention=name),
                       [f"seed={s}", f"intervention={name}"], {"intervention": name, "seed": s,
                                                               "task": "addition", "rounds_planned": rounds})
        rows = _rows(rng, g, rounds)
        (w.path / METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
        samples = [{"round": rounds - 1, "prompt": f"{k}+{k}=", "completion": f"{2 * k}", "reward": 1.0,
                    "format": "equals", "finished": True} for k in range(4)]
        (w.path / SAMPLES).write_text("".join(json.dumps(x) + "\n" for x in samples))
        w.update(rounds_done=rounds)
        w.finish("finished")
        w.close()
    return root / sweep


def time_compare(sweep: Path, out: Path) -> float:
    from typer.testing import CliRunner

    from entropyctl.cli.main import app

    t0 = time.perf_counter()
    res = CliRunner().invoke(app, ["compare", str(sweep), "--out", str(out), "--json"])
    elapsed = time.perf_counter() - t0
    if res.exit_code != 0:
        raise RuntimeError(f"compare failed: {res.output[-2000:]}")
    return elapsed


def main(out_dir: str | Path | None = None, runs: int = 1000, rounds: int = 100) -> dict:
    """The result run_all.py writes to <out>/bench_compare.json (`rows`: the make bench row)."""
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        tmp = Path(tmp)
        warm = make_runs(tmp / "warm", 8, 5)
        time_compare(warm, tmp / "warm-out")  # imports (scipy, matplotlib) out of the timing
        t0 = time.perf_counter()
        sweep = make_runs(tmp / "runs", runs, rounds)
        t_make = time.perf_counter() - t0
        seconds = time_compare(sweep, tmp / "out")
    measure = f"compare over {runs:,} runs x {rounds} rounds"
    result = {
        "benchmark": "compare",
        "rows": [{"measure": measure, "value": round(seconds, 3), "unit": "s", "target": f"<= {TARGET_S:g} s",
                  "ok": bool(seconds <= TARGET_S)}],
        "runs": runs, "rounds": rounds, "generate_s": round(t_make, 2),
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                    "platform": platform.platform()},
    }
    if not math.isfinite(seconds):
        result["rows"][0]["ok"] = False
    return result
