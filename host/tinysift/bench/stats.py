"""Paired comparisons over seeds: the same seed gives two methods the same initialization
and the same random stream, so their per-seed differences cancel most of the seed noise."""

from __future__ import annotations

import math

import numpy as np


def paired_difference(a: list[float], b: list[float], level: float = 0.95) -> dict:
    """Mean of ``a - b`` over paired seeds with a Student-t interval.

    Returns ``{"mean", "half_width", "n", "significant"}``; ``significant`` when the
    interval excludes 0. One seed has no interval (``half_width`` NaN, not significant).
    ``a`` and ``b`` hold one value per seed, in the same seed order: lists of other lengths
    are refused (numpy would pair one value with every seed of the other list).
    """
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"a paired difference needs one value per seed on both sides, got "
                         f"{len(a)} and {len(b)}")
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "half_width": float("nan"), "n": n, "significant": False}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "half_width": half, "n": n,
            "significant": bool(abs(mean) > half)}


def diff_cell(p: dict) -> str:
    """A paired difference in points: ``+0.42 ± 0.31`` (bold when the interval excludes 0)."""
    if math.isnan(p["half_width"]):
        return f"{100 * p['mean']:+.2f}"
    cell = f"{100 * p['mean']:+.2f} ± {100 * p['half_width']:.2f}"
    return f"**{cell}**" if p["significant"] else cell
