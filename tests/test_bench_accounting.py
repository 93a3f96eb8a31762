"""The benches' cost accounting: a method (or condenser) is charged its own time plus the
original compute time of every shared item it used (proxy CNN, embeddings), as if it ran
alone, whether the item was computed in its call, by an earlier method, or read from the
disk cache of an earlier run. Slow shared work is faked with sleeps, so the numbers are
known."""

from __future__ import annotations

import time

import numpy as np
import pytest

SHARED_S = 1.0  # the fake shared item's compute time
OWN_S = 0.5  # the fake method's own work
TOL = 0.3  # timing slack on a loaded 2-CPU machine (the bugs are off by >= 0.5 s)


def _context(cache, n: int = 120):
    from tinysift.scoring import ScoringContext

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, 8, 8, 1), dtype=np.uint8)
    return ScoringContext(x, np.arange(n) % 2, 2, cache_dir=cache, progress=False,
                          proxy_epochs=2)


@pytest.fixture
def slow_embedding(monkeypatch):
    """Every embedding takes SHARED_S to compute."""
    from tinysift.scoring import context

    def compute(kind, ctx, dim):
        time.sleep(SHARED_S)
        return np.random.default_rng(1).normal(size=(len(ctx.y), dim)).astype(np.float32)

    monkeypatch.setattr(context, "compute_embedding", compute)


@pytest.fixture
def slow_dynamics(monkeypatch):
    """The proxy CNN's training dynamics take SHARED_S to record."""
    from tinysift.scoring import context
    from tinysift.scoring.dynamics import TrainingDynamics

    def record(x, y, num_classes, epochs, seed, progress=True):
        time.sleep(SHARED_S)
        z = np.zeros((epochs, len(y)), np.float32)
        feats = np.random.default_rng(2).normal(size=(len(y), 40)).astype(np.float32)
        return TrainingDynamics(z, z, z.astype(bool), z, z, feats, SHARED_S)

    monkeypatch.setattr(context, "record_dynamics", record)


def test_a_method_reading_the_cache_is_charged_its_own_work_too(tmp_path, slow_embedding):
    """No cache, a cold cache, a warm cache (a resumed bench), the item in memory: always
    the method's own work plus the item's compute time. Subtracting the item's original
    compute time from the wall time of a call that only read it (well under a second)
    wiped out the method's own work: charged SHARED_S instead of SHARED_S + OWN_S warm."""

    def method(ctx) -> None:
        ctx.embedding("pixels")
        time.sleep(OWN_S)

    cache = tmp_path / "cache"
    charged = {}
    for case, ctx in (("no cache", _context(None)), ("cold", _context(cache)),
                      ("warm", _context(cache))):
        charged[case] = ctx.charged(lambda c=ctx: method(c))[1]
        if case == "warm":  # the same context again: the item is in memory
            charged["memory"] = ctx.charged(lambda c=ctx: method(c))[1]
    for case, seconds in charged.items():
        assert seconds == pytest.approx(SHARED_S + OWN_S, abs=TOL), (case, charged)


def test_the_proxy_behind_the_cnn_embedding_is_charged_once_cached_or_not(
        tmp_path, slow_dynamics):
    """A method on the proxy CNN's embedding (herding, k-center, prototypes, flow) uses the
    proxy's dynamics: charged for them once, whether the embedding is computed (the
    dynamics were counted twice: inside the embedding's time and as an item of their own)
    or read from the cache (the dynamics were not counted at all: the embedding read from
    disk never asked for them)."""
    import sklearn.decomposition  # noqa: F401 (its first import is not the PCA's cost)


    def el2n_like(ctx) -> None:
        ctx.dynamics()
        time.sleep(OWN_S)

    def herding_like(ctx) -> None:
        ctx.embedding("cnn")
        time.sleep(OWN_S)

    cache = tmp_path / "cache"
    charged = {}
    for case, cache_dir, methods in (("no cache, alone", None, [herding_like]),
                                     ("cold, after el2n", cache, [el2n_like, herding_like]),
                                     ("warm, after el2n", cache, [el2n_like, herding_like]),
                                     ("warm, alone", cache, [herding_like])):
        ctx = _context(cache_dir)
        charged[case] = [ctx.charged(lambda c=ctx, m=m: m(c))[1] for m in methods][-1]
    # the PCA of the embedding is well under TOL here
    for case, seconds in charged.items():
        assert seconds == pytest.approx(SHARED_S + OWN_S, abs=TOL), (case, charged)


def test_condensers_on_one_seeds_context_are_each_charged_the_embedding(monkeypatch,
                                                                         slow_embedding):
    """Serial condense bench: one context per seed, shared by its (method, K) points. Only
    the first to compute the random-conv embedding paid for it (herding 10.93 s, vq 0.26 s
    on one context, 8.2 s on a fresh one); each is now charged as if it ran alone, and the
    embedding is still computed once per seed (on its context), not once per point."""
    from tinysift.bench.condense import _condense_point
    from tinysift.bench.driver import SeedData
    from tinysift.data import load_dataset
    from tinysift.models import training
    from tinysift.scoring import context

    computed, slow = [], context.compute_embedding
    monkeypatch.setattr(context, "compute_embedding",
                        lambda kind, c, dim: computed.append(kind) or slow(kind, c, dim))

    class Trained:
        model, seconds = None, 0.0

    monkeypatch.setattr(training, "train_model", lambda *a, **k: Trained())
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: 0.5)
    data = SeedData(load_dataset("digits"))
    ctx = data.context(0, progress=False)
    points = [_condense_point(ctx, data, 0, name, k, None, False)
              for name, k in (("herding", 1), ("vq", 1), ("herding", 2))]
    for p in points:
        assert SHARED_S - 0.05 <= p["condense_seconds"] <= SHARED_S + TOL + 0.5, points
    assert computed == ["random-conv"]
