"""A researcher's checkpoint that cannot work is refused in one line, exit 2, before any run
directory: no tokenizer saved with it, a tokenizer from another checkpoint, no end token.
Each failed in the first round before (a reshape error, an IndexError), after the run dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from entropyctl.cli.main import app
from tests.hf_fixtures import gsm8k_jsonl, tiny_checkpoint


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    tiny_checkpoint(root / "qwen", "qwen2")
    gsm8k_jsonl(root / "d.jsonl", 20)
    return root


def train(world, tmp_path, ckpt) -> tuple[int, str]:
    out = CliRunner().invoke(app, ["train", "model=hf", f"model.path={ckpt}", "task=jsonl",
                                   f"task.path={world / 'd.jsonl'}", "task.val_size=4", "rounds=1",
                                   f"runs_dir={tmp_path}/runs", "progress=false", "threads=1"])
    assert not (tmp_path / "runs").exists(), out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1, out.output
    return out.exit_code, lines[0]


def test_a_checkpoint_without_its_tokenizer(world, tmp_path):
    ckpt = shutil.copytree(world / "qwen", tmp_path / "weights-only")
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (ckpt / f).unlink(missing_ok=True)
    code, line = train(world, tmp_path, ckpt)
    assert code == 2 and line.startswith(f"error: model.path '{ckpt}' has no tokenizer (none of tokenizer.json")
    assert "save_pretrained(DIR)" in line


def test_a_tokenizer_from_another_checkpoint(world, tmp_path):
    ckpt = shutil.copytree(world / "qwen", tmp_path / "small-vocab")
    # Weights with a 100-row embedding beside the 320-token tokenizer.
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config.from_pretrained(ckpt)
    config.vocab_size = 100
    Qwen2ForCausalLM(config).save_pretrained(ckpt)
    code, line = train(world, tmp_path, ckpt)
    assert code == 2 and "the tokenizer has 320 tokens but the model's embedding has 100 rows" in line


def test_no_end_token_anywhere(world, tmp_path):
    ckpt = shutil.copytree(world / "qwen", tmp_path / "no-eos")
    conf = json.loads((ckpt / "tokenizer_config.json").read_text())
    conf["eos_token"] = None
    (ckpt / "tokenizer_config.json").write_text(json.dumps(conf))
    gen = json.loads((ckpt / "generation_config.json").read_text())
    gen.pop("eos_token_id", None)
    (ckpt / "generation_config.json").write_text(json.dumps(gen))
    code, line = train(world, tmp_path, ckpt)
    assert code == 2 and "names an end-of-sequence token, so no completion could end" in line


def test_resume_refuses_inputs_that_changed_since_the_run_started(world, tmp_path):
    """A run records fingerprints of its checkpoint and prompt files; resuming after either
    changed would train the rest of the run on other inputs under the same config."""
    import hashlib

    data = shutil.copy(world / "d.jsonl", tmp_path / "d.jsonl")
    out = CliRunner().invoke(app, ["train", "model=hf", f"model.path={world / 'qwen'}", "task=jsonl",
                                   f"task.path={data}", "task.val_size=4", "rounds=1", "probe.every=0",
                                   "rollout.prompts_per_round=2", "rollout.group_size=2", "task.max_new_tokens=4",
                                   f"runs_dir={tmp_path}/runs", "progress=false", "threads=1", "sweep=s"])
    assert out.exit_code == 0, out.output
    (run,) = (tmp_path / "runs" / "s").glob("grpo__*")
    info = json.loads((run / "run.json").read_text())
    assert set(info["inputs"]) == {"model.path", "task.path"}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(info["inputs"]["model.path"])
    (run / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))

    def snapshot():
        return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.rglob("*") if p.is_file()}

    original = data.read_text()
    data.write_text(original.replace("apples", "pears"))
    before = snapshot()
    res = CliRunner().invoke(app, ["resume", str(run)])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert "task.path: d.jsonl has changed since the run started" in res.output and "restore the file" in res.output
    assert snapshot() == before  # refused before anything was touched

    data.write_text(original)  # restored: the run goes on
    res = CliRunner().invoke(app, ["resume", str(run)])
    assert res.exit_code == 0, res.output


def test_bfloat16_trains_over_float32_master_weights(world, tmp_path):
    """model.dtype=bfloat16 at an RL learning rate: AdamW's steps are below bfloat16's resolution
    for most weights, so a bfloat16 policy barely moved (2 % of weights in three steps). The
    policy keeps float32 weights and runs its passes in bfloat16: every weight moves, and the
    round's numbers are bfloat16's, not float32's."""
    from safetensors.torch import load_file

    def run(sweep: str, *extra: str) -> tuple[Path, dict]:
        out = CliRunner().invoke(app, ["train", "model=hf", f"model.path={world / 'qwen'}", "task=jsonl",
                                       f"task.path={world / 'd.jsonl'}", "task.val_size=4", "rounds=1",
                                       "probe.every=0", "rollout.prompts_per_round=4", "rollout.group_size=2",
                                       "task.max_new_tokens=6", "optim.lr=1e-6", "checkpoint_every=1",
                                       "intervention=entropy_bonus",  # a gradient with no reward
                                       f"runs_dir={tmp_path}/runs", "progress=false", "threads=1",
                                       f"sweep={sweep}", *extra])
        assert out.exit_code == 0, out.output
        (d,) = (tmp_path / "runs" / sweep).glob("entropy_bonus__*")
        return d, json.loads((d / "metrics.jsonl").read_text().splitlines()[0])

    start = load_file(world / "qwen" / "model.safetensors")
    low, row_low = run("bf16", "model.dtype=bfloat16")
    _, row_f32 = run("f32")
    (ckpt,) = (low / "checkpoints").glob("round-*")
    trained = load_file(ckpt / "model.safetensors")
    keys = sorted(set(start) & set(trained))
    assert len(keys) >= len(start) - 1  # a tied head may be stored once
    moved = sum(int((trained[k] != start[k].float()).sum()) for k in keys)
    total = sum(start[k].numel() for k in keys)
    assert {t.dtype for t in trained.values()} == {torch.float32}
    assert moved / total > 0.9, moved / total
    info = json.loads((low / "run.json").read_text())
    assert info["numerics"]["dtype"] == "bfloat16"
    # bfloat16 passes: the gradient of the same round differs from float32's beyond float32 rounding
    assert row_low["grad/norm"] != pytest.approx(row_f32["grad/norm"], rel=1e-6)


