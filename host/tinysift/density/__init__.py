"""Learned densities over embeddings: per-class normalizing flows."""

from tinysift.density.realnvp import ClassFlows, FlowConfig

__all__ = ["ClassFlows", "FlowConfig"]
