"""Paired comparisons over seeds: the same seed gives two methods the same initialization
and the same random stream, so their per-seed differences cancel most of the seed noise."""

from __future__ import annotations

import math

import numpy as np

#: The fewest paired seeds a difference is called significant from, and a target judged
#: on. Two seeds give a t interval on one degree of freedom whose width rests on a single
#: difference of differences: two accuracies that moved alike (discrete test counts make
#: that common) shrink it to nothing. The benches' targets plan 5 or 10 seeds.
MIN_SEEDS = 3

#: A half-width or mean at or below this is float rounding, not a difference: differences
#: equal but for rounding give half-widths of 1e-16 to 1e-15 (0.7272 - 0.718 against
#: 0.7082 - 0.699), and two equal accuracies reached by different sums a mean of 1e-17
#: that "exceeded" a zero half-width. Accuracies and fractions are of order 1: a real
#: difference is >= 1e-6.
NO_SPREAD = 1e-12


def half_width(p: dict) -> float | None:
    """A paired difference's half-width, None where it has none (one seed; files written
    before NaN was dropped hold NaN)."""
    h = p.get("half_width")
    return None if h is None or math.isnan(h) else float(h)


def significant(p: dict) -> bool:
    """Whether a paired difference (:func:`paired_difference`'s dict, or one read back from
    a results file) excludes 0: at least :data:`MIN_SEEDS` seeds and the mean beyond the
    half-width, each compared without float rounding (a spread of rounding is none: the
    same difference on every seed of three or more is significant; a mean of rounding is
    0). Judged from the numbers, not a stored ``significant`` flag (a file written under an
    older rule keeps its flag)."""
    h = half_width(p)
    if p.get("mean") is None or h is None or p.get("n", 0) < MIN_SEEDS:
        return False
    return abs(p["mean"]) > max(h, NO_SPREAD)


def paired_difference(a: list[float], b: list[float], level: float = 0.95) -> dict:
    """Mean of ``a - b`` over paired seeds with a Student-t interval.

    Returns ``{"mean", "half_width", "n", "significant"}``; ``significant`` by
    :func:`significant`. One seed has no interval: ``half_width`` is None (JSON ``null``;
    NaN is not JSON), and no seeds no mean either. A spread of float noise is a half-width
    of exactly 0. ``a`` and ``b`` hold one value per seed, in the same seed order: lists of
    other lengths are refused (numpy would pair one value with every seed of the other
    list).
    """
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"a paired difference needs one value per seed on both sides, got "
                         f"{len(a)} and {len(b)}")
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = len(d)
    mean = float(d.mean()) if n else None
    if n < 2:
        return {"mean": mean, "half_width": None, "n": n, "significant": False}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    if half <= NO_SPREAD:
        half = 0.0
    out = {"mean": mean, "half_width": half, "n": n}
    return out | {"significant": significant(out)}


def diff_cell(p: dict) -> str:
    """A paired difference in points: ``+0.42 ± 0.31``, bold when :func:`significant`;
    without an interval (one seed) the mean alone, ``-`` without seeds."""
    if p.get("mean") is None:
        return "-"
    h = half_width(p)
    if h is None:
        return f"{100 * p['mean']:+.2f}"
    cell = f"{100 * p['mean']:+.2f} ± {100 * h:.2f}"
    return f"**{cell}**" if significant(p) else cell
