"""vq and flow selection rules held to hand computations on small arrays (a mutation
audit's survivors, 2026-12-06): the window's slide and its start, seeds reaching the
codebooks and the flows, the outlier tail's rounding, the declared proxy, the strata's
allocation, the small-class rule; and a second audit's of vq (2026-12-07): the window's
picks and bounds, codeword quotas, a class smaller than its codebook, the cut's seeded
ties, the scarce floor's edge, the proxy at keep 0.1, the tail under the difficulty
spread; and of flow (2026-12-07): its ranks, small-class Gaussian, fold share and
dimension, pixel residual, certainty, hard cut, strata and seed."""

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
    dynamics it needs even without a cut or an EL2N rule; a fixed start does not, unless
    the embedding is the proxy's own ("cnn": its features)."""
    assert make_method("vq", hard_cut=None, within="window").needs == {"dynamics"}
    assert make_method("vq", hard_cut=None, within="window", hard_above=0.5).needs == set()
    assert make_method("vq", embedding="cnn", hard_cut=None, within="window",
                       hard_above=0.5).needs == {"dynamics"}


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


def test_vq_scores_a_class_smaller_than_its_codebook() -> None:
    """A class with fewer samples than score_codebook (a rare class of user data) gets a
    codeword per sample, not a scikit-learn error: each sample is its own codeword's nearest
    member (score 1, distance 0, occupancy 1); in a larger class the score is the rank
    inside the codeword relative to its size, the occupancy the number of samples the
    codeword quantizes, and the selection covers every codeword of its codebook
    (coverage_: codewords, codewords represented)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [40, 5])
    ctx = hand_context(y, z=rng.normal(size=(45, 4)))
    vq = make_method("vq", seed=0, score_codebook=8, within="window", hard_cut=None,
                     hard_above=0.5).fit(ctx)
    rare, common = y == 1, y == 0
    assert (vq.scores_[rare] == 1.0).all() and (vq.occupancy_[rare] == 1).all()
    assert vq.distance_[rare] == pytest.approx(0.0, abs=1e-6)
    words = vq.codeword_[common]
    assert sorted(set(words.tolist())) == list(range(8))
    np.testing.assert_array_equal(vq.occupancy_[common], np.bincount(words)[words])
    for word in range(8):  # the rank inside the codeword, relative: 1, 1 - 1/s, ..., 1/s
        members = np.flatnonzero(common & (vq.codeword_ == word))
        np.testing.assert_allclose(np.sort(vq.scores_[members])[::-1],
                                   1.0 - np.arange(len(members)) / len(members))
    assert len(vq.select(20)) == 20  # the rare class kept whole, 15 of the other
    assert vq.coverage_ == {0: (4, 4)}  # those 15 in 4 codewords, each represented


def test_vq_window_picks_spread_over_the_window_and_stay_out_of_the_tail() -> None:
    """A codeword's picks are spread over its distance-rank window, one at the middle of
    each equal part (the window's ends rounded outwards); a window widened past the outlier
    tail slides back below it; picks that cannot fit below the tail take as few tail ranks
    as they need."""
    from tinysift.selection.methods.vq import window_picks

    assert window_picks(10, 2, 0.0, 0.52).tolist() == [1, 4]  # ranks [0, 6), halves' middles
    assert window_picks(10, 2, 0.25, 0.65).tolist() == [3, 5]  # [2, 7)
    assert window_picks(10, 4, 0.7, 0.9, limit=0.9).tolist() == [5, 6, 7, 8]  # not rank 9
    assert window_picks(10, 9, 0.6, 0.9, limit=0.5).tolist() == list(range(9))
    assert window_picks(5, 5, 0.2, 0.4).tolist() == list(range(5))


def test_vq_codeword_quotas_of_equal_codewords_differ_by_at_most_one() -> None:
    """Largest remainder: four codewords of 3 members sharing 6 picks get one each, and the
    two left go to two of them (2, 2, 1, 1), not both to one (3, 1, 1, 1); with fewer picks
    than codewords (per_codeword under 1) no codeword gets two while an equal one has none;
    a quota of one per codeword gives each one, however unequal the codewords."""
    from tinysift.selection.methods.vq import occupancy_quotas

    assert occupancy_quotas(np.array([3, 3, 3, 3]), 6).tolist() == [2, 2, 1, 1]
    assert occupancy_quotas(np.array([3, 3, 3, 3]), 2).tolist() == [1, 1, 0, 0]
    assert occupancy_quotas(np.array([8, 1, 1]), 3).tolist() == [1, 1, 1]


def test_vq_hard_cut_breaks_ties_with_the_seed() -> None:
    """The hard cut drops a class's hardest by EL2N and the seed decides among equal EL2N
    (as ccs's and d2's cuts do), so seeds average over a tie instead of repeating one draw:
    on classes whose EL2N is all equal two seeds keep different halves, one seed the same
    halves twice (one codeword a class, so nothing but the cut differs between the seeds)."""
    rng = np.random.default_rng(0)
    ctx = hand_context(np.repeat([0, 1], 40), z=rng.normal(size=(80, 3)),
                       el2n=np.ones((1, 80)))
    params = {"within": "window", "hard_cut": 0.5, "hard_above": 1.0, "per_codeword": 100}
    picks = [make_method("vq", seed=seed, **params).fit(ctx).select(20) for seed in (0, 1, 0)]
    assert np.array_equal(picks[0], picks[2]) and not np.array_equal(picks[0], picks[1])


def test_vq_data_stops_being_scarce_at_scarce_per_class_samples_a_class() -> None:
    """From SCARCE_PER_CLASS samples a class on (50: inclusive), hard_above="auto" starts
    the keep-hard regime at the proxy's training error averaged over its measurements
    (here 0 and 4 %: 2 %, never above 0.1), and within="difficulty" spreads over EL2N; one
    sample fewer is scarce: the start is 0.1 and the picks are herding's."""
    from tinysift.selection.methods.vq import SCARCE_PER_CLASS

    assert SCARCE_PER_CLASS == 50
    rng = np.random.default_rng(0)
    y, z = np.repeat([0, 1], 600), rng.normal(size=(1200, 4))
    correct = np.ones((2, 1200), bool)
    correct[1, ::25] = False  # 4 % wrong at the second measurement, none at the first
    vq = make_method("vq", seed=0).fit(hand_context(y, z=z, correct=correct))
    vq.select(100)
    assert vq.regime_ == "hard" and vq.hard_start_ == pytest.approx(0.02)
    vq.select(99)
    assert vq.regime_ == "typical" and vq.hard_start_ == 0.1 and vq.within_ == "herding"
    wrong = np.zeros((2, 1200), bool)  # the proxy gets nothing right: error 1, start 0.1
    vq = make_method("vq", seed=0).fit(hand_context(y, z=z, correct=wrong))
    vq.select(100)
    assert vq.hard_start_ == 0.1 and vq.regime_ == "typical" and vq.within_ == "difficulty"


def test_vq_auto_start_needs_no_proxy_at_keep_0_1() -> None:
    """hard_above="auto" can only move the keep-hard start below 0.1, so a keep of 0.1
    itself (one of the bench's keeps: round(0.1 N) samples) takes the far window without
    the proxy CNN: the proxy is neither trained for it nor charged to it."""
    from hand_context import tiny_context
    from tinysift.selection.budget import fraction_count

    ctx = tiny_context(n=1200, classes=2)
    vq = make_method("vq", seed=0).fit(ctx)
    vq.select(fraction_count(0.1, ctx.num_samples))
    assert vq.regime_ == "hard" and not any("dynamics" in key for key in ctx.timings)


def test_vq_difficulty_spread_leaves_out_each_codewords_outlier_tail() -> None:
    """within="difficulty" spreads a codeword's picks over the EL2N of its members without
    the outlier tail: where a codeword's farthest members are also its hardest (as likely
    mislabeled samples are), none of them is picked, though the spread reaches the hard
    end of the rest (one codeword a class: its centre is the class mean)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 300)
    z = rng.normal(size=(600, 4)) + 5.0 * y[:, None]
    far = np.linalg.norm(z - np.stack([z[y == c].mean(0) for c in (0, 1)])[y], axis=1)
    vq = make_method("vq", seed=0, hard_cut=None, hard_above=1.0, per_codeword=1000)
    kept = vq.fit(hand_context(y, z=z, el2n=far[None])).select(120)
    assert vq.within_ == "difficulty"
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        by_distance = idx[np.argsort(far[idx])]
        picks = kept[y[kept] == c]
        assert not np.isin(picks, by_distance[-30:]).any()  # the farthest 10 %
        assert np.isin(picks, by_distance[-60:]).any()


def test_vq_window_is_at_most_the_non_outlier_part_and_may_be_all_of_it() -> None:
    """window=1, the top of its documented range (0, 1], is taken: without an outlier tail
    the window is then every distance rank at any keep; a window wider than the part
    outside the outlier tail is that part (it never reaches into the tail)."""
    vq = make_method("vq", window=1.0, outlier_tail=0.0, hard_above=0.5)
    assert vq.rank_window(0.05) == (0.0, 1.0) and vq.rank_window(0.9) == (0.0, 1.0)
    vq = make_method("vq", window=0.95, outlier_tail=0.1, hard_above=0.5)
    assert vq.rank_window(0.05) == (0.0, 0.9) and vq.rank_window(0.9) == (0.0, 0.9)


def test_vq_window_widened_for_its_picks_holds_exactly_them() -> None:
    """A window narrower than a codeword's picks is widened symmetrically to as many ranks as
    picks, so they are those ranks: [5, 6) of 10 widened for 3 picks is [4, 7). The far
    end grew by the whole shortfall as well as the near end by half of it ([4, 8): picks
    4, 6, 7, rank 5 skipped), so a widened window leaned to the far ranks."""
    from tinysift.selection.methods.vq import window_picks

    assert window_picks(10, 3, 0.5, 0.6).tolist() == [4, 5, 6]
    assert window_picks(10, 4, 0.3, 0.5).tolist() == [2, 3, 4, 5]
    assert window_picks(10, 4, 0.0, 0.1).tolist() == [0, 1, 2, 3]  # at the first rank
    assert window_picks(10, 4, 0.8, 1.0).tolist() == [6, 7, 8, 9]  # at the last rank


def test_flow_rank_within_is_a_share_below_one_with_ties_in_index_order():
    """A within-class rank is the share of the class below the sample, in [0, 1): 0 for
    the lowest, (n - 1) / n for the highest (never 1, whatever the class size), each class
    on its own; equal values rank in index order (stable: 0, 2, 4, ... before 1, 3, ...
    here, which an unstable sort mixes)."""
    from tinysift.selection.methods.flow import rank_within

    values = np.array([3.0, 1.0, 5.0, 2.0, 0.0])
    labels = np.array([0, 0, 1, 0, 1])
    np.testing.assert_allclose(rank_within(values, labels), [2 / 3, 0.0, 0.5, 1 / 3, 0.0])
    ties = (np.arange(20) % 2).astype(float)  # ten 0s, ten 1s
    want = np.where(ties == 0, np.arange(20) // 2, 10 + np.arange(20) // 2) / 20
    np.testing.assert_array_equal(rank_within(ties, np.zeros(20, np.int64)), want)


def test_flow_gaussian_for_small_classes_pools_the_variance_of_the_larger_ones():
    """gaussian_log_prob: each class's own mean, the within-class variance pooled over the
    classes of two samples or more (LDA's rule; a one-sample class has none to give), the
    data's variance when no class has two, floored at 1e-6; the normalizer included."""
    from scipy.stats import norm

    from tinysift.selection.methods.flow import gaussian_log_prob

    z = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 4.0], [5.0, 0.0], [9.0, 0.0], [20.0, -3.0]])
    y = np.array([0, 0, 0, 1, 1, 2])
    dev = np.array([[-1, -1], [1, -1], [0, 2], [-2, 0], [2, 0]], float)  # of classes 0, 1
    std = np.sqrt((dev ** 2).mean(0))
    got = gaussian_log_prob(z, y, np.array([2, 0]), 3)
    for j, mean in enumerate(([20.0, -3.0], [1.0, 2.0])):
        np.testing.assert_allclose(got[:, j], norm.logpdf(z, mean, std).sum(1))
    alone = gaussian_log_prob(z[[0, 3, 5]], np.array([0, 1, 2]), np.array([1]), 3)
    std = z[[0, 3, 5]].std(0)  # no class of two: the data's spread
    np.testing.assert_allclose(alone[:, 0], norm.logpdf(z[[0, 3, 5]], z[3], std).sum(1))
    same = gaussian_log_prob(np.ones((4, 2)), np.array([0, 0, 1, 1]), np.array([0]), 2)
    np.testing.assert_allclose(same[:, 0], 2 * norm.logpdf(0.0, 0.0, 1e-3))


