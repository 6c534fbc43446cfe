"""Sweeps beyond one process go through Hydra's launchers, never a scheduler of ours:
submitit_local runs the same code path as SLURM, and our SLURM preset composes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the [slurm] extra is not installed")

REPO = Path(__file__).resolve().parent.parent


def test_slurm_preset_composes_onto_submitit():
    from hydra import compose, initialize_config_dir

    from entropyctl.config import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == 1 and launcher.cpus_per_task == 8 and launcher.timeout_min == 240


def test_submitit_local_sweep_runs_every_job(tmp_path: Path, smoke_runs_dir: Path):
    cmd = [sys.executable, "-m", "entropyctl", "train", "-m", "hydra/launcher=submitit_local",
           "experiment=smoke", "rounds=1", "seed=0,1", "sweep=sl", "progress=false",
           f"runs_dir={tmp_path}", f"cache_dir={smoke_runs_dir}/.cache"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    runs = sorted(p for p in (tmp_path / "sl").iterdir() if (p / "run.json").exists())
    assert [json.loads((p / "run.json").read_text())["seed"] for p in runs] == [0, 1]
    assert all(json.loads((p / "run.json").read_text())["status"] == "finished" for p in runs)
    summary = json.loads((tmp_path / "sl" / "sweep.json").read_text())  # written by the submitting process
    assert [(j["run_dir"], j["status"]) for j in summary["jobs"]] == [(p.name, "done") for p in runs]
    assert [j["num"] for j in summary["jobs"]] == [0, 1]
