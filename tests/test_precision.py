"""float16 (models/precision.py): without a loss scale an RL-sized loss's gradients vanish in
float16's range; scaled, they are float32's. An overflow skips the step and halves the scale; a
real divergence is still one. The scale survives a checkpoint. And a float16 run trains."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from entropyctl.errors import Divergence
from entropyctl.models.precision import backward, clip_and_step, compute_precision, grad_scaler
from entropyctl.train.checkpoint import latest_checkpoint, save_checkpoint
from tests.helpers import tiny_lab_model

CPU = torch.device("cpu")


def _grads(dtype: str, loss_size: float, scaler=None) -> torch.Tensor:
    tok, model = tiny_lab_model()
    ids = torch.randint(3, len(tok), (64, 20), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters())
    with compute_precision(dtype, CPU):
        loss = model(input_ids=ids).logits.float().log_softmax(-1)[..., 5].mean() * loss_size
    backward(loss, scaler)
    if scaler is not None:
        scaler.unscale_(opt)
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("loss_size", [1e-3, 1e-5])
def test_float16_gradients_need_the_loss_scale(loss_size):
    want = _grads("float32", loss_size)
    bare = _grads("float16", loss_size)
    scaled = _grads("float16", loss_size, grad_scaler("float16", CPU))
    assert (want != 0).all()
    assert (bare == 0).float().mean() > 0.3  # what float16 alone does to them
    assert (scaled == 0).float().mean() < 1e-3  # a handful of entries at float16's rounding
    assert (scaled - want).norm() / want.norm() < 2e-3
    assert grad_scaler("bfloat16", CPU) is None and grad_scaler("float32", CPU) is None


def _scaler():
    scaler = grad_scaler("float16", CPU)
    scaler.scale(torch.ones(()))  # GradScaler makes its scale on first use
    return scaler


def _model_with_grad(value: float):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = torch.full_like(p, value)
    return model, opt


def test_an_overflow_skips_the_step_and_halves_the_scale():
    model, opt = _model_with_grad(float("inf"))
    scaler = _scaler()
    before = [p.detach().clone() for p in model.parameters()]
    scale = scaler.get_scale()
    assert clip_and_step(model, opt, scaler, 1.0) is None
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert scaler.get_scale() == scale / 2
    model, opt = _model_with_grad(scaler.get_scale())  # gradients of a scaled loss
    norm = clip_and_step(model, opt, scaler, 1.0)
    assert norm is not None and float(norm) > 1 and not all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_a_real_divergence_is_still_one():
    model, opt = _model_with_grad(float("nan"))
    with pytest.raises(Divergence, match="non-finite gradient norm"):
        clip_and_step(model, opt, None, 1.0)
    scaler = _scaler()
    scaler.update(new_scale=1.0)  # halved all the way down and still overflowing
    with pytest.raises(Divergence, match="non-finite gradient norm"):
        clip_and_step(model, opt, scaler, 1.0)


def test_the_loss_scale_survives_a_checkpoint(tmp_path):
    model, opt = _model_with_grad(1.0)
    scaler = _scaler()
    scaler.update(new_scale=512.0)
    save_checkpoint(tmp_path, 2, model=model, optimizer=opt, prompt_rng=random.Random(0),
                    sample_gen=torch.Generator(), config_yaml_sha="x", keep=1, scaler=scaler)
    fresh = _scaler()
    latest_checkpoint(tmp_path, "x").restore(model=model, optimizer=opt, prompt_rng=random.Random(1),
                                             sample_gen=torch.Generator(), scaler=fresh)
    assert fresh.get_scale() == 512.0 and fresh.state_dict() == scaler.state_dict()


def test_a_float16_run_trains_and_says_how_many_steps_it_skipped(smoke_runs_dir: Path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "entropyctl", "train", "experiment=smoke", "model.dtype=float16",
                          # the smoke model earns no reward yet: the entropy bonus is what moves its weights
                          "intervention=entropy_bonus", "intervention.entropy_bonus.coef=0.01",
                          "rounds=2", "checkpoint_every=1", "sweep=f16", f"runs_dir={smoke_runs_dir}",
                          "progress=false", "threads=1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run,) = (smoke_runs_dir / "f16").iterdir()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["grad/skipped"] < 1.0 and r["grad/norm"] > 0 for r in rows), [(r["grad/skipped"], r["grad/norm"]) for r in rows]
    (ckpt,) = (run / "checkpoints").iterdir()
    assert json.loads((ckpt / "state.json").read_text())["grad_scaler"]["scale"] > 1
