"""Streaming readers for the big logs of `entropyctl fit-law`: generic CSV, generic JSONL and the
verl file logger, read a block at a time straight into a `frame.Frame` (issue 14: a million rows
in seconds and a few hundred MB, where one dict per row took 22 s and 1.25 GB).

Same rules as the record readers of `logformats` (tests/test_logimport.py holds both to them):
the text is UTF-8 (else Latin-1; a leading byte-order mark dropped), CR and CRLF line ends read
as lines, terminal colour codes are dropped; JSON lines read as Python's json reads them
(NaN/Infinity tokens; through jsonfast.loads), malformed lines skipped and counted, a torn last
line dropped; CSV rows go through the csv module, blank rows skipped, short or long rows padded
or cut (and counted). Input files are opened read-only.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from entropyctl.analysis.frame import Frame, FrameBuilder, RowsColumn, as_strings, kinds_of, signatures
from entropyctl.analysis.logformats import LogImportError, check_file, flatten
from entropyctl.jsonfast import loads

CHUNK = 1 << 22  # characters of text per block
CSV_ROWS = 1 << 16
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _blocks(f: io.TextIOBase) -> Iterator[tuple[str, bool]]:
    """(text ending in a newline, False) blocks, then the unterminated tail, if any, with True."""
    rest = ""
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            break
        chunk = rest + chunk
        cut = chunk.rfind("\n") + 1
        rest, chunk = chunk[cut:], chunk[:cut]
        if chunk:
            yield (_ANSI.sub("", chunk) if "\x1b" in chunk else chunk), False
    if rest:
        yield (_ANSI.sub("", rest) if "\x1b" in rest else rest), True


def _with_encoding(path: Path, read: Callable[[io.TextIOBase], Any]) -> Any:
    """read(text stream) with UTF-8, or again from the start with Latin-1 if it is not UTF-8."""
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            return read(f)
    except UnicodeDecodeError:
        with open(path, encoding="latin-1", newline=None) as f:
            return read(f)


# ----------------------------------------------------------------------------- JSONL


def _parse_lines(lines: list[str], tail: bool) -> tuple[list[Any], int, bool]:
    """JSON values of non-blank lines: (dicts, n malformed, torn last line). One json call per
    block when every line is an object (as many objects as lines, all dicts); line by line (the
    exact rule) otherwise. The one block parse could only differ from line by line if, in the
    same block, two broken lines joined into one object and another line held two objects."""
    if not lines:
        return [], 0, False
    try:
        objs = loads("[" + ",".join(lines) + "]")
        if len(objs) == len(lines) and set(map(type, objs)) == {dict}:
            return objs, 0, False
    except (json.JSONDecodeError, RecursionError):
        pass
    out, bad, torn = [], 0, False
    for i, line in enumerate(lines):
        if not line or line.isspace():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            out.append(obj)
        elif tail and i == len(lines) - 1:
            torn = True
        else:
            bad += 1
    return out, bad, torn


def read_jsonl(path: Path, fmt: str, want: Callable[[str], bool], where: list[tuple[str, str]],
               steplike: Callable[[str], bool]) -> tuple[Frame, list[str]]:
    """A generic JSONL (fmt 'jsonl': nested objects flattened with '/', typed records, a "run"
    key) or a verl file-logger JSONL (fmt 'verl': {"step": N, "data": {...}})."""
    expected = f"{fmt} lines (one JSON object per line)"

    def read(f: io.TextIOBase) -> tuple[Frame, int, int, bool, bool, int]:
        b = FrameBuilder(want, where, steplike)
        seen = bad = no_data = 0
        torn = dapo = False
        for block, tail in _blocks(f):
            lines = block.split("\n")
            if not lines[-1]:
                lines.pop()
            if "" in lines:
                lines = [ln for ln in lines if ln]  # whitespace-only lines: _parse_lines skips them
            objs, nbad, ntorn = _parse_lines(lines, tail)
            seen += len(objs)
            bad += nbad
            torn |= ntorn
            if fmt == "verl":
                steps = [o.get("step") for o in objs]
                rows = [o["data"] for o in objs if type(o.get("data")) is dict]
                if len(rows) < len(objs):
                    no_data += len(objs) - len(rows)
                    steps = [o.get("step") for o in objs if type(o.get("data")) is dict]
                sigs, code = signatures(rows)
                dapo |= any("train/num_gen_batches" in s for s in sigs)
                b.add(len(rows), sigs, code, RowsColumn(rows), step=steps)
                continue
            if len(objs) != len(lines) or block.count("{") != len(lines):  # a line may hold a nested object
                objs = [flatten(o) if any(type(v) is dict for v in o.values()) else o for o in objs]
            sigs, code = signatures(objs)
            keys = set().union(*sigs)
            col = RowsColumn(objs)
            runs = None
            if "run" in keys:
                runs = as_strings(col("run", ""))
            b.add(len(objs), sigs, code, col, kind=kinds_of(col, keys, len(objs)), runs=runs)
        return b.frame(), seen, bad, torn, dapo, no_data

    check_file(path, f"a {fmt} log")
    frame, seen, bad, torn, dapo, no_data = _with_encoding(path, read)
    if not seen:
        raise LogImportError(f"cannot read {path}: no JSON object lines; expected {expected}")
    notes = [f"skipped {bad} malformed line(s)"] if bad else []
    if torn:
        notes.append("dropped a truncated last line")
    if no_data:
        notes.append(f"skipped {no_data} line(s) without a 'data' object")
    if dapo:
        notes.append("C4: DAPO dynamic sampling: critic/score/mean is measured on kept groups "
                     "only (biased towards 0.5); prefer val-core/* with --perf")
    return frame, notes


# ----------------------------------------------------------------------------- CSV


class _CsvColumn:
    """`column` for CSV rows of the header's width: every key is present in every row."""

    def __init__(self, rows: list[list[str]], header: list[str]):
        self.rows, self.at = rows, {h: i for i, h in enumerate(header)}

    def __call__(self, key: str, default: Any) -> list:
        if key not in self.at:
            return [default] * len(self.rows)
        return list(map(itemgetter(self.at[key]), self.rows))


