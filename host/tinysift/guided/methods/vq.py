"""``vq``: each epoch, a stratified importance sample over a per-class codebook of the features
the model computes while it trains.

1. **Warm-up**: random epochs of samples not trained yet, until every sample has been
   trained once, so every sample has a loss and features (no extra pass).
2. **Codebook** (refit every ``refresh`` epochs, charged to the budget): the cached features
   are PCA-reduced to ``dim``, and every class gets a k-means codebook of
   ``ceil(n_c / per_code)`` codewords.
3. **Guided epochs** of ``budget x N`` samples. Inside a class, codeword ``j`` (``m_j``
   members, mean recent loss ``L_j``) gets a quota proportional to ``m_j^alpha * L_j^beta``
   (capped at ``m_j``): dense regions keep their share, regions the model still gets wrong
   get more. Classes get theirs by the rule with ``class_beta`` over their sizes and mean
   losses; the default 0 keeps every class's share of the data, so an unweighted epoch does
   not shift the class prior the model learns towards the hard classes (with the codewords'
   ``beta`` instead it lost a point on Fashion-MNIST's validation split).
   Inside a codeword the ``keep_hard`` share of its quota goes to its highest-priority
   members (the highest recent loss), the rest is drawn at random from the other members.
   ``weighting="unbiased"`` upweights those by ``(m_j - h) / (q_j - h)`` so every
   codeword's weights sum to its mass (the epoch's weighted loss is then an unbiased
   estimate of the full-data loss); ``"mass"`` uses ``m_j / q_j`` for all; ``"none"`` keeps
   weight 1, so the epoch leans on the hard regions.
4. **Final epochs on all the data** for the last ``final_full`` of the budget, the learning
   rate going to zero (as InfoBatch's annealing).
"""

from __future__ import annotations

import math

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.guided.base import EpochPlan, EpochSampler, TrainingState, register
from tinysift.params import is_whole

WEIGHTINGS = ("unbiased", "none", "mass")
EMBEDDINGS = ("model", "pixels")