def test_one_precision_context_sees_every_optimiser_step(world):
    """compute_precision spans a whole round (rollout, 8 minibatch steps, eval): a forward pass
    after a step must see the new weights, not bfloat16 copies cached at the round's start
    (with autocast's cast cache, the lab's reward fell from 0.30 to 0.05 in one round)."""
    from entropyctl.models.loading import load_policy
    from entropyctl.models.precision import compute_precision

    model, _ = load_policy(world / "qwen", dtype="float32", device="cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(5, 300, (2, 12), generator=torch.Generator().manual_seed(0))
    with compute_precision("bfloat16", torch.device("cpu")):
        first = model(input_ids=ids, labels=ids)
        assert first.logits.dtype == torch.bfloat16  # the pass runs in bfloat16
        first.loss.backward()
        opt.step()
        with torch.no_grad():
            after = model(input_ids=ids).logits
    with torch.no_grad(), compute_precision("bfloat16", torch.device("cpu")):
        fresh = model(input_ids=ids).logits  # a new context: casts of the stepped weights
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert not torch.equal(after, first.logits.detach()) and torch.equal(after, fresh)


def _save(model, tokenizer_from: Path, out: Path) -> Path:
    model.save_pretrained(out)
    for f in tokenizer_from.iterdir():
        if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            shutil.copy(f, out / f.name)
    return out


def test_a_bidirectional_model_is_refused(world, tmp_path):
    """BERT loads through AutoModelForCausalLM (BertLMHeadModel) and trained before: every token's
    log-prob was scored by a model that saw the tokens after it."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=320, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    ckpt = _save(BertForMaskedLM(config), world / "qwen", tmp_path / "bert")
    code, line = train(world, tmp_path, ckpt)
    assert code == 2 and "(bert) is not causal: its prediction at a position changes with the tokens after it" in line


def test_an_encoder_decoder_is_refused_before_its_weights_load(world, tmp_path):
    from transformers import T5Config

    ckpt = tmp_path / "t5"
    ckpt.mkdir()
    T5Config(vocab_size=320, d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16).save_pretrained(ckpt)
    code, line = train(world, tmp_path, ckpt)  # no weights saved: refused from config.json alone
    assert code == 2 and "is a t5 checkpoint, an encoder-decoder: entropyctl trains decoder-only models" in line


def test_an_architecture_transformers_does_not_know(world, tmp_path):
    ckpt = shutil.copytree(world / "qwen", tmp_path / "unknown")
    (ckpt / "config.json").write_text(json.dumps({"model_type": "nopeformer"}))
    code, line = train(world, tmp_path, ckpt)
    assert code == 2 and "cannot read its config.json (model_type 'nopeformer': ValueError)" in line
    (ckpt / "config.json").write_text("{bad")
    code, line = train(world, tmp_path, ckpt)
    assert code == 2 and "config.json is not a JSON object" in line


def test_causal_checkpoints_pass_the_check(world, tmp_path):
    """The check must not refuse what it protects: GPT-2 and Qwen2 (and Llama: the lab) load."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from entropyctl.models.loading import load_policy

    gpt2 = _save(GPT2LMHeadModel(GPT2Config(vocab_size=320, n_embd=32, n_layer=1, n_head=2, n_positions=512)),
                 world / "qwen", tmp_path / "gpt2")
    for ckpt in (gpt2, world / "qwen"):
        model, _ = load_policy(ckpt)
        assert model.config.model_type in ("gpt2", "qwen2")


def test_a_folder_of_checkpoints_or_a_file_of_one_is_refused_pointing_at_the_checkpoint(tmp_path):
    from entropyctl.errors import BadInput
    from entropyctl.models.loading import check_is_checkpoint

    out = tmp_path / "grpo-out"
    for step in (250, 1000, 500):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        (out / f"checkpoint-{step}" / "config.json").write_text("{}")
    (out / "logs").mkdir()
    with pytest.raises(BadInput, match=rf"it holds checkpoints: give one, e.g. model.path={out}/checkpoint-1000; "
                                       "found checkpoint-250, checkpoint-500, checkpoint-1000$"):
        check_is_checkpoint(out)
    weights = out / "checkpoint-500" / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(BadInput, match=rf"it is a file of a checkpoint: give the folder, model.path={out}/checkpoint-500$"):
        check_is_checkpoint(weights)
    with pytest.raises(BadInput, match="give a directory saved with save_pretrained"):
        check_is_checkpoint(out / "logs")
    check_is_checkpoint(out / "checkpoint-250")  # a checkpoint passes
