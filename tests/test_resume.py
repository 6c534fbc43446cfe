"""Resume (issue 6): a smoke run killed with SIGKILL mid-run and resumed logs every round
exactly once and the same metrics, bit for bit, as an uninterrupted run with the same seed;
the final weights, optimiser state and RNG states are identical too. Plus the pieces: the
metrics cut-back, checkpoint atomicity and fallback, and `resume=true` finding its run.

Real subprocesses and files throughout; entropy_bonus makes the weights move (the smoke
model earns no reward, so plain GRPO would leave them as they are). The run also carries the two
entropy controllers, mid-run at every checkpoint: adaptive_entropy (target far above the smoke
model's entropy, so its coefficient climbs every optimiser step and its bonus moves the weights)
and entropic (its integral grows every step). A resume that restarted either controller would
log other coefficients and train other weights.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from entropyctl.train.checkpoint import CKPT_DIR, config_sha, latest_checkpoint, list_checkpoints, save_checkpoint
from entropyctl.runstore.samples import read_samples, truncate_samples
from entropyctl.runstore.store import DROPPED, SAMPLES, RunStoreError, lock_run, truncate_metrics
from tests.helpers import wait_for_single_run

# 12 rounds of 32 prompts: the kill after the 3rd row must land mid-run however fast a smoke
# round gets (5 rounds of 8 prompts finished before the SIGKILL in a fresh-clone CI run).
ROUNDS = 12
ARGS = ("experiment=smoke", f"rounds={ROUNDS}", "checkpoint_every=2", "rollout.prompts_per_round=32",
        "intervention=[entropy_bonus,adaptive_entropy,entropic]", "intervention.adaptive_entropy.target=10.0",
        "intervention.adaptive_entropy.delta=0.01", "intervention.adaptive_entropy.coef_max=1.0",
        "intervention.entropic.target=2.0", "progress=false", "threads=1")
VOLATILE = ("time/", "perf/")  # wall-clock timings: never equal across processes


def train(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "entropyctl", "train", *ARGS, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)




def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def stable(rs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rs]


def pretrain_smoke_base(runs: Path) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from entropyctl.config import register_schemas
    from entropyctl.cli.train_cmd import CONF_DIR
    from entropyctl.lab.pretrain import ensure_base

    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = OmegaConf.to_object(compose("config", overrides=["experiment=smoke", f"runs_dir={runs}"]))
    ensure_base(cfg.model, cfg.task, cfg.cache_dir)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict:
    """An uninterrupted run and one killed after its 3rd metrics line, then resumed."""
    runs = tmp_path_factory.mktemp("runs")
    # Both runs must find the base model cached: setup() seeds torch before it pretrains on a
    # cache miss, so a run that pretrains starts from another global RNG state.
    # (In-process: the smoke base takes a second; a subprocess would spend more on imports.)
    pretrain_smoke_base(runs)
    base = train(f"runs_dir={runs}", "sweep=base")
    killed = train(f"runs_dir={runs}", "sweep=killed")
    base_dir = wait_for_single_run(runs / "base")
    run = wait_for_single_run(runs / "killed")
    while (run / "metrics.jsonl").read_text().count("\n") < 3:
        assert killed.poll() is None, killed.communicate()
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    logged = (run / "metrics.jsonl").read_text().count("\n")
    status_at_kill = json.loads((run / "run.json").read_text())["status"]
    resumed = subprocess.run([sys.executable, "-m", "entropyctl", "train", *ARGS, f"runs_dir={runs}",
                              "sweep=killed", "resume=true"], capture_output=True, text=True, timeout=300)
    out, err = base.communicate(timeout=300)
    assert base.returncode == 0, err[-2000:]
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    return {"runs": runs, "base": base_dir, "run": run, "logged": logged, "status_at_kill": status_at_kill,
            "resume_out": resumed.stdout}


def test_killed_run_logs_every_round_exactly_once(pair):
    run = pair["run"]
    assert pair["status_at_kill"] == "running"  # SIGKILL leaves no word: resume takes `running`
    assert [r["round"] for r in rows(run)] == list(range(ROUNDS))
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["rounds_done"] == ROUNDS and info["error"] is None
    [resume] = info["resumes"]
    # the newest checkpoint (every 2 rounds) at or just before the rows logged at the kill
    assert resume["from_round"] % 2 == 0 and pair["logged"] - 2 <= resume["from_round"] <= pair["logged"]
    # The rows logged after the checkpoint were recomputed; the old copies are kept aside.
    assert resume["rows_dropped"] == pair["logged"] - resume["from_round"] >= 0
    dropped = [json.loads(line) for line in (run / DROPPED).read_text().splitlines()] if resume["rows_dropped"] else []
    assert [json.loads(d["line"])["round"] for d in dropped] == list(range(resume["from_round"], pair["logged"]))
    assert f"at round {resume['from_round']}/{ROUNDS}" in pair["resume_out"]
    assert [p.name for p in (pair["runs"] / "killed").iterdir()] == [run.name]  # no second run dir


def test_resumed_metrics_equal_an_uninterrupted_run(pair):
    a, b = rows(pair["base"]), rows(pair["run"])
    assert stable(a) == stable(b)  # bit for bit: JSON floats round-trip exactly
    assert any(r["loss/policy"] != 0 for r in a)  # the weights did move
    assert a[0]["entropy/seqmean"] != a[-1]["entropy/seqmean"]
    # the controllers were moving all along, so the resumed rounds continued them mid-run
    coef = [r["adaptive_entropy/coef"] for r in a]
    integral = [r["entropic/integral"] for r in a]
    assert all(x < y for x, y in zip(coef, coef[1:])) and all(x != y for x, y in zip(integral, integral[1:]))


def test_resumed_samples_equal_an_uninterrupted_run(pair):
    a, b = read_samples(pair["base"]), read_samples(pair["run"])
    assert [r["round"] for r in a] == [r for r in range(ROUNDS) for _ in range(4)]  # log.samples_per_round
    assert a == b  # the resume dropped the recomputed rounds' samples, which came back the same


def test_truncate_samples_keeps_earlier_rounds(tmp_path):
    (tmp_path / SAMPLES).write_text("".join(json.dumps({"round": r, "completion": f"c{r}"}) + "\n"
                                            for r in (0, 0, 1, 2, 2)) + '{"round": 3, "compl')
    assert truncate_samples(tmp_path, 2) == 2
    assert [r["round"] for r in read_samples(tmp_path)] == [0, 0, 1]


def test_resumed_final_state_is_bit_identical(pair):
    def final(run: Path) -> dict:
        [(r, path)] = list_checkpoints(run)
        return {"round": r, **json.loads((path / "state.json").read_text())}

    a, b = final(pair["base"]), final(pair["run"])
    assert a["round"] == b["round"] == ROUNDS
    assert a["sha256"] == b["sha256"]  # model.safetensors, optimizer.pt, rng.pt
    assert a["prompt_rng"] == b["prompt_rng"]
    assert a["interventions"] == b["interventions"]  # the controllers' state
    assert set(a["interventions"]) == {"adaptive_entropy", "entropic"}
    assert a["interventions"]["adaptive_entropy"]["coef"] > 0 and a["interventions"]["entropic"]["integral"] != 0


def test_resume_true_skips_a_finished_run(pair, capsys):
    from entropyctl.train.resume import load_config, train_or_resume

    config_yaml = (pair["base"] / "config.yaml").read_text()
    cfg = load_config(config_yaml, pair["base"])
    cfg.resume = True
    before = sorted(p.name for p in (pair["runs"] / "base").iterdir())
    assert train_or_resume(cfg, []) == pair["base"]
    assert "already finished, not run again" in capsys.readouterr().out
    assert sorted(p.name for p in (pair["runs"] / "base").iterdir()) == before


def test_resume_refuses_a_live_run(pair, tmp_path):
    from entropyctl.train.resume import resume

    run = Path(shutil.copytree(pair["run"], tmp_path / "live"))
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    fd = lock_run(run)  # as the live writer holds it
    try:
        with pytest.raises(RunStoreError, match="is being written by pid"):
            resume(run)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- the pieces


def _metrics(run: Path, rounds: range, torn: str = "") -> None:
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"round": r, "x": r / 3}) + "\n" for r in rounds) + torn)


def test_truncate_metrics_moves_later_rows_and_a_torn_line_aside(tmp_path):
    _metrics(tmp_path, range(6), torn='{"round": 6, "x"')
    assert truncate_metrics(tmp_path, 3) == 4
    assert [r["round"] for r in rows(tmp_path)] == [0, 1, 2]
    moved = [json.loads(line) for line in (tmp_path / DROPPED).read_text().splitlines()]
    assert [m["line"] for m in moved][-1] == '{"round": 6, "x"'
    assert [json.loads(m["line"])["round"] for m in moved[:-1]] == [3, 4, 5]
    assert truncate_metrics(tmp_path, 3) == 0  # idempotent


def test_truncate_metrics_refuses_missing_rounds(tmp_path):
    _metrics(tmp_path, [0, 2, 3])
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(RunStoreError, match="holds rounds"):
        truncate_metrics(tmp_path, 3)
    assert (tmp_path / "metrics.jsonl").read_text() == before and not (tmp_path / DROPPED).exists()


def _state():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    return model, opt, random.Random(1), torch.Generator().manual_seed(2)


def test_checkpoint_round_trip_restores_everything(tmp_path):
    model, opt, rng, gen = _state()
    sha = config_sha("seed: 0\n")
    save_checkpoint(tmp_path, 5, model=model, optimizer=opt, prompt_rng=rng, sample_gen=gen,
                    config_yaml_sha=sha, keep=1)
    expected = (torch.rand(3), torch.rand(3, generator=gen), rng.random())
    model2, opt2, rng2, gen2 = torch.nn.Linear(4, 3), None, random.Random(9), torch.Generator()
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.1)
    torch.manual_seed(123)
    ckpt = latest_checkpoint(tmp_path, sha)
    ckpt.restore(model=model2, optimizer=opt2, prompt_rng=rng2, sample_gen=gen2)
    assert ckpt.round == 5
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], opt2.state_dict()["state"][0]["exp_avg"])
    assert (torch.rand(3), torch.rand(3, generator=gen2), rng2.random())[2] == expected[2]
    with pytest.raises(ValueError, match="changed since the checkpoint"):
        latest_checkpoint(tmp_path, config_sha("seed: 1\n"))


def test_checkpoint_keeps_the_controllers_state(tmp_path):
    from entropyctl.interventions import build
    from entropyctl.train.checkpoint import CheckpointError

    sel = {"adaptive_entropy": {"target": 0.2, "coef_init": 0.001}, "entropic": {}}
    pipe = build(sel)
    for h in (0.05, 0.07, 0.3):
        pipe.controllers["adaptive_entropy"].observe(h)
        pipe.controllers["entropic"].observe(h - 0.1)
        pipe.step()
    model, opt, rng, gen = _state()
    save_checkpoint(tmp_path, 3, model=model, optimizer=opt, prompt_rng=rng, sample_gen=gen,
                    config_yaml_sha="x", keep=1, interventions=pipe.state_dict())
    fresh = build(sel)
    latest_checkpoint(tmp_path, "x").restore(model=model, optimizer=opt, prompt_rng=rng, sample_gen=gen,
                                             pipeline=fresh)
    assert fresh.state_dict() == pipe.state_dict() != build(sel).state_dict()
    # 0.001 -> 0.0011 -> 0.0012 -> 0.0011 (0.3 > 0.2);  integral -0.05 - 0.03 + 0.2
    assert fresh.state_dict()["adaptive_entropy"]["coef"] == pytest.approx(0.0011)
    assert fresh.state_dict()["entropic"]["integral"] == pytest.approx(0.12)
    # a checkpoint without a controller's state (written before the controllers existed) is refused
    save_checkpoint(tmp_path, 4, model=model, optimizer=opt, prompt_rng=rng, sample_gen=gen,
                    config_yaml_sha="x", keep=1)
    with pytest.raises(CheckpointError, match="no state for adaptive_entropy, entropic"):
        latest_checkpoint(tmp_path, "x").restore(model=model, optimizer=opt, prompt_rng=rng, sample_gen=gen,
                                                 pipeline=build(sel))


def test_checkpoint_writes_are_atomic_and_bounded(tmp_path):
    model, opt, rng, gen = _state()
    kw = dict(model=model, optimizer=opt, prompt_rng=rng, sample_gen=gen, config_yaml_sha="x")
    for r in (0, 2, 4):
        save_checkpoint(tmp_path, r, keep=2, **kw)
    assert [r for r, _ in list_checkpoints(tmp_path)] == [2, 4]
    # A save killed half-way leaves only a hidden temp folder: ignored, then cleaned up.
    half = tmp_path / CKPT_DIR / ".round-000006.tmp-999"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\x00" * 10)
    assert latest_checkpoint(tmp_path, "x").round == 4
    # A damaged newest checkpoint falls back to the older one.
    with open(tmp_path / CKPT_DIR / "round-000004" / "optimizer.pt", "r+b") as f:
        f.seek(40)
        f.write(b"\xff\xff\xff\xff")
    assert latest_checkpoint(tmp_path, "x", log=lambda m: None).round == 2
    save_checkpoint(tmp_path, 6, keep=2, **kw)
    assert not half.exists()
