"""Argument types shared by the tools/*.py scripts: argparse ``type=`` callables that raise
ArgumentTypeError, so a bad value ends, while the arguments are parsed and before any work,
in one line naming the option and the value (``argument --seeds: 0: give at least 1``) and
exit status 2. Import it as ``_args`` (a script's own folder is first on ``sys.path``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def at_least(least: int, unit: str = "") -> Callable[[str], int]:
    """A whole number ``>= least``; ``unit`` names what is counted in the message
    (``at_least(1, "image")``: ``-1: give at least 1 image``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value}: give at least {least}"
                                             + (f" {unit}" if unit else ""))
        return value
    return parse


def fraction(text: str) -> float:
    """A number in (0, 1]: a part of something (a budget of the full recipe's passes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:  # nan too
        raise argparse.ArgumentTypeError(f"{text}: give a fraction in (0, 1]")
    return value


def int_list(least: int = 0) -> Callable[[str], list[int]]:
    """Whole numbers separated by commas (``0,1,2``), each ``>= least``."""
    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a list of integers separated "
                                             "by commas (e.g. 0,1,2)") from None
        bad = [v for v in values if v < least]
        if bad:
            raise argparse.ArgumentTypeError(f"{text!r}: every value must be >= {least}, "
                                             f"got {', '.join(map(str, bad))}")
        return values
    return parse


def positive_list(what: str = "value", most: float | None = None,
                  unit: str = "") -> Callable[[str], list[float]]:
    """Numbers separated by commas (``0.03,0.01``), each above 0 and, with ``most``, at most
    that; ``what`` names one in the message (``every keep must be above 0``), ``unit`` says
    what the bound is (``every keep must be at most 1 (a fraction)``)."""
    def parse(text: str) -> list[float]:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers separated by "
                                             "commas (e.g. 0.03,0.01)") from None
        if any(not v > 0 for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: every {what} must be above 0")
        if most is not None and any(v > most for v in values):
            raise argparse.ArgumentTypeError(f"{text!r}: every {what} must be at most {most:g}"
                                             + (f" ({unit})" if unit else ""))
        return values
    return parse
