"""runstore.json_safe: the one strict-JSON sanitiser that metrics, fit.json and compare.json use."""

import json
import math

import numpy as np

from entropyctl.runstore.store import json_safe


def test_non_finite_become_null_and_numpy_scalars_plain_numbers():
    out = json_safe({"a": float("nan"), "b": np.float32("inf"), "c": np.int64(3), "d": np.float64(0.5),
                     "e": (1, math.nan), "f": True, "g": "x"})
    assert out == {"a": None, "b": None, "c": 3, "d": 0.5, "e": [1, None], "f": True, "g": "x"}
    assert type(out["c"]) is int and type(out["d"]) is float and out["f"] is True
    json.dumps(out, allow_nan=False)  # strict JSON
