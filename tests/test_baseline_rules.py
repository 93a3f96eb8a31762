"""The baselines' rules on data small enough to state the right picks by hand.

tests/test_baselines.py checks every baseline on digits against its own recorded scores
(``distance_``, ``dynamics().el2n``): a wrong distance, centre or dynamics formula moves the
scores and the check together. Here each rule is recomputed independently (numpy by hand,
brute-force greedy references) on contexts whose dynamics and embeddings are given, so no
proxy trains and a method that drifts from its paper's rule fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from hand_context import hand_context
from tinysift.errors import BudgetError, TinysiftError
from tinysift.scoring import ScoringContext
from tinysift.scoring.dynamics import TrainingDynamics
from tinysift.selection import PruningMethod, make_method


# -- the shared difficulty score (CCS, D2) and the epoch choice ---------------------------------
def test_difficulty_scores_and_epochs_by_hand():
    from tinysift.selection.methods._common import difficulty

    el2n = np.array([[0.9, 0.1, 0.5, 0.2],
                     [0.1, 0.2, 0.5, 0.3],
                     [0.2, 0.9, 0.5, 0.4]])
    margin = np.array([[1.0, -2.0, 0.5, 3.0],
                       [3.0, -1.0, 0.5, -3.0],
                       [2.0, 0.0, 2.0, 0.0]])
    correct = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]], bool)
    ctx = hand_context([0, 1, 0, 1], el2n=el2n, margin=margin, correct=correct)
    assert np.allclose(difficulty(ctx, "el2n"), [0.2, 0.9, 0.5, 0.4])  # last epoch
    assert np.allclose(difficulty(ctx, "el2n", 0), [0.9, 0.1, 0.5, 0.2])
    assert np.allclose(difficulty(ctx, "el2n", "mean"), [0.4, 0.4, 0.5, 0.3])
    # -AUM: a low (negative) mean margin is hard
    assert np.allclose(difficulty(ctx, "aum"), [-2.0, 1.0, -1.0, 0.0])
    # forgetting events (correct -> wrong): sample 0 once, 3 once, 2 never; 1 learned at the end
    assert difficulty(ctx, "forgetting").tolist() == [1.0, 0.0, 0.0, 1.0]
    # the same scores reach CCS and D2 through `importance`
    assert np.allclose(make_method("ccs", importance="aum").fit(ctx).score(), [-2, 1, -1, 0])
    assert np.allclose(make_method("ccs", epoch=0).fit(ctx).score(), [0.9, 0.1, 0.5, 0.2])
    # EL2N's epoch="mean" keeps the largest mean, not the last epoch's largest
    mean = make_method("el2n", epoch="mean", balance=False).fit(ctx)
    assert np.allclose(mean.score(), [0.4, 0.4, 0.5, 0.3])
    assert mean.select(1).tolist() == [2]
    assert make_method("el2n", epoch=0, balance=False).fit(ctx).select(1).tolist() == [0]


def test_difficulty_refuses_an_epoch_or_a_score_it_does_not_have() -> None:
    """3 recorded epochs: indices -3 to 2 name them (-3 the first); 3 and -4 are refused with
    the count recorded and the fix, a text other than "mean" and an unknown score name are
    refused by name (not read as the mean, or as forgetting counts)."""
    from tinysift.selection.methods._common import difficulty

    el2n = np.array([[0.9, 0.1], [0.1, 0.2], [0.2, 0.9]])
    ctx = hand_context([0, 1], el2n=el2n)
    assert np.allclose(difficulty(ctx, "el2n", -3), [0.9, 0.1])
    for epoch in (3, -4):
        with pytest.raises(TinysiftError, match=rf"epoch {epoch} is out of range: the proxy "
                                                r"recorded 3 epochs \(raise proxy_epochs"):
            difficulty(ctx, "el2n", epoch)
    with pytest.raises(TinysiftError, match="epoch must be an integer index or 'mean', got "
                                            "'last'"):
        difficulty(ctx, "el2n", "last")
    with pytest.raises(TinysiftError, match="importance"):
        difficulty(ctx, "el2m")


def test_a_misspelt_score_or_embedding_is_refused_with_the_names_that_work() -> None:
    """The message lists the choices, so it says the fix as well as the problem."""
    with pytest.raises(TinysiftError, match=r"\(importance\) 'el2m'; choose one of "
                                            r"\('el2n', 'aum', 'forgetting'\)"):
        make_method("ccs", importance="el2m")
    with pytest.raises(TinysiftError, match="embedding must be one of given, pixels, "
                                            "random-conv, cnn, got 'CNN'"):
        make_method("d2", embedding="CNN")


# -- CCS ----------------------------------------------------------------------------------------
def test_ccs_strata_allocation_and_cut_follow_algorithm_1():
    """Zheng et al. (2023), Algorithm 1: equal-width strata over [min, max]; the smallest
    stratum first gets min(|B|, floor(m / strata left)); the hard cut drops floor(beta * n)."""
    from tinysift.selection.methods._common import cut_hardest
    from tinysift.selection.methods.ccs import allocate, strata

    assert strata(np.array([0.0, 0.1, 0.49, 0.5, 0.9, 1.0]), 2).tolist() == [0, 0, 0, 1, 1, 1]
    assert strata(np.linspace(0.0, 1.0, 9), 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    # floor, not ceil: the remainder goes to the strata visited last (the largest)
    assert allocate(4, np.array([10, 10, 10])).tolist() == [1, 1, 2]
    assert allocate(7, np.array([2, 10, 10])).tolist() == [2, 2, 3]
    hard = np.array([3.0, 9.0, 1.0, 8.0, 0.0, 7.0, 2.0, 6.0, 5.0, 4.0])
    tie = np.arange(10)
    # floor(0.25 * 10) = 2 hardest gone (9 and 8), nothing else
    assert cut_hardest(hard, 0.25, 1, tie).tolist() == [0, 2, 4, 5, 6, 7, 8, 9]
    assert cut_hardest(hard, 0.25, 9, tie).tolist() == [0, 2, 3, 4, 5, 6, 7, 8, 9]  # shrunk
    assert cut_hardest(hard, 0.25, 10, tie).tolist() == list(range(10))
    # floor(0.3 * 9) = 2 of 9, not 3
    assert cut_hardest(hard[:9], 0.3, 1, tie[:9]).tolist() == [0, 2, 4, 5, 6, 7, 8]
    # floor(0.29 * 100) = 29 and floor(0.7 * 90) = 63, though the floats' products are
    # 28.999... and 62.999...
    ranks = np.arange(100.0)
    assert len(cut_hardest(ranks, 0.29, 1, np.arange(100))) == 71
    assert len(cut_hardest(ranks[:90], 0.7, 1, np.arange(90))) == 27
    with pytest.raises(ValueError, match="budget 11 exceeds the 10 samples available"):
        allocate(11, np.array([5, 5]))  # not 10 kept in silence


def test_ccs_selection_by_hand():
    """10 samples, beta 0.2 and 2 strata: the 2 hardest are cut; of the rest, the hardest is
    alone in the upper stratum, so smallest-stratum-first allocation always keeps it and the
    other 2 picks come from the 7 easy ones, at random with the seed."""
    el2n = np.array([[0.1, 6.0, 0.0, 0.3, 1.0, 0.2, 5.0, 0.1, 0.3, 0.2]])
    ctx = hand_context(np.arange(10) % 2, el2n=el2n)
    easy = [0, 2, 3, 5, 7, 8, 9]
    seen = set()
    for seed in range(10):
        method = make_method("ccs", seed=seed, balance=False, hard_cut=0.2, num_bins=2)
        sel = method.fit(ctx).select(3)
        assert 4 in sel and 1 not in sel and 6 not in sel, (seed, sel)
        assert len(np.intersect1d(sel, easy)) == 2
        seen.update(sel.tolist())
    assert len(seen & set(easy)) >= 4  # the easy picks vary with the seed


# -- D2 -----------------------------------------------------------------------------------------
def _d2_forward(z: np.ndarray, s: np.ndarray, k: int, gamma_f: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Dense forward pass as documented: symmetric kNN graph, weights exp(-d / median kNN
    distance); the weights and s' = s + W^gamma_f s."""
    n = len(z)
    d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :k]
    adj = np.zeros((n, n), bool)
    adj[np.arange(n)[:, None], nn] = True
    adj |= adj.T
    m = np.median(d[np.arange(n)[:, None], nn])
    w = np.where(adj, np.exp(-np.where(adj, d, 0.0) / m), 0.0)
    return w, s + (w ** gamma_f) @ s


