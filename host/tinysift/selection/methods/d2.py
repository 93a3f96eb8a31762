"""D2 pruning: message passing on a kNN graph (Maharana, Yadav & Bansal, 2024)."""

from __future__ import annotations

import heapq
import math
from numbers import Real

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.params import is_whole
from tinysift.scoring.embeddings import check_embedding
from tinysift.selection.base import register
from tinysift.selection.methods._common import (
    RankedMethod,
    check_difficulty_params,
    cut_hardest,
    difficulty,
    resolve_hard_cut,
)


def knn_graph(z: np.ndarray, k: int):
    """Symmetric kNN graph of the rows of ``z`` as a CSR matrix holding ``exp(-d / m)``, with
    ``d`` the Euclidean distance and ``m`` the median of the positive kNN distances
    (scale-free weights; a duplicate's distance 0 left out, 1 when every distance is 0)."""
    from scipy import sparse
    from sklearn.neighbors import NearestNeighbors

    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    k = min(int(k), n - 1)
    if k < 1:
        return sparse.csr_matrix((n, n))
    dist, ind = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)
    rows = np.arange(n)
    self_mask = ind == rows[:, None]
    missing = ~self_mask.any(1)  # exact duplicates may push a point out of its own list
    self_mask[missing, -1] = True
    ind = ind[~self_mask].reshape(n, k)
    dist = dist[~self_mask].reshape(n, k)
    positive = dist[dist > 0]
    scale = float(np.median(positive)) if len(positive) else 1.0
    # +tiny keeps zero-distance (duplicate) edges from being dropped as structural zeros
    weights = np.exp(-dist / scale) + 1e-300
    graph = sparse.csr_matrix((weights.ravel(), (np.repeat(rows, k), ind.ravel())),
                              shape=(n, n))
    return graph.maximum(graph.T).tocsr()


def forward_pass(graph, scores: np.ndarray, gamma: float) -> np.ndarray:
    """``s_i + sum_j exp(-gamma d_ij) s_j`` over the graph neighbours ``j`` of ``i``."""
    w = graph.copy()
    w.data = w.data ** gamma
    return scores + w @ scores


def d2_order(graph, scores: np.ndarray, gamma_forward: float, gamma_reverse: float,
             limit: int) -> tuple[np.ndarray, np.ndarray]:
    """D2 selection order (first ``limit`` picks) and the forward-propagated scores.

    Forward message passing ``s' = s + W_f s``; then repeatedly pick the unselected node with
    the largest current score ``s'_i`` and send the reverse message
    ``s'_j -= exp(-gamma_r d_ij) * s'_i`` to its unselected neighbours ``j``. Ties go to the
    lowest index.
    """
    n = len(scores)
    limit = min(int(limit), n)
    current = forward_pass(graph, np.asarray(scores, dtype=np.float64), gamma_forward)
    forward = current.copy()
    reverse = graph.copy()
    reverse.data = reverse.data ** gamma_reverse
    indptr, indices, data = reverse.indptr, reverse.indices, reverse.data
    heap = [(-v, i) for i, v in enumerate(current.tolist())]
    heapq.heapify(heap)
    taken = np.zeros(n, dtype=bool)
    order = []
    while len(order) < limit:
        negv, i = heapq.heappop(heap)
        if taken[i] or -negv != current[i]:
            continue  # stale entry
        taken[i] = True
        order.append(i)
        si = current[i]
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if not taken[j]:
                current[j] -= data[p] * si
                heapq.heappush(heap, (-current[j], j))
    return np.asarray(order, dtype=np.int64), forward


