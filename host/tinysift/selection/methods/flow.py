"""Flow: per-class normalizing-flow density plus training uncertainty.

Scoring
-------
A RealNVP flow per class (:mod:`tinysift.density.realnvp`) is fit on a reduced embedding
(<= 64 dimensions; default the proxy CNN's features, PCA to 32). For every sample:

* ``density``: its log-likelihood under its own class's flow, standardized within the class;
* ``agreement``: the flows' posterior log p(label | x) = ll_label - logsumexp_c(ll_c + log
  prior_c) + log prior_label (a generative classifier's vote for the given label);
* ``uncertainty``: EL2N of the proxy CNN averaged over its epochs (Paul et al. 2021).

The combined score (higher = keep first) is
``(1 - w) * (density_z + agreement_z) / 2 - w * el2n_z`` with ``w = uncertainty_weight``
(default 0.5): half from the learned density, half from training dynamics. Outliers and
mislabeled samples have low density under their labelled class, low agreement and high
EL2N, so they get the lowest scores of their class.

Selection
---------
1. Hard cut: the lowest-scoring samples of each class are removed first. The cut is the
   estimated mislabeled fraction (samples whose label both the flows and the proxy CNN
   reject), times ``cut_margin``, clipped to [``min_cut``, ``max_cut``] and never more than
   the budget allows.
2. Coverage of the rest (very dense = redundant goes next): the remaining score range is cut
   into ``bins`` equal-width strata and the budget is spread over them smallest-stratum-
   first (Zheng et al. 2023), randomly (seeded) inside a stratum. Dense regions therefore
   give up samples before sparse-but-clean ones do.
"""

from __future__ import annotations

import numpy as np

from tinysift.density.realnvp import ClassFlows, FlowConfig
from tinysift.selection.base import PruningMethod, register


def zscore_within(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = np.zeros_like(values, dtype=np.float64)
    for c in np.unique(labels):
        m = labels == c
        v = values[m]
        out[m] = (v - v.mean()) / (v.std() + 1e-12)
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


@register
class FlowMethod(PruningMethod):
    """Normalizing-flow density + uncertainty, hard cut then stratified coverage.

    Parameters
    ----------
    embedding : embedding kind the flows are fit on (``cnn``, ``pixels``, ``random-conv``)
    dim : embedding dimension (<= 64)
    uncertainty_weight : weight w of the EL2N term in the combined score
    min_cut, max_cut, cut_margin : bounds and margin of the adaptive hard cut
    bins : strata for the coverage selection
    folds : cross-fitting folds (a sample is scored by flows that never saw it)
    flow : FlowConfig of the per-class flows
    """

    name = "flow"
    needs = frozenset({"dynamics"})

    def __init__(self, seed: int = 0, balance: bool = True, embedding: str = "cnn",
                 dim: int = 32, uncertainty_weight: float = 0.5, min_cut: float = 0.02,
                 max_cut: float = 0.5, cut_margin: float = 1.1, bins: int = 50,
                 folds: int = 2, flow: FlowConfig | None = None):
        super().__init__(seed=seed, balance=balance)
        self.embedding = embedding
        self.dim = min(dim, 64)
        self.uncertainty_weight = uncertainty_weight
        self.min_cut = min_cut
        self.max_cut = max_cut
        self.cut_margin = cut_margin
        self.bins = bins
        self.folds = folds
        self.flow = flow or FlowConfig()

    def _fit(self, context) -> np.ndarray:
        y = context.y
        z = context.embedding(self.embedding, self.dim)
        dyn = context.dynamics()
        # A flow on n samples in d dimensions memorizes when d is large for n: cap d by the
        # smallest class's training fold (about 10 samples per dimension).
        smallest = int(np.bincount(y, minlength=context.num_classes).min())
        d = int(np.clip(smallest * (self.folds - 1) / self.folds / 10, 2, z.shape[1]))
        z = z[:, :d]
        self.flow_dim_ = d
        self.flows_ = ClassFlows(self.flow, seed=self.seed).fit(z, y, context.num_classes,
                                                                 folds=self.folds)
        ll = self.flows_.log_prob(z, self.flows_.fold_)  # (N, K), out-of-fold
        prior = np.log(np.bincount(y, minlength=context.num_classes) / len(y) + 1e-12)
        joint = ll + prior
        mx = joint.max(1, keepdims=True)
        log_evidence = (mx + np.log(np.exp(joint - mx).sum(1, keepdims=True)))[:, 0]
        rows = np.arange(len(y))
        self.log_likelihood_ = ll[rows, y]
        self.agreement_ = joint[rows, y] - log_evidence
        el2n = dyn.el2n.mean(0).astype(np.float64)
        w = self.uncertainty_weight
        density_part = 0.5 * (zscore_within(self.log_likelihood_, y)
                              + zscore_within(np.maximum(self.agreement_, -50.0), y))
        scores = (1 - w) * density_part - w * zscore_within(el2n, y)
        # Samples whose label both the flows and the proxy CNN reject: likely mislabeled.
        proxy_pred = dyn.correct[-1]
        flow_pred = joint.argmax(1) == y
        self.suspect_fraction_ = float(np.mean(~proxy_pred & ~flow_pred))
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
            s = self.scores_[idx]
            order = idx[np.argsort(-s, kind="stable")]
            n_keep = max(quota, int(round(len(idx) * (1.0 - cut))))
            pool = order[:n_keep]
            picks = stratified_pick(self.scores_[pool], quota, self.bins, rng)
            return pool[picks]

        return self._per_class(count, chooser)
