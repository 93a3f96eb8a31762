"""Condensation rules held to hand computations on small data (mutation audits' survivors,
2026-12-06 and 2026-12-07): rounding to pixels, the largest K, seeds, dimensions and network
shapes passed on, DM's distinct starting samples, its pixels held in [0, 1] and its small
classes, the refusals' words, vq's empty codewords, flow's temperature and dimension."""

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


def test_refusals_name_the_class_that_is_too_small_or_the_classes_absent():
    """A K above the smallest class names that class and its count (the user learns which
    class limits K), and absent classes are all listed, in the plural when several."""
    from tinysift.condensation.base import make_condenser

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(24, 2, 2, 1), dtype=np.uint8)
    y = np.array([0] * 10 + [1] * 10 + [2] * 4)  # class 2 is the smallest
    with pytest.raises(BudgetError, match="larger than class 2, which has only 4 training "
                                          "samples; use K <= 4"):
        make_condenser("random").fit(ScoringContext(x, y, 3, progress=False)).condense(5)
    # a folder's classes have names: the one that limits K is named (it was "class 3" alone)
    from tinysift.condensation.base import check_per_class

    with pytest.raises(BudgetError, match=r"larger than class 2 \('lonely'\), which has only "
                                          "4 training samples"):
        check_per_class(5, np.bincount(y), ("cat", "dog", "lonely"))
    with pytest.raises(BudgetError, match=r"larger than class 2, which has only 4"):
        check_per_class(5, np.bincount(y), ("0", "1", "2"))
    y_gaps = np.array([0] * 12 + [2] * 12)  # classes 1 and 3 of 4 absent
    with pytest.raises(BudgetError, match="classes 1, 3 of the 4 classes have no training "
                                          "samples"):
        make_condenser("random").fit(ScoringContext(x, y_gaps, 4, progress=False)).condense(1)


def test_an_unknown_condensation_method_is_refused_with_the_known_ones():
    """A misspelt --method lists the methods there are, so the user can pick the right one."""
    from tinysift.condensation.base import make_condenser
    from tinysift.errors import TinysiftError

    with pytest.raises(TinysiftError, match="unknown condensation method 'dn'; known: dm, "
                                            "flow, herding, random, vq, vq-real"):
        make_condenser("dn")


def test_random_condensing_a_whole_class_takes_each_sample_once():
    """At K = the class's size, random condensation is the class itself: every sample once
    (drawn without replacement), never one twice in place of another."""
    from tinysift.condensation.base import make_condenser

    ctx = tiny_context(n=30, classes=3)  # 10 distinct random images a class
    x, y = make_condenser("random", seed=0).fit(ctx).condense(10)
    for c in range(3):
        np.testing.assert_array_equal(np.sort(x[y == c].reshape(10, -1), axis=0),
                                      np.sort(ctx.x[ctx.y == c].reshape(10, -1), axis=0))


def test_embedding_condensers_work_in_the_embedding_they_name():
    """herding (and vq) embed the samples with the embedding they were given: 'pixels' is
    the PCA of the pixels, not the default random-conv features."""
    from tinysift.condensation.base import make_condenser

    ctx = tiny_context(n=60, classes=2)
    herd = make_condenser("herding", seed=0, embedding="pixels", dim=5).fit(ctx)
    np.testing.assert_array_equal(herd.z_, ctx.embedding("pixels", 5))
    assert not np.allclose(herd.z_, ctx.embedding("random-conv", 5))


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # the point of it
def test_vq_decodes_an_empty_codeword_to_a_real_sample():
    """A class with fewer distinct samples than K leaves k-means codewords without members;
    vq decodes such a codeword to the real sample nearest it (a member mean of no members
    would be NaN, saved as a black image)."""
    from tinysift.condensation.base import make_condenser

    light, dark = np.full((2, 2, 1), 200, np.uint8), np.full((2, 2, 1), 90, np.uint8)
    x = np.stack([light, dark] * 6)  # each class: three copies of each of two images
    ctx = ScoringContext(x, np.repeat([0, 1], 6), 2, progress=False)
    out, _ = make_condenser("vq", seed=0, embedding="pixels", dim=2).fit(ctx).condense(4)
    assert {int(v) for v in out.reshape(-1)} <= {90, 200}


