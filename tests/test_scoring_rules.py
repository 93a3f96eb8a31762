"""Scoring held to hand computations on small arrays (a mutation audit's survivors,
2026-12-06): cache keys tell apart what they must, shared work is charged once and at its
original time, seeds reach the densities, untrained flows are scipy's cross-fitted
normals, the proxy measures after whole epochs of at least 50 steps; and (2026-12-07) the
flows' epoch cap, chunks, folds, sampling and settings, the kNN and mixture densities'
absent classes, self-exclusion and share of references, log_sum_exp's shift."""

from __future__ import annotations

import numpy as np
import pytest

from hand_context import tiny_context
from tinysift.errors import DatasetError
from tinysift.scoring import ScoringContext
from tinysift.scoring.flows import FlowConfig


def _fake_dynamics(n, seconds=1.0):
    """Shared dynamics items as another process hands them over (``shared_work``)."""
    from tinysift.scoring.context import TrainingDynamics

    zeros = np.zeros((1, n), np.float32)
    arrays = TrainingDynamics(zeros, zeros, np.ones((1, n), bool), zeros, zeros,
                              features=np.zeros((n, 4), np.float32), seconds=seconds).to_arrays()
    return {**arrays, "_seconds": np.float64(seconds)}


def test_embedding_cache_tells_apart_dimensions_and_seeds(tmp_path):
    """An embedding is cached per dimension (in memory) and per seed (on disk): a second
    dimension is not the first one's array, another seed's random-conv features are not
    read from the first seed's file."""
    ctx = tiny_context()
    assert ctx.embedding("pixels", 5).shape == (40, 5)
    assert ctx.embedding("pixels", 3).shape == (40, 3)
    # 150 images of 2x2: their 128 random-conv features (2x2 x 32 filters) are not
    # PCA-reduced, only centred, so two seeds' embeddings differ only by the convolution
    tiny = {"n": 150, "side": 2}
    a = tiny_context(seed=0, cache_dir=tmp_path, **tiny).embedding("random-conv", 128)
    b = tiny_context(seed=1, cache_dir=tmp_path, **tiny).embedding("random-conv", 128)
    assert a.shape == (150, 128) and not np.allclose(a, b, atol=1e-3)
    fresh = tiny_context(seed=1, **tiny).embedding("random-conv", 128)
    np.testing.assert_allclose(b, fresh, atol=1e-6)


def test_dynamics_cache_tells_apart_labels_and_head_width(tmp_path):
    """The proxy's dynamics on disk are keyed on the labels (a noisy copy of the labels is
    other data) and on the head's width (num_classes), not only on the images (the items
    written as a bench's shared work is, nothing trains)."""
    ctx = tiny_context(cache_dir=tmp_path, proxy_epochs=1)
    ctx.adopt({ctx._shared_key("dynamics"): _fake_dynamics(40)})  # on disk, as computed
    assert tiny_context(cache_dir=tmp_path, proxy_epochs=1).has_shared({"dynamics"})
    x, y = ctx.x, ctx.y.copy()
    wider = ScoringContext(x, y, 3, cache_dir=tmp_path, progress=False, proxy_epochs=1)
    assert not wider.has_shared({"dynamics"})  # the same labels, a head of 3
    y[:2] = 1 - y[:2]
    other = ScoringContext(x, y, 2, cache_dir=tmp_path, progress=False, proxy_epochs=1)
    assert not other.has_shared({"dynamics"})


def test_features_of_another_length_refused(digits):
    f = np.zeros((len(digits.y_train) - 1, 4))
    with pytest.raises(DatasetError, match="features must have shape"):
        ScoringContext(digits.x_train, digits.y_train, 10, features=f)


@pytest.mark.parametrize("kind, params", [("knn", {"references": 0.5, "k": 3}),
                                          ("flow", {"steps": 5, "n_layers": 2, "hidden": 4}),
                                          ("gmm", {})])
