"""Read (step, entropy H, performance R) series out of training logs for `entropyctl fit-law`.

Formats (spec: shared/spec/log-formats.md; `--format` forces one, else auto-detected):
  run           entropyctl run dirs and sweep dirs (recursive; docs/run-store.md)
  trl           TRL/HF trainer_state.json (`log_history`), or an output dir with checkpoint-N/
  trl-console   the dicts the HF progress callback prints (step = index x --logging-steps)
  verl          verl file-logger JSONL: {"step": N, "data": {...}}
  verl-console  verl console lines: step:N - key:value - ...
  wandb-csv     W&B panel CSV exports (Step, "<run> - <metric>"); several files join on step
  csv, jsonl    generic tables (flat or nested JSON; typed records via split/mode/phase/type/kind)

Every reader turns a file into records (step, flat dict, kind train|val, run name); one
builder then picks keys (alias tables, first match wins, equal-rank ties stop with an error),
de-duplicates restarted steps (last occurrence wins) and pairs R with H:
  same step       train reward and H logged together;
  val -> next     validation R at step s was measured *after* step s's update, so it pairs
                  with the first H logged at a step > s (fallback: same step, then the nearest
                  earlier one, counted). Never interpolated.
Input files are opened read-only. Problems with a whole file raise LogImportError (one line,
naming the file and what was expected); problems with one series go into Series.error.
"""

from __future__ import annotations

import ast
import bisect
import csv
import fnmatch
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from entropyctl import runstore
from entropyctl.metrics_keys import DEFAULT_ENTROPY_KEY, DEFAULT_PERF_KEY

FORMATS = ("auto", "run", "trl", "trl-console", "verl", "verl-console", "wandb-csv", "csv", "jsonl")
VAL_KINDS = {"val", "eval", "validation", "test"}
DISCRIMINATORS = ("split", "mode", "phase", "type", "kind")

# Alias tables (log-formats.md §0), first match wins. A `re:` entry is a pattern: when it
# matches several keys they are of equal rank and the user must choose (--perf/--entropy).
ENTROPY_ALIASES = (
    "actor/entropy", "entropy", "train/entropy", "actor/entropy_loss", "train_entropy/all",
    "entropy_loss", "train/entropy_loss", "policy/entropy_avg", "token_entropy",
    "avg_token_entropy", "train/token_entropy", DEFAULT_ENTROPY_KEY,
)
TRAIN_REWARD_ALIASES = (
    "critic/score/mean", "reward", "train/reward", r"re:rewards/[^/]+/mean", r"re:reward/[^/]+",
    "rollout/reward_mean", "train/rollout/reward_mean", "critic/rewards/mean",
    "train_reward", "mean_reward", "accuracy",
)
VAL_REWARD_ALIASES = (
    r"re:val-core/.+/acc/mean@\d+", r"re:val-core/.+/reward/mean@\d+", r"re:val/test_score/.+",
    "eval_reward", "eval/reward", r"re:eval_rewards/[^/]+/mean", r"re:eval_.+_pass1",
    r"re:eval/eval_.+_pass1", "val/reward_score", DEFAULT_PERF_KEY,
)
STEP_ALIASES = ("step", "training/global_step", "train/global_step", "_step", "global_step",
                "global_step/max_steps", "Step", "round")
NOT_ENTROPY = {"objective/entropy": "a sequence sum of -log p (TRL PPO/RLOO), not a per-token entropy",
               "entropy_coef": "a coefficient, not an entropy", "policy_loss": "a loss, not an entropy"}
KEY_WARNINGS = {
    "actor/entropy": "C1: verl actor/entropy is the pre-update policy's entropy unless the run set "
                     "calculate_entropy=True or entropy_coeff != 0 (then measured during the update); "
                     "wrong in verl <= 0.4.0 with use_dynamic_bsz=True",
    "actor/entropy_loss": "C2: actor/entropy_loss is an entropy despite its name; in EasyR1 it is the "
                          "Monte-Carlo -log p of sampled tokens, not the exact entropy",
    "entropy_loss": "C3: OpenRLHF entropy_loss before PR #1319 used unscaled logits (wrong when temperature != 1)",
    "critic/rewards/mean": "verl critic/rewards/mean includes the in-reward KL penalty (critic/score/mean is absent)",
}


class LogImportError(ValueError):
    """A file (or the options) cannot be read; the message is one line for the user."""


@dataclass
class Record:
    step: int | None
    data: dict[str, Any]
    kind: str = ""  # "train", "val" or "" (untyped)
    run: str = ""


