"""Flow: per-class normalizing-flow densities plus training uncertainty.

Scoring
-------
RealNVP flows per class (:mod:`tinysift.scoring.flows`, cross-fitted so a sample is
scored by flows that never saw it) model two views of the data, each as a flow on the top-d
principal components (for pixels, times an isotropic Gaussian on the residual):

* the proxy CNN's features (``embedding="cnn"``): semantic, where mislabeled samples
  stand out;
* the pixels (``pixel_embedding="pixels"``): where corrupted or foreign images stand out.

Four detectors, each a within-class percentile rank (higher = more trustworthy):

* ``density``: log-likelihood under the labelled class's feature flow;
* ``pixel density``: log-likelihood under the labelled class's pixel density;
* ``agreement``: the feature flows' posterior log p(label | x) = ll_label -
  logsumexp_c(ll_c + log prior_c) + log prior_label (a generative classifier's vote);
* ``certainty``: minus the proxy CNN's EL2N, averaged over its measurements (Paul et al.
  2021): the uncertainty term.

``scores_`` (higher = keep first) is the *minimum* of the four ranks: a sample that any
detector finds atypical is suspect. All four carry equal weight; ranks make them
commensurable and robust to the heavy tails of log-likelihoods. Outliers and mislabeled
samples get the lowest scores of their class.

Selection
---------
1. Hard cut: the lowest-scoring samples of each class go first. The cut is the estimated
   mislabeled fraction (samples whose label both the feature flows and the proxy CNN, in at
   least half of its measurements, reject)
   times ``cut_margin``, clipped to [``min_cut``, ``max_cut``] and never more than the
   budget allows.
2. Coverage of the rest, where very dense means redundant: the remaining samples are
   stratified into ``bins`` equal-width bins of feature log-density and the budget is spread
   over the bins smallest-bin-first (the allocation of Zheng et al. 2023), randomly (seeded)
   inside a bin. Dense regions give up samples before sparse-but-clean ones do.
"""

from __future__ import annotations

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.params import is_whole
from tinysift.progress import progress_bar
from tinysift.scoring.density import log_sum_exp
from tinysift.scoring.embeddings import check_embedding
from tinysift.scoring.flows import ClassFlows, FlowConfig
from tinysift.selection.base import PruningMethod, register


