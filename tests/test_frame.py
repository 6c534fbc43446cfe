"""The columnar importer (analysis/frame.py, analysis/streamread.py) against the per-record rules
it replaced: the same values, maps, pairs and series, whatever the block boundaries."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from entropyctl.analysis import streamread
from entropyctl.analysis.frame import frame_from_records, pair_arrays, to_floats, value_map
from entropyctl.analysis.logformats import LogImportError, Record, to_float, to_step
from entropyctl.analysis.logimport import ImportOptions, load_series
from entropyctl.analysis.runs import pair

MIXED = [0.5, 1, None, float("nan"), float("inf"), "0.25", " 0.125 ", "np.float64(0.69)", "abc", "", True,
         False, [1], {"x": 1}, "1_0", -3, "-inf", "NaN"]


def test_to_floats_is_to_float_on_every_kind_of_value():
    rng = random.Random(0)
    for n in (1, 5, 50):
        vals = [rng.choice(MIXED) for _ in range(n)]
        got = to_floats(vals)
        want = [to_float(v) for v in vals]
        assert [None if math.isnan(x) else x for x in got.tolist()] == [None if math.isnan(x) else x for x in want]
    assert to_floats(["1.5", "2"]).tolist() == [1.5, 2.0]  # the all-strings fast path
    assert to_floats([1, 2.5, None])[:2].tolist() == [1.0, 2.5]  # the all-numbers fast path


def reference_value_map(recs, keys, step_key):
    """The per-record loop value_map vectorises (logimport before it read columns)."""
    out, dups = {}, 0
    for r in recs:
        present = [k for k in keys if k in r.data]
        if not present:
            continue
        step = r.step if step_key is None else to_step(r.data.get(step_key))
        if step is None:
            continue
        vals = [to_float(r.data[k]) for k in present]
        v = float(np.mean(vals)) if len(present) == len(keys) else math.nan
        dups += step in out
        out[step] = v
    return out, dups, sum(1 for v in out.values() if not math.isfinite(v))


@pytest.mark.parametrize("nkeys", [1, 3, 9])
def test_value_map_equals_the_per_record_rule(nkeys):
    rng = random.Random(nkeys)
    keys = [f"k{i}" for i in range(nkeys)]
    for trial in range(20):
        recs = []
        for _ in range(rng.randrange(1, 60)):
            data = {k: rng.choice([rng.random(), rng.random(), None, "x", 7]) for k in keys if rng.random() < 0.85}
            if rng.random() < 0.9:
                data["step"] = rng.choice([rng.randrange(20), rng.randrange(20), None, f"{rng.randrange(9)}/20"])
            recs.append(Record(None, data))
        frame = frame_from_records(recs, lambda k: True)
        steps, vals, dups, miss = value_map(frame, np.ones(frame.n, bool), keys, frame.step_of("step"))
        want, wdups, wmiss = reference_value_map(recs, keys, "step")
        assert steps.tolist() == sorted(want) and (dups, miss) == (wdups, wmiss)
        exp = [want[s] for s in sorted(want)]
        assert [None if math.isnan(v) else v for v in vals.tolist()] == [None if math.isnan(v) else v for v in exp]


def test_pair_arrays_equals_pair_for_both_rules():
    rng = random.Random(1)
    for _ in range(200):
        ent = {s: rng.choice([rng.random(), math.nan]) for s in rng.sample(range(30), rng.randrange(0, 12))}
        perf = {s: rng.random() for s in rng.sample(range(30), rng.randrange(0, 12))}
        es = np.array(sorted(ent), dtype=np.int64)
        ps = np.array(sorted(perf), dtype=np.int64)
        for rule in ("same", "next"):
            got = pair_arrays(es, np.array([ent[s] for s in sorted(ent)]), ps, np.array([perf[s] for s in sorted(perf)]),
                              rule)
            want = pair(ent, perf, rule)
            assert got[3] == want[3]
            for g, w in zip(got[:3], want[:3]):
                assert g.tolist() == w.tolist()


# ----------------------------------------------------------------------------- whole files, any block size

CSV_TEXT = (
    "step,entropy,reward,split,run\r\n"
    + "".join(f"{s},{1 - s / 50},{s / 40},train,a\r\n" for s in range(12))
    + ",,,,\r\n   ,  ,,,\r\n"  # blank rows
    + "12,0.7,0.3,val\r\n"  # a short row
    + '13,0.69,"0.31",train,"a"\r\n'  # quoted cells from here on: the csv module reads the rest
    + '14,0.68,0.32,train,"b\r\nc"\r\n'  # a cell with a line break
    + "".join(f"{s},{1 - s / 50},{s / 40},val,a\r\n" for s in range(15, 20))
)
JSONL_ROWS = [{"step": s, "split": "train", "actor": {"entropy": 1 - s / 50}, "reward": s / 40} for s in range(15)]


def jsonl_text() -> str:
    lines = [json.dumps(r) for r in JSONL_ROWS]
    lines[3:3] = ["", "   ", "{oops", "[1, 2]", json.dumps({"step": 3, "split": "val", "reward": 0.9})]
    return "\n".join(lines) + '\n{"step": 99, "rew'


def series_of(path, **kw):
    return [(s.name, s.steps.tolist(), s.H.tolist(), [None if math.isnan(x) else x for x in s.R.tolist()],
             s.warnings, s.pairing, s.error) for s in load_series([path], ImportOptions(**kw))]


@pytest.mark.parametrize("chunk,rows", [(7, 2), (64, 3), (1 << 22, 1 << 16)])
def test_streamed_files_read_the_same_at_any_block_size(tmp_path, monkeypatch, chunk, rows):
    csv_path = tmp_path / "log.csv"
    csv_path.write_bytes(CSV_TEXT.encode())
    jsonl_path = tmp_path / "log.jsonl"
    jsonl_path.write_text(jsonl_text())
    whole = {p: series_of(p) for p in (csv_path, jsonl_path)}
    monkeypatch.setattr(streamread, "CHUNK", chunk)
    monkeypatch.setattr(streamread, "CSV_ROWS", rows)
    for p in (csv_path, jsonl_path):
        assert series_of(p) == whole[p]
    got = {name: (steps, R, w) for name, steps, _, R, w, _, _ in whole[csv_path]}
    assert got["run=a train"][0] == list(range(12)) + [13]  # blank rows skipped, the short row 12 has no run
    assert any("1 row(s) had the wrong number of cells" in w for w in got["run=a train"][2])
    assert got["run=b\nc train"][0] == [14]  # the cell's line break survives, as the csv module reads it
    (train, val) = [s for s in whole[jsonl_path]]
    assert train[0] == "log train" and train[1] == list(range(15)) and "dropped a truncated last line" in train[4]
    assert any("skipped 2 malformed line(s)" in w for w in train[4])
    assert val[1] == [3] and val[2] == [1 - 4 / 50]  # val at 3 pairs with the next step's entropy


@pytest.mark.parametrize("chunk,rows", [(7, 2), (1 << 22, 1 << 16)])
def test_a_tab_separated_file_reads_as_its_csv(tmp_path, monkeypatch, chunk, rows):
    monkeypatch.setattr(streamread, "CHUNK", chunk)
    monkeypatch.setattr(streamread, "CSV_ROWS", rows)
    (tmp_path / "log.csv").write_bytes(CSV_TEXT.encode())
    want = series_of(tmp_path / "log.csv")
    for name in ("log.tsv", "log.txt"):  # .txt: found by the header's tabs
        (tmp_path / name).write_bytes(CSV_TEXT.replace(",", "\t").encode())
        assert [s[1:] for s in series_of(tmp_path / name)] == [s[1:] for s in want]  # all but the name
    (tmp_path / "eu.csv").write_text("step;entropy;reward\n0;0,9;0,1\n1;0,8;0,2\n")
    with pytest.raises(LogImportError) as e:
        load_series([tmp_path / "eu.csv"], ImportOptions())
    assert str(e.value) == (f"cannot read {tmp_path / 'eu.csv'}: its header 'step;entropy;reward' is separated by ';' "
                            "(a spreadsheet export with decimal commas); save it comma- or tab-separated, with '.' decimals")


def test_csv_and_jsonl_of_the_same_rows_give_the_same_series(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    H = 1.2 * np.exp(-np.arange(n) / 900) + 0.05
    R = 0.8 - 0.2 * np.exp(H) + rng.normal(0, 0.01, n)
    (tmp_path / "a.csv").write_text("step,entropy,reward,loss\n" + "".join(
        f"{s},{h!r},{r!r},{-s}\n" for s, h, r in zip(range(n), H.tolist(), R.tolist())))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"step": s, "entropy": h, "reward": r, "loss": -s}) + "\n"
                                              for s, h, r in zip(range(n), H.tolist(), R.tolist())))
    (c,), (j,) = (load_series([tmp_path / f], ImportOptions()) for f in ("a.csv", "a.jsonl"))
    assert c.H.tolist() == j.H.tolist() == H.tolist() and c.R.tolist() == j.R.tolist() == R.tolist()
    assert c.steps.tolist() == list(range(n))


def test_where_keeps_series_in_the_order_their_kept_records_appear(tmp_path):
    rows = [{"step": 0, "run": "A", "split": "val", "entropy": 1, "reward": 0.1},  # A's first record: filtered out
            {"step": 0, "run": "B", "split": "train", "entropy": 1, "reward": 0.1},
            {"step": 1, "run": "A", "split": "train", "entropy": 0.5, "reward": 0.2},
            {"step": 1, "run": "B", "split": "train", "entropy": 0.5, "reward": 0.2}]
    f = tmp_path / "typed.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = load_series([f], ImportOptions(where=[("split", "train")]))
    assert [s.name for s in got] == ["B train", "A train"] and got[1].steps.tolist() == [1]


def test_block_parse_gives_what_json_gives_line_by_line():
    """orjson parses the blocks where it agrees with json; every token where they differ (NaN,
    Infinity, 1e400, integers past 64 bits, lone surrogates) must still read as json reads it."""
    rng = random.Random(0)
    ints = ["0", "-0", "7", "-42", "123456789012345678", "1234567890123456789", "-9223372036854775809",
            "18446744073709551616", "123456789012345678901234567"]
    floats = ["1E5", "1.0e+2", "-0.0", "0.0001234567890123456789", "5e-324", "2.4703282292062328e-324",
              "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1.7976931348623157e308"]
    strings = ['"a"', '"\\u00e9t\\u00e9"', '"\\ud83d\\ude00"', '"\\ud800"', '"id12345678901234567890"', '"x\\ty"']
    other = ["true", "false", "null", "[]", "{}", '[1, 2.5, "3"]', '{"in": {"deep": [0.1]}}']

    def value() -> str:
        kind = rng.random()
        if kind < 0.4:
            return repr(rng.uniform(-1, 1) * 10 ** rng.randint(-8, 8))
        return rng.choice(ints + floats + strings + other)

    lines = []
    for _ in range(400):
        keys = rng.sample(["step", "run", "entropy", "reward", "x", "x"], rng.randint(1, 5))  # "x" twice: duplicate keys
        lines.append("{" + ", ".join(f'"{k}": {value()}' for k in keys) + "}")
    expected = [json.loads(line) for line in lines]
    for start in range(0, len(lines), 7):  # blocks of 7: most hold one token only json reads alike
        block = lines[start:start + 7]
        got, bad, torn = streamread._parse_lines(block, False)
        assert (bad, torn) == (0, False)
        assert repr(got) == repr(expected[start:start + 7]), block  # repr tells 1 from 1.0, -0.0, nan
    clean = [line for line in lines if not any(t in line for t in ("NaN", "Infinity", "e400", "ud800"))]
    got, _, _ = streamread._parse_lines(clean, False)
    assert repr(got) == repr([json.loads(line) for line in clean])