def _d2_reference(z, s, k, gamma_f, gamma_r, count):
    """Dense D2 (Maharana et al. 2024) as documented: the forward pass above, then greedy max
    with reverse messages."""
    n = len(z)
    w, cur = _d2_forward(z, s, k, gamma_f)
    taken = np.zeros(n, bool)
    order = []
    for _ in range(count):
        i = int(np.argmax(np.where(taken, -np.inf, cur)))
        order.append(i)
        taken[i] = True
        cur = np.where(taken, cur, cur - (w[i] ** gamma_r) * cur[i])
    return np.sort(order)


@pytest.mark.parametrize("k, gamma_f, gamma_r", [(1, 1.0, 1.0), (3, 2.0, 0.5), (6, 1.0, 3.0)])
def test_d2_selection_matches_a_dense_reference(k, gamma_f, gamma_r):
    rng = np.random.default_rng(k)
    n = 40
    z = rng.normal(size=(n, 2)).astype(np.float32).astype(np.float64)  # what the method reads
    el2n = rng.random((1, n)).astype(np.float32).astype(np.float64)
    ctx = hand_context(np.arange(n) % 2, z=z, el2n=el2n)
    method = make_method("d2", balance=False, hard_cut=0.0, n_neighbors=k,
                         gamma_forward=gamma_f, gamma_reverse=gamma_r).fit(ctx)
    for count in (5, 12):
        want = _d2_reference(z, el2n[0], k, gamma_f, gamma_r, count)
        assert method.select(count).tolist() == want.tolist(), count


