"""`entropyctl compare` on other trainers' logs (TRL trainer_state.json, verl JSONL), three
"seeds" per group, grouped with --group-by REGEX or a mapping file; and the report's own parts
(how to read, per-format accuracy, samples, provenance). Log files are written by the test."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.runstore.store import SAMPLES, create_run

runner = CliRunner(env={"COLUMNS": "200"})


def trl_state(path, final_reward, seed):
    """A TRL GRPO trainer_state.json: train logs every step, eval every second step."""
    hist = []
    for step in range(1, 11):
        H = 1.0 * math.exp(-step / 4) + 0.1 + 0.01 * seed
        reward = final_reward if step > 5 else 0.1
        hist.append({"step": step, "epoch": step / 10, "entropy": H, "reward": reward, "loss": 0.01})
        if step % 2 == 0:
            hist.append({"step": step, "epoch": step / 10, "eval_reward": 0.9 - 0.3 * math.exp(H)})
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": 10, "log_history": hist}))
    return path / "trainer_state.json"


def verl_log(path, final_score, seed):
    lines = [{"step": s, "data": {"actor/entropy": 1.0 - s / 20 - 0.01 * seed,
                                  "critic/score/mean": final_score if s > 4 else 0.0}} for s in range(1, 9)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture
def trl(tmp_path):
    files = []
    for group, rewards in (("ppo", [0.5, 0.6, 0.7]), ("gspo", [0.8, 0.85, 0.9])):
        for seed, r in enumerate(rewards):
            files.append(trl_state(tmp_path / "trl" / f"{group}-seed{seed}", r, seed))
    return files


def test_compare_trl_logs_grouped_by_regex(trl, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["compare", *map(str, trl), "--group-by", r"(.*)-seed\d+", "--baseline", "ppo",
                              "--last-k", "3", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    g = {x["name"]: x for x in obj["groups"]}
    assert set(g) == {"ppo", "gspo"} and g["ppo"]["n"] == g["gspo"]["n"] == 3
    # final train reward = mean of the last 3 logged steps = the seed's reward; IQM of 3 = mean
    assert g["ppo"]["metrics"]["reward/mean"]["iqm"] == pytest.approx(0.6)
    vs = g["gspo"]["vs_baseline"]["reward/mean"]
    assert vs["iqm_diff"] == pytest.approx(0.25) and vs["poi"] == 1.0
    assert obj["stat"] == "bootstrap" and obj["by"] == r"(.*)-seed\d+"
    # metrics TRL does not log are absent (n = 0, null), never zeros
    assert g["ppo"]["metrics"]["format/top_share"] == {**g["ppo"]["metrics"]["format/top_share"], "n": 0,
                                                      "mean": None}
    assert g["ppo"]["law"]["error"] is None  # eval_reward paired with the next step's entropy
    runs = {r["id"]: r for r in obj["runs"]}
    assert set(runs) == {f"{grp}-seed{s}" for grp in ("ppo", "gspo") for s in range(3)}
    src = runs["ppo-seed1"]["source"]
    assert src["format"] == "TRL trainer_state.json" and src["path"].endswith("ppo-seed1/trainer_state.json")
    assert src["keys"] == {"entropy/seqmean": "entropy", "reward/mean": "reward", "eval/acc": "eval_reward"}
    assert runs["ppo-seed1"]["seed"] == 1 and runs["ppo-seed1"]["status"] == "imported"
    md = (out / "report.md").read_text()
    assert "TRL trainer\\_state.json" in md  # each run says where it came from (markdown-escaped)


def test_compare_verl_logs_grouped_by_mapping_file(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    mapping = {}
    for group, scores in (("grpo", [0.2, 0.3, 0.4]), ("dapo", [0.5, 0.5, 0.8])):
        for seed, s in enumerate(scores):
            verl_log(logs / f"run{group}{seed}.jsonl", s, seed)
            mapping[f"logs/run{group}{seed}.jsonl"] = group
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump(mapping))
    out = tmp_path / "out"
    res = runner.invoke(app, ["compare", str(logs / "rungrpo0.jsonl"), str(logs / "rungrpo1.jsonl"),
                              str(logs / "rungrpo2.jsonl"), str(logs / "rundapo0.jsonl"), str(logs / "rundapo1.jsonl"),
                              str(logs / "rundapo2.jsonl"), "--group-by", str(tmp_path / "groups.yaml"),
                              "--stat", "welch", "--last-k", "2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    g = {x["name"]: x for x in obj["groups"]}
    assert obj["baseline"] == "grpo" and obj["stat"] == "welch"
    assert g["dapo"]["metrics"]["reward/mean"]["mean"] == pytest.approx(0.6)
    vs = g["dapo"]["vs_baseline"]["reward/mean"]
    assert vs["diff"] == pytest.approx(0.3) and vs["p"] is not None
    # PoI by hand: dapo [0.5, 0.5, 0.8] vs grpo [0.2, 0.3, 0.4]: every pair wins -> 1
    assert vs["poi"] == 1.0
    src = next(r for r in obj["runs"] if r["id"] == "rundapo2.jsonl")["source"]
    assert src["format"] == "verl JSONL log" and src["keys"]["entropy/seqmean"] == "actor/entropy"
    assert any("actor/entropy" in w for w in src["warnings"])  # the importer's caveat travels along
    html = (out / "report.html").read_text()
    assert "verl JSONL log" in html and "How to read this" in html


def test_our_runs_report_formats_samples_and_how_to_read(tmp_path):
    for seed in range(3):
        w = create_run(tmp_path, "sw", f"grpo__lab__s{seed}__t", "{}\n", [], {"intervention": "grpo", "seed": seed})
        for r in range(4):
            w.append({"round": r, "reward/mean": 0.5, "entropy/seqmean": 1.0 - 0.1 * r,
                      "format/acc/code": 0.25 * seed, "format/acc/prose": None})
        w.append({"round": 3, "prompt": "1+1=", "completion": "<script>alert(1)</script>", "reward": 1.0,
                  "format": "code", "finished": True}, to=SAMPLES)
        w.finish("finished")
    out = tmp_path / "out"
    res = runner.invoke(app, ["compare", str(tmp_path / "sw"), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    code = obj["format_acc"]["groups"]["grpo"]["code"]
    assert code["iqm"] == pytest.approx(0.25) and code["n"] == 3  # (0 + 0.25 + 0.5) / 3
    assert obj["format_acc"]["groups"]["grpo"]["prose"]["n"] == 0  # null: no response in that format
    assert [s["completion"] for s in obj["samples"]["grpo"]] == ["<script>alert(1)</script>"] * 3
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert md.index("## How to read this") < md.index("## Groups by")
    assert "Accuracy per answer format" in md and "Sample completions" in md
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in md


def test_default_out_for_logs_is_the_folder_holding_them(trl, tmp_path):
    res = runner.invoke(app, ["compare", *map(str, trl)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "trl" / "compare" / "report.html").is_file()
    assert "each log is its own group" in res.stdout  # no --group-by: a note, six groups of one
    assert not list((tmp_path / "trl").glob("*/compare"))  # never inside one run's output dir