def test_densities_follow_their_seed(kind, params):
    """make_density passes its seed on: knn's seeded share of references, the flows'
    initial weights and batches and the mixtures' k-means start differ between seeds, and
    repeat under one."""
    from tinysift.scoring.density import make_density

    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 3)).astype(np.float32)
    y = np.arange(60) % 2
    ll = [make_density(kind, seed=s, **params).fit(z, y, 2).log_prob(z) for s in (0, 1, 0)]
    np.testing.assert_array_equal(ll[0], ll[2])
    assert np.abs(ll[0] - ll[1]).max() > 1e-3


def test_untrained_flows_are_the_cross_fitted_gaussians():
    """Before any step every coupling is the identity, so a flow is the standard normal of
    its standardized training set: each sample's log-density under class c is scipy's
    diagonal normal with the mean and std (+1e-3) of class c's samples outside its own fold
    (all of class c without folds), the Jacobian of the standardization included."""
    from scipy.stats import norm

    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [30, 20, 25])
    z = (rng.normal(size=(len(y), 3)) * [1.0, 2.0, 0.5] + 3.0 * y[:, None]).astype(np.float32)
    for folds in (1, 2):
        flows = ClassFlows(FlowConfig(steps=0, n_layers=3), seed=0).fit(z, y, 3, folds=folds)
        fold = flows.fold_
        assert np.bincount(fold, minlength=folds).min() > 0
        want = np.empty((len(y), 3))
        for i in range(len(y)):
            for c in range(3):
                train = (y == c) & ((fold != fold[i]) if folds > 1 else True)
                mean, std = z[train].mean(0), z[train].std(0) + 1e-3
                want[i, c] = norm.logpdf(z[i], mean, std).sum()
        np.testing.assert_allclose(flows.log_prob(z, fold), want, rtol=1e-4, atol=1e-4)


def test_flow_samples_come_from_the_asked_class_flow_with_folds():
    """sample(c) draws from class c's fold-0 flow when the flows are cross-fitted: the
    standardization of class c's samples outside fold 0 (untrained couplings: a normal)."""
    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    z = (rng.normal(size=(80, 2)) + 10.0 * y[:, None]).astype(np.float32)
    flows = ClassFlows(FlowConfig(steps=0, n_layers=2), seed=0).fit(z, y, 2, folds=2)
    train = (y == 1) & (flows.fold_ != 0)
    draws = flows.sample(1, 4000, seed=0)
    np.testing.assert_allclose(draws.mean(0), z[train].mean(0), atol=0.1)
    np.testing.assert_allclose(draws.std(0), z[train].std(0) + 1e-3, rtol=0.05)


