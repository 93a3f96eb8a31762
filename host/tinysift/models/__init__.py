"""Tiny CNN family (Keras 2), deterministic training, evaluation and a cost meter."""

from tinysift.models.cnn import ModelConfig, build_model
from tinysift.models.cost import CostReport, count_macs
from tinysift.models.training import TrainConfig, TrainResult, evaluate, train_model

__all__ = ["ModelConfig", "build_model", "CostReport", "count_macs", "TrainConfig",
           "TrainResult", "evaluate", "train_model"]
