"""`entropyctl export` (a trained run as a directory transformers loads, never overwriting),
`entropyctl doctor` (facts of this machine), and the run setup's device and base-model choices."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO


def entropyctl(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entropyctl", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def trained_run(smoke_runs_dir: Path) -> Path:
    # No base model (base_kl off, no kl_anchor): the run must still train, without kl/base_k3.
    # The smoke model earns no reward yet: the entropy bonus is what moves its weights.
    out = entropyctl("train", "experiment=smoke", "rounds=2", "checkpoint_every=1", "model.base_kl=false",
                     "intervention=entropy_bonus", "intervention.entropy_bonus.coef=0.01",
                     "sweep=export", f"runs_dir={smoke_runs_dir}", "progress=false", "threads=1")
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = [p for p in (smoke_runs_dir / "export").iterdir() if p.is_dir()]
    return run


def trained_policy(run: Path):
    """The run's final policy as `resume` rebuilds it: its base model plus the newest checkpoint."""
    from entropyctl.models.loading import load_policy
    from entropyctl.train.checkpoint import config_sha, latest_checkpoint
    from entropyctl.train.loop import resolve_model_path
    from entropyctl.train.resume import load_config
    from entropyctl.train.update import make_optimizer

    text = (run / "config.yaml").read_text()
    cfg = load_config(text, run / "config.yaml")
    model, tok = load_policy(resolve_model_path(cfg, log=lambda *_: None), cfg.model.attn_impl)
    base = load_policy(resolve_model_path(cfg, log=lambda *_: None), cfg.model.attn_impl)[0]
    ckpt = latest_checkpoint(run, config_sha(text), log=lambda *_: None)
    ckpt.restore(model=model, optimizer=make_optimizer(model, cfg.optim), prompt_rng=random.Random(),
                 sample_gen=torch.Generator())
    return model.eval(), base.eval(), tok, ckpt.round


def test_a_run_without_a_base_model_logs_no_kl_to_it(trained_run: Path):
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all("kl/base_k3" not in r and "entropy/tokmean" in r for r in rows)


