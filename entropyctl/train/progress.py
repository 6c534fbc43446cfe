"""A rich progress bar per run: round, reward and entropy as they are logged."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RoundProgress:
    def __init__(self, name: str, total: int, start: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("reward {task.fields[reward]} H {task.fields[entropy]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled,
        )
        self.task = self.progress.add_task(name[:32], total=total, completed=start, reward="-", entropy="-")

    def __enter__(self) -> "RoundProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def advance(self, row: dict) -> None:
        self.progress.update(self.task, advance=1, reward=f"{row['reward/mean']:.3f}",
                             entropy=f"{row['entropy/seqmean']:.3f}")
