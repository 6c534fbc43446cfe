"""Progress on stderr: a live bar on a terminal, timed plain lines in a log file or a pipe."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.console import Console

from entropyctl.progress import WorkProgress


def _run(console: Console, times: list[float], total: int, start: int = 0) -> None:
    clock = iter(times)
    with WorkProgress("pretraining", total, unit="steps", start=start, fields=("loss",), console=console,
                      every_s=30.0, clock=lambda: next(clock)) as bar:
        for step in range(start + 1, total + 1):
            bar.update(step, loss=f"{1.0 / step:.3f}")


def test_log_file_gets_first_timed_and_last_lines_not_one_per_step():
    out = io.StringIO()
    # t0, then one clock reading per step: 10 s a step over 10 steps.
    _run(Console(file=out, force_terminal=False, width=200), [0.0] + [10.0 * i for i in range(1, 11)], 10)
    lines = out.getvalue().splitlines()
    # Step 1 at once; then 30 s after the last line (steps 4, 7, 10); 10 is also the end.
    assert lines == [
        "pretraining: 1/10 steps loss 1.000, 0:00:10 elapsed, ~0:01:30 left",
        "pretraining: 4/10 steps loss 0.250, 0:00:40 elapsed, ~0:01:00 left",
        "pretraining: 7/10 steps loss 0.143, 0:01:10 elapsed, ~0:00:30 left",
        "pretraining: 10/10 steps loss 0.100, 0:01:40 elapsed",
    ]


def test_resumed_work_estimates_from_the_units_run_here():
    out = io.StringIO()
    # 90 of 100 rounds were done before; the first one here took 5 s, so 9 more take 45 s.
    _run(Console(file=out, force_terminal=False, width=200), [0.0, 5.0] + [5.0] * 9, 100, start=90)
    first = out.getvalue().splitlines()[0]
    assert first == "pretraining: 91/100 steps loss 0.011, 0:00:05 elapsed, ~0:00:45 left"


def test_terminal_gets_the_live_bar_and_no_plain_lines():
    out = io.StringIO()
    _run(Console(file=out, force_terminal=True, width=120), [0.0] + [10.0 * i for i in range(1, 11)], 10)
    text = out.getvalue()
    assert "10/10" in text and "loss 0.100" in text
    assert "elapsed" not in text  # the plain lines' wording: not printed beside a live bar


def test_disabled_prints_nothing():
    out = io.StringIO()
    clock = iter([0.0] + [1.0] * 5)
    with WorkProgress("x", 5, unit="rounds", fields=(), enabled=False,
                      console=Console(file=out, force_terminal=False), clock=lambda: next(clock)) as bar:
        for i in range(1, 6):
            bar.update(i)
    assert out.getvalue() == ""


def test_train_into_a_log_file_shows_its_progress(tmp_path):
    """stderr to a file, as under SLURM or nohup: the pretraining and the rounds both say where
    they are (a live bar printed nothing there until the end)."""
    log = tmp_path / "job.log"
    with log.open("w") as f:
        res = subprocess.run([sys.executable, "-m", "entropyctl", "train", "experiment=smoke", "rounds=2",
                              f"runs_dir={tmp_path / 'runs'}", "threads=1", "sweep=progress"],
                             stdout=f, stderr=subprocess.STDOUT, timeout=300)
    text = log.read_text()
    assert res.returncode == 0, text
    assert "pretraining the lab base: 1/40 steps loss " in text
    assert "pretraining the lab base: 40/40 steps loss " in text
    assert ": 2/2 rounds reward " in text
    assert "\x1b[" not in text  # no terminal control codes in a log file
