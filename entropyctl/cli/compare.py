"""`entropyctl compare`: did an intervention keep exploration alive, at what cost, and is it real?

Reads run stores only (docs/run-store.md), groups runs by intervention (or any config key with
--by), prints a rich table and writes report.md, report.html, compare.json and PNG plots.
Statistics live in `entropyctl.analysis.compare`, the report in `entropyctl.analysis.report`; this module does the
I/O at the edges. Bad input gives one line on stderr and exit code 2, before anything is written.
No torch here, nor in anything it imports.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from entropyctl import errors
from entropyctl.analysis.compare import CompareError, RunInput, compare_runs, to_json
from entropyctl.analysis.perrun import RUN_FORMAT
from entropyctl.analysis.runs import as_name, by_value, check_by, numerics_notes, read_runs
from entropyctl.analysis.verdict import narrowing, narrowing_table
from entropyctl.cli.options import ByOpt, DebugOpt, JsonOpt
from entropyctl.analysis.report_extra import SAMPLES_PER_GROUP
from entropyctl.runstore.samples import read_samples
from entropyctl.analysis.foreign import group_by, load_foreign
from entropyctl.analysis.logimport import ImportOptions
from entropyctl.cli.fit_law import LogFormat
from entropyctl.runstore.store import METRICS, RunStoreError, is_run_dir, iter_run_dirs
OUT_DIR = "compare"


class Stat(str, Enum):
    welch = "welch"
    bootstrap = "bootstrap"


def compare(
    paths: Annotated[list[Path], typer.Argument(
        help="Sweep dirs (runs/<sweep>) or run dirs, and/or logs fit-law reads: TRL trainer_state.json or "
             "output dirs, verl JSONL/console logs, wandb CSV exports, CSV/JSONL.", show_default=False)],
    *,
    by: ByOpt = None,
    group_by: Annotated[Optional[str], typer.Option(
        "--group-by", metavar="REGEX|FILE.json|FILE.yaml",
        help="Groups from the run's name (a log's file name, a run dir's name): the first capture group of "
             "REGEX, e.g. '(.*)-seed\\d+'; or a JSON/YAML file mapping paths to groups.",
        show_default=False)] = None,
    fmt: Annotated[LogFormat, typer.Option("--format", help="Format of the log files (auto-detected per file).")]
        = LogFormat.auto,
    entropy: Annotated[Optional[str], typer.Option(
        "--entropy", metavar="KEY", help="Entropy key in the logs (default: fit-law's aliases).")] = None,
    perf: Annotated[Optional[str], typer.Option(
        "--perf", metavar="KEY", help="Performance key in the logs (default: fit-law's aliases).")] = None,
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", help="Group the others are tested against (default: grpo when present).")] = None,
    last_k: Annotated[int, typer.Option(
        "--last-k", min=1, help="'Final' values are the mean of each run's last k logged values.")] = 5,
    include_incomplete: Annotated[bool, typer.Option(
        "--include-incomplete", help="Also count failed, diverged and unfinished runs in the statistics.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Folder for report.md, report.html, compare.json, plots (default: <first sweep>/compare).",
        show_default=False)] = None,
    stat: Annotated[Optional[Stat], typer.Option(
        "--stat", help="Statistic the tables lead with: welch (mean, t-interval, Welch test) or bootstrap "
                       "(IQM, bootstrap interval, probability of improvement). Default: bootstrap when the "
                       "smallest group has n <= 5, else welch; compare.json always has both.",
        show_default=False)] = None,
    as_json: JsonOpt = False,
    wandb: Annotated[bool, typer.Option(
        "--wandb", help="Also log the tables and the report files to a wandb run (tracking.project; "
        "offline without an API key). A wandb failure is a warning.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Compare groups of runs across seeds: final metrics, intervals, Welch tests vs a baseline.

    Example: entropyctl compare runs/demo --baseline grpo --last-k 10
    Exit 0 when the report is written, 2 on bad input (nothing written).
    """
    skipped: list[str] = []
    opts = ImportOptions(fmt=fmt.value, entropy_key=entropy, perf_key=perf)
    runs = load_all(paths, by, group_by, opts, skipped)
    result = compare_runs(runs, baseline=baseline, last_k=last_k,
                          include_incomplete=include_incomplete, by=group_by or by, stat=stat.value if stat else None)
    result["notes"] = ([f"skipped a corrupted run: {why}" for why in skipped] + result["notes"]
                       + numerics_notes([r.group for r in runs], [r.source.get("numerics") for r in runs], group_by or by))
    if group_by is None and any(r.source.get("format") != RUN_FORMAT for r in runs):
        result["notes"].append("each log is its own group: pass --group-by REGEX (e.g. '(.*)-seed\\d+') or "
                               "--group-by FILE.json to pool seeds")
    result["narrowing"] = narrowing(result, runs)
    result["samples"] = last_samples(result, runs)
    dest = out if out is not None else default_out(paths)
    if dest.exists() and not dest.is_dir():
        raise CompareError(f"--out {dest} is a file; pass a folder")
    from entropyctl.analysis.report import build_report

    files = build_report(result, runs)  # everything in memory before the first write
    write_files(dest, files)
    if wandb:  # tables + the report as an artifact (runstore/wandb_mirror.py); never fails the command
        from entropyctl.runstore.wandb_mirror import log_compare

        log_compare(result, dest, [Path(r.path) for r in runs])
    for why in skipped:
        errors.say(f"note: skipped a corrupted run: {printable(why)}")
    if as_json:
        sys.stdout.write(to_json(result))
        return
    print_tables(result)
    typer.echo(f"report: {dest / 'report.html'}  (also report.md, compare.json, *.png)")


