"""The run store: `runs/<sweep>/<run>/` on disk, the contract fit-law, compare and users read.

Layout (docs/run-store.md is the user-facing description):

    runs/<sweep>/<run_id>/
      config.yaml    resolved config of the run
      overrides.txt  the command-line overrides, one per line
      run.json       id, sweep, intervention, seed, status, times, version, git commit, error
      metrics.jsonl  one JSON object per round, appended and flushed as each round ends
      samples.jsonl  a few completions of each round (round, prompt, completion, reward, format)
      fit.json       written by `entropyctl fit-law`
      checkpoints/   the latest resume checkpoint(s) (entropyctl/train/checkpoint.py)
      metrics.dropped.jsonl  rows a resume recomputed, kept rather than deleted
      .lock          held (flock) by the one process writing the run

Writes never truncate or overwrite a run's logs: a new run gets a new directory (created
exclusively), metrics are only appended, and run.json is replaced atomically (temp + rename).
A resume rewrites metrics.jsonl once, atomically, to the rows before its checkpoint; the rows it
recomputes go to metrics.dropped.jsonl (docs/reliability.md).
No torch here: compare and fit-law read runs through this module.
"""

from __future__ import annotations

from entropyctl.errors import BadInput

import json
import math
import numbers
import os
import sys
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from entropyctl import __version__, jsonfast

STATUSES = ("running", "finished", "failed", "diverged", "interrupted")
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
SAMPLES = "samples.jsonl"
CONFIG = "config.yaml"
DROPPED = "metrics.dropped.jsonl"
LOCK = ".lock"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=,-]{0,199}$")


class RunStoreError(BadInput):
    """A problem with a run directory, phrased for the user in one line."""


