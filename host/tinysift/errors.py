"""Errors that tinysift reports to the user: each names the problem and the fix."""

from __future__ import annotations


class TinysiftError(Exception):
    """Base class of every error tinysift raises on bad input or environment.

    The CLI prints the message (no traceback) and exits with status 2.
    """


class DatasetError(TinysiftError):
    """A dataset is unknown, missing, corrupt or malformed."""


class BudgetError(TinysiftError):
    """A keep fraction, count or per-class budget is out of range."""


class FitError(TinysiftError):
    """A model or dataset does not fit the target board."""


class UnsupportedOpError(TinysiftError):
    """A model uses an operator the firmware engine does not implement."""


class DeviceError(TinysiftError):
    """The device or its serial link misbehaved (silent, garbled, reset)."""


class DeviceUnavailable(DeviceError):
    """No device run can happen: the firmware does not build, the emulator is missing or does
    not start, or the serial port cannot be opened. Every run would fail the same way, so a
    bench stops at once with it instead of failing each run in turn (a run that fails on its
    own, e.g. a timeout or a garbled link, is a plain :class:`DeviceError`)."""


class RunBusy(TinysiftError):
    """Another process is writing the same run folder."""


class StageError(TinysiftError):
    """A stage's input stage did not finish, or its outputs changed since."""


class Terminated(BaseException):  # noqa: N818 - raised by a signal, like KeyboardInterrupt
    """SIGTERM or SIGHUP reached the CLI: unwinds like Ctrl-C, so every cleanup runs (the
    emulator is stopped, partial results are written)."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


class ClusterError(TinysiftError):
    """A cluster engine (Dask) is missing, unreachable, or its workers cannot run the tasks."""


class _FailedTasks:
    """What both bench-ending errors carry: ``failures``, (seed, what the task was, its error)
    of each failed task (tinysift.bench.driver.Failure)."""

    def __init__(self, message: str, failures: list | None = None) -> None:
        super().__init__(message)
        self.failures = list(failures or [])


class TasksFailed(_FailedTasks, TinysiftError):
    """Some of a bench's tasks (trainings) failed, each with an error tinysift reports to the
    user, while the others ran on and were logged: rerunning the command resumes, training
    only the failed ones."""


class TasksFailedBug(_FailedTasks, RuntimeError):
    """Like :class:`TasksFailed`, but at least one task failed with an unexpected error (a bug
    in tinysift, or in a plug-in method; neither a :class:`TinysiftError` nor out of memory),
    so the CLI reports it as a bug (exit status 1). Raised from the first such error (its
    traceback)."""


def is_out_of_memory(error: BaseException) -> bool:
    """Out of memory: Python's MemoryError or TensorFlow's ResourceExhaustedError (a model
    too wide for the machine), told by name so that no caller imports TensorFlow."""
    return isinstance(error, MemoryError) or any(
        t.__name__ == "ResourceExhaustedError" for t in type(error).__mro__)


def out_of_memory_said(error: BaseException) -> str:
    """``out of memory (<the error's first line>)``, cut to 200 characters (TensorFlow's
    names a whole tensor shape), or its type when it has no text."""
    text = (str(error).strip().splitlines() or [""])[0][:200]
    return f"out of memory ({text or type(error).__name__})"


def closest_name(name: object, known) -> str | None:
    """The one of ``known`` that ``name`` is another case or a typo of (``VQ``, ``vqq``:
    vq); None when none is close."""
    import difflib

    if not isinstance(name, str) or not name:
        return None
    known = [str(k) for k in known]
    same = [k for k in known if k.lower() == name.lower()]
    # difflib's default cutoff: at 0.5, `updates` was "dataset?" and `full` "flow?"
    close = same or difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: object, known) -> str:
    """`` (did you mean X?)`` for a ``name`` :func:`closest_name` finds in ``known``, for an
    "unknown ..." message; '' when none is close."""
    close = closest_name(name, known)
    return f" (did you mean {close}?)" if close else ""