def test_flow_condenser_temperature_is_refused_outside_0_to_1():
    """Temperature 1 (the flow's own density) is allowed; 0, negative, above 1 or NaN are
    refused when the condenser is made, before a flow is fit, as a parameter error saying
    what the temperature does (it was a BudgetError, the class of a keep or K out of range)."""
    from tinysift.condensation.base import make_condenser
    from tinysift.errors import TinysiftError

    assert make_condenser("flow", temperature=1.0).temperature == 1.0
    for temperature in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(TinysiftError, match="temperature must be in \\(0, 1\\].*scales "
                           "the flow's base noise") as refused:
            make_condenser("flow", temperature=temperature)
        assert not isinstance(refused.value, BudgetError)


def test_flow_condenser_fits_at_most_a_tenth_of_its_smallest_class_in_dimensions():
    """The flow's PCA keeps at most a tenth of the smallest class's samples as dimensions (at
    least 2) and at most the dimension asked for: a flow of 24 dimensions fit on 30 samples
    a class has more parameters than samples to fit them."""
    from tinysift.condensation.base import make_condenser

    quick = FlowConfig(steps=2, n_layers=2, hidden=4)
    for n, dim, expected in ((60, 24, 3), (40, 24, 2), (240, 24, 12), (240, 5, 5)):
        cond = make_condenser("flow", seed=0, dim=dim, flow=quick).fit(tiny_context(n=n))
        assert cond.pca_.n_components_ == expected, (n, dim)


def test_a_condenser_making_images_of_another_shape_or_dtype_is_an_error():
    """condense checks what each class's method made: K uint8 images of the dataset's shape,
    so a method's bug fails there, naming the method, instead of a training set of the wrong
    size or float pixels being saved."""
    from tinysift.condensation.base import Condenser

    class FloatCondenser(Condenser):
        name = "float-test"

        def _condense_class(self, c: int, idx: np.ndarray, k: int) -> np.ndarray:
            return self.context_.x[idx[:k]].astype(np.float32)

    class ShortCondenser(Condenser):
        name = "short-test"

        def _condense_class(self, c: int, idx: np.ndarray, k: int) -> np.ndarray:
            return self.context_.x[idx[:k - 1]]

    ctx = tiny_context(n=20, classes=2)
    with pytest.raises(AssertionError, match="float-test produced .* float32"):
        FloatCondenser().fit(ctx).condense(3)
    with pytest.raises(AssertionError, match=r"short-test produced \(2, 8, 8, 1\) uint8"):
        ShortCondenser().fit(ctx).condense(3)


def test_dm_condenses_classes_smaller_than_its_real_batch():
    """DM draws its real batch of a class with replacement when the class holds fewer
    samples than the batch (the default 64 on a small dataset): drawing 64 distinct samples
    of 6 was numpy's "Cannot take a larger sample than population"."""
    from tinysift.condensation.base import make_condenser

    ctx = tiny_context(n=12, classes=2, side=4)  # 6 samples a class
    x, y = make_condenser("dm", seed=0, iterations=2, width=8).fit(ctx).condense(2)
    assert x.shape == (4, 4, 4, 1) and np.bincount(y).tolist() == [2, 2]


def test_dm_passes_on_its_seed_and_network_shape():
    """The seed, width, depth and real batch DM records are the ones it optimizes with: each,
    changed alone, changes the synthetic images (the float set, before rounding)."""
    from tinysift.condensation.base import make_condenser

    ctx = tiny_context(n=40, classes=2)  # 8x8 images: up to 3 pooled layers
    base = {"seed": 0, "iterations": 3, "real_batch": 8, "width": 8, "depth": 2,
            "learning_rate": 100.0}

    def synthetic(**change) -> np.ndarray:
        cond = make_condenser("dm", **{**base, **change}).fit(ctx)
        cond.condense(2)
        return cond._synth

    reference = synthetic()
    np.testing.assert_array_equal(synthetic(), reference)
    for change in ({"seed": 1}, {"width": 4}, {"depth": 1}, {"real_batch": 4}):
        assert np.abs(synthetic(**change) - reference).max() > 1e-4, change
