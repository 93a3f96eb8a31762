"""One interface for every guided-training method: an *epoch sampler*.

Guided training (:func:`tinysift.guided.loop.train_guided`) runs epochs until its budget of
sample-passes is spent. Before each epoch it asks the sampler for an :class:`EpochPlan` (which
samples, with which loss weights); after training on them it hands the sampler what the
forward passes measured anyway (per-sample loss, probability of the label, backbone
features), so a sampler needs no extra passes to stay informed. A sampler that fits
something (a codebook, a flow) does it inside ``state.ledger.fit(name)`` so the fit is
charged to the budget.

A new method is one module in ``tinysift/guided/methods/`` that subclasses
:class:`EpochSampler` and decorates itself with :func:`register`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from tinysift.errors import TinysiftError, did_you_mean
from tinysift.guided.ledger import CostLedger
from tinysift.params import mistyped_parameter, unknown_parameter

SAMPLERS: dict[str, type[EpochSampler]] = {}


def register(cls: type[EpochSampler]) -> type[EpochSampler]:
    SAMPLERS[cls.name] = cls
    return cls


def known_samplers() -> list[str]:
    import tinysift.guided.methods  # noqa: F401  (registers every method)

    return sorted(SAMPLERS)


def make_sampler(name: str, seed: int = 0, **params) -> EpochSampler:
    known = known_samplers()
    if name not in SAMPLERS:
        raise TinysiftError(f"unknown guided method {name!r}{did_you_mean(name, known)}; "
                            f"known: {', '.join(known)}")
    problem = (unknown_parameter(SAMPLERS[name], params, f"guided method {name!r}",
                                 takes_none="it takes none: drop its parameters "
                                            "(--guided-params, or its entry in a bench's "
                                            "--method-params)")
               or mistyped_parameter(SAMPLERS[name], params, f"guided method {name!r}"))
    if problem:
        raise TinysiftError(problem)
    try:
        return SAMPLERS[name](seed=seed, **params)
    except (TypeError, ValueError, AttributeError) as exc:
        raise TinysiftError(f"guided method {name!r}: {exc}") from exc


def sampler_params(name: str, **params) -> dict:
    """What ``make_sampler(name, **params)`` runs with, defaults included, the seed aside:
    what a logged training is stamped with, so a changed default shows."""
    return stamped_params(make_sampler(name, **params))


def stamped_params(sampler: EpochSampler) -> dict:
    """A built sampler's parameters, defaults included, the seed aside (see
    :func:`sampler_params`; this form also takes samplers not in the registry)."""
    return {k: v for k, v in sampler.params().items() if k != "seed"}


def epoch_size(budget: float, num_samples: int) -> int:
    """Samples per epoch when ``budget`` is spread evenly over the recipe's epochs."""
    return max(1, int(round(budget * num_samples)))


@dataclass
class EpochPlan:
    """The samples of one epoch (the loop shuffles them) and their loss weights (None: all
    1). The loop normalizes the weights to mean 1 over the samples it trains in the epoch:
    the whole plan, or its first whole batches when the budget ends inside the epoch."""

    indices: np.ndarray
    weights: np.ndarray | None = None
    note: str = ""


@dataclass
class TrainingState:
    """What the loop knows about every training sample, updated after every batch.

    Attributes
    ----------
    x : the uint8 images (N, H, W, C), read-only
    y : labels (N,)
    num_classes : int
    epochs : the full-data recipe's epochs (the nominal schedule the budget is a part of)
    budget : the fraction of the recipe's sample-passes the run may spend
    ledger : the cost ledger
    rng : the run's seeded generator (samplers draw from it, so a seed fixes every choice)
    loss : last measured loss per sample (NaN until first trained)
    p_true : per epoch, the probability of the label for the samples trained in it (NaN for
        the others), float16
    features : last backbone features per sample (zeros until first trained)
    pred : the model's predicted class at the sample's last pass (-1 until first trained)
    seen_epoch : the epoch a sample was last trained in (-1: never)
    epoch : the index of the epoch being planned or trained
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    epochs: int
    budget: float
    ledger: CostLedger
    rng: np.random.Generator
    feature_dim: int
    loss: np.ndarray = field(init=False)
    p_true: list[np.ndarray] = field(init=False, default_factory=list)
    features: np.ndarray = field(init=False)
    pred: np.ndarray = field(init=False)
    seen_epoch: np.ndarray = field(init=False)
    epoch: int = 0

    def __post_init__(self) -> None:
        # a read-only view, as documented: a sampler writing into it changed the caller's
        # images (the arrays the loop trains on and the run's dataset) without a word
        self.x = self.x.view()
        self.x.flags.writeable = False
        n = len(self.y)
        self.loss = np.full(n, np.nan, np.float32)
        self.features = np.zeros((n, self.feature_dim), np.float32)
        self.pred = np.full(n, -1, np.int64)
        self.seen_epoch = np.full(n, -1, np.int32)

    @property
    def num_samples(self) -> int:
        return len(self.y)

    @property
    def epoch_size(self) -> int:
        """Samples per epoch when the budget is spread evenly over the recipe's epochs."""
        return epoch_size(self.budget, self.num_samples)

    def record(self, idx: np.ndarray, loss: np.ndarray, p_true: np.ndarray,
               features: np.ndarray, pred: np.ndarray) -> None:
        if len(self.p_true) <= self.epoch:
            self.p_true.append(np.full(self.num_samples, np.nan, np.float16))
        self.loss[idx] = loss
        self.p_true[self.epoch][idx] = p_true
        self.features[idx] = features
        self.pred[idx] = pred
        self.seen_epoch[idx] = self.epoch

    def class_indices(self, c: int) -> np.ndarray:
        return np.flatnonzero(self.y == c)


class EpochSampler(ABC):
    """Base class: subclasses set ``name`` and implement :meth:`plan`.

    Parameters
    ----------
    seed : int
        Seed for the sampler's own random choices (the loop's draws use the run seed).
    """

    name: ClassVar[str] = ""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def begin(self, state: TrainingState) -> None:  # noqa: B027 - optional hook
        """Called once before the first epoch."""

    @abstractmethod
    def plan(self, state: TrainingState) -> EpochPlan:
        """The samples of epoch ``state.epoch``."""

    def end_epoch(self, state: TrainingState) -> None:  # noqa: B027 - optional hook
        """Called after every epoch (the state holds its measurements)."""

    def params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}


def without_replacement_stream(n: int, rng: np.random.Generator):
    """Endless draws without replacement: each pass over ``range(n)`` is a fresh permutation
    (RS2's sampling, also the warm-up of the guided methods)."""
    perm, pos = rng.permutation(n), 0

    def take(k: int) -> np.ndarray:
        nonlocal perm, pos
        out = []
        while k > 0:
            if pos == n:
                perm, pos = rng.permutation(n), 0
            step = min(k, n - pos)
            out.append(perm[pos:pos + step])
            pos += step
            k -= step
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    return take
