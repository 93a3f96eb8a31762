"""Budgets: what 'keep' means, exactly, everywhere in tinysift.

``keep`` is always the part of the training set that is KEPT (never the part pruned):

* a float in (0, 1] is a fraction of the training set: ``round(keep * N)`` samples
  (at least 1); ``1.0`` keeps everything;
* an int (or a string without a decimal point, e.g. ``"180"``) is an exact count in [1, N].
"""

from __future__ import annotations

import math

import numpy as np

from tinysift.errors import BudgetError


def parse_keep(text: str | float | int) -> float | int:
    """Parse a CLI/API keep value: ``"0.1"`` -> 0.1 (fraction), ``"180"`` -> 180 (count)."""
    if isinstance(text, bool):
        raise BudgetError(f"keep must be a fraction in (0, 1] or an integer count, got {text!r}")
    if isinstance(text, (int, np.integer)):
        return int(text)
    if isinstance(text, (float, np.floating)):
        return float(text)
    s = str(text).strip()
    try:
        if any(c in s for c in ".eE"):
            return float(s)
        return int(s)
    except ValueError:
        raise BudgetError(
            f"keep must be a fraction in (0, 1] (e.g. 0.1) or an integer count (e.g. 180), "
            f"got {text!r}"
        ) from None


def resolve_keep(keep: str | float | int, num_samples: int) -> int:
    """Number of samples to keep out of ``num_samples``.

    Raises
    ------
    BudgetError
        keep <= 0, a fraction > 1, a count > N, or NaN.
    """
    value = parse_keep(keep)
    if isinstance(value, float):
        if math.isnan(value) or value <= 0.0 or value > 1.0:
            raise BudgetError(
                f"keep fraction must be in (0, 1] (the part of the data KEPT), got {value}; "
                "pass an integer for an exact count"
            )
        return fraction_count(value, num_samples)
    if value <= 0:
        raise BudgetError(f"keep count must be at least 1 (keep is the part KEPT), got "
                          f"{value}; pass a count in 1..{num_samples} or a fraction in (0, 1] "
                          "(e.g. 0.1)")
    if value > num_samples:
        raise BudgetError(
            f"keep count {value} is larger than the training set ({num_samples} samples); "
            f"use at most {num_samples} or a fraction in (0, 1]"
        )
    return value


def fraction_count(keep_fraction: float, num_samples: int) -> int:
    """The count ``keep=keep_fraction`` resolves to: ``round(keep * N)``, at least 1.

    A method whose rule switches at a keep fraction compares the budget's count with this
    count, not ``count / N`` with the fraction: keep 0.1 of 1,437 samples is 144 (0.1002)
    and keep 0.5 of 1,437 is 718 (0.4997), and to the rule they must be keep 0.1 and 0.5."""
    return max(1, int(round(float(keep_fraction) * num_samples)))


def class_quotas(labels: np.ndarray, count: int, num_classes: int | None = None) -> np.ndarray:
    """Split ``count`` over classes as evenly as class sizes allow (balanced within 1).

    Classes too small for their share keep all their samples, and the rest is spread over the
    others; ties in the remainder go to the larger classes, then lower class index.
    """
    sizes = np.bincount(labels, minlength=num_classes or 0).astype(np.int64)
    k = len(sizes)
    present = int((sizes > 0).sum())
    if count < present:
        raise BudgetError(
            f"keeping {count} sample{'' if count == 1 else 's'} (the budget as a count) is "
            f"fewer than the {present} classes; a class-balanced selection "
            f"needs at least one sample per class (keep >= {present}, or a global budget: "
            "--no-balance, balance=False in Python)"
        )
    quotas = np.zeros(k, dtype=np.int64)
    remaining = count
    open_ = sizes > 0
    while remaining > 0 and open_.any():
        share = remaining // int(open_.sum())
        if share == 0:
            order = sorted(np.flatnonzero(open_), key=lambda c: (-(sizes[c] - quotas[c]), c))
            for c in order[:remaining]:
                quotas[c] += 1
            remaining = 0
            break
        for c in np.flatnonzero(open_):
            add = min(share, sizes[c] - quotas[c])
            quotas[c] += add
            remaining -= add
        open_ = quotas < sizes
    return quotas


def balanced_subset(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` indices (sorted), class-balanced within 1, random inside a class (seeded):
    the held-out test subset, and the training subset ``--fit`` keeps."""
    count = min(count, len(y))
    quotas = class_quotas(y, count, int(y.max()) + 1)
    rng = np.random.default_rng(seed)
    picks = [np.sort(rng.choice(np.flatnonzero(y == c), size=int(q), replace=False))
             for c, q in enumerate(quotas) if q > 0]
    return np.sort(np.concatenate(picks))


#: Seed of the validation split the ablation tools hold out of the training split.
VALIDATION_SEED = 12345


def validation_split(y: np.ndarray, count: int, seed: int = VALIDATION_SEED
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held): ``count`` class-balanced indices held out (:func:`balanced_subset`) and
    the sorted indices left to train on."""
    held = balanced_subset(y, count, seed)
    return np.setdiff1d(np.arange(len(y)), held), held
