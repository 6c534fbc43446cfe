"""entropyctl.analysis.logimport: each importer on small files written here in that format."""

from __future__ import annotations

import json
import math

import pytest

from entropyctl.analysis.logimport import (ImportOptions, LogImportError, detect_format, load_series, pair,
                                  to_float)

NAN = float("nan")


def load(*paths, **kw):
    return {s.name: s for s in load_series(list(paths), ImportOptions(**kw))}


def pts(s):
    return list(zip(s.steps.tolist(), s.H.tolist(), s.R.tolist()))


def test_values_numbers_strings_and_missing():
    assert to_float("0.4613") == 0.4613 and to_float("np.float64(0.69)") == 0.69 and to_float(3) == 3.0
    for missing in (None, NAN, "nan", "NaN", float("inf"), "", "n/a", True, [1]):
        assert math.isnan(to_float(missing)), missing


def test_pairing_next_step_with_fallbacks_never_interpolates():
    ent = {1: 0.7, 2: 0.6, 3: 0.5, 5: 0.4}
    steps, H, R, counts = pair(ent, {0: 0.1, 3: 0.2, 4: 0.25, 5: 0.3}, "next")
    assert steps.tolist() == [0, 3, 4, 5] and H.tolist() == [0.7, 0.4, 0.4, 0.4]
    assert counts == {"next": 3, "same": 1, "earlier": 0, "unpaired": 0}
    _, H, _, counts = pair({1: 0.7, 2: 0.6}, {3: 0.2}, "next")
    assert H.tolist() == [0.6] and counts["earlier"] == 1
    steps, _, _, counts = pair(ent, {4: 0.2, 5: 0.3}, "same")
    assert steps.tolist() == [5] and counts["unpaired"] == 1


# ----------------------------------------------------------------------------- TRL

TRL_STATE = {
    "epoch": 0.03, "global_step": 30, "logging_steps": 10, "max_steps": 30,
    "log_history": [
        {"entropy": 0.612, "epoch": 0.01, "loss": 0.013, "reward": 0.375, "step": 10,
         "rewards/accuracy_reward/mean": 0.375},
        {"epoch": 0.01, "eval_entropy": 0.598, "eval_loss": 0.0, "eval_reward": 0.41, "step": 10},
        {"entropy": 0.544, "epoch": 0.02, "loss": 0.009, "reward": 0.5, "step": 20},
        {"entropy": 0.9, "epoch": 0.02, "reward": NAN, "step": 30},  # NaN written by json as NaN
        {"entropy": 0.5, "epoch": 0.03, "reward": 0.55, "step": 30},  # resumed run logs 30 again
        {"epoch": 0.03, "step": 30, "total_flos": 0.0, "train_loss": 0.011, "train_runtime": 812.4},
    ],
}


def test_trl_trainer_state_train_and_val_series(tmp_path):
    f = tmp_path / "trainer_state.json"
    f.write_text(json.dumps(TRL_STATE, indent=2, sort_keys=True))
    assert detect_format(f) == "trl"
    got = load(f)
    train, val = got["trainer_state train"], got["trainer_state val"]
    assert pts(train) == [(10, 0.612, 0.375), (20, 0.544, 0.5), (30, 0.5, 0.55)]
    assert train.perf_key == "reward" and train.entropy_key == "entropy" and train.pairing == "same step"
    assert any("duplicate" in w for w in train.warnings) and any("C5" in w for w in train.warnings)
    assert pts(val) == [(10, 0.544, 0.41)]  # eval at step 10 pairs with the entropy logged at 20
    assert val.perf_key == "eval_reward" and "next" in val.pairing


def test_trl_output_dir_takes_the_latest_checkpoint(tmp_path):
    for n, hist in ((10, TRL_STATE["log_history"][:2]), (30, TRL_STATE["log_history"])):
        (tmp_path / f"checkpoint-{n}").mkdir()
        (tmp_path / f"checkpoint-{n}" / "trainer_state.json").write_text(
            json.dumps({"global_step": n, "log_history": hist}))
    assert detect_format(tmp_path) == "trl"
    train = load(tmp_path)[f"{tmp_path.name} train"]
    assert train.steps.tolist() == [10, 20, 30]  # from checkpoint-30, not checkpoint-10