class _Columns:
    """`column` for quote-free CSV text already split into columns (lists of cells)."""

    def __init__(self, cols: list[list[str]], header: list[str]):
        self.cols, self.at = cols, {h: i for i, h in enumerate(header)}

    def __call__(self, key: str, default: Any) -> list:
        return self.cols[self.at[key]] if key in self.at else [default] * len(self.cols[0])


def _simple_columns(block: str, nh: int, sep: str = ",") -> list[list[str]] | None:
    """The columns of a block whose every line is nh quote-free cells and not blank: what the
    csv module makes of it, from one split of the text. None when the block needs the csv module."""
    if nh < 2 or '"' in block or "\0" in block:
        return None
    text = block if block.endswith("\n") else block + "\n"
    if text.count(sep) != (nh - 1) * text.count("\n"):
        return None
    raw = np.frombuffer(text.encode(), np.uint8)  # sep and "\n" are single bytes in UTF-8
    per_line = np.diff(np.searchsorted(np.flatnonzero(raw == ord(sep)), np.flatnonzero(raw == 10)), prepend=0)
    if (per_line != nh - 1).any():
        return None
    cells = text[:-1].replace("\n", sep).split(sep)
    cols = [cells[j::nh] for j in range(nh)]
    if 0 in map(len, map(str.strip, cols[0])):  # maybe a blank row (every cell blank)
        return None
    return cols


def _separator(path: Path, header_line: str) -> str:
    """',' (a CSV), or a tab where the header has tabs and no comma (a TSV). A header of ';' and
    no comma is a spreadsheet's export with decimal commas ('0,5'): refused, with what to do."""
    if "," in header_line or not any(c in header_line for c in "\t;"):
        return ","
    if "\t" in header_line:
        return "\t"
    raise LogImportError(f"cannot read {path}: its header {header_line.strip()[:60]!r} is separated by ';' (a "
                         "spreadsheet export with decimal commas); save it comma- or tab-separated, with '.' decimals")