def test_d2_shifts_a_negative_difficulty_to_be_non_negative():
    """-AUM is negative for learned samples: the node scores are shifted by the minimum
    (documented choice), so the message passing reads importance, not its sign."""
    rng = np.random.default_rng(7)
    n = 30
    z = rng.normal(size=(n, 2)).astype(np.float32).astype(np.float64)
    margin = rng.uniform(0.5, 3.0, size=(2, n)).astype(np.float32).astype(np.float64)
    ctx = hand_context(np.arange(n) % 2, z=z, margin=margin)
    s = -margin.mean(0)
    want = _d2_reference(z, s - s.min(), 4, 1.0, 1.0, 8)
    method = make_method("d2", balance=False, hard_cut=0.0, importance="aum", n_neighbors=4)
    assert method.fit(ctx).select(8).tolist() == want.tolist()
    assert np.allclose(method.score(), _d2_forward(z, s - s.min(), 4, 1.0)[1])


def test_d2_scores_are_the_forward_pass_on_each_class_graph() -> None:
    """scores_ (what selection.npz records) is s' = s + W^gamma_f s with s the difficulty at
    ``epoch``, on each class's own kNN graph (balance=True) or on one graph of every sample
    (balance=False)."""
    rng = np.random.default_rng(3)
    n = 30
    y = np.arange(n) % 2
    z = rng.normal(size=(n, 2)).astype(np.float32).astype(np.float64)
    el2n = rng.random((2, n)).astype(np.float32).astype(np.float64)
    ctx = hand_context(y, z=z, el2n=el2n)
    params = {"n_neighbors": 4, "gamma_forward": 2.0, "gamma_reverse": 0.5, "epoch": 0}
    per_class = make_method("d2", **params).fit(ctx).score()
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        assert np.allclose(per_class[idx], _d2_forward(z[idx], el2n[0, idx], 4, 2.0)[1])
    whole = make_method("d2", balance=False, **params).fit(ctx).score()
    assert np.allclose(whole, _d2_forward(z, el2n[0], 4, 2.0)[1])


def test_d2_on_classes_smaller_than_the_neighbourhood() -> None:
    """n_neighbors=10 (the default) on classes of 6 samples: each sample's neighbours are the
    other 5 (k capped at n - 1; a kNN query for more neighbours than samples fails), and the
    picks are the dense reference's."""
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 6)
    z = rng.normal(size=(12, 2)).astype(np.float32).astype(np.float64)
    el2n = rng.random((1, 12)).astype(np.float32).astype(np.float64)
    method = make_method("d2", hard_cut=0.0).fit(hand_context(y, z=z, el2n=el2n))
    want = []
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        want += idx[_d2_reference(z[idx], el2n[0, idx], 5, 1.0, 1.0, 2)].tolist()
    assert method.select(4).tolist() == sorted(want)


