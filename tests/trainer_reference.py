"""Numpy reference of the on-device trainer (``ts_trainer.c``, ``ts_trainer_tail.c``), step
for step.

The specification is docs/trainer.md, which the C code and this module both follow. Below,
update=head; the modes (update=last-block: the last pointwise conv before the pooling and the
head; update=bias: every conv/depthwise bias and the head: float_layers(), tail_forward(),
tail_backward(), requantize_backbone()) and the recipe (steps: sample_stream(), windows();
schedule: learning_rate(); balance: class_weights()) are specified in docs/trainer.md
("Modes", "The recipe") and implemented in the functions named here.

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
    ``bq = clamp(round_away((double)b / (double)bias_scale), INT32_MIN, INT32_MAX)``, refused
    (``TS_ERR_PARAM``; ValueError here) when ``D * 255 * 128 + max|bq| > INT32_MAX``, the
    engine's accumulator bound; ``(multiplier, shift) = QuantizeMultiplier(
    (double)feature_scale * (double)w_scale / (double)logit_scale)``; the export's logit
    scale and zero point are kept. int8 logits as TFLite's FULLY_CONNECTED computes them:
    ``acc = bq[k] + sum_d (q[d] - feature_zp) * wq[k][d]``, ``out = clamp(
    MultiplyByQuantizedMultiplier(acc, multiplier, shift) + logit_zp (wrapping in int32),
    act_min, act_max)``; prediction: the first index of the largest int8 logit.

The C code accumulates dot products and sums sequentially, numpy's matmul and sum do not,
so float results agree to rounding (about 1e-6 relative after tens of epochs; up to 2e-5 for
the float layers with balance), not bit for bit. The sample order, the learning rates, the
class weights and every integer step are bit-exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from tinysift.export.quant_math import quantize_multiplier

SEED_ZERO = 0x6D2B79F5
MASK32 = 0xFFFFFFFF
F32 = np.float32


@contextmanager
def float64_arithmetic() -> Iterator[None]:
    """Inside: every float the reference computes with F32 is float64 instead. A run made
    here against the same run in float32 measures how far float32 rounding alone moves a
    result (a ReLU mask that flips on a pre-activation within rounding of the clip edge moves
    it far more than the rounding itself): the yardstick for C's float32 against numpy's."""
    global F32
    saved, F32 = F32, np.float64
    try:
        yield
    finally:
        F32 = saved


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
    # what is trained and how (docs/trainer.md "Modes" and "Recipe"); the defaults are the
    # head trainer of API version 2
    update: str = "head"          # head | last-block | bias
    steps: int = 0                # > 0: steps instead of epochs
    schedule: str = "constant"    # constant | cosine | step
    balance: bool = False         # class-balanced loss weights


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
    backbone: np.ndarray | None = None  # float32: the float layers' trained parameters
    backbone_q: BackboneQ | None = None
    per_class: np.ndarray | None = None  # [4][K]: totals, initial, float, int8 (int8: head)
    steps: int = 0


def _correct(z: np.ndarray, y: np.ndarray) -> int:
    return int(np.sum(np.argmax(z, axis=1) == y))  # argmax: first index of the maximum


def _per_class(z: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    ok = np.argmax(z, axis=1) == y
    return np.bincount(y[ok], minlength=k)


# ---- recipe: learning rate per step, class weights, the sample stream -------------------

def learning_rate(lr: float, schedule: str, t: int, total: int) -> np.float32:
    """The learning rate of step t of total (0-based)."""
    if schedule == "cosine" and total > 0:
        return F32(float(F32(lr)) * 0.5 * (1.0 + math.cos(math.pi * t / total)))
    if schedule == "step":
        if 4 * t >= 3 * total:
            return F32(lr) / F32(100)
        if 2 * t >= total:
            return F32(lr) / F32(10)
    return F32(lr)


def class_weights(y: np.ndarray, k: int) -> np.ndarray:
    """balance=1: w[c] = N / (C * n_c), C the classes present (float32 arithmetic)."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=k).astype(F32)
    present = F32(np.count_nonzero(counts))
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, F32(len(y)) / (present * counts), F32(0))
    return w.astype(F32)


