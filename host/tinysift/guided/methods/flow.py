"""``flow``: the ``vq`` sampler plus a class-conditional density that drops likely mislabels
and outliers, and a within-codeword priority that mixes loss with dynamic uncertainty.

After the warm-up, a class-conditional density (per-class RealNVP flows by default, a
Gaussian mixture for classes smaller than a flow's batch; ``density="gmm"`` or ``"knn"``
for the ablation) is fit on the same PCA-reduced features
(charged to the budget; ``fit_on="agree"`` fits it on the samples the model already agrees
with). Per sample it gives

* ``log p(y | z)``: the label's posterior under the densities and the class priors (a
  generative classifier's vote on the label);
* ``log p(z | y)``: typicality inside the labelled class.

A sample is **dropped** (until the next refit, final epochs included) when the density gives
its label a posterior below ``mislabel_posterior``, the model gives it a probability below
``mislabel_model`` at its last pass, *and* both put it in the same other class (two
independent detectors must agree on the class: a clean but hard sample rarely does), or
when it is in the lowest ``outlier_tail`` of its class's typicality and the model gets it
wrong. At most ``max_drop`` of a class goes.

With ``judge`` set, the labels are also judged once *before any training*, where no model has
yet fit the wrong ones: a class-conditional density (``knn``, ``gmm`` or ``flow``, or several
joined by ``+``, which must all doubt the label) on a PCA of the pixels, charged to the budget.
A sample whose label's posterior is below ``judge_posterior`` and whose most likely class is
another is dropped from the start (the warm-up never trains it, the model-side density is fit
without it) and stays dropped; at most ``max_drop`` of a class (capped apart from the filter's
drops above, so the two together may take up to twice that). Off by default: with its fits
charged in full it gained 0.14 points under 20% label noise (validation, inside the noise) and
cost points on clean data (docs/methods.md, "Judging the labels before any training").

Inside a codeword the highest-priority members are kept first: priority is the weighted
rank ``loss_weight * rank(recent loss) + (1 - loss_weight) * rank(dynamic uncertainty)``,
where dynamic uncertainty (He et al., "Large-scale Dataset Pruning with Dynamic
Uncertainty", CVPR 2024) is the standard deviation of the label's probability over the
sample's recent passes: samples the model keeps changing its mind on.
"""

from __future__ import annotations

import warnings

import numpy as np

from tinysift.errors import TinysiftError
from tinysift.guided.base import TrainingState, register
from tinysift.guided.methods.vq import VQGuided, _pca, pixel_pca
from tinysift.scoring.density import KINDS, label_posterior, make_density, typicality
from tinysift.scoring.flows import FlowConfig

#: A class with fewer samples than this gets a Gaussian mixture where a flow was asked for:
#: the flow's own batch (below it, its sampler draws with replacement, every step repeats
#: samples). On Digits (112 a class) a Gaussian mixture had the better held-out likelihood
#: in 0.08 s of fit against 2.25 s, and the flows' fit ate the budget (docs/methods.md,
#: "Flow on small classes").
FLOW_MIN_CLASS = FlowConfig.batch


def within_class_rank(values: np.ndarray, y: np.ndarray, ties: str = "mean") -> np.ndarray:
    """Each value's rank inside its class, in [0, 1): tied values share their mean rank
    (``ties="index"``: ordered by position, the rule before 2026-12-03, which made the ties of
    the many samples without an uncertainty yet a fixed preference for later indices)."""
    from scipy.stats import rankdata

    out = np.zeros(len(values))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if ties == "index":
            out[idx[np.argsort(values[idx], kind="stable")]] = np.arange(len(idx)) / len(idx)
        else:
            out[idx] = (rankdata(values[idx], method="average") - 1.0) / len(idx)
    return out


