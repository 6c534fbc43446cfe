"""`entropyctl runs`: status from run.json and the lock, last metrics, resume hints, --json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.runstore.store import create_run

runner = CliRunner()


def make(runs, sweep, run_id, rows, status=None):
    w = create_run(runs, sweep, run_id, "seed: 0\n", [], {"intervention": "grpo", "seed": 0, "rounds_planned": 5})
    for r in rows:
        w.append(r)
    if status:
        w.finish(status)
    return w


def test_runs_shows_live_stale_and_finished_runs(tmp_path):
    live = make(tmp_path, "s", "live", [{"round": 0, "reward/mean": 0.25}])
    dead = make(tmp_path, "s", "dead", [{"round": 0, "reward/mean": 0.5}, {"round": 1, "reward/mean": 0.75}])
    dead.close()  # the process died: its flock is gone, run.json still says running
    done = make(tmp_path, "t", "done", [{"round": 0, "eval/acc": 0.5, "reward/mean": 0.1}], status="finished")
    done.close()
    try:
        res = runner.invoke(app, ["runs", str(tmp_path), "--json"])
    finally:
        live.close()
    assert res.exit_code == 0, res.output
    by_id = {r["id"]: r for r in json.loads(res.output)}
    assert by_id["live"]["status"] == "running" and by_id["live"]["resume"] is None
    assert by_id["dead"]["status"] == "stale"
    assert by_id["dead"]["resume"] == f"entropyctl resume {tmp_path / 's' / 'dead'}"
    assert by_id["dead"]["rounds_done"] == 2 and by_id["dead"]["last"]["reward/mean"] == 0.75
    assert by_id["done"]["status"] == "finished" and by_id["done"]["resume"] is None
    assert by_id["done"]["last"] == {"reward/mean": 0.1, "eval/acc": 0.5}


def test_runs_table_and_a_corrupted_run_do_not_stop_the_listing(tmp_path):
    make(tmp_path, "s", "ok", [{"round": 0, "reward/mean": 0.5}], status="finished").close()
    bad = make(tmp_path, "s", "bad", [])
    bad.close()
    (bad.path / "run.json").write_text("{not json")
    res = runner.invoke(app, ["runs", str(tmp_path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "s/ok" in res.output and "finished" in res.output and "unreadable" in res.output
    row = next(line for line in res.output.splitlines() if "s/bad" in line)
    assert "None" not in row and [c.strip() for c in row.split("│")][3] == "?"  # its seed is unknown


def test_runs_on_a_missing_folder_is_one_line_exit_2(tmp_path):
    res = runner.invoke(app, ["runs", str(tmp_path / "nope")])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "no such folder" in res.output