# ----------------------------------------------------------------------------- reading


def load_all(paths: list[Path], by: str | None, group_spec: str | None, opts: ImportOptions,
             skipped_out: list[str] | None = None) -> list[RunInput]:
    """Our runs (sweep and run dirs) and foreign logs (files, TRL output dirs) under `paths`,
    grouped by intervention / --by, or by --group-by for all of them. Checked before anything
    is written: a path that is neither, a log that cannot be read, a run no group takes."""
    if by is not None and group_spec is not None:
        raise CompareError("--by and --group-by both given; group by a config key (--by) or by name/mapping "
                           "(--group-by), not both")
    ours, logs = [], []
    for p in paths:
        if not p.exists():
            raise RunStoreError(f"{p}: no such file or directory; pass a sweep dir (runs/<sweep>), a run dir or a log file")
        if p.is_file() and p.name == METRICS and is_run_dir(p.parent):
            ours.append(p.parent)  # one of our runs, named by its metrics file
        else:
            (logs if is_log(p) else ours).append(p)
    runs = load_inputs(ours, by, skipped_out) if ours else []
    runs += load_foreign(logs, opts)
    if group_spec is not None:
        group_by(runs, group_spec)  # else a log's run is its own group (compare adds a note)
    return runs


def is_log(path: Path) -> bool:
    """A file, or a directory with no entropyctl run below it but a TRL trainer_state.json."""
    if path.is_file():
        return True
    if is_run_dir(path) or any(iter_run_dirs([path])):
        return False
    return bool(list(path.glob("trainer_state.json")) or list(path.glob("checkpoint-*/trainer_state.json")))


def load_inputs(paths: list[Path], by: str | None, skipped_out: list[str] | None = None) -> list[RunInput]:
    """Every run under `paths` with its group and rows (analysis/runs.py: the reader fit-law uses
    too); why each corrupted run was skipped goes into `skipped_out`. Runs of different tasks never
    share a group: with more than one task the group names carry the task."""
    for p in paths:
        if not p.exists():
            raise RunStoreError(f"{p}: no such file or directory; pass a sweep dir (runs/<sweep>) or a run dir")
        if not p.is_dir():
            raise RunStoreError(f"{p}: not a directory; pass a sweep dir (runs/<sweep>) or a run dir")
    found, skipped = read_runs(paths)
    where = ", ".join(str(p) for p in paths)
    if not found and skipped:
        raise RunStoreError(f"no usable runs under {where}: {skipped[0][1]}")
    if not found:
        raise RunStoreError(f"no runs under {where} (no <run>/run.json, no TRL trainer_state.json found); "
                            "pass a sweep dir written by `entropyctl train`, e.g. runs/<sweep>, or log files")
    if by is not None:
        check_by([by_value(r.config, r.run.info, by) for r in found], by)
    several_tasks = len({r.task for r in found}) > 1
    out = []
    for r in found:
        group = r.run.intervention if by is None else as_name(by_value(r.config, r.run.info, by))
        if several_tasks and by != "task":
            group = f"{group} [task={r.task}]"
        out.append(RunInput(id=r.run.id, group=group, status=r.run.status, seed=r.run.seed, rows=r.rows,
                            path=str(r.path), error=r.run.info.get("error"),
                            source={"format": RUN_FORMAT, "path": str(r.path), "numerics": r.run.info.get("numerics")}))
    if skipped_out is not None:
        skipped_out.extend(why for _, why in skipped)
    return out


