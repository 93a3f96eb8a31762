"""EL2N: error L2 norm early in training (Paul, Ganguli & Dziugaite, 2021)."""

from __future__ import annotations

import numpy as np

from tinysift.selection.base import register
from tinysift.selection.methods._common import RankedMethod, check_epoch, per_epoch


@register
class EL2NMethod(RankedMethod):
    """Keep the samples with the largest EL2N score (the hardest ones) first.

    Paul, M., Ganguli, S. & Dziugaite, G. K. "Deep Learning on a Data Diet: Finding Important
    Examples Early in Training." NeurIPS 2021. EL2N of a sample is
    ``||softmax(f(x)) - onehot(y)||_2`` measured early in training; the paper keeps the highest
    scores.

    Score direction: ``scores_`` is the EL2N value itself, **higher = harder = kept first**.
    Ties (rare) are broken by a seeded random key.

    Choices: the paper averages the score over 10 independently initialised networks at one
    early epoch; tinysift has one briefly trained proxy CNN (``ScoringContext.dynamics()``), so
    by default the score is read after the proxy's last epoch (the whole proxy run *is* the
    "early training"); ``epoch="mean"`` averages over the recorded epochs instead, which
    smooths the single-run noise.

    Parameters
    ----------
    seed : int
        Seed of the tie-breaking key.
    balance : bool
        Class-balanced budget (default).
    epoch : int or "mean"
        Which recorded epoch of the proxy to read (negative counts from the end).
    """

    name = "el2n"
    score_meaning = "EL2N of the proxy CNN, higher = harder = kept first"
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, epoch: int | str = -1):
        super().__init__(seed=seed, balance=balance)
        check_epoch(epoch)
        self.epoch = epoch

    def _fit(self, context) -> np.ndarray:
        return per_epoch(context.dynamics().el2n, self.epoch)
