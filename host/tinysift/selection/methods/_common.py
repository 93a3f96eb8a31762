"""Shared pieces of the baseline methods (not a method itself: nothing here is registered).

* :class:`RankedMethod`: a :class:`PruningMethod` whose top-score selector breaks ties with a
  seeded random key instead of the sample index (integer scores such as forgetting counts
  tie a lot; breaking ties by index would always favour the start of the dataset).
* :func:`per_epoch`: pick one epoch of a ``(E, N)`` training-dynamics array, or average them.
* :func:`difficulty`: the "hardness" score (higher = harder) that CCS and D2 build on.
* :func:`ccs_hard_cut`: CCS's hard-cutoff rate as a function of the keep fraction.
* :func:`order_to_scores`: turn a greedy pick order into scores (earlier pick = higher).
"""

from __future__ import annotations

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.params import is_whole
from tinysift.scoring.dynamics import forgetting_counts
from tinysift.selection.base import PruningMethod
from tinysift.selection.budget import fraction_count


class RankedMethod(PruningMethod):
    """Top-score selection with seeded random tie-breaking (not registered)."""

    def _tiebreak(self) -> np.ndarray:
        # made once per (seed, size): a refit after its seed was set draws its own
        cached = getattr(self, "_tiebreak_key_", None)
        n = self.context_.num_samples
        if cached is None or cached[0] != (self.seed, n):
            cached = ((self.seed, n), np.random.default_rng(self.seed).permutation(n))
            self._tiebreak_key_ = cached
        return cached[1]

    def _top_scores(self, idx: np.ndarray, quota: int) -> np.ndarray:
        return idx[top_order(self.scores_[idx], self._tiebreak()[idx])[:quota]]


