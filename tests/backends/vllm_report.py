"""`make test-vllm`'s closing note: the conformance figures, seconds per lab round with
rollout=vllm against rollout=torch, and the mismatch metrics of each vllm round.

    python tests/backends/vllm_report.py CONFORMANCE_JSON SWEEP_DIR...   (one sweep per backend)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

MISMATCH = ("mismatch/kl_k1", "mismatch/kl_k3", "mismatch/ratio_p01", "mismatch/ratio_p50",
            "mismatch/ratio_p99", "mismatch/ratio_max")


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def main(conformance: Path, sweeps: list[Path]) -> int:
    print("conformance (max |logp_backend - logp_trainer| in nats, on valid tokens):")
    for k, v in sorted(json.loads(conformance.read_text()).items()):
        print(f"  {k:40s} {v:.3g}")
    runs = [p for sweep in sweeps for p in sorted(sweep.iterdir()) if (p / "metrics.jsonl").is_file()]
    for run in runs:
        rs = rows(run)
        per_round = [sum(v for k, v in r.items() if k.startswith("time/")) for r in rs]
        phases = ", ".join(f"{k[5:]} {statistics.median(r.get(k, 0.0) for r in rs):.3f}"
                           for k in ("time/rollout", "time/rescore", "time/update", "time/push", "time/eval"))
        print(f"{run.parent.name}: {len(rs)} rounds, median {statistics.median(per_round):.2f} s/round ({phases})")
        for r in rs:
            print("  round {round}: ".format(**r) + ", ".join(f"{k.split('/')[1]}={r[k]:.4g}" for k in MISMATCH[:2])
                  + ", " + ", ".join(f"{k.split('_')[1]}=1{r[k] - 1:+.2e}" for k in MISMATCH[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]]))