def test_flow_couplings_each_move_the_half_the_last_one_held():
    """Hand-made couplings, no training: every coupling of two layers (no permutation in
    between) shifts the dimensions it transforms by t and scales them by e^a (a log-scale of
    tanh(b)); the masks alternate, so each dimension is transformed once and the flow is the
    normal of mean ``mean - std t / e^a`` and std ``std / e^a`` per dimension, Jacobians of
    the scale and the standardization included. sample() inverts the same couplings. One
    mask for every layer transformed one dimension twice and the others never; a log-scale
    or shift on the wrong half gives another density (the scale's Jacobian then counts
    dimensions it never scaled)."""
    from scipy.stats import norm

    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    z = (rng.normal(size=(60, 3)) * [1.0, 2.0, 0.5] + 3.0 * y[:, None]).astype(np.float32)
    flows = ClassFlows(FlowConfig(steps=0, n_layers=2, hidden=4), seed=0).fit(z, y, 2)
    flows.perms_ = np.tile(np.arange(3), (2, 1))  # the couplings alone
    b, t = 0.8, 0.5
    flows.vars_["bs"].assign(np.full(flows.vars_["bs"].shape, b, np.float32))
    flows.vars_["bt"].assign(np.full(flows.vars_["bt"].shape, t, np.float32))
    a = np.tanh(b)  # scale 1
    loc = flows.mean_ - flows.std_ * t / np.exp(a)  # (class, dim)
    scale = flows.std_ / np.exp(a)
    want = np.stack([norm.logpdf(z, loc[c], scale[c]).sum(1) for c in (0, 1)], axis=1)
    np.testing.assert_allclose(flows.log_prob(z), want, rtol=1e-5, atol=1e-4)
    u = np.random.default_rng(7).standard_normal((5, 3))  # sample()'s base noise, seed 7
    np.testing.assert_allclose(flows.sample(1, 5, seed=7), loc[1] + scale[1] * u, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("d", [2, 3, 7, 16])
def test_flow_of_three_layers_transforms_every_dimension(d):
    """FlowConfig's promise: from 3 coupling layers on, every dimension is transformed at
    least once, whatever the random permutations (layer 1 permutes, and layers 1 and 2
    transform complementary halves of that arrangement). A mask repeated in layer 2, or a
    permutation in layer 2 as well, leaves some dimension a standardized Gaussian."""
    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(d)
    y = np.repeat([0, 1], 8)
    z = rng.normal(size=(16, d)).astype(np.float32)
    for seed in range(20):
        flows = ClassFlows(FlowConfig(steps=0, n_layers=3, hidden=4), seed=seed).fit(z, y, 2)
        order = np.arange(d)  # the original dimension at each position
        transformed = np.zeros(d, bool)
        for perm, mask in zip(flows.perms_, flows.masks_, strict=True):
            order = order[perm]
            transformed[order[mask == 0]] = True
        assert transformed.all(), (seed, np.flatnonzero(~transformed))


def test_flow_weight_decay_is_the_only_pull_on_the_first_coupling_layer():
    """While every coupling is the identity (output layers at zero) the likelihood does not
    depend on the couplings' first layer, so its first Adam step comes from the L2 weight
    decay alone: gradient 2 weight_decay w, a step of learning_rate g / (|g| + eps /
    sqrt(1 - beta2)) toward zero (tf_keras' Adam, eps 1e-7, beta2 0.999). Without the decay
    term in the loss the weights stay where they start; 100 times it steps a full
    learning rate."""
    import dataclasses

    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    z = (rng.normal(size=(80, 3)) + 3.0 * y[:, None]).astype(np.float32)
    cfg = FlowConfig(steps=0, n_layers=2, hidden=8, batch=16)
    start = ClassFlows(cfg, seed=0).fit(z, y, 2).vars_["w1"].numpy().astype(np.float64)
    stepped = ClassFlows(dataclasses.replace(cfg, steps=1), seed=0).fit(z, y, 2)
    assert stepped.steps_ == 1
    g = 2 * cfg.weight_decay * start
    want = start - cfg.learning_rate * g / (np.abs(g) + 1e-7 / np.sqrt(1 - 0.999))
    assert np.abs(want - start).max() > 1e-3  # the step tested is not lost in the tolerance
    np.testing.assert_allclose(stepped.vars_["w1"].numpy(), want, rtol=0, atol=1e-6)


def test_shared_work_is_charged_once_per_method_and_at_its_original_time(tmp_path):
    """Shared work computed elsewhere (adopted, 100 s to compute) is charged in full to the
    first call that reads it, not again to a later call of the same method (``already``),
    is written to the disk cache, and a context reading it from there charges the same
    original 100 s, not the read's time."""
    ctx = tiny_context(cache_dir=tmp_path)
    key = ctx._shared_key("dynamics")
    ctx.adopt({key: _fake_dynamics(40, seconds=100.0)})
    _, first, used = ctx.charged(ctx.dynamics)
    assert used == {key} and 100.0 <= first < 101.0
    _, again, _ = ctx.charged(ctx.dynamics, already=used)
    assert again < 1.0
    fresh = tiny_context(cache_dir=tmp_path)
    assert fresh.has_shared({"dynamics"})
    _, charge, _ = fresh.charged(fresh.dynamics)
    assert 100.0 <= charge < 101.0


def test_an_embedding_of_fewer_samples_than_its_dimension_has_one_per_sample():
    """PCA gives at most one component per sample: 12 images of 64 pixels at dim 32 give 12
    (scikit-learn refuses 32 components of 12 samples)."""
    z = tiny_context(n=12).embedding("pixels", 32)
    assert z.shape == (12, 12) and np.isfinite(z).all()


def test_proxy_measures_after_the_fewest_whole_epochs_of_min_steps():
    """The proxy measures every ``every`` epochs, the fewest whole epochs holding
    MIN_STEPS_PER_MEASURE (50) optimizer steps: 96 samples in batches of 128 are 1 step an
    epoch (50 epochs), 600 are 5 (the last batch of 88 is a step too: 10 epochs, 50 steps),
    1,437 are 12 (5 epochs: 60 steps, 4 would be 48), 60,000 are 469 (1); the proxy trains
    with the seed it is given."""
    from tinysift.scoring.dynamics import MIN_STEPS_PER_MEASURE, proxy_schedule

    assert MIN_STEPS_PER_MEASURE == 50
    for n, want in ((96, 50), (600, 10), (1437, 5), (5000, 2), (60000, 1)):
        cfg, every = proxy_schedule(n, 4, 0)
        assert cfg.batch_size == 128 and every == want and cfg.epochs == 4 * want, n
    assert proxy_schedule(1437, 4, 7)[0].seed == 7


def test_adopt_leaves_the_callers_items_whole(tmp_path):
    """adopt() takes the items' compute time out of its own copy: the caller's dict (a
    worker's shared object, handed to every context of the bench) keeps its ``_seconds``,
    so a second context adopting it charges the same time."""
    items = {tiny_context()._shared_key("dynamics"): _fake_dynamics(40, seconds=7.0)}
    for cache in (tmp_path / "a", tmp_path / "b"):
        ctx = tiny_context(cache_dir=cache)
        ctx.adopt(items)
        assert ctx.shared_seconds(set(items)) == 7.0
    (arrays,) = items.values()
    assert float(arrays["_seconds"]) == 7.0


@pytest.mark.parametrize("damage", ["empty", "object array"])
def test_a_cache_file_that_cannot_be_read_is_computed_again(tmp_path, damage):
    """A cache file left empty (a crash right after it was created: np.load's EOFError) or
    holding a pickled object array (refused unpickled: ValueError) is computed again and
    rewritten, as if absent: never an error, never the file's objects."""
    want = tiny_context().embedding("pixels", 3)
    tiny_context(cache_dir=tmp_path).embedding("pixels", 3)
    (path,) = tmp_path.glob("embed-pixels-*")
    if damage == "empty":
        path.write_bytes(b"")
    else:
        with open(path, "wb") as fh:
            np.savez(fh, z=np.array([None, "x"], dtype=object), _seconds=np.float64(1.0))
    z = tiny_context(cache_dir=tmp_path).embedding("pixels", 3)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, want, atol=1e-6)
    np.testing.assert_allclose(tiny_context(cache_dir=tmp_path).embedding("pixels", 3), want,
                               atol=1e-6)  # the file was rewritten whole


