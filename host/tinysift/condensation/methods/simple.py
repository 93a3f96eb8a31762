"""Reference condensers that pick real samples: random per class and herding."""

from __future__ import annotations

import numpy as np

from tinysift.condensation.base import Condenser, register


@register
class RandomCondenser(Condenser):
    """K random real samples per class (seeded)."""

    name = "random"

    def _condense_class(self, c, idx, k):
        rng = np.random.default_rng(self.seed + c)
        return self.context_.x[np.sort(rng.choice(idx, size=k, replace=False))]


@register
class HerdingCondenser(Condenser):
    """Herding (Welling 2009): greedily pick real samples whose running mean embedding best
    matches the class mean (the iCaRL exemplar rule)."""

    name = "herding"

    def __init__(self, seed: int = 0, embedding: str = "random-conv", dim: int = 32):
        super().__init__(seed)
        self.embedding, self.dim = embedding, dim

    def _fit(self, context):
        self.z_ = context.embedding(self.embedding, self.dim)

    def _condense_class(self, c, idx, k):
        z = self.z_[idx].astype(np.float64)
        mu = z.mean(0)
        chosen: list[int] = []
        running = np.zeros_like(mu)
        available = np.ones(len(idx), bool)
        for t in range(1, k + 1):
            cand = (running[None, :] + z) / t
            dist = np.linalg.norm(cand - mu, axis=1)
            dist[~available] = np.inf
            j = int(np.argmin(dist))
            chosen.append(j)
            available[j] = False
            running += z[j]
        return self.context_.x[idx[np.array(chosen)]]
