"""Numpy reference of the on-device head trainer (``ts_trainer.c``), step for step.

The specification (docs/trainer.md), which the C code and this module both follow:

Features
    Backbone features are the int8 output of layer ``head_layer - 1`` (layers
    ``[0, head_layer)`` run with ``ts_run_layers``), ``D = feature_dim`` bytes per sample,
    computed once into a cache or recomputed each time they are needed. Dequantized in
    float32: ``f[d] = feature_scale * (float)(q[d] - feature_zero_point)``.

Head
    float32 ``W[K][D]`` and ``b[K]``, initialized from the export's float head
    (``model->head_weights`` / ``head_bias``) or from arrays given in the config.
    Logits ``z[k] = (sum_d W[k][d] * f[d]) + b[k]``. Prediction: the first index of the
    largest logit.

Loss
    Softmax cross-entropy, stable: ``m = max_k z[k]``, ``e[k] = expf(z[k] - m)``,
    ``s = sum_k e[k]``, ``p[k] = e[k] / s``, ``loss = logf(s) - (z[y] - m)``.
    Gradient: ``dz[k] = p[k] - (k == y)``; ``dW[k][d] = dz[k] * f[d]``; ``db[k] = dz[k]``.

Sample order
    xorshift32 (Marsaglia 13/17/5) on a uint32 state, ``x ^= x << 13; x ^= x >> 17;
    x ^= x << 5`` (mod 2^32), seeded once with ``seed`` (``0`` -> ``0x6D2B79F5``) and never
    reseeded. Each epoch: ``order = [0, 1, ..., N-1]``, then for ``i = N-1`` down to ``1``:
    ``j = xorshift32() % (i + 1)``; swap ``order[i]`` and ``order[j]``.

SGD with momentum
    Batches are consecutive slices of ``order`` of ``batch_size`` samples; the last one
    holds the rest (``B`` is the actual size). Per batch: ``G`` = the sum of the per-sample
    gradients; then for every parameter ``v = mu * v + G / B`` and ``w = w - lr * v``
    (``v`` starts at 0). Predictions and losses of a batch use the weights before its update.

Per epoch
    ``mean_loss`` = float32 running sum of the per-sample losses in sample order, divided by
    ``N``; ``train_accuracy = correct / N``.

Evaluation and re-quantization (after the last epoch)
    Float test accuracy with the trained head. Then per-tensor symmetric int8:
    ``w_scale = max|W| / 127`` (float32; ``1.0`` when W is all zero),
    ``wq = clamp(round_away((double)W / (double)w_scale), -127, 127)``;
    ``bias_scale = feature_scale * w_scale`` (float32),
    ``bq = clamp(round_away((double)b / (double)bias_scale), INT32_MIN, INT32_MAX)``;
    ``(multiplier, shift) = QuantizeMultiplier((double)feature_scale * (double)w_scale /
    (double)logit_scale)``; the export's logit scale and zero point are kept. int8 logits as
    TFLite's FULLY_CONNECTED computes them: ``acc = bq[k] + sum_d (q[d] - feature_zp) *
    wq[k][d]``, ``out = clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift) +
    logit_zp, act_min, act_max)``; prediction: the first index of the largest int8 logit.

The C code accumulates dot products and sums sequentially, numpy's matmul and sum do not,
so float results agree to rounding (about 1e-6 relative after tens of epochs), not bit for
bit. The sample order and every integer step are bit-exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinysift.export.quant_math import quantize_multiplier

SEED_ZERO = 0x6D2B79F5
MASK32 = 0xFFFFFFFF
F32 = np.float32


# ---- sample order ------------------------------------------------------------------------

def xorshift32(state: int) -> int:
    """The next xorshift32 state (which is also the value drawn)."""
    x = state & MASK32
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x


def shuffle(n: int, state: int) -> tuple[np.ndarray, int]:
    """One epoch's order: identity, then Fisher-Yates from the top. Returns (order, state)."""
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        state = xorshift32(state)
        j = state % (i + 1)
        order[i], order[j] = order[j], order[i]
    return np.array(order, dtype=np.int64), state


