"""Prompt files as verl, TRL and `datasets` write them (tasks/rows.py): chat-message prompts,
dotted keys into nested fields, JSON arrays, `.json` JSON Lines; and the one-line refusals
when such rows cannot be rendered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from entropyctl.config import TaskConfig
from entropyctl.errors import BadInput
from entropyctl.tasks import build
from tests.hf_fixtures import gsm8k_rows, train_tokenizer

SYSTEM = "Think step by step and end with #### and the number."


def verl_rows(n: int, system: bool = True) -> list[dict]:
    """Rows laid out as verl's examples/data_preprocess/gsm8k.py writes them."""
    out = []
    for i, r in enumerate(gsm8k_rows(n)):
        msgs = ([{"role": "system", "content": SYSTEM}] if system else []) + [{"role": "user", "content": r["question"]}]
        out.append({"data_source": "openai/gsm8k", "prompt": msgs, "ability": "math",
                    "reward_model": {"style": "rule", "ground_truth": r["answer"].split("#### ")[1]},
                    "extra_info": {"index": i, "answer": r["answer"]}})
    return out


def verl_cfg(path: Path, **kw) -> TaskConfig:
    base = dict(name="verl", kind="jsonl", path=str(path), prompt_key="prompt",
                answer_key="reward_model.ground_truth", verifier="number", val_size=2, formats=[])
    base.update(kw)
    return TaskConfig(**base)


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_verl_rows_render_their_own_conversation_through_the_chat_template(tmp_path):
    rows = verl_rows(8)
    task = build(verl_cfg(jsonl(tmp_path / "train.jsonl", rows)))
    tok = train_tokenizer("qwen2")
    task.bind(tok)
    by_row = {p.row: p for p in task.train_problems + task.val_problems}
    assert len(by_row) == 8
    for i, r in enumerate(rows, 1):
        p = by_row[i]
        assert p.answer == r["reward_model"]["ground_truth"]
        assert p.prompt == tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        assert SYSTEM in p.prompt and r["prompt"][1]["content"] in p.prompt
        assert "'role'" not in p.prompt  # not the Python text of the list, which a str() of it gave