def test_trl_without_entropy_explains_the_version(tmp_path):
    f = tmp_path / "trainer_state.json"
    f.write_text(json.dumps({"global_step": 2, "log_history": [{"reward": 0.1, "step": 1}, {"reward": 0.2, "step": 2}]}))
    (s,) = load(f).values()
    assert "TRL < 0.20" in s.error and "--entropy" in s.error


def test_trl_truncated_file_is_one_line_error(tmp_path):
    f = tmp_path / "trainer_state.json"
    f.write_text(json.dumps(TRL_STATE, indent=2)[:300])
    with pytest.raises(LogImportError, match="truncated or invalid JSON") as e:
        load(f)
    assert "\n" not in str(e.value)


def test_trl_console_dicts(tmp_path):
    f = tmp_path / "train.log"
    f.write_text(
        "  5%|▌         | 10/200 [00:31<09:50]\n"
        "{'loss': 0.013, 'reward': 0.375, 'entropy': 0.612, 'epoch': 0.01}\n"
        "{'eval_loss': 0.0, 'eval_reward': 0.41, 'epoch': 0.01}\n"
        "garbage {'loss': 0.01, 'reward': 0.4, 'entropy': nan, 'epoch': 0.02}\n"
        "{'loss': '0.009', 'reward': '0.5', 'entropy': '0.544', 'epoch': '0.02'}\n"
        "{'loss': 0.008, 'reward': np.float64(0.6), 'entropy': 0.5, 'epoch': 0.03}\n"
        "{'broken': , }\n"
        "{'train_runtime': 812.4, 'train_loss': 0.011, 'epoch': 0.03}\n")
    assert detect_format(f) == "trl-console"
    by_index = load(f)["train train"]  # no step numbers: the row index is the step, with a note
    assert [p[0] for p in pts(by_index)] == [1, 3, 4]
    assert any("step = row index" in w for w in by_index.warnings)
    got = load(f, logging_steps=10)
    train = got["train train"]
    # the nan entropy at step 20 leaves reward 0.4 unpaired; steps come from the print index
    assert pts(train) == [(10, 0.612, 0.375), (30, 0.544, 0.5), (40, 0.5, 0.6)]
    assert any("1 reward step(s) had no entropy" in w for w in train.warnings)
    assert pts(got["train val"]) == [(10, 0.544, 0.41)]  # step 20's entropy is nan: next finite is 30
    assert any("malformed" in w for w in train.warnings)


# ----------------------------------------------------------------------------- verl


def test_verl_jsonl_with_malformed_null_restart_and_torn_lines(tmp_path):
    f = tmp_path / "exp.jsonl"
    lines = [
        {"step": 0, "data": {"val-core/openai/gsm8k/acc/mean@1": 0.21}},
        {"step": 1, "data": {"actor/entropy": 0.71, "critic/score/mean": 0.19, "training/global_step": 1}},
        {"step": 2, "data": {"actor/entropy": 0.69, "critic/score/mean": None,
                             "val-core/openai/gsm8k/acc/mean@1": 0.27}},
        {"step": 3, "data": {"actor/entropy": 0.5, "critic/score/mean": 0.9}},
        {"step": 3, "data": {"actor/entropy": 0.66, "critic/score/mean": 0.3}},  # resumed
        {"step": 4, "data": {"actor/entropy": 0.6, "critic/score/mean": 0.35,
                             "val-core/openai/gsm8k/acc/mean@1": 0.33}},
    ]
    text = "\n".join(json.dumps(x) for x in lines[:3]) + "\n{not json\n" + \
        "\n".join(json.dumps(x) for x in lines[3:]) + '\n{"step": 5, "data": {"actor/ent'
    f.write_text(text)
    assert detect_format(f) == "verl"
    got = load(f)
    train, val = got["exp train"], got["exp val"]
    assert train.perf_key == "critic/score/mean" and train.entropy_key == "actor/entropy"
    steps = train.steps.tolist()
    assert steps == [1, 2, 3, 4] and math.isnan(train.R[1]) and train.H[2] == 0.66 and train.R[2] == 0.3
    assert any(w.startswith("C1") for w in train.warnings)
    assert any("malformed" in w for w in train.warnings) and any("truncated last line" in w for w in train.warnings)
    assert any("duplicate" in w for w in train.warnings)
    # val at 0 -> entropy of step 1; at 2 -> step 3 (the resumed value); at 4 -> no step 5: same step
    assert pts(val) == [(0, 0.71, 0.21), (2, 0.66, 0.27), (4, 0.6, 0.33)]
    assert "fallback: 1 same" in val.pairing


