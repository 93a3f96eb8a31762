"""Herding: greedily match the class mean in embedding space (Welling, 2009; Chen et al., 2010)."""

from __future__ import annotations

import numpy as np

from tinysift.scoring.embeddings import check_embedding
from tinysift.selection.base import register
from tinysift.selection.methods._common import GreedyMethod


def herding_order(z: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Herding pick order over the rows of ``z`` (without replacement).

    Step ``t`` (1-based) picks the row ``x`` minimising ``||mu - (S + x) / t||`` where ``mu`` is
    the mean of all rows and ``S`` the sum of the rows picked so far, i.e. the running mean of
    the picks tracks ``mu`` as closely as possible. Ties go to the lowest row.
    """
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    limit = n if limit is None else min(int(limit), n)
    mu = z.mean(0)
    sq = np.einsum("ij,ij->i", z, z)
    total = np.zeros(z.shape[1])
    taken = np.zeros(n, dtype=bool)
    order = np.empty(limit, dtype=np.int64)
    for t in range(limit):
        target = (t + 1) * mu - total
        # ||target - x||^2 up to a constant
        cost = sq - 2.0 * (z @ target)
        cost[taken] = np.inf
        i = int(np.argmin(cost))
        order[t] = i
        taken[i] = True
        total += z[i]
    return order


@register
class HerdingMethod(GreedyMethod):
    """Greedy herding per class: each pick keeps the mean of the picks closest to the class mean.

    Welling, M. "Herding Dynamical Weights to Learn." ICML 2009; Chen, Y., Welling, M. &
    Smola, A. "Super-Samples from Kernel Herding." UAI 2010 (and its use for exemplar sets in
    Rebuffi et al., iCaRL, CVPR 2017). With a linear kernel, herding greedily chooses samples so
    that the running mean of the chosen embeddings matches the class mean.

    Score direction: ``scores_`` is ``1 - rank / n_class`` of each sample in its class's herding
    order, **higher = picked earlier = kept first** (herding's picks are nested, so the top
    ``q`` of a class is exactly herding with budget ``q``). Deterministic (no randomness).

    Choices: the embedding is the ``cnn`` embedding (features of tinysift's proxy CNN) by
    default. With ``balance=False`` herding runs once over the whole dataset towards the global
    mean, up to the budget.

    Parameters
    ----------
    seed : int
        Unused (herding is deterministic); kept for the common interface.
    balance : bool
    embedding : {"cnn", "pixels", "random-conv"}
    """

    name = "herding"
    score_meaning = ("1 - rank / class size in the class's herding order, higher = "
                     "picked earlier = kept first")
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, embedding: str = "cnn"):
        super().__init__(seed=seed, balance=balance)
        check_embedding(embedding)
        self.embedding = embedding

    def _order(self, z, rng, limit):
        return herding_order(z, limit)