def _header(path: Path, first: list[str] | None, has_rows: bool) -> list[str]:
    if not first or not has_rows:
        raise LogImportError(f"cannot read {path}: a CSV needs a header row and data rows")
    header = [h.strip() for h in first]
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise LogImportError(f"cannot read {path}: column {twice[0]!r} appears {header.count(twice[0])} times; "
                             "rename or drop the extra column so each key names one column")
    return header


def read_csv(path: Path, want: Callable[[str], bool], where: list[tuple[str, str]],
             steplike: Callable[[str], bool]) -> tuple[Frame, list[str]]:
    """A generic CSV (or tab-separated file) with a header row (optional split/mode/... column,
    run and seed columns). Blocks of plain lines (no quotes, the header's width, none blank) are
    split as text; from the first block that is not, the csv module reads the rest, row by row."""
    expected = "a csv log"

    def add(b: FrameBuilder, col: Any, n: int, header: list[str]) -> None:
        b.add(n, [tuple(header)], None, col, kind=kinds_of(col, set(header), n), runs=_csv_runs(col, header))

    def by_csv(b: FrameBuilder, blocks: Iterator[str], header: list[str] | None, sep: str) -> int:
        # csv reads the lines of each block through a C iterator (no Python call per line)
        reader = csv.reader(itertools.chain.from_iterable(map(io.StringIO, blocks)), delimiter=sep)
        first = next(reader, None) if header is None else None
        rows = list(itertools.islice(reader, CSV_ROWS))
        header = header or _header(path, first, bool(rows))
        nh, short = len(header), 0
        while rows:
            # rows of the wrong width or blank ones (all cells blank: the first one is) take the slow path
            if set(map(len, rows)) != {nh} or 0 in map(len, map(str.strip, map(itemgetter(0), rows))):
                fixed = []
                for row in rows:
                    if not any(c.strip() for c in row):
                        continue
                    if len(row) != nh:
                        short += 1
                        row = (row + [""] * nh)[:nh]
                    fixed.append(row)
                rows = fixed
            add(b, _CsvColumn(rows, header), len(rows), header)
            rows = list(itertools.islice(reader, CSV_ROWS))
        return short

    def read(f: io.TextIOBase) -> tuple[Frame, int]:
        b = FrameBuilder(want, where, steplike)
        blocks = (block for block, _ in _blocks(f))
        first = next(blocks, "")
        line, _, rest = first.partition("\n")
        sep = _separator(path, line)
        if '"' in line or "\0" in line:  # a quoted header: the csv module reads it all
            short = by_csv(b, itertools.chain([first], blocks), None, sep)
            return b.frame(), short
        data = itertools.chain([rest] if rest else [], blocks)
        block = next(data, None)
        header = _header(path, line.split(sep) if line else [], block is not None)
        while block is not None:
            cols = _simple_columns(block, len(header), sep)
            if cols is None:
                short = by_csv(b, itertools.chain([block], data), header, sep)
                return b.frame(), short
            add(b, _Columns(cols, header), len(cols[0]), header)
            block = next(data, None)
        return b.frame(), 0

    check_file(path, expected)
    frame, short = _with_encoding(path, read)
    return frame, [f"{short} row(s) had the wrong number of cells"] if short else []


def _csv_runs(col: _CsvColumn, header: list[str]) -> list[str] | None:
    """The run name of each row: "run=<run>/seed=<seed>" from the columns that are not blank."""
    have = [c for c in ("run", "seed") if c in header]
    if not have:
        return None
    cells = col(have[0], "") if len(have) == 1 else list(zip(*(col(c, "") for c in have)))

    def name(t: Any) -> str:
        t = (t,) if len(have) == 1 else t
        return "/".join(f"{c}={v}" for c, v in zip(have, t) if v.strip())
    names = {t: name(t) for t in dict.fromkeys(cells)}
    return list(map(names.__getitem__, cells))
