"""Pruning: keep the most useful real samples for an exact budget."""

from tinysift.selection.base import METHODS, PruningMethod, make_method, register
from tinysift.selection.budget import class_quotas, parse_keep, resolve_keep

__all__ = ["METHODS", "PruningMethod", "class_quotas", "make_method", "parse_keep", "register",
           "resolve_keep"]