def test_flow_config_given_as_a_table_is_the_flows_config():
    """A pipeline file or --method-params gives the flows' settings as a table: they are
    the flows' config (dropped, the defaults' 600 steps would run), checked when the method is
    made."""
    from tinysift.errors import TinysiftError

    assert make_method("flow", flow={"steps": 7, "hidden": 8}).flow == FlowConfig(steps=7,
                                                                                   hidden=8)
    with pytest.raises(TinysiftError, match="flow steps must be a whole number >= 0"):
        make_method("flow", flow={"steps": -1})


@pytest.mark.parametrize("folds, sizes, small, dim", [
    (2, [200, 200, 40], [], 2),  # 20 training samples: a flow, of 20 / 10 = 2 dimensions
    (2, [200, 200, 39], [2], 6),  # 19.5: the Gaussian; the others' 100 / 10, capped at 6
    (3, [200, 200, 45], [], 3),  # 2/3 of 45 = 30 training samples: 3 dimensions
    (3, [200, 200, 29], [2], 6),  # 19.3: the Gaussian
    (1, [200, 200, 25], [], 2)])  # no cross-fitting: a flow trains on the whole class
def test_flow_small_class_and_dimension_follow_the_training_share_of_the_folds(
        folds, sizes, small, dim):
    """A class is too small for a flow below MIN_FLOW_TRAIN (20) training samples, which
    are (folds - 1) / folds of it (not 1 / folds: the same at 2 folds only), all of it
    without folds, 20 itself being enough; the flows' dimension is the smallest flowed
    class's training share / 10, capped at the embedding's own 6 dimensions (dim asks for
    32)."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], sizes)
    z = rng.normal(size=(len(y), 6)) + 3.0 * y[:, None]
    ctx = hand_context(y, z=z, el2n=np.zeros((1, len(y))), correct=np.ones((1, len(y))))
    flow = make_method("flow", seed=0, pixel_embedding=None, folds=folds,
                       flow=FlowConfig(steps=2, n_layers=2, hidden=4)).fit(ctx)
    assert flow.small_classes_.tolist() == small
    assert flow.flow_dims_ == {"cnn": dim}
    assert np.isfinite(flow.log_likelihood_).all()


def test_flow_small_class_samples_train_no_flow():
    """A class too small for a flow (5 samples) is left out of the flows: the other classes'
    flows are those fit without its samples, every step run (a flow on its 2 or 3 samples
    of a fold would cut every flow's training to 1 step, MAX_EPOCHS passes over it)."""
    from sklearn.decomposition import PCA

    from tinysift.scoring.flows import ClassFlows

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [120, 120, 5])
    z = (rng.normal(size=(len(y), 3)) + 3.0 * y[:, None]).astype(np.float32)
    ctx = hand_context(y, z=z, el2n=np.zeros((1, len(y))), correct=np.ones((1, len(y))))
    cfg = FlowConfig(steps=4, n_layers=2, hidden=4)
    flow = make_method("flow", seed=0, pixel_embedding=None, flow=cfg).fit(ctx)
    assert flow.small_classes_.tolist() == [2] and flow.flow_dims_ == {"cnn": 3}
    pca = PCA(n_components=3, svd_solver="randomized", random_state=0)
    zp = pca.fit_transform(z).astype(np.float32)
    flows = ClassFlows(cfg, seed=0).fit(zp, np.where(y == 2, -1, y), 3, folds=2)
    assert flows.steps_ == 4
    rows = np.flatnonzero(y < 2)
    want = flows.log_prob(zp, flows.fold_)[rows, y[rows]]
    np.testing.assert_allclose(flow.log_likelihood_[rows], want, rtol=1e-5, atol=1e-4)