def test_d2_on_duplicate_embeddings() -> None:
    """Duplicate images share an embedding, at distance 0 from each other: the weights' scale
    is the median of the positive kNN distances (1 when every distance is 0), so a class that
    is mostly or wholly copies still gets finite scores and a selection; no sample is its own
    neighbour, and a copy's edges weigh exp(0) = 1."""
    from tinysift.selection.methods.d2 import knn_graph

    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 12)
    z = np.zeros((24, 2))
    z[9:12] = [[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]  # class 0: 9 copies and 3 others
    z[12:] = [5.0, 5.0]  # class 1: 12 copies
    ctx = hand_context(y, z=z, el2n=rng.random((1, 24)))
    method = make_method("d2", hard_cut=0.0, n_neighbors=3).fit(ctx)
    assert np.isfinite(method.score()).all()
    assert len(method.select(8)) == 8
    graph = knn_graph(z[12:], 3)
    assert np.allclose(graph.data, 1.0) and not graph.diagonal().any()
    assert (np.diff(graph.indptr) >= 3).all()


def test_d2_with_zero_difficulty_keeps_each_class_first_samples_once() -> None:
    """Forgetting counts are 0 for every sample the proxy learned and never forgot (easy data):
    every score ties at 0 and stays 0 under the reverse messages, so the picks follow D2's tie
    rule (lowest index first), each sample once."""
    rng = np.random.default_rng(4)
    correct = np.ones((3, 20), bool)
    ctx = hand_context(np.arange(20) % 2, z=rng.normal(size=(20, 2)), correct=correct)
    method = make_method("d2", importance="forgetting", hard_cut=0.0, n_neighbors=3)
    assert method.fit(ctx).select(6).tolist() == [0, 1, 2, 3, 4, 5]


def test_d2_builds_its_graph_in_the_embedding_it_names() -> None:
    """``embedding`` picks the space of the kNN graph: the picks are the dense reference's on
    that embedding (two unrelated embeddings of the same samples give other picks)."""
    rng = np.random.default_rng(8)
    n = 30
    embeddings = {kind: rng.normal(size=(n, 2)).astype(np.float32) for kind in ("pixels", "cnn")}
    el2n = rng.random((1, n)).astype(np.float32)
    ctx = hand_context(np.arange(n) % 2, el2n=el2n)
    ctx.embedding = lambda kind="pixels", dim=None: embeddings[kind]
    picks = {}
    for kind, z in embeddings.items():
        method = make_method("d2", balance=False, hard_cut=0.0, n_neighbors=3, embedding=kind)
        picks[kind] = method.fit(ctx).select(8).tolist()
        want = _d2_reference(z.astype(np.float64), el2n[0].astype(np.float64), 3, 1.0, 1.0, 8)
        assert picks[kind] == want.tolist(), kind
    assert picks["pixels"] != picks["cnn"]


def _outlier_context() -> tuple:
    """40 samples in 2 classes (labels alternating); each class's first sample (0 and 1) is far
    harder than the rest (EL2N 50 against below 1) and far from them in the embedding."""
    rng = np.random.default_rng(11)
    n = 40
    el2n = rng.uniform(0.0, 1.0, size=(1, n))
    el2n[0, :2] = 50.0
    z = rng.normal(size=(n, 2))
    z[0], z[1] = [100.0, 100.0], [-100.0, -100.0]
    return hand_context(np.arange(n) % 2, z=z, el2n=el2n), el2n[0]


@pytest.mark.parametrize("name, params", [("ccs", {"num_bins": 2}), ("d2", {"n_neighbors": 3})])
def test_auto_hard_cut_follows_the_budget(name: str, params: dict) -> None:
    """hard_cut="auto" (the default) cuts by the budget on CCS's schedule: keeping 4 of 40
    (keep 0.1) never keeps a class's 30 % hardest; keeping 20 (keep 0.5) cuts nothing, and
    each class's far-hardest sample is kept (CCS: alone in the top stratum; D2: the highest
    score, with no neighbour near enough to push it down)."""
    ctx, hard = _outlier_context()
    for seed in range(3):
        method = make_method(name, seed=seed, **params).fit(ctx)
        small = method.select(4)
        for c in (0, 1):
            members = np.flatnonzero(ctx.y == c)
            hardest = members[np.argsort(-hard[members])][:6]  # floor(0.3 * 20)
            assert not np.isin(small, hardest).any(), (seed, small)
        assert {0, 1} <= set(method.select(20).tolist()), seed


# -- geometry -----------------------------------------------------------------------------------
def test_moderate_matches_distances_to_each_class_mean():
    """Xia et al. (2023): Euclidean distance to the mean feature of the sample's own class,
    keep those nearest the class's median distance."""
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], [31, 30])
    z = rng.normal(size=(61, 3)) * rng.uniform(0.5, 2.0, size=(61, 1))
    z[y == 1] += [4.0, -2.0, 1.0]
    z = z.astype(np.float32).astype(np.float64)
    ctx = hand_context(y, z=z)
    method = make_method("moderate").fit(ctx)
    want = []
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        d = np.sqrt(((z[idx] - z[idx].mean(0)) ** 2).sum(1))
        assert np.allclose(method.distance_[idx], d, atol=1e-5)
        want += idx[np.argsort(np.abs(d - np.median(d)))[:10]].tolist()
    assert method.select(20).tolist() == sorted(want)


def _herding_reference(z):
    """Brute force: step t keeps the row minimising ||mu - (S + x) / t||."""
    mu, left, order, total = z.mean(0), list(range(len(z))), [], np.zeros(z.shape[1])
    for t in range(1, len(z) + 1):
        gaps = [np.linalg.norm(mu - (total + z[i]) / t) for i in left]
        i = left.pop(int(np.argmin(gaps)))
        order.append(i)
        total += z[i]
    return np.array(order)


def test_herding_order_matches_brute_force_per_class():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], [17, 14])
    z = rng.normal(size=(31, 3))
    z[y == 1] *= 3.0
    z = z.astype(np.float32).astype(np.float64)
    ctx = hand_context(y, z=z)
    method = make_method("herding").fit(ctx)
    want = []
    for c, q in ((0, 6), (1, 5)):
        idx = np.flatnonzero(y == c)
        ref = _herding_reference(z[idx])
        want += idx[ref[:q]].tolist()
    assert method.select(11).tolist() == sorted(want)


def test_kcenter_first_centre_follows_the_seed():
    """One pick per class is each class's first centre, drawn with the seed: seeds must not
    all start from the same sample."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    ctx = hand_context(y, z=rng.normal(size=(40, 2)))
    firsts = {tuple(make_method("kcenter", seed=s).fit(ctx).select(2).tolist())
              for s in range(8)}
    assert len(firsts) >= 4


def test_kcenter_never_picks_a_sample_twice_among_duplicates():
    """Every distance to a chosen centre is 0 among duplicates: the order is still a
    permutation (a chosen centre is never the farthest again)."""
    from tinysift.selection.methods.kcenter import kcenter_order

    z = np.array([[0.0], [0.0], [0.0], [1.0]])
    order = kcenter_order(z, 1)
    assert order[:2].tolist() == [1, 3] and sorted(order.tolist()) == [0, 1, 2, 3]


def test_prototype_distance_is_cosine_to_the_nearest_centroid_of_the_class():
    """Sorscher et al. (2022): normalised embeddings, k-means prototypes, distance
    1 - cos to the nearest one. Two tight, far-apart direction clusters per class (norms
    varying 10x) so k-means' clusters are known and the distances computable by hand."""
    rng = np.random.default_rng(1)
    dirs = {0: np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]),
            1: np.array([[0, 0, 1.0, 0], [0, 0, 0, 1.0]])}
    z, y, cluster = [], [], []
    for c, centres in dirs.items():
        for j, u in enumerate(centres):
            pts = u + 0.08 * rng.normal(size=(12, 4))
            z.append(pts * rng.uniform(0.5, 5.0, size=(12, 1)))
            y += [c] * 12
            cluster += [2 * c + j] * 12
    z, y, cluster = np.concatenate(z), np.array(y), np.array(cluster)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    cents = np.array([u[cluster == g].mean(0) for g in range(4)])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    want = np.array([1.0 - max(u[i] @ cents[2 * y[i]], u[i] @ cents[2 * y[i] + 1])
                     for i in range(len(y))])
    method = make_method("prototypes", clusters_per_class=2).fit(hand_context(y, z=z))
    assert np.allclose(method.distance_, want, atol=1e-5)


