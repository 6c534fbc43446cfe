"""Every bad input of issue 6, table-driven: the real `entropyctl` process answers with one line
naming the problem (and its fix), exit code 2, no traceback, and leaves every file as it was.

Each row gets its own copy of a small world (a runs folder with finished and broken runs, a
few bad log files) and its snapshot is compared after the command. The table runs in-process
through the real Typer app (a subprocess costs ~1 s of imports per row); one row of each kind,
plus the --debug ones, also run as real processes.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.runstore.store import create_run

RUN = "grpo__lab__s0__20250101-000000"


@dataclass(frozen=True)
class Row:
    id: str
    args: tuple[str, ...]  # "{W}" is the row's own world folder
    says: tuple[str, ...]  # substrings of the one line
    code: int = 2


T = ("train", "experiment=smoke", "runs_dir={W}/runs", "progress=false")
ROWS = [
    # -- train: overrides (checked by composing every job before anything runs)
    Row("unknown-key", (*T, "foo=1"), ("unknown config key 'foo'", "top-level keys", "seed")),
    Row("unknown-nested-key", (*T, "optim.lrr=1"), ("unknown config key 'optim.lrr'", "keys of optim", "lr")),
    Row("added-unknown-key", (*T, "+foo=1"), ("unknown config key 'foo'",)),
    Row("wrong-type-int", (*T, "seed=abc"), ("seed takes an integer", "'abc'")),
    Row("wrong-type-float", (*T, "optim.lr=fast"), ("optim.lr takes a number", "'fast'")),
    Row("wrong-type-bool", (*T, "progress=maybe"), ("progress takes true or false",)),
    Row("unknown-intervention", (*T, "intervention=nope"),
        ("unknown intervention 'nope'", "valid ones:", "clip_cov", "entropy_bonus", "grpo")),
    Row("unknown-intervention-in-stack", (*T, "intervention=[entropy_bonus,nope]"),
        ("unknown intervention 'nope'", "valid ones:", "grpo")),
    Row("unknown-task", (*T, "task=nope"), ("unknown task 'nope'", "valid ones: addition")),
    Row("unknown-experiment", (*T, "experiment=nope"), ("unknown experiment 'nope'", "smoke")),
    Row("two-surrogates", (*T, "intervention=[grpo,clip_cov]"),
        ("two surrogate interventions at once", "grpo and clip_cov", "pick one")),
    Row("unknown-intervention-param", (*T, "intervention=clip_cov", "intervention.clip_cov.nope=1"),
        ("intervention 'clip_cov' has no parameter 'nope'", "frac")),
    Row("wrong-type-intervention-param", (*T, "intervention=clip_cov", "intervention.clip_cov.frac=abc"),
        ("intervention.clip_cov.frac=abc", "takes a number")),
    Row("param-of-unselected-intervention", (*T, "intervention.clip_cov.frac=0.1"),
        ("intervention 'clip_cov' is not selected", "intervention=clip_cov")),
    Row("missing-model-path", (*T, "model.path={W}/no-such-model"),
        ("no-such-model", "not a local Hugging Face checkpoint", "leave model.path unset")),
    Row("hf-model-without-path", (*T, "model=hf"), ("model=hf needs the checkpoint", "model.path=")),
    Row("sweep-escapes-runs", (*T, "sweep=../evil"), ("invalid sweep name '../evil'", "no '..'")),
    Row("model-name-escapes-runs", (*T, "model.name=../../x"), ("invalid model.name",)),
    Row("sweep-with-bad-value", ("train", "-m", "experiment=smoke", "runs_dir={W}/runs", "seed=0,x"),
        ("seed takes an integer", "'x'")),
    Row("sweep-without-m", (*T, "seed=1,2"), ("is a sweep", "add -m")),
    Row("unparsable-override", (*T, "seed=[1,"), ("cannot parse the override",)),
    Row("unknown-launcher", (*T, "hydra/launcher=nope"), ("unknown launcher 'nope'", "joblib")),
    Row("out-of-range", (*T, "rounds=0"), ("rounds=0 is out of range", "rounds>=1")),
    # -- resume
    Row("resume-finished-run", ("resume", f"{{W}}/runs/sw/{RUN}"), ("run is finished", "nothing to resume")),
    Row("resume-not-a-run", ("resume", "{W}/runs"), ("not a run directory",)),
    Row("resume-corrupted-metrics", ("resume", "{W}/runs/broken/bad-metrics"),
        ("metrics.jsonl:5", "corrupted metrics line")),
    Row("resume-corrupted-run-json", ("resume", "{W}/runs/broken/bad-run-json"), ("corrupted run.json",)),
    # -- fit-law (entropyctl/cli/fit_law.py)
    Row("fit-law-empty-file", ("fit-law", "{W}/logs/empty.jsonl"), ("empty.jsonl", "empty")),
    Row("fit-law-truncated-file", ("fit-law", "{W}/logs/truncated.jsonl"), ("truncated.jsonl",)),
    Row("fit-law-wrong-format", ("fit-law", "{W}/logs/wrong.png"), ("wrong.png",)),
    Row("fit-law-nan-file", ("fit-law", "{W}/logs/nan.csv"), ("NaN",)),
    Row("fit-law-corrupted-metrics", ("fit-law", "{W}/runs/broken/bad-metrics"), ("corrupted metrics line",)),
    Row("fit-law-corrupted-run-json", ("fit-law", "{W}/runs/broken/bad-run-json"), ("corrupted run.json",)),
    # -- compare (entropyctl/cli/compare.py)
    Row("compare-no-runs", ("compare", "{W}/logs"), ("no runs",)),
    Row("compare-corrupted-metrics", ("compare", "{W}/runs/broken/bad-metrics"), ("corrupted metrics line",)),
    Row("compare-corrupted-run-json", ("compare", "{W}/runs/broken/bad-run-json"), ("corrupted run.json",)),
]


def _make_run(runs: Path, sweep: str, name: str, status: str) -> Path:
    w = create_run(runs, sweep, name, "seed: 0\n", ["seed=0"], {"intervention": "grpo", "seed": 0,
                                                               "rounds_planned": 12})
    for r in range(12):
        H = 0.9 * math.exp(-r / 6) + 0.05
        w.append({"round": r, "entropy/seqmean": H, "eval/acc": 0.9 - 0.2 * math.exp(H),
                  "reward/mean": 0.85 - 0.2 * math.exp(H)})
    w.update(rounds_done=12)
    w.finish(status)
    w.close()
    return w.path


def _world(root: Path) -> Path:
    runs = root / "runs"
    _make_run(runs, "sw", RUN, "finished")
    bad = _make_run(runs, "broken", "bad-metrics", "interrupted")
    lines = (bad / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[4] = '{"round": 4, "entropy/seqm\n'  # a torn line in the middle: not ours to repair
    (bad / "metrics.jsonl").write_text("".join(lines))
    bad = _make_run(runs, "broken", "bad-run-json", "interrupted")
    (bad / "run.json").write_text('{"id": "bad-run-json", "sta')
    logs = root / "logs"
    logs.mkdir()
    (logs / "empty.jsonl").write_text("")
    (logs / "truncated.jsonl").write_text('{"step": 1, "entropy": 0.5, "rew')
    (logs / "wrong.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    (logs / "nan.csv").write_text("step,entropy,reward\n1,nan,nan\n2,nan,nan\n3,nan,nan\n")
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its kind, size, mtime and content hash."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_size if p.is_file() else 0, st.st_mtime_ns, digest)
    return out


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "ENTROPYCTL_DEBUG")}
    env["COLUMNS"] = "400"  # judge lines, not terminal wrapping
    env.update(extra)
    return env


def entropyctl(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entropyctl", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or _env())


def _world_copy(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest, symlinks=True, copy_function=shutil.copy2)
    return dest


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return _world(tmp_path_factory.mktemp("world"))


def _check(row: Row, code: int, text: str, before: dict, after: dict) -> None:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert code == row.code, text
    assert "Traceback" not in text and len(lines) == 1, text
    for part in row.says:
        assert part in lines[0], (part, lines[0])
    assert after == before, "the command changed files"


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, world: Path, tmp_path: Path):
    """In-process through the real Typer app (CliRunner): the whole table in seconds."""
    w = _world_copy(world, tmp_path / "w")
    before = snapshot(w)
    out = CliRunner().invoke(app, [a.replace("{W}", str(w)) for a in row.args])
    _check(row, out.exit_code, out.output, before, snapshot(w))


# One row of each kind again as a real process: what a user sees, exit status included.
PROCESS_ROWS = ["unknown-key", "missing-model-path", "resume-corrupted-metrics", "compare-corrupted-run-json"]


def test_bad_input_in_a_real_process(world: Path, tmp_path: Path):
    rows = [r for r in ROWS if r.id in PROCESS_ROWS]
    jobs = []
    for row in rows:
        w = _world_copy(world, tmp_path / row.id)
        jobs.append((row, w, snapshot(w)))

    def one(job):
        row, w, _ = job
        return entropyctl(*[a.replace("{W}", str(w)) for a in row.args])

    with ThreadPoolExecutor(max_workers=2) as pool:
        outs = list(pool.map(one, jobs))
    for (row, w, before), out in zip(jobs, outs):
        _check(row, out.returncode, out.stdout + out.stderr, before, snapshot(w))


def test_debug_shows_the_traceback(tmp_path):
    for env, args in ((_env(), ("--debug", "train", "foo=1")), (_env(HYDRA_FULL_ERROR="1"), ("train", "seed=x"))):
        out = entropyctl(*args, f"runs_dir={tmp_path}/runs", env=env)
        assert out.returncode == 2 and "Traceback" in out.stderr, out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "runs").exists()


def test_valid_stacks_and_sweeps_still_compose(tmp_path):
    out = entropyctl("train", "--cfg", "job", "intervention=[clip_cov,entropy_bonus]",
                     "intervention.clip_cov.frac=0.1", "seed=3", f"runs_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert "frac: 0.1" in out.stdout and "coef:" in out.stdout
    assert list(tmp_path.iterdir()) == []
