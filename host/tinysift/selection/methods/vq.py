"""VQ: per-class vector quantization with a coverage selection.

Scoring
-------
Each class gets a codebook (k-means++, seeded) in an embedding of the samples. Per sample:
``distance`` to its codeword (prototypicality: small = typical), the codeword's
``occupancy`` (how many samples it quantizes: density) and the class's codeword coverage.
``scores_`` (higher = keep first) is the negative distance rank inside the codeword, so a
typical sample of a dense codeword scores high.

Selection (coverage)
--------------------
For a budget of ``q`` samples in a class the codebook has ``K = ceil(q / per_codeword)``
codewords, so every codeword is represented when the budget allows. The class quota is
split over codewords by occupancy (largest remainder, at least one each), which keeps the
selected set's density close to the data's. Inside a codeword, members are ranked by
distance to the codeword and picks are spread evenly over a *window* of that ranking:

* the outermost ``outlier_tail`` of every codeword (by distance) is never chosen: those are
  outliers and likely mislabeled samples (rounded down: a codeword of fewer than
  ``1 / outlier_tail`` members has no tail);
* at mild pruning (keep >= ``hard_above``) the window is the far part of what remains
  ('keep hard': informative samples near the boundaries, Sorscher et al. 2022);
* at extreme pruning (keep <= ``easy_below``) the window is the near part ('keep
  prototypical': with few samples, typical ones teach the class best);
* in between, the window slides linearly from one to the other.

Spreading picks over the window (stratified by distance rank) rather than taking the single
nearest sample keeps diversity inside a codeword: nearest-to-centroid alone loses to random
at extreme budgets.

Below ``hard_above``, ``hard_cut`` (default ``"auto"``: CCS's rule, 30 % at keep <= 0.1)
first drops the hardest fraction of each class by the proxy CNN's EL2N, as CCS does (Zheng
et al. 2023; a fraction fixes it; ``None``: no cut, no proxy CNN), so the codebook covers
what is left. The proxy is trained at the first selection that cuts, so a mild keep never
pays for it.

``within="difficulty"`` (the default) replaces the window by CCS's coverage of difficulty
inside each codeword: a codeword's picks are the non-outlier members whose EL2N is nearest
targets spread evenly over the members' EL2N range (equal-width coverage of the values, so
harder samples than a uniform draw, as CCS's smallest-stratum-first allocation gives). The
codewords keep the class's appearance covered and its density; the difficulty spread inside
each keeps the picks diverse. Below ``SCARCE_PER_CLASS`` samples per class the data is
scarce and the rule takes herding's typical picks instead (on Digits, 1-4 samples per
class, the spread was 7-18 points under herding on validation). ``within="herding"`` picks
a codeword's non-outlier members greedily so that their mean tracks the members' mean
(Welling 2009); ``within="window"`` is the distance-rank window above. ``within="strata"``
turns it round: CCS's equal-width EL2N strata of the class with CCS's allocation, each
filled by herding over its own codewords. It loses to random by 4-8 points at keep 0.03 and
0.01 (validation): codewords formed inside a difficulty stratum no longer partition the
class's appearance, so the picks crowd its centre; kept as the ablation's record, not for
use.

At keep >= ``hard_above`` neither applies: the far window on the whole class ('keep hard'),
the regime where typical-first selection loses to random. ``hard_above="auto"`` (the
default) starts that regime where the data is abundant for its difficulty (Sorscher et al.
2022: keep easy samples when data is scarce, hard ones when it is abundant): at
``min(0.1, e)``, ``e`` the proxy CNN's training error averaged over its measurements (the
share of the class's mass a model still gets wrong while it learns), once every class keeps
at least ``SCARCE_PER_CLASS`` samples; otherwise at 0.1. MNIST (e about 2 %) keeps hard
from keep 0.03 on, Fashion-MNIST (about 13 %) from 0.1. The training error alone would
call a tiny dataset easy (the proxy memorizes Digits' 1437 samples: e under 1 %), hence
the per-class floor: a handful of samples per class is scarce whatever the error.

The defaults come from ``tools/selection_ablation.py`` (equal steps, a validation split of
MNIST and Fashion-MNIST, keep 0.1, 0.03 and 0.01, 3 seeds): the hard cut is what the window
lacked against CCS at tiny budgets; at keep 0.1 every typical-first rule lost to random on
MNIST and the far window was best on both datasets (docs/methods.md). ``"auto"`` moved
MNIST's keep 0.03 to the far window, the best vq rule there (+0.90 points over random against
+0.52 for herding after a 10 % cut); its two constants are fitted on these two datasets only.
Below the switch, the difficulty spread after CCS's cut had the best mean gain over random
on the three cells that use it (Fashion-MNIST 0.03 and 0.01, MNIST 0.01: +2.41, +2.73,
+2.99 points; herding after a 10 % cut, the default before, +1.89, +1.50, +3.59 in the same
session's reruns; ccs +2.53, +2.37, +2.32), none negative.
"""

