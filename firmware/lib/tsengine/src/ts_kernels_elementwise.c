/*
 * tinysift engine: element-wise, reduction and data-movement kernels, bit-exact with the
 * TFLite Micro reference kernels for int8 (see ts_kernels.h for each op's parameters):
 *
 *   ADD         reference_integer_ops::Add (AddElementwise / BroadcastAdd): both inputs
 *               shifted left by 20 and rescaled to twice the larger input scale, summed,
 *               rescaled to the output scale; MultiplyByQuantizedMultiplierSmallerThanOneExp
 *               is MultiplyByQuantizedMultiplier with a shift <= 0 (ts_mbqm).
 *   MUL         reference_integer_ops::Mul (MulElementwise / BroadcastMul).
 *   MEAN        reduce.cc EvalIntegerMean: QuantizedMeanOrSum (the count folded into the
 *               output multiplier on the host; TFLM takes this path for equal input and
 *               output quantization too).
 *   PAD         reference_ops::Pad with the output zero point as the pad value.
 *   CONCATENATION  reference_ops::Concatenation (int8 inputs are copied, never rescaled).
 *   HARD_SWISH  reference_ops::HardSwish (16-bit fixed point, the "reluish" multiplier).
 * LOGISTIC is in ts_softmax.c (it shares gemmlowp's exp and 1/(1+x)).
 *
 * Parameters were validated by ts_layer_check (ts_executor.c): these functions only compute.
 */
#include <string.h>

#include "ts_fixedpoint.h"
#include "ts_kernels.h"

#define TS_ADD_LEFT_SHIFT 20 /* TFLM add: left_shift = 20 for int8 */

/* Element strides of an operand broadcast to the output: 0 along a dim of 1. */
typedef struct {
    size_t y, x, c;
} ts_bstride_t;

static ts_bstride_t bstride(ts_dims_t d) {
    ts_bstride_t s;
    s.c = d.c == 1 ? 0u : 1u;
    s.x = d.w == 1 ? 0u : (size_t)d.c;
    s.y = d.h == 1 ? 0u : (size_t)d.w * (size_t)d.c;
    return s;
}

static int dims_same(ts_dims_t a, ts_dims_t b) { return a.h == b.h && a.w == b.w && a.c == b.c; }

static inline int8_t add_one(const ts_layer_t *p, int32_t a, int32_t b) {
    const int32_t x1 = ts_shl_wrap(a - p->input_zero_point, TS_ADD_LEFT_SHIFT);
    const int32_t x2 = ts_shl_wrap(b - p->input2_zero_point, TS_ADD_LEFT_SHIFT);
    const int32_t s1 = ts_mbqm(x1, p->multiplier[0], p->shift[0]);
    const int32_t s2 = ts_mbqm(x2, p->multiplier[1], p->shift[1]);
    /* s1 + s2 cannot wrap (shifts <= 0 keep each within 255 << 20); the output zero point is
     * added wrapping, as TFLM's int32 add does on the target (a shift > 0 can bring the
     * rescaled sum near INT32_MIN/MAX) */
    const int32_t y = ts_add_wrap(ts_mbqm(s1 + s2, p->multiplier[2], p->shift[2]),
                                  p->output_zero_point);
    return (int8_t)ts_clamp_i32(y, p->act_min, p->act_max);
}

static inline int8_t mul_one(const ts_layer_t *p, int32_t a, int32_t b) {
    const int32_t prod = (a - p->input_zero_point) * (b - p->input2_zero_point);
    const int32_t y = ts_add_wrap(ts_mbqm(prod, p->multiplier[0], p->shift[0]),
                                  p->output_zero_point); /* wraps as ADD's (above) */
    return (int8_t)ts_clamp_i32(y, p->act_min, p->act_max);
}

