"""Forgetting events (Toneva et al., 2019)."""

from __future__ import annotations

import numpy as np

from tinysift.selection.base import register
from tinysift.selection.methods._common import RankedMethod


def forgetting_counts(correct: np.ndarray) -> np.ndarray:
    """Forgetting events per sample from an ``(E, N)`` correctness record.

    A forgetting event is a transition from correctly classified at one recorded epoch to
    misclassified at the next. A sample that is never classified correctly gets ``E``, more
    than any sample can reach (at most ``E // 2`` events fit in ``E`` records), so never-learned
    samples rank as the most forgotten.
    """
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2:
        raise ValueError(f"correct must be (epochs, samples), got shape {correct.shape}")
    epochs = correct.shape[0]
    events = (correct[:-1] & ~correct[1:]).sum(0).astype(np.float64)
    events[~correct.any(0)] = float(epochs)
    return events


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
    needs = frozenset({"dynamics"})

    def _fit(self, context) -> np.ndarray:
        return forgetting_counts(context.dynamics().correct)