from __future__ import annotations

import math

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.params import is_whole
from tinysift.scoring.embeddings import check_embedding
from tinysift.selection.base import PruningMethod, register
from tinysift.selection.budget import fraction_count
from tinysift.selection.methods._common import (
    cut_hardest,
    difficulty,
    resolve_hard_cut,
)
from tinysift.selection.methods.ccs import allocate, strata

#: ``hard_above="auto"``: the keep-hard regime never starts later than this keep fraction.
AUTO_HARD_ABOVE = 0.1
#: Below this many samples per class the data is scarce whatever the proxy says: the
#: keep-hard regime does not start early (``hard_above="auto"``) and ``within="difficulty"``
#: takes herding's typical picks (as at 1-4 per class on Digits).
SCARCE_PER_CLASS = 50
#: How a codeword's picks are chosen below the keep-hard regime (see the module).
WITHIN_RULES = ("difficulty", "herding", "window", "strata")
#: The rules that read the proxy CNN's EL2N even without a cut.
EL2N_RULES = ("difficulty", "strata")
#: ``within="strata"``: equal-width EL2N strata per class (CCS's 50).
STRATA_BINS = 50


def kmeans(z: np.ndarray, k: int, seed: int, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ (scikit-learn, one init, seeded): returns (centroids, assignment)."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(z)))
    if k == 1:
        return z.mean(0, keepdims=True), np.zeros(len(z), dtype=np.int64)
    km = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=iters, random_state=seed)
    assign = km.fit_predict(z)
    return km.cluster_centers_.astype(np.float32), assign.astype(np.int64)


def occupancy_quotas(occupancy: np.ndarray, quota: int) -> np.ndarray:
    """Split ``quota`` over codewords proportionally to occupancy, >= 1 each when
    quota >= K, never more than a codeword holds (largest remainder; an empty codeword,
    which k-means leaves on duplicate points, gets none)."""
    k = len(occupancy)
    out = np.zeros(k, dtype=np.int64)
    if quota >= k:
        out[occupancy > 0] = 1
    rest = quota - out.sum()
    while rest > 0:
        room = occupancy - out
        weights = np.where(room > 0, occupancy, 0).astype(np.float64)
        if weights.sum() == 0:
            break
        ideal = weights / weights.sum() * rest
        add = np.minimum(np.floor(ideal).astype(np.int64), room)
        if add.sum() == 0:
            order = np.lexsort((np.arange(k), -(ideal - np.floor(ideal)), room <= 0))
            for j in order[:rest]:
                if room[j] > 0:
                    add[j] += 1
        out += add
        rest = quota - out.sum()
    return out


