"""Probes in a real run (the smoke preset, where they are off unless asked): they must not move
a single training number, and at round 0 (policy = base) they must read CKA 1 and KL 0."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from entropyctl.runstore.glossary import describe

PROBE_KEYS = ("eval/pass@", "eval/base_pass@", "kl/rev_exact", "kl/fwd_exact", "repr/", "time/", "perf/")


def train(runs_dir: Path, sweep: str, *extra: str) -> list[dict]:
    cmd = [sys.executable, "-m", "entropyctl", "train", "experiment=smoke", f"sweep={sweep}", "threads=1",
           "progress=false", f"runs_dir={runs_dir}", "intervention=entropy_bonus", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = [p for p in (runs_dir / sweep).iterdir() if p.is_dir()]
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pair(smoke_runs_dir: Path) -> tuple[list[dict], list[dict]]:
    plain = train(smoke_runs_dir, "noprobe")
    probed = train(smoke_runs_dir, "probe", "probe.every=2", "probe.pass_k_max=8", "probe.pass_prompts=4")
    return plain, probed


def test_smoke_preset_runs_no_probes(pair):
    plain, _ = pair
    assert not any(k.startswith(PROBE_KEYS[:5]) for row in plain for k in row)


def test_probes_do_not_change_the_training_numbers(pair):
    plain, probed = pair
    assert len(plain) == len(probed) == 3
    for a, b in zip(plain, probed):
        train_keys = {k for k in b if not k.startswith(PROBE_KEYS)}
        assert train_keys == {k for k in a if not k.startswith(PROBE_KEYS)}
        for k in train_keys:
            same = a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))
            assert same, (a["round"], k, a[k], b[k])


def test_probes_run_on_schedule_and_read_the_base_at_round_zero(pair):
    _, probed = pair
    # every=2 over 3 rounds: rounds 0 and 2 (2 is also the last)
    assert [r["round"] for r in probed if "kl/rev_exact" in r] == [0, 2]
    first = probed[0]
    cka = [v for k, v in first.items() if k.startswith("repr/cka/layer")]
    assert len(cka) == 2  # smoke model: embeddings + 1 block
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in cka)
    assert first["kl/rev_exact"] == pytest.approx(0.0, abs=1e-9)
    assert first["kl/fwd_exact"] == pytest.approx(0.0, abs=1e-9)
    assert sorted(k for k in first if k.startswith("eval/base_pass@")) == [
        "eval/base_pass@1", "eval/base_pass@2", "eval/base_pass@4", "eval/base_pass@8"]
    assert "eval/base_pass@1" not in probed[2]
    assert 0.0 <= first["eval/pass@1"] <= first["eval/pass@8"] <= 1.0
    for stat in ("hoyer", "top5_energy", "gini"):
        for which in ("familiar", "unfamiliar"):
            assert 0.0 <= first[f"repr/sparsity/{stat}/{which}"] <= 1.0
    # after two updates the policy has moved off the base (the smoke model earns no reward yet:
    # the entropy bonus moves the weights all the same)
    assert probed[2]["kl/rev_exact"] > 0


def test_every_probe_key_has_its_own_glossary_line(pair):
    _, probed = pair
    generic = describe("no/such/key")
    for row in probed:
        for k in row:
            assert describe(k) != generic, k


def test_the_cached_base_curve_follows_the_checkpoint_and_prompt_files(tmp_path):
    """New weights saved over the same model.path, or an edited prompt file, must not reuse
    the base model's cached pass@k curve; the same files must."""
    import os

    from entropyctl.config import ModelConfig, TaskConfig, TrainConfig
    from entropyctl.train.probes import base_curve_path

    ckpt = tmp_path / "latest"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / "model.safetensors").write_bytes(b"a" * 64)
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "q", "answer": "1"}\n')

    def path():
        return base_curve_path(TrainConfig(model=ModelConfig(name="hf", kind="hf", path=str(ckpt)),
                                           task=TaskConfig(name="d", kind="jsonl", path=str(data))))

    first = path()
    assert path() == first
    (ckpt / "model.safetensors").write_bytes(b"b" * 80)  # retrained, saved over
    second = path()
    assert second != first
    data.write_text('{"question": "q2", "answer": "2"}\n')
    os.utime(data, ns=(1, 1))
    assert path() != second
