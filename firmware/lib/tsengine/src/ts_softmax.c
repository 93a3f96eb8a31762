/*
 * tinysift engine: int8 -> int8 SOFTMAX (and LOGISTIC, at the end of the file), bit-exact with TFLite's reference_ops::Softmax for
 * quantized types (the kernel TFLM runs for int8 input and int8 output), which evaluates
 * exp and 1/x in gemmlowp fixed point:
 *
 *   for each row (the last dimension):
 *     max = max(x)
 *     for each x with d = x - max >= diff_min:
 *       e = exp_on_negative_values(Q5.26: MultiplyByQuantizedMultiplierGreaterThanOne(
 *                                   d, input_multiplier, input_left_shift))      (Q0.31)
 *       sum += Rescale<12>(e)                                                     (Q12.19)
 *     scale = GetReciprocal(sum)       1/sum as a Q0.31 value and num_bits_over_unit
 *     y = RoundingDivideByPOT(scale * e, num_bits_over_unit + 31 - 8) - 128, saturated;
 *     y = -128 where d < diff_min
 *
 * The fixed-point helpers below are gemmlowp's (fixedpoint.h): FixedPoint<int32, n> values
 * are plain int32 raws here; a product of Qa and Qb is SaturatingRoundingDoublingHighMul of
 * the raws (a Q(a+b) value), Rescale<dst> of a Qsrc value is SaturatingRoundingMultiplyByPOT
 * by (src - dst), + and - are wrapping int32 operations.
 */
#include "ts_fixedpoint.h"
#include "ts_kernels.h"

#define TS_SOFTMAX_DIFF_INTEGER_BITS 5  /* Q5.26 scaled differences */
#define TS_SOFTMAX_ACCUM_INTEGER_BITS 12 /* Q12.19 sum of exponentials */

