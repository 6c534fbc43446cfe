"""compare on anyone's logs: the runs `fit-law` imports (TRL trainer_state.json, verl JSONL and
console logs, wandb CSV exports, generic CSV/JSONL; analysis/logimport.py `load_series`, used
as it is) as compare's RunInput, and `--group-by` to put them (and our runs) into groups.

A log gives what fit-law reads from it: the entropy series H and the performance series R the
alias tables pick (shared/spec/log-formats.md). They become our keys: H -> entropy/seqmean, a
train reward -> reward/mean, a validation score -> eval/acc; the law's points are the
importer's own pairs (validation R with the next step's H, as fit-law fits them). Metrics a
log does not have (formats, probes, KL) are absent, never zeros. Each run keeps its provenance
(`RunInput.source`: format, file, which key became which).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from entropyctl.analysis.logimport import ImportOptions, Series, load_series
from entropyctl.analysis.perrun import IMPORTED, RunInput
from entropyctl.errors import BadInput
from entropyctl.runstore.glossary import DEFAULT_ENTROPY_KEY, DEFAULT_PERF_KEY

FORMAT_LABELS = {
    "trl": "TRL trainer_state.json", "trl-console": "TRL console log", "verl": "verl JSONL log",
    "verl-console": "verl console log", "wandb-csv": "wandb CSV export", "csv": "CSV log", "jsonl": "JSONL log",
}
TRAIN_REWARD_KEY = "reward/mean"
MAPPING_SUFFIXES = (".json", ".yaml", ".yml")
_SEED = re.compile(r"seed[-_=]?(\d+)", re.IGNORECASE)


def run_name(s: Series) -> str:
    """The name --group-by REGEX matches: a run named inside the log (a wandb CSV column, a
    `run` field), else the file name; a TRL trainer_state.json is named by its output dir."""
    src = Path(s.source.split(",")[0])
    run = s.meta.get("run") or ""
    if run and run != src.stem:
        return run
    if src.name == "trainer_state.json":
        d = src.parent.parent if src.parent.name.startswith("checkpoint-") else src.parent
        return d.name
    return src.name


def _is_val(s: Series) -> bool:
    return s.pairing.startswith("val")


def to_runs(series: list[Series]) -> list[RunInput]:
    """One RunInput per (file, run) of the imported series."""
    by_run: dict[tuple[str, str], list[Series]] = {}
    for s in series:
        by_run.setdefault((s.source, run_name(s)), []).append(s)
    return [_to_run(source, name, ss) for (source, name), ss in by_run.items()]


def _to_run(source: str, name: str, ss: list[Series]) -> RunInput:
    ok = [s for s in ss if s.error is None and len(s.steps)]
    train = next((s for s in ok if not _is_val(s)), None)
    val = next((s for s in ok if _is_val(s)), None)
    by_step: dict[int, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    if train is not None:
        keys[DEFAULT_ENTROPY_KEY], keys[TRAIN_REWARD_KEY] = train.entropy_key, train.perf_key
        for step, h, r in zip(train.steps.tolist(), train.H.tolist(), train.R.tolist()):
            by_step.setdefault(int(step), {"round": int(step)}).update({DEFAULT_ENTROPY_KEY: h, TRAIN_REWARD_KEY: r})
    if val is not None:
        keys[DEFAULT_PERF_KEY] = val.perf_key
        keys.setdefault(DEFAULT_ENTROPY_KEY, val.entropy_key)
        for step, r in zip(val.steps.tolist(), val.R.tolist()):
            by_step.setdefault(int(step), {"round": int(step)})[DEFAULT_PERF_KEY] = r
    law_from = val or train
    errors = [s.error for s in ss if s.error]
    fmt = ss[0].format
    seed = _SEED.search(name)
    return RunInput(
        id=name, group=name, status=IMPORTED, seed=int(seed.group(1)) if seed else None,
        rows=[by_step[k] for k in sorted(by_step)], path=source,
        error=None if ok else "; ".join(dict.fromkeys(errors)) or "no series",
        source={"format": FORMAT_LABELS.get(fmt, fmt), "path": source, "keys": keys,
                "law": f"{law_from.perf_key} vs {law_from.entropy_key} ({law_from.pairing})" if law_from else None,
                "warnings": list(dict.fromkeys(w for s in ss for w in s.warnings))},
        law=(np.asarray(law_from.H, dtype=np.float64), np.asarray(law_from.R, dtype=np.float64)) if law_from else None,
    )


def load_foreign(paths: list[Path], opts: ImportOptions) -> list[RunInput]:
    """Every run in the log files (or TRL output dirs) `paths`; LogImportError (one line) for a
    file that cannot be read at all."""
    return to_runs(load_series(list(paths), opts)) if paths else []


# ----------------------------------------------------------------------------- --group-by


def is_mapping(spec: str) -> bool:
    return spec.lower().endswith(MAPPING_SUFFIXES)


def group_by(runs: list[RunInput], spec: str) -> None:
    """Set each run's group from `spec`: a mapping file (JSON/YAML {path: group}) or a regex on
    the run's name (its id: a log's `run_name`, our run dir's name; first capture group = group). A run that matches nothing
    is an error naming it, as are a regex without a group and a mapping naming a missing path."""
    if is_mapping(spec):
        assign = _mapping(Path(spec))
        where = f"--group-by {spec}"
        for r in runs:
            r.group = assign(Path(r.path)) or ""
    else:
        try:
            pattern = re.compile(spec)
        except re.error as e:
            raise BadInput(f"--group-by {spec!r}: not a regular expression ({e}); give e.g. '(.*)-seed\\d+' "
                           "or a mapping file FILE.json|.yaml") from None
        if pattern.groups < 1:
            raise BadInput(f"--group-by {spec!r} has no capture group: the first group names the run's group, "
                           "e.g. '(.*)-seed\\d+'")
        where = f"--group-by {spec!r}"
        for r in runs:
            m = pattern.search(r.id)
            r.group = (m.group(1) or "") if m else ""
    missing = [r.id for r in runs if not r.group]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BadInput(f"{where}: {len(missing)} run(s) match no group: {shown}; "
                       + ("add them to the mapping file" if is_mapping(spec) else "widen the regex or drop those paths"))


def _mapping(path: Path):
    """{path: group} from FILE.json|.yaml (relative paths are relative to the file's folder);
    returns run path -> group of the deepest mapped path at or above it, or None."""
    if not path.is_file():
        raise BadInput(f"--group-by {path}: no such mapping file; give FILE.json|.yaml mapping paths to groups")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BadInput(f"--group-by {path}: not JSON or YAML ({e.__class__.__name__}); "
                       "give an object mapping paths to group names") from None
    if not isinstance(data, dict) or not data or not all(isinstance(v, (str, int, float)) for v in data.values()):
        raise BadInput(f"--group-by {path}: expected an object mapping paths to group names, "
                       'e.g. {"logs/a-seed1.jsonl": "a"}')
    table: dict[Path, str] = {}
    for key, group in data.items():
        p = Path(str(key)).expanduser()
        p = (p if p.is_absolute() else path.parent / p).resolve()
        if not p.exists():
            raise BadInput(f"--group-by {path}: it names {key}, which does not exist (paths are relative to "
                           f"{path.parent}); fix the path or drop the entry")
        table[p] = str(group)

    def assign(run_path: Path) -> str | None:
        run_path = run_path.resolve()
        for p in (run_path, *run_path.parents):
            if p in table:
                return table[p]
        return None

    return assign
