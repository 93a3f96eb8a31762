"""Guided training: per-epoch data selection while the model trains, at a fixed budget of
sample-passes (the control ``full-cut``, ``rs2``, ``infobatch``, ``ucb``, and tinysift's
``vq`` and ``flow``)."""

from tinysift.guided.base import (
           EpochPlan,
           EpochSampler,
           TrainingState,
           known_samplers,
           make_sampler,
           sampler_params,
           stamped_params,
)
from tinysift.guided.ledger import CostLedger

__all__ = ["CostLedger", "EpochPlan", "EpochSampler", "TrainingState", "known_samplers",
           "make_sampler", "sampler_params", "stamped_params"]
