"""Read (step, entropy H, performance R) series out of training logs for `entropyctl fit-law`.

The readers (one per format of shared/spec/log-formats.md) turn a file into records (step, flat
dict, kind train|val, run name): `logformats` for the small formats, `wandbread` for W&B run
history, and `streamread` for CSV, JSONL and verl, which streams them straight into numpy
columns (`frame.Frame`: only the keys that could be chosen keep values). All records meet as a
Frame, and this module picks keys
(alias tables, first match wins, equal-rank ties stop with an error), de-duplicates restarted
steps (last occurrence wins) and pairs R with H:
  same step       train reward and H logged together;
  val -> next     validation R at step s was measured *after* step s's update, so it pairs
                  with the first H logged at a step > s (fallback: same step, then the nearest
                  earlier one, counted). Never interpolated.
Input files are opened read-only. Problems with a whole file raise LogImportError (one line,
naming the file and what was expected); problems with one series go into Series.error.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from entropyctl.analysis.frame import VAL, Frame, frame_from_records, pair_arrays, value_map
from entropyctl.analysis.runs import pair
from entropyctl.runstore.glossary import DEFAULT_ENTROPY_KEY, DEFAULT_PERF_KEY
from entropyctl.analysis.logformats import (
    FORMATS, ImportOptions, LogImportError, Record, read_text, detect_format, flatten,
    read_wandb_csv, read_records, read_run, to_float, to_step,
)
from entropyctl.analysis.streamread import read_csv, read_jsonl
from entropyctl.analysis.wandbread import as_url, is_wandb_file, read_api, read_offline, run_files


# Re-exported for callers and tests: pair is the rule pair_arrays vectorises.
__all__ = ["ImportOptions", "LogImportError", "Series", "load_series", "detect_format", "pair", "to_float",
           "to_step", "FORMATS"]

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


def _is_val_key(key: str) -> bool:
    return bool(re.match(r"(eval|val|test)[-_/]", key)) or any(_match(a, [key]) for a in VAL_REWARD_ALIASES)


def wanted(opts: ImportOptions) -> Callable[[str], bool]:
    """The keys whose values the importer keeps: any key it could choose as step, H or R."""
    fixed = {a for a in (*ENTROPY_ALIASES, *TRAIN_REWARD_ALIASES, *VAL_REWARD_ALIASES, *STEP_ALIASES)
             if not a.startswith("re:")}
    fixed |= {k for k in (opts.step_key, opts.entropy_key, opts.perf_key) if k}
    pats = [re.compile(a[3:]) for a in (*TRAIN_REWARD_ALIASES, *VAL_REWARD_ALIASES) if a.startswith("re:")]
    glob = opts.perf_key if opts.perf_key and any(c in opts.perf_key for c in "*?[") else None

    def want(key: str) -> bool:
        return (key in fixed or key.lower().endswith("step") or any(p.fullmatch(key) for p in pats)
                or (glob is not None and fnmatch.fnmatchcase(key, glob)))
    return want


def steplike(opts: ImportOptions) -> Callable[[str], bool]:
    names = set(STEP_ALIASES) | ({opts.step_key} if opts.step_key else set())
    return lambda key: key in names or key.lower().endswith("step")


def to_frame(recs: list[Record] | Frame, opts: ImportOptions) -> Frame:
    if isinstance(recs, Frame):
        return recs
    return frame_from_records(recs, wanted(opts), opts.where, steplike(opts))


def build_series(recs: list[Record] | Frame, *, source: str, fmt: str, opts: ImportOptions, notes: list[str],
                 entropy_default: str | None = None, perf_default: str | None = None,
                 step_default: str | None = None) -> list[Series]:
    """Series (one per run and perf key) from records (or their Frame, which has --where
    applied already); see the module docstring for the rules."""
    frame = to_frame(recs, opts)
    if frame.n == 0:
        raise LogImportError(f"{source}: no records" + (" match --where" if opts.where else ""))
    step_key = None
    if np.isnan(frame.step).any():  # some record has no step of its own
        keys = frame.keys_of()
        step_key = opts.step_key or step_default or choose_key(STEP_ALIASES, keys, "step", "--step", source)
        if step_key is None:
            ends = sorted(k for k in keys if k.lower().endswith("step"))
            if len(ends) > 1:
                raise LogImportError(f"{source}: several step columns ({', '.join(ends)}); choose one with --step KEY")
            step_key = ends[0] if ends else None
        if step_key is None:
            raise LogImportError(f"{source}: no step column (looked for {', '.join(STEP_ALIASES)}); pass --step KEY")
    step = frame.step_of(step_key)
    out = []
    for run in range(len(frame.runs)):
        rows = frame.run == run
        if rows.any():
            out.extend(_build_run(frame, rows, run, source, fmt, opts, notes, step, entropy_default, perf_default))
    return out


def _build_run(frame: Frame, rows: np.ndarray, run: int, source: str, fmt: str, opts: ImportOptions,
               notes: list[str], step: np.ndarray, entropy_default: str | None,
               perf_default: str | None) -> list[Series]:
    base = frame.runs[run] or Path(source).stem
    val_rows = rows & (frame.kind == VAL)
    train_rows = rows & ~val_rows
    train_keys = frame.keys_of(run, False)
    val_keys = frame.keys_of(run, True)
    all_keys = train_keys | val_keys
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
    es, ev, edups, emiss = value_map(frame, train_rows, [ekey], step)
    if edups:
        warn.append(f"dropped {edups} duplicate entropy step(s) (restarted run?): kept the last")
    # (name, perf key as given, perf keys, rows, rule)
    specs: list[tuple[str, str, list[str], np.ndarray, str]] = []
    user_perf = opts.perf_key or perf_default
    if user_perf:
        pk = sorted(k for k in all_keys if fnmatch.fnmatchcase(k, user_perf)) if any(
            c in user_perf for c in "*?[") else [user_perf]
        if not pk or not set(pk) <= all_keys:
            return [Series(source, base, fmt, entropy_key=ekey,
                           error=f"no {user_perf} values (keys include: {_some(all_keys)}); pass --perf KEY")]
        in_val = bool(set(pk) & val_keys)
        in_train = bool(set(pk) & train_keys)
        if in_val and in_train:
            specs += [("train", user_perf, pk, train_rows, "same"), ("val", user_perf, pk, val_rows, "next")]
        else:
            rule = "next" if in_val or _is_val_key(pk[0]) else "same"
            specs.append(("", user_perf, pk, rows, rule))
    else:
        tkey = choose_key(TRAIN_REWARD_ALIASES, train_keys, "train reward", "--perf", source)
        vkey = choose_key(VAL_REWARD_ALIASES, all_keys, "validation reward", "--perf", source)
        if tkey:
            specs.append(("train", tkey, [tkey], train_rows, "same"))
            if tkey in val_keys:  # typed records: the same key for val
                specs.append(("val", tkey, [tkey], val_rows, "next"))
        if vkey and vkey != tkey:
            specs.append(("val", vkey, [vkey], rows, "next"))
        if not specs:
            return [Series(source, base, fmt, entropy_key=ekey,
                           error=f"no reward/performance key (keys include: {_some(all_keys)}); pass --perf KEY")]
    out = []
    for split, pname, pkeys, prows, rule in specs:
        rule = rule if opts.pairing == "auto" else opts.pairing
        ps, pv, pdups, pmiss = value_map(frame, prows, pkeys, step)
        steps, H, R, counts = pair_arrays(es, ev, ps, pv, rule)
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
        if len(ps) and pmiss == len(ps):
            s.error = f"all {pmiss} values of {pname} are NaN/null: nothing to fit (check the run for divergence)"
        elif len(es) and emiss == len(es):
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
        config = run.config()  # read_run skipped runs whose config.yaml is corrupted
        meta = {**flatten(config, sep="."), **run.info, "_config": config}
        for s in built:
            s.meta.update(meta)
            s.run_dir = d
            out.append(s)
    if not out:
        raise LogImportError(f"cannot read {path}: no entropyctl runs (run.json) below it")
    return out


def _detect(path: Path) -> str:
    """detect_format, and W&B run files (binary, so they are recognised first)."""
    if path.is_file() and is_wandb_file(path):
        return "wandb"
    try:
        return detect_format(path)
    except LogImportError:
        if path.is_dir() and run_files(path):
            return "wandb"
        raise


def load_series(paths: list[Path], opts: ImportOptions) -> list[Series]:
    """Every series in `paths` (files or directories). Raises LogImportError for a path
    that cannot be read at all; W&B CSV files are joined on step, per run."""
    if opts.fmt not in FORMATS:
        raise LogImportError(f"--format {opts.fmt}: expected one of {', '.join(FORMATS)}")
    out: list[Series] = []
    wandb: list[tuple[Path, str]] = []
    for path in paths:
        url = as_url(path)
        if url is not None:  # wandb://ENTITY/PROJECT/RUN_ID: the W&B API
            recs, notes = read_api(url)
            out.extend(build_series(recs, source=url, fmt="wandb", opts=opts, notes=notes))
            continue
        path = Path(path)
        if not path.exists():
            raise LogImportError(f"cannot read {path}: no such file or directory")
        fmt = _detect(path) if opts.fmt == "auto" else opts.fmt
        if fmt == "run":
            out.extend(_run_series(path, opts))
            continue
        if fmt == "wandb-csv":  # joined across files below
            wandb.append((path, read_text(path, "a wandb-csv log")))
            continue
        if fmt == "csv":
            recs, notes = read_csv(path, wanted(opts), opts.where, steplike(opts))
        elif fmt in ("jsonl", "verl"):
            recs, notes = read_jsonl(path, fmt, wanted(opts), opts.where, steplike(opts))
        elif fmt == "wandb":
            recs, notes = read_offline(path)
        else:
            recs, notes = read_records(path, fmt, opts)
        out.extend(build_series(recs, source=str(path), fmt=fmt, opts=opts, notes=notes))
    if wandb:
        recs, notes = [], []
        for path, text in wandb:
            r, n = read_wandb_csv(path, text)
            recs += r
            notes = n
        source = str(wandb[0][0]) if len(wandb) == 1 else ",".join(str(p) for p, _ in wandb)
        out.extend(build_series(recs, source=source, fmt="wandb-csv", opts=opts, notes=notes))
    return out
