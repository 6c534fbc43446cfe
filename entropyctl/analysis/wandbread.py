"""W&B run history as fit-law records (log-formats.md §4), parsed by the same rules as every log:
each history row is one record, and step, H and R are chosen from the shared alias tables
(`step`, `training/global_step`, `train/global_step`, `_step`, ...; `actor/entropy`, `entropy`,
...). Keys logged from nested dicts read as `a/b`, like nested JSON.

  * an offline run: a `run-<id>.wandb` file, an `offline-run-*` directory, or any directory
    above them (a project's `wandb/` folder); read with runstore/wandb_files.py (no wandb
    service, no network; needs the wandb package for the protobuf schema). Runs that share
    an id (a resumed run writes a second file) are one run.
  * `wandb://ENTITY/PROJECT/RUN_ID`: the full history through the public API
    (`wandb.Api().run(...).scan_history()`, never the sampled `history()`). Thin, and NOT tested
    here (the tests have no network): a missing package or an API error is one line, exit 2.
"""

from __future__ import annotations

from pathlib import Path

from entropyctl.analysis.logformats import LogImportError, Record

PREFIX = "wandb://"
MAGIC = b":W&B"


def as_url(path: str | Path) -> str | None:
    """The wandb:// URL a path argument spells, or None (a Path folds '//' into '/')."""
    s = str(path)
    if s.startswith("wandb:/"):
        return PREFIX + s[len("wandb:/"):].lstrip("/")
    return None


def is_wandb_file(path: Path) -> bool:
    if path.suffix == ".wandb":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def run_files(path: Path) -> list[Path]:
    """The run-*.wandb files of an offline run path (a file, a run dir or a folder above)."""
    from entropyctl.runstore.wandb_files import find_run_files

    return [path] if path.is_file() else find_run_files(path)


def read_offline(path: Path) -> tuple[list[Record], list[str]]:
    from entropyctl.runstore.wandb_files import WandbFileError, read_run

    files = run_files(path)
    if not files:
        raise LogImportError(f"cannot read {path}: no run-*.wandb file below it (an offline W&B run)")
    recs: list[Record] = []
    notes: list[str] = []
    for f in files:
        try:
            run = read_run(f)
        except WandbFileError as e:
            raise LogImportError(f"cannot read {f}: {str(e).removeprefix(f'{f}: ')}") from None
        except Exception as e:  # a damaged file: protobuf's DecodeError and kin
            raise LogImportError(f"cannot read {f}: not a readable W&B run file ({type(e).__name__})") from None
        name = run["run_id"] or f.stem.removeprefix("run-")
        recs += [Record(None, row, "", name) for row in run["history"]]
        if not run["complete"]:
            notes.append(f"{f.name} has no exit record (the run is still going, or crashed): read what it holds")
    if not recs:
        raise LogImportError(f"cannot read {path}: the W&B run files hold no history rows")
    return recs, notes


def read_api(url: str) -> tuple[list[Record], list[str]]:
    """Every history row of one run through the public API. Untested here (no network)."""
    parts = url[len(PREFIX):].strip("/").split("/")
    if len(parts) != 3 or not all(parts):
        raise LogImportError(f"cannot read {url}: expected wandb://ENTITY/PROJECT/RUN_ID")
    try:
        import wandb
    except ImportError:
        raise LogImportError(f"cannot read {url}: the W&B API needs wandb: pip install 'entropyctl[wandb]'") from None
    try:
        run = wandb.Api(timeout=60).run("/".join(parts))
        # scan_history pages through every row; history() would sample 500 of them
        rows = [dict(r) for r in run.scan_history(page_size=10_000)]
    except Exception as e:  # network, authentication, unknown run: one line
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise LogImportError(f"cannot read {url}: the W&B API failed ({type(e).__name__}: {first}); "
                             "check the run path and `wandb login`, or export the run and pass the file") from None
    if not rows:
        raise LogImportError(f"cannot read {url}: the run has no history rows")
    return [Record(None, r, "", parts[2]) for r in rows], ["read through the W&B API (scan_history)"]