def allocate(weights: np.ndarray, caps: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``min(total, caps.sum())``, proportional to ``weights``, each at
    most its cap: largest remainder (Hamilton) on the ideal shares. What a capped entry
    cannot take goes first one each to the entries with room, largest remainder first (a
    remainder of 0 included, ties in index order), and only what is still left is shared
    again in proportion: ``[1, 2, 2, 4]`` capped at ``[6, 9, 9, 6]`` share 18 as
    ``[3, 5, 4, 6]``, not ``[2, 5, 5, 6]``. At most one unit per entry off the proportional
    share; kept as it is because the committed vq rows were drawn with it."""
    weights = np.maximum(np.asarray(weights, np.float64), 0.0)
    caps = np.asarray(caps, np.int64)
    total = int(min(total, caps.sum()))
    out = np.zeros(len(caps), np.int64)
    while True:
        rest = total - int(out.sum())
        room = caps - out
        open_ = room > 0
        if rest <= 0 or not open_.any():
            return out
        w = np.where(open_, weights, 0.0)
        if w.sum() <= 0:
            w = open_.astype(np.float64)
        ideal = w / w.sum() * rest
        add = np.minimum(np.floor(ideal).astype(np.int64), room)
        frac = np.where(room - add > 0, ideal - add, -1.0)
        for j in np.argsort(-frac, kind="stable")[:rest - int(add.sum())]:
            if frac[j] >= 0:
                add[j] += 1
        out += add


@register
class VQGuided(EpochSampler):
    """Codebook-stratified, loss-guided epochs (see the module docstring).

    Parameters
    ----------
    per_code : members per codeword (the codebook size per class is ``ceil(n_c / per_code)``)
    alpha : exponent of a codeword's mass in its quota (1: density-preserving)
    beta : exponent of a codeword's mean recent loss in its quota (0: loss-blind)
    class_beta : the same exponent for the classes' quotas (0: the classes' shares of the data)
    keep_hard : share of a codeword's quota given to its highest-loss members
    weighting : ``unbiased``, ``none`` or ``mass`` (see the module docstring)
    refresh : epochs between codebook refits
    dim : PCA dimension of the features the codebook is fit on
    final_full : last share of the budget trained on all the (non-dropped) data
    embedding : ``model`` (the features cached during training) or ``pixels`` (a fixed PCA of
        the images, fit once)
    """

    name = "vq"

    def __init__(self, seed: int = 0, per_code: int = 50, alpha: float = 1.0,
                 beta: float = 1.0, keep_hard: float = 0.5, weighting: str = "none",
                 refresh: int = 2, dim: int = 16, final_full: float = 0.125,
                 embedding: str = "model", class_beta: float = 0.0):
        super().__init__(seed)
        if weighting not in WEIGHTINGS:
            raise TinysiftError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if embedding not in EMBEDDINGS:
            raise TinysiftError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
        if not 0.0 <= keep_hard <= 1.0 or not 0.0 <= final_full < 1.0 \
                or not is_whole(per_code, 1):
            raise TinysiftError(f"need 0 <= keep_hard <= 1, 0 <= final_full < 1 and per_code a "
                                f"whole number >= 1, got keep_hard={keep_hard!r}, "
                                f"final_full={final_full!r}, per_code={per_code!r}")
        if not is_whole(dim, 1):  # 0 failed after training; -3 kept all but 3
            raise TinysiftError(f"dim must be a positive PCA dimension, got {dim}")
        if not is_whole(refresh, 1):  # 0 or less refit the codebook every epoch unsaid
            raise TinysiftError(f"refresh must be a whole number of epochs >= 1, got "
                                f"{refresh!r}")
        bad = {k: v for k, v in (("alpha", alpha), ("beta", beta), ("class_beta", class_beta))
               if not math.isfinite(v)}
        if bad:  # a NaN exponent made every quota NaN, cast to garbage counts
            raise TinysiftError(f"alpha, beta and class_beta must be finite numbers, got "
                                f"{', '.join(f'{k}={v!r}' for k, v in bad.items())}")
        self.per_code = per_code
        self.alpha = alpha
        self.beta = beta
        self.class_beta = class_beta
        self.keep_hard = keep_hard
        self.weighting = weighting
        self.refresh = refresh
        self.dim = dim
        self.final_full = final_full
        self.embedding = embedding

    # -- the phases ------------------------------------------------------------------------
    def begin(self, state: TrainingState) -> None:
        self.dropped_ = np.zeros(state.num_samples, bool)
        self.fitted_epoch_ = None
        self.codes_: list[tuple[np.ndarray, np.ndarray]] = []
        self.rng_ = np.random.default_rng(self.seed)
        if self.embedding == "pixels":
            with state.ledger.fit("pixel-pca"):
                self.pixel_z_ = pixel_pca(state.x, self.dim, self.seed)

    def plan(self, state: TrainingState) -> EpochPlan:
        pending = (state.seen_epoch < 0) & ~self.dropped_
        if pending.any():
            # Samples not trained yet first (the warm-up ends after one pass over the data
            # not already dropped: all of it, unless a subclass judged samples in begin()),
            # topped up with random seen ones in the epoch that completes the pass.
            unseen = state.rng.permutation(np.flatnonzero(pending))
            pick = unseen[:state.epoch_size]
            if len(pick) < state.epoch_size:
                seen = np.flatnonzero((state.seen_epoch >= 0) & ~self.dropped_)
                fill = state.rng.choice(seen, size=min(len(seen), state.epoch_size - len(pick)),
                                        replace=False)
                pick = np.concatenate([pick, fill])
            return EpochPlan(pick, note="warm-up")
        keep = np.flatnonzero(~self.dropped_)
        if state.ledger.progress >= 1.0 - self.final_full:
            return EpochPlan(keep, note="final: all kept data")
        if self.fitted_epoch_ is None or state.epoch - self.fitted_epoch_ >= self.refresh:
            with state.ledger.fit("codebook"):
                self._fit_codebook(state)
            self.fitted_epoch_ = state.epoch
        idx, w = self._guided_epoch(state)
        return EpochPlan(idx, w, note=f"guided ({int(self.dropped_.sum())} dropped)")

    # -- pieces ----------------------------------------------------------------------------
    def embedding_of(self, state: TrainingState) -> np.ndarray:
        if self.embedding == "pixels":
            return self.pixel_z_
        return _pca(state.features, self.dim, self.seed)

    def priority(self, state: TrainingState) -> np.ndarray:
        """Within-codeword order, higher = kept first (here the recent loss)."""
        return np.nan_to_num(state.loss.astype(np.float64), nan=np.inf)

    def _fit_codebook(self, state: TrainingState) -> None:
        self.z_ = self.embedding_of(state)
        self.before_codebook(state)
        self.codes_ = []
        for c in range(state.num_classes):
            idx = np.flatnonzero((state.y == c) & ~self.dropped_)
            if len(idx) == 0:
                self.codes_.append((idx, np.zeros(0, np.int64)))
                continue
            k = max(1, math.ceil(len(idx) / self.per_code))
            _, assign = lloyd_kmeans(self.z_[idx], k, self.seed + 7919 * c + state.epoch)
            self.codes_.append((idx, assign))

    def before_codebook(self, state: TrainingState) -> None:
        """Hook run at every refit, before the codebook (the flow method drops mislabels)."""

    def _guided_epoch(self, state: TrainingState) -> tuple[np.ndarray, np.ndarray]:
        loss = np.nan_to_num(state.loss.astype(np.float64), nan=float(np.nanmean(state.loss)))
        sizes = np.array([len(idx) for idx, _ in self.codes_])
        # Classes get quotas by the codewords' rule: mass^alpha * mean loss^class_beta.
        class_loss = np.array([loss[idx].mean() if len(idx) else 0.0 for idx, _ in self.codes_])
        class_quota = allocate(sizes.astype(np.float64) ** self.alpha
                               * np.maximum(class_loss, 1e-6) ** self.class_beta, sizes,
                               state.epoch_size)
        prio = self.priority(state)
        picked, weights = [], []
        for (idx, assign), quota in zip(self.codes_, class_quota, strict=True):
            if quota == 0:
                continue
            k = int(assign.max()) + 1
            mass = np.bincount(assign, minlength=k)
            code_loss = np.bincount(assign, weights=loss[idx], minlength=k) / np.maximum(mass, 1)
            score = mass.astype(np.float64) ** self.alpha * np.maximum(code_loss,
                                                                       1e-6) ** self.beta
            quotas = allocate(score, mass, int(quota))
            order = np.argsort(assign, kind="stable")
            starts = np.concatenate([[0], np.cumsum(mass)])
            for j in np.flatnonzero(quotas):
                members = idx[order[starts[j]:starts[j + 1]]]
                p, w = self._within(members, int(quotas[j]), prio)
                picked.append(p)
                weights.append(w)
        return np.concatenate(picked), np.concatenate(weights).astype(np.float32)

    def _within(self, members: np.ndarray, q: int, prio: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        m = len(members)
        if q >= m:
            return members, np.ones(m)
        h = int(round(self.keep_hard * q))
        by_prio = members[np.argsort(-prio[members], kind="stable")]
        hard, rest = by_prio[:h], by_prio[h:]
        rand = self.rng_.choice(rest, size=q - h, replace=False) if q > h else rest[:0]
        if self.weighting == "unbiased":
            w_rand = (m - h) / max(1, q - h)
            w = np.concatenate([np.ones(h), np.full(q - h, w_rand)])
        elif self.weighting == "mass":
            w = np.full(q, m / q)
        else:
            w = np.ones(q)
        return np.concatenate([hard, rand]), w


def pixel_pca(x: np.ndarray, dim: int, seed: int, chunk: int = 4096) -> np.ndarray:
    """The uint8 images scaled to [0, 1], flattened, on their top ``dim`` principal axes.

    The covariance and the projection run over ``chunk`` images at a time: a float copy of
    all 60,000 images (188 MB, then as much again centred) cost 6-8 s of first-touch page
    faults on the benchmark machine (a Firecracker VM), 10x the arithmetic, and a fit's
    seconds are charged to a guided run's budget."""
    flat = x.reshape(len(x), -1)
    n, d = flat.shape
    if dim >= d:
        return _pca(flat.astype(np.float32) / 255.0, dim, seed)
    mean = (flat.mean(0, dtype=np.float64) / 255.0).astype(np.float32)
    cov = np.zeros((d, d))
    for s in range(0, n, chunk):
        zc = flat[s:s + chunk].astype(np.float32) / 255.0 - mean
        cov += zc.T @ zc
    _, vecs = np.linalg.eigh(cov / max(1, n - 1))
    axes = vecs[:, ::-1][:, :dim].astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        out[s:s + chunk] = (flat[s:s + chunk].astype(np.float32) / 255.0 - mean) @ axes
    return out


