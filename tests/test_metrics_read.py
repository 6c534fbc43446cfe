"""runstore.read_metrics parses a well-formed metrics.jsonl in one json call (issue 14: compare
over 1,000 runs); every file the one call refuses goes line by line, so the rows, the torn-line
note and the error (with its line number) are what the line-by-line reader gives."""

from __future__ import annotations

import json

import pytest

from entropyctl.runstore.store import RunStoreError, read_metrics


def _line_by_line(text: str) -> list[dict]:
    """The reference: json.loads of each non-blank line of the complete lines."""
    lines = text.split("\n")
    if lines[-1] != "":
        lines = lines[:-1]
    return [json.loads(ln) for ln in lines if ln.strip()]


@pytest.mark.parametrize("text", [
    '{"round": 0, "a": 1.5}\n{"round": 1, "a": NaN, "b": null}\n',
    '{"round": 0, "n": {"x": [1, 2]}}\n\n   \n{"round": 1, "s": "},{"}\n',  # blank lines, braces in a string
    '  {"round": 0}  \n{"round": 1, "a": -Infinity}\n{"round": 2, "a"',  # padding, then a torn last line
    "",
    # strict JSON goes through orjson (jsonfast): ints stay ints, -0.0 and subnormals survive...
    '{"round": 0, "a": 1, "b": 1.0, "c": -0.0, "d": 5e-324, "e": "\\u00e9t\u00e9"}\n',
    # ...but an integer past 64 bits would become a float there: json reads it exactly
    '{"round": 0, "seed": 123456789012345678901234, "a": 0.1}\n',
])
def test_rows_are_those_of_the_line_by_line_reader(tmp_path, text):
    p = tmp_path / "metrics.jsonl"
    p.write_text(text)
    got = read_metrics(p)
    # json's NaN is not equal to itself: compare the JSON texts
    assert json.dumps(got.rows) == json.dumps(_line_by_line(text))
    assert got.dropped_torn_line == (text != "" and not text.endswith("\n"))


@pytest.mark.parametrize("text, where, what", [
    ('{"round": 0}\n{"round": 1, "a": [1\n2]}\n{"round": 3}\n', ":2:", "corrupted metrics line"),
    # a line split in two and a line holding two objects: as many objects as lines when joined
    ('{"round": 0, "a": [1\n2]}\n{"round": 1}, {"round": 2}\n', ":1:", "corrupted metrics line"),
    ('{"round": 0}\n[1, 2]\n', ":2:", "is not a JSON object"),
    ('{"round": 0}\n{"round": 1} {"round": 2}\n', ":2:", "corrupted metrics line"),
])
def test_a_bad_line_is_named_as_before(tmp_path, text, where, what):
    p = tmp_path / "metrics.jsonl"
    p.write_text(text)
    with pytest.raises(RunStoreError) as e:
        read_metrics(p)
    assert f"metrics.jsonl{where}" in str(e.value) and what in str(e.value)