def sample_stream(n: int, batch: int, steps: int, seed: int) -> list[np.ndarray]:
    """config.steps: `steps` batches of exactly `batch` indices, drawn in order from epoch
    orders that are reshuffled (xorshift32 running on) whenever one is used up."""
    state = (seed & MASK32) or SEED_ZERO
    order, pos = None, n
    out = []
    for _ in range(steps):
        idx = []
        for _ in range(batch):
            if pos >= n:
                order, state = shuffle(n, state)
                pos = 0
            idx.append(int(order[pos]))
            pos += 1
        out.append(np.array(idx, dtype=np.int64))
    return out


def windows(n: int, cfg: HeadTrainConfig) -> list[list[np.ndarray]]:
    """The batches of a run grouped by report window: each epoch's batches, or with steps
    windows of ceil(n / batch_size) steps (the last one shorter)."""
    per_epoch = -(-n // cfg.batch_size)
    if cfg.steps:
        flat = sample_stream(n, cfg.batch_size, cfg.steps, cfg.seed)
        return [flat[i:i + per_epoch] for i in range(0, len(flat), per_epoch)]
    return [[order[s:s + cfg.batch_size] for s in range(0, n, cfg.batch_size)]
            for order in epoch_order(n, cfg.epochs, cfg.seed)]


# ---- the float layers below the head (update=last-block, bias) ---------------------------

@dataclass
class FloatLayer:
    """One layer of [first, head_layer) as the float layers see it."""

    index: int
    op: str
    in_dims: tuple[int, int, int]
    out_dims: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    filter: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    dm: int = 1
    wq: np.ndarray | None = None     # conv (oc, fh, fw, ic), depthwise (fh, fw, oc), int8
    s_w: np.ndarray | None = None    # float32 (oc,)
    bias_q: np.ndarray | None = None  # int32 (oc,)
    s_in: np.float32 = F32(1)
    s_out: np.float32 = F32(1)
    lo: np.float32 = F32(0)
    hi: np.float32 = F32(0)
    in_zp: int = 0
    trained_weights: bool = False

    @property
    def conv(self) -> bool:
        return self.op in ("CONV_2D", "DEPTHWISE_CONV_2D")

    @property
    def channels(self) -> int:
        return self.out_dims[2]


def float_layers(parsed, update: str) -> list[FloatLayer]:
    """The float layers of a mode, from a parsed .tflite (tinysift.export.tflite_reader):
    last-block: the last pointwise CONV_2D before the AVERAGE_POOL_2D up to the head; bias:
    every layer below the head."""
    layers = parsed.layers
    h = parsed.head_index
    if update == "last-block":
        i = h
        while i > 0 and layers[i - 1].op in ("RESHAPE", "QUANTIZE"):
            i -= 1
        pw = layers[i - 2]
        assert layers[i - 1].op == "AVERAGE_POOL_2D" and pw.op == "CONV_2D"
        assert pw.filter == (1, 1) and pw.stride == (1, 1)
        first = i - 2
    elif update == "bias":
        first = 0
    else:
        raise ValueError(update)
    out = []
    for ly in layers[first:h]:
        assert ly.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE",
                         "QUANTIZE"), ly.op
        s_in, s_out = F32(ly.input_tensor.scale), F32(ly.output_tensor.scale)
        fl = FloatLayer(ly.index, ly.op, ly.in_dims, ly.out_dims, ly.stride, ly.dilation,
                        ly.filter, ly.pad, ly.depth_multiplier, s_in=s_in, s_out=s_out,
                        lo=s_out * F32(ly.act_min - ly.output_zero_point),
                        hi=s_out * F32(ly.act_max - ly.output_zero_point),
                        in_zp=ly.input_zero_point)
        if fl.conv:
            oc = ly.out_dims[2]
            ws = np.asarray(ly.weight_tensor.scales, F32)
            fl.s_w = np.full(oc, ws[0], F32) if len(ws) == 1 else ws
            shape = ((oc, *ly.filter, ly.in_dims[2]) if ly.op == "CONV_2D"
                     else (*ly.filter, oc))
            fl.wq = ly.weights.reshape(shape)
            fl.bias_q = (ly.bias if ly.bias is not None else np.zeros(oc, np.int32))
            fl.trained_weights = update == "last-block" and ly.index == first
        else:
            assert ly.op != "AVERAGE_POOL_2D" or (ly.act_min, ly.act_max) == (-128, 127)
        out.append(fl)
    return out


