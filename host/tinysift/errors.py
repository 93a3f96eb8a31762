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
