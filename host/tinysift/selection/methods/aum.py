"""AUM: area under the margin (Pleiss et al., 2020)."""

from __future__ import annotations

import math

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.selection.base import register
from tinysift.selection.methods._common import RankedMethod


def area_under_margin(margin: np.ndarray) -> np.ndarray:
    """Mean over epochs of (assigned-class logit - largest other logit), from ``(E, N)``."""
    return np.asarray(margin, dtype=np.float64).mean(0)


@register
class AUMMethod(RankedMethod):
    """Drop likely-mislabelled samples (low AUM) first, then keep the hardest remaining ones.

    Pleiss, G., Zhang, T., Elenberg, E. R. & Weinberger, K. Q. "Identifying Mislabeled Data
    using the Area Under the Margin Ranking." NeurIPS 2020. The margin of a sample at an epoch
    is its assigned-class logit minus the largest other logit; AUM is its average over
    training. A low (negative) AUM means the network keeps preferring another class: the
    sample is likely mislabelled.

    Score direction (our pruning rule, the paper only identifies mislabelled data):

    1. samples with ``AUM < threshold`` are flagged as likely mislabelled and ranked **last**
       (pruned first), ordered among themselves by descending AUM (the least suspicious of
       them is kept first when the budget reaches into them);
    2. every other sample is ranked by **ascending AUM**: hardest-but-not-mislabelled first,
       the usual "keep the hard examples" reading of AUM as a difficulty score (as in the CCS
       authors' AUM baseline).

    ``scores_`` encodes this order (higher = kept first): ``-AUM`` for unflagged samples and
    ``AUM - C`` for flagged ones, with ``C`` large enough that every flagged sample ranks below
    every unflagged one. The raw values are in ``aum_``.

    Choices: the paper sets the threshold with "threshold samples" (a fake extra class and a
    second training run); we use a fixed threshold, 0 by default: on average over training
    the network prefers another class to the assigned one. Margins are those of tinysift's
    proxy CNN measured after each epoch in evaluation mode (not per minibatch).

    Parameters
    ----------
    seed : int
    balance : bool
    threshold : float
        AUM below this flags a sample as likely mislabelled.
    """

    name = "aum"
    score_meaning = ("-AUM, or AUM minus a constant for samples flagged as mislabelled "
                     "(AUM < threshold), higher = kept first")
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, threshold: float = 0.0):
        super().__init__(seed=seed, balance=balance)
        if not math.isfinite(threshold):  # NaN flagged nothing, silently
            raise TinysiftError(f"threshold must be a finite AUM value, got {threshold}")
        self.threshold = threshold

    def _fit(self, context) -> np.ndarray:
        aum = area_under_margin(context.dynamics().margin)
        self.aum_ = aum
        flagged = aum < self.threshold
        self.flagged_ = flagged
        c = abs(float(self.threshold)) + 2.0 * float(np.abs(aum).max()) + 1.0
        return np.where(flagged, aum - c, -aum)