@dataclass
class Series:
    source: str
    name: str
    format: str
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    H: np.ndarray = field(default_factory=lambda: np.zeros(0))
    R: np.ndarray = field(default_factory=lambda: np.zeros(0))
    entropy_key: str = ""
    perf_key: str = ""
    pairing: str = ""
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # run.json + config (ours) for --by
    run_dir: Path | None = None  # set for entropyctl runs: fit.json goes here
    error: str | None = None


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


def _kind(data: dict[str, Any]) -> str:
    for d in DISCRIMINATORS:
        v = str(data.get(d, "")).lower()
        if v in VAL_KINDS:
            return "val"
        if v == "train":
            return "train"
    return ""


# ----------------------------------------------------------------------------- files


def _read_text(path: Path, expected: str) -> str:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise LogImportError(f"cannot read {path}: it is a directory; expected {expected}") from None
    except OSError as e:
        raise LogImportError(f"cannot read {path}: {e.strerror or e}") from None
    if not raw.strip():
        raise LogImportError(f"cannot read {path}: the file is empty; expected {expected}")
    if b"\0" in raw[:4096]:
        raise LogImportError(f"cannot read {path}: binary file; expected {expected}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _json_lines(path: Path, text: str, expected: str) -> tuple[list[dict[str, Any]], list[str]]:
    """JSON objects, one a line; malformed lines are skipped and counted, a torn last line
    (no newline: a crash mid-write) dropped. Python's json reads NaN/Infinity tokens."""
    rows, bad, torn = [], 0, False
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            rows.append(obj)
        elif i == len(lines) - 1:
            torn = True
        else:
            bad += 1
    if not rows:
        raise LogImportError(f"cannot read {path}: no JSON object lines; expected {expected}")
    notes = [f"skipped {bad} malformed line(s)"] if bad else []
    if torn:
        notes.append("dropped a truncated last line")
    return rows, notes


def detect_format(path: Path) -> str:
    """The format of `path` from its name and first bytes; LogImportError if none fits."""
    if path.is_dir():
        if runstore.is_run_dir(path) or any(runstore.iter_run_dirs([path])):
            return "run"
        if _trl_state_file(path):
            return "trl"
        raise LogImportError(f"cannot read {path}: no run.json (entropyctl run or sweep) or "
                             "trainer_state.json (TRL) below it")
    if path.name == runstore.METRICS and runstore.is_run_dir(path.parent):
        return "run"
    expected = "a log in one of: " + ", ".join(FORMATS[1:])
    text = _read_text(path, expected)
    head = text.lstrip()[:20000]
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
    if path.suffix.lower() in (".csv", ".tsv") or ("," in first and not first.startswith("{")):
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
    text = _read_text(path, expected)
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
    if not opts.logging_steps:
        raise LogImportError(f"cannot read {path}: TRL console output has no step numbers; "
                             "pass --logging-steps N (the run's logging_steps)")
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
            recs.append(Record(i * opts.logging_steps if i else 0, d, "val"))
        else:
            i += 1
            recs.append(Record(i * opts.logging_steps, d, "train"))
    if not recs:
        raise LogImportError(f"cannot read {path}: no printed metric dicts like {{'loss': ..., 'entropy': ...}}")
    notes = [f"skipped {bad} malformed dict(s)"] if bad else []
    return recs, notes + ["step = index x --logging-steps (console output has no steps)",
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


def read_csv_table(path: Path, text: str, wandb: bool) -> tuple[list[Record], list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2 or not rows[0]:
        raise LogImportError(f"cannot read {path}: a CSV needs a header row and data rows")
    header = [h.strip() for h in rows[0]]
    recs, short = [], 0
    for row in rows[1:]:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            short += 1
            row = (row + [""] * len(header))[: len(header)]
        cells = dict(zip(header, row))
        if not wandb:
            run = "/".join(f"{c}={cells[c]}" for c in ("run", "seed") if cells.get(c, "").strip())
            recs.append(Record(None, cells, _kind(cells), run))
            continue
        by_run: dict[str, dict[str, Any]] = {}
        for h in header[1:]:
            if h.endswith(("__MIN", "__MAX")) or cells[h].strip() == "":
                continue
            run, metric = h.rsplit(" - ", 1) if " - " in h else (path.stem, h)
            by_run.setdefault(run, {})[metric] = cells[h]
        step = to_step(cells[header[0]])
        recs.extend(Record(step, d, "", run) for run, d in by_run.items())
    notes = [f"{short} row(s) had the wrong number of cells"] if short else []
    if wandb:
        notes.append("W&B panel exports may be down-sampled; for full history use the API "
                     "(scan_history) or an offline run directory")
    return recs, notes


def read_run(path: Path) -> list[tuple[Path, runstore.Run | None, list[Record], list[str], str | None]]:
    """Each run below `path`: (dir, Run, records, notes, error). A corrupted run becomes an
    error for its series only, so one bad run does not hide a sweep."""
    if path.is_file():
        path = path.parent
    out = []
    for d in runstore.iter_run_dirs([path]):
        try:
            run = runstore.load_run(d)
            mr = runstore.read_metrics(d / runstore.METRICS)
        except FileNotFoundError:
            out.append((d, None, [], [], "no metrics.jsonl in the run directory"))
            continue
        except runstore.RunStoreError as e:
            out.append((d, None, [], [], str(e)))
            continue
        recs = [Record(None, row, "", run.id) for row in mr.rows]
        out.append((d, run, recs, list(mr.problems), None))
    return out


# ----------------------------------------------------------------------------- keys and pairing


def _match(alias: str, keys: Iterable[str]) -> list[str]:
    if alias.startswith("re:"):
        pat = re.compile(alias[3:])
        return sorted(k for k in keys if pat.fullmatch(k))
    return [alias] if alias in keys else []


def choose_key(aliases: Iterable[str], keys: set[str], what: str, flag: str, source: str) -> str | None:
    """First alias present in `keys`; equal-rank ties stop with a one-line error."""
    for alias in aliases:
        found = _match(alias, keys)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            shown = ", ".join(found[:6]) + (" ..." if len(found) > 6 else "")
            glob = re.sub(r"^val-core/.+/(acc|reward)/", r"val-core/*/\1/", found[0])
            avg = f", or a glob such as '{glob}' to average them" if glob != found[0] else ""
            raise LogImportError(f"{source}: several {what} keys of equal rank ({shown}); "
                                 f"choose one with {flag} KEY{avg}")
    return None


def _value_map(recs: list[Record], keys: list[str], step_key: str | None) -> tuple[dict[int, float], int, int]:
    """step -> value of `keys` (averaged when a glob gave several) in file order, last
    occurrence wins. Returns (map, n_duplicates, n_missing) where missing values are NaN."""
    out: dict[int, float] = {}
    dups = 0
    for r in recs:
        present = [k for k in keys if k in r.data]
        if not present:
            continue
        step = r.step if step_key is None else to_step(r.data.get(step_key))
        if step is None:
            continue
        vals = [to_float(r.data[k]) for k in present]
        v = float(np.mean(vals)) if len(present) == len(keys) else math.nan
        if step in out:
            dups += 1
        out[step] = v
    missing = sum(1 for v in out.values() if not math.isfinite(v))
    return out, dups, missing


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


def _is_val_key(key: str) -> bool:
    return bool(re.match(r"(eval|val|test)[-_/]", key)) or any(_match(a, [key]) for a in VAL_REWARD_ALIASES)


def build_series(recs: list[Record], *, source: str, fmt: str, opts: ImportOptions, notes: list[str],
                 entropy_default: str | None = None, perf_default: str | None = None,
                 step_default: str | None = None) -> list[Series]:
    """Series (one per run and perf key) from records; see the module docstring for the rules."""
    for k, v in opts.where:
        recs = [r for r in recs if str(r.data.get(k, "")) == v]
    if not recs:
        raise LogImportError(f"{source}: no records" + (" match --where" if opts.where else ""))
    step_key = None
    if any(r.step is None for r in recs):
        keys = set().union(*(r.data for r in recs))
        step_key = opts.step_key or step_default or choose_key(STEP_ALIASES, keys, "step", "--step", source)
        if step_key is None:
            ends = sorted(k for k in keys if k.lower().endswith("step"))
            if len(ends) > 1:
                raise LogImportError(f"{source}: several step columns ({', '.join(ends)}); choose one with --step KEY")
            step_key = ends[0] if ends else None
        if step_key is None:
            raise LogImportError(f"{source}: no step column (looked for {', '.join(STEP_ALIASES)}); pass --step KEY")
    runs: dict[str, list[Record]] = {}
    for r in recs:
        runs.setdefault(r.run, []).append(r)
    out = []
    for run, rrecs in runs.items():
        out.extend(_build_run(rrecs, run, source, fmt, opts, notes, step_key, entropy_default, perf_default))
    return out


def _build_run(recs: list[Record], run: str, source: str, fmt: str, opts: ImportOptions, notes: list[str],
               step_key: str | None, entropy_default: str | None, perf_default: str | None) -> list[Series]:
    base = run or Path(source).stem
    train_recs = [r for r in recs if r.kind != "val"]
    val_recs = [r for r in recs if r.kind == "val"]
    train_keys = set().union(*(r.data for r in train_recs)) if train_recs else set()
    all_keys = set().union(*(r.data for r in recs))
    if opts.entropy_key and (opts.entropy_key in NOT_ENTROPY or "clip" in opts.entropy_key):
        k = opts.entropy_key
        raise LogImportError(f"--entropy {k}: {NOT_ENTROPY.get(k, 'a clipping statistic, not an entropy')}; "
                             "H must be a per-token entropy in nats")
    ekey = opts.entropy_key or entropy_default or choose_key(ENTROPY_ALIASES, train_keys, "entropy", "--entropy", source)
    warn = list(notes)
    if ekey is None or ekey not in train_keys:
        looked = ekey or ", ".join(a for a in ENTROPY_ALIASES)
        hint = " (TRL < 0.20 logs no entropy: upgrade TRL)" if fmt.startswith("trl") else ""
        return [Series(source, base, fmt, error=f"no entropy values (looked for {looked}){hint}; "
                       "pass --entropy KEY")]
    if ekey in KEY_WARNINGS:
        warn.append(KEY_WARNINGS[ekey])
    ent, edups, emiss = _value_map(train_recs, [ekey], step_key)
    if edups:
        warn.append(f"dropped {edups} duplicate entropy step(s) (restarted run?): kept the last")
    # (name, perf keys, records, rule)
    specs: list[tuple[str, str, list[str], list[Record], str]] = []
    user_perf = opts.perf_key or perf_default
    if user_perf:
        pk = sorted(k for k in all_keys if fnmatch.fnmatchcase(k, user_perf)) if any(
            c in user_perf for c in "*?[") else [user_perf]
        if not pk or not set(pk) <= all_keys:
            return [Series(source, base, fmt, entropy_key=ekey,
                           error=f"no {user_perf} values (keys include: {_some(all_keys)}); pass --perf KEY")]
        in_val = any(k in r.data for r in val_recs for k in pk)
        in_train = any(k in r.data for r in train_recs for k in pk)
        if in_val and in_train:
            specs += [("train", user_perf, pk, train_recs, "same"), ("val", user_perf, pk, val_recs, "next")]
        else:
            rule = "next" if in_val or _is_val_key(pk[0]) else "same"
            specs.append(("", user_perf, pk, recs, rule))
    else:
        tkey = choose_key(TRAIN_REWARD_ALIASES, train_keys, "train reward", "--perf", source)
        vkey = choose_key(VAL_REWARD_ALIASES, all_keys, "validation reward", "--perf", source)
        if tkey:
            specs.append(("train", tkey, [tkey], train_recs, "same"))
            if any(tkey in r.data for r in val_recs):  # typed records: the same key for val
                specs.append(("val", tkey, [tkey], val_recs, "next"))
        if vkey and vkey != tkey:
            specs.append(("val", vkey, [vkey], recs, "next"))
        if not specs:
            return [Series(source, base, fmt, entropy_key=ekey,
                           error=f"no reward/performance key (keys include: {_some(all_keys)}); pass --perf KEY")]
    out = []
    for split, pname, pkeys, precs, rule in specs:
        rule = rule if opts.pairing == "auto" else opts.pairing
        perf, pdups, pmiss = _value_map(precs, pkeys, step_key)
        steps, H, R, counts = pair(ent, perf, rule)
        w = list(warn)
        if pname in KEY_WARNINGS:
            w.append(KEY_WARNINGS[pname])
        if pdups:
            w.append(f"dropped {pdups} duplicate {pname} step(s) (restarted run?): kept the last")
        if counts["unpaired"]:
            w.append(f"{counts['unpaired']} {pname} step(s) had no entropy to pair with")
        if rule == "next":
            pairing = "val: R at step s with H of the next logged step"
            fb = [f"{counts[k]} {k}" for k in ("same", "earlier") if counts[k]]
            if fb:
                pairing += f" (fallback: {', '.join(fb)} step)"
        else:
            pairing = "same step"
        # our runs keep the run id as the name unless one run gives two series
        name = f"{base} {split}" if split and (fmt != "run" or len(specs) > 1) else base
        s = Series(source, name, fmt, steps, H, R, ekey, pname, pairing, w, {"run": base, "split": split or "",
                   "format": fmt, "source": source})
        if len(perf) and pmiss == len(perf):
            s.error = f"all {pmiss} values of {pname} are NaN/null: nothing to fit (check the run for divergence)"
        elif len(ent) and emiss == len(ent):
            s.error = f"all {emiss} values of {ekey} are NaN/null: nothing to fit (check the run for divergence)"
        out.append(s)
    return out


def _some(keys: Iterable[str], n: int = 8) -> str:
    ks = sorted(keys)
    return ", ".join(ks[:n]) + (" ..." if len(ks) > n else "") if ks else "none"


# ----------------------------------------------------------------------------- entry point


def _run_series(path: Path, opts: ImportOptions) -> list[Series]:
    out = []
    for d, run, recs, notes, err in read_run(path):
        name = run.id if run else d.name
        if err is None and not recs:
            err = "metrics.jsonl is empty (the run logged no rounds)"
        built: list[Series] = []
        if err is None:
            try:
                built = build_series(recs, source=str(d), fmt="run", opts=opts, notes=notes,
                                     entropy_default=DEFAULT_ENTROPY_KEY, perf_default=DEFAULT_PERF_KEY,
                                     step_default="round")
            except LogImportError as e:  # one run's problem: the rest of the sweep still fits
                err = str(e)
        if err is not None:
            out.append(Series(str(d), name, "run", error=err, run_dir=d))
            continue
        cfg_problem = None
        try:
            meta = {**flatten(run.config(), sep="."), **run.info}
        except runstore.RunStoreError as e:
            meta, cfg_problem = dict(run.info), str(e)
        for s in built:
            s.meta.update(meta)
            s.warnings += [cfg_problem] if cfg_problem else []
            s.run_dir = d
            out.append(s)
    if not out:
        raise LogImportError(f"cannot read {path}: no entropyctl runs (run.json) below it")
    return out


def load_series(paths: list[Path], opts: ImportOptions) -> list[Series]:
    """Every series in `paths` (files or directories). Raises LogImportError for a path
    that cannot be read at all; W&B CSV files are joined on step, per run."""
    if opts.fmt not in FORMATS:
        raise LogImportError(f"--format {opts.fmt}: expected one of {', '.join(FORMATS)}")
    out: list[Series] = []
    wandb: list[tuple[Path, str]] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise LogImportError(f"cannot read {path}: no such file or directory")
        fmt = detect_format(path) if opts.fmt == "auto" else opts.fmt
        if fmt == "run":
            out.extend(_run_series(path, opts))
            continue
        if fmt == "trl":
            recs, notes = read_trl(path, opts)
        else:
            text = _read_text(path, f"a {fmt} log")
            if fmt == "wandb-csv":
                wandb.append((path, text))
                continue
            if fmt == "trl-console":
                recs, notes = read_trl_console(path, text, opts)
            elif fmt == "verl-console":
                recs, notes = read_verl_console(path, text)
            elif fmt == "csv":
                recs, notes = read_csv_table(path, text, wandb=False)
            else:  # verl, jsonl
                rows, notes = _json_lines(path, text, f"{fmt} lines (one JSON object per line)")
                if fmt == "verl":
                    bad = [r for r in rows if not isinstance(r.get("data"), dict)]
                    if bad:
                        notes.append(f"skipped {len(bad)} line(s) without a 'data' object")
                    recs = [Record(to_step(r.get("step")), r["data"]) for r in rows if isinstance(r.get("data"), dict)]
                    if any(k in r.data for r in recs for k in ("train/num_gen_batches",)):
                        notes.append("C4: DAPO dynamic sampling: critic/score/mean is measured on kept groups "
                                     "only (biased towards 0.5); prefer val-core/* with --perf")
                else:
                    recs = []
                    for r in rows:
                        flat = flatten(r)
                        recs.append(Record(None, flat, _kind(flat), str(flat.get("run", ""))))
        out.extend(build_series(recs, source=str(path), fmt=fmt, opts=opts, notes=notes))
    if wandb:
        recs, notes = [], []
        for path, text in wandb:
            r, n = read_csv_table(path, text, wandb=True)
            recs += r
            notes = n
        source = str(wandb[0][0]) if len(wandb) == 1 else ",".join(str(p) for p, _ in wandb)
        out.extend(build_series(recs, source=source, fmt="wandb-csv", opts=opts, notes=notes))
    return out
