"""The Hydra side of `entropyctl train` / `pretrain`: the CLI forwards its trailing words here
as Hydra overrides, so `-m` sweeps, launchers and `--cfg job` work as Hydra users expect.

Bad input never reaches `hydra.main`: `checks.validate` first composes every job and refuses
a bad one in one line (exit 2) before anything is written. Each job then runs through the
lifecycle (train/loop.py start -> loop -> finish, or train/resume.py) and ends through the one
error path (entropyctl/errors.py). In a sweep a job that fails is recorded and the sweep goes
on; the command then prints one summary line per failed job and exits non-zero. A `train` sweep
also leaves `runs/<sweep>/sweep.json` (runstore/sweep_summary.py): its jobs, their status and run
directories, whatever the launcher.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from entropyctl import errors
from entropyctl.cli.checks import CONF_DIR, validate
from entropyctl.config import TrainConfig, register_schemas

# A sweep's jobs may run in other processes (joblib): each failed one appends a line to this
# file, which the command reads when the sweep ends.
_FAILURES_ENV = "ENTROPYCTL_SWEEP_FAILURES"


def _job(fn: Callable[[], Any], multirun: bool, label: str) -> None:
    """Run one job; outside a sweep its failure ends the command (errors.report's exit code)."""
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - the one error path decides
        if isinstance(e, SystemExit):
            raise
        code = errors.report(e)
        path = os.environ.get(_FAILURES_ENV)
        if not multirun or path is None or code == errors.EXIT_INTERRUPTED:
            sys.exit(code)
        with open(path, "a") as f:
            f.write(f"{code}\t{label}: {errors.classify(e)[1]}\n")


def _typed(cfg) -> TrainConfig:
    from omegaconf import OmegaConf

    return OmegaConf.to_object(cfg)


def job_threads(threads: int, n_jobs: int | None, cores: int) -> int:
    """Torch threads for one job: `threads` when set, else this process's cores shared among the
    jobs its launcher runs at once (joblib's n_jobs; -1 = one job per core, -2 = all but one).
    Two torch processes of two threads each on two cores ran rounds 2x slower, three 10-30x."""
    if threads > 0:
        return threads
    if not n_jobs:
        return cores
    parallel = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    return max(1, cores // parallel)


def _cores() -> int:
    """The cores this process may run on (a SLURM task's or a taskset's, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _train_task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from entropyctl.runstore.sweep_summary import recording
    from entropyctl.train.resume import train_or_resume

    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    multirun = hc.mode == RunMode.MULTIRUN

    def run() -> Path:  # the run dir: the sweep record names it
        typed = _typed(cfg)
        typed.threads = job_threads(typed.threads, hc.launcher.get("n_jobs"), _cores())
        return train_or_resume(typed, overrides)

    if multirun:  # each job leaves a record of its own for runs/<sweep>/sweep.json
        sweep_dir = Path(str(cfg.runs_dir)) / str(cfg.sweep)
        job = lambda: recording(run, sweep_dir, overrides, hc.job.get("num"))  # noqa: E731
    _job(job if multirun else run, multirun, " ".join(overrides) or "(defaults)")


def _pretrain_task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from entropyctl.train.loop import resolve_model_path

    hc = HydraConfig.get()
    _job(lambda: resolve_model_path(_typed(cfg)), hc.mode == RunMode.MULTIRUN,
         " ".join(hc.overrides.task) or "(defaults)")


TASKS = {"train": _train_task, "pretrain": _pretrain_task}


def _sweep_summary(path: Path) -> int:
    """One line per failed job; the exit code (3 when every failure diverged, else 1)."""
    lines = [line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line]
    if not lines:
        return errors.EXIT_OK
    for _, text in lines:
        errors.say(f"failed job: {text}")
    codes = {int(c) for c, _ in lines}
    errors.say(f"error: {len(lines)} job(s) of the sweep did not finish (listed above)")
    return errors.EXIT_DIVERGED if codes == {errors.EXIT_DIVERGED} else errors.EXIT_FAILED


_WHERE = ("sweep", "runs_dir", "experiment")  # the overrides that decide where a job's runs go


def _sweep_dirs(args: list[str]) -> tuple[list[Path], int | None]:
    """The sweep folders a `train -m` command writes into (usually one; `sweep=a,b` gives two),
    and its number of jobs (None when too many to count here). Composes only the overrides that
    decide the folder, once per distinct combination of them."""
    from hydra import compose
    from hydra._internal.utils import get_args_parser

    from entropyctl.cli.checks import MAX_PRODUCT, _combinations
    from entropyctl.cli.config_cmd import hydra_at

    ns = get_args_parser().parse_args(args)
    combos = _combinations(list(ns.overrides), True)
    where = {tuple(o for o in c if o.lstrip("+~").split("=")[0].split("@")[0] in _WHERE) for c in combos}
    dirs: list[Path] = []
    with hydra_at(Path(ns.config_dir) if ns.config_dir else None):
        for overrides in sorted(where):
            cfg = compose(config_name="config", overrides=list(overrides))
            d = Path(str(cfg.runs_dir)) / str(cfg.sweep)
            if d not in dirs:
                dirs.append(d)
    return dirs, len(combos) if len(combos) < MAX_PRODUCT else None


def _write_sweep_json(args: list[str], token: str) -> None:
    """runs/<sweep>/sweep.json once the sweep has ended; a problem here is a warning, never a failure."""
    from entropyctl.runstore.sweep_summary import summarise

    try:
        dirs, expected = _sweep_dirs(args)
        for d in dirs:
            out = summarise(d, token, " ".join(["entropyctl train", *args]), expected if len(dirs) == 1 else None)
            if out is not None:
                errors.say(f"sweep summary: {out}")
    except Exception as e:  # noqa: BLE001 - the runs are complete without it
        errors.say(f"warning: could not write sweep.json ({type(e).__name__}: {errors.first_line(e)})")


def run_hydra(command: str, args: list[str]) -> int:
    import hydra

    args = list(args)
    if "--debug" in args:
        args.remove("--debug")
        errors.enable_debug()
    register_schemas()
    validate(command, args)  # BadInput: one line, exit 2, nothing written
    sys.argv = [f"entropyctl {command}", *args]
    app = hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")(TASKS[command])
    fd, name = tempfile.mkstemp(prefix="entropyctl-sweep-", suffix=".txt")
    os.close(fd)
    os.environ[_FAILURES_ENV] = name
    sweep = command == "train" and ("-m" in args or "--multirun" in args)
    if sweep:
        from entropyctl.runstore.sweep_summary import TOKEN_ENV, new_token

        token = os.environ[TOKEN_ENV] = new_token()
    try:
        try:
            app()
        finally:  # sweep.json also after an interrupted sweep: the jobs that ended are in it
            if sweep:
                os.environ.pop(TOKEN_ENV, None)
                _write_sweep_json(args, token)
        return _sweep_summary(Path(name))  # the failed jobs' lines come last
    finally:
        os.environ.pop(_FAILURES_ENV, None)
        Path(name).unlink(missing_ok=True)


def resume_cli(run_dir: Path, progress: bool | None = None, threads: int | None = None) -> int:
    """`entropyctl resume RUN_DIR`: continue the run with its own saved config."""
    from entropyctl.train.resume import resume

    resume(Path(run_dir), progress=progress, threads=threads)
    return 0