def window_picks(n: int, m: int, lo: float, hi: float, limit: float = 1.0) -> np.ndarray:
    """``m`` distinct ranks in [0, n) spread evenly over the quantile window [lo, hi); a
    window widened to hold ``m`` ranks never reaches past quantile ``limit`` (the outlier
    tail) unless ``m`` ranks do not fit below it."""
    if m >= n:
        return np.arange(n)
    a, b = int(math.floor(lo * n)), int(math.ceil(hi * n))
    if b - a < m:  # widen the window symmetrically until it holds m ranks
        a = max(0, a - (m - (b - a) + 1) // 2)
        b = min(n, a + m)
        a = b - m  # at the last rank: the m ranks ending there
    top = max(m, int(math.ceil(limit * n)))
    if b > top:  # widened into the tail: slide the window back below it
        a, b = max(0, a - (b - top)), top
    picks = a + np.floor((np.arange(m) + 0.5) * (b - a) / m).astype(np.int64)
    return np.unique(np.clip(picks, a, b - 1))


def spread_over_values(values: np.ndarray, m: int) -> np.ndarray:
    """``m`` positions whose values are nearest ``m`` targets evenly spaced over the values'
    range (each position once): CCS's equal-width coverage of a score, inside one group."""
    lo, hi = float(values.min()), float(values.max())
    targets = lo + (hi - lo) * (np.arange(m) + 0.5) / m
    free = np.ones(len(values), dtype=bool)
    out = np.empty(m, dtype=np.int64)
    for i, t in enumerate(targets):
        gap = np.where(free, np.abs(values - t), np.inf)
        out[i] = int(np.argmin(gap))
        free[out[i]] = False
    return out


@register
class VQMethod(PruningMethod):
    """Vector-quantization coverage selection.

    Parameters
    ----------
    embedding : {"pixels", "random-conv", "cnn"}
    dim : embedding dimension after PCA
    per_codeword : target picks per codeword (codebook size = ceil(quota / per_codeword))
    score_codebook : codewords per class for the exported per-sample scores
    outlier_tail : fraction of each codeword's farthest members never selected
    hard_above : keep fraction from which the 'keep hard' regime applies, or "auto" (from
        the proxy CNN's training error, see the module)
    easy_below : keep fraction up to which the window is the 'keep prototypical' one
    window : width of the distance-rank window (fraction of the non-outlier members)
    within : {"difficulty", "herding", "window", "strata"} how a codeword's picks are chosen
        (see the module)
    hard_cut : None, a fraction in [0, 1) or "auto": each class's hardest (EL2N) dropped first
    """

    name = "vq"
    score_meaning = (
        "prototypicality: rank inside the sample's codeword, higher = nearer the codeword; "
        "the selection is codeword coverage (a hard cut and a difficulty spread at small "
        "keeps, the far window at large ones): not the top of the scores")
    nested = False

    def __init__(self, seed: int = 0, balance: bool = True, embedding: str = "pixels",
                 dim: int = 32, per_codeword: int = 4, score_codebook: int = 32,
                 outlier_tail: float = 0.1, hard_above: float | str = "auto",
                 easy_below: float = 0.1,
                 window: float = 0.6, within: str = "difficulty",
                 hard_cut: float | str | None = "auto"):
        super().__init__(seed=seed, balance=balance)
        if not per_codeword > 0:  # checked here, not at the selection
            raise TinysiftError(f"per_codeword must be > 0, got {per_codeword}")
        check_embedding(embedding)
        self.embedding = embedding
        self.dim = dim
        self.per_codeword = per_codeword
        self.score_codebook = score_codebook
        self.outlier_tail = outlier_tail
        if isinstance(hard_above, str) and hard_above != "auto":
            raise TinysiftError(
                f"hard_above must be a keep fraction or 'auto', got {hard_above!r}")
        # out of range these were silently a meaningless window (outlier_tail 1.5, window 0)
        # or one codeword per class (score_codebook 0)
        if not isinstance(hard_above, str) and not 0.0 <= hard_above <= 1.0:
            raise TinysiftError(f"hard_above must be a keep fraction in [0, 1] or 'auto', got "
                                f"{hard_above}")
        if not 0.0 <= easy_below <= 1.0:
            raise TinysiftError(f"easy_below must be a keep fraction in [0, 1], got {easy_below}")
        if not 0.0 <= outlier_tail < 1.0:
            raise TinysiftError(f"outlier_tail must be a fraction in [0, 1), got {outlier_tail}")
        if not 0.0 < window <= 1.0:
            raise TinysiftError(f"window must be a fraction in (0, 1], got {window}")
        if not is_whole(score_codebook, 1) or not is_whole(dim, 1):
            raise TinysiftError(f"score_codebook and dim must be whole numbers >= 1, got "
                                f"score_codebook={score_codebook}, dim={dim}")
        self.hard_above = hard_above
        self.easy_below = easy_below
        self.window = window
        if within not in WITHIN_RULES:
            raise TinysiftError(f"within must be one of {WITHIN_RULES}, got {within!r}")
        self.within = within
        resolve_hard_cut(hard_cut, 0, 1)  # checks the value now, not at select
        self.hard_cut = hard_cut

    @property
    def needs(self) -> frozenset[str]:  # type: ignore[override]
        uses = (self.embedding == "cnn" or self.hard_cut is not None
                or self.within in EL2N_RULES
                or self.hard_above == "auto")
        return frozenset({"dynamics"}) if uses else frozenset()

    def _fit(self, context) -> np.ndarray:
        z = context.embedding(self.embedding, self.dim)
        self.z_ = z
        # The proxy CNN's EL2N behind the hard cut is read at selections that cut (keep <
        # hard_above), not here: a mild keep never pays for the proxy's training.
        scores = np.zeros(context.num_samples)
        self.distance_ = np.zeros(context.num_samples)
        self.occupancy_ = np.zeros(context.num_samples, dtype=np.int64)
        self.codeword_ = np.zeros(context.num_samples, dtype=np.int64)
        for c in range(context.num_classes):
            idx = context.class_indices(c)
            if len(idx) == 0:
                continue
            cent, assign = kmeans(z[idx], self.score_codebook, self.seed + c)
            dist = np.linalg.norm(z[idx] - cent[assign], axis=1)
            occ = np.bincount(assign, minlength=len(cent))
            self.distance_[idx] = dist
            self.occupancy_[idx] = occ[assign]
            self.codeword_[idx] = assign
            # Relative rank inside the codeword: 1 = nearest (most prototypical).
            rel = np.zeros(len(idx))
            for j in range(len(cent)):
                members = np.flatnonzero(assign == j)
                order = np.argsort(dist[members], kind="stable")
                rel[members[order]] = 1.0 - np.arange(len(members)) / max(1, len(members))
            scores[idx] = rel
        return scores

    @property
    def _fixed_start(self) -> float:
        """The keep-hard regime's start without the proxy: ``hard_above``, or its "auto"
        upper bound."""
        return AUTO_HARD_ABOVE if self.hard_above == "auto" else float(self.hard_above)

    def hard_start(self, count: int) -> float:
        """Keep fraction from which a selection of ``count`` samples keeps hard ones.

        ``"auto"`` reads the proxy CNN's dynamics only where they can move the start below
        ``AUTO_HARD_ABOVE`` (a smaller keep with enough samples per class), and those
        selections cut with the same proxy anyway.
        """
        ctx = self.context_
        if (self.hard_above != "auto" or count >= fraction_count(AUTO_HARD_ABOVE, ctx.num_samples)
                or count < SCARCE_PER_CLASS * ctx.num_classes):
            return self._fixed_start
        error = 1.0 - np.asarray(ctx.dynamics().correct, dtype=np.float64).mean()
        return min(AUTO_HARD_ABOVE, float(error))

    def rank_window(self, keep_fraction: float,
                    hard_above: float | None = None) -> tuple[float, float]:
        """Quantile window of distance ranks (0 = nearest) used at this keep fraction
        (``hard_above``: the regime's start, default the fixed one or ``AUTO_HARD_ABOVE``)."""
        if hard_above is None:
            hard_above = self._fixed_start
        usable = 1.0 - self.outlier_tail
        width = min(self.window, usable)
        if keep_fraction >= hard_above:
            t = 1.0
        elif keep_fraction <= self.easy_below:
            t = 0.0
        else:
            t = (keep_fraction - self.easy_below) / (hard_above - self.easy_below)
        lo = t * (usable - width)
        return lo, lo + width

    def _select(self, count: int) -> np.ndarray:
        ctx = self.context_
        self.hard_start_ = self.hard_start(count)
        # the regime switches on the count the start resolves to (keep 0.1 of 1,345 is 134)
        hard_regime = count >= fraction_count(self.hard_start_, ctx.num_samples)
        keep_fraction = count / ctx.num_samples
        if hard_regime:
            keep_fraction = max(keep_fraction, self.hard_start_)
        lo, hi = self.rank_window(keep_fraction, self.hard_start_)
        self.window_ = (lo, hi)
        self.coverage_: dict[int, tuple[int, int]] = {}

        # 'Keep hard' regime (keep >= hard_start_): the far window on the whole class, no cut
        # and no herding, whatever ``within`` and ``hard_cut`` say for smaller budgets.
        self.regime_ = "hard" if hard_regime else "typical"
        beta = 0.0 if hard_regime else resolve_hard_cut(self.hard_cut, count, ctx.num_samples)
        within = "window" if hard_regime else self.within
        if within == "difficulty" and count < SCARCE_PER_CLASS * ctx.num_classes:
            within = "herding"  # scarce: typical picks teach a class best (Sorscher et al.)
        self.within_ = within
        tiebreak = np.random.default_rng(self.seed).permutation(ctx.num_samples)
        # Read from the context at every selection that cuts (the proxy is trained at the
        # first, then cached there), so each such selection is seen to use it and is charged.
        hardness = difficulty(ctx, "el2n") if beta > 0 or within in EL2N_RULES else None

        def chooser(idx: np.ndarray, quota: int) -> np.ndarray:
            if beta > 0:
                idx = idx[cut_hardest(hardness[idx], beta, quota, tiebreak[idx])]
            if within != "strata":
                return self._choose_in_class(idx, quota, lo, hi, within, hardness)
            # CCS's difficulty strata, each filled by codeword coverage instead of at random
            bins = strata(hardness[idx], STRATA_BINS)
            budgets = allocate(quota, np.bincount(bins, minlength=STRATA_BINS))
            return np.sort(np.concatenate([
                self._choose_in_class(idx[bins == b], int(budgets[b]), lo, hi, "herding")
                for b in np.flatnonzero(budgets)]))

        return self._per_class(count, chooser)

    def _choose_in_class(self, idx: np.ndarray, quota: int, lo: float, hi: float,
                         within: str, hardness: np.ndarray | None = None) -> np.ndarray:
        if quota >= len(idx):
            return idx
        z = self.z_[idx]
        k = max(1, math.ceil(quota / self.per_codeword))
        cent, assign = kmeans(z, k, self.seed + int(idx[0]) % 9973)
        dist = np.linalg.norm(z - cent[assign], axis=1)
        occ = np.bincount(assign, minlength=len(cent))
        quotas = occupancy_quotas(occ, quota)
        chosen = []
        for j in range(len(cent)):
            if quotas[j] == 0:
                continue
            members = np.flatnonzero(assign == j)
            order = members[np.argsort(dist[members], kind="stable")]
            if within == "herding":
                chosen.append(self._herd(z, order, int(quotas[j])))
                continue
            if within == "difficulty":
                usable = self._inliers(order, int(quotas[j]))
                hard = hardness[idx[usable]]
                chosen.append(usable[spread_over_values(hard, int(quotas[j]))])
                continue
            ranks = window_picks(len(order), int(quotas[j]), lo, hi, 1.0 - self.outlier_tail)
            chosen.append(order[ranks])
        picked = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
        # (codewords, codewords represented) of this class, for inspection and tests
        self.coverage_[int(self.context_.y[idx[0]])] = (
            len(cent), len(np.unique(assign[picked])))
        if len(picked) < quota:  # rounding in tiny codewords: fill by prototypicality
            rest = np.setdiff1d(np.arange(len(idx)), picked)
            extra = rest[np.argsort(-self.scores_[idx[rest]], kind="stable")]
            picked = np.concatenate([picked, extra[:quota - len(picked)]])
        return idx[np.sort(picked[:quota])]

    def _herd(self, z: np.ndarray, order: np.ndarray, m: int) -> np.ndarray:
        """``m`` of a codeword's members (``order``: by distance) by herding towards the
        mean of its non-outlier members (the outlier tail only when ``m`` needs it)."""
        from tinysift.selection.methods.herding import herding_order

        usable = self._inliers(order, m)
        return usable[herding_order(z[usable], m)]

    def _inliers(self, order: np.ndarray, m: int) -> np.ndarray:
        """A codeword's members (``order``: by distance) without its outlier tail, reaching
        into the tail only when ``m`` picks need it."""
        return order[:max(m, math.ceil((1.0 - self.outlier_tail) * len(order)))]
