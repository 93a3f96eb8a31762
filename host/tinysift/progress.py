"""Progress bars for long host work (rich, transient: gone from the terminal when done)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class ProgressBar:
    """One task's bar; every method is a no-op when the bar is not shown."""

    def __init__(self, show: bool, total: float, label: str, unit: str):
        self._bar = self._task = None
        if not show:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                             TextColumn(f"{{task.completed:.0f}}/{{task.total:.0f}} {unit}"),
                             TimeRemainingColumn(), transient=True)
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def update(self, completed: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextmanager
def progress_bar(show: bool, total: float, label: str, unit: str) -> Iterator[ProgressBar]:
    """A :class:`ProgressBar` stopped however the block ends."""
    bar = ProgressBar(show, total, label, unit)
    try:
        yield bar
    finally:
        bar.stop()
