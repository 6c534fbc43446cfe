"""`entropyctl config show`: the composed config with each value's source file (real Hydra)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.config import ModelConfig

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent
ARGS = ["config", "show", "intervention=clip_cov", "experiment=demo", "rounds=7"]


def show_json(*args: str) -> dict:
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_each_value_says_which_file_set_it():
    got = show_json(*ARGS)
    # experiment=demo sets rounds: 100, the command line sets 7 after it
    assert got["rounds"] == {"value": 7, "source": "override"}
    frac = yaml.safe_load((REPO / "conf/intervention/clip_cov.yaml").read_text())["clip_cov"]["frac"]
    assert got["intervention.clip_cov.frac"] == {"value": frac, "source": "conf/intervention/clip_cov.yaml"}
    assert got["model.name"]["source"] == "conf/model/lab.yaml"
    assert got["optim.lr"]["source"] == "conf/optim/adamw.yaml"
    assert got["model.hidden"] == {"value": ModelConfig().hidden,
                                   "source": "default (entropyctl/config.py:ModelConfig)"}
    assert got["seed"]["source"] == "default (entropyctl/config.py:TrainConfig)"
    assert not any(k.startswith("intervention.grpo") for k in got)  # clip_cov replaced the default


def test_a_preset_value_comes_from_the_preset():
    got = show_json("config", "show", "experiment=smoke", "model.hidden=40")
    assert got["rounds"]["source"] == "conf/experiment/smoke.yaml"
    assert got["model.layers"]["source"] == "conf/experiment/smoke.yaml"  # smoke overrides the model's default
    assert got["model.hidden"] == {"value": 40, "source": "override"}  # ...and the command line the preset


def test_yaml_output_loads_back_to_the_same_values():
    res = runner.invoke(app, ARGS)
    assert res.exit_code == 0, res.output
    loaded = yaml.safe_load(res.stdout)
    assert loaded["rounds"] == 7 and loaded["intervention"]["clip_cov"]["scope"] == "micro_batch"
    assert loaded["task"]["formats"][0]["name"] == "equals"
    line = next(x for x in res.stdout.splitlines() if x.startswith("rounds:"))
    assert line.endswith("# override")
    line = next(x for x in res.stdout.splitlines() if x.strip().startswith("frac:"))
    assert line.endswith("# conf/intervention/clip_cov.yaml")


def test_a_user_config_dir_adds_its_groups(tmp_path: Path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tiny.yaml").write_text("name: tiny\nhidden: 48\n")
    got = show_json("config", "show", "--config-dir", str(tmp_path), "model=tiny")
    assert got["model.hidden"] == {"value": 48, "source": str(tmp_path / "model" / "tiny.yaml")}
    assert got["optim.lr"]["source"] == "conf/optim/adamw.yaml"  # the shipped groups are still there


def test_a_bad_override_is_one_line_and_exit_2():
    for args, says in ((["rounds=abc"], "rounds takes an integer"),
                       (["intervention=nope"], "unknown intervention 'nope'"),
                       (["modle.hidden=3"], "unknown config key 'modle")):
        res = runner.invoke(app, ["config", "show", *args])
        lines = [x for x in res.output.splitlines() if x.strip()]
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert says in lines[0], lines[0]


def test_a_real_process_prints_the_same():
    proc = subprocess.run([sys.executable, "-m", "entropyctl", *ARGS[:2], "rounds=-1"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "rounds" in proc.stderr