def test_export_writes_a_directory_transformers_loads_with_the_trained_logits(trained_run: Path, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "exported"
    res = entropyctl("export", str(trained_run), str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    # the run's attention kernel: sdpa's rounding differs from eager's in the last bits
    loaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    policy, base, policy_tok, round_ = trained_policy(trained_run)
    assert round_ == 2 and json.loads((out / "entropyctl_export.json").read_text())["checkpoint_round"] == 2
    ids = torch.tensor([policy_tok("12+34=", add_special_tokens=False)["input_ids"]])
    assert tok("12+34=", add_special_tokens=False)["input_ids"] == ids[0].tolist()
    with torch.no_grad():
        got, want, before = loaded(ids).logits, policy(ids).logits, base(ids).logits
    assert torch.equal(got, want)
    sdpa = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, attn_implementation="sdpa").eval()
    with torch.no_grad():
        assert torch.allclose(sdpa(ids).logits, want, atol=1e-5)
    assert not torch.equal(want, before)  # the export holds the trained weights, not the base


def test_export_never_overwrites(trained_run: Path, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = entropyctl("export", str(trained_run), str(out))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "not empty" in res.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_export_to_a_path_that_cannot_be_made_is_one_line_before_loading(trained_run: Path, tmp_path):
    """A file where a folder should be was 'FileExistsError ... rerun with --debug' after the
    model had loaded; a folder that cannot be written named export's own temp folder."""
    (tmp_path / "afile").write_text("mine")
    for out, says in ((tmp_path / "afile" / "out", "afile is a file, so"),
                      (tmp_path / "afile", "afile is a file; give a new directory")):
        res = entropyctl("export", str(trained_run), str(out))
        assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and says in res.stderr, res.stderr
        assert "base model" not in res.stderr  # refused before the model loads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and (tmp_path / "afile").read_text() == "mine"


def test_export_refuses_what_is_not_a_run(tmp_path):
    res = entropyctl("export", str(tmp_path), str(tmp_path / "out"))
    assert res.returncode == 2 and "not a run directory" in res.stderr
    assert not (tmp_path / "out").exists()


def test_doctor_json_reports_this_machine(tmp_path):
    res = entropyctl("doctor", "--json", env={"WANDB_MODE": "offline"}, timeout=120)
    assert res.returncode == 0, res.stderr
    facts = json.loads(res.stdout)
    assert {"entropyctl", "python", "platform", "versions", "devices", "backends", "extras", "wandb_mode",
            "notes"} <= set(facts)
    import transformers

    assert facts["versions"]["torch"] == torch.__version__
    assert facts["versions"]["transformers"] == transformers.__version__
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))
    d = facts["devices"]
    assert d["cpu_cores"] == os.cpu_count()
    assert d["cuda_available"] == torch.cuda.is_available()
    assert len(d["cuda_devices"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert d["device_auto"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert facts["backends"]["torch"] is True
    for extra, module in (("vllm", "vllm"), ("math", "math_verify"), ("wandb", "wandb")):
        assert facts["extras"][extra]["installed"] == (importlib.util.find_spec(module) is not None)
    if importlib.util.find_spec("vllm") is None:
        assert facts["backends"]["vllm"] is False and any("vllm not installed" in n for n in facts["notes"])
    assert facts["wandb_mode"] == "offline"


def test_doctor_text_says_where_device_auto_runs():
    res = entropyctl("doctor", env={"WANDB_MODE": ""}, timeout=120)
    assert res.returncode == 0 and "WANDB_MODE=(unset)" in res.stdout
    if not torch.cuda.is_available():
        assert "not available (device=auto runs on the CPU)" in res.stdout


def _compose(*overrides: str):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from entropyctl.config import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return OmegaConf.to_object(compose("config", overrides=list(overrides)))


def test_setup_loads_the_base_only_when_something_reads_it(smoke_runs_dir):
    from entropyctl.models.loading import is_checkpointing
    from entropyctl.train.loop import setup

    common = ["experiment=smoke", f"runs_dir={smoke_runs_dir}", "threads=2"]
    quiet = {"log": lambda *_: None}
    assert setup(_compose(*common, "model.base_kl=false"), **quiet).base is None
    anchored = setup(_compose(*common, "model.base_kl=false", "intervention=kl_anchor"), **quiet)
    assert anchored.base is not None and not any(p.requires_grad for p in anchored.base.parameters())
    s = setup(_compose(*common, "model.dtype=bfloat16", "device=cpu", "model.base_device=cpu",
                       "model.gradient_checkpointing=true"), **quiet)
    assert s.base is not None and s.device == torch.device("cpu") and is_checkpointing(s.model)
    # the policy keeps float32 master weights (its passes run under autocast); the frozen base is bfloat16
    assert {p.dtype for p in s.model.parameters()} == {torch.float32}
    assert {p.dtype for p in s.base.parameters()} == {torch.bfloat16}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_cuda_is_one_line_before_any_run_dir(tmp_path):
    res = entropyctl("train", "experiment=smoke", "device=cuda", f"runs_dir={tmp_path / 'runs'}", "progress=false")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "device=cuda" in res.stderr and "device=cpu" in res.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("kwargs, words", [
    ({"model": {"dtype": "float64"}}, "model.dtype=float64"),
    ({"model": {"base_device": "gpu"}}, "model.base_device=gpu"),
    ({"model": {"logits_chunk_mb": 0}}, "model.logits_chunk_mb=0"),
    ({"model": {"logits_chunk_mb": float("nan")}}, "model.logits_chunk_mb=nan"),
    ({"optim": {"micro_batch_tokens": -1}}, "optim.micro_batch_tokens=-1"),
    ({"optim": {"loss_norm": "global"}}, "optim.loss_norm=global"),
    ({"device": "tpu"}, "device=tpu"),
])
def test_bad_model_and_device_settings_are_one_line_errors(kwargs, words):
    from entropyctl.config import ModelConfig, OptimConfig, TrainConfig
    from entropyctl.errors import BadInput

    build = {"model": ModelConfig, "optim": OptimConfig}
    with pytest.raises(BadInput) as e:
        key, value = next(iter(kwargs.items()))
        build[key](**value) if key in build else TrainConfig(**kwargs)
    assert str(e.value).startswith(words) and "give" in str(e.value) and "\n" not in str(e.value)


def _round0(runs_dir: Path, sweep: str, *overrides: str) -> dict:
    res = entropyctl("train", "experiment=smoke", "rounds=1", "threads=1", "progress=false", f"sweep={sweep}",
                     f"runs_dir={runs_dir}", *overrides)
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = [p for p in (runs_dir / sweep).iterdir() if p.is_dir()]
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])


def test_the_memory_settings_change_no_number_through_the_cli(smoke_runs_dir):
    # chunks of 13 positions (0.001 MiB of float32 logits, 19-token vocab), calls of 2 rows,
    # activation checkpointing: the same round as the plain path, to float rounding
    plain = _round0(smoke_runs_dir, "mem-plain")
    small = _round0(smoke_runs_dir, "mem-small", "model.logits_chunk_mb=0.001", "optim.micro_batch_tokens=64",
                    "model.gradient_checkpointing=true")
    for key in ("reward/mean", "entropy/tokmean", "entropy/seqmean", "kl/base_k3", "loss/policy", "grad/norm",
                "cov/mean"):
        assert small[key] == pytest.approx(plain[key], abs=1e-5, rel=1e-5), key
    assert small["entropy/tokmean"] > 0


def test_bfloat16_with_an_anchor_trains_and_still_logs_the_kl(smoke_runs_dir):
    row = _round0(smoke_runs_dir, "mem-bf16", "model.dtype=bfloat16", "model.base_kl=false",
                  "intervention=kl_anchor", "optim.micro_batch_tokens=64")
    # kl_anchor loads the base all the same, so the KL metric comes for free
    assert "kl/base_k3" in row and "kl_anchor/kl" in row
    assert all(v == v for v in row.values() if isinstance(v, float))  # no NaN
