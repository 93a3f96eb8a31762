"""The per-class VQ codebook of ``db stream policy=coverage``, in the model's feature space.

The device assigns every streamed sample to the nearest codeword of its class among the int8
features it computes (the output of layer ``head_layer - 1``, what the trainer caches) and
keeps a reservoir per codeword (docs/trainer.md "Replay upkeep"). The host fits the codewords
with k-means on the base model's features of the old training data and quantizes them with
the feature tensor's scale and zero point; classes it has no data for get no codewords (the
device opens them online with the leader rule) but a radius: the median of the other
classes' radii.

Distances are squared Euclidean distances between int8 vectors (int8 units), as the device
computes them; the radius of a class is the median of its members' squared distances to their
nearest codeword.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VQCodebook:
    """``codewords`` (K, C, D) int8 (rows ``j >= counts[c]`` are zeros and unused),
    ``counts`` (K,) exported codewords per class (0: online), ``radius2`` (K,) squared radius
    per class in int8 units (the device reads it for online classes only)."""

    codewords: np.ndarray
    counts: np.ndarray
    radius2: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(self.codewords.shape[0])

    @property
    def per_class(self) -> int:
        return int(self.codewords.shape[1])

    @property
    def dim(self) -> int:
        return int(self.codewords.shape[2])

    def flash_bytes(self) -> int:
        """The arrays in flash: int8 codewords, uint8 counts, uint32 radii."""
        return vq_flash_bytes(self.num_classes, self.per_class, self.dim)

    def arrays(self) -> dict[str, np.ndarray]:
        """As stored in golden.npz (``vq_codewords``, ``vq_counts``, ``vq_radius2``)."""
        return {"vq_codewords": self.codewords, "vq_counts": self.counts,
                "vq_radius2": self.radius2}

    def summary(self) -> dict:
        return {"per_class": self.per_class, "counts": self.counts.tolist(),
                "radius2": self.radius2.tolist(), "online_classes":
                [int(c) for c in np.flatnonzero(self.counts == 0)]}


def vq_flash_bytes(k: int, c: int, d: int) -> int:
    """Flash of a codebook of ``k`` classes, ``c`` codewords each, ``d`` bytes: the int8
    codewords, one uint8 count and one uint32 radius per class."""
    return k * c * d + k + 4 * k if c > 0 else 0


def quantize_features(features: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float features -> int8 with the feature tensor's quantization (round half to even as
    numpy rounds, then clamped)."""
    q = np.round(np.asarray(features, np.float64) / float(scale)) + int(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) squared distances between int8 rows (exact, int64)."""
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    return ((a64[:, None, :] - b64[None, :, :]) ** 2).sum(-1)


def fit_codebook(features: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int,
                 scale: float, zero_point: int, seed: int = 0) -> VQCodebook:
    """k-means (``tinysift.guided.methods.vq.lloyd_kmeans``) on each class's float features
    (``min(per_class, members)`` codewords), quantized; classes without samples get no
    codewords and the median radius of the others."""
    from tinysift.errors import BudgetError, DatasetError
    from tinysift.guided.methods.vq import lloyd_kmeans
    from tinysift.params import is_whole

    # 2.5 was a numpy TypeError deep in the fit
    if not is_whole(per_class, 1) or per_class > 255:
        raise BudgetError(f"--vq-per-class must be a whole number in 1..255 (got {per_class})")
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels)
    # a label past the model's classes had no codewords fitted and no word said
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"the codebook's labels run {labels.min()}..{labels.max()}, but the "
                           f"model has classes 0..{num_classes - 1}: fit it on the model's "
                           "own classes")
    d = features.shape[1]
    cw = np.zeros((num_classes, per_class, d), np.int8)
    counts = np.zeros(num_classes, np.int64)
    radius2 = np.zeros(num_classes, np.int64)
    for c in range(num_classes):
        members = features[labels == c]
        if len(members) == 0:
            continue
        cent, _ = lloyd_kmeans(members, per_class, seed + c)
        q = np.unique(quantize_features(cent, scale, zero_point), axis=0)  # no twin codewords
        counts[c] = len(q)
        cw[c, :len(q)] = q
        # distances in chunks: a class of MNIST is 6,000 x C x D
        d2 = np.concatenate([squared_distances(part, q).min(1) for part in
                             np.array_split(quantize_features(members, scale, zero_point),
                                            max(1, len(members) // 2048))])
        radius2[c] = int(round(float(np.median(d2))))
    known = counts > 0
    if not known.any():
        raise BudgetError("a VQ codebook needs features of at least one class")
    radius2[~known] = int(round(float(np.median(radius2[known]))))
    return VQCodebook(cw, counts, radius2)


def feature_quantization(tflite: bytes) -> tuple[float, int]:
    """(scale, zero point) of the head's input tensor: the int8 features the device computes
    and the trainer caches."""
    from tinysift.export.tflite_reader import parse_tflite

    t = parse_tflite(tflite).head.input_tensor
    return float(t.scale), int(t.zero_point)
