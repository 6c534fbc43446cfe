"""The `jsonl` task on hand-made files: rows, bad rows, the validation split, chat templates,
format classification with per-format accuracy, and planning tokens on free text."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from entropyctl.config import FormatConfig, TaskConfig
from entropyctl.errors import BadInput
from entropyctl.tasks import UNKNOWN, build, check
from entropyctl.train.metrics import format_accuracy
from tests.hf_fixtures import gsm8k_jsonl, gsm8k_rows, train_tokenizer

FORMATS = [FormatConfig("boxed", pattern=r"\\boxed\{"), FormatConfig("hash", pattern="####"),
           FormatConfig("answer_is", pattern="(?i)answer is")]


def cfg(path: Path | None, **kw) -> TaskConfig:
    base = dict(name="mine", kind="jsonl", path=path and str(path), verifier="gsm8k", val_size=4,
                formats=FORMATS)
    base.update(kw)
    return TaskConfig(**base)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_rows_split_into_train_and_a_fixed_validation_set(tmp_path):
    task = build(cfg(gsm8k_jsonl(tmp_path / "d.jsonl", 40)))
    assert len(task.val_problems) == 4 and len(task.train_problems) == 36
    assert not {p.row for p in task.val_problems} & {p.row for p in task.train_problems}
    again = build(cfg(tmp_path / "d.jsonl"))
    assert [p.row for p in again.val_problems] == [p.row for p in task.val_problems]
    drawn = task.sample_train(random.Random(0), 10)
    assert len(drawn) == 10 and all(p.answer.split("#### ")[1] for p in drawn)


def test_val_path_and_csv(tmp_path):
    import csv

    rows = gsm8k_rows(6)
    with open(tmp_path / "val.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["question", "answer"])
        w.writeheader()
        w.writerows(rows)
    task = build(cfg(gsm8k_jsonl(tmp_path / "d.jsonl", 10), val_path=str(tmp_path / "val.csv")))
    assert len(task.train_problems) == 10
    assert [p.text for p in task.val_problems] == [r["question"] for r in rows]


def test_a_byte_order_mark_is_no_part_of_a_prompt_file(tmp_path):
    import csv

    rows = gsm8k_rows(12)
    with open(tmp_path / "p.csv", "w", newline="", encoding="utf-8-sig") as f:  # as Excel saves a CSV
        w = csv.DictWriter(f, fieldnames=["question", "answer"])
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "p.jsonl").write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    for name in ("p.csv", "p.jsonl"):
        task = build(cfg(tmp_path / name))  # before: the first column was '\ufeffquestion', the first line not JSON
        got = sorted(p.text for p in task.train_problems + task.val_problems)
        assert got == sorted(r["question"] for r in rows), name


@pytest.mark.parametrize("encoding, says", [("utf-16", "is UTF-16 text (what Windows PowerShell's > writes); save it as UTF-8"),
                                             ("latin-1", "is not UTF-8 text; save it as UTF-8")])
def test_a_prompt_file_not_in_utf8_is_one_line(tmp_path, encoding, says):
    for name in ("p.jsonl", "p.csv"):  # before: a UnicodeDecodeError traceback
        rows = [{"question": f"Combien font {i} + 1 ? (réponse)", "answer": f"#### {i + 1}"} for i in range(12)]
        text = ("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) if name.endswith("jsonl") else
                "question,answer\n" + "".join(f"{r['question']},{r['answer']}\n" for r in rows))
        (tmp_path / name).write_bytes(text.encode(encoding))
        with pytest.raises(BadInput) as e:
            build(cfg(tmp_path / name))
        assert str(e.value) == f"task.path={str(tmp_path / name)!r} {says}"


def test_bad_rows_are_counted_and_over_the_limit_refused(tmp_path):
    good = gsm8k_rows(12)
    bad = ['{"question": "no answer"}', '{"question": "  ", "answer": "#### 3"}',
           '{"question": "q", "answer": "no number here"}', "this line is not json"]
    path = write_jsonl(tmp_path / "d.jsonl", [*good[:5], *bad, *good[5:]])
    task = build(cfg(path, max_bad_rows=4))
    assert len(task.bad) == 4 and len(task.train_problems) + len(task.val_problems) == 12
    assert "4 bad rows skipped" in task.describe() and "d.jsonl:6: no 'answer' field" in task.describe()
    with pytest.raises(BadInput) as e:
        build(cfg(path, max_bad_rows=3))
    msg = str(e.value)
    assert "4 bad rows of 16" in msg and "task.max_bad_rows=4" in msg and "\n" not in msg


@pytest.mark.parametrize("path,says", [("missing.jsonl", "is not a file"), ("d.txt", "has suffix '.txt'")])
def test_a_bad_path_is_one_line(tmp_path, path, says):
    (tmp_path / "d.txt").write_text("x\n")
    with pytest.raises(BadInput, match=says):
        check(cfg(tmp_path / path))


@pytest.mark.parametrize("kw,says", [
    (dict(verifier="bogus"), "task.verifier=bogus is unknown"),
    (dict(verifier="regex"), "needs task.answer_pattern"),
    (dict(answer_pattern="(unclosed"), "not a regular expression"),
    (dict(format_reward=1.5), "task.format_reward=1.5 is out of range"),
])
def test_task_config_refuses_bad_values(tmp_path, kw, says):
    with pytest.raises(BadInput, match=says):
        cfg(tmp_path / "d.jsonl", **kw)
    with pytest.raises(BadInput, match="task=jsonl needs the prompt file"):
        cfg(None)


def test_formats_first_match_wins_and_accuracy_is_per_format(tmp_path):
    task = build(cfg(gsm8k_jsonl(tmp_path / "d.jsonl", 10), format_reward=0.1))
    problem = task.train_problems[0]
    right = problem.answer.split("#### ")[1]
    completions = [
        (f"so \\boxed{{{right}}} #### {right}", "boxed", 1.0),   # boxed is declared first
        ("#### 99999", "hash", 0.1),                             # wrong, but a known format
        (f"#### {right}", "hash", 1.0),
        (f"The answer is {right}", "answer_is", 0.1),           # gsm8k reads only ####: wrong, known format
        ("I do not know", UNKNOWN, 0.0),
    ]
    formats = [task.classify(c, True) for c, _, _ in completions]
    rewards = torch.tensor([task.score(c, problem, True) for c, _, _ in completions])
    assert formats == [f for _, f, _ in completions]
    assert rewards.tolist() == pytest.approx([r for _, _, r in completions])
    acc = format_accuracy(formats, rewards, task.format_names)
    assert acc["format/acc/boxed"] == 1.0 and acc["format/acc/hash"] == 0.5
    assert acc["format/acc/answer_is"] == 0.0 and acc["format/acc/unknown"] == 0.0
    assert math.isnan(format_accuracy(["hash"], torch.tensor([1.0]), task.format_names)["format/acc/boxed"])


def test_chat_template_renders_prompts_once_bound(tmp_path):
    tok = train_tokenizer("qwen2")
    task = build(cfg(gsm8k_jsonl(tmp_path / "d.jsonl", 10), system_prompt="Answer after ####."))
    text = task.train_problems[0].text
    task.bind(tok)
    assert task.train_problems[0].prompt == (f"<|im_start|>system\nAnswer after ####.<|im_end|>\n"
                                             f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n")
    plain = build(cfg(tmp_path / "d.jsonl", chat_template=False))
    plain.bind(tok)
    assert plain.val_problems[0].prompt == plain.val_problems[0].text


def test_llama_template_leaves_beginning_of_sequence_to_the_sampler(tmp_path):
    tok = train_tokenizer("llama")
    task = build(cfg(gsm8k_jsonl(tmp_path / "d.jsonl", 10)))
    task.bind(tok)
    prompt = task.val_problems[0].prompt
    assert prompt.startswith("<|start_header_id|>user") and "<|begin_of_text|>" not in prompt


def test_chat_template_true_without_one_is_refused(tmp_path):
    tok = train_tokenizer("qwen2")
    tok.chat_template = None
    task = build(cfg(gsm8k_jsonl(tmp_path / "d.jsonl", 10), chat_template=True))
    with pytest.raises(BadInput, match="has no chat template"):
        task.bind(tok)


def test_plan_mask_marks_the_tokens_of_strategic_phrases(tmp_path):
    tok = train_tokenizer("qwen2")
    task = build(cfg(gsm8k_jsonl(tmp_path / "d.jsonl", 10), planning_phrases=["let me check", "wait"]))
    texts = ["Tom has 5. Let me check: 5 + 2 = 7. Wait, #### 7", "awaited 7 apples"]
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    T = max(map(len, rows)) + 1
    ids = torch.full((2, T), tok.pad_token_id)
    mask = torch.zeros(2, T)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    plan = task.plan_mask(ids, mask, tok)
    marked = tok.decode(ids[0][plan[0].bool()].tolist())
    assert marked.lower().replace(" ", "").startswith("letmecheck") and "wait" in marked.lower()
    assert "7" not in marked and "Tom" not in marked
    assert plan[1].sum() == 0  # `awaited` is not the word `wait`
    assert (plan <= mask).all()


@pytest.mark.parametrize("args,says", [
    (("task.path={W}/nope.jsonl",), "task.path='{W}/nope.jsonl' is not a file"),
    ((), "task=jsonl needs the prompt file"),
    (("task.path={W}/d.jsonl", "task.verifier=bogus"), "task.verifier=bogus is unknown; give one of"),
    (("task.path={W}/d.jsonl", "task.max_new_tokens=0"), "task.max_new_tokens=0 is out of range"),
    (("task.path={W}/bad.jsonl",), "1 bad rows of 41"),
    (("task.path={W}/d.jsonl", "task.prompt_key=problem"), "none of the 10 rows is usable (first: d.jsonl:1: no 'problem' field (the row has: question, answer))"),
    (("task.path={W}/d.jsonl", "task.val_size=4"), "task.kind=jsonl needs a model with a real tokenizer"),
])
def test_train_refuses_bad_task_input_before_any_run_dir(tmp_path, args, says):
    from typer.testing import CliRunner

    from entropyctl.cli.main import app

    gsm8k_jsonl(tmp_path / "d.jsonl", 10)
    write_jsonl(tmp_path / "bad.jsonl", [*gsm8k_rows(40), {"question": "q"}])
    w = str(tmp_path)
    out = CliRunner().invoke(app, ["train", "task=jsonl", *(a.replace("{W}", w) for a in args),
                                   f"runs_dir={w}/runs"])
    lines = out.output.strip().splitlines()
    assert out.exit_code == 2 and len(lines) == 1, out.output
    assert says.replace("{W}", w) in lines[0] and lines[0].startswith("error: ")
    assert not (tmp_path / "runs").exists()


def _with_long_rows(path: Path, n: int = 20, long_rows=(3, 11)) -> Path:
    rows = gsm8k_rows(n)
    for i in long_rows:  # 0-based: lines i + 1
        rows[i]["question"] = "How many apples? " * 60
    return write_jsonl(path, rows)


def test_prompt_lengths_are_the_samplers_and_long_ones_can_be_left_out(tmp_path):
    from entropyctl.models.loading import encode_prompts

    tok = train_tokenizer("qwen2")
    data = _with_long_rows(tmp_path / "d.jsonl")
    task = build(cfg(data, val_size=4))
    task.bind(tok)
    every = task.train_problems + task.val_problems
    # The lengths the sampler will see: its own encoding, one prompt at a time.
    assert task.prompt_tokens == sorted(int(encode_prompts(tok, [p.prompt])[1].sum()) for p in every)
    n, where = task.longest_prompt
    assert n == task.prompt_tokens[-1] > 200 and where in ("d.jsonl:4", "d.jsonl:12")
    assert "prompts" in task.describe() and "left out" not in task.describe()

    short = build(cfg(data, val_size=4, max_prompt_tokens=100))
    short.bind(tok)
    kept = short.train_problems + short.val_problems
    assert len(kept) == 18 and {p.row for p in kept}.isdisjoint({4, 12})
    assert short.prompt_tokens[-1] <= 100 and short.prompts_left_out == 2
    assert "2 over task.max_prompt_tokens=100 left out" in short.describe()

    with pytest.raises(BadInput, match="task.max_prompt_tokens=5 leaves no training prompts"):
        build(cfg(data, val_size=4, max_prompt_tokens=5)).bind(tok)


def test_a_prompt_the_model_cannot_hold_is_refused_before_any_run_dir(tmp_path):
    from typer.testing import CliRunner

    from entropyctl.cli.main import app
    from tests.hf_fixtures import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "qwen", "qwen2")  # 512 positions
    data = _with_long_rows(tmp_path / "d.jsonl", long_rows=(3,))
    base = ["train", "model=hf", f"model.path={ckpt}", "task=jsonl", f"task.path={data}", "task.val_size=4",
            f"runs_dir={tmp_path}/runs", "progress=false", "threads=1"]
    out = CliRunner().invoke(app, [*base, "task.max_new_tokens=400"])
    lines = out.output.strip().splitlines()
    assert out.exit_code == 2 and len(lines) == 1, out.output
    assert lines[0].startswith("error: the longest prompt (d.jsonl:4) is ")
    assert "passes the model's 512 positions" in lines[0] and "task.max_prompt_tokens=112" in lines[0]
    assert not (tmp_path / "runs").exists()
    out = CliRunner().invoke(app, [*base, "task.max_new_tokens=600"])
    assert out.exit_code == 2 and "task.max_new_tokens=600 alone fills the model's 512 positions" in out.output
    assert not (tmp_path / "runs").exists()


def test_a_template_without_a_system_role_is_one_line_naming_the_fix(tmp_path):
    """Gemma's template raises on a system message: with task.system_prompt set that was an
    'internal error' traceback line, exit 1."""
    tok = train_tokenizer("qwen2")
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}"
                         "<start_of_turn>{{ m['content'] }}<end_of_turn>{% endfor %}")
    data = gsm8k_jsonl(tmp_path / "d.jsonl", 10)
    with pytest.raises(BadInput, match=r"chat template refused the prompt of d\.jsonl:\d+ \(TemplateError: "
                                       r"System role not supported\); try task\.system_prompt=null"):
        build(cfg(data, system_prompt="Be brief.")).bind(tok)
    task = build(cfg(data))  # no system prompt: the same template renders
    task.bind(tok)
    assert task.val_problems[0].prompt.startswith("<start_of_turn>Tom has")


def test_a_curriculum_phase_whose_prompts_do_not_fit_is_refused_too(tmp_path):
    """Phase B's prompt file is only sampled from at the switch: its prompts are measured and
    checked when the run starts, like A's."""
    from typer.testing import CliRunner

    from entropyctl.cli.main import app
    from tests.hf_fixtures import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "qwen", "qwen2")  # 512 positions
    short = gsm8k_jsonl(tmp_path / "a.jsonl", 20)
    long = _with_long_rows(tmp_path / "b.jsonl", long_rows=(5,))
    out = CliRunner().invoke(app, [
        "train", "model=hf", f"model.path={ckpt}", "task=curriculum", "task.curriculum.kind=jsonl", "task.formats=[]",
        f"task.path={short}", f"+task.curriculum.b.path={long}", "task.val_size=4", "task.max_new_tokens=400",
        "rounds=4", "task.curriculum.switch_round=2", f"runs_dir={tmp_path}/runs", "progress=false", "threads=1"])
    lines = out.output.strip().splitlines()
    assert out.exit_code == 2 and len(lines) == 1, out.output
    assert lines[0].startswith("error: the longest prompt (b.jsonl:6) is ") and "task.max_prompt_tokens=112" in lines[0]
    assert not (tmp_path / "runs").exists()
