"""The one reader of the run store for analysis: `fit-law` and `compare` read our runs through
it, so they answer the same question about the same run the same way.

* A corrupted run (run.json, config.yaml or a metrics line that is not ours to repair) is
  skipped with a note naming it, in both commands; only when no run is left is it an error.
* `--by KEY` is a dotted config key (config.yaml), else a run.json key (`intervention`,
  `task`, `seed`); runs without it form the group "(unset)", and a key that no run has is an
  error, never one pooled group.
* The law's points (spec §1.2: "the entropy of the rollout policy paired with the eval score
  of the same checkpoint"). In a round r, entropy/* is measured on the rollouts, before round
  r's update; eval/* is measured after it. So eval/acc of round r is the accuracy of the policy
  whose entropy round r + 1 logs: `law_pairs` pairs R at r with the first H logged after r
  (`pair(..., "next")`). The last round has no later H and falls back to its own (counted in
  the pairing note). Never interpolated.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from entropyctl.errors import BadInput
from entropyctl.runstore import store as runstore
from entropyctl.runstore.glossary import DEFAULT_ENTROPY_KEY, DEFAULT_PERF_KEY

UNSET = "(unset)"


@dataclass
class RunRead:
    """One run as analysis sees it."""

    path: Path
    run: runstore.Run
    rows: list[dict[str, Any]]
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # e.g. a torn last metrics line dropped

    @property
    def task(self) -> str:
        task = self.run.info.get("task") or lookup(self.config, "task.name")
        return str(task) if task is not None else UNSET


def read_runs(paths: Iterable[Path]) -> tuple[list[RunRead], list[tuple[Path, str]]]:
    """Every run at or below `paths`, and (dir, reason) for each run skipped as corrupted."""
    out, skipped = [], []
    for d in runstore.iter_run_dirs(paths):
        try:
            run = runstore.load_run(d)
            mr = runstore.read_metrics(d / runstore.METRICS)
            config = run.config()
        except FileNotFoundError:
            skipped.append((d, f"{d}: no metrics.jsonl in the run directory"))
            continue
        except runstore.RunStoreError as e:
            skipped.append((d, str(e)))
            continue
        out.append(RunRead(d, run, mr.rows, config, list(mr.problems)))
    return out, skipped


def lookup(tree: dict[str, Any], dotted: str) -> Any:
    """tree['a']['b'] for 'a.b', or None when any part is missing."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def by_value(config: dict[str, Any], info: dict[str, Any], key: str) -> Any:
    """The `--by` value of a run: a config leaf, else the run.json entry (so `intervention`
    is the run's label, not the config's {name: parameters} node), dotted too
    (`numerics.cpu_kernels`); None when absent."""
    value = lookup(config, key)
    if value is None or (isinstance(value, dict) and key in info):
        value = info[key] if key in info else lookup(info, key)
    return value


def as_name(value: Any) -> str:
    """A --by value as a group name: YAML spelling for scalars, JSON for lists/dicts."""
    if value is None:
        return UNSET
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def check_by(values: list[Any], key: str) -> None:
    """An unknown --by key is an error, not one pooled group."""
    if values and all(v is None for v in values):
        raise BadInput(f"--by {key}: no run has this key (in config.yaml or run.json); give a dotted config "
                       "key such as optim.lr, or a run.json key such as intervention or task")


def pair(ent: dict[int, float], perf: dict[int, float],
         rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Pair R (perf) with H (ent, finite values only) by step; rule 'same' or 'next'.
    Returns (steps, H, R, counts); steps are R's steps, R may hold NaN (missing)."""
    ent = {s: v for s, v in ent.items() if math.isfinite(v)}
    es = sorted(ent)
    counts = {"next": 0, "same": 0, "earlier": 0, "unpaired": 0}
    steps, H, R = [], [], []
    for s in sorted(perf):
        h_step = None
        if rule == "next":
            i = bisect.bisect_right(es, s)
            if i < len(es):
                h_step, how = es[i], "next"
            elif s in ent:
                h_step, how = s, "same"
            elif i > 0:
                h_step, how = es[i - 1], "earlier"
        elif s in ent:
            h_step, how = s, "same"
        if h_step is None:
            counts["unpaired"] += 1
            continue
        counts[how] += 1
        steps.append(s)
        H.append(ent[h_step])
        R.append(perf[s])
    return np.asarray(steps, dtype=np.float64), np.asarray(H), np.asarray(R, dtype=np.float64), counts


def by_round(rows: list[dict[str, Any]], key: str) -> dict[int, float]:
    """round -> value of `key` (NaN when not a finite number), last occurrence wins."""
    out = {}
    for row in rows:
        r, v = row.get("round"), row.get(key)
        if isinstance(r, int) and not isinstance(r, bool) and key in row:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            out[r] = float(v) if ok else math.nan
    return out


def law_pairs(rows: list[dict[str, Any]], entropy_key: str = DEFAULT_ENTROPY_KEY,
              perf_key: str = DEFAULT_PERF_KEY) -> tuple[np.ndarray, np.ndarray]:
    """(H, R) of one run for the law: R of round r with H of the next round (module docstring)."""
    _, H, R, _ = pair(by_round(rows, entropy_key), by_round(rows, perf_key), "next")
    keep = np.isfinite(R)
    return H[keep], R[keep]


NUMERICS_KEYS = ("torch", "transformers", "cpu_kernels", "threads", "device", "dtype")


def numerics_notes(groups: list[str], numerics: list[dict | None], by: str | None = None) -> list[str]:
    """One note per run.json `numerics` key whose value differs between runs (runs from before
    it was recorded are left out): the same seed and config give other last bits there, then
    another sample path, so seeds are replicates but not reruns, and a torch or transformers
    change may be more than rounding. Says whether it splits a group or lies between groups
    (not for the key the groups are made --by)."""
    notes = []
    for key in NUMERICS_KEYS:
        if by == f"numerics.{key}":
            continue
        by_group: dict[str, set[str]] = {}
        for g, n in zip(groups, numerics):
            if isinstance(n, dict) and key in n:
                by_group.setdefault(g, set()).add(as_name(n[key]))
        values = sorted(set().union(*by_group.values()))
        if len(values) < 2:
            continue
        mixed = sorted(g for g, vs in by_group.items() if len(vs) > 1)
        if mixed:
            notes.append(f"group(s) {', '.join(mixed)} pool runs with numerics.{key} = {' / '.join(values)}: the same "
                         f"seed gives other numbers there; --by numerics.{key} splits them")
        else:
            per = "; ".join(f"{g}: {next(iter(vs))}" for g, vs in sorted(by_group.items()))
            notes.append(f"the groups ran with different numerics.{key} ({per}): a difference between them "
                         "may come from that as well as from what they compare")
    return notes