def test_flow_on_pixels_of_every_component_has_no_residual_and_no_second_density():
    """Images of 2x2 pixels flowed in all 4 dimensions leave no residual: no residual
    Gaussian is added (its variance would be 0 / 0), every log-density is finite; and the
    pixel density is not taken twice when the feature embedding is the pixels too."""
    from tinysift.scoring.context import TrainingDynamics

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    x = rng.integers(0, 256, size=(200, 2, 2, 1), dtype=np.uint8)
    ctx = ScoringContext(x, y, 2, progress=False)
    zeros = np.zeros((1, 200), np.float32)
    dyn = TrainingDynamics(zeros, zeros, np.ones((1, 200), bool), zeros, zeros,
                           features=np.zeros((200, 4), np.float32), seconds=0.0)
    ctx.dynamics = lambda: dyn
    flow = make_method("flow", seed=0, embedding="pixels",
                       flow=FlowConfig(steps=0)).fit(ctx)
    assert flow.flow_dims_ == {"pixels": 4}
    assert set(flow.components_) == {"density", "agreement", "certainty"}
    assert np.isfinite(flow.log_likelihood_).all() and np.isfinite(flow.agreement_).all()


def test_flow_certainty_is_minus_the_el2n_averaged_over_the_measurements():
    """The certainty rank orders a class by its mean EL2N over the proxy's measurements,
    lowest EL2N most certain: the last measurement alone, or the EL2N itself, orders this
    class otherwise."""
    el2n = np.zeros((2, 8))
    el2n[:, :4] = [[0.0, 0.1, 0.2, 0.9], [0.6, 0.4, 0.2, 0.0]]  # class 0: mean .3 .25 .2 .45
    z = np.random.default_rng(0).normal(size=(8, 2))
    ctx = hand_context(np.repeat([0, 1], 4), z=z, el2n=el2n, correct=np.ones((2, 8)))
    flow = make_method("flow", seed=0, pixel_embedding=None,
                       flow=FlowConfig(steps=0)).fit(ctx)
    np.testing.assert_allclose(flow.components_["certainty"][:4], [0.25, 0.5, 0.75, 0.0])