def initial_params(layers: list[FloatLayer]) -> np.ndarray:
    """The trained parameters in the C layout: per conv layer, the weights (trained ones),
    then the biases. W = s_w[c] * w_q; b = float32((b_q * s_in) * s_w[c]) in float64."""
    parts = []
    for fl in layers:
        if not fl.conv:
            continue
        if fl.trained_weights:
            parts.append((fl.s_w[:, None, None, None] * fl.wq.astype(F32)).reshape(-1))
        b = (fl.bias_q.astype(np.float64) * np.float64(fl.s_in)) * fl.s_w.astype(np.float64)
        parts.append(b.astype(F32))
    return np.concatenate(parts).astype(F32)


def _views(layers: list[FloatLayer], params: np.ndarray) -> list[tuple]:
    """(weights or None, bias) views of params per layer (None for non-conv layers)."""
    out, at = [], 0
    for fl in layers:
        if not fl.conv:
            out.append(None)
            continue
        w = None
        if fl.trained_weights:
            n = fl.wq.size
            w = params[at:at + n].reshape(fl.wq.shape)
            at += n
        b = params[at:at + fl.channels]
        at += fl.channels
        out.append((w, b))
    return out


def _padded(x: np.ndarray, fl: FloatLayer) -> np.ndarray:
    """x (B, H, W, C) zero-padded so that every window tap of fl is an index."""
    b, h, w, c = x.shape
    oh, ow = fl.out_dims[:2]
    (fh, fw), (sh, sw), (dh, dw), (ph, pw) = fl.filter, fl.stride, fl.dilation, fl.pad
    bottom = max(0, (oh - 1) * sh + (fh - 1) * dh + 1 - h - ph)
    right = max(0, (ow - 1) * sw + (fw - 1) * dw + 1 - w - pw)
    xp = np.zeros((b, h + ph + bottom, w + pw + right, c), x.dtype)
    xp[:, ph:ph + h, pw:pw + w] = x
    return xp


def _taps(fl: FloatLayer):
    """(ky, kx, row slice, column slice) of every filter tap in the padded input."""
    oh, ow = fl.out_dims[:2]
    (fh, fw), (sh, sw), (dh, dw) = fl.filter, fl.stride, fl.dilation
    for ky in range(fh):
        for kx in range(fw):
            yield (ky, kx, slice(ky * dh, ky * dh + (oh - 1) * sh + 1, sh),
                   slice(kx * dw, kx * dw + (ow - 1) * sw + 1, sw))


def _pool_windows(fl: FloatLayer):
    """(oy, ox, row slice, column slice, count) of every in-image pooling window."""
    (ih, iw, _), (oh, ow, _) = fl.in_dims, fl.out_dims
    (fh, fw), (sh, sw), (ph, pw) = fl.filter, fl.stride, fl.pad
    for oy in range(oh):
        y0 = oy * sh - ph
        ys = slice(max(y0, 0), min(y0 + fh, ih))
        for ox in range(ow):
            x0 = ox * sw - pw
            xs = slice(max(x0, 0), min(x0 + fw, iw))
            yield oy, ox, ys, xs, (ys.stop - ys.start) * (xs.stop - xs.start)


def tail_forward(layers: list[FloatLayer], params: np.ndarray, q: np.ndarray,
                 edge: np.ndarray | None = None):
    """Float forward of a batch of int8 inputs of the first float layer: the head's inputs
    (B, D) and, per conv layer, its mask (for tail_backward). ``edge`` (B,), if given, is
    lowered to each sample's nearest pre-activation to a clip bound, as a share of the
    bounds' range: where it is within rounding, another float32 order of the same sums may
    put the mask bit on the other side."""
    first = layers[0]
    x = dequantize(q, first.s_in, first.in_zp).reshape(len(q), *first.in_dims)
    views = _views(layers, params)
    masks = []
    for fl, v in zip(layers, views, strict=True):
        if fl.op == "CONV_2D" or fl.op == "DEPTHWISE_CONV_2D":
            w, b = v
            xp = _padded(x, fl)
            acc = np.zeros((len(x), *fl.out_dims), F32)
            for ky, kx, ys, xs in _taps(fl):
                patch = xp[:, ys, xs, :]
                if fl.op == "CONV_2D":
                    wk = (w[:, ky, kx, :] if w is not None else fl.wq[:, ky, kx, :].astype(F32))
                    acc += patch @ wk.T
                else:
                    acc += np.repeat(patch, fl.dm, axis=-1) * fl.wq[ky, kx].astype(F32)
            pre = acc + b if w is not None else fl.s_w * acc + b
            mask = (pre > fl.lo) & (pre < fl.hi)
            if edge is not None:
                near = np.minimum(np.abs(pre - fl.lo), np.abs(pre - fl.hi)) / (fl.hi - fl.lo)
                np.minimum(edge, near.reshape(len(pre), -1).min(1), out=edge)
            x = np.clip(pre, fl.lo, fl.hi).astype(F32)
            masks.append(mask)
        elif fl.op == "AVERAGE_POOL_2D":
            out = np.zeros((len(x), *fl.out_dims), F32)
            for oy, ox, ys, xs, count in _pool_windows(fl):
                s = x[:, ys, xs, :].reshape(len(x), -1, x.shape[-1]).sum(axis=1, dtype=F32)
                out[:, oy, ox, :] = s / F32(count)
            x = out
            masks.append(None)
        else:  # RESHAPE, QUANTIZE
            x = x.reshape(len(x), *fl.out_dims)
            masks.append(None)
    return x.reshape(len(x), -1), masks


