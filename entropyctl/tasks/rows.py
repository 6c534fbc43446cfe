"""Rows of a prompt file, as verl, TRL and a spreadsheet write them (docs/tasks.md).

JSON Lines (`.jsonl`, or `.json` as `datasets`' `to_json` writes it), a JSON array (`.json`),
Parquet (verl's format; needs pyarrow) or CSV with a header row. A field is named by its key,
or by a dotted path into nested objects (`reward_model.ground_truth`, verl's answer). A prompt
is text, or a conversation: a list of `{"role", "content"}` messages (verl's and TRL's
conversational prompts), rendered by the tokenizer's chat template.
"""

from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, TextIO

from entropyctl.errors import BadInput
from entropyctl.textfiles import UTF16, is_utf16

READERS = (".jsonl", ".json", ".parquet", ".csv")
KINDS = "a .jsonl, .json, .parquet or .csv file"
MISSING = object()


def read_rows(path: Path, key: str) -> list[tuple[int, object]]:
    """(position, row) for each record: the line of a JSONL or CSV file, the item of a JSON
    array, the row of a Parquet file (from 1). One-line BadInput when the file is missing or
    not of a readable kind. A JSONL line that is not JSON is a row of None (a bad row, counted
    by the caller)."""
    if path.is_dir():
        inside = sorted(f.name for f in path.iterdir() if f.is_file() and f.suffix.lower() in READERS)
        pick = next((n for n in inside if ("val" in key) == any(w in n.lower() for w in ("val", "test"))),
                    inside[0] if inside else "")
        hint = (f"give a file in it, e.g. {key}={path / pick}; found {', '.join(inside[:4])}" if inside
                else f"give {KINDS}")
        raise BadInput(f"{key}={str(path)!r} is a folder; {hint}")
    if not path.is_file():
        raise BadInput(f"{key}={str(path)!r} is not a file; give the path of {KINDS}")
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise BadInput(f"{key}={str(path)!r} has suffix {suffix or '(none)'!r}; give {KINDS}")
    if suffix == ".csv":
        with _utf8(path, key, newline="") as f:
            return [(i, row) for i, row in enumerate(csv.DictReader(f), 2)]
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise BadInput(f"{key}={str(path)!r}: reading Parquet needs pyarrow (pip install pyarrow); "
                           "or convert the file to JSONL") from None
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise BadInput(f"{key}={str(path)!r} is not a readable Parquet file ({str(e).splitlines()[0]}); "
                           "write it again, or give a .jsonl file") from None
        return list(enumerate(table.to_pylist(), 1))
    with _utf8(path, key) as f:
        if suffix == ".json" and _starts_array(f):
            return _array_rows(f, path, key)
        return [(i, _json_or_none(line)) for i, line in enumerate(f, 1) if line.strip()]


def _starts_array(f: TextIO) -> bool:
    while True:
        c = f.read(1)
        if not c or not c.isspace():
            f.seek(0)
            return c == "["


def _array_rows(f: TextIO, path: Path, key: str) -> list[tuple[int, object]]:
    try:
        items = json.load(f)
    except json.JSONDecodeError as e:
        raise BadInput(f"{key}={str(path)!r} is a JSON array that does not parse (line {e.lineno}: {e.msg}); "
                       "fix it, or write one JSON object per line (.jsonl)") from None
    if not isinstance(items, list):  # '[' then something else: cannot be, but say so rather than guess
        raise BadInput(f"{key}={str(path)!r} is not a JSON array of rows; give {KINDS}")
    return list(enumerate(items, 1))


def _json_or_none(line: str):
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


@contextmanager
def _utf8(path: Path, key: str, newline: str | None = None) -> Iterator[TextIO]:
    """The file as UTF-8 text (a spreadsheet's byte-order mark dropped); one-line BadInput if it
    is not UTF-8, where reading would have stopped on a traceback."""
    try:
        with open(path, newline=newline, encoding="utf-8-sig") as f:
            yield f
    except UnicodeDecodeError:
        what = UTF16 if is_utf16(path) else "not UTF-8 text"
        raise BadInput(f"{key}={str(path)!r} is {what}; save it as UTF-8") from None


def field(row: dict, key: str):
    """row[key]; else, for a dotted key, the value at that path through nested objects
    (`reward_model.ground_truth`); MISSING when neither exists. None is a value (a null field)."""
    if key in row:
        return row[key]
    value = row
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


ROLES = ("system", "user", "assistant", "tool")


def as_conversation(value) -> Optional[tuple[tuple[str, str], ...]]:
    """((role, content), ...) of a list of chat messages; None if `value` is not a list.
    A list that is not one is a ValueError saying what is wrong with it."""
    if not isinstance(value, list):
        return None
    if not value:
        raise ValueError("empty conversation")
    out = []
    for i, m in enumerate(value):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise ValueError(f"message {i} of the prompt is not a {{role, content}} object with text content")
        if m["role"] not in ROLES:
            raise ValueError(f"message {i} has role {m['role']!r}, not one of {', '.join(ROLES)}")
        out.append((m["role"], m["content"]))
    if not any(role == "user" and content.strip() for role, content in out):
        raise ValueError("the conversation has no user message with text")
    return tuple(out)


def describe_fields(row: dict) -> str:
    names = [str(n) for n in row]  # a CSV row with extra cells has the key None
    return ", ".join(names[:8]) + (f", ... ({len(names)} fields)" if len(names) > 8 else "")
