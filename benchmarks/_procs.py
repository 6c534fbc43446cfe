"""Running an entropyctl command as a child process: wall time and peak resident memory.

The peak is measured by a small launcher process (`python -S`, ~10 MB) that forks the command
and reads its rusage, not by the benchmark itself: Linux starts a child's ru_maxrss at its
parent's resident size (at exec the old address space's high-water mark is kept), so `wait4`
from a benchmark holding 300 MB of arrays reported 330 MB for `python -c pass`, and the same
330 MB for fit-law on a CSV and on a JSONL whose real peaks were ~185 MB (/usr/bin/time agreed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_MARK = "__child__"
# argv: the command. Writes "<mark> wall_s peak_kib exit_code" as the last line of stderr.
_LAUNCHER = f"""
import os, resource, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status = os.waitpid(pid, 0)
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux; the largest descendant
sys.stderr.write(f"\\n{_MARK} {{wall}} {{peak}} {{os.waitstatus_to_exitcode(status)}}\\n")
"""


def child(cmd: list[str], cwd: Path = REPO, env: dict | None = None) -> dict:
    """Run `cmd` (argv, cmd[0] an executable path); {"s": wall seconds, "peak_mb": its peak RSS
    (the largest of it and its descendants), "rc": exit code, "stderr": its stderr}."""
    proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *cmd], cwd=cwd, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err, _, last = proc.stderr.rstrip("\n").rpartition("\n")
    if not last.startswith(_MARK):
        raise RuntimeError(f"launcher failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    wall, peak, rc = last.split()[1:]
    return {"s": round(float(wall), 2), "peak_mb": round(int(peak) / 1024, 1), "rc": int(rc), "stderr": err}


def entropyctl(*args: str, cwd: Path = REPO, env: dict | None = None) -> dict:
    """Run `python -m entropyctl ARGS`; {"s": wall seconds, "peak_mb": max RSS, "rc": exit code}.
    Raises with the last stderr line when the command fails."""
    res = child([sys.executable, "-m", "entropyctl", *args], cwd=cwd, env=env)
    if res["rc"] != 0:
        tail = (res["stderr"].strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"entropyctl {' '.join(args[:3])} ... exit {res['rc']}: {tail}")
    return {k: res[k] for k in ("s", "peak_mb", "rc")}