@pytest.mark.parametrize("name", ["moderate", "herding", "kcenter", "prototypes"])
def test_geometric_baselines_measure_in_the_embedding_they_name(name: str) -> None:
    """``embedding`` picks the space a geometric baseline measures in: on a context holding
    two unrelated embeddings of the same samples, its scores are those of a context holding
    only the named one (and the two embeddings give other scores)."""
    rng = np.random.default_rng(12)
    y = np.arange(30) % 2
    embeddings = {kind: rng.normal(size=(30, 3)).astype(np.float32)
                  for kind in ("pixels", "cnn")}
    both = hand_context(y)
    both.embedding = lambda kind="pixels", dim=None: embeddings[kind]
    scores = {}
    for kind, z in embeddings.items():
        scores[kind] = make_method(name, embedding=kind).fit(both).score()
        alone = make_method(name, embedding=kind).fit(hand_context(y, z=z)).score()
        assert np.allclose(scores[kind], alone), kind
    assert not np.allclose(scores["pixels"], scores["cnn"])


def test_prototypes_of_a_class_smaller_than_its_clusters_are_its_samples() -> None:
    """A class of fewer samples than ``clusters_per_class`` gets one prototype per sample
    (5 k-means clusters of 2 samples is scikit-learn's error), each at distance 0; the
    larger class still has its 5 and distances above 0."""
    rng = np.random.default_rng(2)
    y = np.array([0, 0] + [1] * 12)
    method = make_method("prototypes").fit(hand_context(y, z=rng.normal(size=(14, 3))))
    assert np.allclose(method.distance_[:2], 0.0, atol=1e-9)
    assert (method.distance_[2:] > 1e-6).sum() >= 6


def test_prototypes_switch_keep_is_where_the_hard_samples_are_kept_first() -> None:
    """From a budget of ``switch_keep`` of the samples (as a count) up, the farthest are kept
    first, below it the nearest: 0.8 of 22 samples is 18 (17.6 rounded, as keep=0.8 resolves);
    1.0 keeps the hard ones only when keeping everything, 0.0 at every budget. Asked before
    fit, the switch says to fit first."""
    rng = np.random.default_rng(4)
    ctx = hand_context(np.arange(22) % 2, z=rng.normal(size=(22, 3)) + [3.0, 0.0, 0.0])
    unfitted = make_method("prototypes", switch_keep=0.8, clusters_per_class=1)
    with pytest.raises(RuntimeError, match=r"not fitted: call fit\(context\) first"):
        unfitted.keeps_hard(18)
    method = unfitted.fit(ctx)
    assert method.keeps_hard(18) and not method.keeps_hard(17)
    d = method.distance_
    for count, nearest_first in ((18, False), (17, True)):
        kept = method.select(count)
        for c in (0, 1):
            members = np.flatnonzero(ctx.y == c)
            ranked = members[np.argsort(d[members] if nearest_first else -d[members])]
            quota = len(kept[ctx.y[kept] == c])
            assert sorted(kept[ctx.y[kept] == c].tolist()) == sorted(ranked[:quota].tolist())
    whole = make_method("prototypes", switch_keep=1.0, clusters_per_class=1).fit(ctx)
    assert whole.keeps_hard(22) and not whole.keeps_hard(21)
    assert make_method("prototypes", switch_keep=0.0).fit(ctx).keeps_hard(1)


def test_prototypes_breaks_distance_ties_with_the_seed() -> None:
    """Samples at the same distance (here all of them: duplicates) are kept by the seeded key,
    not by index: other seeds keep other samples (the index kept each class's first ones)."""
    ctx = hand_context(np.arange(20) % 2, z=np.ones((20, 3)))
    picks = {tuple(make_method("prototypes", seed=seed, clusters_per_class=1).fit(ctx)
                   .select(4).tolist()) for seed in range(6)}
    assert len(picks) >= 4


