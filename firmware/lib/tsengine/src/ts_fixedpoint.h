/*
 * tinysift engine: integer fixed-point helpers with the semantics of gemmlowp's
 * fixedpoint.h and TensorFlow Lite's kernels/internal/common.h, written from the published
 * definitions (TFLite int8 quantization spec; gemmlowp fixed-point documentation).
 *
 * Rounding variant: the TFLM runtime (tflite-micro Python wheel, checked against its
 * outputs) is built with TFLITE_SINGLE_ROUNDING=0, i.e. the *double-rounding*
 * MultiplyByQuantizedMultiplier: a saturating rounding doubling high multiply followed by a
 * rounding (half away from zero) right shift. Define TS_SINGLE_ROUNDING=1 to get the
 * single-rounding variant instead (for runtimes built that way).
 *
 * Every helper is free of undefined behaviour for every int32 input: products are formed
 * in int64, left shifts that can wrap are done on uint32 (two's-complement wrap, as the
 * hardware and TFLM do), right shifts of negative values are arithmetic (implementation-
 * defined in C99; arithmetic with every compiler this project supports, checked below).
 */
#ifndef TS_FIXEDPOINT_H
#define TS_FIXEDPOINT_H

#include <stdint.h>

#ifndef TS_SINGLE_ROUNDING
#define TS_SINGLE_ROUNDING 0
#endif

#if ((-1) >> 1) != -1
#error "tsengine needs arithmetic right shifts of negative integers"
#endif

#define TS_INT32_MIN (-2147483647 - 1)
#define TS_INT32_MAX 2147483647

/* x * 2^n with two's-complement wrap-around (n in [0, 31]). */
static inline int32_t ts_shl_wrap(int32_t x, int n) {
    return (int32_t)((uint32_t)x << n);
}

/* a + b with two's-complement wrap-around (gemmlowp's int32 fixed-point Add). */
static inline int32_t ts_add_wrap(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

/* Can an int8 layer's int32 accumulator overflow? k products of (q - zp) in [-255, 255] and
 * an int8 weight, plus a bias of magnitude up to max_abs_bias (k, max_abs_bias >= 0, k below
 * 2^31): nonzero when k * 255 * 128 + max_abs_bias <= INT32_MAX, whatever the summation
 * order. The executor's check of every FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D, and the
 * trainer's of its re-quantized head. */
static inline int ts_acc_bound_ok(int64_t k, int64_t max_abs_bias) {
    return k * 255 * 128 + max_abs_bias <= (int64_t)TS_INT32_MAX;
}

/* gemmlowp SaturatingRoundingDoublingHighMul: a * b / 2^31 rounded to nearest (a tie
 * rounds up, toward +infinity: the negative nudge is 1 - 2^30 and the division truncates),
 * saturating the single overflow case a == b == INT32_MIN. */
static inline int32_t ts_srdhm(int32_t a, int32_t b) {
    int64_t ab, nudge, q;
    if (a == TS_INT32_MIN && b == TS_INT32_MIN) {
        return TS_INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? (int64_t)1 << 30 : 1 - ((int64_t)1 << 30);
    q = ab + nudge;
    /* C division truncates toward zero, as gemmlowp's does. */
    return (int32_t)(q / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero (exponent in
 * [0, 31]). */
static inline int32_t ts_rdbpot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier(x, multiplier, shift): x * multiplier * 2^(shift-31)
 * with multiplier in [0, 2^31) and shift in [-31, 30] (> 0: left shift). */
static inline int32_t ts_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
#if TS_SINGLE_ROUNDING
    const int total_shift = 31 - (int)shift;
    const int64_t round = (int64_t)1 << (total_shift - 1);
    return (int32_t)(((int64_t)x * multiplier + round) >> total_shift);
#else
    const int left_shift = shift > 0 ? (int)shift : 0;
    const int right_shift = shift > 0 ? 0 : (int)-shift;
    return ts_rdbpot(ts_srdhm(ts_shl_wrap(x, left_shift), multiplier), right_shift);
#endif
}

/*
 * The same function, arranged for speed (the DSP path uses it). With multiplier >= 0 the
 * saturating case of SRDHM cannot occur, and for every product p = a * b,
 *   trunc((p + nudge) / 2^31) == floor((p + 2^30) / 2^31)
 * (for p < 0: trunc((p + 1 - 2^30) / 2^31) = floor((p + 1 - 2^30 + 2^31 - 1) / 2^31)), and
 * RoundingDivideByPOT(y, e) == (y + 2^(e-1) - (y < 0)) >> e for e >= 1. Bit-exact with
 * ts_mbqm for multiplier in [0, 2^31); checked by the engine's unit tests.
 */
static inline int32_t ts_mbqm_fast(int32_t x, int32_t multiplier, int32_t shift) {
#if TS_SINGLE_ROUNDING
    return ts_mbqm(x, multiplier, shift);
#else
    int32_t y;
    if (shift > 0) {
        x = ts_shl_wrap(x, (int)shift);
    }
    y = (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
    if (shift < 0) {
        const int e = (int)-shift;
        y = (int32_t)(((int64_t)y + ((int64_t)1 << (e - 1)) - (y < 0 ? 1 : 0)) >> e);
    }
    return y;
#endif
}

/* TFLite MultiplyByQuantizedMultiplierGreaterThanOne (left_shift >= 0). */
static inline int32_t ts_mbqm_gt_one(int32_t x, int32_t multiplier, int left_shift) {
#if TS_SINGLE_ROUNDING
    return ts_mbqm(x, multiplier, left_shift);
#else
    return ts_srdhm(ts_shl_wrap(x, left_shift), multiplier);
#endif
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for int32, exponent in [-31, 31]. */
static inline int32_t ts_sat_mul_pot(int32_t x, int exponent) {
    if (exponent > 0) {
        const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
        if (x > threshold) {
            return TS_INT32_MAX;
        }
        if (x < -threshold) {
            return TS_INT32_MIN;
        }
        return ts_shl_wrap(x, exponent);
    }
    if (exponent < 0) {
        return ts_rdbpot(x, -exponent);
    }
    return x;
}

static inline int32_t ts_clamp_i32(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

#endif /* TS_FIXEDPOINT_H */
