"""A run's metrics rows as columns: key -> (rounds, values) numpy arrays, built once per run.

compare reads every metric of every run several times (final values, curves, the law's
points, format shares); walking the row dicts each time made `compare` over 1,000 runs x 100
rounds take tens of seconds. `columns(rows)` does one pass per key and everything after it is
array arithmetic. The semantics are those of `runstore.store.series`: a column holds the rows
with a finite number (not a bool) under the key, x is the row's `round`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from entropyctl.runstore.glossary import DEFAULT_ENTROPY_KEY, DEFAULT_PERF_KEY

_NUM = (int, float)  # `type(v) in _NUM` leaves out bools, as `series` does
_EMPTY = (np.zeros(0), np.zeros(0))


class Cols(dict):
    """{key: (x, y)} with finite y only; `get_xy` gives empty arrays for an absent key."""

    def get_xy(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        return self.get(key, _EMPTY)


def columns(rows: list[dict[str, Any]] | Cols) -> Cols:
    """The columns of `rows` (a Cols is returned as it is)."""
    if isinstance(rows, Cols):
        return rows
    out = Cols()
    n = len(rows)
    if n == 0:
        return out
    keys = dict.fromkeys(k for row in rows for k in row)
    nan = math.nan
    rnd = np.fromiter((r if type(r) in _NUM else nan for r in (row.get("round") for row in rows)),
                      np.float64, count=n)
    for key in keys:
        y = np.fromiter((v if type(v) in _NUM else nan for v in (row.get(key) for row in rows)),
                        np.float64, count=n)
        keep = np.isfinite(y)
        if not keep.any():
            continue
        x = rnd[keep]
        if not np.isfinite(x).all():  # a row without a round: its index among the kept ones
            x = np.where(np.isfinite(x), x, np.arange(x.size, dtype=np.float64))
        out[key] = (x, y[keep])
    return out


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