def tail_backward(layers: list[FloatLayer], params: np.ndarray, q: np.ndarray,
                  masks: list, df: np.ndarray) -> np.ndarray:
    """The gradient sums of the trained parameters (the C layout) for a batch, from
    dL/d(head input) df (B, D)."""
    grads = np.zeros_like(params)
    gviews = _views(layers, grads)
    first = layers[0]
    d = df.reshape(len(df), *layers[-1].out_dims).astype(F32)
    for i in range(len(layers) - 1, -1, -1):
        fl = layers[i]
        if fl.conv:
            gw, gb = gviews[i]
            d = (d * masks[i]).astype(F32)
            gb += d.sum(axis=(0, 1, 2), dtype=F32)
            if fl.trained_weights:
                x = dequantize(q, first.s_in, first.in_zp).reshape(len(q), *first.in_dims)
                xp = _padded(x, fl)
                for ky, kx, ys, xs in _taps(fl):
                    gw[:, ky, kx, :] += np.einsum("bhwo,bhwi->oi", d, xp[:, ys, xs, :])
            if i > 0:
                g = (d * fl.s_w).astype(F32)
                dinp = np.zeros((len(d), *fl.in_dims), F32)
                dp = _padded(dinp, fl)
                for ky, kx, ys, xs in _taps(fl):
                    if fl.op == "CONV_2D":
                        dp[:, ys, xs, :] += g @ fl.wq[:, ky, kx, :].astype(F32)
                    else:
                        t = g * fl.wq[ky, kx].astype(F32)
                        dp[:, ys, xs, :] += t.reshape(*t.shape[:3], -1, fl.dm).sum(axis=-1)
                (ph, pw), (h, w) = fl.pad, fl.in_dims[:2]
                d = dp[:, ph:ph + h, pw:pw + w, :]
        elif fl.op == "AVERAGE_POOL_2D":
            dinp = np.zeros((len(d), *fl.in_dims), F32)
            for oy, ox, ys, xs, count in _pool_windows(fl):
                dinp[:, ys, xs, :] += (d[:, oy, ox, :] / F32(count))[:, None, None, :]
            d = dinp
        else:
            d = d.reshape(len(d), *fl.in_dims)
    return grads


# ---- the trainer ---------------------------------------------------------------------------