def test_array_hash_tells_apart_dtype_and_shape_of_the_same_bytes():
    """The given features' key: the same bytes as float32 (40, 4) or as float64 (40, 2), or
    as int32, are other features (the key holds the dtype and shape, not only the bytes)."""
    from tinysift.scoring.context import _array_hash

    a = np.arange(160, dtype=np.float32).reshape(40, 4)
    keys = {_array_hash(a), _array_hash(a.view(np.float64)), _array_hash(a.view(np.int32)),
            _array_hash(a.reshape(80, 2))}
    assert len(keys) == 4
    assert _array_hash(a) == _array_hash(a.copy()) and _array_hash(a) == _array_hash(
        np.asfortranarray(a))


@pytest.mark.parametrize("features, message", [
    (np.zeros(40), r"features must have shape \(N=40, D\), got \(40,\)"),
    (np.zeros((40, 2, 2)), r"features must have shape \(N=40, D\), got \(40, 2, 2\)"),
    (np.where(np.arange(40)[:, None] == 7, np.inf, np.zeros((40, 3))),
     r"features contain NaN or infinite values in 1 rows \(first: \[7\]\)"),
], ids=["one per sample", "images", "infinite row"])
def test_given_features_must_be_a_finite_matrix_of_one_row_per_sample(features, message):
    """User features are an (N, D) matrix of finite values: a flat (N,) vector or (N, H, W)
    features are refused by shape, an infinite row like a NaN one, by its index."""
    with pytest.raises(DatasetError, match=message):
        tiny_context(features=features)


