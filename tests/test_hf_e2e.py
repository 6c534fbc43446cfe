"""End to end through the CLI on a researcher's own model and prompts: tiny random Qwen2 and
Llama checkpoints (byte-level BPE tokenizer, chat template) built here, a 40-row GSM8K-style
JSONL, `entropyctl train model=hf task=jsonl task.verifier=gsm8k rounds=2`, then fit-law and
compare on the result. A random model earns ~0 reward, so this checks files, keys and exit
codes, not learning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hf_fixtures import gsm8k_jsonl, tiny_checkpoint

FAMILIES = ("qwen2", "llama")
SMOKE = ("rounds=2", "rollout.prompts_per_round=4", "rollout.group_size=2", "task.max_new_tokens=12",
         "task.val_size=4", "optim.minibatches=2", "threads=1", "progress=false", "log.samples_per_round=3",
         "checkpoint_every=0")


def entropyctl(*args: str):
    """fit-law and compare in-process through the real Typer app (no torch import to wait for)."""
    from typer.testing import CliRunner

    from entropyctl.cli.main import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hf")
    data = gsm8k_jsonl(root / "gsm8k.jsonl", 40)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for family in FAMILIES:  # both runs at once: one core each
        ckpt = tiny_checkpoint(root / family, family)
        cmd = [sys.executable, "-m", "entropyctl", "train", "model=hf", f"model.path={ckpt}",
               f"model.name={family}", "task=jsonl", f"task.path={data}", "task.verifier=gsm8k",
               *SMOKE, f"runs_dir={root / 'runs'}", "sweep=hf"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert "36 training and 4 validation prompts" in out
    return root / "runs" / "hf"


def runs(sweep: Path) -> dict[str, Path]:
    found = {json.loads((p / "run.json").read_text())["model"]: p for p in sweep.iterdir() if p.is_dir()}
    assert sorted(found) == sorted(FAMILIES)
    return found


@pytest.mark.parametrize("family", FAMILIES)
def test_train_writes_a_finished_run_with_task_metrics_and_samples(sweep, family):
    run = runs(sweep)[family]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["task"] == "jsonl" and info["rounds_done"] == 2
    assert info["formats"] == ["boxed", "hash", "answer_is"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1]
    for row in rows:
        shares = [row[f"format/share/{f}"] for f in (*info["formats"], "unknown")]
        assert abs(sum(shares) - 1.0) < 1e-9
        for f in (*info["formats"], "unknown"):
            acc = row[f"format/acc/{f}"]  # null when no rollout used the format
            assert (acc is None) == (row[f"format/share/{f}"] == 0) and (acc is None or 0 <= acc <= 1)
        assert 0 <= row["eval/acc"] <= 1 and row["entropy/seqmean"] > 0
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert [s["round"] for s in samples] == [0, 0, 0, 1, 1, 1]
    for s in samples:
        assert set(s) == {"round", "prompt", "completion", "reward", "format", "finished"}
        assert "Tom has" in s["prompt"] and s["format"] in (*info["formats"], "unknown")
    # The chat template reached the prompts the policy saw.
    marker = "<|im_start|>assistant\n" if family == "qwen2" else "<|start_header_id|>assistant"
    assert all(marker in s["prompt"] for s in samples)
    config = (run / "config.yaml").read_text()
    assert "kind: jsonl" in config and "verifier: gsm8k" in config


def test_fit_law_reads_both_runs(sweep):
    proc = entropyctl("fit-law", str(sweep), "--json", "--no-write")
    fits = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(Path(f["source"]).name for f in fits) == sorted(p.name for p in runs(sweep).values())
    for f in fits:
        # Two rounds are two (H, R) points: read, and refused as too few for the law.
        assert f["n"] == 2 and f["entropy_key"] == "entropy/seqmean" and f["perf_key"] == "eval/acc"
        assert "needs at least 3" in f["error"]
    assert proc.exit_code == 2


def test_compare_reads_both_runs(sweep, tmp_path):
    proc = entropyctl("compare", str(sweep), "--by", "model.name", "--out", str(tmp_path))
    assert proc.exit_code == 0, proc.output
    report = json.loads((tmp_path / "compare.json").read_text())
    assert sorted(g["name"] for g in report["groups"]) == sorted(FAMILIES)
    assert all(g["n"] == 1 for g in report["groups"])
    assert (tmp_path / "report.md").is_file()
