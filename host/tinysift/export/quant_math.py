"""Integer quantization parameters computed exactly as TFLite Micro computes them in Prepare.

References (TensorFlow Lite quantization spec and kernels/internal/quantization_util.cc):
* ``QuantizeMultiplier``: a real multiplier m = q * 2**shift with q in [0.5, 1) stored as
  round(q * 2**31) (round half away from zero), with the q == 1.0 carry.
* Conv/FC effective scale: (double)input_scale * (double)filter_scale / (double)output_scale,
  the float32 scales widened to double before the arithmetic.
* Activation ranges: ``CalculateActivationRangeQuantized``.
* SAME padding: ``ComputePaddingHeightWidth`` (floor of half the total padding).
* Softmax: ``PreprocessSoftmaxScaling`` with 5 integer bits and ``CalculateInputRadius``.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5


def tflite_round(x: float) -> int:
    """std::round: half away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(quantized_multiplier, shift) with real ~= multiplier * 2**(shift - 31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
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


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """Clamp range of a fused activation in the output's int8 domain."""
    def quantize(f: float) -> int:
        return zero_point + tflite_round(f / float(np.float32(scale)))

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
