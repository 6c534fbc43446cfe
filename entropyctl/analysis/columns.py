"""A run's metrics rows as columns: key -> (rounds, values) numpy arrays, built once per run.

compare reads every metric of every run several times (final values, curves, the law's
points, format shares); walking the row dicts each time made `compare` over 1,000 runs x 100
rounds take tens of seconds. `columns(rows)` does one pass per key and everything after it is
array arithmetic. The semantics are those of `runstore.store.series`: a column holds the rows
with a finite number (not a bool) under the key, x is the row's `round`.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import chain
from operator import itemgetter
from typing import Any, Iterator

import numpy as np

from entropyctl.runstore.glossary import DEFAULT_ENTROPY_KEY, DEFAULT_PERF_KEY

_NUM = (int, float)  # `type(v) in _NUM` leaves out bools, as `series` does
_PLAIN = {int, float, type(None)}
_EMPTY = (np.zeros(0), np.zeros(0))


class Cols(dict):
    """{key: (x, y)} with finite y only, each column built on first use (compare reads ~20 of a
    run's keys); iterating gives every key the rows have, in order of first appearance."""

    def __init__(self, rows: list[dict[str, Any]] | None = None):
        super().__init__()
        self._rows = rows or []
        counts = Counter(chain.from_iterable(self._rows))  # C-level: no Python loop per row
        self._keys = list(counts)
        self._key_set = set(self._keys)
        # keys every row has: read in one pass, one C call per row (operator.itemgetter)
        self._common = [k for k, c in counts.items() if c == len(self._rows)]
        self._matrix: dict[str, np.ndarray] | None = None
        self._round: np.ndarray | None = None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._key_set

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[key] if key in self else default

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self):  # type: ignore[override]
        return list(self._keys)

    def __missing__(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        if key not in self:
            raise KeyError(key)
        xy = self._build(key)
        self[key] = xy
        return xy

    def get_xy(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        return self[key] if key in self else _EMPTY

    def _rounds(self) -> np.ndarray:
        if self._round is None:
            self._round = self._column("round")
        return self._round

    def _column(self, key: str) -> np.ndarray:
        if key in self._common:
            if self._matrix is None:
                self._matrix = _common_matrix(self._rows, self._common)
            return self._matrix[key]
        return _floats([row.get(key) for row in self._rows])

    def _build(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        y = self._column(key)
        keep = np.isfinite(y)
        x = self._rounds()[keep]
        if not np.isfinite(x).all():  # a row without a round: its index among the kept ones
            x = np.where(np.isfinite(x), x, np.arange(x.size, dtype=np.float64))
        return x, y[keep]


def _common_matrix(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, np.ndarray]:
    """{key: float64 column} for keys every row has, from one tuple per row."""
    if not keys:
        return {}
    get = itemgetter(*keys)
    table = [get(row) for row in rows] if len(keys) > 1 else [(get(row),) for row in rows]
    if set(map(type, chain.from_iterable(table))) <= _PLAIN:
        mat = np.array(table, dtype=np.float64).reshape(len(rows), len(keys))
        return {k: mat[:, i] for i, k in enumerate(keys)}
    return {k: _floats([t[i] for t in table]) for i, k in enumerate(keys)}


def _floats(values: list[Any]) -> np.ndarray:
    """Numbers as float64, anything else (None, bool, text, lists) as NaN. The common case, only
    numbers and None, is converted in C; a column with other types goes value by value."""
    if set(map(type, values)) <= _PLAIN:
        return np.array(values, dtype=np.float64)
    nan = math.nan
    return np.fromiter((v if type(v) in _NUM else nan for v in values), np.float64, count=len(values))


def columns(rows: list[dict[str, Any]] | Cols) -> Cols:
    """The columns of `rows` (a Cols is returned as it is)."""
    return rows if isinstance(rows, Cols) else Cols(rows)


def last_by_round(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One value per round, the last logged one (a resumed run may repeat a round), sorted."""
    if x.size < 2 or (np.diff(x) > 0).all():
        return x, y
    rx, ry = x[::-1], y[::-1]
    ux, first = np.unique(rx, return_index=True)
    return ux, ry[first]


def law_points(cols: Cols, entropy_key: str = DEFAULT_ENTROPY_KEY,
               perf_key: str = DEFAULT_PERF_KEY) -> tuple[np.ndarray, np.ndarray]:
    """(H, R) for the law, as `analysis.runs.law_pairs` pairs them (spec §1.2): R of round r with
    the first H logged at a round after r; the last rounds fall back to the same round, then to
    the nearest earlier H. Vectorised with searchsorted; equal to law_pairs (tests check)."""
    ex, ey = last_by_round(*cols.get_xy(entropy_key))
    px, py = last_by_round(*cols.get_xy(perf_key))
    if ex.size == 0 or px.size == 0:
        return np.zeros(0), np.zeros(0)
    # i = how many H rounds are <= r: H[i] is the next one; past the last H, i - 1 is the same
    # round or the nearest earlier one, which is what the fallback picks.
    i = np.searchsorted(ex, px, side="right")
    idx = np.minimum(i, ex.size - 1)
    return ey[idx], py
