"""`entropyctl runs`: what is in a runs folder — sweeps, runs, their status and last numbers.

A run whose run.json says `running` while nobody holds its lock was killed without a word
(SIGKILL, a lost node): it is shown as `stale`, with the command that continues it. Reading
never writes: the lock is probed with a shared, non-blocking flock that is released at once.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from entropyctl.runstore.store import LOCK, RunStoreError, iter_run_dirs, load_run, read_metrics

# The last value of each of these is shown (the glossary defines them).
SHOWN = ("reward/mean", "eval/acc", "entropy/seqmean", "format/top_share")


@dataclass
class RunLine:
    sweep: str
    id: str
    path: str
    status: str  # run.json's status, or `stale` (running, lock free) / `unreadable`
    intervention: str
    seed: Any
    rounds_done: int
    rounds_planned: Any
    last: dict[str, float]
    resume: str | None  # the command that continues it, when it can be continued
    note: str | None = None


def lock_is_held(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock (flock dies with its process)."""
    if sys.platform == "win32":
        return False
    import fcntl

    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def describe(run_dir: Path) -> RunLine:
    try:
        run = load_run(run_dir)
        rows = read_metrics(run_dir / "metrics.jsonl").rows
    except (RunStoreError, OSError) as e:
        return RunLine(run_dir.parent.name, run_dir.name, str(run_dir), "unreadable", "?", None, 0, None,
                       {}, None, str(e).splitlines()[0])
    status = run.status
    if status == "running" and not lock_is_held(run_dir):
        status = "stale"
    last: dict[str, float] = {}
    for row in reversed(rows):
        for k in SHOWN:
            if k not in last and isinstance(row.get(k), (int, float)):
                last[k] = float(row[k])
    can_resume = status in ("stale", "interrupted", "failed")
    return RunLine(run.sweep, run.id, str(run_dir), status, run.intervention, run.seed, len(rows),
                   run.info.get("rounds_planned"), last,
                   f"entropyctl resume {run_dir}" if can_resume else None, run.info.get("error"))


def list_runs(paths: Iterable[Path]) -> list[RunLine]:
    """Every run at or below `paths`, sorted by sweep then id."""
    lines = [describe(p) for p in iter_run_dirs(paths)]
    return sorted(lines, key=lambda r: (r.sweep, r.id))


def to_json(lines: list[RunLine]) -> list[dict[str, Any]]:
    return [asdict(r) for r in lines]
