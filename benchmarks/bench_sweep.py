"""A joblib sweep of 4 demo runs with n_jobs=2 against the same 4 runs one after another.

Both leave `threads` unset, so each job takes its share of the cores (cli/train_cmd.py
`job_threads`: all of them one at a time, half each two at a time). The base is pretrained
before timing (shared cache). Seeds 0-3 of grpo, `rounds` rounds each.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _procs import REPO, entropyctl


def main(out_dir: str | Path | None = None, rounds: int = 100) -> dict:
    cache = REPO / "runs" / ".cache"
    entropyctl("pretrain", "experiment=demo", f"cache_dir={cache}", "progress=false")
    with tempfile.TemporaryDirectory() as d:
        common = ["-m", "experiment=demo", "intervention=grpo", "seed=0,1,2,3", f"rounds={rounds}",
                  f"runs_dir={d}", f"cache_dir={cache}", "progress=false"]
        seq = entropyctl("train", *common, "sweep=seq")
        par = entropyctl("train", *common, "sweep=par", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    speedup = seq["s"] / par["s"]
    return {
        "benchmark": "sweep",
        "sequential_s": seq["s"], "joblib_n_jobs_2_s": par["s"],
        "rows": [{"measure": f"joblib sweep of 4 demo runs ({rounds} rounds), n_jobs=2 vs one after another",
                  "value": round(speedup, 2), "unit": "x", "target": ">= 1.3x", "ok": speedup >= 1.3,
                  "note": f"{seq['s']:.0f} s one after another, {par['s']:.0f} s with n_jobs=2"}],
    }
