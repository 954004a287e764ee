"""Progress bars on standard error, so standard output keeps only the results.

When standard error is not a terminal (a log file, a pipe), nothing is redrawn; the final
state of each bar is printed once at the end.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RowsColumn(ProgressColumn):
    """Rows read and rows per second; the bar itself advances by bytes of the file."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.finished_time if task.finished else task.elapsed
        rate = rows / elapsed if elapsed else 0.0
        return Text(f"{rows:,} rows {rate:,.0f} rows/s", style="progress.data.speed")


class _Bars:
    def __init__(self, *columns: ProgressColumn | str, enabled: bool) -> None:
        self._progress = Progress(
            *columns, console=Console(stderr=True), disable=not enabled, transient=False
        )

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()


class LoadProgress(_Bars):
    """One bar per input file, sized in bytes so the ETA comes from the file size."""

    def __init__(self, *, enabled: bool) -> None:
        super().__init__(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TaskProgressColumn(),
            _RowsColumn(),
            TimeRemainingColumn(),
            enabled=enabled,
        )
        self._task: TaskID | None = None
        self._size = 1

    def start_file(self, name: str, size: int) -> None:
        self._size = max(size, 1)
        self._task = self._progress.add_task(name, total=self._size, rows=0)

    def update(self, *, position: int, rows: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=position, rows=rows)

    def finish_file(self, *, rows: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._size, rows=rows)
            self._progress.stop_task(self._task)
            self._task = None


class StepProgress(_Bars):
    """One bar over a fixed number of steps, named after the step in progress."""

    def __init__(self, description: str, steps: int, *, enabled: bool) -> None:
        super().__init__(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            enabled=enabled,
        )
        self._description = description
        self._task = self._progress.add_task(description, total=steps)

    def step(self, name: str) -> None:
        self._progress.update(self._task, advance=1, description=f"{self._description}: {name}")