def check_name(name: str, what: str = "name") -> str:
    """Refuse names that could leave the runs folder or break paths (`../x`, `a/b`, empty)."""
    if not _NAME_RE.match(name) or ".." in name:
        raise RunStoreError(
            f"invalid {what} {name!r}: use letters, digits and _ . + = , - (no '/', no '..')"
        )
    return name


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def json_safe(value: Any) -> Any:
    """A strict-JSON copy: NaN/inf become null (strict readers choke on NaN), numpy scalars
    plain numbers (numbers.Integral/Real cover them without importing numpy), tuples lists."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)



class RunWriter:
    """Appends one metrics row per round and keeps run.json's status current."""

    def __init__(self, path: Path, info: dict[str, Any], lock_fd: int | None = None):
        self.path, self.info, self.lock_fd = path, info, lock_fd
        self.mirrors: list = []  # copies of what is written (wandb): log(row), log_samples(rows), finish(status)

    def close(self) -> None:
        """Release the run's lock (the OS also does when the process dies)."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def append(self, *rows: dict[str, Any], to: str = METRICS) -> None:
        """Append rows (metrics by default, SAMPLES for readable completions) and flush."""
        text = "".join(json.dumps(json_safe(r), ensure_ascii=False) + "\n" for r in rows)
        with open(self.path / to, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        for m in self.mirrors:  # wandb: metrics row by row, samples as one table
            if to == SAMPLES:
                m.log_samples(list(rows))
            else:
                for row in rows:
                    m.log(row)

    def update(self, **fields: Any) -> None:
        self.info.update(fields)
        atomic_write_text(self.path / RUN_JSON, json.dumps(json_safe(self.info), indent=2) + "\n")

    def finish(self, status: str, error: str | None = None, **fields: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self.update(status=status, ended=now_iso(), error=error, **fields)
        for m in self.mirrors:
            m.finish(status)


def lock_run(path: Path) -> int | None:
    """An exclusive lock on a run dir, held while one process writes it: a resume never runs
    beside the live writer. flock is dropped by the OS when its process dies (SIGKILL too)."""
    if sys.platform == "win32":
        return None
    import fcntl

    fd = os.open(Path(path) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunStoreError(f"{path}: run is being written by {holder}; wait for it to end or stop it "
                            "first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
    return fd


def create_run(
    runs_dir: Path,
    sweep: str,
    run_id: str,
    config_yaml: str,
    overrides: Iterable[str],
    info: dict[str, Any],
) -> RunWriter:
    """Make a new, exclusive `runs/<sweep>/<run_id>/` (suffix -2, -3 ... on a clash)."""
    check_name(sweep, "sweep name")
    check_name(run_id, "run id")
    sweep_dir = Path(runs_dir) / sweep
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path, n = sweep_dir / run_id, 1
    while True:
        try:
            path.mkdir()  # exclusive: two sweeps in one folder never share a run dir
            break
        except FileExistsError:
            n += 1
            path = sweep_dir / f"{run_id}-{n}"
    lock_fd = lock_run(path)  # before run.json exists, so no resume can grab a new run
    (path / CONFIG).write_text(config_yaml)
    (path / "overrides.txt").write_text("".join(f"{o}\n" for o in overrides))
    (path / METRICS).touch()
    full = {
        "id": path.name,
        "sweep": sweep,
        "status": "running",
        "started": now_iso(),
        "ended": None,
        "version": __version__,
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "error": None,
        **info,
    }
    writer = RunWriter(path, full, lock_fd)
    writer.update()
    return writer


def check_status(path: Path, allowed: tuple[str, ...]) -> Run:
    """The run at `path`, read-only; RunStoreError unless its status is in `allowed`."""
    path = Path(path)
    if not is_run_dir(path):
        raise RunStoreError(f"{path}: not a run directory (no run.json); give runs/<sweep>/<run_id>")
    run = load_run(path)
    if run.status not in allowed:
        raise RunStoreError(f"{path}: run is {run.status}, nothing to resume (only "
                            f"{', '.join(allowed)} runs resume); start a new run instead")
    return run


def reopen_run(path: Path, allowed: tuple[str, ...]) -> RunWriter:
    """Lock an existing run for a resume; refuses a run whose status is not in `allowed`.
    Changes nothing on disk but the lock file: the caller marks it running when it starts."""
    check_status(path, allowed)  # refuse before touching anything (the lock file included)
    lock_fd = lock_run(Path(path))
    try:
        run = check_status(path, allowed)  # again under the lock: a resume beside us may have ended it
    except BaseException:
        if lock_fd is not None:
            os.close(lock_fd)
        raise
    return RunWriter(run.path, dict(run.info), lock_fd)


def truncate_metrics(run_dir: Path, start: int) -> int:
    """Keep exactly rounds 0..start-1 in metrics.jsonl, for a resume from round `start`.

    Rows of later rounds (logged after the checkpoint, recomputed by the resume) and a torn
    last line move to metrics.dropped.jsonl first, each as {"dropped", "reason", "line"}; then
    metrics.jsonl is replaced atomically. Returns how many lines moved. Raises RunStoreError
    when a line is corrupted or the kept rounds are not exactly 0..start-1."""
    path = Path(run_dir) / METRICS
    read_metrics(path)  # one-line error on a corrupted line
    lines = path.read_text().split("\n")
    torn = lines.pop()  # "" unless the writer died inside the last line
    keep, drop = [], []
    for line in lines:
        if not line.strip():
            continue
        r = json.loads(line).get("round")
        if not isinstance(r, int):
            raise RunStoreError(f"{path}: a metrics row has no integer 'round'; restore the file")
        (keep if r < start else drop).append(line)
    rounds = [json.loads(line)["round"] for line in keep]
    if rounds != list(range(start)):
        raise RunStoreError(
            f"{path}: holds rounds {_span(rounds)} but the checkpoint is at round {start} "
            "(expected 0..{}); restore the file or start a new run".format(start - 1))
    moved = [(line, f"recomputed by a resume from round {start}") for line in drop]
    if torn:
        moved.append((torn, "torn last line (the writer died mid-write)"))
    if not moved:
        return 0
    with open(Path(run_dir) / DROPPED, "a") as f:
        for line, reason in moved:
            f.write(json.dumps({"dropped": now_iso(), "reason": reason, "line": line}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    atomic_write_text(path, "".join(f"{line}\n" for line in keep))
    return len(moved)


def _span(rounds: list[int]) -> str:
    return f"{rounds[0]}..{rounds[-1]} ({len(rounds)} rows)" if rounds else "none"


# ----------------------------------------------------------------------------- reading


@dataclass
class MetricsRead:
    rows: list[dict[str, Any]]
    dropped_torn_line: bool = False
    problems: list[str] = field(default_factory=list)


def read_metrics(path: Path) -> MetricsRead:
    """Rows of a metrics.jsonl. A torn last line (a crash mid-write) is dropped and
    reported; a bad line anywhere else is an error, since the file is then not ours."""
    lines = Path(path).read_text().split("\n")
    torn, lines = lines[-1] != "", lines[:-1]  # no trailing newline: the writer died inside the last line
    kept = [ln for ln in lines if ln.strip()]
    try:  # one json call (compare reads 1,000 runs): each line one {...}, as many objects as lines
        rows = jsonfast.loads("[" + ",".join(kept) + "]") if all(ln.lstrip()[:1] + ln.rstrip()[-1:] == "{}" for ln in kept) else None
    except (json.JSONDecodeError, RecursionError):
        rows = None
    if rows is None or len(rows) != len(kept) or not all(type(r) is dict for r in rows):
        rows = []
        for i, line in enumerate(lines, 1):  # anything else line by line: the rule, and the bad line's number
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise RunStoreError(f"{path}:{i}: corrupted metrics line ({e.msg}); "
                                    "restore the file or remove the run from the inputs") from None
            if not isinstance(row, dict):
                raise RunStoreError(f"{path}:{i}: metrics line is not a JSON object")
            rows.append(row)
    return MetricsRead(rows, torn, ["dropped a torn last line"] if torn else [])


@dataclass
class Run:
    """A run directory as read back: run.json, config.yaml and metrics.jsonl."""

    path: Path
    info: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.info.get("id", self.path.name))

    @property
    def sweep(self) -> str:
        return str(self.info.get("sweep", self.path.parent.name))

    @property
    def status(self) -> str:
        return str(self.info.get("status", "unknown"))

    @property
    def intervention(self) -> str:
        return str(self.info.get("intervention", "unknown"))

    @property
    def seed(self) -> int | None:
        return self.info.get("seed")

    def config(self) -> dict[str, Any]:
        p = self.path / CONFIG
        if not p.exists():
            return {}
        try:
            data = yaml.load(p.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 10x
        except yaml.YAMLError as e:
            raise RunStoreError(f"{p}: corrupted config.yaml ({e.__class__.__name__})") from None
        return data if isinstance(data, dict) else {}

    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.path / METRICS).rows


def load_run(path: Path) -> Run:
    path = Path(path)
    p = path / RUN_JSON
    try:
        info = json.loads(p.read_text())
    except FileNotFoundError:
        raise RunStoreError(f"{path}: not a run directory (no run.json)") from None
    except json.JSONDecodeError as e:
        raise RunStoreError(f"{p}: corrupted run.json ({e.msg}); restore it or leave this run out") from None
    if not isinstance(info, dict):
        raise RunStoreError(f"{p}: run.json is not a JSON object")
    return Run(path, info)


def is_run_dir(path: Path) -> bool:
    return (Path(path) / RUN_JSON).is_file()


def iter_run_dirs(paths: Iterable[Path]) -> Iterator[Path]:
    """Run directories at or below each path, sorted, each once (hidden dirs skipped)."""
    seen: set[Path] = set()
    for root in paths:
        root = Path(root)
        if is_run_dir(root):
            found = [root]
        else:
            found = sorted(p.parent for p in root.rglob(RUN_JSON)
                           if not any(part.startswith(".") for part in p.relative_to(root).parts))
        for p in found:
            rp = p.resolve()
            if rp not in seen:
                seen.add(rp)
                yield p


def find_runs(paths: Iterable[Path]) -> list[Run]:
    return [load_run(p) for p in iter_run_dirs(paths)]


def series(rows: list[dict[str, Any]], key: str, x: str = "round") -> tuple[list[float], list[float]]:
    """(x, y) for rows that have a finite number under `key`."""
    xs, ys = [], []
    for row in rows:
        v = row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(row.get(x, len(xs)))
            ys.append(float(v))
    return xs, ys
