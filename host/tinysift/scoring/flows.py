"""Per-class RealNVP normalizing flows, trained side by side in one batched TF graph.

Each of the K classes has its own flow (its own weights: every weight tensor has a leading
class axis), so fitting K flows costs one training loop. A flow is ``n_layers`` affine
coupling layers (Dinh et al. 2017, RealNVP) with alternating checkerboard masks and a fixed
seeded permutation between layers; each coupling's scale/shift network is a one-hidden-layer
tanh MLP with a tanh-bounded log-scale for stability. The base distribution is a standard
normal. Inputs are standardized with the class mean and std (its log-determinant is
included, so densities are comparable across classes).

With ``folds > 1`` the flows are *cross-fitted*: class c gets one flow per fold f, trained
on the class's samples outside fold f, and a training sample is scored only by flows that
never saw it. Without this a flow memorizes small classes and every sample looks typical.

A flow whose training set is empty (a class absent from ``y``, or a fold holding all of a
tiny class) is never trained, on this class's samples or any other's: its log-density is
``-inf`` everywhere, as the other densities give an absent class.

Training stops after at most :data:`MAX_EPOCHS` passes over the smallest trained flow's
data: a fixed step count drawn with replacement is thousands of passes over a small class
(Digits' 72-sample folds: 2,000 at 600 steps), where the flow memorizes its fold and the
cross-fitted densities become noise (out-of-fold median log-density -20 against the fold's
own +2.5 and a Gaussian's -1.6; docs/methods.md). On the 60,000-sample sets the cap is
above the default 600 steps, which run unchanged.

``log_prob(z, fold)`` returns the log-density of every sample under every class flow, (N, K).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

#: Most passes a flow's training makes over the smallest trained flow's samples (each step
#: draws ``batch`` of every class). 64 leaves the default 600 steps untouched from 2,400
#: samples a flow up (MNIST's smallest 2-fold share is 2,710), and stops Digits' flows at
#: 18 steps, where their out-of-fold log-density is at its best (docs/methods.md).
MAX_EPOCHS = 64


@dataclass(frozen=True)
class FlowConfig:
    """Flow size and training schedule.

    Parameters
    ----------
    n_layers : coupling layers per flow. From 3 on every dimension is transformed at
        least once (each odd layer permutes, and it and the next transform complementary
        halves); with 1 or 2 some dimensions stay a standardized Gaussian
    hidden : hidden units of each coupling network
    steps : Adam steps (each step uses ``batch`` samples of every class)
    batch : samples per class per step
    learning_rate : Adam learning rate
    weight_decay : L2 on the coupling networks (keeps small classes from overfitting)
    """

    n_layers: int = 6
    hidden: int = 64
    steps: int = 600
    batch: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        # A pipeline file or --method-params sets these: steps -1 trained no flow and every
        # score came from the untrained one, without a word.
        from tinysift.errors import TinysiftError
        from tinysift.params import is_whole

        # steps 0: the flows stay the identity, each class its standardized Gaussian
        for name, least in (("n_layers", 1), ("hidden", 1), ("steps", 0), ("batch", 1)):
            value = getattr(self, name)
            if not is_whole(value, least):
                raise TinysiftError(f"flow {name} must be a whole number >= {least}, got "
                                    f"{value!r}")
        for name, zero_ok in (("learning_rate", False), ("weight_decay", True)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
                raise TinysiftError(f"flow {name} must be a finite number "
                                    f"{'>= 0' if zero_ok else '> 0'}, got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class ClassFlows:
    """K independent RealNVP flows, one per class, fit and evaluated in batch."""

    def __init__(self, config: FlowConfig | None = None, seed: int = 0):
        self.config = config or FlowConfig()
        self.seed = seed
        self.fit_seconds_ = 0.0

    def fit(self, z: np.ndarray, y: np.ndarray, num_classes: int, folds: int = 1,
            progress=None) -> ClassFlows:
        """Fit ``num_classes * folds`` flows; ``self.fold_`` gives each sample's fold."""
        from tinysift.tfcompat import tf

        cfg = self.config
        z = np.asarray(z, np.float32)
        d = z.shape[1]
        if d < 2:  # a coupling layer splits the dimensions in two (1x1 gray images have one)
            from tinysift.errors import FitError

            raise FitError(f"a flow needs an embedding of at least 2 dimensions, these "
                           f"samples have {d} (images of 1x1x1 pixels?); use another method, "
                           "e.g. --method vq")
        rng = np.random.default_rng(self.seed)
        self.num_classes_, self.folds_ = num_classes, folds
        self.fold_ = np.zeros(len(y), dtype=np.int64)
        for c in range(num_classes):
            members = np.flatnonzero(y == c)
            self.fold_[members] = rng.permutation(len(members)) % folds
        # Flow g = c * folds + f trains on class c outside fold f (all of class c if folds=1).
        k = num_classes * folds
        train_sets = []
        for c in range(num_classes):
            for f in range(folds):
                sel = (y == c) & ((self.fold_ != f) if folds > 1 else True)
                train_sets.append(np.flatnonzero(sel))
        self.mean_ = np.stack([z[ix].mean(0) if len(ix) else np.zeros(d, np.float32)
                               for ix in train_sets]).astype(np.float32)
        self.std_ = np.stack([z[ix].std(0) + 1e-3 if len(ix) > 1 else np.ones(d, np.float32)
                              for ix in train_sets]).astype(np.float32)
        #: flows with training data; the others are masked out of the loss and score -inf
        self.trained_ = np.array([len(ix) > 0 for ix in train_sets])
        masks = []
        perms = []
        for layer in range(cfg.n_layers):
            mask = np.zeros(d, np.float32)
            mask[layer % 2::2] = 1.0
            masks.append(mask)
            perms.append(rng.permutation(d) if layer % 2 == 1 else np.arange(d))
        self.masks_ = np.stack(masks)
        self.perms_ = np.stack(perms)
        tf.random.set_seed(self.seed)

        def glorot(shape):
            fan_in, fan_out = shape[-2], shape[-1]
            lim = math.sqrt(6.0 / (fan_in + fan_out))
            return tf.Variable(rng.uniform(-lim, lim, size=shape).astype(np.float32))

        h = cfg.hidden
        self.vars_ = {
            "w1": glorot((cfg.n_layers, k, d, h)),
            "b1": tf.Variable(np.zeros((cfg.n_layers, k, 1, h), np.float32)),
            # Output layers start at zero: every coupling starts as the identity.
            "ws": tf.Variable(np.zeros((cfg.n_layers, k, h, d), np.float32)),
            "bs": tf.Variable(np.zeros((cfg.n_layers, k, 1, d), np.float32)),
            "wt": tf.Variable(np.zeros((cfg.n_layers, k, h, d), np.float32)),
            "bt": tf.Variable(np.zeros((cfg.n_layers, k, 1, d), np.float32)),
            "scale": tf.Variable(np.ones((cfg.n_layers, k, 1, d), np.float32)),
        }
        opt = tf.keras.optimizers.Adam(cfg.learning_rate)
        variables = list(self.vars_.values())
        logp = self._graph_log_prob
        # An untrained flow's rows weigh 0 in the loss. Each flow has its own weights, so the
        # trained ones get exactly the gradients they got before flows could be masked; with
        # every flow trained there is no weighting at all (the same graph).
        weights = None if self.trained_.all() else tf.constant(
            self.trained_[:, None].astype(np.float32))

        @tf.function
        def step(batch):  # batch: (K, B, d), already standardized per class
            with tf.GradientTape() as tape:
                ll = logp(batch)
                if weights is not None:
                    ll = ll * weights
                l2 = tf.add_n([tf.reduce_sum(self.vars_[n] ** 2) for n in ("w1", "ws", "wt")])
                loss = -tf.reduce_mean(ll) / d + cfg.weight_decay * l2
            grads = tape.gradient(loss, variables)
            opt.apply_gradients(zip(grads, variables, strict=True))
            return loss

        by_class = train_sets
        smallest = min((len(ix) for ix in train_sets if len(ix)), default=0)
        #: the steps this fit ran: ``config.steps``, or fewer for small classes (MAX_EPOCHS)
        self.steps_ = min(cfg.steps, math.ceil(MAX_EPOCHS * smallest / cfg.batch))
        start = time.perf_counter()
        for s in range(self.steps_):
            picks = [rng.choice(ix, size=cfg.batch, replace=len(ix) < cfg.batch) if len(ix)
                     else None for ix in by_class]
            # An empty training set gets a batch of zeros (weight 0 in the loss), never
            # another class's samples.
            batch = np.stack([(z[p] - self.mean_[c]) / self.std_[c] if p is not None
                              else np.zeros((cfg.batch, d), np.float32)
                              for c, p in enumerate(picks)])
            step(tf.constant(batch))
            if progress is not None:
                progress(s + 1, self.steps_)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _graph_log_prob(self, x):
        """x: (K, B, d) standardized for each class -> log-density (K, B) (no std term)."""
        from tinysift.tfcompat import tf

        v = self.vars_
        d = x.shape[-1]
        logdet = tf.zeros(tf.shape(x)[:2])
        for layer in range(self.config.n_layers):
            x = tf.gather(x, self.perms_[layer], axis=-1)
            mask = tf.constant(self.masks_[layer])
            xa = x * mask
            hidden = tf.tanh(tf.matmul(xa, v["w1"][layer]) + v["b1"][layer])
            raw = tf.matmul(hidden, v["ws"][layer]) + v["bs"][layer]
            log_s = v["scale"][layer] * tf.tanh(raw) * (1.0 - mask)
            t = (tf.matmul(hidden, v["wt"][layer]) + v["bt"][layer]) * (1.0 - mask)
            x = xa + (1.0 - mask) * (x * tf.exp(log_s) + t)
            logdet += tf.reduce_sum(log_s, axis=-1)
        base = -0.5 * tf.reduce_sum(x ** 2, axis=-1) - 0.5 * d * math.log(2 * math.pi)
        return base + logdet

    def log_prob(self, z: np.ndarray, fold: np.ndarray | None = None,
                 chunk: int = 4096) -> np.ndarray:
        """Log-density of every sample under every class: (N, num_classes).

        ``fold[i]`` picks which cross-fitted flows score sample i (its own fold, so the
        flows never saw it); None uses fold 0 (new data). A flow that had no training data
        gives ``-inf``."""
        from tinysift.tfcompat import tf

        z = np.asarray(z, np.float32)
        kc, nf = self.num_classes_, self.folds_
        fold = np.zeros(len(z), np.int64) if fold is None else np.asarray(fold, np.int64)
        if fold.shape != (len(z),) or (len(fold) and not 0 <= fold.min() <= fold.max() < nf):
            # a row of another fold would keep log-density 0 under every class, silently
            raise ValueError(f"fold must give each of the {len(z)} samples a fold in "
                             f"[0, {nf}), got shape {fold.shape}")
        log_std = np.log(self.std_).sum(1)  # (K * folds,)
        out = np.zeros((len(z), kc), np.float64)
        for f in range(nf):
            rows_f = np.flatnonzero(fold == f)
            groups = np.arange(kc) * nf + f
            for i in range(0, len(rows_f), chunk):
                rows = rows_f[i:i + chunk]
                zc = z[rows]
                # Evaluate under every flow (the graph is batched over all of them), keep
                # this fold's.
                x = (zc[None, :, :] - self.mean_[:, None, :]) / self.std_[:, None, :]
                ll = self._graph_log_prob(tf.constant(x)).numpy()  # (K * folds, b)
                ll = np.where(self.trained_[:, None], ll - log_std[:, None], -np.inf)
                out[rows] = ll[groups].T
        return out

    def sample(self, c: int, n: int, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
        """Draw ``n`` embeddings from class ``c``'s (fold 0) flow by inverting the couplings.

        ``temperature`` scales the base distribution's noise before the inversion (Glow,
        Kingma & Dhariwal 2018): below 1 the samples move toward the flow's modes, staying on
        its density; shrinking decoded samples toward the class mean instead pulls them
        between modes, off the data (two moons: 19 % of them below the data's 5th density
        percentile, against 1.7 % at latent temperature 0.7)."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        rng = np.random.default_rng(seed)
        c = c * self.folds_
        d = self.mean_.shape[1]
        x = (np.float32(temperature) * rng.standard_normal((n, d))).astype(np.float32)
        v = {name: var.numpy()[:, c] for name, var in self.vars_.items()}
        for layer in reversed(range(self.config.n_layers)):
            mask = self.masks_[layer]
            xa = x * mask
            hidden = np.tanh(xa @ v["w1"][layer] + v["b1"][layer])
            log_s = v["scale"][layer] * np.tanh(hidden @ v["ws"][layer] + v["bs"][layer])
            log_s *= (1 - mask)
            t = (hidden @ v["wt"][layer] + v["bt"][layer]) * (1 - mask)
            x = xa + (1 - mask) * ((x - t) * np.exp(-log_s))
            inv = np.argsort(self.perms_[layer])
            x = x[:, inv]
        return x * self.std_[c] + self.mean_[c]
