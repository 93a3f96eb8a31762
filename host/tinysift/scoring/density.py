"""Class-conditional densities over an embedding, behind one interface: ``fit(z, y, K)`` then
``log_prob(z) -> (N, K)``, the log-density of every sample under every class.

* ``flow``: per-class RealNVP flows (:mod:`tinysift.scoring.flows`);
* ``gmm``: a per-class Gaussian mixture (scikit-learn, diagonal covariances);
* ``knn``: a per-class k-nearest-neighbour density, ``p(z|c) = k / (n_c V_d r_k(z, c)^d)``
  (Loftsgaarden & Quesenberry 1965), up to the constant ``k / V_d`` shared by all classes.

From these, :func:`label_posterior` gives ``log p(y | z)`` (Bayes with the class priors): a
generative classifier's vote on each label, low for a sample that looks like another class
(a likely mislabel), and :func:`typicality` gives ``log p(z | y)`` rank within the class (low
for an outlier).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from tinysift.errors import TinysiftError

KINDS = ("flow", "gmm", "knn")


class ClassDensity(ABC):
    def __init__(self, seed: int = 0):
        self.seed = seed

    @abstractmethod
    def fit(self, z: np.ndarray, y: np.ndarray, num_classes: int) -> ClassDensity: ...

    @abstractmethod
    def log_prob(self, z: np.ndarray) -> np.ndarray:
        """(N, num_classes) log-densities."""


class FlowDensity(ClassDensity):
    """Per-class RealNVP flows; ``steps`` Adam steps (each one batch of every class)."""

    def __init__(self, seed: int = 0, steps: int = 300, n_layers: int = 4, hidden: int = 32):
        super().__init__(seed)
        self.steps, self.n_layers, self.hidden = steps, n_layers, hidden

    def fit(self, z, y, num_classes):
        from tinysift.scoring.flows import ClassFlows, FlowConfig

        cfg = FlowConfig(n_layers=self.n_layers, hidden=self.hidden, steps=self.steps)
        self.flows_ = ClassFlows(cfg, seed=self.seed).fit(z, y, num_classes)
        return self

    def log_prob(self, z):
        return self.flows_.log_prob(z)


class GMMDensity(ClassDensity):
    """Per-class Gaussian mixture with ``components`` diagonal components (at most one per
    10 samples); a class absent from the fit set has density zero everywhere, a class of one
    sample a Gaussian of variance ``reg_covar`` centred on it.

    A component that explains fewer than ``min_members`` of its class's samples (weight x
    class size) is dropped after the fit and the others' weights renormalised; the heaviest
    always stays. Without that, EM gives a sample far from the rest of its class a
    component of its own, of variance ``reg_covar``, and in-sample scoring then rates it the
    *most* typical of its class (a 12-sd outlier ranked 0.99; found and mended 2026-12-05:
    docs/methods.md, "A known defect of the mixture")."""

    def __init__(self, seed: int = 0, components: int = 4, min_members: float = 5.0):
        super().__init__(seed)
        self.components, self.min_members = components, min_members

    def fit(self, z, y, num_classes):
        from sklearn.mixture import GaussianMixture

        self.models_ = []
        for c in range(num_classes):
            # float64: scikit-learn fits float32 in float32, where a class of one sample got
            # a variance of 1e-3 at |z| 30 instead of reg_covar, and |z| 1000 an error
            zc = np.asarray(z[y == c], np.float64)
            if not len(zc):  # never the most likely class
                self.models_.append(None)
                continue
            n = len(zc)
            k = max(1, min(self.components, n // 10))
            if n == 1:  # scikit-learn fits 2 or more: a Gaussian of reg_covar at it
                zc = np.repeat(zc, 2, axis=0)
            gm = GaussianMixture(k, covariance_type="diag", reg_covar=1e-4,
                                 random_state=self.seed).fit(zc)
            keep = gm.weights_ * n >= self.min_members
            keep[np.argmax(gm.weights_)] = True
            w = gm.weights_[keep]
            self.models_.append((np.log(w / w.sum()), gm.means_[keep], gm.covariances_[keep]))
        return self

    def log_prob(self, z):
        z = np.asarray(z, np.float64)
        out = np.full((len(z), len(self.models_)), -np.inf)
        for c, model in enumerate(self.models_):
            if model is None:
                continue
            log_w, means, var = model
            # log N(z; mean_j, diag var_j) for every component j, (N, J), expanded so that no
            # (N, J, d) array is built (60,000 samples x 4 x 64 would be 123 MB a class)
            prec = 1.0 / var
            sq = ((z ** 2) @ prec.T - 2.0 * z @ (means * prec).T
                  + (means ** 2 * prec).sum(1)[None])
            log_n = -0.5 * (sq + np.log(2 * np.pi * var).sum(-1)[None])
            out[:, c] = log_sum_exp(log_n + log_w[None])
        return out


class KNNDensity(ClassDensity):
    """``log p(z|c) = -d log r_k - log n_c`` (plus a constant) with ``r_k`` the distance to
    the k-th nearest member of class c (a sample's own class excludes itself).

    ``references`` < 1 keeps a seeded random share of each class (at least ``k + 1``) as the
    points the distances are measured to, and ``n_c`` counts those: the query cost falls with
    the share (a quarter: 1.7 s instead of 5.5 s for Fashion-MNIST's 60,000 samples), the
    estimate gets coarser.

    Until 2026-12-02 the class size entered with a plus sign: harmless for classes of equal
    size, but it multiplied a class's posterior by its size squared (MNIST's classes differ
    by up to 24%, so up to 1.55x)."""

    def __init__(self, seed: int = 0, k: int = 10, references: float = 1.0):
        super().__init__(seed)
        if not 0.0 < references <= 1.0:
            raise TinysiftError(f"references must be a share in (0, 1], got {references}")
        self.k, self.references = k, references

    def fit(self, z, y, num_classes):
        from sklearn.neighbors import NearestNeighbors

        self.z_, self.y_ = np.asarray(z, np.float32), np.asarray(y)
        rng = np.random.default_rng(self.seed)
        self.index_, self.members_ = [], []
        for c in range(num_classes):
            members = np.flatnonzero(self.y_ == c)
            if not len(members):  # a class absent from the fit set: never the most likely
                self.index_.append(None)
                self.members_.append(members)
                continue
            if self.references < 1.0:
                share = int(np.ceil(self.references * len(members)))
                n = min(len(members), max(self.k + 1, share))
                members = np.sort(rng.choice(members, n, replace=False))
            self.index_.append(NearestNeighbors(n_neighbors=self.k + 1).fit(self.z_[members]))
            self.members_.append(members)
        self.counts_ = np.array([len(m) for m in self.members_])
        return self

    def log_prob(self, z):
        z = np.asarray(z, np.float32)
        d = z.shape[1]
        out = np.zeros((len(z), len(self.index_)))
        for c, nn in enumerate(self.index_):
            if nn is None:
                out[:, c] = -np.inf
                continue
            dist, _ = nn.kneighbors(z, n_neighbors=min(self.k + 1, self.counts_[c]))
            # A sample among the references finds itself at distance 0: the (k+1)-th is its
            # k-th neighbour.
            same = dist[:, 0] < 1e-9
            r = np.where(same, dist[:, -1], dist[:, min(self.k, dist.shape[1]) - 1])
            # p ~ m / (n V_d r_m^d) with r_m the m-th neighbour: m is k but for a class of k or
            # fewer references, where the constant log k dropped for every class would not
            # be shared; log(m / k) puts such a class on the others' scale
            m = np.where(same, dist.shape[1] - 1, min(self.k, dist.shape[1]))
            out[:, c] = (-d * np.log(np.maximum(r, 1e-12)) - np.log(max(1, self.counts_[c]))
                         + np.log(np.maximum(m, 1) / self.k))
        return out


def log_sum_exp(a: np.ndarray) -> np.ndarray:
    """``log sum_j exp(a[i, j])`` per row, shifted by the row's maximum (no overflow). Not
    scipy's ``logsumexp``, which rounds differently in the last bits: the committed flow and
    mixture results were computed with this arithmetic."""
    top = a.max(1, keepdims=True)
    return top[:, 0] + np.log(np.exp(a - top).sum(1))


def make_density(kind: str, seed: int = 0, **params) -> ClassDensity:
    classes = {"flow": FlowDensity, "gmm": GMMDensity, "knn": KNNDensity}
    if kind not in classes:
        raise TinysiftError(f"unknown density {kind!r}; choose one of {', '.join(KINDS)}")
    return classes[kind](seed=seed, **params)


def label_posterior(logp: np.ndarray, y: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """``log p(y_i | z_i)`` from per-class log-densities (N, K) and class priors (K,)."""
    joint = logp + np.log(np.maximum(priors, 1e-12))[None, :]
    return joint[np.arange(len(y)), y] - log_sum_exp(joint)


def typicality(logp: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``log p(z_i | y_i)``."""
    return logp[np.arange(len(y)), y]
