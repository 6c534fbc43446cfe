"""Running an entropyctl command as a child process: wall time and peak resident memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def entropyctl(*args: str, cwd: Path = REPO, env: dict | None = None) -> dict:
    """Run `python -m entropyctl ARGS`; {"s": wall seconds, "peak_mb": max RSS, "rc": exit code}.
    Raises with the last stderr line when the command fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "entropyctl", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"entropyctl {' '.join(args[:3])} ... exit {proc.returncode}: {tail}")
    return {"s": round(wall, 2), "peak_mb": round(usage.ru_maxrss / 1024, 1), "rc": proc.returncode}