def epoch_order(n: int, epochs: int, seed: int) -> list[np.ndarray]:
    """The sample order of every epoch for a given seed."""
    state = (seed & MASK32) or SEED_ZERO
    orders = []
    for _ in range(epochs):
        order, state = shuffle(n, state)
        orders.append(order)
    return orders


# ---- float head --------------------------------------------------------------------------

def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    diff = (np.asarray(q).astype(np.int32) - np.int32(zero_point)).astype(F32)
    return F32(scale) * diff


def logits(f: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (f @ w.T + b).astype(F32)


@dataclass
class HeadTrainConfig:
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.01
    momentum: float = 0.9
    seed: int = 0


@dataclass
class EpochStats:
    mean_loss: float
    correct: int
    samples: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else 0.0


@dataclass
class HeadTrainResult:
    weights: np.ndarray                 # float32 [K][D]
    bias: np.ndarray                    # float32 [K]
    epochs: list[EpochStats] = field(default_factory=list)
    test_correct_initial: int = 0
    test_correct_float: int = 0
    test_correct_int8: int = 0
    test_count: int = 0
    head_q: HeadQ | None = None


def _correct(z: np.ndarray, y: np.ndarray) -> int:
    return int(np.sum(np.argmax(z, axis=1) == y))  # argmax: first index of the maximum


def train_head(train_q: np.ndarray, train_y: np.ndarray, test_q: np.ndarray,
               test_y: np.ndarray, w0: np.ndarray, b0: np.ndarray, *, feature_scale: float,
               feature_zero_point: int, logit_scale: float, logit_zero_point: int,
               act_min: int = -128, act_max: int = 127,
               config: HeadTrainConfig | None = None) -> HeadTrainResult:
    """Train the float head exactly as ``ts_train_head_features`` does; evaluate; requantize."""
    cfg = config or HeadTrainConfig()
    if cfg.batch_size < 1 or not cfg.learning_rate > 0 or not 0 <= cfg.momentum < 1:
        raise ValueError("batch_size >= 1, learning_rate > 0, 0 <= momentum < 1")
    train_y = np.asarray(train_y, dtype=np.int64)
    test_y = np.asarray(test_y, dtype=np.int64)
    ftr = dequantize(np.asarray(train_q).reshape(len(train_y), -1), feature_scale,
                     feature_zero_point)
    fte = dequantize(np.asarray(test_q).reshape(len(test_y), -1), feature_scale,
                     feature_zero_point)
    w = np.array(w0, dtype=F32, copy=True)
    b = np.array(b0, dtype=F32, copy=True)
    k_n = w.shape[0]
    v = np.zeros_like(w)
    vb = np.zeros_like(b)
    mu, lr = F32(cfg.momentum), F32(cfg.learning_rate)
    n = len(train_y)
    res = HeadTrainResult(weights=w, bias=b, test_count=len(test_y))
    res.test_correct_initial = _correct(logits(fte, w, b), test_y) if len(test_y) else 0
    eye = np.eye(k_n, dtype=F32)
    for order in epoch_order(n, cfg.epochs, cfg.seed):
        losses = np.empty(n, dtype=F32)
        correct = 0
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            fb, yb = ftr[idx], train_y[idx]
            z = logits(fb, w, b)
            correct += _correct(z, yb)
            m = z.max(axis=1, keepdims=True)
            e = np.exp(z - m)
            s = e.sum(axis=1, keepdims=True, dtype=F32)
            losses[start:start + len(idx)] = (np.log(s[:, 0])
                                              - (z[np.arange(len(idx)), yb] - m[:, 0]))
            p = e / s
            dz = (p - eye[yb]).astype(F32)
            g = dz.T @ fb
            gb = dz.sum(axis=0, dtype=F32)
            den = F32(len(idx))
            v = mu * v + g / den
            w = w - lr * v
            vb = mu * vb + gb / den
            b = b - lr * vb
        loss_sum = np.cumsum(losses, dtype=F32)[-1] if n else F32(0)
        res.epochs.append(EpochStats(float(F32(loss_sum) / F32(n)), correct, n))
    res.weights, res.bias = w, b
    res.test_correct_float = _correct(logits(fte, w, b), test_y) if len(test_y) else 0
    hq = requantize_head(w, b, feature_scale=feature_scale, logit_scale=logit_scale)
    res.head_q = hq
    if len(test_y):
        out = head_int8(test_q, hq, feature_zero_point=feature_zero_point,
                        logit_zero_point=logit_zero_point, act_min=act_min, act_max=act_max)
        res.test_correct_int8 = int(np.sum(np.argmax(out, axis=1) == test_y))
    return res


# ---- integer arithmetic (TFLite quantization spec) ---------------------------------------

def round_away(x: np.ndarray) -> np.ndarray:
    """Round half away from zero in float64 (std::round)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def mbqm(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier, vectorized over int32 x (int64 arithmetic)."""
    x = np.asarray(x, dtype=np.int64)
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    x = ((x << left) & MASK32).astype(np.uint32).astype(np.int32).astype(np.int64)  # wraps
    a, bm = x, np.int64(multiplier)
    ab = a * bm
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    t = ab + nudge
    hi = np.where(t >= 0, t // (1 << 31), -((-t) // (1 << 31)))  # C division: toward zero
    hi = np.where((a == bm) & (a == -(1 << 31)), np.int64((1 << 31) - 1), hi)
    mask = np.int64((1 << right) - 1)
    rem = hi & mask
    threshold = (mask >> 1) + (hi < 0).astype(np.int64)
    return ((hi >> right) + (rem > threshold).astype(np.int64)).astype(np.int32)


@dataclass
class HeadQ:
    weights: np.ndarray   # int8 [K][D]
    bias: np.ndarray      # int32 [K]
    weight_scale: float   # float32 value
    bias_scale: float     # float32 value
    multiplier: int
    shift: int


def requantize_head(w: np.ndarray, b: np.ndarray, *, feature_scale: float,
                    logit_scale: float) -> HeadQ:
    w = np.asarray(w, dtype=F32)
    b = np.asarray(b, dtype=F32)
    maxabs = F32(np.max(np.abs(w))) if w.size else F32(0)
    w_scale = F32(maxabs / F32(127)) if maxabs > 0 else F32(1)
    bias_scale = F32(F32(feature_scale) * w_scale)
    wq = np.clip(round_away(w.astype(np.float64) / np.float64(w_scale)), -127, 127)
    bq = np.clip(round_away(b.astype(np.float64) / np.float64(bias_scale)),
                 -(1 << 31), (1 << 31) - 1)
    real = float(F32(feature_scale)) * float(w_scale) / float(F32(logit_scale))
    mult, shift = quantize_multiplier(real)
    return HeadQ(wq.astype(np.int8), bq.astype(np.int64).astype(np.int32), float(w_scale),
                 float(bias_scale), mult, shift)


def head_int8(q: np.ndarray, hq: HeadQ, *, feature_zero_point: int, logit_zero_point: int,
              act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """int8 logits [N][K] of the re-quantized head (TFLite FULLY_CONNECTED arithmetic)."""
    q = np.asarray(q).reshape(len(q), -1).astype(np.int64) - feature_zero_point
    acc = q @ hq.weights.astype(np.int64).T + hq.bias.astype(np.int64)
    acc = acc.astype(np.int32)  # int32 accumulator, as on the device (no overflow here)
    out = mbqm(acc, hq.multiplier, hq.shift).astype(np.int64) + logit_zero_point
    return np.clip(out, act_min, act_max).astype(np.int8)
