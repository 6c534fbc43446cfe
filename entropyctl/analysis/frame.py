"""Columnar records for `entropyctl fit-law`: what the importer keeps of a log, as numpy arrays.

A log of a million rows must not become a million Python dicts (issue 14: 22 s and 1.25 GB for
one JSONL). The readers hand rows over a block at a time; `FrameBuilder` keeps, per row, only
what key choice, de-duplication and pairing read (logimport's rules, log-formats.md §0):

  * the float value and presence of each *wanted* key (a key fit-law could choose: the alias
    tables, the user's --step/--entropy/--perf, anything ending in "step"); other keys are only
    remembered by name, per (run, train|val), for key choice and error messages;
  * the record's own step (verl, TRL), kind (train/val/untyped) and run name;
  * the --where filter, applied as rows arrive (a filtered-out row leaves no trace, as before).

Values follow `to_float` exactly (bool, null, NaN, inf, '' and non-numeric strings are NaN; numeric
strings and np.float64(...) are numbers), through vectorised fast paths with `to_float` as the
fallback. `value_map` and `pair_arrays` are the vectorised forms of logimport's per-record loop
and of analysis/runs.py's `pair`, with the same results (tests/test_frame.py checks both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from entropyctl.analysis.logformats import DISCRIMINATORS, VAL_KINDS, to_float

UNTYPED, TRAIN, VAL = 0, 1, 2
_NONE = type(None)


def _str_float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return to_float(s)


def to_floats(vals: Sequence[Any]) -> np.ndarray:
    """`to_float` of every element, as float64 (NaN for missing), without a Python call per
    element in the common cases (all numbers, or all strings that float() reads)."""
    n = len(vals)
    types = set(map(type, vals))
    out = None
    if types <= {float, int, _NONE}:  # bool is excluded: to_float calls it missing
        try:
            out = np.array(vals, dtype=np.float64)
        except (OverflowError, TypeError, ValueError):
            out = None
    elif types == {str}:
        try:
            out = np.fromiter(map(float, vals), np.float64, n)  # float() accepts what to_float does
        except ValueError:
            out = np.fromiter(map(_str_float, vals), np.float64, n)
    if out is None:
        out = np.fromiter(map(to_float, vals), np.float64, n)
    out[~np.isfinite(out)] = np.nan
    return out


def step_floats(vals: Sequence[Any], floats: np.ndarray) -> np.ndarray:
    """`to_step` before rounding: like `floats`, except that an "N/M" string (ms-swift) is N."""
    types = set(map(type, vals))
    if str not in types or (types == {str} and "/" not in "".join(vals)):
        return floats
    out = None
    for i, v in enumerate(vals):
        if type(v) is str and "/" in v:
            if out is None:
                out = floats.copy()
            out[i] = to_float(v.split("/", 1)[0])
    return floats if out is None else out


def as_strings(vals: Sequence[Any]) -> list[str]:
    """str() of each value (what the record readers compared and named runs with)."""
    if set(map(type, vals)) == {str}:
        return list(vals)
    return [v if type(v) is str else str(v) for v in vals]


def codes_of(vals: list, index: dict) -> np.ndarray:
    """Integer code per value (new values are added to `index` in order of appearance)."""
    for v in dict.fromkeys(vals):
        if v not in index:
            index[v] = len(index)
    return np.fromiter(map(index.__getitem__, vals), np.int64, len(vals))


def kinds_of(column: Callable[[str, Any], list], keys: set[str], n: int) -> np.ndarray:
    """logformats._kind per row: the first discriminator (split, mode, ...) whose value is a
    validation word or "train" decides."""
    kind = np.zeros(n, np.int8)
    for d in DISCRIMINATORS:
        if d not in keys:
            continue
        vals = as_strings(column(d, ""))
        u: dict[str, int] = {}
        codes = codes_of(vals, u)
        word = np.array([VAL if s.lower() in VAL_KINDS else TRAIN if s.lower() == "train" else UNTYPED
                         for s in u], np.int8)
        k = word[codes]
        kind = np.where(kind == UNTYPED, k, kind)
    return kind


@dataclass
class Frame:
    """The rows of one input, column by column (only wanted keys hold values)."""

    n: int
    step: np.ndarray  # float64: the row's own step (verl, TRL, our runs' records); NaN: none
    kind: np.ndarray  # int8: UNTYPED, TRAIN, VAL
    run: np.ndarray  # int64 code into `runs`
    runs: list[str]
    values: dict[str, np.ndarray]  # float64, NaN where missing or not a number
    present: dict[str, np.ndarray]  # bool: the row has the key (whatever its value)
    stepvals: dict[str, np.ndarray]  # to_step's float, for keys where it differs from values
    keys: dict[tuple[int, bool], set[str]] = field(default_factory=dict)  # (run, is val) -> keys

    def keys_of(self, run: int | None = None, val: bool | None = None) -> set[str]:
        out: set[str] = set()
        for (r, v), ks in self.keys.items():
            if (run is None or r == run) and (val is None or v == val):
                out |= ks
        return out

    def step_of(self, key: str | None) -> np.ndarray:
        """Per row: the step (float, NaN = none) from the record, or from column `key`."""
        if key is None:
            return self.step
        if key not in self.present:
            return np.full(self.n, np.nan)
        v = self.stepvals.get(key, self.values[key])
        return np.where(self.present[key], v, np.nan)


class FrameBuilder:
    """Collects blocks of rows into a Frame; see the module docstring."""

    def __init__(self, want: Callable[[str], bool], where: Iterable[tuple[str, str]] = (),
                 steplike: Callable[[str], bool] = lambda k: True):
        self.want, self.where, self.steplike = want, list(where), steplike
        self.parts: list[dict[str, Any]] = []
        self.run_index: dict[str, int] = {}
        self.keys: dict[tuple[int, bool], set[str]] = {}

    def add(self, n: int, sigs: list[tuple[str, ...]], sig_code: np.ndarray | None,
            column: Callable[[str, Any], list], *, kind: np.ndarray | None = None,
            runs: list[str] | None = None, step: Sequence[Any] | None = None) -> None:
        """One block of `n` rows. `sigs`: the distinct key tuples of the rows, `sig_code` the
        index of each row's (None: all rows have sigs[0]); `column(key, default)`: the raw value
        of `key` in each row (`default` where absent); `kind` (default untyped), `runs` (run
        name per row, default ""), `step` (raw record step per row, or None: rows have none)."""
        if n == 0:
            return
        code = np.zeros(n, np.int64) if sig_code is None else sig_code
        all_keys = set().union(*sigs)
        keep = np.ones(n, bool)
        for k, v in self.where:
            if k in all_keys:
                keep &= np.array(as_strings(column(k, "")), dtype=object) == v
            else:
                keep &= v == ""
        rows = None if keep.all() else np.flatnonzero(keep)
        if rows is not None and len(rows) == 0:
            return

        def sel(a: np.ndarray) -> np.ndarray:
            return a if rows is None else a[rows]

        part: dict[str, Any] = {"n": n if rows is None else len(rows), "values": {}, "present": {}, "stepvals": {}}
        # run codes in order of first appearance among the rows kept (the series' order)
        if runs is None:
            part["run"] = np.full(part["n"], self.run_index.setdefault("", len(self.run_index)), np.int64)
        else:
            part["run"] = codes_of(runs if rows is None else [runs[i] for i in rows.tolist()], self.run_index)
        part["kind"] = sel(np.zeros(n, np.int8) if kind is None else kind)
        part["step"] = np.full(part["n"], np.nan) if step is None else sel(step_floats(step, to_floats(step)))
        for k in sorted(all_keys):
            if not self.want(k):
                continue
            has = np.array([k in s for s in sigs])[code]
            raw = column(k, None)
            vals = to_floats(raw)
            part["values"][k] = sel(vals)
            part["present"][k] = sel(has)
            if self.steplike(k):
                sv = step_floats(raw, vals)
                if sv is not vals:
                    part["stepvals"][k] = sel(sv)
        # which keys each (run, train|val) group has, from the distinct (run, kind, sig) triples
        isval = part["kind"] == VAL
        combo = (part["run"] * 2 + isval) * len(sigs) + sel(code)
        for c in np.unique(combo):
            r, rest = divmod(int(c), 2 * len(sigs))
            v, s = divmod(rest, len(sigs))
            self.keys.setdefault((r, bool(v)), set()).update(sigs[s])
        self.parts.append(part)

    def frame(self) -> Frame:
        n = sum(p["n"] for p in self.parts)
        names = sorted({k for p in self.parts for k in p["values"]})

        def cat(pick: Callable[[dict], np.ndarray | None], fill: Any, dtype: Any) -> np.ndarray:
            arrs = [a if (a := pick(p)) is not None else np.full(p["n"], fill, dtype) for p in self.parts]
            return np.concatenate(arrs) if arrs else np.zeros(0, dtype)

        values = {k: cat(lambda p: p["values"].get(k), np.nan, np.float64) for k in names}
        present = {k: cat(lambda p: p["present"].get(k), False, bool) for k in names}
        stepvals = {k: cat(lambda p: p["stepvals"].get(k, p["values"].get(k)), np.nan, np.float64)
                    for k in names if any(k in p["stepvals"] for p in self.parts)}
        step = cat(lambda p: p["step"], np.nan, np.float64)
        runs = [""] * len(self.run_index)
        for name, i in self.run_index.items():
            runs[i] = name
        return Frame(n, step, cat(lambda p: p["kind"], UNTYPED, np.int8), cat(lambda p: p["run"], 0, np.int64),
                     runs, values, present, stepvals, dict(self.keys))


class RowsColumn:
    """`column` for a list of dicts: the raw value of a key in each row."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def __call__(self, key: str, default: Any) -> list:
        try:
            return list(map(itemgetter(key), self.rows))
        except KeyError:
            return [d.get(key, default) for d in self.rows]


