"""``rs2``: a fresh random subset every epoch, without replacement across epochs."""

from __future__ import annotations

from tinysift.guided.base import (
    EpochPlan,
    EpochSampler,
    TrainingState,
    register,
    without_replacement_stream,
)


@register
class RS2(EpochSampler):
    """Repeated random sampling (Okanovic et al., "Repeated Random Sampling for Minimizing the
    Time-to-Accuracy of Learning", ICLR 2024), the variant without replacement: each epoch
    trains on the next ``budget x N`` samples of a random permutation, a new permutation once
    every sample has been used. Over the run every sample is seen about equally often."""

    name = "rs2"

    def begin(self, state: TrainingState) -> None:
        self.stream_ = without_replacement_stream(state.num_samples, state.rng)

    def plan(self, state: TrainingState) -> EpochPlan:
        return EpochPlan(self.stream_(state.epoch_size), note="random")