def last_samples(result: dict[str, Any], runs: list[RunInput], per_group: int = SAMPLES_PER_GROUP) -> dict[str, list]:
    """A few completions of each group's last logged round, from the first included runs that
    have samples.jsonl (only as many files are read as it takes)."""
    included = {(r["id"], r["path"]) for r in result["runs"] if r["included"]}
    out: dict[str, list] = {}
    for r in runs:
        have = out.setdefault(r.group, [])
        if len(have) >= per_group or (r.id, r.path) not in included or r.source.get("format") != RUN_FORMAT:
            continue
        records = read_samples(Path(r.path))
        if records:
            last = max(x["round"] for x in records)
            have += [{"run": r.id, **{k: x.get(k) for k in ("round", "prompt", "completion", "reward", "format")}}
                     for x in records if x["round"] == last][:per_group - len(have)]
    return {g: v for g, v in out.items() if v}


def default_out(paths: list[Path]) -> Path:
    """Inside the first sweep dir (the run's parent when a run dir is given); for log files, in
    the folder that holds all the inputs (trl/ for trl/a-seed0/trainer_state.json, ...)."""
    first = paths[0]
    if first.is_file():
        return Path(os.path.commonpath([str((p.parent if p.is_file() else p).resolve()) for p in paths])) / OUT_DIR
    sweep = first.parent if is_run_dir(first) else first
    return sweep / OUT_DIR


def write_files(dest: Path, files: dict[str, bytes]) -> None:
    """Write each file via a temp name + rename, so a reader never sees half a report."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        tmp = dest / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, dest / name)


# ----------------------------------------------------------------------------- terminal


def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from entropyctl.analysis.report import baseline_table, metric_table, runs_table

    console = Console()
    t = lambda s: Text(printable(s))  # noqa: E731 - run texts are never rich markup

    boot = result["stat"] == "bootstrap"
    console.print(t(f"statistic: {result['stat']} ({result['stat_reason']})"))
    head, rows = metric_table(result, long=False)
    what = "IQM [95% bootstrap CI]" if boot else "mean ±95% CI"
    table = Table(title=f"by {printable(result['by'])}: {what} across seeds "
                        f"(final = last {result['last_k']} values)", title_justify="left")
    for h in head:
        table.add_column(t(h), overflow="fold")
    for r in rows:
        table.add_row(*map(t, r))
    console.print(table)

    bt = baseline_table(result, long=False)
    if bt:
        what = ("IQM diff [95% bootstrap CI], probability of improvement, Welch Holm-adjusted p" if boot
                else "diff ±95% CI (Welch), Holm-adjusted p, Hedges' g")
        table = Table(title=f"vs baseline {printable(result['baseline'])}: {what}", title_justify="left")
        for h in bt[0]:
            table.add_column(t(h), overflow="fold")
        for r in bt[1]:
            table.add_row(*map(t, r))
        console.print(table)
    nt = narrowing_table(result, long=False)
    if nt:
        table = Table(title="collapse or convergence? each group vs the baseline (docs/collapse-or-convergence.md)",
                      title_justify="left")
        for h in nt[0]:
            table.add_column(t(h), overflow="fold")
        for r in nt[1]:
            table.add_row(*map(t, r))
        console.print(table)
    for note in result["notes"]:
        console.print(t(f"note: {note}"))

    head, rows = runs_table(result)
    left_out = [r for r in rows if r[-1] != "yes"]
    if left_out:
        table = Table(title="left out of the statistics", title_justify="left")
        for h in head:
            table.add_column(t(h), overflow="fold")
        for r in left_out:
            table.add_row(*map(t, r))
        console.print(table)


def printable(text: Any) -> str:
    """Run texts without terminal control characters (a run name must not drive the terminal)."""
    return "".join(c if c.isprintable() or c == "\n" else "?" for c in str(text))