def label_agreement(logp: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """p(label | z) from per-class log-densities, with the labels' class shares as priors."""
    return np.exp(label_posterior(logp, y, np.bincount(y, minlength=num_classes) / len(y)))


def dynamic_uncertainty(p_true: list[np.ndarray], window: int, over: str = "passes"
                        ) -> np.ndarray:
    """Std of each sample's label probability over its last ``window`` passes, the epochs it
    was trained in (0 with fewer than two). ``over="epochs"``: over the run's last ``window``
    epochs, the rule before 2026-12-03, where at budget 0.3 most samples had under two passes
    in the window and so no uncertainty."""
    if not p_true:
        return np.zeros(0)
    recent = np.stack([p.astype(np.float32) for p in p_true[-window:]] if over == "epochs"
                      else [p.astype(np.float32) for p in p_true])
    if over != "epochs":  # each sample's own last `window` passes, wherever they fell
        trained = ~np.isnan(recent)
        later = np.cumsum(trained[::-1], axis=0)[::-1]  # passes from this epoch on
        recent = np.where(trained & (later <= window), recent, np.nan)
    seen = (~np.isnan(recent)).sum(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: never trained
        du = np.nanstd(recent, axis=0)
    return np.where(seen >= 2, np.nan_to_num(du), 0.0)


@register
class FlowGuided(VQGuided):
    """The ``vq`` sampler with a density-based mislabel/outlier filter and an uncertainty-aware
    priority (see the module docstring; the ``vq`` parameters apply too).

    Parameters
    ----------
    density : ``flow``, ``gmm`` or ``knn``; ``flow`` fits a Gaussian mixture instead where a
        class has fewer than :data:`FLOW_MIN_CLASS` samples (the ledger names the fit
        ``density-gmm``; the judge follows the same rule)
    mislabel_posterior : drop when p(label | z) is below this (and the model agrees)
    mislabel_model : ... and the model's probability of the label is below this
    outlier_tail : typicality quantile under which a misclassified sample is dropped
    max_drop : at most this share of a class is dropped
    loss_weight : weight of the loss rank in the priority (the rest: dynamic uncertainty)
    du_window : a sample's last passes (epochs it was trained in) behind its dynamic
        uncertainty
    priority_rule : ``passes``: the dynamic uncertainty over each sample's last ``du_window``
        passes, ties in either rank sharing their mean rank; ``epochs``: the rule until
        2026-12-03 (the run's last ``du_window`` epochs, ties ordered by index; every committed
        flow row before that day), kept to reproduce those rows
    density_refits : the density is fit again at every ``density_refits``-th codebook refit
        (1: at every refit; k: k - 1 refits reuse it between fits; 0: fit once, after the
        warm-up, where the labels are judged by a model that has not had time to memorize
        the wrong ones)
    density_steps : Adam steps of the flows (each one batch of 256 per class)
    rejudge : at a codebook refit that reuses the density, judge the labels again: the
        model's latest predictions against the density's verdict, kept from its fit (free:
        no refit); what was dropped stays a suspect. Under 20% label noise on Fashion-MNIST
        (validation) it raised the filter's recall of the flipped labels from 0.63 to 0.78 at
        the same precision (0.95), for the same accuracy
    fit_on : ``all`` or ``agree`` (each class's density fit on its samples the model
        predicts as labelled, so the flipped ones do not shape it; on noisy digits this made
        the density echo the model and halved the filter's precision, 0.54 against 0.8+)
    judge : ``none``, or the density (``knn``, ``gmm``, ``flow``; several joined by ``+`` must
        all doubt the label) that judges the labels on a PCA of the pixels before any training
        (see the module docstring; the default for a day, 2026-12-02, until its cost was
        charged in full)
    judge_posterior : with ``judge``: drop when the label's posterior is below this and
        another class is the most likely
    judge_dim : the judge's pixel PCA dimension (None: ``dim``, vq's); fewer dimensions make
        the kNN judge cheaper and stricter (Fashion-MNIST under 20 % noise, on the training
        set: 16 dims flag the flips at precision 0.89 and recall 0.91, 8 dims 0.95 and 0.80)
    judge_references : with a ``knn`` judge: the share of each class its distances are
        measured to (a seeded random subset; 1: every sample), which cuts its cost about
        in proportion
    """

    name = "flow"

    def __init__(self, seed: int = 0, density: str = "flow",
                 mislabel_posterior: float = 0.05, mislabel_model: float = 0.05,
                 outlier_tail: float = 0.02, max_drop: float = 0.3, loss_weight: float = 0.5,
                 du_window: int = 4, density_refits: int = 0, density_steps: int = 100,
                 fit_on: str = "all", rejudge: bool = True, judge: str = "none",
                 judge_posterior: float = 0.02, judge_dim: int | None = None,
                 judge_references: float = 1.0, priority_rule: str = "passes",
                 **vq_params):
        super().__init__(seed, **vq_params)
        if priority_rule not in ("passes", "epochs"):
            raise TinysiftError(f"priority_rule must be 'passes' or 'epochs' (the rule before "
                                f"2026-12-03), got {priority_rule!r}")
        if judge != "none" and not set(judge.split("+")) <= set(KINDS):
            raise TinysiftError(f"judge must be 'none' or densities of {KINDS} joined by '+', "
                                f"got {judge!r}")
        # a density failed only at the first codebook refit, after the warm-up trained; a
        # fit_on other than "agree" was silently "all"
        if density not in KINDS:
            raise TinysiftError(f"density must be one of {KINDS}, got {density!r}")
        if fit_on not in ("all", "agree"):
            raise TinysiftError(f"fit_on must be 'all' or 'agree', got {fit_on!r}")
        if judge_dim is not None and judge_dim < 1:
            raise TinysiftError(f"judge_dim must be a positive PCA dimension, got {judge_dim}")
        if not 0.0 < judge_references <= 1.0:
            raise TinysiftError(f"judge_references must be a share in (0, 1], got "
                                f"{judge_references}")
        self.density = density
        self.mislabel_posterior = mislabel_posterior
        self.mislabel_model = mislabel_model
        self.outlier_tail = outlier_tail
        self.max_drop = max_drop
        self.loss_weight = loss_weight
        self.du_window = du_window
        self.density_refits = density_refits
        self.density_steps = density_steps
        self.fit_on = fit_on
        self.rejudge = rejudge
        self.judge = judge
        self.judge_posterior = judge_posterior
        self.judge_dim = judge_dim
        self.judge_references = judge_references
        self.priority_rule = priority_rule

    def params(self) -> dict:
        p = super().params()
        if self.judge == "none":  # no judge: the stamp flow had before the judge existed
            del p["judge"], p["judge_posterior"]
        # ... or before these knobs, at their defaults
        if self.judge == "none" or self.judge_references == 1.0:
            del p["judge_references"]
        if self.judge == "none" or self.judge_dim is None:
            del p["judge_dim"]
        if self.priority_rule == "epochs":  # the stamp of every flow row before the rule
            del p["priority_rule"]
        return p

    def begin(self, state: TrainingState) -> None:
        super().begin(state)
        self.refits_ = -1  # a sampler run twice fits its density again
        self.judged_ = np.zeros(state.num_samples, bool)
        if self.judge != "none":
            self.judged_ = self._judge_pixels(state)
            self.dropped_ = self.judged_.copy()

    def _judge_pixels(self, state: TrainingState) -> np.ndarray:
        """The samples whose labels every ``judge`` density doubts, on a PCA of the pixels."""
        y, k = state.y, state.num_classes
        dim = self.judge_dim or self.dim
        if self.embedding == "pixels" and dim == self.dim:
            z = self.pixel_z_  # fit (and charged) in vq's begin()
        else:
            with state.ledger.fit("judge-pixel-pca"):
                z = pixel_pca(state.x, dim, self.seed)
        suspect, post = np.ones(len(y), bool), np.zeros(len(y))
        for asked in self.judge.split("+"):
            kind = self.density_kind(asked, y, k)
            params = {"references": self.judge_references} if kind == "knn" else {}
            with state.ledger.fit(f"judge-{kind}"):
                logp = self._density(kind, **params).fit(z, y, k).log_prob(z)
            p_label = label_agreement(logp, y, k)
            suspect &= (np.argmax(logp, axis=1) != y) & (p_label < self.judge_posterior)
            post = np.maximum(post, p_label)  # the least doubtful judge orders the drops
        return self._worst_per_class(suspect, post, y, k)

    def _worst_per_class(self, suspect: np.ndarray, post: np.ndarray, y: np.ndarray,
                         num_classes: int) -> np.ndarray:
        """The suspects, lowest label posterior first, at most ``max_drop`` of a class."""
        drop = np.zeros(len(y), bool)
        for c in range(num_classes):
            idx = np.flatnonzero((y == c) & suspect)
            cap = int(self.max_drop * (y == c).sum())
            drop[idx[np.argsort(post[idx], kind="stable")[:cap]]] = True
        return drop

    def embedding_of(self, state: TrainingState) -> np.ndarray:
        if self.embedding == "pixels" or not self.judged_.any():
            return super().embedding_of(state)
        # The judged samples were never trained (zero features): put them at the kept
        # samples' mean, which leaves the PCA of the kept samples' features unchanged.
        z = state.features.copy()
        z[self.judged_] = z[~self.judged_].mean(0)
        return _pca(z, self.dim, self.seed)

    def _density(self, kind: str, **params):
        """An unfitted class-conditional density of ``kind`` (flows get ``density_steps``)."""
        if kind == "flow":
            params["steps"] = self.density_steps
        return make_density(kind, seed=self.seed, **params)

    @staticmethod
    def density_kind(kind: str, y_fit: np.ndarray, num_classes: int) -> str:
        """The density fit for ``kind`` on labels ``y_fit``: ``gmm`` instead of ``flow`` when
        a class has fewer than :data:`FLOW_MIN_CLASS` samples (a class without any is not
        fit by either: it counts for nothing here)."""
        counts = np.bincount(y_fit, minlength=num_classes)
        if kind == "flow" and counts[counts > 0].min() < FLOW_MIN_CLASS:
            return "gmm"
        return kind

    def before_codebook(self, state: TrainingState) -> None:
        self.refits_ += 1
        if self.refits_ and (not self.density_refits or self.refits_ % self.density_refits):
            if self.rejudge:  # the density's last verdict, the model's latest
                self.dropped_ = self._judge(state, also=self.dropped_)
            self.dropped_ |= self.judged_
            return
        z, y, k = self.z_, state.y, state.num_classes
        fit = self.density_fit_mask(state)
        self.density_fit_ = self.density_kind(self.density, y[fit], k)
        with state.ledger.fit(f"density-{self.density_fit_}"):
            logp = self._density(self.density_fit_).fit(z[fit], y[fit], k).log_prob(z)
        self.posterior_ = label_agreement(logp, y, k)
        self.density_class_ = np.argmax(logp, axis=1)
        self.typicality_rank_ = within_class_rank(typicality(logp, y), y, self._ties)
        self.dropped_ = self._judge(state) | self.judged_

    def density_fit_mask(self, state: TrainingState) -> np.ndarray:
        """The samples each class's density is fit on."""
        y, k = state.y, state.num_classes
        # Fit each class's density on the samples the model agrees with: a class density fit
        # on everything labelled c would model the flipped samples too, and its posterior
        # would vouch for them.
        fit = state.pred == y if self.fit_on == "agree" else np.ones(len(y), bool)
        if np.bincount(y[fit], minlength=k).min() < 10:
            fit = np.ones(len(y), bool)  # a class the model gets all wrong: use everything
        return fit & ~self.judged_  # never trained: no features to fit on

    def _judge(self, state: TrainingState, also: np.ndarray | None = None) -> np.ndarray:
        """The samples to drop by the density's verdict and the model's latest one (``also``:
        suspects already, the cap per class still holds)."""
        y, post = state.y, self.posterior_
        p_model = np.exp(-np.nan_to_num(state.loss.astype(np.float64), nan=0.0))
        # The classifier and the density must agree: both doubt the label, and both put the
        # sample in the same other class. A hard but correctly labelled sample rarely
        # passes all three.
        other = (state.pred != y) & (self.density_class_ == state.pred)
        mislabel = other & (p_model < self.mislabel_model) & (post < self.mislabel_posterior)
        outlier = (state.pred != y) & (self.typicality_rank_ < self.outlier_tail)
        suspect = mislabel | outlier | (False if also is None else also)
        # The judged samples are dropped apart from this cap (begin()): never trained (no
        # prediction, so "misclassified"), and in ``also`` at a rejudge, they took the model
        # filter's places under the cap until 2026-12-03.
        suspect &= ~self.judged_
        return self._worst_per_class(suspect, post, y, state.num_classes)

    def priority(self, state: TrainingState) -> np.ndarray:
        loss = np.nan_to_num(state.loss.astype(np.float64), nan=np.inf)
        du = dynamic_uncertainty(state.p_true, self.du_window, self.priority_rule)
        y = state.y
        return (self.loss_weight * within_class_rank(loss, y, self._ties)
                + (1 - self.loss_weight) * within_class_rank(du, y, self._ties))

    @property
    def _ties(self) -> str:
        """How within-class ranks break ties under ``priority_rule``."""
        return "index" if self.priority_rule == "epochs" else "mean"