def test_a_parquet_file_with_nested_fields_reads_as_its_jsonl(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = verl_rows(6)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    tok = train_tokenizer("qwen2")
    a = build(verl_cfg(tmp_path / "train.parquet"))
    b = build(verl_cfg(jsonl(tmp_path / "train.jsonl", rows)))
    a.bind(tok), b.bind(tok)
    assert [(p.prompt, p.answer, p.row) for p in a.train_problems] == [(p.prompt, p.answer, p.row) for p in b.train_problems]


def test_task_system_prompt_goes_first_when_the_rows_have_none_and_is_refused_when_they_do(tmp_path):
    tok = train_tokenizer("qwen2")
    task = build(verl_cfg(jsonl(tmp_path / "plain.jsonl", verl_rows(5, system=False)), system_prompt="Be brief."))
    task.bind(tok)
    assert all(p.prompt.index("Be brief.") < p.prompt.index(p.text) for p in task.train_problems)
    own = build(verl_cfg(jsonl(tmp_path / "own.jsonl", verl_rows(5)), system_prompt="Be brief."))
    with pytest.raises(BadInput, match=r"task.system_prompt is set but the prompt of own.jsonl:\d has its own system message"):
        own.bind(tok)


def test_chat_messages_without_a_chat_template_are_refused_not_flattened(tmp_path):
    tok = train_tokenizer("qwen2")
    task = build(verl_cfg(jsonl(tmp_path / "t.jsonl", verl_rows(5)), chat_template=False))
    with pytest.raises(BadInput, match=r"t.jsonl:\d+: the prompt is chat messages, which only a chat template can "
                                       "render, and task.chat_template=false"):
        task.bind(tok)
    tok.chat_template = None  # a base model's tokenizer
    task = build(verl_cfg(tmp_path / "t.jsonl"))
    with pytest.raises(BadInput, match="the model's tokenizer has no chat template"):
        task.bind(tok)


def test_rows_that_are_lists_but_not_conversations_are_bad_rows_that_say_why(tmp_path):
    good = verl_rows(6)
    odd = [dict(good[0], prompt=["What is 2 + 2?"]),
           dict(good[0], prompt=[{"role": "narrator", "content": "Once"}]),
           dict(good[0], prompt=[{"role": "system", "content": SYSTEM}]),
           dict(good[0], prompt=[]),
           dict(good[0], reward_model={"style": "rule"})]
    task = build(verl_cfg(jsonl(tmp_path / "t.jsonl", good + odd), max_bad_rows=5))
    assert task.bad == [
        "t.jsonl:7: 'prompt' is a list but not chat messages: message 0 of the prompt is not a {role, content} object with text content",
        "t.jsonl:8: 'prompt' is a list but not chat messages: message 0 has role 'narrator', not one of system, user, assistant, tool",
        "t.jsonl:9: 'prompt' is a list but not chat messages: the conversation has no user message with text",
        "t.jsonl:10: 'prompt' is a list but not chat messages: empty conversation",
        "t.jsonl:11: no 'reward_model.ground_truth' field (the row has: data_source, prompt, ability, reward_model, extra_info)"]
    assert len(task.train_problems) + len(task.val_problems) == 6


def test_a_json_array_and_datasets_json_lines_read_as_the_jsonl(tmp_path):
    rows = gsm8k_rows(7)
    base = dict(name="g", kind="jsonl", verifier="gsm8k", val_size=2, formats=[])
    want = build(TaskConfig(path=str(jsonl(tmp_path / "d.jsonl", rows)), **base))
    (tmp_path / "array.json").write_bytes(b"\xef\xbb\xbf\n  " + json.dumps(rows, indent=2).encode())
    (tmp_path / "lines.json").write_text((tmp_path / "d.jsonl").read_text())  # Dataset.to_json's default
    for name in ("array.json", "lines.json"):
        got = build(TaskConfig(path=str(tmp_path / name), **base))
        assert [(p.text, p.answer, p.row) for p in got.train_problems] == [
            (p.text, p.answer, p.row) for p in want.train_problems], name


def test_a_json_array_that_does_not_parse_is_one_line(tmp_path):
    (tmp_path / "cut.json").write_text(json.dumps(gsm8k_rows(5), indent=1)[:-40])
    with pytest.raises(BadInput, match=r"task.path='.*cut.json' is a JSON array that does not parse \(line \d+: .*\); "
                                       r"fix it, or write one JSON object per line"):
        build(TaskConfig(name="g", kind="jsonl", path=str(tmp_path / "cut.json"), verifier="gsm8k", val_size=2,
                             formats=[]))


def test_an_object_named_as_the_answer_is_refused_naming_the_field_inside(tmp_path):
    # str() of verl's reward_model dict holds the number, so the verifier would have accepted it
    with pytest.raises(BadInput, match=r"\(first: t.jsonl:1: 'reward_model' is an object \(style, ground_truth\), not "
                                       r"text; name a field inside it, e.g. reward_model.ground_truth\)"):
        build(verl_cfg(jsonl(tmp_path / "t.jsonl", verl_rows(6)), answer_key="reward_model"))


def test_a_folder_as_the_prompt_file_names_the_files_in_it(tmp_path):
    data = tmp_path / "gsm8k"  # verl's preprocessing writes train.parquet and test.parquet here
    data.mkdir()
    for name in ("train.parquet", "test.parquet", "README.md"):
        (data / name).write_text("")
    with pytest.raises(BadInput, match=rf"task.path='{data}' is a folder; give a file in it, e.g. "
                                       rf"task.path={data}/train.parquet; found test.parquet, train.parquet$"):
        build(verl_cfg(data))
    with pytest.raises(BadInput, match=rf"task.val_path='{data}' is a folder; give a file in it, e.g. "
                                       rf"task.val_path={data}/test.parquet;"):
        build(verl_cfg(jsonl(tmp_path / "train.jsonl", verl_rows(4)), val_path=str(data)))


def test_a_file_named_parquet_that_is_not_one_is_one_line(tmp_path):
    pytest.importorskip("pyarrow")
    (tmp_path / "train.parquet").write_text('{"question": "1+1", "answer": "2"}\n')  # JSONL under another name
    with pytest.raises(BadInput, match=r"task.path='.*train.parquet' is not a readable Parquet file \(.+\); write it again"):
        build(verl_cfg(tmp_path / "train.parquet"))


def test_a_template_that_refuses_the_rows_own_messages_says_to_change_the_messages(tmp_path):
    tok = train_tokenizer("qwen2")
    # as Gemma's template does with a system message
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not "
                         "supported') }}{% endif %}{{ m['content'] }}{% endfor %}")
    task = build(verl_cfg(jsonl(tmp_path / "t.jsonl", verl_rows(4))))
    with pytest.raises(BadInput, match=r"refused the prompt of t.jsonl:\d \(TemplateError: System role not supported\); "
                                       r"try messages this template takes \(some, as Gemma's, have no system role\)$"):
        task.bind(tok)


def test_a_csv_row_with_an_extra_cell_still_gets_its_one_line(tmp_path):
    (tmp_path / "t.csv").write_text("question,answer\n\"1 + 1\",2,surplus\n")
    with pytest.raises(BadInput, match=r"t.csv:2: no 'problem' field \(the row has: question, answer, None\)"):
        build(TaskConfig(name="c", kind="jsonl", path=str(tmp_path / "t.csv"), prompt_key="problem", val_size=1,
                         formats=[]))


def test_validation_prompts_that_are_training_prompts_are_counted_in_the_first_line(tmp_path):
    rows = verl_rows(10)
    train = jsonl(tmp_path / "train.jsonl", rows)
    task = build(verl_cfg(train, val_path=str(jsonl(tmp_path / "val.jsonl", rows[:3] + verl_rows(2, system=False)))))
    assert task.describe().endswith("; 3 of the validation prompts are training prompts too")
    same = build(verl_cfg(train, val_path=str(train)))
    assert same.describe().endswith("; 10 of the validation prompts are training prompts too")
    apart = build(verl_cfg(train))  # held out of the same file: no row in both
    assert "training prompts too" not in apart.describe()
