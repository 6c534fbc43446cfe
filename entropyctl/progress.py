"""Progress of long work (pretraining steps, a run's rounds) on stderr.

On a terminal: a live rich bar. Anywhere else (a SLURM or nohup log, `2>&1 | tee`), a live bar
prints nothing until the work ends -- a 3-minute pretraining looked hung -- so there it is a
plain line at the first step, then at most one every `LINE_EVERY_S` seconds, and one at the end.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LINE_EVERY_S = 30.0  # a log file gets a line this often: readable in `tail -f`, short over hours


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


class WorkProgress:
    """`label`, `total` units (`unit`: "steps", "rounds"), `start` of them done already (a
    resumed run); `fields`: named values shown beside the count, given to `update`.
    `console` and `clock` default to stderr and the monotonic clock."""

    def __init__(self, label: str, total: int, *, unit: str, start: int = 0, fields: tuple[str, ...] = (),
                 enabled: bool = True, console: Console | None = None,
                 every_s: float = LINE_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.label, self.total, self.unit, self.start = label, total, unit, start
        self.fields = fields
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.every_s, self.clock = every_s, clock
        self.done = start
        self.values = {f: "-" for f in fields}
        self.t0 = self.last_line = 0.0
        if self.live:
            shown = " ".join(f"{f} {{task.fields[{f}]}}" for f in fields)
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn(shown), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=self.console)
            self.task = self.bar.add_task(label, total=total, completed=start, **self.values)

    def __enter__(self) -> "WorkProgress":
        self.t0 = self.clock()
        if self.live:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.bar.__exit__(*exc)

    def update(self, completed: int, **values) -> None:
        """`completed` units done in all; `values` for the fields (formatted already)."""
        first = self.done == self.start
        self.done = completed
        self.values.update(values)
        if not self.enabled:
            return
        if self.live:
            self.bar.update(self.task, completed=completed, **values)
            return
        now = self.clock()
        if first or completed >= self.total or now - self.last_line >= self.every_s:
            self.last_line = now
            self.console.print(self.line(now - self.t0), markup=False, highlight=False, soft_wrap=True)

    def line(self, elapsed: float) -> str:
        """One plain progress line, `elapsed` seconds into the work."""
        shown = "".join(f" {f} {self.values[f]}" for f in self.fields)
        text = f"{self.label}: {self.done}/{self.total} {self.unit}{shown}, {_clock(elapsed)} elapsed"
        ran = self.done - self.start
        if 0 < ran and self.done < self.total:
            text += f", ~{_clock(elapsed / ran * (self.total - self.done))} left"
        return text
