"""Paired differences at small n: when one counts as significant, and what a results file
holds for one seed (tinysift.bench.stats)."""

from __future__ import annotations

import json


def test_two_seeds_are_never_a_significant_difference():
    """Two seeds whose differences are equal have a half-width of 0: the interval "excluded"
    0 and printed bold as **+1.00 ± 0.00**; two seeds with a tight, real spread cleared the
    t interval on one degree of freedom. A significant difference needs MIN_SEEDS seeds."""
    from tinysift.bench.stats import MIN_SEEDS, diff_cell, paired_difference

    same = paired_difference([0.81, 0.72], [0.80, 0.71])
    assert same["n"] == 2 and same["half_width"] == 0.0 and not same["significant"]
    assert diff_cell(same) == "+1.00 ± 0.00"
    tight = paired_difference([0.85, 0.761], [0.80, 0.71])  # +5.0 and +5.1 points
    assert 0 < tight["half_width"] < tight["mean"]  # the interval alone would exclude 0
    assert not tight["significant"] and not diff_cell(tight).startswith("**")
    assert MIN_SEEDS == 3
    three = paired_difference([0.85, 0.761, 0.905], [0.80, 0.71, 0.85])
    assert three["significant"] and diff_cell(three).startswith("**")
    # a results file written before: its stored flag is not trusted
    stored = {"mean": 0.0033, "half_width": 7.05e-16, "n": 2, "significant": True}
    assert diff_cell(stored) == "+0.33 ± 0.00"


def test_float_rounding_is_neither_spread_nor_difference():
    """Equal differences but for rounding have a half-width of exactly 0 (not 6e-17); two
    methods with equal accuracies reached by different sums differ by rounding (5.6e-17 on
    every seed), which "exceeded" that zero half-width and printed **+0.00 ± 0.00**. The
    same real difference on every one of three seeds stays significant."""
    from tinysift.bench.stats import diff_cell, paired_difference, significant

    a, b = [0.7272, 0.7082, 0.9424], [0.718, 0.699, 0.9332]  # +0.92 points on each seed
    p = paired_difference(a, b)
    assert p["half_width"] == 0.0 and p["significant"] and diff_cell(p) == "**+0.92 ± 0.00**"
    rounding = paired_difference([0.1 + 0.2] * 3, [0.3] * 3)
    assert 0 < rounding["mean"] < 1e-15 and not rounding["significant"]
    assert diff_cell(rounding) == "+0.00 ± 0.00"
    assert not significant({"mean": 5.6e-17, "half_width": 0.0, "n": 5, "significant": True})


def test_one_seed_has_no_interval_and_its_json_is_standard():
    """One seed: no half-width, written as JSON null (NaN is no standard JSON; a strict
    reader refuses the results file); no seeds: no mean either. A file written with NaN is
    still read."""
    from tinysift.bench.stats import diff_cell, paired_difference, significant

    one = paired_difference([0.8], [0.7])
    assert one["half_width"] is None and not one["significant"] and diff_cell(one) == "+10.00"
    none = paired_difference([], [])
    assert none["mean"] is None and diff_cell(none) == "-"
    for p in (one, none):
        json.dumps(p, allow_nan=False)  # raises on NaN
    old = json.loads('{"mean": 0.1, "half_width": NaN, "n": 1, "significant": false}')
    assert not significant(old) and diff_cell(old) == "+10.00"


def test_significant_needs_the_mean_strictly_beyond_the_interval_on_known_seeds():
    """The edges of the rule as documented: a mean exactly on its half-width is an interval
    that reaches 0 (not beyond it); a difference whose seeds are not recorded (no ``n``) or
    that has no interval is not shown to have MIN_SEEDS seeds, so it is not significant;
    neither is one without a mean (nothing to compare, not a TypeError)."""
    from tinysift.bench.stats import MIN_SEEDS, diff_cell, significant

    on_edge = {"mean": 0.01, "half_width": 0.01, "n": 5}
    assert not significant(on_edge) and not diff_cell(on_edge).startswith("**")
    assert not significant({"mean": -0.01, "half_width": 0.01, "n": 5})
    assert significant({"mean": 0.0101, "half_width": 0.01, "n": 5})
    assert significant({"mean": -0.0101, "half_width": 0.01, "n": 5})
    assert not significant({"mean": 0.02, "half_width": 0.01})  # seeds unknown
    assert significant({"mean": 0.02, "half_width": 0.01, "n": MIN_SEEDS})
    assert not significant({"mean": 0.02, "half_width": None, "n": MIN_SEEDS})
    assert not significant({"mean": None, "half_width": 0.01, "n": MIN_SEEDS})


def test_lists_of_other_lengths_are_refused_either_way():
    """One value per seed on both sides: a longer ``a`` is refused like a longer ``b``."""
    import pytest

    from tinysift.bench.stats import paired_difference

    for a, b in (([0.8, 0.7, 0.9], [0.7, 0.6]), ([0.8, 0.7], [0.7, 0.6, 0.5])):
        with pytest.raises(ValueError, match="one value per seed"):
            paired_difference(a, b)


def test_paired_interval_is_scipys_paired_t_interval():
    """The interval checked against an independent computation: scipy's paired t-test
    (``ttest_rel``) and its 95% confidence interval of the mean of ``a - b``, on seeded
    random accuracies at 3, 5 and 10 seeds. Its centre is the mean (a minus b, not b minus
    a), its half-width t(0.975, n-1) x sd(ddof 1) / sqrt(n), and a difference is significant
    exactly when that interval excludes 0."""
    import math

    import numpy as np
    from scipy import stats

    from tinysift.bench.stats import paired_difference

    rng = np.random.default_rng(7)
    for n, shift in ((3, 0.004), (5, 0.01), (10, -0.006), (10, 0.0)):
        b = rng.uniform(0.7, 0.9, n)
        a = b + shift + rng.normal(0, 0.006, n)
        ci = stats.ttest_rel(a, b).confidence_interval(0.95)
        p = paired_difference(list(a), list(b))
        assert p["n"] == n
        assert math.isclose(p["mean"], (ci.low + ci.high) / 2, rel_tol=1e-9)
        assert math.isclose(p["half_width"], (ci.high - ci.low) / 2, rel_tol=1e-9)
        assert p["significant"] == (ci.low > 0 or ci.high < 0)
