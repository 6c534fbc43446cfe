"""The wandb mirror, for real in offline mode: the test reads back the files wandb wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("wandb", reason="the [wandb] extra is not installed")

from entropyctl.config import TrackingConfig  # noqa: E402
from entropyctl.runstore import wandb_mirror  # noqa: E402
from entropyctl.runstore.store import create_run, reopen_run  # noqa: E402
from entropyctl.runstore.wandb_files import find_run_files, read_run  # noqa: E402

def read_all(root: Path, n: int) -> list[dict]:
    """The `n` runs wandb wrote under `root`, once its service has written them out (it
    finishes the files after `run.finish()` returns)."""
    deadline = time.time() + 60
    while True:
        runs = [read_run(f) for f in find_run_files(root)]
        if (len(runs) == n and all(r["complete"] for r in runs)) or time.time() > deadline:
            return runs
        time.sleep(0.2)


ENV = {**os.environ, "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}


def train(runs: Path, *overrides: str, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "entropyctl", "train", "experiment=smoke", "sweep=wb", "progress=false",
           f"runs_dir={runs}", "tracking.wandb=true", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=300)


def test_offline_mirror_holds_every_round_and_the_config(smoke_runs_dir: Path):
    proc = train(smoke_runs_dir, "rounds=2", "tracking.wandb_mode=offline", "seed=7")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    (run,) = (smoke_runs_dir / "wb").iterdir()
    (got,) = read_all(run / "wandb", 1)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert got["run_id"] == run.name  # same id as the run store: resume continues it
    assert [h["_step"] for h in got["history"]] == [0, 1]
    assert [h["reward/mean"] for h in got["history"]] == [r["reward/mean"] for r in rows]
    # samples.jsonl's records of each round, as a table at that round's step (log.samples_per_round=4)
    assert [int(h["samples/nrows"]) for h in got["history"]] == [4, 4]
    assert [h["entropy/seqmean"] for h in got["history"]] == [r["entropy/seqmean"] for r in rows]
    assert got["config"]["seed"] == 7 and got["config"]["rollout"]["group_size"] == 4
    assert got["summary"]["status"] == "finished"
    # the run's own law fit at the end (analysis/law_summary.py): 2 rounds are too few, so a note
    assert got["summary"]["law/note"].startswith("not fitted: only 2 finite point(s)")


def test_a_wandb_failure_is_one_warning_and_the_run_goes_on(smoke_runs_dir: Path, tmp_path: Path):
    # online with no API key anywhere (a bare HOME, no netrc): wandb refuses to start
    env = {k: v for k, v in ENV.items() if not k.startswith("WANDB_API")} | {"HOME": str(tmp_path)}
    runs = tmp_path / "runs"
    proc = train(runs, "rounds=1", "tracking.wandb_mode=online", f"cache_dir={smoke_runs_dir}/.cache", env=env)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: wandb")]
    assert len(warnings) == 1 and "the run continues" in warnings[0]
    (run,) = (runs / "wb").iterdir()
    assert (run / "metrics.jsonl").read_text().count("\n") == 1
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_a_resumed_run_continues_the_same_wandb_run(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracking = TrackingConfig(wandb=True, wandb_mode="offline")
    w = create_run(tmp_path, "s", "grpo__lab__s0__x", "seed: 0\n", [], {"intervention": "grpo", "seed": 0})
    wandb_mirror.attach(w, tracking)
    w.append({"round": 0, "reward/mean": 0.1})
    w.finish("interrupted")
    w.close()
    again = reopen_run(w.path, ("interrupted",))
    wandb_mirror.attach(again, tracking)
    again.append({"round": 1, "reward/mean": 0.2})
    again.finish("finished")
    again.close()
    runs = read_all(w.path / "wandb", 2)
    assert {r["run_id"] for r in runs} == {"grpo__lab__s0__x"}
    steps = sorted(h["_step"] for r in runs for h in r["history"])
    assert steps == [0, 1]
