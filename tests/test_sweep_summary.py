"""runs/<sweep>/sweep.json: each job's overrides, status and run dir, merged across sweeps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from entropyctl.runstore import sweep_summary as ss
from entropyctl.runstore.store import create_run

SMOKE = ("experiment=smoke", "progress=false", "threads=1")


def fake_job(root: Path, run_id: str, status: str | None, rows: int = 2) -> Path:
    """A run as a job leaves it (no training): run.json with `status`, `rows` metrics rows."""
    w = create_run(root, "sw", run_id, "seed: 0\n", [], {"intervention": "grpo", "seed": 0})
    for r in range(rows):
        w.append({"round": r, "reward/mean": 0.25 * (r + 1)})
    if status is not None:
        w.finish(status)
    w.close()
    return w.path


def run_jobs(monkeypatch, root: Path, token: str, jobs) -> None:
    """Each (overrides, fn) through `recording`, as a sweep's jobs are."""
    monkeypatch.setenv(ss.TOKEN_ENV, token)
    for num, (overrides, fn) in enumerate(jobs):
        try:
            ss.recording(fn, root / "sw", overrides, num)
        except (RuntimeError, KeyboardInterrupt):
            pass


def test_statuses_and_a_second_sweep_that_adds_its_jobs(tmp_path: Path, monkeypatch):
    def diverged():
        e = RuntimeError("non-finite loss")
        e.run_dir = fake_job(tmp_path, "b", "diverged", rows=1)
        raise e

    def refused():
        raise RuntimeError("broken before any run directory")

    def interrupted():
        e = KeyboardInterrupt()
        e.run_dir = fake_job(tmp_path, "d", "interrupted", rows=3)
        raise e

    run_jobs(monkeypatch, tmp_path, "t1", [
        (["seed=0"], lambda: fake_job(tmp_path, "a", "finished")),
        (["seed=1"], diverged), (["seed=2"], refused), (["seed=3"], interrupted)])
    out = ss.summarise(tmp_path / "sw", "t1", "entropyctl train -m ...", expected=5)
    doc = json.loads(out.read_text())
    assert [(j["overrides"], j["status"], j["run_dir"]) for j in doc["jobs"]] == [
        (["seed=0"], "done", "a"), (["seed=1"], "diverged", "b"), (["seed=2"], "failed", None),
        (["seed=3"], "interrupted", "d")]
    first = doc["jobs"][0]
    assert first["metrics"] == "a/metrics.jsonl" and first["rounds_done"] == 2
    assert first["last"]["reward/mean"] == 0.5  # the last row's value, read by `entropyctl runs`' reader
    assert "broken before" in doc["jobs"][2]["error"]
    assert doc["invocations"][0]["missing"] == 1  # five expected, four left a record
    assert not (tmp_path / "sw" / ss.RECORDS).exists()

    # a second sweep into the same name: its jobs are added; `d`, resumed to the end, is replaced
    def resumed():
        return fake_job(tmp_path, "e", "finished")

    (tmp_path / "sw" / "d" / "run.json").write_text(
        (tmp_path / "sw" / "d" / "run.json").read_text().replace('"interrupted"', '"finished"'))
    run_jobs(monkeypatch, tmp_path, "t2", [(["seed=3"], lambda: tmp_path / "sw" / "d"), (["seed=4"], resumed)])
    doc = json.loads(ss.summarise(tmp_path / "sw", "t2", "again").read_text())
    assert [(j["run_dir"], j["status"], j["invocation"]) for j in doc["jobs"]] == [
        ("a", "done", "t1"), ("b", "diverged", "t1"), (None, "failed", "t1"), ("d", "done", "t2"), ("e", "done", "t2")]
    assert [i["token"] for i in doc["invocations"]] == ["t1", "t2"]


def test_outside_a_sweep_nothing_is_recorded(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(ss.TOKEN_ENV, raising=False)
    ss.recording(lambda: fake_job(tmp_path, "a", "finished"), tmp_path / "sw", ["seed=0"], 0)
    assert not (tmp_path / "sw" / ss.RECORDS).exists() and ss.summarise(tmp_path / "sw", "t", "x") is None


def test_an_unreadable_sweep_json_is_kept_aside(tmp_path: Path, monkeypatch):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / ss.SWEEP_JSON).write_text("{not json")
    run_jobs(monkeypatch, tmp_path, "t1", [(["seed=0"], lambda: fake_job(tmp_path, "a", "finished"))])
    doc = json.loads(ss.summarise(tmp_path / "sw", "t1", "x").read_text())
    assert len(doc["jobs"]) == 1
    assert (tmp_path / "sw" / f"{ss.SWEEP_JSON}.unreadable-t1").read_text() == "{not json"


def train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entropyctl", "train", "-m", *SMOKE, *args],
                          capture_output=True, text=True, timeout=600)


def test_a_real_sweep_writes_sweep_json(tmp_path: Path, smoke_runs_dir: Path):
    """The basic launcher (joblib's and submitit_local's sweeps check sweep.json in test_faults.py
    and test_launchers.py); one job diverges, the other finishes."""
    # lr 1e30: the entropy bonus's first step leaves non-finite gradients; grpo's clip keeps it going
    proc = train(f"runs_dir={tmp_path}", f"cache_dir={smoke_runs_dir}/.cache", "sweep=sj", "rounds=2",
                 "intervention=grpo,entropy_bonus", "optim.lr=1e30")
    assert proc.returncode != 0 and "sweep summary:" in proc.stderr, proc.stderr[-2000:]
    doc = json.loads((tmp_path / "sj" / "sweep.json").read_text())
    status = {j["intervention"]: j["status"] for j in doc["jobs"]}
    assert status == {"grpo": "done", "entropy_bonus": "diverged"}
    for j in doc["jobs"]:
        run = json.loads((tmp_path / "sj" / j["run_dir"] / "run.json").read_text())
        assert run["id"] == j["id"] and f"intervention={run['intervention']}" in j["overrides"]
        rows = (tmp_path / "sj" / j["metrics"]).read_text().splitlines()
        assert len(rows) == j["rounds_done"]
    assert doc["invocations"][0]["jobs"] == 2 and "missing" not in doc["invocations"][0]
