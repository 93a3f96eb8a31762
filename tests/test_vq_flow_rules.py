"""vq and flow selection rules held to hand computations on small arrays (a mutation
audit's survivors, 2026-12-06): the window's slide and its start, seeds reaching the
codebooks and the flows, the outlier tail's rounding, the declared proxy, the strata's
allocation, the small-class rule."""

from __future__ import annotations

import numpy as np
import pytest

from hand_context import hand_context
from tinysift.scoring import ScoringContext
from tinysift.scoring.flows import FlowConfig
from tinysift.selection import make_method


def test_vq_window_slides_from_near_to_far_as_the_keep_grows():
    """Between easy_below and hard_above the window's start is linear in the keep, from the
    near part (0) to the far part (usable - width): a quarter of the way, a quarter of it."""
    vq = make_method("vq", hard_above=0.5, easy_below=0.1, outlier_tail=0.1, window=0.6)
    assert vq.rank_window(0.2) == pytest.approx((0.075, 0.675))
    assert vq.rank_window(0.4) == pytest.approx((0.225, 0.825))
    starts = [vq.rank_window(k)[0] for k in np.linspace(0.0, 1.0, 21)]
    assert np.all(np.diff(starts) >= 0)


def test_vq_window_at_the_regime_start_is_the_far_one_when_both_starts_coincide():
    """The defaults (hard_above "auto", whose fixed start is 0.1, and easy_below 0.1)
    coincide: at the keep where the hard regime starts the window is the far one, not the
    near one of the typical regime below it."""
    vq = make_method("vq")
    assert vq.rank_window(0.1, 0.1) == pytest.approx((0.3, 0.9))
    assert vq.rank_window(0.0999, 0.1) == pytest.approx((0.0, 0.6))


def test_vq_keep_rounded_below_the_regime_start_takes_the_far_window():
    """keep 0.1 of 134 samples is 13 (0.097): the hard regime starts at that count, and its
    window is the far one, as at keep 0.1 itself (not the near window of a keep below
    easy_below)."""
    rng = np.random.default_rng(0)
    ctx = hand_context(np.repeat([0, 1], 67), z=rng.normal(size=(134, 4)))
    vq = make_method("vq", seed=0, per_codeword=2).fit(ctx)
    kept = vq.select(13)
    assert len(kept) == 13 and vq.regime_ == "hard"
    assert vq.window_ == pytest.approx((0.3, 0.9))


def test_vq_selection_follows_its_seed():
    """The per-class codebooks behind the selection are seeded with the method's seed: two
    seeds pick differently, one seed the same way twice (no proxy: a window rule)."""
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 1, (60, 4)), rng.normal(5, 1, (60, 4))])
    ctx = hand_context(np.repeat([0, 1], 60), z=z)
    params = {"within": "window", "hard_cut": None, "hard_above": 0.5, "per_codeword": 2}
    picks = [make_method("vq", seed=s, **params).fit(ctx).select(24) for s in (0, 1, 0)]
    assert np.array_equal(picks[0], picks[2]) and not np.array_equal(picks[0], picks[1])


def test_vq_declares_the_proxy_it_reads_for_auto_hard_above():
    """hard_above="auto" reads the proxy's training error at small keeps, so vq declares the
    dynamics it needs even without a cut or an EL2N rule; a fixed start does not."""
    assert make_method("vq", hard_cut=None, within="window").needs == {"dynamics"}
    assert make_method("vq", hard_cut=None, within="window", hard_above=0.5).needs == set()


def test_vq_outlier_tail_is_rounded_down():
    """A codeword's outlier tail is floor(outlier_tail x members): a codeword of 9 members
    (under 1 / 0.1) keeps all 9, one of 25 keeps 23 (the module's rule)."""
    vq = make_method("vq", outlier_tail=0.1)
    assert len(vq._inliers(np.arange(9), 1)) == 9
    assert len(vq._inliers(np.arange(25), 1)) == 23
    assert len(vq._inliers(np.arange(25), 24)) == 24  # reaches into the tail when needed


def test_flow_method_passes_its_seed_to_the_flows():
    """The flow method's seed reaches its flows: another seed, other log-likelihoods (the
    PCA's randomized solver alone moves them by far less)."""
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 1, (60, 4)), rng.normal(3, 1, (60, 4))])
    ctx = hand_context(np.repeat([0, 1], 60), z=z, el2n=np.zeros((1, 120)),
                       correct=np.ones((1, 120)))
    ll = [make_method("flow", seed=s, pixel_embedding=None,
                      flow=FlowConfig(steps=10, n_layers=2, hidden=8)).fit(ctx).log_likelihood_
          for s in (0, 1)]
    assert np.abs(ll[0] - ll[1]).mean() > 1e-2


