"""Helpers shared by the subprocess-driven tests (resume, faults)."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for_single_run(sweep_dir: Path, timeout: float = 120) -> Path:
    """The one run dir of `sweep_dir`, as soon as its run.json exists (polls: the run is a
    subprocess that may still be setting up)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = [p for p in sweep_dir.glob("*") if (p / "run.json").exists()] if sweep_dir.exists() else []
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.02)
    raise TimeoutError(sweep_dir)
