"""`make stress`: kill a demo-sized run with SIGKILL at 10 random moments, resume it each time,
and check it against an uninterrupted run of the same config and seed (docs/reliability.md).

Every launch is the same `entropyctl train experiment=demo ... resume=true` command, so a kill
before the run directory exists (during setup) just starts it again, and a later one resumes it.
The moments: 10 random rounds spread over the run, each killed at a random point 0-1.2 s after
that round's row appears (mid-round, mid-append, mid-checkpoint), or, one time in five, a random
0.3-6 s after launch (during setup or the restore).
Checked at the end:
  exactly_once    metrics.jsonl holds rounds 0..N-1, each once; one run directory
  metrics_equal   every metric but time/* and perf/* equals the uninterrupted run's, bit for bit
  state_equal     final weights, optimiser state and RNG states (checkpoint sha256s) are identical
Writes bench-results/stress_resume.json; exit 1 unless all three hold.

Run: .venv/bin/python benchmarks/stress_resume.py [--rounds 100] [--kills 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VOLATILE = ("time/", "perf/")


def launch(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "entropyctl", "train", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.glob("*") if (p / "run.json").is_file()) if sweep.exists() else []


def lines(run: Path | None) -> int:
    return (run / "metrics.jsonl").read_text().count("\n") if run else 0


def stable_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows]


def final_state(run: Path) -> dict:
    ckpts = sorted((run / "checkpoints").glob("round-*"))
    state = json.loads((ckpts[-1] / "state.json").read_text())
    return {"round": state["round"], "sha256": state["sha256"], "prompt_rng": state["prompt_rng"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=100, help="rounds per run (the demo's 100)")
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    p.add_argument("--checkpoint-every", type=int, default=5)
    p.add_argument("--out", default=str(REPO / "bench-results"))
    p.add_argument("--keep", action="store_true", help="keep the runs folder")
    args = p.parse_args()

    t0 = time.time()
    runs = Path(tempfile.mkdtemp(prefix="stress-runs-"))
    cache = REPO / "runs" / ".cache"  # the lab base `make demo` pretrains once
    common = ["experiment=demo", f"rounds={args.rounds}", f"runs_dir={runs}", f"cache_dir={cache}",
              f"checkpoint_every={args.checkpoint_every}", "progress=false", "threads=1"]
    # Both runs must find the base cached (setup seeds torch before a cache-miss pretrain).
    pre = subprocess.run([sys.executable, "-m", "entropyctl", "pretrain", *common], cwd=REPO)
    if pre.returncode:
        return pre.returncode
    base = launch([*common, "sweep=base"])

    # The kill moments: a few during setup (before or just after the run dir exists), the rest at
    # random rounds spread over the run, each at a random point inside the round.
    rng = random.Random(args.seed)
    targets = sorted(rng.sample(range(1, args.rounds), args.kills))
    kills = []
    for i, target in enumerate(targets):
        in_setup = rng.random() < 0.2
        before = run_dirs(runs / "killed")
        at_start = lines(before[0]) if before else 0
        proc = launch([*common, "sweep=killed", "resume=true"])
        if in_setup:
            delay = rng.uniform(0.3, 6.0)
            time.sleep(delay)
        else:
            while proc.poll() is None:
                found = run_dirs(runs / "killed")
                if found and lines(found[0]) >= target:
                    break
                time.sleep(0.02)
            delay = rng.uniform(0.0, 1.2)  # a round takes about a second
            time.sleep(delay)
        if proc.poll() is not None:  # ended by itself: nothing left to kill
            kills.append({"target": target, "killed": False, "exit": proc.returncode})
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        found = run_dirs(runs / "killed")
        kills.append({"phase": "setup" if in_setup else f"round {target}", "delay_s": round(delay, 2),
                      "run_dir_existed": bool(before), "lines_at_start": at_start,
                      "lines_at_kill": lines(found[0]) if found else 0})
        print(f"kill {i + 1} ({kills[-1]['phase']}, +{delay:.2f} s): {kills[-1]['lines_at_kill']} rounds "
              "logged", flush=True)
    final = subprocess.run([sys.executable, "-m", "entropyctl", "train", *common, "sweep=killed",
                            "resume=true"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    _, base_err = base.communicate()

    found = run_dirs(runs / "killed")
    result: dict = {"benchmark": "stress_resume", "rounds": args.rounds, "kills_planned": args.kills,
                    "checkpoint_every": args.checkpoint_every, "kill_seed": args.seed, "kills": kills,
                    "final_exit": final.returncode, "base_exit": base.returncode}
    if final.returncode or base.returncode or len(found) != 1:
        result.update(ok=False, error=(final.stderr or base_err or f"{len(found)} run dirs").strip()[-500:])
    else:
        run, base_run = found[0], run_dirs(runs / "base")[0]
        info = json.loads((run / "run.json").read_text())
        got, want = stable_rows(run), stable_rows(base_run)
        dropped = run / "metrics.dropped.jsonl"
        result.update(
            status=info["status"],
            resumes=len(info.get("resumes", [])),
            resumed_from=[r["from_round"] for r in info.get("resumes", [])],
            rows_recomputed=len(dropped.read_text().splitlines()) if dropped.exists() else 0,
            exactly_once=[r["round"] for r in got] == list(range(args.rounds)),
            metrics_equal=got == want,
            state_equal=final_state(run) == final_state(base_run),
        )
        result["ok"] = bool(result["exactly_once"] and result["metrics_equal"] and result["state_equal"]
                            and info["status"] == "finished")
    result["wall_s"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stress_resume.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "kills"}, indent=2))
    if args.keep:
        print(f"runs kept in {runs}")
    else:
        shutil.rmtree(runs, ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