def test_verl_several_val_sources_need_a_choice_or_a_glob(tmp_path):
    f = tmp_path / "exp.jsonl"
    rows = [{"step": s, "data": {"actor/entropy": 1 - s / 10, "val-core/gsm8k/acc/mean@1": s / 10,
                                 "val-core/math/acc/mean@1": s / 20}} for s in range(1, 6)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    both = r"val-core/gsm8k/acc/mean@1, val-core/math/acc/mean@1"
    with pytest.raises(LogImportError, match=both + r".*--perf.*val-core/\*/acc/mean@1"):
        load(f)
    (s,) = load(f, perf_key="val-core/*/acc/mean@1").values()
    assert s.R.tolist() == pytest.approx([0.075, 0.15, 0.225, 0.3, 0.375])  # mean of both sources
    assert s.H.tolist() == pytest.approx([0.8, 0.7, 0.6, 0.5, 0.5])  # next step; the last: same step
    (s,) = load(f, perf_key="val-core/math/acc/mean@1", pairing="same").values()
    assert s.pairing == "same step" and s.R.tolist() == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25])


def test_verl_console_lines(tmp_path):
    f = tmp_path / "verl.out"
    f.write_text(
        "(main_task pid=1) INFO starting\n"
        "(main_task pid=1) step:1 - actor/entropy:0.71 - actor/pg_loss:-0.01 - critic/score/mean:0.19\n"
        "step:2 - actor/entropy:np.float64(0.69) - critic/score/mean:np.float64(0.23) - broken\n"
        "step:3 - actor/entropy:nan - critic/score/mean:0.3\n"
        "step:4 - actor/entropy:0.6 - critic/score/mean:0.35 - val-core/a/acc/mean@1:0.4\n")
    assert detect_format(f) == "verl-console"
    got = load(f)
    assert pts(got["verl train"]) == [(1, 0.71, 0.19), (2, 0.69, 0.23), (4, 0.6, 0.35)]
    assert pts(got["verl val"]) == [(4, 0.6, 0.4)]


# ----------------------------------------------------------------------------- W&B, generic


def test_wandb_csv_panels_join_on_step_per_run(tmp_path):
    ent = tmp_path / "entropy.csv"
    ent.write_text(
        '"Step","grpo-seed0 - actor/entropy","grpo-seed0 - actor/entropy__MIN","grpo-seed0 - actor/entropy__MAX",'
        '"grpo-seed1 - actor/entropy","grpo-seed1 - actor/entropy__MIN","grpo-seed1 - actor/entropy__MAX"\n'
        "1,0.71,0.71,0.71,0.74,0.74,0.74\n2,0.69,0.69,0.69,,,\n3,0.6,0.6,0.6,0.5,0.5,0.5\n")
    rew = tmp_path / "score.csv"
    rew.write_text('"Step","grpo-seed0 - critic/score/mean","grpo-seed1 - critic/score/mean"\n'
                   "1,0.19,0.2\n2,0.23,0.25\n3,0.3,0.31\n")
    assert detect_format(ent) == "wandb-csv"
    got = load(ent, rew)
    assert pts(got["grpo-seed0 train"]) == [(1, 0.71, 0.19), (2, 0.69, 0.23), (3, 0.6, 0.3)]
    assert pts(got["grpo-seed1 train"]) == [(1, 0.74, 0.2), (3, 0.5, 0.31)]
    assert any("down-sampled" in w for w in got["grpo-seed1 train"].warnings)