def test_a_call_is_charged_only_the_shared_items_it_read(tmp_path):
    """charged() counts the shared items read during its own call: a call after one that
    read the dynamics (100 s) and reads nothing shared is charged its own time alone and
    reports no item."""
    ctx = tiny_context(cache_dir=tmp_path)
    key = ctx._shared_key("dynamics")
    ctx.adopt({key: _fake_dynamics(40, seconds=100.0)})
    assert ctx.charged(ctx.dynamics)[2] == {key}
    _, charge, used = ctx.charged(lambda: None)
    assert used == set() and charge < 1.0


def test_shared_work_hands_on_the_original_compute_time_of_cached_items(tmp_path):
    """shared_work() of an item read from the disk cache hands on its original compute time
    (100 s, as written with it), not the fraction of a second the read took: a bench task
    adopting it charges its methods what the item cost."""
    ctx = tiny_context(cache_dir=tmp_path)
    key = ctx._shared_key("dynamics")
    ctx.adopt({key: _fake_dynamics(40, seconds=100.0)})
    items = tiny_context(cache_dir=tmp_path).shared_work({"dynamics", "unknown"})
    assert list(items) == [key] and float(items[key]["_seconds"]) == 100.0


def test_a_context_without_a_cache_folder_has_the_shared_work_it_adopted():
    """has_shared() counts items held in memory: a context without a cache_dir has the
    dynamics once it adopted them (a bench task then does not compute them again), not
    before; a need that is no shared work is no KeyError."""
    ctx = tiny_context()
    assert not ctx.has_shared({"dynamics"})
    ctx.adopt({ctx._shared_key("dynamics"): _fake_dynamics(40)})
    # needs that are no shared work (an embedding a method reads) ask for nothing
    assert ctx.has_shared({"dynamics", "embedding"}) and ctx.has_shared(set())


def test_flow_config_refuses_a_yes_or_no_for_a_rate():
    """A learning rate or weight decay of true/false (a TOML boolean) is no number: refused by
    name, as a whole-number setting's true is (not a learning rate of 1)."""
    from tinysift.errors import TinysiftError

    for name in ("learning_rate", "weight_decay"):
        with pytest.raises(TinysiftError, match=f"flow {name} must be a finite number"):
            FlowConfig(**{name: True})
    assert FlowConfig(n_layers=1).n_layers == 1  # one coupling layer is a flow


def test_flow_training_stops_after_max_epochs_passes_over_the_smallest_class():
    """The step count is the configured one but at most MAX_EPOCHS (64) passes over the
    smallest trained flow's samples, rounded up: 5 samples in batches of 24 are 64 x 5 / 24
    = 13.3 -> 14 steps. A class absent from the labels trains no flow and caps nothing (counted,
    it would cap every flow at 0 steps: all of them untrained). Progress is reported after every
    step, up to the steps run."""
    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [5, 50])
    z = rng.normal(size=(len(y), 2)).astype(np.float32)
    cfg = FlowConfig(steps=1000, batch=24, n_layers=2, hidden=4)
    reported = []
    flows = ClassFlows(cfg, seed=0).fit(z, y, 2, progress=lambda s, n: reported.append((s, n)))
    assert flows.steps_ == 14
    assert reported == [(s, 14) for s in range(1, 15)]
    absent = ClassFlows(FlowConfig(steps=3, batch=8, n_layers=2, hidden=4), seed=0)
    assert absent.fit(z, y, 3).steps_ == 3  # class 2 has no sample


