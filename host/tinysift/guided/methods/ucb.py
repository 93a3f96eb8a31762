"""``ucb``: train the samples with the highest upper confidence bound on their loss."""

from __future__ import annotations

import math

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.guided.base import EpochPlan, EpochSampler, TrainingState, register


@register
class UCB(EpochSampler):
    """Dynamic data pruning with an upper confidence bound (Raju, Daruwalla & Lipasti,
    "Accelerating Deep Learning with Dynamic Data Pruning", 2021). Each sample keeps an
    exponential moving average of its loss and of the loss's squared deviation; each epoch
    trains the ``budget x N`` samples with the largest ``mean + c * std`` (never-trained
    samples first, so the first epochs cover the data). Unweighted, as in the paper.

    Parameters
    ----------
    c : exploration weight on the standard deviation
    decay : EMA decay of mean and variance
    """

    name = "ucb"

    def __init__(self, seed: int = 0, c: float = 1.0, decay: float = 0.9):
        super().__init__(seed)
        # decay 5 or -1 made the averages diverge (a variance below 0: a NaN bound) and a
        # NaN c made every bound NaN: the epochs were then picked by NaNs, silently
        if not 0.0 <= decay <= 1.0:
            raise TinysiftError(f"decay must be an EMA decay in [0, 1], got {decay}")
        if not math.isfinite(c):
            raise TinysiftError(f"c must be a finite exploration weight, got {c}")
        self.c = c
        self.decay = decay

    def begin(self, state: TrainingState) -> None:
        self.mean_ = np.zeros(state.num_samples, np.float64)
        self.var_ = np.zeros(state.num_samples, np.float64)
        self.count_ = np.zeros(state.num_samples, np.int64)

    def bound(self) -> np.ndarray:
        """Per sample ``mean + c * std`` of its loss (infinite until first trained)."""
        ucb = self.mean_ + self.c * np.sqrt(self.var_)
        ucb[self.count_ == 0] = np.inf
        return ucb

    def plan(self, state: TrainingState) -> EpochPlan:
        # Random tie-break (never-trained samples all tie at infinity).
        key = state.rng.random(state.num_samples)
        order = np.lexsort((key, -self.bound()))
        return EpochPlan(order[:state.epoch_size], note="ucb")

    def end_epoch(self, state: TrainingState) -> None:
        idx = np.flatnonzero(state.seen_epoch == state.epoch)
        loss = state.loss[idx].astype(np.float64)
        first = self.count_[idx] == 0
        d = self.decay
        mean_old = self.mean_[idx]
        mean_new = np.where(first, loss, d * mean_old + (1 - d) * loss)
        self.var_[idx] = np.where(first, 0.0,
                                  d * self.var_[idx] + (1 - d) * (loss - mean_old) ** 2)
        self.mean_[idx] = mean_new
        self.count_[idx] += 1
