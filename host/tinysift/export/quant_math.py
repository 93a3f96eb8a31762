"""Integer quantization parameters computed exactly as TFLite Micro computes them in Prepare.

References (TensorFlow Lite quantization spec and kernels/internal/quantization_util.cc):
* ``QuantizeMultiplier``: a real multiplier m = q * 2**shift with q in [0.5, 1) stored as
  round(q * 2**31) (round half away from zero), with the q == 1.0 carry.
* Conv/FC effective scale: (double)input_scale * (double)filter_scale / (double)output_scale,
  the float32 scales widened to double before the arithmetic.
* Activation ranges: ``CalculateActivationRangeQuantized``.
* SAME padding: ``ComputePaddingHeightWidth`` (floor of half the total padding).
* Softmax: ``PreprocessSoftmaxScaling`` with 5 integer bits and ``CalculateInputRadius``.
* ADD: both inputs rescaled to twice the larger input scale after a left shift of 20
  (``QuantizeMultiplierSmallerThanOneExp``), the sum to the output scale.
* MEAN: ``QuantizeMultiplier(in_scale / out_scale)`` with 1/count folded in as
  ``QuantizedMeanOrSum`` does at run time.
* LOGISTIC: ``frexp(input_scale * 2^27)`` (4 integer bits) and the input range radius.
* HARD_SWISH: the float32 "hires" and "reluish" scales and ``DownScaleInt32ToInt16Multiplier``.
"""

from __future__ import annotations

import math

import numpy as np

from tinysift.quantize.tflm import tflite_round

INT8_MIN, INT8_MAX = -128, 127
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(quantized_multiplier, shift) with real ~= multiplier * 2**(shift - 31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(tflite_round(q * (1 << 31)))
    if q_fixed > (1 << 31):
        raise ValueError(f"quantize_multiplier overflow for {real}")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return int(q_fixed), int(shift)


def effective_scale(input_scale: float, filter_scale: float, output_scale: float) -> float:
    return (float(np.float32(input_scale)) * float(np.float32(filter_scale))
            / float(np.float32(output_scale)))


def channel_multipliers(input_scale: float, filter_scales: np.ndarray,
                        output_scale: float) -> tuple[np.ndarray, np.ndarray]:
    mults, shifts = [], []
    for fs in np.asarray(filter_scales, dtype=np.float32).reshape(-1):
        m, s = quantize_multiplier(effective_scale(input_scale, float(fs), output_scale))
        mults.append(m)
        shifts.append(s)
    return np.array(mults, dtype=np.int32), np.array(shifts, dtype=np.int32)


#: the fused activations activation_range (and so the engine's clamp) implements
FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """Clamp range of a fused activation in the output's int8 domain (ValueError for one
    not in :data:`FUSED_ACTIVATIONS`)."""
    def quantize(f: float) -> int:
        return zero_point + int(tflite_round(f / float(np.float32(scale))))

    if activation == "NONE":
        return INT8_MIN, INT8_MAX
    if activation == "RELU":
        return max(INT8_MIN, quantize(0.0)), INT8_MAX
    if activation == "RELU6":
        return max(INT8_MIN, quantize(0.0)), min(INT8_MAX, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(INT8_MIN, quantize(-1.0)), min(INT8_MAX, quantize(1.0))
    raise ValueError(f"unsupported fused activation {activation}")


def out_size(padding: str, size: int, filt: int, stride: int, dilation: int = 1) -> int:
    eff = (filt - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size + stride - eff) // stride


def same_padding(size: int, filt: int, stride: int, dilation: int, out: int) -> int:
    eff = (filt - 1) * dilation + 1
    total = max(0, (out - 1) * stride + eff - size)
    return total // 2


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) for int8 softmax."""
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = min(float(beta) * float(np.float32(input_scale)) * float(1 << (31 - bits)),
               float((1 << 31) - 1))
    if real <= 1.0:
        raise ValueError("softmax input multiplier must exceed 1")
    mult, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise ValueError("softmax left shift must be >= 0")
    max_input_rescaled = (1.0 * ((1 << bits) - 1) * float(1 << (31 - bits))
                          / float(1 << left_shift))
    diff_min = -int(math.floor(max_input_rescaled))
    return mult, left_shift, diff_min


ADD_LEFT_SHIFT = 20  # TFLM add for int8


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """``QuantizeMultiplierSmallerThanOneExp``: as QuantizeMultiplier, shift <= 0."""
    if not 0.0 <= real < 1.0:
        raise ValueError(f"multiplier {real} is not below one")
    m, s = quantize_multiplier(real)
    return m, min(s, 0) if m else 0


def add_params(scale1: float, scale2: float, out_scale: float) -> list[tuple[int, int]]:
    """[(m1, s1), (m2, s2), (m_out, s_out)] of TFLM's int8 ADD."""
    s1, s2, so = (float(np.float32(v)) for v in (scale1, scale2, out_scale))
    twice_max = 2.0 * max(s1, s2)
    return [quantize_multiplier_smaller_than_one(s1 / twice_max),
            quantize_multiplier_smaller_than_one(s2 / twice_max),
            quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * so))]


def mean_multiplier(in_scale: float, out_scale: float, count: int) -> tuple[int, int]:
    """The output multiplier of TFLM's QuantizedMeanOrSum for a mean over ``count`` values:
    QuantizeMultiplier(in/out), then shift = min(floor(log2 count), 32, 31 + s),
    m' = (m << shift) // count (int64), s' = s - shift."""
    m, s = quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    shift = min(count.bit_length() - 1, 32, 31 + s)
    m = int((m << shift) // count)
    return m, s - shift


def logistic_params(input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, input_range_radius) of TFLM's int8 LOGISTIC:
    frexp(input_scale * 2^27) -> (q, e), multiplier = round(q * 2^31), radius =
    CalculateInputRadius(4, e, 31)."""
    bits = 4
    real = float(np.float32(input_scale)) * float(1 << (31 - bits))
    q, e = math.frexp(real)
    mult = int(tflite_round(q * float(1 << 31)))
    radius = math.floor(1.0 * ((1 << bits) - 1) * float(1 << (31 - bits)) / float(2.0 ** e))
    return int(mult), int(e), int(radius)


def downscale_int16(m32: int) -> int:
    """``DownScaleInt32ToInt16Multiplier``."""
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (m32 + (1 << 15)) >> 16


def hard_swish_params(in_scale: float, out_scale: float) -> tuple[int, int, int, int]:
    """(output multiplier int16, output exponent, reluish multiplier int16, reluish exponent)
    of TFLM's int8 HARD_SWISH, the scales combined in float32 as its Prepare does."""
    f32 = np.float32
    hires = f32(1.0 / 128.0) * f32(in_scale)
    reluish_scale = f32(3.0) / f32(32768.0)
    om, oe = quantize_multiplier(float(f32(hires / f32(out_scale))))
    rm, re = quantize_multiplier(float(f32(hires / reluish_scale)))
    return downscale_int16(om), oe, downscale_int16(rm), re
