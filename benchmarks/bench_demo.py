"""`make demo` after install, step by step: base pretraining (fresh cache), the sweep of 3
interventions x 100 rounds, fit-law, compare. Wall time of each, and the peak resident memory
of the largest process (the demo is one process per command).

Runs in a temporary runs dir with an empty cache, as on a fresh machine; the Makefile's own
commands, with `progress=false`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _procs import entropyctl

LOSS_TARGET = 0.38


def main(out_dir: str | Path | None = None, rounds: int = 100) -> dict:
    with tempfile.TemporaryDirectory() as d:
        runs = Path(d) / "runs"
        common = [f"runs_dir={runs}", "progress=false"]
        steps = {"pretrain": entropyctl("pretrain", *common)}
        (base,) = (runs / ".cache").glob("base-*")
        pre = json.loads((base / "pretrain.json").read_text())
        steps["sweep"] = entropyctl("train", "-m", "experiment=demo", "intervention=grpo,clip_cov,entropy_bonus",
                                    f"rounds={rounds}", "sweep=demo", *common)
        steps["fit-law"] = entropyctl("fit-law", str(runs / "demo"))
        steps["compare"] = entropyctl("compare", str(runs / "demo"))
    total = sum(s["s"] for s in steps.values())
    peak = max(s["peak_mb"] for s in steps.values())
    return {
        "benchmark": "demo",
        "steps": steps,
        "pretrain": {k: pre[k] for k in ("steps", "seconds", "final_loss", "params") if k in pre},
        "rows": [
            {"measure": f"base pretraining to the lab's loss {LOSS_TARGET}", "value": steps["pretrain"]["s"],
             "unit": "s", "target": "<= 45 s", "ok": steps["pretrain"]["s"] <= 45 and pre["final_loss"] <= LOSS_TARGET,
             "note": f"final loss {pre['final_loss']:.3f} after {pre['steps']} steps; progress bar on stderr"},
            {"measure": f"make demo after install (3 interventions x {rounds} rounds, fit, report)",
             "value": round(total, 1), "unit": "s", "target": "<= 150 s", "ok": total <= 150},
            {"measure": "peak resident memory of the demo", "value": peak, "unit": "MB",
             "target": "<= 700 MB", "ok": peak <= 700},
        ],
    }
