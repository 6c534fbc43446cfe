"""Run every benchmarks/bench_*.py and write one JSON result per benchmark into --out.

Each benchmark module defines `main(out_dir) -> dict`. Each runs in its own subprocess, so one
benchmark's imports (torch, for training benchmarks) or crash cannot affect another; its
returned dict is written to <out>/<module>.json (a failure writes {"error": ...} there instead).
Exit status 1 if any benchmark failed.

Run: make bench   (= .venv/bin/python benchmarks/run_all.py --out bench-results)
     .venv/bin/python benchmarks/run_all.py --out bench-results --only bench_fitlaw
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location(sys.argv[1], sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
res = mod.main(sys.argv[3])
print("__RESULT__" + json.dumps(res if res is not None else {}))
"""


def run_one(path: Path, out: Path, timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, path.stem, str(path), str(out)],
                              capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return {"benchmark": path.stem, "error": f"timed out after {timeout:.0f} s"}
    wall = round(time.perf_counter() - t0, 2)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("__RESULT__") and proc.returncode == 0:
            return {**json.loads(line[len("__RESULT__"):]), "wall_s": wall}
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"benchmark": path.stem, "error": f"exit {proc.returncode}: {tail}", "wall_s": wall}


def main() -> int:
    p = argparse.ArgumentParser(description="Run benchmarks/bench_*.py; one JSON file each.")
    p.add_argument("--out", required=True, help="folder for the JSON results")
    p.add_argument("--only", action="append", help="run only this benchmark (module name); repeatable")
    p.add_argument("--timeout", type=float, default=900, help="seconds per benchmark")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in sorted(HERE.glob("bench_*.py")):
        if args.only and path.stem not in args.only:
            continue
        print(f"{path.stem} ...", flush=True)
        res = run_one(path, out, args.timeout)
        (out / f"{path.stem}.json").write_text(json.dumps(res, indent=2) + "\n")
        failed += "error" in res
        print(json.dumps(res, indent=2), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