def test_flow_log_prob_of_many_chunks_is_that_of_one_and_of_no_samples_is_empty():
    """log_prob scores the samples in chunks (4,096 rows at a time, 60,000-sample sets):
    chunks of 7 give every row the density one chunk gives (every row, not only the first
    chunk's), whatever its fold; no samples give an empty (0, K) array, not a numpy error;
    a negative fold is refused like one past the last (its rows would keep log-density 0)."""
    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    z = (rng.normal(size=(60, 3)) + y[:, None]).astype(np.float32)
    flows = ClassFlows(FlowConfig(steps=3, n_layers=2, hidden=4), seed=0).fit(z, y, 3, folds=2)
    whole = flows.log_prob(z, flows.fold_)
    np.testing.assert_allclose(flows.log_prob(z, flows.fold_, chunk=7), whole, rtol=1e-6)
    assert np.isfinite(whole).all()
    assert flows.log_prob(z[:0], flows.fold_[:0]).shape == (0, 3)
    with pytest.raises(ValueError, match=r"a fold in \[0, 2\)"):
        flows.log_prob(z, np.full(60, -1))


def test_flow_sample_refuses_a_temperature_of_zero():
    """A temperature of 0 would draw every sample at the base distribution's mode (no noise
    at all): refused like a negative one, naming what is allowed."""
    from tinysift.scoring.flows import ClassFlows

    z = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    flows = ClassFlows(FlowConfig(steps=0, n_layers=2), seed=0).fit(z, np.arange(20) % 2, 2)
    for temperature in (0.0, -0.5):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            flows.sample(0, 3, temperature=temperature)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flow_sample_inverts_the_couplings_through_the_permutations(seed):
    """sample() runs the flow backwards, undoing each layer's permutation: with affine
    couplings of a shift and log-scale of their own for every position (hand-set, no
    training) a drawn point's log-density is the base normal's at the noise it came from
    plus the log-determinant, the same for every draw: the sum of the log-scales each layer
    applied, less the log-std of the standardization. Undoing a permutation with the
    permutation itself (not its inverse) moves a dimension through another position's
    couplings, and the density no longer matches (5 dimensions: not every permutation is
    its own inverse)."""
    from scipy.stats import norm

    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(seed)
    z = rng.normal(size=(40, 5)).astype(np.float32)
    flows = ClassFlows(FlowConfig(steps=0, n_layers=4, hidden=4), seed=seed).fit(
        z, np.zeros(40, np.int64), 1)
    shape = flows.vars_["bs"].shape  # (layers, flows, 1, dim)
    flows.vars_["bs"].assign(rng.uniform(-1, 1, shape).astype(np.float32))
    flows.vars_["bt"].assign(rng.uniform(-1, 1, shape).astype(np.float32))
    draws = flows.sample(0, 6, seed=3)
    u = np.random.default_rng(3).standard_normal((6, 5))  # sample()'s base noise, seed 3
    log_s = np.tanh(flows.vars_["bs"].numpy()[:, 0, 0]) * (1 - flows.masks_)
    logdet = log_s.sum() - np.log(flows.std_[0]).sum()
    want = norm.logpdf(u).sum(1) + logdet
    np.testing.assert_allclose(flows.log_prob(draws.astype(np.float32))[:, 0], want,
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kind", ["gmm", "knn"])
def test_a_class_absent_from_the_fit_has_density_zero(kind):
    """A class with no sample in the fit set (a replay set over old classes) has log-density
    -inf everywhere, so it is never the most likely class and takes no posterior mass; the
    classes present keep finite densities."""
    from tinysift.scoring.density import label_posterior, make_density

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    z = (rng.normal(size=(60, 2)) + 4.0 * y[:, None]).astype(np.float32)
    logp = make_density(kind, seed=0).fit(z, y, 3).log_prob(z)
    assert np.isneginf(logp[:, 2]).all() and np.isfinite(logp[:, :2]).all()
    post = np.exp(label_posterior(logp, y, np.array([0.5, 0.5, 0.0])))
    assert post.min() > 0.5  # two well-apart classes: each sample's own label wins


def test_knn_density_in_sample_skips_the_sample_itself():
    """A reference sample is not its own neighbour: on the points 0, 1, 3, 6, 10 of a line
    (k=2) point 0's density is measured to its second neighbour other than itself, 3 (not to
    1, as when it counted itself at distance 0), a query off the references to its second
    nearest, and both are -d log r_k - log n_c."""
    from tinysift.scoring.density import make_density

    z = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]], np.float32)
    dens = make_density("knn", k=2).fit(z, np.zeros(5, np.int64), 1)
    ll = dens.log_prob(np.array([[0.0], [5.0]], np.float32))[:, 0]
    np.testing.assert_allclose(ll, -np.log([3.0, 2.0]) - np.log(5), rtol=1e-6)