def train(train_q: np.ndarray, train_y: np.ndarray, test_q: np.ndarray, test_y: np.ndarray,
          w0: np.ndarray, b0: np.ndarray, *, feature_scale: float, feature_zero_point: int,
          logit_scale: float, logit_zero_point: int, act_min: int = -128, act_max: int = 127,
          config: HeadTrainConfig | None = None, layers: list[FloatLayer] | None = None
          ) -> HeadTrainResult:
    """Train exactly as ``ts_train_head_features`` does; evaluate; requantize. train_q and
    test_q: the int8 inputs of the trained layers (features for update=head; for
    last-block / bias the input of the first of ``layers``, float_layers())."""
    cfg = config or HeadTrainConfig()
    if cfg.batch_size < 1 or not cfg.learning_rate > 0 or not 0 <= cfg.momentum < 1:
        raise ValueError("batch_size >= 1, learning_rate > 0, 0 <= momentum < 1")
    train_y = np.asarray(train_y, dtype=np.int64)
    test_y = np.asarray(test_y, dtype=np.int64)
    train_q = np.asarray(train_q).reshape(len(train_y), -1)
    test_q = np.asarray(test_q).reshape(len(test_y), -1)
    tail = cfg.update != "head"
    params = initial_params(layers) if tail else None

    def head_input(q: np.ndarray):
        if tail:
            return tail_forward(layers, params, q)
        return dequantize(q, feature_scale, feature_zero_point), None

    w = np.array(w0, dtype=F32, copy=True)
    b = np.array(b0, dtype=F32, copy=True)
    k_n = w.shape[0]
    v = np.zeros_like(w)
    vb = np.zeros_like(b)
    vp = np.zeros_like(params) if tail else None
    mu = F32(cfg.momentum)
    n = len(train_y)
    res = HeadTrainResult(weights=w, bias=b, test_count=len(test_y))
    res.per_class = np.zeros((4, k_n), np.int64)
    res.per_class[0] = np.bincount(test_y, minlength=k_n)
    if len(test_y):
        z0 = logits(head_input(test_q)[0], w, b)
        res.test_correct_initial = _correct(z0, test_y)
        res.per_class[1] = _per_class(z0, test_y, k_n)
    cw = class_weights(train_y, k_n) if cfg.balance else None
    eye = np.eye(k_n, dtype=F32)
    plan = windows(n, cfg) if n else []
    total = sum(len(win) for win in plan)
    t = 0
    for win in plan:
        losses, correct = [], 0
        for idx in win:
            lr = learning_rate(cfg.learning_rate, cfg.schedule, t, total)
            t += 1
            fb, masks = head_input(train_q[idx])
            yb = train_y[idx]
            z = logits(fb, w, b)
            correct += _correct(z, yb)
            m = z.max(axis=1, keepdims=True)
            e = np.exp(z - m)
            s = e.sum(axis=1, keepdims=True, dtype=F32)
            loss = np.log(s[:, 0]) - (z[np.arange(len(idx)), yb] - m[:, 0])
            dz = (e / s - eye[yb]).astype(F32)
            if cw is not None:
                loss = loss * cw[yb]
                dz = (dz * cw[yb][:, None]).astype(F32)
            losses.append(loss.astype(F32))
            den = F32(len(idx))
            if tail:
                df = (dz @ w).astype(F32)  # the weights before this batch's update
                g_tail = tail_backward(layers, params, train_q[idx], masks, df)
            g = dz.T @ fb
            gb = dz.sum(axis=0, dtype=F32)
            v = mu * v + g / den
            w = w - lr * v
            vb = mu * vb + gb / den
            b = b - lr * vb
            if tail:
                vp = mu * vp + g_tail / den
                params = params - lr * vp
        allw = np.concatenate(losses)
        loss_sum = np.cumsum(allw, dtype=F32)[-1]
        res.epochs.append(EpochStats(float(F32(loss_sum) / F32(len(allw))), correct, len(allw)))
    res.steps = t
    res.weights, res.bias = w, b
    res.backbone = params
    if len(test_y):
        zf = logits(head_input(test_q)[0], w, b)
        res.test_correct_float = _correct(zf, test_y)
        res.per_class[2] = _per_class(zf, test_y, k_n)
    hq = requantize_head(w, b, feature_scale=feature_scale, logit_scale=logit_scale)
    res.head_q = hq
    if tail:
        res.backbone_q = requantize_backbone(layers, params)
    elif len(test_y):
        out = head_int8(test_q, hq, feature_zero_point=feature_zero_point,
                        logit_zero_point=logit_zero_point, act_min=act_min, act_max=act_max)
        res.test_correct_int8 = int(np.sum(np.argmax(out, axis=1) == test_y))
        res.per_class[3] = _per_class(out.astype(np.int64), test_y, k_n)
    return res


def train_head(train_q: np.ndarray, train_y: np.ndarray, test_q: np.ndarray,
               test_y: np.ndarray, w0: np.ndarray, b0: np.ndarray, *, feature_scale: float,
               feature_zero_point: int, logit_scale: float, logit_zero_point: int,
               act_min: int = -128, act_max: int = 127,
               config: HeadTrainConfig | None = None) -> HeadTrainResult:
    """Train the float head exactly as ``ts_train_head_features`` does; evaluate; requantize."""
    return train(train_q, train_y, test_q, test_y, w0, b0, feature_scale=feature_scale,
                 feature_zero_point=feature_zero_point, logit_scale=logit_scale,
                 logit_zero_point=logit_zero_point, act_min=act_min, act_max=act_max,
                 config=config)


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


