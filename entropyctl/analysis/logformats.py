"""Readers for `entropyctl fit-law`: each turns one log file into records
(step, flat dict of values, kind train|val, run name), nothing more. Which keys are H and R,
de-duplication and pairing are `entropyctl.analysis.logimport`'s job.

Formats (spec: shared/spec/log-formats.md; `--format` forces one, else auto-detected):
  run           entropyctl run dirs and sweep dirs (recursive; docs/run-store.md)
  trl           TRL/HF trainer_state.json (`log_history`), or an output dir with checkpoint-N/
  trl-console   the dicts the HF progress callback prints (step = index x --logging-steps)
  verl          verl file-logger JSONL: {"step": N, "data": {...}}
  verl-console  verl console lines: step:N - key:value - ...
  wandb-csv     W&B panel CSV exports (Step, "<run> - <metric>"); several files join on step
  wandb         W&B run history: an offline run (.wandb file or dir), or wandb://ENTITY/PROJECT/RUN_ID
  csv, jsonl    generic tables (flat or nested JSON; typed records via split/mode/phase/type/kind)

Input files are opened read-only. A whole file that cannot be read raises LogImportError
(one line, naming the file and what was expected).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entropyctl.errors import BadInput
from entropyctl.runstore import store as runstore
from entropyctl.textfiles import BOM, UTF16, is_utf16

FORMATS = ("auto", "run", "trl", "trl-console", "verl", "verl-console", "wandb-csv", "wandb", "csv", "jsonl")
VAL_KINDS = {"val", "eval", "validation", "test"}
DISCRIMINATORS = ("split", "mode", "phase", "type", "kind")


class LogImportError(BadInput):
    """A file (or the options) cannot be read; the message is one line for the user."""


@dataclass
class Record:
    step: int | None
    data: dict[str, Any]
    kind: str = ""  # "train", "val" or "" (untyped)
    run: str = ""


@dataclass
class ImportOptions:
    fmt: str = "auto"
    step_key: str | None = None
    entropy_key: str | None = None
    perf_key: str | None = None
    where: list[tuple[str, str]] = field(default_factory=list)
    pairing: str = "auto"  # auto | same | next
    logging_steps: int | None = None


# ----------------------------------------------------------------------------- values

_NP_WRAP = re.compile(r"^(?:np|numpy)\.\w+\((.*)\)$")


def to_float(v: Any) -> float:
    """A metric value as float; NaN for missing (null, NaN, inf, '', non-numeric)."""
    if isinstance(v, bool) or v is None:
        return math.nan
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str):
        s = v.strip()
        m = _NP_WRAP.match(s)
        try:
            f = float(m.group(1) if m else s)
        except ValueError:
            return math.nan
    else:
        return math.nan
    return f if math.isfinite(f) else math.nan


def to_step(v: Any) -> int | None:
    if isinstance(v, str) and "/" in v:  # ms-swift "N/M"
        v = v.split("/", 1)[0]
    f = to_float(v)
    return int(round(f)) if math.isfinite(f) else None


def flatten(d: dict[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + sep, sep))
        else:
            out[key] = v
    return out


# ----------------------------------------------------------------------------- files


def read_text(path: Path, expected: str) -> str:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise LogImportError(f"cannot read {path}: it is a directory; expected {expected}") from None
    except OSError as e:
        raise LogImportError(f"cannot read {path}: {e.strerror or e}") from None
    if not raw.strip():
        raise LogImportError(f"cannot read {path}: the file is empty; expected {expected}")
    if b"\0" in raw[:4096]:
        raise LogImportError(f"cannot read {path}: {binary_kind(raw[:4])}; expected {expected}")
    raw = raw.removeprefix(BOM)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    # Old-Mac CR-only and Windows CRLF line ends read as lines; terminal colour codes (verl's
    # console colours its values) are not part of any value.
    return _ANSI.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def binary_kind(head: bytes) -> str:
    """What a file with NUL bytes is: UTF-16 text, or binary."""
    return f"{UTF16}; save it as UTF-8" if is_utf16(head) else "binary file"


def check_file(path: Path, expected: str) -> None:
    """`read_text`'s checks (directory, unreadable, empty, binary), reading only the start."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
            if b"\0" in head:
                raise LogImportError(f"cannot read {path}: {binary_kind(head)}; expected {expected}")
            blank = not head.strip()
            while blank:
                more = f.read(1 << 20)
                if not more:
                    break
                blank = not more.strip()
    except IsADirectoryError:
        raise LogImportError(f"cannot read {path}: it is a directory; expected {expected}") from None
    except OSError as e:
        raise LogImportError(f"cannot read {path}: {e.strerror or e}") from None
    if blank:
        raise LogImportError(f"cannot read {path}: the file is empty; expected {expected}")


