"""End to end: the real `entropyctl train` command on the smoke preset, then the run store
it wrote, read back as fit-law and compare read it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from entropyctl.runstore.glossary import GLOSSARY
from entropyctl.runstore.store import find_runs

REQUIRED_FILES = {"config.yaml", "overrides.txt", "run.json", "metrics.jsonl"}


def entropyctl(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entropyctl", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def smoke_run(smoke_runs_dir: Path) -> Path:
    out = entropyctl("train", "experiment=smoke", "intervention=clip_cov", "sweep=e2e",
                     f"runs_dir={smoke_runs_dir}", "progress=false")
    assert out.returncode == 0, out.stderr[-2000:]
    runs = list((smoke_runs_dir / "e2e").iterdir())
    assert len(runs) == 1
    return runs[0]


def test_run_dir_holds_the_four_files(smoke_run: Path):
    assert REQUIRED_FILES <= {p.name for p in smoke_run.iterdir()}
    assert smoke_run.name.startswith("clip_cov__smoke__s0__")


def test_run_json_says_what_ran_and_that_it_finished(smoke_run: Path):
    info = json.loads((smoke_run / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["intervention"] == "clip_cov"
    assert info["seed"] == 0
    assert info["sweep"] == "e2e"
    assert info["rounds_done"] == info["rounds_planned"] == 3
    assert info["formats"] == ["equals", "arrow", "hash"]
    assert info["error"] is None and info["ended"]


def test_run_json_records_what_sets_the_numbers_last_bits(smoke_runs_dir: Path):
    import os

    import torch

    # torch's kernel choice comes from the CPU unless ATEN_CPU_CAPABILITY says otherwise.
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    out = subprocess.run([sys.executable, "-m", "entropyctl", "train", "experiment=smoke", "rounds=1", "threads=1",
                          "sweep=numerics", f"runs_dir={smoke_runs_dir}", "progress=false"],
                         capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = (smoke_runs_dir / "numerics").iterdir()
    num = json.loads((run / "run.json").read_text())["numerics"]
    assert num["cpu_kernels"] == "DEFAULT" and num["threads"] == 1
    assert num["torch"] == torch.__version__ and num["device"] == "cpu" and num["dtype"] == "float32"


def test_metrics_has_every_round_once_with_every_glossary_key(smoke_run: Path):
    rows = [json.loads(line) for line in (smoke_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2]
    expected = {k for k in GLOSSARY if "<name>" not in k}
    for row in rows:
        assert expected <= set(row), expected - set(row)
        shares = [v for k, v in row.items() if k.startswith("format/share/")]
        assert len(shares) == 4 and abs(sum(shares) - 1.0) < 1e-9
        for key in ("entropy/tokmean", "entropy/seqmean", "entropy/seqsum", "entropy/first"):
            assert math.isfinite(row[key]) and row[key] > 0
        assert 0.0 <= row["reward/mean"] <= 1.0
        assert row["entropy/temperature"] == 1.0
        assert "clip_cov/frac_detached" in row


def test_config_yaml_is_the_resolved_config(smoke_run: Path):
    cfg = yaml.safe_load((smoke_run / "config.yaml").read_text())
    assert cfg["rounds"] == 3
    assert list(cfg["intervention"]) == ["clip_cov"] and cfg["intervention"]["clip_cov"]["frac"] == 0.02
    assert cfg["model"]["hidden"] == 32
    overrides = (smoke_run / "overrides.txt").read_text().split()
    assert "intervention=clip_cov" in overrides and "experiment=smoke" in overrides


def test_runstore_reads_it_back(smoke_run: Path):
    (run,) = find_runs([smoke_run.parent])
    assert run.status == "finished" and run.intervention == "clip_cov" and len(run.metrics()) == 3


def test_multirun_sweep_gives_each_run_its_own_dir(smoke_runs_dir: Path):
    out = entropyctl("train", "-m", "experiment=smoke", "intervention=grpo,entropy_bonus", "seed=0,1",
                     "sweep=e2e-sweep", "rounds=2", f"runs_dir={smoke_runs_dir}", "progress=false")
    assert out.returncode == 0, out.stderr[-2000:]
    runs = find_runs([smoke_runs_dir / "e2e-sweep"])
    assert sorted((r.intervention, r.seed) for r in runs) == [
        ("entropy_bonus", 0), ("entropy_bonus", 1), ("grpo", 0), ("grpo", 1)]
    assert all(r.status == "finished" and len(r.metrics()) == 2 for r in runs)
    # the same seed and config give the same first round whatever else runs in the sweep
    first = {(r.intervention, r.seed): r.metrics()[0]["reward/mean"] for r in runs}
    assert first[("grpo", 0)] == first[("entropy_bonus", 0)]


def test_same_seed_same_metrics(smoke_runs_dir: Path, smoke_run: Path):
    out = entropyctl("train", "experiment=smoke", "intervention=clip_cov", "sweep=e2e-again",
                     f"runs_dir={smoke_runs_dir}", "progress=false")
    assert out.returncode == 0, out.stderr[-2000:]
    (again,) = find_runs([smoke_runs_dir / "e2e-again"])
    (orig,) = find_runs([smoke_run])
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]
    assert strip(again.metrics()) == strip(orig.metrics())


def test_a_local_hugging_face_checkpoint_goes_through_the_same_path(smoke_runs_dir: Path, smoke_run: Path):
    # the lab's cached base is a plain save_pretrained directory: load it as a user's checkpoint
    (ckpt,) = [p for p in (smoke_runs_dir / ".cache").iterdir() if p.name.startswith("base-")]
    assert (ckpt / "config.json").is_file() and (ckpt / "model.safetensors").is_file()
    out = entropyctl("train", "experiment=smoke", "model=hf", f"model.path={ckpt}", "model.name=mine",
                     "sweep=e2e-hf", "rounds=2", f"runs_dir={smoke_runs_dir}", "progress=false")
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = find_runs([smoke_runs_dir / "e2e-hf"])
    assert run.status == "finished" and run.id.startswith("grpo__mine__s0__")
    assert run.config()["model"]["kind"] == "hf" and len(run.metrics()) == 2