def signatures(rows: list[dict[str, Any]]) -> tuple[list[tuple[str, ...]], np.ndarray | None]:
    """The distinct key tuples of `rows` and each row's index into them (None: one tuple)."""
    uniq = list(dict.fromkeys(map(tuple, rows)))
    if len(uniq) <= 1:
        return (uniq or [()]), None
    tuples = list(map(tuple, rows))
    index = {s: i for i, s in enumerate(uniq)}
    return uniq, np.fromiter(map(index.__getitem__, tuples), np.int64, len(tuples))


def frame_from_records(recs: list, want: Callable[[str], bool], where: Iterable[tuple[str, str]] = (),
                       steplike: Callable[[str], bool] = lambda k: True) -> Frame:
    """A Frame from logformats.Record objects (the small formats: TRL, consoles, our runs)."""
    b = FrameBuilder(want, where, steplike)
    data = [r.data for r in recs]
    sigs, code = signatures(data)
    kinds = np.array([{"train": TRAIN, "val": VAL}.get(r.kind, UNTYPED) for r in recs], np.int8)
    b.add(len(recs), sigs, code, RowsColumn(data), kind=kinds, runs=[r.run for r in recs],
          step=[r.step for r in recs])
    return b.frame()


# ----------------------------------------------------------------------------- maps and pairing


