"""Mirroring a run to Weights & Biases (`tracking.wandb=true`). The run store stays the source of
truth: the mirror only copies what the run store already wrote, and a wandb failure never fails
a run — it prints one warning line, and the run goes on without the mirror.

Run id = our run id, so `entropyctl resume` continues the same wandb run; project and entity from
the config, group = sweep, name = run id, tags = the interventions. The wandb files sit in the
run directory (`<run>/wandb/`), next to the logs they copy. Mode `auto` is online when an API key
is configured (WANDB_API_KEY or a netrc entry for the wandb host), offline otherwise.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any

MODES = ("auto", "online", "offline")


def resolve_mode(mode: str) -> str:
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        hosts = {}
    return "online" if any("wandb" in h for h in hosts) else "offline"


class WandbMirror:
    """Observer of a RunWriter: `start` once, `log` per metrics row, `finish` with the status."""

    def __init__(self, project: str, entity: str | None, mode: str):
        self.project, self.entity, self.mode = project, entity, resolve_mode(mode)
        self.run = None
        self.failed = False

    def _guard(self, what: str, fn, *args, **kwargs) -> Any:
        if self.failed:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # a mirror must never fail the run
            self.failed = True
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            print(f"warning: wandb {what} failed ({type(e).__name__}: {first}); the run continues "
                  "without the mirror (its logs are complete in the run directory)", file=sys.stderr, flush=True)
            return None

    def start(self, run_dir: Path, info: dict[str, Any], config: dict[str, Any]) -> None:
        def init():
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            interventions = str(info.get("intervention", "")).split("+")
            self.run = wandb.init(
                project=self.project, entity=self.entity, mode=self.mode, dir=str(run_dir),
                id=str(info["id"]), name=str(info["id"]), group=str(info.get("sweep", "")),
                tags=[t for t in interventions if t], config=config, resume="allow",
                settings=wandb.Settings(console="off", save_code=False, x_disable_stats=True),
            )

        self._guard("init", init)

    def log(self, row: dict[str, Any]) -> None:
        if self.run is not None:
            step = row.get("round")
            self._guard("log", self.run.log, dict(row), step=int(step) if isinstance(step, int) else None)

    def log_samples(self, rows: list[dict[str, Any]]) -> None:
        """Sample completions as a wandb table (keys of the first row are the columns)."""
        if self.run is None or not rows:
            return

        def table():
            import wandb

            cols = list(rows[0])
            self.run.log({"samples": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})

        self._guard("samples", table)

    def finish(self, status: str) -> None:
        if self.run is not None:
            self._guard("finish", self.run.summary.update, {"status": status})
            self._guard("finish", self.run.finish, exit_code=0 if status == "finished" else 1)
            self.run = None


def attach(writer, tracking) -> None:
    """Start a wandb mirror of `writer`'s run when `tracking.wandb` (a TrackingConfig) asks for
    one; a fresh run and a resumed one alike (same id: wandb continues the run)."""
    if not tracking.wandb:
        return
    import yaml

    config = yaml.safe_load((writer.path / "config.yaml").read_text()) or {}
    mirror = WandbMirror(tracking.project, tracking.entity, tracking.wandb_mode)
    mirror.start(writer.path, writer.info, config)
    if mirror.run is not None:
        writer.mirrors.append(mirror)