def rank_within(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Within-class percentile rank in [0, 1) (ties broken by index, stable)."""
    out = np.zeros(len(values), dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        order = np.argsort(values[idx], kind="stable")
        out[idx[order]] = np.arange(len(idx)) / len(idx)
    return out


def stratified_pick(scores: np.ndarray, quota: int, bins: int, rng) -> np.ndarray:
    """Indices into ``scores``: ``quota`` picks spread over equal-width score strata,
    smallest stratum first (the CCS allocation), random inside a stratum."""
    n = len(scores)
    if quota >= n:
        return np.arange(n)
    lo, hi = scores.min(), scores.max()
    edges = np.linspace(lo, hi, bins + 1)
    which = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    strata = [np.flatnonzero(which == b) for b in range(bins)]
    strata = [s for s in strata if len(s)]
    chosen = []
    remaining = quota
    for i, s in enumerate(sorted(strata, key=len)):
        share = remaining // (len(strata) - i)
        take = min(len(s), share)
        chosen.append(rng.choice(s, size=take, replace=False) if take < len(s) else s)
        remaining -= take
    return np.concatenate(chosen)


#: Largest embedding dimension a flow is fit in (a larger ``dim`` is capped to it).
MAX_DIM = 64

#: Fewest training samples a class's flow may have: the dimension cap's 10 samples per
#: dimension at the smallest dimension a flow has (2). A class whose training fold is smaller
#: gets :func:`gaussian_log_prob` and does not cap the other classes' dimension. (Digits'
#: smallest class, 139 samples, has 69 in a fold of the default 2.)
MIN_FLOW_TRAIN = 20


def _train_share(folds: int) -> float:
    """Share of a class a cross-fitted flow trains on (all of it without cross-fitting)."""
    return (folds - 1) / folds if folds > 1 else 1.0


def gaussian_log_prob(z: np.ndarray, y: np.ndarray, classes: np.ndarray,
                      num_classes: int) -> np.ndarray:
    """Log-density of every row of ``z`` under a diagonal Gaussian per class in ``classes``.

    For classes too small for a flow: the mean is the class's own (all its samples, no
    held-out fold: a class of one sample has none to spare), the variance the within-class
    variance pooled over every class with at least two samples (a class of a few samples
    cannot estimate its own; the shared covariance is LDA's rule), or the data's variance when
    no class has two.

    Parameters
    ----------
    z : (N, d) embedding
    y : (N,) labels
    classes : the classes to model
    num_classes : K

    Returns
    -------
    np.ndarray
        (N, len(classes)) float64 log-densities, finite.
    """
    z = np.asarray(z, np.float64)
    counts = np.bincount(y, minlength=num_classes)
    means = np.zeros((num_classes, z.shape[1]))
    np.add.at(means, y, z)
    means /= np.maximum(counts, 1)[:, None]
    pooled = counts[y] > 1
    dev = z[pooled] - means[y[pooled]] if pooled.any() else z - z.mean(0)
    var = np.maximum((dev ** 2).mean(0), 1e-6)
    out = np.empty((len(z), len(classes)))
    norm = -0.5 * np.log(2 * np.pi * var).sum()
    for j, c in enumerate(classes):
        out[:, j] = norm - 0.5 * (((z - means[c]) ** 2) / var).sum(1)
    return out


@register
class FlowMethod(PruningMethod):
    """Normalizing-flow densities + uncertainty: hard cut, then density-stratified coverage.

    Parameters
    ----------
    embedding : embedding of the semantic flows (``cnn``, ``pixels``, ``random-conv``)
    pixel_embedding : embedding of the second density (None: only ``embedding``)
    dim : embedding dimension (capped at MAX_DIM, 64)
    min_cut, max_cut, cut_margin : bounds and margin of the adaptive hard cut
    bins : strata for the coverage selection
    folds : cross-fitting folds (a sample is scored by flows that never saw it)
    flow : FlowConfig of the per-class flows
    """

    name = "flow"
    score_meaning = (
        "trust: the minimum of four within-class ranks (feature density, pixel density, "
        "label agreement, certainty), higher = more trustworthy; the selection drops each "
        "class's lowest, then samples the rest over feature-density strata at random: not "
        "the top of the scores")
    nested = False
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, embedding: str = "cnn",
                 pixel_embedding: str | None = "pixels", dim: int = 32, min_cut: float = 0.1,
                 max_cut: float = 0.5, cut_margin: float = 1.1, bins: int = 50,
                 folds: int = 2, flow: FlowConfig | dict | None = None):
        super().__init__(seed=seed, balance=balance)
        # checked here, not after the proxy CNN and the flows have trained
        if not is_whole(folds, 1) or not is_whole(bins, 1):
            raise TinysiftError(f"folds and bins must be whole numbers >= 1, got folds={folds}, "
                                f"bins={bins}")
        if not is_whole(dim, 2):  # 0 was a PCA error, 1 a FitError blaming 1x1 images, both after
            # the proxy CNN had trained: a flow's coupling layers need two dimensions
            raise TinysiftError(f"dim must be at least 2 (a flow needs 2 dimensions), got {dim}")
        if not 0.0 <= min_cut <= max_cut < 1.0:
            raise TinysiftError(f"need 0 <= min_cut <= max_cut < 1, got min_cut={min_cut}, "
                                f"max_cut={max_cut}")
        check_embedding(embedding)
        check_embedding(pixel_embedding, "pixel_embedding", allow_none=True)
        self.embedding = embedding
        self.pixel_embedding = pixel_embedding
        self.dim = dim  # as passed (get_params); capped at MAX_DIM where used
        self.min_cut = min_cut
        self.max_cut = max_cut
        self.cut_margin = cut_margin
        self.bins = bins
        self.folds = folds
        self.flow = FlowConfig(**flow) if isinstance(flow, dict) else (flow or FlowConfig())

    def _class_log_prob(self, context, kind: str) -> np.ndarray:
        """Out-of-fold log-density of every sample under every class, (N, K).

        A flow on the top-d principal components; for pixels, times an isotropic Gaussian on
        the residual (probabilistic-PCA style), so an image that is unusual only outside
        the top components (noise, corruption) still gets a low likelihood. (On the CNN
        features the residual term drowned the class signal, so it is left out there.)"""
        from sklearn.decomposition import PCA

        y, k = context.y, context.num_classes
        if kind == "pixels":
            raw = context.x.reshape(len(y), -1).astype(np.float32) / 255.0
        else:
            raw = context.embedding(kind, min(self.dim, MAX_DIM))
        # A flow on n samples in d dimensions memorizes when d is large for n: cap d by the
        # smallest class's training fold (about 10 samples per dimension). Only the classes
        # present count: a replay set over old classes has none of the new ones. Nor do the
        # classes too small for any flow (below MIN_FLOW_TRAIN): one such class would set
        # every class's flow to 2 dimensions; they get a Gaussian instead.
        counts = np.bincount(y, minlength=k)
        small = (counts > 0) & (counts * _train_share(self.folds) < MIN_FLOW_TRAIN)
        sized = counts[(counts > 0) & ~small]
        smallest = int(sized.min()) if len(sized) else 0
        # (without cross-fitting, folds=1, a flow trains on its whole class)
        fold_size = smallest * (self.folds - 1) / self.folds if self.folds > 1 else smallest
        d = int(np.clip(fold_size / 10, 2, min(self.dim, MAX_DIM, raw.shape[1])))
        pca = PCA(n_components=d, svd_solver="randomized", random_state=self.seed)
        z = pca.fit_transform(raw).astype(np.float32)
        resid = ((raw - pca.inverse_transform(z)) ** 2).sum(1).astype(np.float64)
        self.flow_dims_[kind] = d
        if len(sized):
            # Small classes' samples are left out of the flows (label -1: no flow trains on
            # them, and their flows, with no data, are masked).
            y_flow = np.where(small[y], -1, y)
            with progress_bar(getattr(context, "progress", False), self.flow.steps,
                              f"flow fit ({kind}, {k * self.folds} flows)", "steps") as bar:
                flows = ClassFlows(self.flow, seed=self.seed).fit(
                    z, y_flow, k, folds=self.folds, progress=lambda s, n: bar.update(s, total=n))
            ll = flows.log_prob(z, flows.fold_)
        else:  # every class is small: nothing for a flow to learn
            ll = np.full((len(y), k), -np.inf)
        if small.any():
            ll[:, small] = gaussian_log_prob(z, y, np.flatnonzero(small), k)
        self.small_classes_ = np.flatnonzero(small)
        extra = raw.shape[1] - d
        if kind == "pixels" and extra > 0:
            # Residual variance per class (from its samples), sigma^2 = mean residual / extra.
            for c in np.flatnonzero(counts):
                var = max(resid[y == c].mean() / extra, 1e-12)
                ll[:, c] += -0.5 * resid / var - 0.5 * extra * np.log(2 * np.pi * var)
        return ll

    def _fit(self, context) -> np.ndarray:
        y = context.y
        dyn = context.dynamics()
        self.flow_dims_: dict[str, int] = {}
        ll = self._class_log_prob(context, self.embedding)
        rows = np.arange(len(y))
        self.log_likelihood_ = ll[rows, y]
        density = rank_within(self.log_likelihood_, y)
        components = {"density": density}
        if self.pixel_embedding and self.pixel_embedding != self.embedding:
            ll_pix = self._class_log_prob(context, self.pixel_embedding)
            self.pixel_log_likelihood_ = ll_pix[rows, y]
            components["pixel density"] = rank_within(self.pixel_log_likelihood_, y)
        prior = np.log(np.bincount(y, minlength=context.num_classes) / len(y) + 1e-12)
        joint = ll + prior
        self.agreement_ = joint[rows, y] - log_sum_exp(joint)
        components["agreement"] = rank_within(self.agreement_, y)
        el2n = dyn.el2n.mean(0).astype(np.float64)
        components["certainty"] = rank_within(-el2n, y)
        self.components_ = components
        # Trust = the weakest evidence: a sample any detector finds atypical is suspect.
        scores = np.minimum.reduce(list(components.values()))
        # Samples whose label both the flows and the proxy CNN reject: likely mislabeled.
        # The proxy rejects a label it got wrong in at least half of its measurements (a
        # network memorizes noisy labels late in training, so the last one alone is blind).
        proxy_rejects = dyn.correct.mean(0) <= 0.5
        flow_rejects = joint.argmax(1) != y
        self.suspect_fraction_ = float(np.mean(proxy_rejects & flow_rejects))
        return scores

    def cut_fraction(self, keep_fraction: float) -> float:
        cut = np.clip(self.suspect_fraction_ * self.cut_margin, self.min_cut, self.max_cut)
        return float(min(cut, 1.0 - keep_fraction))

    def _select(self, count: int) -> np.ndarray:
        ctx = self.context_
        cut = self.cut_fraction(count / ctx.num_samples)
        self.cut_ = cut
        rng = np.random.default_rng(self.seed)

        def chooser(idx: np.ndarray, quota: int) -> np.ndarray:
            order = idx[np.argsort(-self.scores_[idx], kind="stable")]
            pool = order[:max(quota, int(round(len(idx) * (1.0 - cut))))]
            picks = stratified_pick(self.log_likelihood_[pool], quota, self.bins, rng)
            return pool[picks]

        return self._per_class(count, chooser)
