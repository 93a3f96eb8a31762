"""Self-supervised prototype metric (Sorscher et al., 2022)."""

from __future__ import annotations

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.params import is_whole
from tinysift.scoring.embeddings import check_embedding
from tinysift.selection.base import register
from tinysift.selection.budget import fraction_count
from tinysift.selection.methods._common import RankedMethod, top_order


def prototype_distances(z: np.ndarray, y: np.ndarray, num_classes: int, clusters: int,
                        seed: int) -> np.ndarray:
    """Cosine distance of each sample to the nearest k-means centroid of its class.

    Embeddings are L2-normalised, k-means (``min(clusters, class size)`` centroids, seeded)
    runs per class, centroids are re-normalised and the distance is ``1 - cos``.
    """
    from sklearn.cluster import KMeans

    z = np.asarray(z, dtype=np.float64)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    dist = np.zeros(len(z), dtype=np.float64)
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        if not len(idx):
            continue
        k = max(1, min(int(clusters), len(idx)))
        zc = z[idx]
        if k == 1:
            centres = zc.mean(0, keepdims=True)
        else:
            centres = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(zc).cluster_centers_
        centres = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        dist[idx] = 1.0 - (zc @ centres.T).max(1)
    return dist


@register
class PrototypesMethod(RankedMethod):
    """Distance to the nearest k-means prototype: keep far (hard) samples at mild pruning and
    close (prototypical, easy) samples at extreme pruning.

    Sorscher, B., Geirhos, R., Shekhar, S., Ganguli, S. & Morcos, A. S. "Beyond neural scaling
    laws: beating power law scaling via data pruning." NeurIPS 2022. The self-supervised
    prototype metric clusters an embedding with k-means and scores each sample by its cosine
    distance to the nearest centroid (far = hard). The paper's theory and experiments give the
    rule: with abundant data keep the hard examples, with scarce data keep the easy ones.

    Score direction: ``scores_`` is the distance (**higher = harder**), with the raw values also
    in ``distance_``. Selection applies the paper's rule with a switch on the kept fraction:
    a budget of at least ``keep=switch_keep`` (as a count: keep 0.5 of 1,437 is 718) keeps
    the **largest** distances first (hard), a smaller one the **smallest** first (easy).
    Ties broken by a seeded key.

    Choices:

    * the switch point ``switch_keep = 0.5`` is ours: the paper's crossover depends on the
      initial dataset size relative to model capacity and has no closed form for real
      networks; keeping half or more is "mild" pruning, less than half is treated as scarce
      (the design brief's regime rule);
    * k-means runs per class (``clusters_per_class`` centroids, 5 by default; the paper
      clusters the whole dataset with about as many clusters as classes and reports the
      metric insensitive to the number of clusters);
    * embedding: the ``cnn`` embedding (features of tinysift's briefly trained proxy CNN)
      stands in for the paper's self-supervised SwAV features; ``embedding="random-conv"``
      gives a label-free embedding.

    Parameters
    ----------
    seed : int
        Seed of k-means and the tie-breaking key.
    balance : bool
    clusters_per_class : int
    switch_keep : float
        Kept fraction at or above which hard samples are kept first.
    embedding : {"cnn", "pixels", "random-conv"}
    """

    name = "prototypes"
    score_meaning = (
        "cosine distance to the nearest k-means prototype of the class, higher = harder; "
        "budgets of at least switch_keep keep the highest first, smaller ones the lowest")
    nested = False
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, clusters_per_class: int = 5,
                 switch_keep: float = 0.5, embedding: str = "cnn"):
        super().__init__(seed=seed, balance=balance)
        if not is_whole(clusters_per_class, 1):
            raise TinysiftError(f"clusters_per_class must be a whole number >= 1, got "
                                f"{clusters_per_class!r}")
        if not 0.0 <= switch_keep <= 1.0:
            raise TinysiftError(f"switch_keep must be a fraction in [0, 1], got {switch_keep}")
        self.clusters_per_class = clusters_per_class
        self.switch_keep = switch_keep
        check_embedding(embedding)
        self.embedding = embedding

    def _fit(self, context) -> np.ndarray:
        z = context.embedding(self.embedding)
        d = prototype_distances(z, context.y, context.num_classes, self.clusters_per_class,
                                self.seed)
        self.distance_ = d
        return d

    def keeps_hard(self, count: int) -> bool:
        """True when a budget of ``count`` keeps the hardest (farthest) samples first."""
        self._check_fitted()
        return count >= fraction_count(self.switch_keep, self.context_.num_samples)

    def _select(self, count: int) -> np.ndarray:
        sign = 1.0 if self.keeps_hard(count) else -1.0
        tiebreak = self._tiebreak()

        def chooser(idx: np.ndarray, quota: int) -> np.ndarray:
            return idx[top_order(sign * self.scores_[idx], tiebreak[idx])[:quota]]

        return self._per_class(count, chooser)
