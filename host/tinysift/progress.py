"""Progress bars for long host work (rich, transient: gone from the terminal when done), and
the console that progress lines are printed on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_bar_console = None


def bar_console():
    """The console progress bars are drawn on: stderr, so that stdout carries only results
    (a bar on stdout left a blank line, or under ``TERM=dumb`` the bar itself, in output
    piped to a file)."""
    global _bar_console
    if _bar_console is None:
        _bar_console = make_console(stderr=True)
    return _bar_console


class ProgressBar:
    """One task's bar; every method is a no-op when the bar is not shown: when ``show`` is
    false or stderr is not a terminal (a bar cannot be redrawn in a file or a pipe; there it
    left a blank line, and a long run's log gained nothing)."""

    def __init__(self, show: bool, total: float, label: str, unit: str,
                 fields: dict[str, str] | None = None):
        """``fields``: named values shown after the count (``{"loss": "-"}``: "loss -"),
        changed by :meth:`update`."""
        self._bar = self._task = None
        if not show or not bar_console().is_terminal:
            return
        import sys

        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        fields = fields or {}
        # rich routes prints made while a bar is live through the bar's console (stderr):
        # only when stdout is the same terminal, or `> results.txt` would lose them
        try:
            stdout_tty = sys.stdout.isatty()
        except (AttributeError, ValueError):
            stdout_tty = False
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                             TextColumn(f"{{task.completed:.0f}}/{{task.total:.0f}} {unit}"),
                             *(TextColumn(f"{name} {{task.fields[{name}]}}") for name in fields),
                             TimeRemainingColumn(), transient=True, console=bar_console(),
                             redirect_stdout=stdout_tty)
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, **fields)

    def update(self, completed: float, total: float | None = None, **fields: str) -> None:
        """``total``: the work's size where it is known only once the work runs (a flow fit
        stops at its epoch cap, before the steps it was given)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, total=total, **fields)

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


def make_console(stderr: bool = False):
    """A rich Console on stdout (or stderr) that wraps at the terminal's width in a terminal
    and never when the stream is a pipe, a file or CI: a table cell is never cut, a progress
    line never split (``bench ... 2> log``: "train 2.0" and its "s" were two lines)."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Console(stderr=stderr, width=None if tty else 10_000)