/* The loops of ADD and MUL: flat when no operand broadcasts, else by output coordinate. */
#define TS_BINARY_LOOP(ONE)                                                                    \
    do {                                                                                       \
        if (dims_same(p->in, p->out) && dims_same(p->in2, p->out)) {                           \
            const size_t n_ = (size_t)p->out.h * (size_t)p->out.w * (size_t)p->out.c;         \
            size_t i_;                                                                         \
            for (i_ = 0; i_ < n_; ++i_) {                                                      \
                output[i_] = ONE(p, input1[i_], input2[i_]);                                   \
            }                                                                                  \
        } else {                                                                               \
            const ts_bstride_t s1_ = bstride(p->in), s2_ = bstride(p->in2);                    \
            int32_t y_, x_, c_;                                                                \
            for (y_ = 0; y_ < p->out.h; ++y_) {                                                \
                for (x_ = 0; x_ < p->out.w; ++x_) {                                            \
                    const int8_t *a_ = input1 + (size_t)y_ * s1_.y + (size_t)x_ * s1_.x;       \
                    const int8_t *b_ = input2 + (size_t)y_ * s2_.y + (size_t)x_ * s2_.x;       \
                    for (c_ = 0; c_ < p->out.c; ++c_) {                                        \
                        *output++ = ONE(p, a_[(size_t)c_ * s1_.c], b_[(size_t)c_ * s2_.c]);     \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    } while (0)

void ts_add_s8(const ts_layer_t *p, const int8_t *input1, const int8_t *input2, int8_t *output) {
    TS_BINARY_LOOP(add_one);
}

void ts_mul_s8(const ts_layer_t *p, const int8_t *input1, const int8_t *input2, int8_t *output) {
    TS_BINARY_LOOP(mul_one);
}

void ts_mean_s8(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t depth = p->in.c;
    const int32_t count = p->in.h * p->in.w;
    const size_t pixels = (size_t)count;
    int32_t c;
    for (c = 0; c < depth; ++c) {
        const int8_t *x = input + c;
        int32_t sum = 0, y;
        size_t i;
        for (i = 0; i < pixels; ++i) {
            sum += x[i * (size_t)depth];
        }
        /* wraps as ADD's (above): found by the model fuzzer (UBSan, a shift of 30) */
        y = ts_add_wrap(ts_mbqm(sum - p->input_zero_point * count, p->multiplier[0],
                                p->shift[0]),
                        p->output_zero_point);
        output[c] = (int8_t)ts_clamp_i32(y, -128, 127);
    }
}

void ts_pad_s8(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t top = p->pad_h, left = p->pad_w, front = p->pad_c;
    const int32_t in_h = p->in.h, in_w = p->in.w, in_c = p->in.c;
    const int32_t out_w = p->out.w, out_c = p->out.c;
    const size_t out_row = (size_t)out_w * (size_t)out_c;
    const int8_t fill = (int8_t)p->output_zero_point;
    int32_t y, x;
    memset(output, fill, (size_t)p->out.h * out_row);
    for (y = 0; y < in_h; ++y) {
        for (x = 0; x < in_w; ++x) {
            memcpy(output + (size_t)(y + top) * out_row + (size_t)(x + left) * (size_t)out_c
                       + (size_t)front,
                   input + ((size_t)y * (size_t)in_w + (size_t)x) * (size_t)in_c, (size_t)in_c);
        }
    }
}

void ts_concatenation_s8(const ts_layer_t *p, const ts_dims_t *in_dims,
                         const int8_t *const *inputs, int8_t *output) {
    /* outer: the product of the dims before the axis; each input contributes a block of
     * (its extent along the axis) x (the dims after it) per outer index */
    const int32_t outer = p->axis == 0 ? 1 : (p->axis == 1 ? p->out.h : p->out.h * p->out.w);
    const uint32_t count = p->num_inputs;
    int32_t o;
    uint32_t k;
    for (o = 0; o < outer; ++o) {
        for (k = 0; k < count; ++k) {
            const ts_dims_t d = in_dims[k];
            const size_t block = p->axis == 0 ? (size_t)d.h * (size_t)d.w * (size_t)d.c
                                 : p->axis == 1 ? (size_t)d.w * (size_t)d.c : (size_t)d.c;
            memcpy(output, inputs[k] + (size_t)o * block, block);
            output += block;
        }
    }
}

/* ---- HARD_SWISH: 16-bit fixed point ------------------------------------------------------ */

static int16_t sat16(int64_t v) {
    return (int16_t)(v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
}

/* gemmlowp SaturatingRoundingDoublingHighMul for int16 (ties toward +infinity). */
static int16_t srdhm16(int16_t a, int16_t b) {
    const int32_t ab = (int32_t)a * (int32_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    if (a == b && a == -32768) {
        return 32767;
    }
    return (int16_t)((ab + nudge) / (1 << 15));
}

/* TFLite SaturatingDoublingHighMul for int16 (SQDMULH: rounds toward zero). */
static int16_t sdhm16(int16_t a, int16_t b) {
    if (a == b && a == -32768) {
        return 32767;
    }
    return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

/* gemmlowp RoundingDivideByPOT on an int16 value. */
static int16_t rdbpot16(int16_t x, int exponent) {
    return (int16_t)ts_rdbpot((int32_t)x, exponent);
}

void ts_hard_swish_s8(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const size_t n = (size_t)p->out.h * (size_t)p->out.w * (size_t)p->out.c;
    const int16_t out_mult = (int16_t)p->multiplier[0];
    const int out_exp = (int)p->shift[0];         /* <= 0 */
    const int16_t relu_mult = (int16_t)p->multiplier[1];
    const int relu_exp = (int)p->shift[1];
    size_t i;
    for (i = 0; i < n; ++i) {
        const int16_t v = (int16_t)((int32_t)input[i] - p->input_zero_point);
        const int16_t hires = (int16_t)(v * (1 << 7));
        const int16_t preshift = srdhm16(hires, out_mult);
        int16_t reluish = hires;
        int32_t y;
        if (relu_exp > 0) {
            reluish = sat16((int64_t)reluish * ((int64_t)1 << (relu_exp - 1)));
        }
        reluish = srdhm16(reluish, relu_mult);
        if (relu_exp > 0) {
            reluish = sat16((int64_t)reluish * 2);
        }
        if (relu_exp < 0) {
            reluish = rdbpot16(reluish, -relu_exp);
        }
        reluish = (int16_t)(((int32_t)reluish + (1 << 15)) >> 1);
        y = rdbpot16(sdhm16(reluish, preshift), -out_exp);
        y += p->output_zero_point;
        output[i] = (int8_t)ts_clamp_i32(y, -128, 127);
    }
}
