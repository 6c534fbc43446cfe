"""Results into wandb, for real in offline mode (the test reads the files wandb wrote): the run's own
law fit in its summary at the end, and `entropyctl compare --wandb` (tables + report artifact)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("wandb", reason="the [wandb] extra is not installed")

from typer.testing import CliRunner  # noqa: E402
from wandb.proto import wandb_internal_pb2 as pb  # noqa: E402

from entropyctl.analysis.law_summary import law_summary  # noqa: E402
from entropyctl.cli.main import app  # noqa: E402
from entropyctl.config import TrackingConfig  # noqa: E402
from entropyctl.runstore import wandb_mirror  # noqa: E402
from entropyctl.runstore.store import create_run  # noqa: E402
from entropyctl.runstore.wandb_files import find_run_files, raw_records  # noqa: E402
from tests.test_wandb_mirror import read_all  # noqa: E402

A, B = 0.3, 1.1  # the law the fabricated runs follow: R = -A*exp(H) + B


def law_rows(n: int, wobble: float = 0.0) -> list[dict]:
    """Rows whose eval/acc follows the law at the NEXT round's entropy (analysis/runs.py pairing)."""
    H = [1.2 * math.exp(-r / 4) + 0.05 for r in range(n + 1)]
    return [{"round": r, "entropy/seqmean": H[r], "eval/acc": B - A * math.exp(H[r + 1]) + wobble * math.sin(3 * r)}
            for r in range(n)]


def mirrored_run(root: Path, rows: list[dict]) -> Path:
    w = create_run(root, "s", "grpo__lab__s0__x", "seed: 0\n", [], {"intervention": "grpo", "seed": 0})
    wandb_mirror.attach(w, TrackingConfig(wandb=True, wandb_mode="offline"), summary=law_summary)
    w.append(*rows)
    w.finish("finished")
    w.close()
    return w.path


