"""One interface for condensation methods: ``fit(context)`` then ``condense(per_class)``.

``condense`` returns ``(x, y)``: uint8 images with the dataset's shape and int64 labels,
exactly ``per_class`` samples per class, class by class. A new method is one module in
:mod:`tinysift.condensation.methods` decorated with :func:`register`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from tinysift.errors import BudgetError, TinysiftError, did_you_mean
from tinysift.params import Parameterized, is_whole
from tinysift.scoring.context import ScoringContext
from tinysift.selection.base import construct_checked

CONDENSERS: dict[str, type[Condenser]] = {}


def register(cls: type[Condenser]) -> type[Condenser]:
    CONDENSERS[cls.name] = cls
    return cls


class Condenser(Parameterized, ABC):
    name: ClassVar[str] = ""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.context_: ScoringContext | None = None

    def fit(self, context: ScoringContext) -> Condenser:
        self.context_ = context
        self._fit(context)
        return self

    def _fit(self, context: ScoringContext) -> None:  # noqa: B027 - optional hook
        """Learn what the method needs (embeddings, flows); default: nothing."""

    def condense(self, per_class: int) -> tuple[np.ndarray, np.ndarray]:
        ctx = self.context_
        if ctx is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(context) first")
        check_per_class(per_class, np.bincount(ctx.y, minlength=ctx.num_classes))
        xs, ys = [], []
        for c in range(ctx.num_classes):
            x_c = self._condense_class(c, ctx.class_indices(c), per_class)
            if x_c.shape != (per_class,) + ctx.x.shape[1:] or x_c.dtype != np.uint8:
                raise AssertionError(f"{self.name} produced {x_c.shape} {x_c.dtype}")
            xs.append(x_c)
            ys.append(np.full(per_class, c, np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    @abstractmethod
    def _condense_class(self, c: int, idx: np.ndarray, k: int) -> np.ndarray:
        """``k`` uint8 images for class ``c`` (whose training indices are ``idx``)."""


class EmbeddingCondenser(Condenser):
    """A condenser working in one of the context's embeddings (``self.z_`` after fit)."""

    def __init__(self, seed: int = 0, embedding: str = "random-conv", dim: int = 32):
        from tinysift.scoring.embeddings import check_embedding

        super().__init__(seed)
        # checked here: a dim of 0 was the context's default dimension under a record
        # saying 0, an unknown embedding an error only at fit
        check_embedding(embedding, f"{self.name}: embedding")
        if not is_whole(dim, 1):
            raise TinysiftError(f"{self.name}: dim must be a whole number >= 1, got {dim!r}")
        self.embedding, self.dim = embedding, dim

    def _fit(self, context: ScoringContext) -> None:
        self.z_ = context.embedding(self.embedding, self.dim)


def check_per_class(per_class: int, class_counts: np.ndarray,
                    class_names: tuple[str, ...] | None = None) -> None:
    """Refuse a per-class K below 1 or above the smallest class (before any fit is paid);
    ``class_names``: the smallest class is named too (a folder's "class 3" is 'lonely')."""
    if not is_whole(per_class, 1):
        raise BudgetError(f"per-class K (--per-class, samples made a class) must be a whole "
                          f"number >= 1, got {per_class!r}")
    smallest = int(np.min(class_counts))
    if smallest == 0:  # the message below advised "use K <= 0"
        absent = np.flatnonzero(class_counts == 0).tolist()
        raise BudgetError(
            f"class{'es' if len(absent) > 1 else ''} {', '.join(map(str, absent))} of the "
            f"{len(class_counts)} classes {'have' if len(absent) > 1 else 'has'} no training "
            "samples to condense; condensation makes K samples of every class: pass "
            "num_classes = the number of classes present (labels 0..K-1)")
    if per_class > smallest:
        index = int(np.argmin(class_counts))
        named = (f" ({class_names[index]!r})" if class_names is not None
                 and class_names[index] != str(index) else "")
        raise BudgetError(
            f"per-class K={per_class} is larger than class {index}{named}, which has only "
            f"{smallest} training samples; use K <= {smallest}")


def make_condenser(name: str, **params) -> Condenser:
    from tinysift.condensation import methods  # noqa: F401 (registers every method)

    if name not in CONDENSERS:
        raise TinysiftError(f"unknown condensation method {name!r}"
                            f"{did_you_mean(name, CONDENSERS)}; known: "
                            f"{', '.join(sorted(CONDENSERS))}")
    return construct_checked(CONDENSERS[name], f"condensation method {name!r}", **params)


def to_uint8(x_float: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 pixels (rounded, clipped)."""
    return np.clip(np.round(np.asarray(x_float) * 255.0), 0, 255).astype(np.uint8)
