"""Scoring contexts whose training dynamics and embeddings are given by hand, so a selection
rule can be checked on data small enough to state its right picks (nothing trains), and
small contexts of random images. Shared by tests/test_baselines.py, tests/test_baseline_rules.py,
tests/test_vq_flow_rules.py, tests/test_scoring_rules.py and tests/test_condense_rules.py."""

from __future__ import annotations

import numpy as np

from tinysift.scoring import ScoringContext
from tinysift.scoring.context import TrainingDynamics


def hand_context(y, z=None, el2n=None, margin=None, correct=None,
                 grand=None) -> ScoringContext:
    """A context with labels ``y`` whose embedding (every kind) is ``z`` and whose dynamics
    are the given ``(E, N)`` arrays (zeros where not given; ``correct`` defaults to a
    positive margin)."""
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    given = [a for a in (el2n, margin, correct, grand) if a is not None]
    e = np.asarray(given[0]).shape[0] if given else 1
    zeros = np.zeros((e, n), np.float32)
    margin = zeros if margin is None else np.asarray(margin, np.float32)
    dyn = TrainingDynamics(
        true_prob=zeros, margin=margin,
        correct=np.asarray(margin > 0 if correct is None else correct, bool),
        el2n=zeros if el2n is None else np.asarray(el2n, np.float32),
        grand=zeros if grand is None else np.asarray(grand, np.float32),
        features=np.zeros((n, 4), np.float32), seconds=0.0)
    context = ScoringContext(np.zeros((n, 2, 2, 1), np.uint8), y, int(y.max()) + 1,
                             progress=False)
    context.dynamics = lambda: dyn
    if z is not None:
        context.embedding = lambda kind="pixels", dim=None: np.asarray(z, np.float32)
    return context


def tiny_context(seed=0, n=40, classes=2, cache_dir=None, side=8, **kw) -> ScoringContext:
    """A context of ``n`` random ``side`` x ``side`` grey images (the same images for every
    ``seed``), labels cycling through ``classes``; ``kw`` go to ScoringContext."""
    rng = np.random.default_rng(100)
    x = rng.integers(0, 256, size=(n, side, side, 1), dtype=np.uint8)
    y = np.arange(n) % classes
    return ScoringContext(x, y, classes, seed=seed, cache_dir=cache_dir, progress=False, **kw)
