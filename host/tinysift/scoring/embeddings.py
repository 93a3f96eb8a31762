"""Embeddings for scoring: raw pixels, random convolutional features, and the features of
a briefly trained tiny CNN, each PCA-reduced to ``dim`` (<= 64 for the flow).

A new embedding is one function registered in :data:`EMBEDDINGS`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinysift.errors import TinysiftError

MAX_FLOW_DIM = 64


def pca_reduce(z: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Whitened-free PCA projection to ``dim`` dimensions (randomized SVD, seeded)."""
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype=np.float32)
    if not np.isfinite(z).all():
        raise TinysiftError(
            "the embedding contains NaN or infinite values; check the input images "
            "(a corrupt file or a float array that was not in [0, 1])"
        )
    dim = min(dim, z.shape[1], z.shape[0])
    if dim == z.shape[1]:
        return z - z.mean(0)
    pca = PCA(n_components=dim, svd_solver="randomized", random_state=seed)
    return pca.fit_transform(z).astype(np.float32)


def pixels(ctx, dim: int) -> np.ndarray:
    x = ctx.x.reshape(len(ctx.x), -1).astype(np.float32) / 255.0
    return pca_reduce(x, dim, ctx.seed)


def random_conv(ctx, dim: int, filters: int = 32, batch: int = 4096) -> np.ndarray:
    """A fixed random 5x5 conv layer (He-normal, seeded), ReLU, pooled to a 4x4 grid, PCA."""
    from tinysift.tfcompat import tf

    rng = np.random.default_rng(ctx.seed)
    c = ctx.x.shape[-1]
    kernel = rng.normal(0, np.sqrt(2.0 / (25 * c)), size=(5, 5, c, filters)).astype(np.float32)
    h, w = ctx.x.shape[1:3]
    grid = min(4, h, w)
    out = []
    for i in range(0, len(ctx.x), batch):
        xb = tf.constant(ctx.x[i:i + batch].astype(np.float32) / 255.0 - 0.5)
        fb = tf.nn.relu(tf.nn.conv2d(xb, kernel, strides=1, padding="SAME"))
        fb = tf.image.resize(fb, (grid, grid), method="area")
        out.append(tf.reshape(fb, (len(xb), -1)).numpy())
    return pca_reduce(np.concatenate(out), dim, ctx.seed)


def cnn_features(ctx, dim: int) -> np.ndarray:
    return pca_reduce(ctx.dynamics().features, dim, ctx.seed)


def given(ctx, dim: int) -> np.ndarray:
    """The user's own embedding (``ScoringContext(features=...)``), PCA-reduced to ``dim``."""
    if ctx.features is None:
        raise TinysiftError("embedding 'given' needs ScoringContext(features=...)")
    return pca_reduce(ctx.features, dim, ctx.seed)


EMBEDDINGS: dict[str, Callable[..., np.ndarray]] = {
    "given": given,
    "pixels": pixels,
    "random-conv": random_conv,
    "cnn": cnn_features,
}


def check_embedding(embedding: str | None, name: str = "embedding",
                    allow_none: bool = False) -> None:
    """Refuse an unknown embedding name when the method is made, not at its fit (after the
    proxy CNN trained, for the methods that read the dynamics first)."""
    if embedding is None and allow_none:
        return
    if embedding not in EMBEDDINGS:
        raise TinysiftError(f"{name} must be one of {', '.join(EMBEDDINGS)}, got "
                            f"{embedding!r}")


def compute_embedding(kind: str, ctx, dim: int) -> np.ndarray:
    if kind not in EMBEDDINGS:
        raise TinysiftError(f"unknown embedding {kind!r}; choose one of {', '.join(EMBEDDINGS)}")
    if dim < 1:
        raise TinysiftError(f"embedding dimension must be >= 1, got {dim}")
    return EMBEDDINGS[kind](ctx, dim)
