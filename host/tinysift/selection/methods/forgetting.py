"""Forgetting events (Toneva et al., 2019)."""

from __future__ import annotations

import numpy as np

from tinysift.scoring.dynamics import forgetting_counts
from tinysift.selection.base import register
from tinysift.selection.methods._common import RankedMethod


@register
class ForgettingMethod(RankedMethod):
    """Keep the most forgotten samples first; unforgettable samples are pruned first.

    Toneva, M., Sordoni, A., Combes, R. T. des, Trischler, A., Bengio, Y. & Gordon, G. J.
    "An Empirical Study of Example Forgetting during Deep Neural Network Learning." ICLR 2019.
    A forgetting event is a sample going from correctly to incorrectly classified between two
    consecutive presentations; samples never learned count as forgotten infinitely often;
    pruning removes the unforgettable (0 events) samples first, at random among equals.

    Score direction: ``scores_`` is the forgetting count (never learned = number of recorded
    epochs, above any reachable count), **higher = kept first**; ties (common: counts are
    small integers) are broken by a seeded random key, matching the paper's random removal
    among equally forgettable samples.

    Choices: correctness is recorded once per epoch of tinysift's proxy CNN (evaluation mode,
    after the epoch) rather than at every minibatch presentation during the full training run
    the paper uses, so counts are small (at most ``proxy_epochs // 2``); raise
    ``ScoringContext.proxy_epochs`` for a finer count.

    Parameters
    ----------
    seed : int
    balance : bool
    """

    name = "forgetting"
    score_meaning = (
        "forgetting-event count (never learned = the number of measurements), higher = kept "
        "first; ties broken by a seeded key")
    needs = frozenset({"dynamics"})

    def _fit(self, context) -> np.ndarray:
        return forgetting_counts(context.dynamics().correct)