def test_a_sample_at_the_origin_of_the_embedding_is_at_prototype_distance_1() -> None:
    """A sample whose centred embedding is all zeros (at the mean) has no direction: its
    cosine to every prototype is 0, its distance 1 (the normalisation floors the norm: 0 / 0
    was NaN, which k-means refuses and one prototype passes on as the distance)."""
    rng = np.random.default_rng(6)
    z = rng.normal(size=(12, 3))
    z[0] = 0.0
    ctx = hand_context(np.arange(12) % 2, z=z)
    for clusters in (1, 2):
        d = make_method("prototypes", clusters_per_class=clusters).fit(ctx).distance_
        assert d[0] == pytest.approx(1.0) and np.isfinite(d).all(), clusters


# -- scores of the dynamics ---------------------------------------------------------------------
def test_aum_threshold_flags_strictly_below():
    """An AUM equal to the threshold is not flagged (flagged: AUM < threshold)."""
    margin = np.array([[0.0, -1.0, 1.0, 0.5]])
    method = make_method("aum", balance=False).fit(hand_context([0, 1, 0, 1], margin=margin))
    assert method.flagged_.tolist() == [False, True, False, False]
    assert method.select(3).tolist() == [0, 2, 3]


def test_aum_flags_below_the_threshold_it_is_given() -> None:
    """A threshold above 0 flags the samples whose AUM is below it (not below 0): they rank
    after every unflagged sample, by descending AUM; the unflagged ones rank by ascending
    AUM (hardest first). AUM is the mean margin over the epochs."""
    margin = np.array([[3.0, 1.0, 2.0, 6.0, -1.0, 2.0],
                       [3.0, 1.0, 2.0, 6.0, -1.0, 3.0]])
    ctx = hand_context(np.arange(6) % 2, margin=margin)
    method = make_method("aum", threshold=2.5, balance=False).fit(ctx)
    assert np.allclose(method.aum_, [3.0, 1.0, 2.0, 6.0, -1.0, 2.5])
    assert method.flagged_.tolist() == [False, True, True, False, True, False]
    assert method.select(3).tolist() == [0, 3, 5]
    assert method.select(4).tolist() == [0, 2, 3, 5]
    assert method.select(5).tolist() == [0, 1, 2, 3, 5]


def test_grand_reads_the_gradient_norm_of_the_epoch_it_is_given() -> None:
    """GraNd's score is the recorded head-gradient norm (not EL2N) of the epoch asked for:
    the last by default, epoch 0 (the closest to the paper's "at initialisation") or the
    mean over the epochs; the highest is kept first."""
    grand = np.array([[4.0, 1.0, 2.0, 0.5],
                      [1.0, 3.0, 0.0, 2.0]])
    ctx = hand_context([0, 1, 0, 1], el2n=grand[::-1, ::-1], grand=grand)
    assert np.allclose(make_method("grand").fit(ctx).score(), [1.0, 3.0, 0.0, 2.0])
    assert np.allclose(make_method("grand", epoch=0).fit(ctx).score(), [4.0, 1.0, 2.0, 0.5])
    assert np.allclose(make_method("grand", epoch="mean").fit(ctx).score(),
                       [2.5, 2.0, 1.0, 1.25])
    assert make_method("grand", epoch=0, balance=False).fit(ctx).select(2).tolist() == [0, 2]


def test_forgetting_counts_refuse_a_record_without_epochs() -> None:
    """The correctness record is (epochs, samples); one row of samples alone is refused by
    its shape, not a TypeError from inside the count."""
    from tinysift.scoring.dynamics import forgetting_counts

    with pytest.raises(ValueError, match=r"\(epochs, samples\), got shape \(5,\)"):
        forgetting_counts(np.ones(5, bool))


def test_a_refit_draws_the_tie_key_for_the_new_data() -> None:
    """A method fit again on data of another size selects as a fresh one does: the seeded
    tie-breaking key is drawn for the new number of samples (a key kept from a larger set
    ranked ties by its first entries; from a smaller one it ran out), and for a seed set
    since (the old seed's key was kept)."""
    small = hand_context(np.arange(6) % 2, correct=np.ones((2, 6), bool))
    large = hand_context(np.arange(20) % 2, correct=np.ones((2, 20), bool))
    for first, second, count in ((small, large, 9), (large, small, 3)):
        method = make_method("forgetting", seed=4, balance=False).fit(first)
        method.select(2)
        fresh = make_method("forgetting", seed=4, balance=False).fit(second)
        assert method.fit(second).select(count).tolist() == fresh.select(count).tolist()
    # and for a seed set between fits: the key of the seed it now has
    ties = make_method("forgetting", seed=4, balance=False).fit(large)
    ties.select(5)
    ties.seed = 7
    fresh = make_method("forgetting", seed=7, balance=False).fit(large).select(5)
    assert ties.fit(large).select(5).tolist() == fresh.tolist()
    assert fresh.tolist() != make_method("forgetting", seed=4, balance=False).fit(large).select(
        5).tolist()


def test_random_selection_depends_on_the_seed_and_is_balanced():
    ctx = hand_context(np.repeat([0, 1, 2], [30, 20, 10]))
    picks = [make_method("random", seed=s).fit(ctx).select(15) for s in range(3)]
    for sel in picks:
        assert np.bincount(ctx.y[sel], minlength=3).tolist() == [5, 5, 5]
    assert not np.array_equal(picks[0], picks[1]) and not np.array_equal(picks[1], picks[2])


