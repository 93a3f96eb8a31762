"""CCS: coverage-centric coreset selection (Zheng et al., 2023)."""

from __future__ import annotations

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.params import is_whole
from tinysift.selection.base import register
from tinysift.selection.methods._common import (
    RankedMethod,
    check_difficulty_params,
    cut_hardest,
    difficulty,
    resolve_hard_cut,
)


def strata(scores: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin index in ``[0, num_bins)`` of each score, ``num_bins`` equal-width bins spanning
    ``[min, max]`` (the maximum falls in the last bin)."""
    scores = np.asarray(scores, dtype=np.float64)
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        return np.zeros(len(scores), dtype=np.int64)
    b = np.floor((scores - lo) / (hi - lo) * num_bins).astype(np.int64)
    return np.clip(b, 0, num_bins - 1)


def allocate(budget: int, sizes: np.ndarray) -> np.ndarray:
    """CCS budget allocation: visit strata from the smallest, give each
    ``min(size, remaining // strata_left)``; exact whenever ``budget <= sizes.sum()``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if budget > sizes.sum():
        raise ValueError(f"budget {budget} exceeds the {sizes.sum()} samples available")
    out = np.zeros(len(sizes), dtype=np.int64)
    rest = int(budget)
    order = np.argsort(sizes, kind="stable")
    for i, b in enumerate(order):
        take = min(int(sizes[b]), rest // (len(order) - i))
        out[b] = take
        rest -= take
    return out


def ccs_sample(hard: np.ndarray, quota: int, beta: float, num_bins: int,
               rng: np.random.Generator, tiebreak: np.ndarray) -> np.ndarray:
    """Positions chosen by CCS from one pool: cut the hardest ``beta``, stratify the rest into
    ``num_bins`` equal-width score bins, allocate smallest-bin-first, sample uniformly in bins."""
    pool = cut_hardest(hard, beta, quota, tiebreak)
    bins = strata(hard[pool], num_bins)
    budgets = allocate(quota, np.bincount(bins, minlength=num_bins))
    chosen = []
    for b in np.flatnonzero(budgets):
        members = pool[bins == b]
        chosen.append(rng.choice(members, size=int(budgets[b]), replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


@register
class CCSMethod(RankedMethod):
    """Coverage-centric coreset selection: hard cut, then stratified sampling over score bins.

    Zheng, H., Liu, R., Lai, F. & Prakash, A. "Coverage-centric Coreset Selection for High
    Pruning Rates." ICLR 2023 (Algorithm 1). Given a difficulty score: (1) remove the
    ``beta`` fraction of hardest samples (likely mislabelled or outliers); (2) split the
    remaining score range into ``k`` equal-width strata; (3) visit strata from the smallest,
    giving each ``min(|stratum|, remaining budget // strata left)``; (4) sample uniformly at
    random inside each stratum.

    Score direction: ``scores_`` holds the difficulty used for the strata (**higher = harder**),
    for inspection; CCS does *not* keep the top scores: the selection is the stratified
    sample above, so it depends on the budget.

    Choices:

    * difficulty: EL2N (default; the design's reference CCS row) or AUM (``importance="aum"``,
      difficulty = -AUM, the paper's main choice) or forgetting counts, all from tinysift's
      proxy-CNN dynamics (EL2N read at ``epoch``);
    * ``hard_cut="auto"`` sets beta from the keep fraction with the paper's CIFAR-10 settings
      (:func:`~tinysift.selection.methods._common.ccs_hard_cut`: 0 when keeping more than 30 %,
      0.1 when keeping more than 10 % and at most 30 %, 0.3 when keeping 10 % or less); a
      float fixes it. The cut shrinks if it would leave fewer samples than the budget;
    * with ``balance=True`` (default) the whole procedure runs inside each class with the
      class quota (the paper runs it over the whole dataset, which ``balance=False`` does).

    Parameters
    ----------
    seed : int
        Seed of the within-stratum sampling.
    balance : bool
    importance : {"el2n", "aum", "forgetting"}
        Difficulty score (higher = harder) from the proxy dynamics.
    num_bins : int
        Number of strata ``k`` (50 in the paper).
    hard_cut : float or "auto"
        Fraction ``beta`` of the hardest samples removed before stratifying.
    epoch : int or "mean"
        Epoch of the EL2N score.
    """

    name = "ccs"
    score_meaning = (
        "difficulty from the proxy CNN (EL2N by default, `importance`), higher = harder; the "
        "selection cuts the hardest, then samples equal-width difficulty strata at random: "
        "not the top of the scores")
    nested = False
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, importance: str = "el2n",
                 num_bins: int = 50, hard_cut: float | str = "auto", epoch: int | str = -1):
        super().__init__(seed=seed, balance=balance)
        if not is_whole(num_bins, 1):
            raise TinysiftError(f"num_bins must be a whole number >= 1, got {num_bins!r}")
        check_difficulty_params(importance, epoch, hard_cut)
        self.importance = importance
        self.num_bins = num_bins
        self.hard_cut = hard_cut
        self.epoch = epoch

    def _fit(self, context) -> np.ndarray:
        return difficulty(context, self.importance, self.epoch)

    def _select(self, count: int) -> np.ndarray:
        beta = resolve_hard_cut(self.hard_cut, count, self.context_.num_samples)
        self.beta_ = beta
        rng = np.random.default_rng(self.seed)
        tiebreak = self._tiebreak()

        def chooser(idx: np.ndarray, quota: int) -> np.ndarray:
            pos = ccs_sample(self.scores_[idx], quota, beta, self.num_bins, rng, tiebreak[idx])
            return idx[pos]

        return self._per_class(count, chooser)