@register
class D2Method(RankedMethod):
    """D2 pruning: difficulty scores spread over a kNN graph, then greedy selection that
    down-weights the neighbours of every kept sample (difficulty and diversity).

    Maharana, A., Yadav, P. & Bansal, M. "D2 Pruning: Message Passing for Balancing Diversity
    and Difficulty in Data Pruning." ICLR 2024. Nodes are samples in an embedding space, edges
    join k nearest neighbours, node features start as a difficulty score ``s``.
    Forward message passing: ``s'_i = s_i + sum_j exp(-gamma_f d_ij) s_j`` (dense regions of
    hard samples score high). Reverse message passing while selecting: take the node with the
    highest ``s'``, then ``s'_j -= exp(-gamma_r d_ij) s'_i`` for its neighbours, so the next
    picks come from elsewhere.

    Score direction: ``scores_`` is the forward-propagated score ``s'`` on each class's full
    graph (**higher = more important**, for inspection). The selection is the greedy
    reverse-message-passing order, which depends on the budget through the hard cut.

    Choices:

    * difficulty: EL2N of tinysift's proxy CNN at ``epoch`` (the paper uses forgetting, AUM or
      EL2N depending on the dataset; ``importance`` picks), shifted to be non-negative;
    * embedding: the ``cnn`` embedding (proxy CNN features) where the paper uses the trained
      network's features; graph: symmetric kNN (``n_neighbors=10``), Euclidean distances
      divided by the median positive kNN distance so ``gamma`` does not depend on the
      embedding's scale (our choice; ``gamma_forward = gamma_reverse = 1``);
    * ``hard_cut="auto"`` first removes the hardest fraction with the CCS schedule
      (:func:`~tinysift.selection.methods._common.ccs_hard_cut`), as the authors' released
      CIFAR-10 command does (``--mis-ratio 0.4`` at 10 % kept; the schedule gives 0.3);
      ``hard_cut=0`` disables it. The graph is built on the remaining samples;
    * with ``balance=True`` (default) the graph and the greedy run per class with the class
      quota (the authors' CIFAR command is class-wise too); ``balance=False`` builds one
      graph over the whole dataset.

    Parameters
    ----------
    seed : int
        Seed of the tie-breaking key used by the hard cut.
    balance : bool
    importance : {"el2n", "aum", "forgetting"}
        Difficulty score (higher = harder) from the proxy dynamics.
    n_neighbors : int
    gamma_forward, gamma_reverse : float
    hard_cut : float or "auto"
    epoch : int or "mean"
    embedding : {"cnn", "pixels", "random-conv"}
    """

    name = "d2"
    score_meaning = (
        "difficulty after forward message passing on the class's kNN graph, higher = more "
        "important; the selection is the greedy reverse-message-passing order after a hard "
        "cut of the hardest: not the top of the scores")
    nested = False
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, importance: str = "el2n",
                 n_neighbors: int = 10, gamma_forward: float = 1.0, gamma_reverse: float = 1.0,
                 hard_cut: float | str = "auto", epoch: int | str = -1,
                 embedding: str = "cnn"):
        super().__init__(seed=seed, balance=balance)
        if not is_whole(n_neighbors, 1):
            raise TinysiftError(f"n_neighbors must be a whole number >= 1, got {n_neighbors!r}")
        for name, gamma in (("gamma_forward", gamma_forward), ("gamma_reverse", gamma_reverse)):
            if not (isinstance(gamma, Real) and not isinstance(gamma, bool)
                    and 0.0 <= gamma < math.inf):
                raise TinysiftError(f"{name} must be a finite number >= 0 (a neighbour at "
                                    f"distance d weighs exp(-{name} d)), got {gamma!r}")
        check_difficulty_params(importance, epoch, hard_cut)
        check_embedding(embedding)
        self.importance = importance
        self.n_neighbors = n_neighbors
        self.gamma_forward = gamma_forward
        self.gamma_reverse = gamma_reverse
        self.hard_cut = hard_cut
        self.epoch = epoch
        self.embedding = embedding

    def _fit(self, context) -> np.ndarray:
        hard = difficulty(context, self.importance, self.epoch)
        self.difficulty_ = hard
        self.z_ = np.asarray(context.embedding(self.embedding), dtype=np.float64)
        forward = np.zeros(context.num_samples, dtype=np.float64)
        groups = ([context.class_indices(c) for c in range(context.num_classes)]
                  if self.balance else [np.arange(context.num_samples)])
        for idx in groups:
            if len(idx):
                s = self._node_scores(idx)
                forward[idx] = forward_pass(knn_graph(self.z_[idx], self.n_neighbors), s,
                                            self.gamma_forward)
        return forward

    def _node_scores(self, idx: np.ndarray) -> np.ndarray:
        s = self.difficulty_[idx]
        return s - min(0.0, float(s.min()))

    def _select(self, count: int) -> np.ndarray:
        beta = resolve_hard_cut(self.hard_cut, count, self.context_.num_samples)
        self.beta_ = beta
        tiebreak = self._tiebreak()

        def chooser(idx: np.ndarray, quota: int) -> np.ndarray:
            pool = idx[cut_hardest(self.difficulty_[idx], beta, quota, tiebreak[idx])]
            graph = knn_graph(self.z_[pool], self.n_neighbors)
            order, _ = d2_order(graph, self._node_scores(pool), self.gamma_forward,
                                self.gamma_reverse, quota)
            return pool[order]

        return self._per_class(count, chooser)