def test_recorded_dynamics_by_hand(monkeypatch):
    """record_dynamics' per-sample numbers from given head weights and features: EL2N is
    ||softmax - onehot||, the margin the labelled logit minus the largest other one, GraNd
    EL2N times sqrt(||features||^2 + 1), correct the argmax; measured after every
    ``every``-th epoch, the last one after the final epoch (the head here changes with the
    epoch, so a measurement of another epoch shows)."""
    import tinysift.models.cnn as cnn
    import tinysift.models.training as training
    from tinysift.scoring.dynamics import proxy_schedule, record_dynamics

    class _T:
        def __init__(self, a):
            self.a = np.asarray(a, np.float32)

        def numpy(self):
            return self.a

    w = np.array([[2.0, -1.0, 0.0], [0.5, 1.0, -2.0], [0.0, 0.3, 1.0], [-1.0, 0.2, 0.4]])
    b = np.array([0.1, -0.2, 0.0])

    class _Model:
        def __init__(self, epoch):
            self.scale = epoch + 1.0  # the head after epoch e: (e + 1) w

        def get_layer(self, name):
            assert name == cnn.HEAD_LAYER
            return type("Head", (), {"weights": [_T(self.scale * w), _T(b)]})()

    def feats_of(xb):
        return _T(np.asarray(xb, np.float32).reshape(len(xb), -1) * 3.0)

    calls = []

    def fake_train(x, y, k, train_config=None, epoch_hooks=(), progress=True, **_):
        for e in range(train_config.epochs):
            for hook in epoch_hooks:
                hook(e, _Model(e))
        calls.append(train_config.epochs)

    monkeypatch.setattr(cnn, "feature_model", lambda model: lambda xb, training=False:
                        feats_of(xb))
    monkeypatch.setattr(training, "train_model", fake_train)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 2, 2, 1), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    dyn = record_dynamics(x, y, 3, 2, 0, progress=False)
    cfg, every = proxy_schedule(6, 2, 0)
    assert calls == [cfg.epochs] and every > 1 and cfg.epochs == 2 * every
    f = x.reshape(6, -1).astype(np.float64) / 255.0 * 3.0
    assert dyn.el2n.shape == (2, 6)
    for e in range(2):
        logits = f @ (every * (e + 1) * w) + b  # after epoch every * (e + 1) - 1
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        el2n = np.linalg.norm(p - np.eye(3)[y], axis=1)
        other = np.where(np.eye(3)[y] > 0, -np.inf, logits).max(1)
        assert np.allclose(dyn.el2n[e], el2n, atol=1e-5)
        assert np.allclose(dyn.margin[e], logits[np.arange(6), y] - other, atol=1e-5)
        assert np.allclose(dyn.grand[e], el2n * np.sqrt((f ** 2).sum(1) + 1.0), atol=1e-4)
        assert dyn.correct[e].tolist() == (logits.argmax(1) == y).tolist()
        assert np.allclose(dyn.true_prob[e], p[np.arange(6), y], atol=1e-6)


def _record_with_a_fake_proxy(monkeypatch, x: np.ndarray, y: np.ndarray, w: np.ndarray,
                              b: np.ndarray, proxy_epochs: int) -> TrainingDynamics:
    """record_dynamics with training replaced: after epoch ``e`` the proxy's features are
    the image's pixels in [0, 1] times ``e + 1`` and its head is ``(w, b)``."""
    import tinysift.models.cnn as cnn
    import tinysift.models.training as training
    from tinysift.scoring.dynamics import record_dynamics

    class _Weight:
        def __init__(self, value: np.ndarray) -> None:
            self.value = np.asarray(value, np.float32)

        def numpy(self) -> np.ndarray:
            return self.value

    class _Proxy:
        def __init__(self, epoch: int) -> None:
            self.scale = epoch + 1.0

        def get_layer(self, name: str):
            return type("Head", (), {"weights": [_Weight(w), _Weight(b)]})()

    def features_of(proxy: _Proxy):
        return lambda xb, training=False: _Weight(
            np.asarray(xb, np.float32).reshape(len(xb), -1) * proxy.scale)

    def train(x, y, k, train_config=None, epoch_hooks=(), progress=True, **_):
        for epoch in range(train_config.epochs):
            for hook in epoch_hooks:
                hook(epoch, _Proxy(epoch))

    monkeypatch.setattr(cnn, "feature_model", features_of)
    monkeypatch.setattr(training, "train_model", train)
    return record_dynamics(x, y, int(y.max()) + 1, proxy_epochs, 0, progress=False)