def test_flow_stratified_pick_fills_the_quota_smallest_stratum_first():
    """CCS's allocation: strata by ascending size, each its share of what is left; a small
    stratum's unused share passes to the larger ones, so the quota is always met."""
    from tinysift.selection.methods.flow import stratified_pick

    scores = np.array([0.0] * 9 + [1.0])  # two strata: 9 samples at 0, 1 at 1
    picks = stratified_pick(scores, 4, 2, np.random.default_rng(0))
    assert len(picks) == len(np.unique(picks)) == 4 and 9 in picks
    scores = np.array([1.0] * 9 + [0.0])  # the small stratum last in score order
    picks = stratified_pick(scores, 4, 2, np.random.default_rng(0))
    assert len(picks) == len(np.unique(picks)) == 4 and 9 in picks


def test_flow_small_class_is_judged_by_its_training_fold():
    """A class is too small for a flow when its training fold (half of it at 2 folds), not
    the class, is under MIN_FLOW_TRAIN: a class of 30 trains on 15, so it gets the pooled
    Gaussian and does not cap the other classes' flows at 2 dimensions."""
    from tinysift.selection.methods.flow import MIN_FLOW_TRAIN

    assert MIN_FLOW_TRAIN == 20
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [200, 200, 30])
    z = rng.normal(size=(len(y), 8)) + 3.0 * y[:, None]
    ctx = hand_context(y, z=z, el2n=np.zeros((1, len(y))), correct=np.ones((1, len(y))))
    flow = make_method("flow", seed=0, pixel_embedding=None, dim=8,
                       flow=FlowConfig(steps=5, n_layers=2, hidden=8)).fit(ctx)
    assert flow.small_classes_.tolist() == [2]
    assert flow.flow_dims_ == {"cnn": 8}  # 100 training samples a fold / 10, capped at dim


def test_flow_pixel_density_is_the_out_of_fold_flow_times_the_residual_gaussian():
    """On pixels, a sample's log-density under class c is the flow on the top-d principal
    components, scored by the flows of the fold it was not trained in, plus the isotropic
    Gaussian of the PCA residual, variance mean residual / (D - d) over class c, normalizer
    included (classes of different noise then compare fairly in the label agreement).
    Untrained flows (0 steps) are the cross-fitted normals of their fold."""
    from sklearn.decomposition import PCA

    from tinysift.scoring.context import TrainingDynamics
    from tinysift.scoring.density import log_sum_exp
    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    base = rng.uniform(60, 200, size=(2, 16))
    noise = np.where(y == 0, 5.0, 25.0)[:, None]  # class 1's residual is far larger
    x = np.clip(base[y] + noise * rng.normal(size=(120, 16)), 0, 255).astype(np.uint8)
    ctx = ScoringContext(x.reshape(120, 4, 4, 1), y, 2, progress=False)
    zeros = np.zeros((1, 120), np.float32)
    dyn = TrainingDynamics(zeros, zeros, np.ones((1, 120), bool), zeros, zeros,
                           features=np.zeros((120, 4), np.float32), seconds=0.0)
    ctx.dynamics = lambda: dyn
    flow = make_method("flow", seed=0, embedding="pixels", pixel_embedding=None,
                       flow=FlowConfig(steps=0)).fit(ctx)
    assert flow.flow_dims_ == {"pixels": 3}  # 30 training samples a fold / 10
    raw = x.astype(np.float32) / 255.0
    pca = PCA(n_components=3, svd_solver="randomized", random_state=0)
    z = pca.fit_transform(raw).astype(np.float32)
    resid = ((raw - pca.inverse_transform(z)) ** 2).sum(1).astype(np.float64)
    flows = ClassFlows(FlowConfig(steps=0), seed=0).fit(z, y, 2, folds=2)
    ll = flows.log_prob(z, flows.fold_)
    for c in (0, 1):
        var = resid[y == c].mean() / 13
        ll[:, c] += -0.5 * resid / var - 0.5 * 13 * np.log(2 * np.pi * var)
    rows = np.arange(120)
    np.testing.assert_allclose(flow.log_likelihood_, ll[rows, y], rtol=1e-4, atol=1e-3)
    joint = ll + np.log(0.5)
    np.testing.assert_allclose(flow.agreement_, joint[rows, y] - log_sum_exp(joint),
                               rtol=1e-4, atol=1e-3)
