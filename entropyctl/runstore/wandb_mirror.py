"""Mirroring a run to Weights & Biases (`tracking.wandb=true`). The run store stays the source of
truth: the mirror only copies what the run store already wrote, and a wandb failure never fails
a run — it prints one warning line, and the run goes on without the mirror.

Run id = our run id, so `entropyctl resume` continues the same wandb run; project and entity from
the config, group = sweep, name = run id, tags = the interventions. The wandb files sit in the
run directory (`<run>/wandb/`), next to the logs they copy. Mode `auto` is online when an API key
is configured (WANDB_API_KEY or a netrc entry for the wandb host), offline otherwise.

At the end of a run the summary gets the status and, from the `summary` function the trainer
passes (the run's own law fit, analysis/law_summary.py; the run store layer never imports
analysis), the `law/*` numbers. `log_compare` puts `entropyctl compare`'s per-group statistics
(a wandb Table) and its report files (an artifact) into a wandb run of their own.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any, Callable

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

    def __init__(self, project: str, entity: str | None, mode: str,
                 summary: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None):
        self.project, self.entity, self.mode = project, entity, resolve_mode(mode)
        self.summary = summary  # metrics rows -> extra summary values, at the end of the run
        self.run = None
        self.failed = False
        self.run_dir: Path | None = None
        self.after = "the run continues without the mirror (its logs are complete in the run directory)"

    def _guard(self, what: str, fn, *args, **kwargs) -> Any:
        if self.failed:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # a mirror must never fail the run
            self.failed = True
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            print(f"warning: wandb {what} failed ({type(e).__name__}: {first}); {self.after}",
                  file=sys.stderr, flush=True)
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

        self.run_dir = Path(run_dir)
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

    def _extra_summary(self) -> dict[str, Any]:
        """The `summary` function over the run's rows; a problem there is a warning that leaves
        the summary with its status only (the wandb run is still finished properly)."""
        from entropyctl.runstore.store import METRICS, json_safe, read_metrics

        if self.summary is None or self.run_dir is None:
            return {}
        try:
            return json_safe(self.summary(read_metrics(self.run_dir / METRICS).rows))
        except Exception as e:  # noqa: BLE001 - the summary is extra; the run has ended well
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"warning: wandb summary: the run's law fit failed ({type(e).__name__}: {first}); "
                  "the summary has the status only", file=sys.stderr, flush=True)
            return {}

    def finish(self, status: str) -> None:
        if self.run is not None:
            extra = self._extra_summary() if not self.failed else {}
            self._guard("finish", self.run.summary.update, {"status": status, **extra})
            self._guard("finish", self.run.finish, exit_code=0 if status == "finished" else 1)
            self.run = None


def attach(writer, tracking, summary: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> None:
    """Start a wandb mirror of `writer`'s run when `tracking.wandb` (a TrackingConfig) asks for
    one; a fresh run and a resumed one alike (same id: wandb continues the run). `summary`
    turns the run's metrics rows into extra summary values at its end (the law fit)."""
    if not tracking.wandb:
        return
    import yaml

    config = yaml.safe_load((writer.path / "config.yaml").read_text()) or {}
    mirror = WandbMirror(tracking.project, tracking.entity, tracking.wandb_mode, summary=summary)
    mirror.start(writer.path, writer.info, config)
    if mirror.run is not None:
        writer.mirrors.append(mirror)


REPORT_FILES = ("report.html", "report.md", "compare.json")


def _tracking_of(run_dirs: list[Path]):
    """tracking.* of the compared runs when they agree (their config.yaml), else the defaults."""
    import yaml

    from entropyctl.config import TrackingConfig

    seen = set()
    for d in run_dirs:
        try:
            t = (yaml.safe_load((Path(d) / "config.yaml").read_text()) or {}).get("tracking") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        seen.add((t.get("project"), t.get("entity"), t.get("wandb_mode")))
    default = TrackingConfig()
    if len(seen) != 1:
        return default
    project, entity, mode = seen.pop()
    return TrackingConfig(project=project or default.project, entity=entity,
                          wandb_mode=mode if mode in MODES else default.wandb_mode)


def stats_table(result: dict[str, Any], part: str = "metrics") -> tuple[list[str], list[list[Any]]]:
    """compare.json's per-group statistics as rows: group, runs (its n), metric, then each statistic (the
    union of the keys compare wrote, in their order; `part` = metrics or vs_baseline)."""
    stats: list[str] = []
    for g in result.get("groups", []):
        for s in (g.get(part) or {}).values():
            stats += [k for k, v in (s.items() if isinstance(s, dict) else ()) if k not in stats
                      and (v is None or isinstance(v, (int, float, str, bool)))]
    rows = [[str(g.get("name")), g.get("n"), metric, *[s.get(k) for k in stats]]
            for g in result.get("groups", []) for metric, s in (g.get(part) or {}).items() if isinstance(s, dict)]
    return ["group", "runs", "metric", *stats], rows


def log_compare(result: dict[str, Any], folder: Path, run_dirs: list[Path], name: str | None = None) -> bool:
    """`entropyctl compare --wandb`: a wandb run (job type `compare`, in the compared runs'
    tracking.project, online or offline as the mirror decides) holding the per-group statistics
    as tables and the report files as an artifact. Its files sit in `<folder>/wandb/`. A wandb
    failure is one warning line; returns whether everything was logged. `name` (the wandb group)
    defaults to the sweep: the folder's name, or its parent's for the default `<sweep>/compare`."""
    folder = Path(folder)
    name = name or (folder.parent.name if folder.name == "compare" else folder.name)
    tracking = _tracking_of(run_dirs)
    mirror = WandbMirror(tracking.project, tracking.entity, tracking.wandb_mode)
    mirror.after = f"the report is complete in {folder}"

    def log() -> None:
        os.environ.setdefault("WANDB_SILENT", "true")
        import re

        import wandb

        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "compare"
        run = wandb.init(project=mirror.project, entity=mirror.entity, mode=mirror.mode, dir=str(folder),
                         job_type="compare", name=f"compare-{safe}", group=name,
                         config={k: result.get(k) for k in ("by", "baseline", "last_k", "level")},
                         settings=wandb.Settings(console="off", save_code=False, x_disable_stats=True))
        try:
            tables = {}
            for part in ("metrics", "vs_baseline"):
                cols, rows = stats_table(result, part)
                if rows:
                    tables[f"compare/{part}"] = wandb.Table(columns=cols, data=rows)
            run.log(tables)
            artifact = wandb.Artifact(f"compare-{safe}", type="compare-report")
            for f in sorted(Path(folder).iterdir()):
                if f.is_file() and (f.name in REPORT_FILES or f.suffix == ".png"):
                    artifact.add_file(str(f), name=f.name)
            run.log_artifact(artifact)
        finally:
            run.finish()

    mirror._guard("compare", log)
    return not mirror.failed