def test_recorded_features_are_the_final_proxys_row_for_row(monkeypatch) -> None:
    """``features`` (what the ``cnn`` embedding reduces) are the backbone features of the
    final proxy, not of its first measurement, each row its own sample's also past the 2,048
    samples of one inference batch."""
    from tinysift.scoring.dynamics import proxy_schedule

    n = 2100
    rows = np.arange(n)
    x = np.stack([rows % 256, rows // 256], 1).astype(np.uint8).reshape(n, 1, 2, 1)
    y = rows % 2
    dyn = _record_with_a_fake_proxy(monkeypatch, x, y, np.eye(2), np.zeros(2), 2)
    cfg, _ = proxy_schedule(n, 2, 0)
    want = x.reshape(n, 2) / 255.0 * cfg.epochs  # after the last epoch, cfg.epochs - 1
    assert dyn.features.shape == (n, 2) and dyn.el2n.shape == (2, n)
    np.testing.assert_allclose(dyn.features, want, rtol=1e-6)


def test_correct_is_the_argmax_not_a_probability_above_one_half(monkeypatch) -> None:
    """``correct`` (what forgetting counts) is the proxy's prediction, its largest
    probability, equal to the label: logits (0.4, 0, 0) predict class 0 with probability
    0.43, below one half, and its samples are correct, the others wrong."""
    y = np.arange(6) % 3
    x = np.zeros((6, 1, 1, 1), np.uint8)
    dyn = _record_with_a_fake_proxy(monkeypatch, x, y, np.zeros((1, 3)),
                                    np.array([0.4, 0.0, 0.0]), 1)
    p0 = np.exp(0.4) / (np.exp(0.4) + 2.0)
    np.testing.assert_allclose(dyn.true_prob[0], np.where(y == 0, p0, 1.0 / (np.exp(0.4) + 2)),
                               rtol=1e-6)
    assert p0 < 0.5 and dyn.correct[0].tolist() == (y == 0).tolist()


# -- the selector interface every method shares (selection/base.py) -----------------------------
class _GivenScores(PruningMethod):
    """A method whose scores are given: what the interface itself does with them."""

    name = "given-scores"

    def __init__(self, scores: np.ndarray, seed: int = 0, balance: bool = True) -> None:
        super().__init__(seed=seed, balance=balance)
        self.given = np.asarray(scores)

    def _fit(self, context: ScoringContext) -> np.ndarray:
        return self.given


class _RepeatingSelector(_GivenScores):
    """A selection rule that picks one sample over and over."""

    name = "repeating"

    def _select(self, count: int) -> np.ndarray:
        return np.zeros(count, np.int64)


def _given_scores_context() -> tuple[ScoringContext, np.ndarray]:
    """40 samples of two classes (even indices class 0): the two highest scores at the end of
    class 0, one lowest at the start of class 1, every seventh sample a tie at 1, the rest a
    tie at 0."""
    scores = np.zeros(40)
    scores[38], scores[36], scores[1] = 5.0, 4.0, -1.0
    scores[::7] += 1.0
    return hand_context(np.arange(40) % 2), scores


def test_the_default_selector_keeps_each_classs_highest_scores_ties_by_index() -> None:
    """Higher scores are kept first, each class up to its quota (a global top without
    balance), and equal scores by index: the same scores always keep the same samples, the
    ``nested`` claim the saved scores' re-cut relies on."""
    ctx, scores = _given_scores_context()
    balanced = _GivenScores(scores).fit(ctx)
    assert balanced.select(12).tolist() == [0, 2, 3, 5, 7, 9, 14, 21, 28, 35, 36, 38]
    assert balanced.select(40).tolist() == list(range(40))
    assert _GivenScores(scores, balance=False).fit(ctx).select(5).tolist() == [0, 7, 14, 36,
                                                                                38]


@pytest.mark.parametrize("count", [0, 41])
def test_select_refuses_a_count_outside_one_to_the_samples(count: int) -> None:
    """A count of 0 or above the training set is a BudgetError naming the range, not an
    empty selection or a short one."""
    ctx, scores = _given_scores_context()
    method = _GivenScores(scores).fit(ctx)
    with pytest.raises(BudgetError, match=rf"keep count must be in \[1, 40\], got {count}"):
        method.select(count)


def test_a_method_breaking_the_interface_fails_naming_itself() -> None:
    """A new method's scores not one per sample, or a selection of fewer distinct samples
    than asked, fail at once naming the method (not a short selection written to
    selection.npz); scores asked before fit say to fit first."""
    ctx, scores = _given_scores_context()
    with pytest.raises(RuntimeError, match=r"not fitted: call fit\(context\) first"):
        _GivenScores(scores).score()
    with pytest.raises(AssertionError, match=r"given-scores: scores have shape \(39,\)"):
        _GivenScores(scores[:39]).fit(ctx)
    with pytest.raises(AssertionError, match="repeating selected 1 samples, asked for 3"):
        _RepeatingSelector(scores).fit(ctx).select(3)
    assert np.array_equal(_GivenScores(scores).fit(ctx).score(), scores)


def test_an_unknown_method_is_refused_with_the_known_ones() -> None:
    """A misspelt method name lists the registered methods to choose from, and names the one
    it likely means (a typo, or another case: `--method VQ` was told only the list)."""
    with pytest.raises(TinysiftError, match=r"unknown method 'randm' \(did you mean random\?\); "
                                            r"known methods: aum, ccs, .*, random"):
        make_method("randm")
    with pytest.raises(TinysiftError, match=r"unknown method 'VQ' \(did you mean vq\?\);"):
        make_method("VQ")
    with pytest.raises(TinysiftError, match=r"unknown method 'zzz'; known methods: aum"):
        make_method("zzz")