/* gemmlowp RoundingHalfSum for int32: (a + b) / 2 rounded half away from zero. */
static int32_t rounding_half_sum(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl: exp(a) for a in
 * [-1/4, 0), Q0.31 in and out; a 4th-order Taylor expansion around -1/8. */
static int32_t exp_on_interval_quarter(int32_t a) {
    const int32_t constant_term = 1895147668;     /* exp(-1/8) in Q0.31 */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 in Q0.31 */
    const int32_t x = ts_add_wrap(a, (int32_t)1 << 28); /* a + 1/8 */
    const int32_t x2 = ts_srdhm(x, x);
    const int32_t x3 = ts_srdhm(x2, x);
    const int32_t x4 = ts_srdhm(x2, x2);
    const int32_t x4_over_4 = ts_sat_mul_pot(x4, -2);
    const int32_t poly = ts_sat_mul_pot(
        ts_add_wrap(ts_srdhm(ts_add_wrap(x4_over_4, x3), constant_1_over_3), x2), -1);
    return ts_add_wrap(constant_term, ts_srdhm(constant_term, ts_add_wrap(x, poly)));
}

/* gemmlowp exp_on_negative_values for a Q(integer_bits) input a <= 0 (integer_bits 4 or
 * 5); returns exp(a) in Q0.31. */
static int32_t exp_on_negative_values(int32_t a, int integer_bits) {
    /* Barrel shifter constants exp(-2^k) in Q0.31, for k = -2 .. 4. */
    static const int32_t multipliers[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242
    };
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = (int32_t)((a & mask) - one_quarter);
    int32_t result = exp_on_interval_quarter(
        ts_sat_mul_pot(a_mod_quarter_minus_one_quarter, integer_bits));
    const int32_t remainder = (int32_t)((uint32_t)a_mod_quarter_minus_one_quarter - (uint32_t)a);
    int k;

    /* exponents k - 2 below integer_bits only (gemmlowp's kIntegerBits > Exponent) */
    for (k = 0; k < 7 && k - 2 < integer_bits; ++k) {
        const int shift_amount = fractional_bits + (k - 2);
        if ((remainder & ((int32_t)1 << shift_amount)) != 0) {
            result = ts_srdhm(result, multipliers[k]);
        }
    }
    /* (With at most 5 integer bits no clamp to -32 is needed.) */
    return a == 0 ? TS_INT32_MAX : result;
}

static int32_t exp_on_negative_values_q5(int32_t a) {
    return exp_on_negative_values(a, TS_SOFTMAX_DIFF_INTEGER_BITS);
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: 1/(1 + a) for a in [0, 1), Q0.31 in and out;
 * Newton-Raphson with the 48/17 and 32/17 start, three iterations in Q2.29. */
static int32_t one_over_one_plus_x(int32_t a) {
    const int32_t half_denominator = rounding_half_sum(a, TS_INT32_MAX);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t one_q2 = (int32_t)1 << 29;
    int32_t x = ts_add_wrap(constant_48_over_17,
                            ts_srdhm(half_denominator, constant_neg_32_over_17));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = ts_srdhm(half_denominator, x);
        const int32_t one_minus = (int32_t)((uint32_t)one_q2 - (uint32_t)half_denominator_times_x);
        x = ts_add_wrap(x, ts_sat_mul_pot(ts_srdhm(x, one_minus), 2)); /* Q4 -> Q2 */
    }
    /* ExactMulByPot<-1> (Q2 -> Q1, same raw), then Rescale<0> (Q1 -> Q0). */
    return ts_sat_mul_pot(x, 1);
}

static int count_leading_zeros(uint32_t x) {
    int n = 0;
    if (x == 0u) {
        return 32;
    }
    while ((x & 0x80000000u) == 0u) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* TFLite GetReciprocal: 1/x for a Q(integer_digits) x > 0, as a Q0.31 scale and the number
 * of bits the result must be shifted right by. */
static int32_t get_reciprocal(int32_t x, int integer_digits, int *num_bits_over_unit) {
    const int headroom_plus_one = count_leading_zeros((uint32_t)x);
    const int32_t shifted_sum_minus_one =
        (int32_t)(((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31));
    *num_bits_over_unit = integer_digits - headroom_plus_one;
    return one_over_one_plus_x(shifted_sum_minus_one);
}

void ts_softmax_s8(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t depth = p->in.c;
    const int32_t rows = p->in.h * p->in.w;
    const int32_t multiplier = p->softmax_input_multiplier;
    const int left_shift = (int)p->softmax_input_left_shift;
    const int32_t diff_min = p->softmax_diff_min;
    int32_t r, c;

    for (r = 0; r < rows; ++r) {
        const int8_t *x = input + (size_t)r * (size_t)depth;
        int8_t *y = output + (size_t)r * (size_t)depth;
        int32_t max = -128;
        int32_t sum_of_exps = 0; /* Q12.19 */
        int32_t scale;
        int num_bits_over_unit;

        for (c = 0; c < depth; ++c) {
            max = x[c] > max ? x[c] : max;
        }
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max;
            if (diff >= diff_min) {
                const int32_t scaled = ts_mbqm_gt_one(diff, multiplier, left_shift);
                const int32_t e = exp_on_negative_values_q5(scaled);
                sum_of_exps = ts_add_wrap(
                    sum_of_exps, ts_sat_mul_pot(e, -TS_SOFTMAX_ACCUM_INTEGER_BITS));
            }
        }
        scale = get_reciprocal(sum_of_exps, TS_SOFTMAX_ACCUM_INTEGER_BITS, &num_bits_over_unit);
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max;
            if (diff >= diff_min) {
                const int32_t scaled = ts_mbqm_gt_one(diff, multiplier, left_shift);
                const int32_t e = exp_on_negative_values_q5(scaled);
                const int32_t unsat = ts_rdbpot(ts_srdhm(scale, e), num_bits_over_unit + 31 - 8);
                y[c] = (int8_t)ts_clamp_i32(unsat - 128, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}

/* ---- LOGISTIC (TFLM reference_integer_ops::Logistic for int8) ----------------------------
 *
 *   x = input - input_zero_point
 *   x <= -radius: -128;  x >= radius: 127
 *   else: q = MultiplyByQuantizedMultiplier(x, input_multiplier, input_left_shift)   (Q4.27)
 *         y = RoundingDivideByPOT(gemmlowp::logistic(q), 31 - 8) - 128, saturated
 * gemmlowp::logistic(a) = 1/(1 + exp(-|a|)) for a > 0, 1 - that for a < 0, 1/2 at 0, with
 * exp_on_negative_values and one_over_one_plus_x_for_x_in_0_1 as in the softmax above. */
#define TS_LOGISTIC_INPUT_INTEGER_BITS 4

static int32_t logistic_q0(int32_t a) {
    int32_t pos;
    if (a == 0) {
        return (int32_t)1 << 30; /* one half */
    }
    /* logistic_on_positive_values(|a|) = 1/(1 + exp(-|a|)) */
    pos = one_over_one_plus_x(
        exp_on_negative_values(a > 0 ? -a : a, TS_LOGISTIC_INPUT_INTEGER_BITS));
    /* ResultF::One() - x: One() of Q0.31 saturates to INT32_MAX; wrapping subtraction */
    return a > 0 ? pos : (int32_t)((uint32_t)TS_INT32_MAX - (uint32_t)pos);
}

void ts_logistic_s8(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const size_t n = (size_t)p->out.h * (size_t)p->out.w * (size_t)p->out.c;
    const int32_t radius = p->softmax_diff_min;
    size_t i;
    for (i = 0; i < n; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        if (x <= -radius) {
            output[i] = -128;
        } else if (x >= radius) {
            output[i] = 127;
        } else {
            const int32_t q = ts_mbqm(x, p->softmax_input_multiplier,
                                      p->softmax_input_left_shift);
            const int32_t y = ts_rdbpot(logistic_q0(q), 31 - 8) - 128;
            output[i] = (int8_t)ts_clamp_i32(y, -128, 127);
        }
    }
}
