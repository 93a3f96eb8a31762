"""``infobatch``: prune well-learned samples at random each epoch, rescale the survivors."""

from __future__ import annotations

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.guided.base import EpochPlan, EpochSampler, TrainingState, register


@register
class InfoBatch(EpochSampler):
    """InfoBatch (Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data
    Pruning", ICLR 2024). Each epoch, samples whose last loss is below the mean loss are
    pruned with probability ``prune_ratio``; the surviving ones get loss weight
    ``1 / (1 - prune_ratio)``, which keeps the expected gradient unbiased. Samples never
    trained count as above the mean. In the last ``1 - anneal`` of the run (here: of the
    budget spent, since the run is budget-bound) every sample is trained, unweighted.

    InfoBatch sets no budget of its own (its saving depends on the losses); run here at a
    fixed budget, it prunes as published and the schedule ends when the budget is spent.

    Parameters
    ----------
    prune_ratio : the paper's r (0.5)
    anneal : the paper's delta (0.875)
    """

    name = "infobatch"

    def __init__(self, seed: int = 0, prune_ratio: float = 0.5, anneal: float = 0.875):
        super().__init__(seed)
        if not 0.0 <= prune_ratio < 1.0:  # the survivors' weight is 1 / (1 - r)
            raise TinysiftError(f"prune_ratio must be in [0, 1), got {prune_ratio}")
        if not 0.0 <= anneal <= 1.0:
            raise TinysiftError(f"anneal must be a share of the budget in [0, 1], got {anneal}")
        self.prune_ratio = prune_ratio
        self.anneal = anneal

    def plan(self, state: TrainingState) -> EpochPlan:
        n = state.num_samples
        if state.ledger.progress >= self.anneal:
            return EpochPlan(np.arange(n), note="anneal: full")
        loss = state.loss
        seen = ~np.isnan(loss)
        if not seen.any():
            return EpochPlan(np.arange(n), note="first: full")
        well_learned = seen & (np.nan_to_num(loss, nan=np.inf) < np.nanmean(loss))
        drop = well_learned & (state.rng.random(n) < self.prune_ratio)
        keep = np.flatnonzero(~drop)
        weights = np.where(well_learned[keep], 1.0 / (1.0 - self.prune_ratio), 1.0)
        return EpochPlan(keep, weights.astype(np.float32),
                         note=f"pruned {int(drop.sum())} well-learned")
