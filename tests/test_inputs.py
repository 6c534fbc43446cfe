"""Fingerprints of a run's input files (runstore/inputs.py): what they notice, what they ignore."""

from __future__ import annotations

import shutil

from entropyctl.config import ModelConfig, TrainConfig
from entropyctl.runstore.inputs import EDGE, changed_inputs, input_stamps, stamps


def test_a_copy_keeps_the_fingerprint_and_an_edit_at_either_end_changes_it(tmp_path):
    big = tmp_path / "model.safetensors"
    body = bytearray(b"x" * (3 * EDGE))
    big.write_bytes(body)
    first = stamps(str(big))
    copy = tmp_path / "copy" / "model.safetensors"
    copy.parent.mkdir()
    shutil.copy(big, copy)  # a new modification time, the same bytes
    assert stamps(str(copy)) == first
    body[-1] = ord("y")  # the last tensor's bytes
    big.write_bytes(body)
    assert stamps(str(big)) != first
    body[-1], body[0] = ord("x"), ord("z")  # the header
    big.write_bytes(body)
    assert stamps(str(big)) != first


def test_a_checkpoint_folder_counts_what_transformers_reads(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in ("config.json", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
                 "tokenizer.json", "tokenizer_config.json", "README.md", "eval_results.json"):
        (ckpt / name).write_text(name)
    cfg = TrainConfig(model=ModelConfig(name="hf", kind="hf", path=str(ckpt)))
    got = input_stamps(cfg)
    assert sorted(got["model.path"]) == ["config.json", "model-00001-of-00002.safetensors",
                                         "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"]
    (ckpt / "README.md").write_text("notes written later")  # beside the checkpoint: not an input
    assert changed_inputs(got, input_stamps(cfg)) == []
    (ckpt / "tokenizer.json").write_text("another tokenizer")
    (ckpt / "config.json").unlink()
    assert changed_inputs(got, input_stamps(cfg)) == ["model.path: config.json is gone",
                                                                         "model.path: tokenizer.json has changed"]


def test_the_lab_has_no_input_files():
    assert input_stamps(TrainConfig()) == {}
