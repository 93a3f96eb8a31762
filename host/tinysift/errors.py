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


class ClusterError(TinysiftError):
    """A cluster engine (Dask) is missing, unreachable, or its workers cannot run the tasks."""