def test_flow_cut_is_clipped_to_min_cut_and_max_cut():
    """The hard cut is the suspects' share times cut_margin clipped to [min_cut, max_cut]:
    with no suspect (the proxy right everywhere) it is min_cut, 0.1 by default; with half
    the labels rejected by both the flows (labels at random) and the proxy it is max_cut."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    z = rng.normal(size=(100, 2))
    brief = {"pixel_embedding": None, "flow": FlowConfig(steps=0)}
    right = hand_context(y, z=z, el2n=np.zeros((1, 100)), correct=np.ones((1, 100)))
    assert make_method("flow", seed=0, **brief).fit(right).cut_fraction(0.5) == 0.1
    wrong = hand_context(y, z=z, el2n=np.zeros((1, 100)), correct=np.zeros((1, 100)))
    flow = make_method("flow", seed=0, max_cut=0.2, **brief).fit(wrong)
    assert flow.suspect_fraction_ * flow.cut_margin > 0.2
    assert flow.cut_fraction(0.5) == 0.2


def test_flow_draw_inside_the_strata_follows_the_seed():
    """The random picks inside a density stratum are drawn with the method's seed: two seeds
    with the same scores (untrained flows without folds: the class Gaussians) pick
    differently, one seed the same way twice."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    z = rng.normal(size=(120, 2)) + 3.0 * y[:, None]
    ctx = hand_context(y, z=z, el2n=np.zeros((1, 120)), correct=np.ones((1, 120)))
    brief = {"pixel_embedding": None, "folds": 1, "flow": FlowConfig(steps=0)}
    flows = [make_method("flow", seed=s, **brief).fit(ctx) for s in (0, 1, 0)]
    np.testing.assert_allclose(flows[0].scores_, flows[1].scores_)
    picks = [f.select(30) for f in flows]
    assert np.array_equal(picks[0], picks[2]) and not np.array_equal(picks[0], picks[1])


