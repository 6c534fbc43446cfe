"""fit-law on W&B run history, for real: an offline run written here by the installed wandb with a
known history, read back through the real CLI (the `wandb://` API path needs a network and is
not tested here; docs/fit-law.md says so)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("wandb", reason="the [wandb] extra is not installed")

from entropyctl.analysis.fitlaw import fit_law  # noqa: E402
from entropyctl.analysis.logimport import ImportOptions, load_series  # noqa: E402
from entropyctl.cli.main import app  # noqa: E402
from entropyctl.runstore.store import create_run  # noqa: E402
from entropyctl.runstore.wandb_files import find_run_files, read_run  # noqa: E402

STEPS = 40


def history(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    H = 1.2 * np.exp(-np.arange(STEPS) / 12) + 0.05
    R = 0.75 - 0.2 * np.exp(H) + rng.normal(0, 0.01, STEPS)
    return H, R


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> Path:
    """<root>/wandb/offline-run-*-lawrun/run-lawrun.wandb, written by wandb itself."""
    import os

    import wandb

    root = tmp_path_factory.mktemp("wb")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    H, R = history()
    run = wandb.init(mode="offline", dir=str(root), project="law", id="lawrun", name="lawrun",
                     settings=wandb.Settings(console="off", save_code=False, x_disable_stats=True))
    for t in range(STEPS):
        # HF-style step key: the alias table prefers train/global_step to wandb's own _step
        row = {"actor": {"entropy": float(H[t])}, "critic/score/mean": float(R[t]), "train/global_step": 10 * t}
        if t == 5:
            row["critic/score/mean"] = float("nan")  # a diverged point: dropped from its series only
        run.log(row, step=t)
    run.finish()
    deadline = time.time() + 60  # wandb's service finishes the file after finish() returns
    while time.time() < deadline:
        files = find_run_files(root)
        if files and read_run(files[0])["complete"]:
            break
        time.sleep(0.2)
    return root


def fit_json(*args) -> list[dict]:
    res = CliRunner().invoke(app, ["fit-law", *map(str, args), "--json", "--no-write"])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_offline_run_history_fits_like_the_numbers_logged(offline_run: Path):
    H, R = history()
    keep = np.arange(STEPS) != 5
    want = fit_law(H[keep], R[keep])
    (run_file,) = find_run_files(offline_run)
    # the project folder above, the offline-run dir and the .wandb file itself read the same
    for path in (offline_run, run_file.parent, run_file):
        (o,) = fit_json(path)
        assert o["format"] == "wandb" and o["series"] == "lawrun train" and o["error"] is None
        assert o["entropy_key"] == "actor/entropy" and o["perf_key"] == "critic/score/mean"  # nested key read as a/b
        assert o["n"] == STEPS - 1 and o["n_dropped"] == 1  # the NaN point
        assert o["a"] == pytest.approx(want.a, rel=1e-12) and o["b"] == pytest.approx(want.b, rel=1e-12)
        assert o["ceiling_ci"] == pytest.approx(list(want.ceiling_ci), rel=1e-12)
        assert o["step_range"] == [0, 10 * (STEPS - 1)]  # train/global_step, not _step
        assert any(w.startswith("C1") for w in o["warnings"])


def test_step_and_keys_follow_the_shared_alias_options(offline_run: Path):
    (s,) = load_series([offline_run], ImportOptions(step_key="_step", perf_key="critic/score/mean"))
    assert s.steps.tolist() == list(range(STEPS)) and np.isnan(s.R[5])  # NaN stays a point, dropped at the fit
    (s,) = load_series([offline_run], ImportOptions(fmt="wandb", pairing="next"))
    H, _ = history()
    assert s.H[0] == H[1]  # R at step 0 with the entropy logged at the next step


def test_our_run_dir_with_a_wandb_mirror_still_reads_as_our_run(offline_run: Path, tmp_path: Path):
    w = create_run(tmp_path, "s", "r0", "seed: 0\n", [], {"intervention": "grpo", "seed": 0})
    for r in range(6):
        w.append({"round": r, "entropy/seqmean": 1.0 - r / 10, "eval/acc": 0.1 * r})
    w.finish("finished")
    w.close()
    shutil.copytree(offline_run / "wandb", w.path / "wandb", symlinks=True)
    (o,) = fit_json(w.path)
    assert o["format"] == "run" and o["entropy_key"] == "entropy/seqmean"


def test_bad_wandb_inputs_are_one_line(tmp_path: Path):
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b":W&B\xe1\xbe\x00" + b"\x07\x00\x00\x00\x05\x00\x01garbage")
    for args, says in (((bad,), "run-x.wandb"), (("wandb://only/two",), "wandb://ENTITY/PROJECT/RUN_ID"),
                       ((tmp_path / "empty-dir",), "no such file")):
        res = CliRunner().invoke(app, ["fit-law", *map(str, args)])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and says in lines[0], res.output