def head_text(path: Path, expected: str, size: int = 1 << 18) -> str:
    """The first `size` bytes as text, cleaned like `read_text`: enough to detect the format
    (which reads the first 20,000 characters) without reading a large log twice."""
    check_file(path, expected)
    with open(path, "rb") as f:
        raw = f.read(size).removeprefix(BOM)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        # a multi-byte character cut at the end of the window is not a Latin-1 file
        text = raw[: e.start].decode("utf-8") if e.start >= len(raw) - 3 else raw.decode("latin-1")
    return _ANSI.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def detect_format(path: Path) -> str:
    """The format of `path` from its name and first bytes; LogImportError if none fits."""
    if path.is_dir():
        if runstore.is_run_dir(path) or any(runstore.iter_run_dirs([path])):
            return "run"
        if _trl_state_file(path):
            return "trl"
        raise LogImportError(f"cannot read {path}: no run.json (entropyctl run or sweep), "
                             "trainer_state.json (TRL) or run-*.wandb (W&B offline run) below it")
    if path.name == runstore.METRICS and runstore.is_run_dir(path.parent):
        return "run"
    expected = "a log in one of: " + ", ".join(FORMATS[1:])
    head = head_text(path, expected).lstrip()[:20000]
    if path.name == "trainer_state.json" or (head.startswith("{") and '"log_history"' in head):
        return "trl"
    first = head.split("\n", 1)[0].strip()
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and "step" in obj and isinstance(obj.get("data"), dict):
            return "verl"
        if obj is not None:
            return "jsonl"
    if re.search(r"(?m)step:\d+ - \S+:", head):
        return "verl-console"
    if re.search(r"\{'[^']+': ", head):
        return "trl-console"
    if path.suffix.lower() in (".csv", ".tsv") or (any(c in first for c in ",\t;") and not first.startswith("{")):
        header = next(csv.reader(io.StringIO(first)), [])
        if header and (header[0] in ("Step", "_step", "train/global_step")
                       or any(" - " in h for h in header[1:])):
            return "wandb-csv"
        return "csv"
    if first.startswith("{"):
        return "jsonl"  # a first line that is a torn object: let the JSONL reader report
    raise LogImportError(f"cannot read {path}: not a recognised log; expected {expected} (or force --format)")


def _trl_state_file(path: Path) -> Path | None:
    """trainer_state.json to read in an output dir: the largest checkpoint-N's, or the
    top-level one if its global_step is larger."""
    best, best_step = None, -1
    for ck in path.glob("checkpoint-*/trainer_state.json"):
        m = re.fullmatch(r"checkpoint-(\d+)", ck.parent.name)
        if m and int(m.group(1)) > best_step:
            best, best_step = ck, int(m.group(1))
    top = path / "trainer_state.json"
    if top.is_file():
        try:
            top_step = int(json.loads(top.read_text()).get("global_step", -1))
        except (ValueError, AttributeError, TypeError, OSError):
            top_step = -1
        if best is None or top_step > best_step:
            best = top
    return best


def read_trl(path: Path, opts: ImportOptions) -> tuple[list[Record], list[str]]:
    if path.is_dir():
        f = _trl_state_file(path)
        if f is None:
            raise LogImportError(f"cannot read {path}: no trainer_state.json in it or its checkpoint-N/")
        path = f
    expected = "a TRL trainer_state.json with a log_history list"
    text = read_text(path, expected)
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise LogImportError(f"cannot read {path}: truncated or invalid JSON at line {e.lineno} "
                             f"({e.msg}); expected {expected}") from None
    hist = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(hist, list):
        raise LogImportError(f"cannot read {path}: no log_history list; expected {expected}")
    recs = []
    for d in hist:
        if not isinstance(d, dict) or "train_runtime" in d:
            continue  # the closing summary record
        metrics = [k for k in d if k not in ("step", "epoch")]
        kind = "val" if metrics and all(k.startswith("eval_") for k in metrics) else "train"
        recs.append(Record(to_step(d.get("step")), d, kind))
    notes = ["C5: TRL averages each log record over logging_steps optimizer steps"]
    return recs, notes


