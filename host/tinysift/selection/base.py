"""One interface for every pruning method (scikit-learn style).

A method is a *scorer* plus a *selector*:

* ``fit(context)`` learns whatever the method needs (embeddings, codebooks, flows, training
  dynamics) and stores ``scores_``: one float per training sample where **higher means keep
  first**;
* ``select(count)`` turns the scores into exactly ``count`` kept indices (sorted, int64),
  class-balanced by default. The default selector keeps the top scores of each class; methods
  with their own selection rule (coverage, strata, greedy geometry) override ``select``.

Not every method's selection is the top of its scores: CCS stratifies its difficulty scores
(higher = harder), prototypes keeps the lowest at small budgets, D2, VQ and flow select by
rules their scores only feed. Each method says so: ``score_meaning`` (what the scores measure,
direction included) and ``nested`` (True when ``select(count)`` is the top ``count`` of the
scores, per class at the class quotas when balanced, so the scores re-cut any budget).
``selection.npz`` records both.

A new method is one module that subclasses :class:`PruningMethod` and decorates itself with
:func:`register`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from tinysift.errors import BudgetError, TinysiftError, did_you_mean
from tinysift.params import Parameterized, is_whole, mistyped_parameter, unknown_parameter
from tinysift.scoring.context import ScoringContext
from tinysift.selection.budget import class_quotas

METHODS: dict[str, type[PruningMethod]] = {}


def register(cls: type[PruningMethod]) -> type[PruningMethod]:
    METHODS[cls.name] = cls
    return cls


class PruningMethod(Parameterized, ABC):
    """Base class: subclasses set ``name`` and implement ``_fit``.

    Parameters
    ----------
    seed : int
        Seed for every random choice the method makes.
    balance : bool
        Class-balanced budgets (quota per class within 1) when True.
    """

    name: ClassVar[str] = ""
    #: What the method needs from the context, for cost accounting (e.g. ``{"dynamics"}``).
    needs: ClassVar[frozenset[str]] = frozenset()
    #: What ``scores_`` measure, direction included (saved in ``selection.npz``).
    score_meaning: ClassVar[str] = "importance, higher = kept first"
    #: True when ``select(count)`` is the top ``count`` of ``scores_`` (per class at the class
    #: quotas when balanced; ties broken by the method's key), for every ``count``: only then
    #: do the saved scores re-cut another budget. A method with a selection rule of its own
    #: sets it False (tests/test_baselines.py checks the claim for every registered method).
    nested: ClassVar[bool] = True

    def __init__(self, seed: int = 0, balance: bool = True):
        self.seed = seed
        self.balance = balance
        self.scores_: np.ndarray | None = None
        self.context_: ScoringContext | None = None

    def fit(self, context: ScoringContext) -> PruningMethod:
        self.context_ = context
        scores = np.asarray(self._fit(context), dtype=np.float64)
        if scores.shape != (context.num_samples,):
            raise AssertionError(f"{self.name}: scores have shape {scores.shape}")
        self.scores_ = scores
        return self

    @abstractmethod
    def _fit(self, context: ScoringContext) -> np.ndarray:
        """Return per-sample scores (as ``score_meaning`` says; the top of them is the
        selection only when ``nested``)."""

    def score(self) -> np.ndarray:
        self._check_fitted()
        return self.scores_

    def fit_select(self, context: ScoringContext, count: int) -> np.ndarray:
        return self.fit(context).select(count)

    def select(self, count: int) -> np.ndarray:
        """Exactly ``count`` kept indices (sorted int64)."""
        self._check_fitted()
        y = self.context_.y
        # A float is refused, whole or not: select(1.0) meant "keep everything" and kept one
        # sample (balance=False), select(50.5) was a numpy slicing TypeError.
        if not is_whole(count):
            raise BudgetError(
                f"select takes a count of samples to keep, a whole number in [1, {len(y)}], "
                f"got {count!r}; for a fraction, resolve_keep(keep, {len(y)}) gives its count "
                "(tinysift.selection.resolve_keep)")
        if not 1 <= count <= len(y):
            raise BudgetError(f"keep count must be in [1, {len(y)}], got {count}")
        kept = self._select(count)
        kept = np.unique(np.asarray(kept, dtype=np.int64))
        if len(kept) != count:
            raise AssertionError(f"{self.name} selected {len(kept)} samples, asked for {count}")
        return kept

    def _select(self, count: int) -> np.ndarray:
        return self._per_class(count, self._top_scores)

    def _quotas(self, count: int) -> np.ndarray:
        ctx = self.context_
        if self.balance:
            return class_quotas(ctx.y, count, ctx.num_classes)
        return None  # type: ignore[return-value]

    def _per_class(self, count: int, chooser) -> np.ndarray:
        """Apply ``chooser(indices_of_class, quota) -> chosen`` per class (or globally)."""
        ctx = self.context_
        if not self.balance:
            return chooser(np.arange(ctx.num_samples), count)
        quotas = self._quotas(count)
        out = []
        for c, q in enumerate(quotas):
            if q == 0:
                continue
            idx = np.flatnonzero(ctx.y == c)
            out.append(np.asarray(chooser(idx, int(q)), dtype=np.int64))
        return np.concatenate(out)

    def _top_scores(self, idx: np.ndarray, quota: int) -> np.ndarray:
        # Stable sort on -score, ties broken by index: deterministic.
        order = np.argsort(-self.scores_[idx], kind="stable")
        return idx[order[:quota]]

    def _check_fitted(self) -> None:
        if self.scores_ is None or self.context_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(context) first")


def make_method(name: str, **params) -> PruningMethod:
    from tinysift.selection import methods  # noqa: F401  (registers every method)

    if name not in METHODS:
        raise TinysiftError(f"unknown method {name!r}{did_you_mean(name, METHODS)}; known "
                            f"methods: {', '.join(sorted(METHODS))}")
    return construct_checked(METHODS[name], f"method {name!r}", **params)


def construct_checked(cls: type, where: str, **params):
    """``cls(**params)`` with its parameters checked (:mod:`tinysift.params`): a name it does
    not take is refused first; a value the constructor refuses keeps the constructor's
    refusal (it names the bound); a value of the wrong type is refused by its type, whether
    the constructor failed on it (a TypeError) or took it (true as a number ran as 1).

    Raises
    ------
    TinysiftError : ``"{where} has no parameter ..."`` or ``"{where}: parameter ... takes
        ..."``, or the constructor's own refusal
    """
    problem = unknown_parameter(cls, params, where)
    if problem:
        raise TinysiftError(problem)
    try:
        made = cls(**params)
    except (TypeError, ValueError) as exc:
        problem = mistyped_parameter(cls, params, where)
        if problem:
            raise TinysiftError(problem) from exc
        raise
    problem = mistyped_parameter(cls, params, where)
    if problem:
        raise TinysiftError(problem)
    return made
