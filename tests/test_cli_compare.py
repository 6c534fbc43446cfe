"""`entropyctl compare` on run stores the tests write: table, JSON, files, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.runstore.store import create_run

runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that rich does not fold the numbers


def write_run(root, intervention, seed, rewards, status="finished", config=None, sweep="sw"):
    w = create_run(root, sweep, f"{intervention}__lab__s{seed}__t", yaml.safe_dump(config or {}), [],
                   {"intervention": intervention, "seed": seed})
    for r, x in enumerate(rewards):
        w.append({"round": r, "reward/mean": x, "entropy/seqsum": 10.0 - r})
    w.finish(status)
    return w.path


@pytest.fixture
def sweep(tmp_path):
    for seed, r in enumerate([0.2, 0.3, 0.4]):
        write_run(tmp_path, "grpo", seed, [0.0, r, r])
    for seed, r in enumerate([0.5, 0.6, 0.8]):
        write_run(tmp_path, "clip_cov", seed, [0.0, r, r])
    write_run(tmp_path, "clip_cov", 9, [0.0, 5.0], status="failed")
    return tmp_path / "sw"


def snapshot(root):
    return sorted((p.relative_to(root), p.stat().st_size) for p in root.rglob("*"))


def test_json_known_numbers_and_files(sweep, tmp_path):
    out = tmp_path / "report"
    res = runner.invoke(app, ["compare", str(sweep), "--last-k", "2", "--json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj == json.loads((out / "compare.json").read_text())
    assert {"report.md", "report.html", "compare.json", "collapse.png"} <= {p.name for p in out.iterdir()}
    g = {x["name"]: x for x in obj["groups"]}
    assert g["grpo"]["metrics"]["reward/mean"]["mean"] == pytest.approx(0.3)
    assert g["clip_cov"]["n"] == 3
    assert set(g["clip_cov"]["vs_baseline"]["reward/mean"]) >= {"diff", "lo", "hi", "p", "p_holm"}
    p = stats.ttest_ind([0.5, 0.6, 0.8], [0.2, 0.3, 0.4], equal_var=False).pvalue
    assert g["clip_cov"]["vs_baseline"]["reward/mean"]["p"] == pytest.approx(p)
    # half-life: per-response entropy 10, 9, 8 never halves in 3 rounds
    assert g["grpo"]["metrics"]["half_life"]["n"] == 0
    runs = {r["seed"]: r for r in obj["runs"] if r["group"] == "clip_cov"}
    assert {"id", "group", "status", "seed"} <= set(runs[9])
    assert runs[9]["status"] == "failed" and not runs[9]["included"]


def test_table_in_the_terminal_and_default_out(sweep):
    res = runner.invoke(app, ["compare", str(sweep), "--last-k", "2", "--stat", "welch"])
    assert res.exit_code == 0, res.output
    assert "grpo (n=3, baseline)" in res.stdout and "clip_cov (n=3)" in res.stdout
    assert "0.300 ±0.248" in res.stdout  # mean 0.3, half-width t(0.975, 2) * 0.1 / sqrt(3)
    assert "statistic: welch (asked for with --stat;" in res.stdout
    assert "clip_cov − grpo" in res.stdout
    assert "left out of the statistics" in res.stdout and "failed" in res.stdout
    assert (sweep / "compare" / "report.html").is_file()  # inside the first sweep dir


def test_by_dotted_key_and_rich_markup_is_text(tmp_path):
    for seed, (tag, r) in enumerate([("[red]a[/red]", 0.1), ("[red]a[/red]", 0.2), ("b", 0.5), ("b", 0.7)]):
        write_run(tmp_path, "grpo", seed, [r], config={"model": {"tag": tag}})
    out = tmp_path / "o"
    res = runner.invoke(app, ["compare", str(tmp_path / "sw"), "--by", "model.tag", "--baseline", "b",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "[red]a[/red] (n=2)" in res.stdout  # printed literally, not as rich markup
    obj = json.loads((out / "compare.json").read_text())
    assert obj["by"] == "model.tag" and [g["name"] for g in obj["groups"]] == ["b", "[red]a[/red]"]
    assert obj["groups"][1]["metrics"]["reward/mean"]["mean"] == pytest.approx(0.15)


def test_by_a_dotted_run_json_key_splits_runs_by_cpu_kernels(tmp_path):
    # Same config, same seeds: only the kernels torch ran differ (run.json's numerics).
    for seed, (kernels, r) in enumerate([("AVX2", 0.1), ("AVX2", 0.2), ("AVX512", 0.5), ("AVX512", 0.7)]):
        w = create_run(tmp_path, "sw", f"grpo__lab__s{seed}__t", "{}\n", [],
                       {"intervention": "grpo", "seed": seed % 2, "numerics": {"cpu_kernels": kernels, "threads": 2}})
        w.append({"round": 0, "reward/mean": r, "entropy/seqsum": 1.0})
        w.finish("finished")
    out = tmp_path / "o"
    res = runner.invoke(app, ["compare", str(tmp_path / "sw"), "--by", "numerics.cpu_kernels", "--baseline", "AVX2",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    obj = json.loads((out / "compare.json").read_text())
    g = {x["name"]: x for x in obj["groups"]}
    assert set(g) == {"AVX2", "AVX512"}
    assert g["AVX512"]["metrics"]["reward/mean"]["mean"] == pytest.approx(0.6)
    assert not [n for n in obj["notes"] if "numerics." in n]  # split by the key: nothing left to say
    # Grouped by intervention, the one group pools both kernel sets: compare says so, and how to split.
    res = runner.invoke(app, ["compare", str(tmp_path / "sw"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    notes = [n for n in json.loads((out / "compare.json").read_text())["notes"] if "numerics." in n]
    assert notes == ["group(s) grpo pool runs with numerics.cpu_kernels = AVX2 / AVX512: the same seed gives "
                     "other numbers there; --by numerics.cpu_kernels splits them"]  # threads agree: no note
    assert "--by numerics.cpu_kernels splits them" in res.stdout


@pytest.mark.parametrize("case", ["empty", "missing", "metrics", "runjson", "baseline", "by", "all_failed"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    sw = tmp_path / "sw"
    sw.mkdir()
    args = []
    if case != "empty":
        run = write_run(tmp_path, "grpo", 0, [0.1, 0.2], status="failed" if case == "all_failed" else "finished")
    if case == "missing":
        sw = tmp_path / "nope"
    elif case == "metrics":
        (run / "metrics.jsonl").write_text('{"round": 0}\n{"round": 1, "reward\n{"round": 2}\n')
    elif case == "runjson":
        (run / "run.json").write_text("{not json")
    elif case == "baseline":
        args = ["--baseline", "nope"]
    elif case == "by":
        args = ["--by", "optim.nope"]
    before = snapshot(tmp_path)
    res = runner.invoke(app, ["compare", str(sw), *args])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in res.output
    expected = {"empty": "no runs under", "missing": "no such file", "metrics": "metrics.jsonl:2",
                "runjson": "corrupted run.json", "baseline": "baseline 'nope'", "by": "optim.nope",
                "all_failed": "--include-incomplete"}[case]
    assert expected in err
    assert snapshot(tmp_path) == before


def test_help_and_no_torch():
    res = runner.invoke(app, ["compare", "--help"])
    assert res.exit_code == 0
    for opt in ("--by", "--baseline", "--last-k", "--include-incomplete", "--out", "--json", "--debug"):
        assert opt in res.stdout
    code = ("import sys, entropyctl.cli.compare, entropyctl.analysis.compare, entropyctl.analysis.report; "
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_debug_lets_the_exception_through(tmp_path):
    (tmp_path / "sw").mkdir()
    res = runner.invoke(app, ["compare", str(tmp_path / "sw"), "--debug"])
    assert res.exit_code == 2 and "Traceback" in res.stderr and "RunStoreError" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")
