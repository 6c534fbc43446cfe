"""Run every benchmarks/bench_*.py and write one JSON result per benchmark into --out.

Each benchmark module defines `main(out_dir) -> dict` (out_dir: a folder it may use for
scratch files) and writes no result itself. Each runs in its own subprocess, so one
benchmark's imports (torch, for training benchmarks) or crash cannot affect another; its
returned dict is written here, and only here, to <out>/<module>.json (a failure writes
{"error": ...} there instead). `--only NAME` is the one way to run a single benchmark.
Each result's `rows` ({measure, value, unit, target, ok[, note, skipped]}) are gathered into
<out>/bench.json with the machine and package versions, and printed as one table.
Exit status 1 if any benchmark failed. Run it on a quiet machine: a second torch process on
two cores slows rounds 2-30x.

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
import importlib.util, json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[2]))  # shared helpers (_procs.py) beside it
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
    failed, results = 0, {}
    for path in sorted(HERE.glob("bench_*.py")):
        if args.only and path.stem not in args.only:
            continue
        print(f"{path.stem} ...", flush=True)
        res = run_one(path, out, args.timeout)
        (out / f"{path.stem}.json").write_text(json.dumps(res, indent=2) + "\n")
        failed += "error" in res
        results[path.stem] = res
        print(f"  {res.get('wall_s', '?')} s" + (f"  ERROR {res['error']}" if "error" in res else ""), flush=True)
    rows = [dict(row, benchmark=name) for name, res in results.items() for row in res.get("rows", [])]
    rows += [{"benchmark": name, "measure": name, "value": None, "unit": "", "target": "", "ok": False,
              "note": res["error"]} for name, res in results.items() if "error" in res]
    summary = {"machine": machine(), "versions": versions(), "rows": rows}
    (out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(table(rows))
    return 1 if failed else 0


def machine() -> dict:
    import os
    import platform

    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "cores": cores, "python": platform.python_version(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_avg_at_end": os.getloadavg()}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("entropyctl", "torch", "transformers", "numpy", "scipy", "hydra-core", "trl", "wandb"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def table(rows: list[dict]) -> str:
    def verdict(r):
        return "skipped" if r.get("skipped") else ("pass" if r.get("ok") else "FAIL")

    def value(r):
        return "-" if r.get("value") is None else f"{r['value']:g} {r.get('unit', '')}".strip()

    head = ("measure", "value", "target", "result")
    body = [(r["measure"], value(r), r.get("target", ""), verdict(r)) for r in rows]
    w = [max(len(str(x[i])) for x in (head, *body)) for i in range(4)]
    fmt = "  ".join(f"{{:<{n}}}" for n in w)
    lines = [fmt.format(*head), fmt.format(*("-" * n for n in w)), *(fmt.format(*map(str, b)) for b in body)]
    notes = [f"  {r['measure']}: {r.get('skipped') or r.get('note')}" for r in rows if r.get("skipped") or r.get("note")]
    return "\n".join(lines + (["", "notes:"] + notes if notes else []))


if __name__ == "__main__":
    sys.exit(main())
