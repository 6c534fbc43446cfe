"""Fingerprints of a run's input files (runstore/inputs.py): what they notice, what they ignore."""

from __future__ import annotations

import shutil

from entropyctl.config import ModelConfig, TrainConfig
from entropyctl.runstore.inputs import EDGE, WHOLE, changed_inputs, file_stamp, input_stamps, stamps


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


def test_a_same_length_edit_in_the_middle_of_a_prompt_file_is_a_change(tmp_path):
    prompts = tmp_path / "train.jsonl"
    lines = [f'{{"prompt": "{i} + {i} =", "answer": "{2 * i}"}}\n' for i in range(200_000)]
    prompts.write_text("".join(lines))
    assert prompts.stat().st_size > 4 * EDGE  # the edit below is far from either end's MiB
    first, first_edges = stamps(str(prompts)), file_stamp(prompts, edges_only=True)
    lines[100_000] = lines[100_000].replace('"200000"', '"200001"')  # a fixed answer, same length
    prompts.write_text("".join(lines))
    assert file_stamp(prompts, edges_only=True) == first_edges  # what the edge stamp alone missed
    assert changed_inputs({"task.path": first}, {"task.path": stamps(str(prompts))}) == [
        "task.path: train.jsonl has changed"]


def test_a_run_recorded_with_edge_stamps_still_resumes_on_its_unchanged_files(tmp_path):
    prompts = tmp_path / "train.jsonl"
    prompts.write_bytes(b"a" * (3 * EDGE))
    old = {"task.path": {"train.jsonl": file_stamp(prompts, edges_only=True)}}
    now = {"task.path": stamps(str(prompts))}
    assert now["task.path"]["train.jsonl"] != old["task.path"]["train.jsonl"]  # the forms differ
    assert changed_inputs(old, now, {"task.path": str(prompts)}) == []
    prompts.write_bytes(b"b" + b"a" * (3 * EDGE - 1))
    assert changed_inputs(old, {"task.path": stamps(str(prompts))}, {"task.path": str(prompts)}) == [
        "task.path: train.jsonl has changed"]


def test_a_file_above_the_whole_file_limit_is_stamped_by_its_ends(tmp_path):
    shard = tmp_path / "model.safetensors"
    with shard.open("wb") as f:
        f.truncate(WHOLE + 1)  # sparse: no 64 MiB written
    assert stamps(str(shard))["model.safetensors"] == file_stamp(shard, edges_only=True)