def read_trl_console(path: Path, text: str, opts: ImportOptions) -> tuple[list[Record], list[str]]:
    # No step numbers in the console: the row index is the step (x --logging-steps when given).
    # The law's fit does not depend on the step scale; only --early and --window read it.
    every = opts.logging_steps or 1
    recs, bad, i = [], 0, 0
    for blob in re.findall(r"\{'[^{}]*\}", text):
        blob = _NP_INLINE.sub(r"\1", blob)
        blob = re.sub(r"(?<=[:\s])-?(?:nan|inf)(?=\s*[,}])", "None", blob)
        try:
            d = ast.literal_eval(blob)
        except (ValueError, SyntaxError):
            bad += 1
            continue
        if not isinstance(d, dict) or "train_runtime" in d:
            continue
        metrics = [k for k in d if k != "epoch"]
        if metrics and all(str(k).startswith("eval_") for k in metrics):
            recs.append(Record(i * every if i else 0, d, "val"))
        else:
            i += 1
            recs.append(Record(i * every, d, "train"))
    if not recs:
        raise LogImportError(f"cannot read {path}: no printed metric dicts like {{'loss': ..., 'entropy': ...}}")
    notes = [f"skipped {bad} malformed dict(s)"] if bad else []
    steps = ("step = row index x --logging-steps (console output has no steps)" if opts.logging_steps else
             "step = row index (console output has no steps; --logging-steps N scales it for --early/--window)")
    return recs, notes + [steps,
                          "C5: TRL averages each log record over logging_steps optimizer steps"]


_NP_INLINE = re.compile(r"(?:np|numpy)\.\w+\(([^()]*)\)")


def read_verl_console(path: Path, text: str) -> tuple[list[Record], list[str]]:
    recs, bad = [], 0
    for line in text.splitlines():
        m = re.search(r"step:(\d+) - (.*)$", line)
        if not m:
            continue
        data: dict[str, Any] = {}
        for piece in m.group(2).split(" - "):
            if ":" not in piece:
                bad += 1
                continue
            k, v = piece.rsplit(":", 1)
            data[k.strip()] = v.strip()
        recs.append(Record(int(m.group(1)), data))
    if not recs:
        raise LogImportError(f"cannot read {path}: no 'step:N - key:value' lines (verl console)")
    return recs, [f"skipped {bad} malformed key:value piece(s)"] if bad else []


def read_wandb_csv(path: Path, text: str) -> tuple[list[Record], list[str]]:
    """A W&B panel export: one record per (row, run) with that run's metrics of the row."""
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2 or not rows[0]:
        raise LogImportError(f"cannot read {path}: a CSV needs a header row and data rows")
    header = [h.strip() for h in rows[0]]
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise LogImportError(f"cannot read {path}: column {twice[0]!r} appears {header.count(twice[0])} times; "
                             "rename or drop the extra column so each key names one column")
    recs, short = [], 0
    for row in rows[1:]:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            short += 1
            row = (row + [""] * len(header))[: len(header)]
        cells = dict(zip(header, row))
        by_run: dict[str, dict[str, Any]] = {}
        for h in header[1:]:
            if h.endswith(("__MIN", "__MAX")) or cells[h].strip() == "":
                continue
            run, metric = h.rsplit(" - ", 1) if " - " in h else (path.stem, h)
            by_run.setdefault(run, {})[metric] = cells[h]
        step = to_step(cells[header[0]])
        recs.extend(Record(step, d, "", run) for run, d in by_run.items())
    notes = [f"{short} row(s) had the wrong number of cells"] if short else []
    notes.append("W&B panel exports may be down-sampled; for full history use the API "
                 "(scan_history) or an offline run directory")
    return recs, notes


def read_run(path: Path) -> list[tuple[Path, runstore.Run | None, list[Record], list[str], str | None]]:
    """Each run below `path`: (dir, Run, records, notes, error), read by the one reader of the
    run store (analysis/runs.py). A corrupted run becomes an error for its series only, so one
    bad run does not hide a sweep (compare skips the same runs)."""
    from entropyctl.analysis.runs import read_runs

    if path.is_file():
        path = path.parent
    runs, skipped = read_runs([path])
    out: list[tuple[Path, runstore.Run | None, list[Record], list[str], str | None]] = []
    out += [(d, None, [], [], reason) for d, reason in skipped]
    for r in runs:
        recs = [Record(None, row, "", r.run.id) for row in r.rows]
        out.append((r.path, r.run, recs, list(r.notes), None))
    return sorted(out, key=lambda t: str(t[0]))


def read_records(path: Path, fmt: str, opts: ImportOptions) -> tuple[list[Record], list[str]]:
    """Records and notes of one file in a small format: trl, trl-console, verl-console. (Our
    run dirs, W&B CSV panels, and the streamed csv/jsonl/verl are read by their own readers.)"""
    if fmt == "trl":
        return read_trl(path, opts)
    text = read_text(path, f"a {fmt} log")
    if fmt == "trl-console":
        return read_trl_console(path, text, opts)
    if fmt == "verl-console":
        return read_verl_console(path, text)
    raise ValueError(f"read_records: {fmt} is not a record format")
