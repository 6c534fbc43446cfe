"""A run's own saturation-law fit as flat `law/*` numbers, for the wandb run's summary at the end
of a run (runstore/wandb_mirror.py): the same points and fit as `entropyctl fit-law RUN` with its
defaults (analysis/runs.py `law_pairs`, analysis/fitlaw.py `fit_law`). A run the law cannot fit
(too few rounds, entropy that never moved) gets `law/note` saying why, and no numbers.
"""

from __future__ import annotations

import math
from typing import Any

from entropyctl.analysis.fitlaw import fit_law
from entropyctl.analysis.runs import law_pairs
from entropyctl.runstore.glossary import DEFAULT_ENTROPY_KEY, DEFAULT_PERF_KEY


def law_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{'law/a', 'law/b', 'law/ceiling', 'law/r2', 'law/rmse', 'law/n', '<name>_ci_low/high', 'law/x'...}
    for R = -a*exp(H) + b fitted on `rows` (metrics.jsonl), or {'law/note': why not}."""
    H, R = law_pairs(rows)
    fit = fit_law(H, R)
    keys = {"law/entropy_key": DEFAULT_ENTROPY_KEY, "law/perf_key": DEFAULT_PERF_KEY}
    if not fit.ok:
        return {**keys, "law/n": fit.n, "law/note": f"not fitted: {fit.error}"}
    out: dict[str, Any] = {**keys, "law/n": fit.n, "law/a": fit.a, "law/b": fit.b, "law/ceiling": fit.ceiling,
                           "law/r2": fit.r2, "law/rmse": fit.rmse, "law/level": fit.level}
    for name in ("a", "b", "ceiling"):
        low, high = getattr(fit, f"{name}_ci")
        if math.isfinite(low) and math.isfinite(high):
            out[f"law/{name}_ci_low"], out[f"law/{name}_ci_high"] = low, high
    return out
