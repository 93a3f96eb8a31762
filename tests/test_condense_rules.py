"""Condensation rules held to hand computations on small data (a mutation audit's
survivors, 2026-12-06): rounding to pixels, the largest K, seeds and dimensions passed on,
DM's distinct starting samples and its pixels held in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from hand_context import tiny_context
from tinysift.errors import BudgetError
from tinysift.scoring import ScoringContext
from tinysift.scoring.flows import FlowConfig


def test_to_uint8_rounds_to_the_nearest_level():
    from tinysift.condensation.base import to_uint8

    x = np.array([0.7 / 255, 1.6 / 255, 254.6 / 255, -0.1, 1.2])
    assert to_uint8(x).tolist() == [1, 2, 255, 0, 255]


def test_condensing_as_many_as_the_smallest_class_holds():
    """K equal to the smallest class is allowed (every sample of it), one more refused."""
    from tinysift.condensation.base import make_condenser

    ctx = tiny_context(n=30, classes=3)  # 10 a class
    x, y = make_condenser("random", seed=0).fit(ctx).condense(10)
    assert len(x) == 30 and np.bincount(y).tolist() == [10, 10, 10]
    with pytest.raises(BudgetError, match="use K <= 10"):
        make_condenser("random", seed=0).fit(ctx).condense(11)


def test_condensers_pass_on_their_seed_and_dimension():
    """random's picks follow its seed; an embedding condenser works in the dimension it was
    given (not the context's default)."""
    from tinysift.condensation.base import make_condenser

    ctx = tiny_context(n=60, classes=2)
    picks = [make_condenser("random", seed=s).fit(ctx).condense(5)[0] for s in (0, 1, 0)]
    assert np.array_equal(picks[0], picks[2]) and not np.array_equal(picks[0], picks[1])
    herd = make_condenser("herding", seed=0, embedding="pixels", dim=5).fit(ctx)
    assert herd.z_.shape == (60, 5)


def test_flow_condenser_passes_its_seed_to_the_flows():
    """The flow condenser's flows are the ones its seed fits: the same as flows fit with that
    seed on its PCA, not those of another seed."""
    from tinysift.condensation.base import make_condenser
    from tinysift.scoring.flows import ClassFlows

    ctx = tiny_context(n=60, classes=2)
    cfg = FlowConfig(steps=20, n_layers=2, hidden=4)
    cond = make_condenser("flow", seed=1, flow=cfg).fit(ctx)
    z = cond.pca_.transform(ctx.x.reshape(60, -1).astype(np.float32) / 255.0)
    z = z.astype(np.float32)
    ll = cond.flows_.log_prob(z)
    same, other = (ClassFlows(cfg, seed=s).fit(z, ctx.y, 2).log_prob(z) for s in (1, 0))
    np.testing.assert_allclose(ll, same, atol=1e-3)
    assert np.abs(ll - other).max() > 1e-2


def test_dm_starts_from_distinct_real_samples():
    """DM's synthetic set starts as K different real samples of each class (drawn without
    replacement), so K images never start as copies of one."""
    from tinysift.condensation.base import make_condenser

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(80, 4, 4, 1), dtype=np.uint8)  # 80 distinct images
    ctx = ScoringContext(x, np.arange(80) % 2, 2, progress=False)
    init, y = make_condenser("dm", seed=0, iterations=0).fit(ctx).condense(30)
    for c in (0, 1):
        assert len(np.unique(init[y == c].reshape(30, -1), axis=0)) == 30


def test_dm_holds_its_synthetic_pixels_in_the_unit_range():
    """DM clips its synthetic images to [0, 1] after every step, so what it matches the
    real embedding with is an image it can save: one step of a huge learning rate pushes
    most pixels past a bound, and the float set the optimization ends with (before rounding
    to uint8, which clips anyway) sits on 0 and 1 (about half the pixels each), never
    beyond. Without the clip the step left pixels from -53 to 66, which the next steps
    would have matched with and no saved image has; a clip to [0.1, 0.9] or [-1, 2] misses
    one of the two checks."""
    from tinysift.condensation.base import make_condenser

    ctx = tiny_context(n=40, classes=2)
    cond = make_condenser("dm", seed=0, iterations=1, learning_rate=1e5, real_batch=8,
                          width=8).fit(ctx)
    cond.condense(3)
    synth = cond._synth  # (classes, K, H, W, C) floats
    assert synth.shape == (2, 3, 8, 8, 1)
    assert synth.min() == 0.0 and synth.max() == 1.0
    assert (synth == 0.0).mean() > 0.25 and (synth == 1.0).mean() > 0.25


@pytest.mark.parametrize("method", ["vq", "vq-real", "herding"])
def test_embedding_condensers_refuse_a_bad_dimension_or_embedding_when_made(method):
    """dim=0 was the context's default dimension (32) while the condense stage recorded 0,
    and a float dim or an unknown embedding failed only at fit; each is refused when the
    condenser is made, naming the parameter."""
    from tinysift.condensation.base import make_condenser
    from tinysift.errors import TinysiftError

    for dim in (0, -1, 2.0):
        with pytest.raises(TinysiftError, match=f"{method}: dim must be a whole number >= 1"):
            make_condenser(method, dim=dim)
    with pytest.raises(TinysiftError, match="embedding must be one of given, pixels, "
                                            "random-conv, cnn, got 'pixel'"):
        make_condenser(method, embedding="pixel")
