"""k-center greedy (Sener & Savarese, 2018)."""

from __future__ import annotations

import numpy as np

from tinysift.scoring.embeddings import check_embedding
from tinysift.selection.base import register
from tinysift.selection.methods._common import GreedyMethod, sq_dists_to


def kcenter_order(z: np.ndarray, first: int, limit: int | None = None) -> np.ndarray:
    """Farthest-first traversal of the rows of ``z`` starting at row ``first``: each step picks
    the row farthest (Euclidean) from all rows picked so far. Ties go to the lowest row."""
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    limit = n if limit is None else min(int(limit), n)
    sq = np.einsum("ij,ij->i", z, z)
    order = np.empty(limit, dtype=np.int64)
    if limit == 0:
        return order
    order[0] = first
    mind = sq_dists_to(z, z[first], sq)
    mind[first] = -1.0
    for t in range(1, limit):
        i = int(np.argmax(mind))
        order[t] = i
        np.minimum(mind, sq_dists_to(z, z[i], sq), out=mind)
        mind[i] = -1.0
    return order


@register
class KCenterMethod(GreedyMethod):
    """k-center greedy per class: repeatedly keep the sample farthest from those already kept.

    Sener, O. & Savarese, S. "Active Learning for Convolutional Neural Networks: A Core-Set
    Approach." ICLR 2018. The greedy 2-approximation of the k-center problem: start from one
    point, then add the point with the largest distance to its nearest chosen centre, which
    minimises the covering radius of the chosen set.

    Score direction: ``scores_`` is ``1 - rank / n_class`` in each class's farthest-first
    order, **higher = picked earlier = kept first** (the picks are nested).

    Choices: Euclidean distance in the ``cnn`` embedding (features of tinysift's proxy CNN,
    where the paper uses the network's last-layer features); the first centre of each class is
    drawn at random with ``seed`` (the paper starts from the already-labelled pool, which
    pruning does not have). With ``balance=False`` one traversal runs over the whole dataset.

    Parameters
    ----------
    seed : int
        Seed of the first centre of each class.
    balance : bool
    embedding : {"cnn", "pixels", "random-conv"}
    """

    name = "kcenter"
    score_meaning = ("1 - rank / class size in the class's farthest-first order, higher = "
                     "picked earlier = kept first")
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, embedding: str = "cnn"):
        super().__init__(seed=seed, balance=balance)
        check_embedding(embedding)
        self.embedding = embedding

    def _order(self, z, rng, limit):
        return kcenter_order(z, int(rng.integers(len(z))), limit)