def test_the_runs_law_fit_lands_in_the_summary(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = mirrored_run(tmp_path, law_rows(12, wobble=0.01))
    (got,) = read_all(run / "wandb", 1)
    summary = got["summary"]
    assert summary["status"] == "finished"
    fl = CliRunner().invoke(app, ["fit-law", str(run), "--json", "--no-write"])  # the same fit, by the CLI
    assert fl.exit_code == 0, fl.output
    fit = json.loads(fl.stdout.splitlines()[0])
    fit = fit.get("fit", fit)
    for key in ("a", "b", "ceiling", "r2"):
        assert summary[f"law/{key}"] == pytest.approx(fit[key], rel=1e-9), key
    assert summary["law/a"] == pytest.approx(A, abs=0.02) and summary["law/n"] == 12
    assert summary["law/ceiling_ci_low"] < summary["law/ceiling"] < summary["law/ceiling_ci_high"]


def test_an_unfittable_run_gets_a_note_and_no_numbers(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = mirrored_run(tmp_path, law_rows(2))
    (got,) = read_all(run / "wandb", 1)
    assert got["summary"]["law/note"].startswith("not fitted: only 2 finite point(s)")
    assert "law/a" not in got["summary"] and got["summary"]["status"] == "finished"


def test_a_failing_summary_is_a_warning_and_the_run_still_finishes(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_SILENT", "true")

    def broken(rows):
        raise ValueError(f"cannot summarise {len(rows)} rows")

    w = create_run(tmp_path, "s", "grpo__lab__s0__y", "seed: 0\n", [], {"intervention": "grpo", "seed": 0})
    wandb_mirror.attach(w, TrackingConfig(wandb=True, wandb_mode="offline"), summary=broken)
    w.append(*law_rows(3))
    w.finish("finished")
    w.close()
    warnings = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning: wandb")]
    assert len(warnings) == 1 and "cannot summarise 3 rows" in warnings[0]
    (got,) = read_all(w.path / "wandb", 1)
    assert got["complete"] and got["summary"]["status"] == "finished"
    assert not any(k.startswith("law/") for k in got["summary"])


def fabricate(root: Path, tracking: str) -> Path:
    """A sweep of 2 groups x 2 seeds (no training), whose configs carry `tracking`."""
    for name, wobble in (("grpo", 0.0), ("clip_cov", 0.02)):
        for seed in range(2):
            w = create_run(root, "cmp", f"{name}-{seed}", f"seed: {seed}\n{tracking}", [],
                           {"intervention": name, "seed": seed})
            w.append(*law_rows(10, wobble + 0.01 * seed))
            w.finish("finished")
            w.close()
    return root / "cmp"


def records(root: Path) -> tuple[Path, list]:
    """The one run file under `root` and its protobuf records, once wandb has written its end."""
    deadline = time.time() + 60
    while True:
        files = find_run_files(root)
        recs = []
        for raw in raw_records(files[0]) if len(files) == 1 else ():
            rec = pb.Record()
            rec.ParseFromString(raw)
            recs.append(rec)
        if (recs and recs[-1].WhichOneof("record_type") == "exit") or time.time() > deadline:
            return files[0], recs
        time.sleep(0.2)


def test_compare_logs_its_tables_and_report_to_wandb(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # artifact staging stays here
    sweep = fabricate(tmp_path, "tracking:\n  project: cmp-test\n  wandb_mode: offline\n")
    res = CliRunner().invoke(app, ["compare", str(sweep), "--wandb"])
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output
    out = sweep / "compare"
    f, recs = records(out / "wandb")
    assert recs[-1].WhichOneof("record_type") == "exit"
    (run,) = [r.run for r in recs if r.WhichOneof("record_type") == "run"]
    assert (run.project, run.run_group, run.job_type) == ("cmp-test", "cmp", "compare")

    # the per-group table: what compare.json says, row for row
    doc = json.loads((out / "compare.json").read_text())
    (history,) = [r.history for r in recs if r.WhichOneof("record_type") == "history"]
    table = {"/".join(i.nested_key[1:]): json.loads(i.value_json) for i in history.item
             if list(i.nested_key[:1]) == ["compare/metrics"]}
    assert table["_type"] == "table-file"
    data = json.loads((f.parent / "files" / table["path"]).read_text())
    cols = data["columns"]
    assert cols[:3] == ["group", "runs", "metric"] and "mean" in cols
    by_key = {(row[0], row[2]): dict(zip(cols, row)) for row in data["data"]}
    for g in doc["groups"]:
        for metric, stats in g["metrics"].items():
            row = by_key[(g["name"], metric)]
            assert row["runs"] == g["n"] and row["mean"] == stats["mean"]
    assert len(data["data"]) == sum(len(g["metrics"]) for g in doc["groups"])

    # the report files as an artifact: every one, with the digest of what is on disk
    (art,) = [r.artifact for r in recs if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "compare-report"]
    assert art.name == "compare-cmp"
    digests = {c.path: c.digest for c in art.manifest.contents}
    on_disk = sorted(p.name for p in out.iterdir() if p.is_file())
    assert sorted(digests) == on_disk and {"report.html", "compare.json", "report.md"} <= set(digests)
    for name, digest in digests.items():
        assert digest == base64.b64encode(hashlib.md5((out / name).read_bytes()).digest()).decode()


def test_a_wandb_failure_in_compare_is_one_warning(tmp_path: Path):
    sweep = fabricate(tmp_path, "tracking:\n  wandb_mode: online\n")
    # online with no API key anywhere (a bare HOME, no netrc): wandb refuses to start
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_API")} | {
        "HOME": str(tmp_path), "WANDB_SILENT": "true", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "entropyctl", "compare", str(sweep), "--wandb"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: wandb")]
    assert len(warnings) == 1 and "the report is complete in" in warnings[0], proc.stderr
    assert json.loads((sweep / "compare" / "compare.json").read_text())["groups"]