def acc_bound_ok(k: int, bias: np.ndarray) -> bool:
    """ts_acc_bound_ok (the engine's check_quant): k * 255 * 128 + max|bias| <= INT32_MAX,
    so that no int32 accumulator of k int8 products and the bias can overflow."""
    max_bias = int(np.max(np.abs(np.asarray(bias, dtype=np.int64)))) if np.size(bias) else 0
    return k * 255 * 128 + max_bias <= (1 << 31) - 1


def wrap32(x: np.ndarray) -> np.ndarray:
    """int64 values wrapped to int32 (two's complement), as ts_add_wrap adds."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & MASK32) - (1 << 31)


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
    if not acc_bound_ok(w.shape[-1] if w.ndim else 0, bq):
        raise ValueError("head bias beyond the int32 accumulator bound")  # TS_ERR_PARAM
    real = float(F32(feature_scale)) * float(w_scale) / float(F32(logit_scale))
    mult, shift = quantize_multiplier(real)
    return HeadQ(wq.astype(np.int8), bq.astype(np.int64).astype(np.int32), float(w_scale),
                 float(bias_scale), mult, shift)


@dataclass
class BackboneQ:
    """The re-quantized float layers, as ts_tail_requantize lays them out: last-block:
    int32 bias, multiplier, shift (per output channel) and int8 weights; bias: one int32
    bias per conv/depthwise output channel (the export's scales and multipliers)."""

    bias: np.ndarray                       # int32, every trained conv layer's, in order
    weights: np.ndarray | None = None      # int8 (last-block)
    weight_scales: np.ndarray | None = None  # float32 per channel (last-block)
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None

    def words(self) -> np.ndarray:
        """The buffer as C writes it (int32 words, then the weights' bytes)."""
        if self.weights is None:
            return self.bias.astype(np.int64)
        return np.concatenate([self.bias, self.multiplier, self.shift]).astype(np.int64)


def requantize_backbone(layers: list[FloatLayer], params: np.ndarray) -> BackboneQ:
    """last-block: per output channel w_scale = max|W[c]| / 127 (1 for a zero row), weights
    round_away(W / w_scale) in [-127, 127], bias round_away(b / float32(s_in * w_scale)),
    QuantizeMultiplier(s_in * w_scale / s_out) in double; bias: round_away(b / float32(s_in *
    s_w[c])) with the export's scales."""
    views = _views(layers, params)
    biases = []
    out = BackboneQ(bias=np.zeros(0, np.int32))
    for fl, v in zip(layers, views, strict=True):
        if not fl.conv:
            continue
        w, b = v
        if fl.trained_weights:
            rows = w.reshape(fl.channels, -1).astype(F32)
            maxabs = np.max(np.abs(rows), axis=1).astype(F32)
            ws = np.where(maxabs > 0, maxabs / F32(127), F32(1)).astype(F32)
            out.weights = np.clip(round_away(rows.astype(np.float64) / ws[:, None]), -127,
                                  127).astype(np.int8).reshape(-1)
            out.weight_scales = ws
            bs = (fl.s_in * ws).astype(F32)
            qm = [quantize_multiplier(float(fl.s_in) * float(x) / float(fl.s_out)) for x in ws]
            out.multiplier = np.array([m for m, _ in qm], np.int64)
            out.shift = np.array([sh for _, sh in qm], np.int64)
        else:
            bs = (fl.s_in * fl.s_w).astype(F32)
        biases.append(np.clip(round_away(b.astype(np.float64) / bs.astype(np.float64)),
                              -(1 << 31), (1 << 31) - 1).astype(np.int64))
    out.bias = np.concatenate(biases).astype(np.int32)
    return out


def head_int8(q: np.ndarray, hq: HeadQ, *, feature_zero_point: int, logit_zero_point: int,
              act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """int8 logits [N][K] of the re-quantized head (TFLite FULLY_CONNECTED arithmetic)."""
    q = np.asarray(q).reshape(len(q), -1).astype(np.int64) - feature_zero_point
    acc = q @ hq.weights.astype(np.int64).T + hq.bias.astype(np.int64)
    acc = acc.astype(np.int32)  # int32 accumulator, as on the device (no overflow here)
    out = wrap32(mbqm(acc, hq.multiplier, hq.shift).astype(np.int64) + logit_zero_point)
    return np.clip(out, act_min, act_max).astype(np.int8)
