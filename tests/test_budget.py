"""'keep' always means kept: fractions, counts and class quotas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinysift.errors import BudgetError
from tinysift.selection.budget import (
    balanced_subset,
    class_quotas,
    fraction_count,
    parse_keep,
    resolve_keep,
    validation_split,
)


def test_parse_keep():
    assert parse_keep("0.1") == 0.1 and isinstance(parse_keep("0.1"), float)
    assert parse_keep("180") == 180 and isinstance(parse_keep("180"), int)
    assert parse_keep("1.0") == 1.0


@pytest.mark.parametrize("keep", ["0", "0.0", "-0.1", "1.5", "nan", "-3", "2000", "abc"])
def test_bad_keep_refused(keep):
    with pytest.raises(BudgetError):
        resolve_keep(keep, 1437)


@pytest.mark.parametrize("keep", ["0", "-3"])
def test_keep_count_below_one_names_the_fix(keep):
    """`--keep 0` said only "keep count must be at least 1": it now says what to pass."""
    with pytest.raises(BudgetError, match=r"pass a count in 1\.\.1437 or a fraction in "
                                          r"\(0, 1\]"):
        resolve_keep(keep, 1437)


def test_resolve_keep():
    assert resolve_keep("0.1", 1437) == 144
    assert resolve_keep("180", 1437) == 180
    assert resolve_keep(1.0, 1437) == 1437


@given(st.lists(st.integers(1, 60), min_size=2, max_size=12), st.data())
def test_quotas_exact_and_balanced(sizes, data):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    count = data.draw(st.integers(len(sizes), int(sum(sizes))))
    q = class_quotas(labels, count)
    assert q.sum() == count
    assert np.all(q <= np.array(sizes)) and np.all(q >= 1)
    # Balanced within 1 among classes that are not exhausted.
    open_ = q < np.array(sizes)
    if open_.any():
        assert q[open_].max() - q.min() <= 1 or q[open_].max() - q[open_].min() <= 1
        assert q[open_].min() >= q.max() - 1


def test_quota_fewer_than_classes():
    """Said as a count of samples: `--keep 1e-9` resolves to one sample, which read as
    "keep 1 is fewer than the 10 classes" (a fraction of 1?)."""
    with pytest.raises(BudgetError, match=r"keeping 2 samples \(the budget as a count\) is "
                                          "fewer than the 3 classes"):
        class_quotas(np.array([0, 1, 2, 2]), 2)
    with pytest.raises(BudgetError, match="keeping 1 sample "):
        class_quotas(np.array([0, 1, 2, 2]), 1)


def test_keep_bounds_are_inclusive_and_a_tiny_fraction_keeps_one():
    """keep N (the whole set, as a count) is allowed, and a fraction that rounds to no sample
    keeps one: a budget never resolves to an empty selection."""
    assert resolve_keep(1437, 1437) == 1437 and resolve_keep("1437", 1437) == 1437
    assert resolve_keep(0.001, 100) == 1 and fraction_count(0.001, 100) == 1


def test_quota_remainder_goes_to_the_larger_classes():
    """Class sizes 5, 3, 2 and keep 4: one each, and the one left over goes to the class
    with the most samples left (the docstring's tie rule), not to the smallest."""
    labels = np.repeat(np.arange(3), [5, 3, 2])
    assert class_quotas(labels, 4).tolist() == [2, 1, 1]
    # equal room left: the lower class index first
    assert class_quotas(np.repeat(np.arange(3), [3, 3, 3]), 4).tolist() == [2, 1, 1]


def test_validation_split_holds_out_the_seeded_balanced_set():
    """(rest, held): ``held`` is the class-balanced ``count`` the ablation tools score on and
    ``rest`` the remainder they train on; the seed is pinned, since the committed ablation
    tables were measured on this split."""
    from tinysift.data import load_dataset

    y = np.asarray(load_dataset("digits").y_train)
    rest, held = validation_split(y, 200)
    assert len(held) == 200 and len(rest) == len(y) - 200
    assert np.bincount(y[held]).tolist() == [20] * 10
    assert not np.intersect1d(rest, held).size
    assert held[:10].tolist() == [8, 13, 14, 45, 58, 65, 72, 79, 81, 89]


def test_keep_edges_a_count_of_one_a_count_past_n_nan_bools_and_exponents():
    """keep is a count in [1, N] or a fraction in (0, 1]: a count of 1 is allowed, N + 1 is
    not; a NaN fraction and a bool are refused as budgets (not a crash deeper down, not a
    count of 1); a fraction written with an exponent (``--keep 1e-9``) is a fraction."""
    assert resolve_keep(1, 10) == 1 and resolve_keep("1", 10) == 1
    with pytest.raises(BudgetError, match="larger than the training set"):
        resolve_keep(1438, 1437)
    with pytest.raises(BudgetError, match="larger than the training set"):
        resolve_keep("11", 10)
    with pytest.raises(BudgetError, match=r"fraction must be in \(0, 1\]"):
        resolve_keep(float("nan"), 100)
    for flag in (True, False):
        with pytest.raises(BudgetError):
            resolve_keep(flag, 100)
    assert parse_keep("1e-9") == 1e-9 and resolve_keep("1e-9", 100) == 1
    assert resolve_keep("5E-1", 100) == 50


def test_quotas_of_classes_without_samples_are_zero_and_cost_nothing():
    """A dataset whose labels skip a class (user data, or ``num_classes`` beyond the labels
    present): one quota per class, 0 for an empty one, which neither needs a sample of the
    budget nor takes a share of it; the budget is still spent exactly."""
    labels = np.repeat([0, 2], [3, 10])  # class 1 has no sample
    assert class_quotas(labels, 2).tolist() == [1, 0, 1]  # 2 samples cover both classes
    assert class_quotas(labels, 8).tolist() == [3, 0, 5]  # class 0 full, the rest to 2
    assert class_quotas(np.repeat([0, 1], [2, 2]), 2, num_classes=4).tolist() == [1, 1, 0, 0]
    assert class_quotas(np.zeros(5, np.int64), 3, num_classes=4).tolist() == [3, 0, 0, 0]
    # a budget past the data keeps everything (balanced_subset clamps, this does not fail)
    assert class_quotas(labels, 20).tolist() == [3, 0, 10]


@pytest.mark.parametrize("keep, fix", [
    pytest.param("1.5", r"keep fraction must be in \(0, 1\] .*; pass an integer for an exact "
                 "count", id="fraction-over-1"),
    pytest.param("1438", r"larger than the training set \(1437 samples\); use at most 1437 or a "
                 r"fraction in \(0, 1\]", id="count-past-n"),
    pytest.param("ten", r"a fraction in \(0, 1\] \(e\.g\. 0\.1\) or an integer count "
                 r"\(e\.g\. 180\), got 'ten'", id="neither"),
])
def test_bad_keep_says_what_to_pass_instead(keep: str, fix: str) -> None:
    """A refused --keep names what would be taken instead (a count for a fraction over 1,
    at most N or a fraction for a count past the data, an example of each form for text
    that is neither), not only what was wrong."""
    with pytest.raises(BudgetError, match=fix):
        resolve_keep(keep, 1437)


def test_quota_fewer_than_classes_names_the_smallest_budget_and_the_global_one() -> None:
    """A class-balanced budget below the class count says the smallest budget that works
    and how to ask for a global one instead (--no-balance, balance=False)."""
    with pytest.raises(BudgetError, match=r"keep >= 3, or a global budget: --no-balance, "
                                          r"balance=False in Python"):
        class_quotas(np.array([0, 1, 2, 2]), 2)


def test_balanced_subset_is_drawn_with_its_seed() -> None:
    """The samples inside each class follow the seed given (export --fit's and the test
    subset's seed): the same seed draws the same subset, another seed another one; the
    subset is class-balanced and sorted either way."""
    y = np.repeat(np.arange(3), 30)
    first, other, again = (balanced_subset(y, 12, seed) for seed in (1, 2, 1))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    for subset in (first, other):
        assert np.bincount(y[subset]).tolist() == [4, 4, 4]
        assert np.all(np.diff(subset) > 0)