def top_order(scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Positions sorted by descending score, ties broken by ascending ``tiebreak``."""
    return np.lexsort((tiebreak, -np.asarray(scores, dtype=np.float64)))


def per_epoch(values: np.ndarray, epoch: int | str) -> np.ndarray:
    """One row of an ``(E, N)`` dynamics array (``epoch`` an index, negative counts from the
    end) or the mean over epochs (``epoch="mean"``)."""
    values = np.asarray(values, dtype=np.float64)
    if isinstance(epoch, str):
        if epoch != "mean":
            raise TinysiftError(f"epoch must be an integer index or 'mean', got {epoch!r}")
        return values.mean(0)
    e = int(epoch)
    if not -len(values) <= e < len(values):
        raise TinysiftError(
            f"epoch {e} is out of range: the proxy recorded {len(values)} epochs "
            "(raise proxy_epochs or pick a smaller index)"
        )
    return values[e]


def check_epoch(epoch) -> None:
    """Refuse an ``epoch`` parameter :func:`per_epoch` would refuse only after the proxy
    trained (a string other than ``"mean"``, a float)."""
    if isinstance(epoch, str) and epoch == "mean":
        return
    if not is_whole(epoch):
        raise TinysiftError(f"epoch must be an integer index or 'mean', got {epoch!r}")


SCORE_KINDS = ("el2n", "aum", "forgetting")


def check_importance(kind: str) -> None:
    if kind not in SCORE_KINDS:
        raise TinysiftError(f"unknown difficulty score (importance) {kind!r}; choose one of "
                            f"{SCORE_KINDS}")


def check_difficulty_params(importance: str, epoch: int | str, hard_cut: float | str | None
                            ) -> None:
    """Refuse a difficulty score, epoch or hard cut when a ranked method (ccs, d2) is made,
    not after its proxy CNN has trained."""
    check_importance(importance)
    check_epoch(epoch)
    resolve_hard_cut(hard_cut, 0, 1)


def difficulty(context, kind: str = "el2n", epoch: int | str = -1) -> np.ndarray:
    """Per-sample difficulty from the proxy's training dynamics, **higher = harder**.

    ``el2n``: EL2N at ``epoch``; ``aum``: minus the area under the margin (mean margin over
    all recorded epochs); ``forgetting``: forgetting-event count (never learned = maximal).
    """
    check_importance(kind)  # before the proxy trains
    dyn = context.dynamics()
    if kind == "el2n":
        return per_epoch(dyn.el2n, epoch)
    if kind == "aum":
        return -np.asarray(dyn.margin, dtype=np.float64).mean(0)
    return forgetting_counts(dyn.correct)


#: CCS's hard-cutoff schedule: (keep fraction, beta) pairs, largest keep first; a keep
#: above a fraction cuts its beta, a keep at or below every fraction cuts the last one's.
CCS_SCHEDULE = ((0.3, 0.0), (0.1, 0.1))
CCS_SMALLEST_BETA = 0.3
#: A float's rounding in the hard cut's comparisons: 0.29 * 100 is 28.999...96, which int()
#: made a cut of 28, and a keep of 0.3 reached through a sum compared above 0.3
ROUNDING = 1e-9


def ccs_hard_cut(keep_fraction: float) -> float:
    """CCS hard-cutoff rate beta (fraction of the hardest samples dropped first) for a keep
    fraction, following the CIFAR-10 settings of Zheng et al. (2023, Appendix B): no cut at
    pruning rates up to 50 %, 10 % at 70-80 %, 30 % at 90 % (the authors' README example uses
    ``--mis-ratio 0.3`` for 90 % pruning). Beyond 90 % pruning the paper gives no setting; we
    keep 30 %. Between the published points the nearest lower pruning rate's value is used."""
    return _ccs_beta(lambda above: float(keep_fraction) > above + ROUNDING)


def _ccs_beta(keeps_more_than) -> float:
    """The schedule's beta for a budget, ``keeps_more_than(fraction)`` telling whether it
    keeps more than that fraction (of a keep fraction, or of a count)."""
    for above, beta in CCS_SCHEDULE:
        if keeps_more_than(above):
            return beta
    return CCS_SMALLEST_BETA


def resolve_hard_cut(hard_cut: float | str | None, count: int, num_samples: int) -> float:
    """``"auto"`` -> :func:`ccs_hard_cut` of the budget; a float in [0, 1) as given.

    The budget is compared as a count (:func:`~tinysift.selection.budget.fraction_count`):
    keep 0.1 of 1,437 samples is 144 samples, 0.1002 of them, and cuts as keep 0.1 does."""
    if hard_cut is None:
        return 0.0
    if isinstance(hard_cut, str):
        if hard_cut != "auto":
            raise TinysiftError(
                f"hard_cut must be a fraction in [0, 1) or 'auto', got {hard_cut!r}")
        return _ccs_beta(lambda above: count > fraction_count(above, num_samples))
    beta = float(hard_cut)
    if not 0.0 <= beta < 1.0:
        raise TinysiftError(f"hard_cut must be a fraction in [0, 1), got {beta}")
    return beta


def cut_hardest(hard: np.ndarray, beta: float, quota: int, tiebreak: np.ndarray) -> np.ndarray:
    """Positions (into ``hard``) that survive cutting the ``floor(beta * n)`` hardest; the cut
    shrinks when fewer than ``quota`` samples would survive."""
    n = len(hard)
    cut = min(int(beta * n + ROUNDING), n - quota)  # floored as ccs_hard_cut compares
    if cut <= 0:
        return np.arange(n)
    order = top_order(hard, tiebreak)  # hardest first
    return np.sort(order[cut:])


def order_to_scores(order: np.ndarray, n: int) -> np.ndarray:
    """Scores in (0, 1] for positions ``0..n-1``: the k-th pick gets ``1 - k/n``; positions
    never picked get 0."""
    scores = np.zeros(n, dtype=np.float64)
    scores[order] = 1.0 - np.arange(len(order)) / n
    return scores


def sq_dists_to(z: np.ndarray, point: np.ndarray, sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances from every row of ``z`` to ``point`` (``sq`` = row norms^2)."""
    d = sq - 2.0 * (z @ point) + float(point @ point)
    return np.maximum(d, 0.0, out=d)


class GreedyMethod(PruningMethod):
    """A greedy geometric selector run per class in an embedding (not registered).

    Greedy picks are nested (the first ``q`` picks do not depend on the budget), so ``_fit``
    runs each class's greedy to completion and stores the pick order as scores
    (:func:`order_to_scores`: earlier pick = higher); the class-balanced selection is then the
    top of each class. With ``balance=False`` the greedy runs once over the whole dataset, up to
    the budget, inside ``select``.
    """

    embedding: str = "cnn"

    @property
    def nested(self) -> bool:  # type: ignore[override]
        # balance=False runs one greedy over the whole set, not the top of per-class orders.
        return self.balance

    def _order(self, z: np.ndarray, rng: np.random.Generator, limit: int) -> np.ndarray:
        raise NotImplementedError

    def _embedding(self, context) -> np.ndarray:
        return np.asarray(context.embedding(self.embedding), dtype=np.float64)

    def _fit(self, context) -> np.ndarray:
        z = self._embedding(context)
        rng = np.random.default_rng(self.seed)
        scores = np.zeros(context.num_samples, dtype=np.float64)
        for c in range(context.num_classes):
            idx = context.class_indices(c)
            if len(idx):
                scores[idx] = order_to_scores(self._order(z[idx], rng, len(idx)), len(idx))
        return scores

    def _select(self, count: int) -> np.ndarray:
        if self.balance:
            return super()._select(count)
        z = self._embedding(self.context_)
        return self._order(z, np.random.default_rng(self.seed), count)