def test_flow_strata_split_the_score_range_into_bins_equal_widths():
    """``bins`` strata split the scores' range into that many equal widths: 2 bins over
    [0, 1] part at 0.5, so the three samples at 0.6, 0.7 and 1.0 are a stratum of their own,
    the smallest, taken whole (its share is 3 of 6) before the eight at 0 give the rest.
    With one edge too few the samples below 1.0 would be a single stratum of ten."""
    from tinysift.selection.methods.flow import stratified_pick

    scores = np.array([0.0] * 8 + [0.6, 0.7, 1.0])
    picks = stratified_pick(scores, 6, 2, np.random.default_rng(0))
    assert len(np.unique(picks)) == 6 and {8, 9, 10} <= set(picks.tolist())


def test_flow_strata_shares_round_down_leaving_the_rest_to_the_larger_strata():
    """Each stratum, smallest first, gets the floor of what is left over the strata left
    (CCS's allocation): strata of 3, 4 and 5 samples share 4 picks as 1, 1 and 2 (rounding
    up gives the smallest 2 and the largest 1)."""
    from tinysift.selection.methods.flow import stratified_pick

    scores = np.array([0.0] * 3 + [0.5] * 4 + [1.0] * 5)
    picks = stratified_pick(scores, 4, 3, np.random.default_rng(0))
    assert np.bincount((scores[picks] * 2).astype(int), minlength=3).tolist() == [1, 1, 2]


def test_flow_fit_s_bar_counts_the_steps_the_fit_runs(monkeypatch) -> None:
    """The flow fit's progress bar is sized by the steps the fit runs, not the steps it was
    given: the epoch cap stops it early on small classes (64 passes over 20 training samples
    a flow are 5 batches of 256), and a bar of 600 read "5/600 steps" with a wrong time
    left when it ended (it is drawn at 0/600 before the fit knows its steps)."""
    import io

    from rich.console import Console

    from tinysift import progress

    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    monkeypatch.setattr(progress, "_bar_console", terminal)
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    ctx = hand_context(y, z=rng.normal(size=(len(y), 8)) + 3.0 * y[:, None],
                       el2n=np.zeros((1, len(y))), correct=np.ones((1, len(y))))
    ctx.progress = True
    make_method("flow", seed=0, pixel_embedding=None, dim=8,
                flow=FlowConfig(steps=600, n_layers=2, hidden=8)).fit(ctx)
    drawn = terminal.file.getvalue()
    assert "5/5 steps" in drawn and "5/600" not in drawn
