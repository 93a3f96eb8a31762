"""Record training dynamics of a briefly trained proxy CNN (shared by EL2N, GraNd,
forgetting, AUM, the flow's uncertainty term and the ``cnn`` embedding)."""

from __future__ import annotations

import time

import numpy as np

from tinysift.selection.context import ScoringContext, TrainingDynamics

# Each measurement follows at least this many optimizer steps: with fewer, BatchNorm's moving
# statistics still sit near their initial values and evaluation-mode predictions collapse to
# one class (seen on digits, 12 steps per epoch).
MIN_STEPS_PER_MEASURE = 50


def record_dynamics(ctx: ScoringContext) -> TrainingDynamics:
    """Train the default tiny CNN on all of ``ctx``'s data and measure every sample
    ``ctx.proxy_epochs`` times, each after at least ``MIN_STEPS_PER_MEASURE`` steps (one epoch
    on a large dataset, several passes on a small one)."""
    from tinysift.models.cnn import HEAD_LAYER, feature_model
    from tinysift.models.training import TrainConfig, train_model

    n, k = ctx.num_samples, ctx.num_classes
    stats = {name: [] for name in ("true_prob", "margin", "correct", "el2n", "grand")}
    onehot = np.eye(k, dtype=np.float32)[ctx.y]
    rows = np.arange(n)

    steps_per_epoch = max(1, -(-n // TrainConfig().batch_size))
    every = max(1, -(-MIN_STEPS_PER_MEASURE // steps_per_epoch))

    def measure(epoch: int, model) -> None:
        if (epoch + 1) % every:
            return
        feats_model = feature_model(model)
        head = model.get_layer(HEAD_LAYER)
        w, b = (v.numpy() for v in head.weights)
        feats = _batched(feats_model, ctx.x)
        logits = feats @ w + b
        logits -= logits.max(1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(1, keepdims=True)
        true_logit = logits[rows, ctx.y]
        other = logits.copy()
        other[rows, ctx.y] = -np.inf
        err = probs - onehot
        stats["true_prob"].append(probs[rows, ctx.y].astype(np.float32))
        stats["margin"].append((true_logit - other.max(1)).astype(np.float32))
        stats["correct"].append(probs.argmax(1) == ctx.y)
        stats["el2n"].append(np.linalg.norm(err, axis=1).astype(np.float32))
        # Gradient of the cross-entropy w.r.t. the head (W, b) for one sample is
        # (err outer [f, 1]); its Frobenius norm factorizes.
        fnorm = np.sqrt((feats.astype(np.float64) ** 2).sum(1) + 1.0)
        stats["grand"].append((np.linalg.norm(err, axis=1) * fnorm).astype(np.float32))
        stats.setdefault("_features", [None])[0] = feats

    start = time.perf_counter()
    cfg = TrainConfig(epochs=ctx.proxy_epochs * every, seed=ctx.seed)
    train_model(ctx.x, ctx.y, k, train_config=cfg, epoch_hooks=[measure],
                progress=ctx.progress)
    seconds = time.perf_counter() - start
    features = stats.pop("_features")[0]
    return TrainingDynamics(**{name: np.stack(v) for name, v in stats.items()},
                            features=features.astype(np.float32), seconds=seconds)


def _batched(model, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    from tinysift.models.training import to_float

    return np.concatenate([model(to_float(x[i:i + batch]), training=False).numpy()
                           for i in range(0, len(x), batch)])
