"""Reference condensers that pick real samples: random per class and herding."""

from __future__ import annotations

import numpy as np

from tinysift.condensation.base import Condenser, EmbeddingCondenser, register
from tinysift.selection.methods.herding import herding_order


@register
class RandomCondenser(Condenser):
    """K random real samples per class (seeded)."""

    name = "random"

    def _condense_class(self, c, idx, k):
        rng = np.random.default_rng(self.seed + c)
        return self.context_.x[np.sort(rng.choice(idx, size=k, replace=False))]


@register
class HerdingCondenser(EmbeddingCondenser):
    """Herding (Welling 2009): greedily pick real samples whose running mean embedding best
    matches the class mean (the iCaRL exemplar rule)."""

    name = "herding"

    def _condense_class(self, c, idx, k):
        return self.context_.x[idx[herding_order(self.z_[idx], k)]]