def test_generic_csv_with_split_column(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("step,entropy,reward,split\n1,0.92,0.04,train\n2,0.88,0.07,train\n2,,0.10,val\n3,0.8,,train\n")
    assert detect_format(f) == "csv"
    got = load(f)
    train, val = got["log train"], got["log val"]
    assert pts(train)[:2] == [(1, 0.92, 0.04), (2, 0.88, 0.07)] and math.isnan(train.R[2])
    assert pts(val) == [(2, 0.8, 0.10)]  # val at 2 -> entropy of step 3
    got = load(f, where=[("split", "train")])
    assert list(got) == ["log train"]


def test_generic_jsonl_typed_and_nested_records(tmp_path):
    f = tmp_path / "run.jsonl"
    rows = [{"step": 1, "split": "train", "entropy": 0.92}, {"step": 1, "split": "train", "reward": 0.04},
            {"step": 2, "split": "train", "actor": {"x": 1}, "entropy": 0.85}, {"step": 2, "split": "train", "reward": None},
            {"step": 2, "split": "val", "reward": 0.10}, {"step": 3, "split": "train", "entropy": 0.8, "reward": 0.2}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert detect_format(f) == "jsonl"
    got = load(f)
    train = got["run train"]
    assert train.steps.tolist() == [1, 2, 3] and math.isnan(train.R[1]) and train.H.tolist() == [0.92, 0.85, 0.8]
    assert pts(got["run val"]) == [(2, 0.8, 0.10)]
    nested = tmp_path / "easyr1.jsonl"
    nested.write_text("".join(json.dumps({"step": s, "actor": {"entropy_loss": 1 - s / 10},
                                          "critic": {"score": {"mean": s / 10}}}) + "\n" for s in (1, 2, 3)))
    (s,) = load(nested, perf_key="critic/score/mean").values()
    assert s.entropy_key == "actor/entropy_loss" and any(w.startswith("C2") for w in s.warnings)


def test_equal_rank_keys_and_step_columns_stop_with_one_line(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text(json.dumps({"step": 1, "entropy": 0.5, "rewards/acc/mean": 0.1, "rewards/fmt/mean": 0.9}) + "\n")
    with pytest.raises(LogImportError, match=r"rewards/acc/mean, rewards/fmt/mean.*--perf KEY"):
        load(f)
    g = tmp_path / "b.csv"
    g.write_text("opt_step,env_step,entropy,reward\n1,2,0.5,0.1\n")
    with pytest.raises(LogImportError, match="several step columns.*--step"):
        load(g)
    (s,) = load(g, step_key="env_step").values()
    assert s.steps.tolist() == [2]
    with pytest.raises(LogImportError, match="sequence sum"):
        load(f, entropy_key="objective/entropy", perf_key="rewards/acc/mean")


def test_bad_files_give_one_line_errors_and_are_left_untouched(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    junk = tmp_path / "notes.txt"
    junk.write_text("hello world\nnothing to see\n")
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x00\x01\x02abc")
    utf16 = tmp_path / "log.csv"
    utf16.write_text("step,entropy,reward\n0,0.9,0.1\n", encoding="utf-16")
    for path, msg in ((empty, "empty"), (junk, "not a recognised log"), (binary, "binary"),
                      (utf16, "UTF-16 text .* save it as UTF-8"),
                      (tmp_path / "missing.csv", "no such file"), (tmp_path, "no run.json")):
        before = path.read_bytes() if path.is_file() else None
        with pytest.raises(LogImportError, match=msg) as e:
            load(path)
        assert "\n" not in str(e.value) and str(path) in str(e.value)
        assert (path.read_bytes() if path.is_file() else None) == before
    with pytest.raises(LogImportError, match="--format"):
        load(junk, fmt="nope")


# ----------------------------------------------------------------------------- our runs


def make_run(root, name, rows, info=None, config="optim:\n  lr: 1.0e-06\n"):
    d = root / "sweep" / name
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"id": name, "sweep": "sweep", **(info or {})}))
    (d / "config.yaml").write_text(config)
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_entropyctl_runs_default_keys_next_step_pairing_and_meta(tmp_path):
    rows = [{"round": r, "entropy/seqmean": 1 - r / 10, **({"eval/acc": r / 20} if r % 2 == 0 else {})}
            for r in range(6)]
    rows.append({"round": 5, "entropy/seqmean": 0.45, "eval/acc": None})  # resumed, NaN as null
    d = make_run(tmp_path, "grpo__s0", rows, {"intervention": "grpo", "seed": 0})
    bad = make_run(tmp_path, "broken", [{"round": 0}])
    (bad / "metrics.jsonl").write_text('{"round": 0}\n{oops\n{"round": 1}\n')
    got = load(tmp_path)
    s = got["grpo__s0"]
    assert s.format == "run" and s.run_dir == d and s.entropy_key == "entropy/seqmean" and s.perf_key == "eval/acc"
    # eval at round r is after round r's update: H of round r+1; round 5's eval is null
    assert s.steps.tolist() == [0, 2, 4, 5] and s.H.tolist()[:3] == [0.9, 0.7, 0.45]  # round 5: last kept
    assert math.isnan(s.R[3]) and s.H[3] == 0.45
    assert s.meta["intervention"] == "grpo" and s.meta["optim.lr"] == 1e-6
    assert "corrupted metrics line" in got["broken"].error
    (s,) = load(d / "metrics.jsonl", perf_key="eval/acc", pairing="same").values()
    assert s.pairing == "same step" and s.H.tolist()[:2] == [1.0, 0.8]


def test_runs_without_the_perf_key_say_which_flag(tmp_path):
    make_run(tmp_path, "r", [{"round": r, "entropy/seqmean": 1.0, "reward/mean": 0.1} for r in range(3)])
    (s,) = load(tmp_path).values()
    assert "no eval/acc values" in s.error and "--perf" in s.error and "reward/mean" in s.error


@pytest.mark.parametrize("name, text", [
    ("log.jsonl", "".join(json.dumps({"step": s, "entropy": 1 - s / 20, "reward": s / 40}) + "\n" for s in range(6))),
    ("log.csv", "step,entropy,reward\n" + "".join(f"{s},{1 - s / 20},{s / 40}\n" for s in range(6))),
    ("exp.jsonl", "".join(json.dumps({"step": s, "data": {"actor/entropy": 1 - s / 20, "critic/score/mean": s / 40}})
                          + "\n" for s in range(6))),
    ("trainer_state.json", json.dumps({"log_history": [{"step": s, "entropy": 1 - s / 20, "reward": s / 40}
                                                        for s in range(6)]})),
])
def test_a_byte_order_mark_is_no_part_of_the_log(tmp_path, name, text):
    # Windows tools (Excel, Notepad, PowerShell) start UTF-8 files with one; before, it made a JSONL
    # (ours or verl's) look like a CSV with no step column, and TRL's state file unreadable.
    plain, marked = tmp_path / "plain", tmp_path / "bom"
    for d, prefix in ((plain, b""), (marked, b"\xef\xbb\xbf")):
        d.mkdir()
        (d / name).write_bytes(prefix + text.encode())
    assert detect_format(marked / name) == detect_format(plain / name)
    (want,), (got,) = load(plain / name).values(), load(marked / name).values()
    assert pts(got) == pts(want) and len(pts(got)) == 6 and got.warnings == want.warnings
