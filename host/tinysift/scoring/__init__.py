"""Scoring: what every selector and condenser measures the data with.

The :class:`ScoringContext` (the training split plus cached shared work), the training
dynamics of a briefly trained proxy CNN, embeddings, and learned densities (per-class
normalizing flows, :mod:`tinysift.scoring.flows`, imported on use: it pulls in TensorFlow).
"""

from tinysift.scoring.context import ScoringContext
from tinysift.scoring.dynamics import TrainingDynamics, forgetting_counts

__all__ = ["ScoringContext", "TrainingDynamics", "forgetting_counts"]
