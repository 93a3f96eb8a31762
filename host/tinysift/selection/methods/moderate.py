"""Moderate-DS: samples at the median distance to their class centre (Xia et al., 2023)."""

from __future__ import annotations

import numpy as np

from tinysift.scoring.embeddings import check_embedding
from tinysift.selection.base import register
from tinysift.selection.methods._common import RankedMethod


def centre_distances(z: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Euclidean distance of every embedding to the mean embedding of its class."""
    z = np.asarray(z, dtype=np.float64)
    d = np.zeros(len(z), dtype=np.float64)
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        if len(idx):
            d[idx] = np.linalg.norm(z[idx] - z[idx].mean(0), axis=1)
    return d


@register
class ModerateMethod(RankedMethod):
    """Keep the samples whose distance to their class centre is closest to the class median.

    Xia, X., Liu, J., Yu, J., Shen, X., Han, B. & Liu, T. "Moderate Coreset: A Universal
    Method of Data Selection for Real-world Data-efficient Deep Learning." ICLR 2023. Each
    sample is represented by a network's features; its score is the Euclidean distance to the
    mean feature of its class; the selection keeps the samples whose distance is around the
    median, dropping both the easiest (closest) and hardest (farthest) ones symmetrically.

    Score direction: ``scores_ = -|d - median_class(d)|``, **higher (nearer the median) = kept
    first**; ties broken by a seeded random key. The distances are in ``distance_``.

    Choices: the features are the ``cnn`` embedding (the briefly trained proxy CNN's features,
    PCA-reduced to the context's ``embed_dim``) where the paper uses a trained network's
    penultimate layer; ``embedding`` picks another context embedding. The median is per class
    also when ``balance=False``.

    Parameters
    ----------
    seed : int
    balance : bool
    embedding : {"cnn", "pixels", "random-conv"}
    """

    name = "moderate"
    score_meaning = ("-|distance to the class centre - the class's median distance|, "
                     "higher = nearer the median = kept first")
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, embedding: str = "cnn"):
        super().__init__(seed=seed, balance=balance)
        check_embedding(embedding)
        self.embedding = embedding

    def _fit(self, context) -> np.ndarray:
        z = context.embedding(self.embedding)
        d = centre_distances(z, context.y, context.num_classes)
        self.distance_ = d
        med = np.zeros(context.num_classes)
        for c in range(context.num_classes):
            members = d[context.y == c]
            if len(members):
                med[c] = np.median(members)
        return -np.abs(d - med[context.y])
