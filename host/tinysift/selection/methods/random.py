"""Random (class-balanced) selection: the baseline every method must beat."""

from __future__ import annotations

import numpy as np

from tinysift.selection.base import PruningMethod, register


@register
class RandomMethod(PruningMethod):
    name = "random"
    score_meaning = "a seeded uniform random key, higher = kept first"

    def _fit(self, context) -> np.ndarray:
        return np.random.default_rng(self.seed).random(context.num_samples)
