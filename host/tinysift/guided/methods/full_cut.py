"""``full-cut``: all the data every epoch, the schedule cut to the budget (the control)."""

from __future__ import annotations

import numpy as np

from tinysift.guided.base import EpochPlan, EpochSampler, TrainingState, register


@register
class FullCut(EpochSampler):
    """Every epoch trains on the whole training set; the run stops when the budget is spent
    (the last epoch partly), with the learning rate decayed to zero over the shortened run.
    The honest control for any cost claim: the full-data recipe, simply shorter."""

    name = "full-cut"

    def plan(self, state: TrainingState) -> EpochPlan:
        return EpochPlan(np.arange(state.num_samples), note="full")
