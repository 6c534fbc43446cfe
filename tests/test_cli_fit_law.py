"""`entropyctl fit-law` end to end: real files in tmp_path through the real Typer app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from entropyctl.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["fit-law", *map(str, args)])


def make_run(root: Path, name: str, a: float, b: float, intervention: str, noise: float = 0.005,
             seed: int = 0, rounds: int = 60, eval_every: int = 3) -> Path:
    d = root / "sweep" / name
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"id": name, "sweep": "sweep", "intervention": intervention,
                                            "seed": seed, "status": "finished"}))
    (d / "config.yaml").write_text(f"intervention:\n  name: {intervention}\n")
    rng = np.random.default_rng(seed)
    H = 1.2 * np.exp(-np.arange(rounds + 1) / 20) + 0.05
    with open(d / "metrics.jsonl", "w") as f:
        for r in range(rounds):
            row = {"round": r, "entropy/seqmean": H[r], "reward/mean": 0.3}
            if r % eval_every == 0:  # eval after round r's update: the law holds with H[r + 1]
                row["eval/acc"] = b - a * np.exp(H[r + 1]) + rng.normal(0, noise)
            f.write(json.dumps(row) + "\n")
    return d


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture
def sweep(tmp_path):
    make_run(tmp_path, "grpo__s0", 0.2, 0.75, "grpo", seed=0)
    make_run(tmp_path, "grpo__s1", 0.2, 0.75, "grpo", seed=1)
    make_run(tmp_path, "clip_cov__s0", 0.15, 0.7, "clip_cov", seed=2)
    flat = tmp_path / "sweep" / "collapsed__s0"  # entropy never moved: unfittable
    flat.mkdir()
    (flat / "run.json").write_text(json.dumps({"id": "collapsed__s0", "intervention": "grpo"}))
    (flat / "metrics.jsonl").write_text("".join(
        json.dumps({"round": r, "entropy/seqmean": 0.01, "eval/acc": 0.1 * r}) + "\n" for r in range(5)))
    return tmp_path


def test_fit_law_and_its_imports_never_load_torch():
    code = "import sys, entropyctl.cli.fit_law, entropyctl.analysis.logimport; assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr


def test_help_lists_the_options():
    res = invoke("--help")
    assert res.exit_code == 0
    for opt in ("--format", "--entropy", "--perf", "--by", "--window", "--early", "--bootstrap", "--json",
                "--plot", "--debug", "--perf-scale", "--logging-steps"):
        assert opt in res.stdout


def test_sweep_table_fit_json_and_the_unfittable_reason(sweep):
    metrics_before = snapshot(sweep)
    res = invoke(sweep / "sweep")
    assert res.exit_code == 0, res.output
    for name in ("grpo__s0", "grpo__s1", "clip_cov__s0"):
        assert name in res.stdout
    assert "not fitted" in res.stdout and "collapsed__s0" in res.stdout and "entropy is constant" in res.stdout
    for name in ("grpo__s0", "grpo__s1", "clip_cov__s0"):
        doc = json.loads((sweep / "sweep" / name / "fit.json").read_text())
        (fit,) = doc["fits"]
        assert fit["series"] == name and fit["error"] is None and fit["n"] == 20
        assert fit["a"] == pytest.approx(0.15 if "clip" in name else 0.2, abs=0.02)
    assert not (sweep / "sweep" / "collapsed__s0" / "fit.json").exists()
    after = snapshot(sweep)
    assert {k: v for k, v in after.items() if not k.endswith("fit.json")} == metrics_before


def test_json_objects_early_prediction_and_pooled_groups(sweep):
    res = invoke(sweep, "--json", "--early", "0.3", "--by", "intervention", "--no-write")
    assert res.exit_code == 0, res.output
    objs = {o["series"]: o for o in map(json.loads, res.stdout.splitlines())}
    keys = {"source", "series", "n", "a", "b", "ceiling", "a_ci", "b_ci", "ceiling_ci", "r2", "rmse", "early", "error"}
    assert all(keys <= set(o) for o in objs.values())
    g = objs["grpo__s0"]
    assert g["a_ci"][0] < g["a"] < g["a_ci"][1] and g["ceiling"] == pytest.approx(g["b"] - g["a"])
    assert g["ceiling_ci"][0] < 0.55 < g["ceiling_ci"][1] and g["r2"] > 0.95
    e = g["early"]
    assert e["frac"] == 0.3 and e["n_fit"] == 6 and e["n_test"] == 14
    assert e["rmse"] < 0.03 and abs(e["final_predicted"] - e["final_actual"]) < 0.03
    assert objs["collapsed__s0"]["error"].startswith("entropy is constant") and objs["collapsed__s0"]["a"] is None
    pooled = objs["intervention=grpo"]
    assert pooled["source"] == "pooled" and pooled["n"] == 40
    assert sorted(pooled["group"]["members"]) == ["grpo__s0", "grpo__s1"]  # not the unfittable run
    assert objs["intervention=clip_cov"]["n"] == 20
    assert not list(sweep.rglob("fit.json"))


def test_noiseless_law_recovered_exactly_through_the_cli(tmp_path):
    make_run(tmp_path, "exact", 0.25, 0.8, "grpo", noise=0.0)
    res = invoke(tmp_path, "--json", "--early", "0.15", "--no-write")
    (o,) = map(json.loads, res.stdout.splitlines())
    assert o["a"] == pytest.approx(0.25, abs=1e-12) and o["b"] == pytest.approx(0.8, abs=1e-12)
    assert o["rmse"] < 1e-12 and o["early"]["rmse"] < 1e-10


def test_window_bootstrap_and_plot(sweep, tmp_path):
    png = tmp_path / "law.png"
    res = invoke(sweep / "sweep" / "grpo__s0", "--json", "--window", "0:29", "--bootstrap", "200",
                 "--early", "0.5", "--plot", png)
    assert res.exit_code == 0, res.output
    (o,) = map(json.loads, res.stdout.splitlines())
    assert o["n"] == 10 and o["step_range"] == [0, 27] and o["window"] == [0, 29]
    assert o["ci_method"] == "bootstrap" and o["bootstrap"]["n_boot"] == 200
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_negative_a_is_shown_with_a_warning(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("step,entropy,accuracy\n" + "".join(
        f"{s},{1 - s / 10},{0.1 + 0.2 * np.exp(1 - s / 10)}\n" for s in range(8)))
    res = invoke(f)
    assert res.exit_code == 0 and "a =" in res.stdout and "< 0: performance falls" in res.stdout


def test_a_ceiling_above_one_on_a_rate_is_flagged(tmp_path):
    f = tmp_path / "log.csv"  # R = 1.6 - 0.5 exp(H): 0.24 .. 0.925 observed, b - a = 1.1 at H = 0
    f.write_text("step,entropy,accuracy\n" + "".join(
        f"{s},{1 - s / 10},{1.6 - 0.5 * np.exp(1 - s / 10)}\n" for s in range(8)))
    (o,) = map(json.loads, invoke(f, "--json").stdout.splitlines())
    assert o["ceiling"] == pytest.approx(1.1)
    assert [w for w in o["warnings"] if "ceiling" in w] == [
        "the ceiling b - a = 1.1 is above 1, the top of a [0, 1] R (R reached 0.925): R was still climbing "
        "where the data end; read it as 'not saturated yet'"]
    f.write_text("step,entropy,accuracy\n" + "".join(  # b - a = 0.9: no such warning
        f"{s},{1 - s / 10},{1.4 - 0.5 * np.exp(1 - s / 10)}\n" for s in range(8)))
    (o,) = map(json.loads, invoke(f, "--json").stdout.splitlines())
    assert not [w for w in o["warnings"] if "ceiling" in w]


def test_percent_scale_reason_and_fix(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("step,entropy,accuracy\n" + "".join(f"{s},{1 - s / 10},{20 + 5 * s}\n" for s in range(8)))
    res = invoke(f, "--json")  # fitted in R's units, with a warning that suggests the scale
    assert res.exit_code == 0
    assert any("percentage" in w and "--perf-scale 0.01" in w for w in json.loads(res.stdout)["warnings"])
    res = invoke(f, "--perf-scale", "0.01", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["r_range"] == pytest.approx([0.2, 0.55])


@pytest.mark.parametrize("name,content,msg", [
    ("empty.jsonl", "", "empty"),
    ("trainer_state.json", '{"global_step": 20, "log_history": [{"entropy": 0.6, "reward"', "truncated"),
    ("notes.txt", "this is not a log\n", "not a recognised log"),
    ("nan.jsonl", "".join(json.dumps({"step": s, "entropy": None, "reward": 0.1}) + "\n" for s in range(9)),
     "NaN/null"),
    ("verl.jsonl", "".join(json.dumps({"step": s, "data": {"actor/entropy": 1.0 - s / 10,
                                                           "critic/score/mean": None}}) + "\n" for s in range(5)),
     "all 5 values of critic/score/mean are NaN/null"),
])
def test_bad_files_one_line_exit_2_nothing_written(tmp_path, name, content, msg):
    f = tmp_path / name
    f.write_text(content)
    before = snapshot(tmp_path)
    res = invoke(f, "--plot", tmp_path / "out.png")
    assert res.exit_code == 2
    line = one_line(res.stderr)
    assert msg in line and line.startswith("error: ") and res.stdout == ""
    assert snapshot(tmp_path) == before


def test_bad_usage_is_one_line_exit_2(tmp_path, sweep):
    for args, msg in (((sweep, "--early", "1.5"), "--early"), ((sweep, "--window", "9:1"), "START is after END"),
                      ((tmp_path / "nope.csv",), "no such file"), ((sweep, "--where", "split"), "KEY=VALUE"),
                      ((sweep, "--plot", tmp_path / "x.docx"), "unsupported image type")):
        res = invoke(*args)
        assert res.exit_code == 2 and msg in one_line(res.stderr), (args, res.output)
    assert not list(sweep.rglob("fit.json"))


def test_json_mode_reports_every_failure_and_exits_2(tmp_path):
    f = tmp_path / "short.csv"
    f.write_text("step,entropy,reward\n1,0.5,0.1\n2,0.4,0.2\n")
    res = invoke(f, "--json")
    assert res.exit_code == 2
    (o,) = map(json.loads, res.stdout.splitlines())
    assert o["error"].startswith("only 2 finite point") and o["n"] == 2


def test_debug_shows_the_exception(tmp_path):
    f = tmp_path / "empty.csv"
    f.write_text("")
    res = invoke(f, "--debug")
    assert res.exit_code == 2 and "Traceback" in res.stderr and "LogImportError" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_flat_r_is_not_read_as_support_for_the_law(tmp_path):
    """A run that never scored (R = 0 throughout) fits a flat line exactly: R² = 1 by
    convention, a = 0 (not -0); the warning says it means nothing."""
    f = tmp_path / "log.csv"
    f.write_text("step,entropy,accuracy\n" + "".join(f"{s},{2.4 - s / 10},0\n" for s in range(5)))
    (o,) = map(json.loads, invoke(f, "--json").stdout.splitlines())
    assert o["r2"] == 1.0 and o["a"] == 0.0 and str(o["a"]) == "0.0"
    assert [w for w in o["warnings"] if "flat" in w] == [
        "R is 0 at all 5 points: a flat line fits it exactly (a = 0, R² = 1), which says nothing about the "
        "law; check the performance key (--perf) or train longer"]
    text = invoke(f).stdout
    assert "-0 ±" not in text and "a flat line fits it exactly" in text
