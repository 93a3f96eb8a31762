"""Record training dynamics of a briefly trained proxy CNN (shared by EL2N, GraNd,
forgetting, AUM, the flow's uncertainty term and the ``cnn`` embedding)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tinysift.models.training import TrainConfig


@dataclass
class TrainingDynamics:
    """Per-epoch statistics of a proxy CNN trained briefly on the full training split.

    Attributes
    ----------
    true_prob : (E, N) probability of the labelled class after each epoch.
    margin : (E, N) logit of the labelled class minus the largest other logit (AUM).
    correct : (E, N) bool, prediction equals label.
    el2n : (E, N) L2 norm of softmax minus one-hot.
    grand : (E, N) norm of the head's per-sample gradient (weights and bias).
    features : (N, D) backbone features of the final proxy model.
    seconds : wall time of the proxy training including the per-epoch passes.
    """

    true_prob: np.ndarray
    margin: np.ndarray
    correct: np.ndarray
    el2n: np.ndarray
    grand: np.ndarray
    features: np.ndarray
    seconds: float

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in vars(self).items()}


def forgetting_counts(correct: np.ndarray) -> np.ndarray:
    """Forgetting events per sample from an ``(E, N)`` correctness record.

    A forgetting event is a transition from correctly classified at one recorded epoch to
    misclassified at the next. A sample that is never classified correctly gets ``E``, more
    than any sample can reach (at most ``E // 2`` events fit in ``E`` records), so never-learned
    samples rank as the most forgotten.
    """
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2:
        raise ValueError(f"correct must be (epochs, samples), got shape {correct.shape}")
    epochs = correct.shape[0]
    events = (correct[:-1] & ~correct[1:]).sum(0).astype(np.float64)
    events[~correct.any(0)] = float(epochs)
    return events


# Each measurement follows at least this many optimizer steps: with fewer, BatchNorm's moving
# statistics still sit near their initial values and evaluation-mode predictions collapse to
# one class (seen on digits, 12 steps per epoch).
MIN_STEPS_PER_MEASURE = 50

#: Version of the recording: bump it when what ``record_dynamics`` measures or how it trains
#: changes in a way :func:`proxy_recipe` does not show (code, not configuration), so caches of
#: dynamics recorded by older code are recomputed instead of silently reused.
DYNAMICS_VERSION = 1


def proxy_schedule(num_samples: int, proxy_epochs: int,
                   seed: int) -> tuple[TrainConfig, int]:
    """The proxy's ``TrainConfig`` and the epochs between two measurements.

    Parameters
    ----------
    num_samples : training samples the proxy trains on
    proxy_epochs : measurements to record
    seed : training seed

    Returns
    -------
    (TrainConfig, int)
        The recipe (``proxy_epochs`` measurements, each after at least
        ``MIN_STEPS_PER_MEASURE`` steps) and the number of passes between measurements.
    """
    from tinysift.models.training import TrainConfig

    steps_per_epoch = max(1, -(-num_samples // TrainConfig().batch_size))
    every = max(1, -(-MIN_STEPS_PER_MEASURE // steps_per_epoch))
    return TrainConfig(epochs=proxy_epochs * every, seed=seed), every


def proxy_recipe(num_samples: int, proxy_epochs: int, seed: int,
                 num_classes: int | None = None) -> dict:
    """Everything the recorded dynamics depend on besides the data, as plain values.

    A cache of dynamics is keyed on this (with the data's hash): a changed training recipe,
    model default or measurement spacing is a different key, not a stale hit.

    Parameters
    ----------
    num_samples, proxy_epochs, seed : as for :func:`proxy_schedule`
    num_classes : the proxy's head width (the data's hash holds the labels, not this)

    Returns
    -------
    dict
        ``version``, ``train`` (the TrainConfig as a dict), ``model`` (the ModelConfig the
        proxy is built with), ``min_steps_per_measure`` and, when given, ``num_classes``.
    """
    from tinysift.models.cnn import ModelConfig

    train, _ = proxy_schedule(num_samples, proxy_epochs, seed)
    # record_dynamics passes no model config: train_model builds the default ModelConfig().
    recipe = {"version": DYNAMICS_VERSION, "train": train.to_dict(),
              "model": ModelConfig().to_dict(), "min_steps_per_measure": MIN_STEPS_PER_MEASURE}
    if num_classes is not None:
        recipe["num_classes"] = int(num_classes)
    return recipe


def record_dynamics(x: np.ndarray, y: np.ndarray, num_classes: int, proxy_epochs: int,
                    seed: int, progress: bool = True) -> TrainingDynamics:
    """Train the default tiny CNN on all of ``x, y`` and measure every sample
    ``proxy_epochs`` times, each after at least ``MIN_STEPS_PER_MEASURE`` steps (one epoch
    on a large dataset, several passes on a small one)."""
    from tinysift.models.cnn import HEAD_LAYER, feature_model
    from tinysift.models.training import train_model

    n, k = len(y), num_classes
    stats = {name: [] for name in ("true_prob", "margin", "correct", "el2n", "grand")}
    onehot = np.eye(k, dtype=np.float32)[y]
    rows = np.arange(n)

    # The same schedule proxy_recipe hashes into the cache key.
    cfg, every = proxy_schedule(n, proxy_epochs, seed)

    def measure(epoch: int, model) -> None:
        if (epoch + 1) % every:
            return
        feats_model = feature_model(model)
        head = model.get_layer(HEAD_LAYER)
        w, b = (v.numpy() for v in head.weights)
        feats = _batched(feats_model, x)
        logits = feats @ w + b
        logits -= logits.max(1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(1, keepdims=True)
        true_logit = logits[rows, y]
        other = logits.copy()
        other[rows, y] = -np.inf
        err = probs - onehot
        stats["true_prob"].append(probs[rows, y].astype(np.float32))
        stats["margin"].append((true_logit - other.max(1)).astype(np.float32))
        stats["correct"].append(probs.argmax(1) == y)
        stats["el2n"].append(np.linalg.norm(err, axis=1).astype(np.float32))
        # Gradient of the cross-entropy w.r.t. the head (W, b) for one sample is
        # (err outer [f, 1]); its Frobenius norm factorizes.
        fnorm = np.sqrt((feats.astype(np.float64) ** 2).sum(1) + 1.0)
        stats["grand"].append((np.linalg.norm(err, axis=1) * fnorm).astype(np.float32))
        stats.setdefault("_features", [None])[0] = feats

    start = time.perf_counter()
    # (train_model puts the caller's global generators back after seeding them)
    train_model(x, y, k, train_config=cfg, epoch_hooks=[measure], progress=progress)
    seconds = time.perf_counter() - start
    features = stats.pop("_features")[0]
    return TrainingDynamics(**{name: np.stack(v) for name, v in stats.items()},
                            features=features.astype(np.float32), seconds=seconds)


def _batched(model, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    from tinysift.models.training import to_float

    return np.concatenate([model(to_float(x[i:i + batch]), training=False).numpy()
                           for i in range(0, len(x), batch)])