def _pca(z: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Projection on the top ``dim`` principal axes (eigendecomposition of the D x D
    covariance: exact, and cheap for the model's 64-dim features; ``seed`` unused)."""
    z = np.asarray(z, np.float32)
    zc = z - z.mean(0)
    if dim >= z.shape[1]:
        return zc
    cov = (zc.T @ zc) / max(1, len(z) - 1)
    _, vecs = np.linalg.eigh(cov.astype(np.float64))
    return zc @ vecs[:, ::-1][:, :dim].astype(np.float32)


def lloyd_kmeans(z: np.ndarray, k: int, seed: int, iters: int = 10
                 ) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding then ``iters`` Lloyd steps, in numpy (a codebook refit is charged
    to the training budget, so it must be cheap: about 10 ms for 5,000 x 16, k = 100)."""
    z = np.asarray(z, np.float32)
    n = len(z)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    sq = (z * z).sum(1)
    cent = np.empty((k, z.shape[1]), np.float32)
    cent[0] = z[rng.integers(n)]
    d2 = np.maximum(sq - 2 * z @ cent[0] + cent[0] @ cent[0], 0)
    for j in range(1, k):
        cdf = np.cumsum(d2, dtype=np.float64)
        pick = (int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
                if cdf[-1] > 0 else int(rng.integers(n)))
        cent[j] = z[min(pick, n - 1)]
        d2 = np.minimum(d2, np.maximum(sq - 2 * z @ cent[j] + cent[j] @ cent[j], 0))
    for _ in range(iters):
        assign = np.argmin(sq[:, None] - 2 * z @ cent.T + (cent * cent).sum(1)[None, :], 1)
        counts = np.bincount(assign, minlength=k)
        sums = np.stack([np.bincount(assign, weights=z[:, j], minlength=k)
                         for j in range(z.shape[1])], axis=1)
        full = counts > 0
        cent[full] = sums[full] / counts[full, None]
    assign = np.argmin(sq[:, None] - 2 * z @ cent.T + (cent * cent).sum(1)[None, :], 1)
    return cent, assign.astype(np.int64)