def value_map(frame: Frame, rows: np.ndarray, keys: list[str],
              step: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """step -> value of `keys` over the rows selected by bool mask `rows`, in file order, last
    occurrence wins; a row counts when it has any of the keys and a step; its value is the mean
    of the keys when it has them all, else NaN. Returns (steps ascending int64, values,
    n_duplicates, n_missing)."""
    idx = np.flatnonzero(rows)
    pres = [frame.present[k][idx] if k in frame.present else np.zeros(len(idx), bool) for k in keys]
    anyp = np.logical_or.reduce(pres)
    allp = np.logical_and.reduce(pres)
    st = step[idx]
    ok = anyp & np.isfinite(st)
    st = np.rint(st[ok]).astype(np.int64)
    cols = [frame.values[k][idx][ok] if k in frame.values else np.full(int(ok.sum()), np.nan) for k in keys]
    # mean over the keys row by row, summed as np.mean sums one row (contiguous rows)
    v = cols[0].copy() if len(cols) == 1 else np.ascontiguousarray(np.stack(cols, axis=1)).mean(axis=1)
    v[~allp[ok]] = np.nan
    # last occurrence in file order wins
    rev_steps, first_in_rev = np.unique(st[::-1], return_index=True)
    vals = v[::-1][first_in_rev]
    dups = len(st) - len(rev_steps)
    return rev_steps, vals, int(dups), int(np.sum(~np.isfinite(vals)))


def pair_arrays(es: np.ndarray, ev: np.ndarray, ps: np.ndarray, pv: np.ndarray,
                rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """analysis/runs.py's `pair` on sorted unique step arrays: R (ps, pv) with H (es, ev,
    finite values only) by step, rule 'same' or 'next'. Returns (steps, H, R, counts)."""
    fin = np.isfinite(ev)
    es, ev = es[fin], ev[fin]
    pos = np.searchsorted(es, ps, side="left")
    same = (pos < len(es)) & (es[np.minimum(pos, max(len(es) - 1, 0))] == ps) if len(es) else np.zeros(len(ps), bool)
    counts = {"next": 0, "same": 0, "earlier": 0, "unpaired": 0}
    h_at = np.full(len(ps), -1, np.int64)
    if rule == "next":
        right = np.searchsorted(es, ps, side="right")
        nxt = right < len(es)
        h_at[nxt] = right[nxt]
        s_only = ~nxt & same
        h_at[s_only] = pos[s_only]
        earlier = ~nxt & ~same & (right > 0)
        h_at[earlier] = right[earlier] - 1
        counts.update(next=int(nxt.sum()), same=int(s_only.sum()), earlier=int(earlier.sum()))
    else:
        h_at[same] = pos[same]
        counts["same"] = int(same.sum())
    paired = h_at >= 0
    counts["unpaired"] = int((~paired).sum())
    return (ps[paired].astype(np.float64), ev[h_at[paired]].astype(np.float64),
            pv[paired].astype(np.float64), counts)

