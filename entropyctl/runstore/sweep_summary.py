"""`runs/<sweep>/sweep.json`: what a sweep (`entropyctl train -m ...`) ran and how each job ended.

Every launcher works the same way, on one machine or many sharing a filesystem: each job writes
one small record file of its own, `runs/<sweep>/.sweep-jobs/<token>/<job>.json` (its overrides, its
run directory, its error), where `token` names the invocation (the command sets it in the
environment, which joblib's, submitit's and SLURM's workers inherit). When the sweep ends the
command gathers the records of its token, reads each run's status with the reader of `entropyctl
runs` (listing.describe: run.json and the lock) and merges them into sweep.json under a lock, with
a temp file + rename: a second sweep into the same sweep name adds its jobs to the first's (a job
whose run directory is already listed, e.g. `resume=true`, replaces its entry), never loses them.

Job status: done (run.json finished), failed, diverged, interrupted (also a run that stopped
without a word: stale), or failed with no run directory (refused or broken before it made one).
`run_dir` and `metrics` are relative to the sweep folder, so the file stays true when the
shared filesystem is mounted elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from pathlib import Path
from typing import Any, Callable

from entropyctl.runstore.listing import describe
from entropyctl.runstore.store import METRICS, atomic_write_text, json_safe, now_iso

SWEEP_JSON = "sweep.json"
RECORDS = ".sweep-jobs"
TOKEN_ENV = "ENTROPYCTL_SWEEP_TOKEN"
_LOCK = ".sweep.lock"
STATUS = {"finished": "done", "failed": "failed", "diverged": "diverged", "interrupted": "interrupted",
          "stale": "interrupted", "running": "interrupted", "unreadable": "failed"}


def new_token() -> str:
    return f"{now_iso().replace(':', '').replace('-', '')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _run_dir_of(e: BaseException | None) -> Path | None:
    seen = 0
    while e is not None and seen < 10:  # the loop marks the exception with its run directory
        if getattr(e, "run_dir", None) is not None:
            return Path(e.run_dir)
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def recording(fn: Callable[[], Any], sweep_dir: Path, overrides: list[str], num: int | None) -> Any:
    """Run one sweep job (`fn` returns its run directory) and leave its record for the summary.
    Outside a sweep started by `entropyctl train -m` (no token) it only runs `fn`."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return fn()
    record: dict[str, Any] = {"num": num, "overrides": list(overrides), "run_dir": None, "error": None,
                              "interrupted": False, "host": socket.gethostname(), "pid": os.getpid()}
    try:
        result = fn()
        record["run_dir"] = str(Path(result).resolve()) if result is not None else None
        return result
    except BaseException as e:
        where = _run_dir_of(e)
        record["run_dir"] = str(where.resolve()) if where is not None else None
        record["error"] = (f"{type(e).__name__}: {e}".strip().splitlines() or ["?"])[0]
        record["interrupted"] = isinstance(e, KeyboardInterrupt)
        raise
    finally:
        try:
            folder = Path(sweep_dir) / RECORDS / token
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / f"{uuid.uuid4().hex}.json", json.dumps(json_safe(record)) + "\n")
        except OSError as e:  # the summary is a convenience: a job never fails for it
            print(f"warning: could not record the job for sweep.json ({e})", file=sys.stderr, flush=True)


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def _job_entry(record: dict[str, Any], sweep_dir: Path, token: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"overrides": record.get("overrides", []), "status": "failed", "run_dir": None,
                             "metrics": None, "rounds_done": 0, "last": {}, "error": record.get("error"),
                             "invocation": token, "num": record.get("num")}
    run_dir = record.get("run_dir")
    if run_dir is None or not (Path(run_dir) / "run.json").is_file():
        entry["status"] = "interrupted" if record.get("interrupted") else "failed"
        return entry
    line = describe(Path(run_dir))
    entry.update(status=STATUS.get(line.status, "failed"), run_dir=_rel(Path(run_dir), sweep_dir),
                 metrics=_rel(Path(run_dir) / METRICS, sweep_dir), rounds_done=line.rounds_done,
                 last=line.last, error=record.get("error") or line.note, id=line.id, seed=line.seed,
                 intervention=line.intervention)
    return entry


class _Locked:
    """An exclusive flock on the sweep's summary while it is read, merged and replaced."""

    def __init__(self, sweep_dir: Path):
        self.path = sweep_dir / _LOCK

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing drops the flock


def summarise(sweep_dir: Path, token: str, command: str, expected: int | None = None) -> Path | None:
    """Merge this invocation's job records into `sweep_dir/sweep.json`; None when it left none."""
    sweep_dir = Path(sweep_dir)
    folder = sweep_dir / RECORDS / token
    if not folder.is_dir():
        return None
    records = []
    for f in sorted(folder.glob("*.json")):
        try:
            records.append(json.loads(f.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a record torn by a killed job: that job is counted as missing below
    records.sort(key=lambda r: (r.get("num") is None, r.get("num") or 0))
    jobs = [_job_entry(r, sweep_dir, token) for r in records]
    out = sweep_dir / SWEEP_JSON
    with _Locked(sweep_dir):
        try:
            doc = json.loads(out.read_text())
            assert isinstance(doc, dict) and isinstance(doc.get("jobs"), list)
        except FileNotFoundError:
            doc = {}
        except (OSError, ValueError, AssertionError):  # not ours to repair: keep it beside the new one
            os.replace(out, sweep_dir / f"{SWEEP_JSON}.unreadable-{token}")
            doc = {}
        old = [j for j in doc.get("jobs", []) if not (j.get("run_dir") and j["run_dir"] in
                                                     {n["run_dir"] for n in jobs if n["run_dir"]})]
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j["status"]] = counts.get(j["status"], 0) + 1
        invocation = {"token": token, "command": command, "ended": now_iso(), "jobs": len(jobs), **counts}
        if expected is not None and expected > len(jobs):
            invocation["missing"] = expected - len(jobs)  # killed before they could leave a record
        doc = {"sweep": sweep_dir.name, "updated": now_iso(),
               "invocations": [*doc.get("invocations", []), invocation], "jobs": [*old, *jobs]}
        atomic_write_text(out, json.dumps(json_safe(doc), indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        (sweep_dir / RECORDS).rmdir()  # only when no other sweep is still writing records
    except OSError:
        pass
    return out
