"""Faults (issue 6): NaN from a real cause stops the run as `diverged`; Ctrl-C leaves it
`interrupted` and resumable, over a torn metrics line; a joblib sweep of 4 runs on 2 workers
(two pairs with the same run id) gives each run its own intact directory.

Real `entropyctl` subprocesses on the smoke preset; the NaN run and the Ctrl-C run go side by
side to keep the file under a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from entropyctl.runstore.store import DROPPED, RunStoreError, create_run, read_metrics
from tests.helpers import wait_for_single_run

SMOKE = ("experiment=smoke", "progress=false", "threads=1")
INTR_ROUNDS = 80


def _sigint_default() -> None:
    # A non-interactive shell starts background jobs with SIGINT ignored and Python keeps it
    # ignored: the Ctrl-C below must reach the child however the test runner was started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def entropyctl(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "entropyctl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)




def info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def rounds(run: Path) -> list[int]:
    return [r["round"] for r in read_metrics(run / "metrics.jsonl").rows]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def faults(runs: Path) -> dict:
    """Side by side: a run with an absurd learning rate, and one stopped by Ctrl-C (SIGINT)."""
    # lr 1e30: the entropy bonus's first Adam step leaves non-finite weights/gradients.
    nan = entropyctl("train", *SMOKE, f"runs_dir={runs}", "sweep=nan", "intervention=entropy_bonus",
                     "optim.lr=1e30", "rounds=4")
    # 80 rounds (~0.1 s each): Ctrl-C lands mid-run even when this process is starved for seconds
    # (5 and then 20 rounds finished before the signal in a fresh-clone CI run)
    intr = entropyctl("train", *SMOKE, f"runs_dir={runs}", "sweep=intr", f"rounds={INTR_ROUNDS}", "checkpoint_every=2")
    run = wait_for_single_run(runs / "intr")
    while (run / "metrics.jsonl").read_text().count("\n") < 3:
        assert intr.poll() is None, intr.communicate()
        time.sleep(0.01)
    intr.send_signal(signal.SIGINT)
    out = {"nan": (nan, *nan.communicate(timeout=300)), "intr": (intr, *intr.communicate(timeout=300))}
    out["intr_run"] = run
    return out


def test_nan_stops_the_run_as_diverged_with_round_and_reason(faults, runs: Path):
    proc, stdout, stderr = faults["nan"]
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert stderr.startswith("error: run diverged in round 0: non-finite")
    run = wait_for_single_run(runs / "nan")
    meta = info(run)
    assert meta["status"] == "diverged" and meta["diverged_round"] == 0
    assert meta["error"].startswith("round 0: non-finite") and meta["ended"]
    # Logs intact: every file readable, each logged round once.
    assert rounds(run) == list(range(meta["rounds_done"]))
    assert (run / "config.yaml").read_text() and (run / "overrides.txt").read_text()
    from entropyctl.train.resume import resume

    with pytest.raises(RunStoreError, match="run is diverged, nothing to resume"):
        resume(run)


def test_ctrl_c_marks_interrupted_and_resumes_over_a_torn_line(faults):
    proc, stdout, stderr = faults["intr"]
    run = faults["intr_run"]
    assert proc.returncode == 130, stderr
    assert stderr.strip() == f"error: interrupted; continue it with: entropyctl resume {run}"
    meta = info(run)
    assert meta["status"] == "interrupted" and meta["error"].startswith("interrupted in round")
    done = rounds(run)
    assert done == list(range(len(done))) and len(done) >= 3
    # A crash mid-write leaves a line without its newline: resume must drop it, not choke.
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"round": 99, "reward/me')
    res = subprocess.run([sys.executable, "-m", "entropyctl", "resume", str(run)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert rounds(run) == list(range(INTR_ROUNDS))
    meta = info(run)
    # the newest checkpoint (every 2 rounds) at or just before the rows logged when Ctrl-C came
    start = meta["resumes"][0]["from_round"]
    assert meta["status"] == "finished" and start % 2 == 0 and len(done) - 2 <= start <= len(done)
    moved = [json.loads(line) for line in (run / DROPPED).read_text().splitlines()]
    assert moved[-1]["line"] == '{"round": 99, "reward/me'
    assert [json.loads(m["line"])["round"] for m in moved[:-1]] == list(range(start, len(done)))


def test_sigterm_is_an_interrupt():
    from entropyctl.train.loop import _sigterm_as_interrupt

    with pytest.raises(KeyboardInterrupt), _sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_joblib_sweep_of_4_runs_on_2_workers(runs: Path):
    """seed=0,0,1,1: two pairs of jobs with the same run id, side by side on two workers."""
    p = entropyctl("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *SMOKE,
                   f"runs_dir={runs}", "sweep=par", "rounds=2", "seed=0,0,1,1")
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr[-2000:]
    dirs = sorted(d for d in (runs / "par").iterdir() if d.is_dir())
    assert len(dirs) == 4, dirs
    assert sorted(info(d)["seed"] for d in dirs) == [0, 0, 1, 1]
    assert len({info(d)["pid"] for d in dirs}) >= 2  # really two worker processes
    for d in dirs:
        meta = info(d)
        assert meta["id"] == d.name and meta["status"] == "finished"
        assert rounds(d) == [0, 1]
        assert f"seed: {meta['seed']}" in (d / "config.yaml").read_text()
        # threads unset: each of the 2 parallel jobs gets its share of this process's cores
        assert f"threads: {max(1, len(os.sched_getaffinity(0)) // 2)}\n" in (d / "config.yaml").read_text()
    jobs = json.loads((runs / "par" / "sweep.json").read_text())["jobs"]  # runstore/sweep_summary.py
    assert sorted(j["run_dir"] for j in jobs) == sorted(d.name for d in dirs)
    assert [j["status"] for j in jobs] == ["done"] * 4 and sorted(j["seed"] for j in jobs) == [0, 0, 1, 1]


def test_job_threads_share_the_cores_among_parallel_jobs():
    from entropyctl.cli.train_cmd import job_threads

    assert job_threads(3, 2, 8) == 3  # set by the user: kept
    assert job_threads(0, None, 8) == 8  # one job at a time: all its cores
    assert job_threads(0, 2, 8) == 4 and job_threads(0, 3, 8) == 2 and job_threads(0, 16, 8) == 1
    assert job_threads(0, -1, 8) == 1  # joblib's -1: one job per core
    assert job_threads(0, -2, 8) == 1 and job_threads(0, -7, 8) == 4  # -7: 2 jobs on 8 cores


def test_two_writers_of_one_sweep_never_share_a_run_dir(tmp_path: Path):
    """Two sweeps into one folder at the same second: every run still gets its own directory."""
    made, barrier = [], threading.Barrier(8)

    def one(i: int) -> None:
        barrier.wait()
        w = create_run(tmp_path, "shared", "grpo__lab__s0__20250101-000000", f"seed: {i}\n", [], {"seed": i})
        w.append({"round": 0, "writer": i})
        w.finish("finished")
        w.close()
        made.append(w.path)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8
    for d in made:
        i = info(d)["seed"]
        assert (d / "config.yaml").read_text() == f"seed: {i}\n"
        assert read_metrics(d / "metrics.jsonl").rows == [{"round": 0, "writer": i}]