def test_knn_share_of_references_rounds_up_and_keeps_k_plus_one():
    """references=0.25 keeps ceil(0.25 n_c) of each class, at least k + 1 (the k-th
    neighbour of a reference, itself excluded) and at most the class: classes of 30, 10 and
    3 keep 8, 4 and 3 at k=3; a share above 1 is refused, as one of 0 is."""
    from tinysift.errors import TinysiftError
    from tinysift.scoring.density import make_density

    y = np.repeat([0, 1, 2], [30, 10, 3])
    z = np.random.default_rng(0).normal(size=(len(y), 2)).astype(np.float32)
    dens = make_density("knn", seed=0, k=3, references=0.25).fit(z, y, 3)
    assert dens.counts_.tolist() == [8, 4, 3]
    assert np.isfinite(dens.log_prob(z)).all()
    with pytest.raises(TinysiftError, match=r"references must be a share in \(0, 1\]"):
        make_density("knn", references=1.5)


def test_log_sum_exp_does_not_overflow_or_underflow():
    """log_sum_exp shifts each row by its maximum: log-densities of -1,000 (a far sample
    under every class) or +1,000 give the exact log-sum (log 2 above the pair), not -inf
    or inf from exp()."""
    from tinysift.scoring.density import log_sum_exp

    a = np.array([[-1000.0, -1000.0], [1000.0, 1000.0], [0.0, -np.inf]])
    np.testing.assert_allclose(log_sum_exp(a), [-1000.0 + np.log(2), 1000.0 + np.log(2), 0.0])


def test_flow_density_trains_the_flows_it_was_given():
    """make_density("flow") fits flows of the steps, coupling layers and hidden units it
    was given (the guided sampler's density_steps reach it), and runs those steps."""
    from tinysift.scoring.density import make_density

    z = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    dens = make_density("flow", steps=3, n_layers=2, hidden=5).fit(z, np.arange(40) % 2, 2)
    assert dens.flows_.config == FlowConfig(n_layers=2, hidden=5, steps=3)
    assert dens.flows_.steps_ == 3


def test_an_unknown_density_is_refused_naming_the_known_ones():
    """make_density of a kind it does not know is one line naming the kinds it does."""
    from tinysift.errors import TinysiftError
    from tinysift.scoring.density import make_density

    with pytest.raises(TinysiftError, match="unknown density 'kde'; choose one of flow, gmm, knn"):
        make_density("kde")

