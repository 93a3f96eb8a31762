/*
 * Engine tests that need no export:
 *   - fixed point: the fast MultiplyByQuantizedMultiplier equals the gemmlowp-literal one;
 *   - kernels: the DSP path equals the scalar path on random layers (odd channel counts,
 *     strides, dilation, SAME/VALID padding, depth multipliers, per-tensor quantization);
 *   - malformed layer tables are refused with the right status code (wrong version, shapes
 *     that do not chain, arena too small, bad op, NULL arrays, out-of-range parameters),
 *     and random single-field corruptions never get past ts_model_check into undefined
 *     behaviour (run under -fsanitize=address,undefined by tests/test_engine_golden.py and
 *     the PlatformIO env native-asan);
 *   - the trainer's and the replay buffer's buffer sizes: products of caller counts taken in
 *     64 bits and refused from 2^31 bytes (they wrapped the 32-bit size_t of the target);
 *   - the replay buffer's config and offer refusals, each at its boundary.
 */
#include <stdint.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_fixedpoint.h"
#include "ts_kernels.h"
#include "ts_platform.h"
#include "ts_replay.h"
#include "ts_test.h"
#include "ts_trainer.h"

/* Fewer random trials under the instruction-counting emulator. */
#if defined(TS_TARGET_QEMU)
#define TRIALS(n) ((n) / 10u)
#else
#define TRIALS(n) (n)
#endif

static uint32_t g_rng = 0x12345678u;

static uint32_t rnd(void) { /* xorshift32 */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

static int32_t rnd_range(int32_t lo, int32_t hi) { /* inclusive */
    return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1));
}

/* ---- fixed point ---------------------------------------------------------------------- */

static void test_mbqm_fast_equals_reference(void) {
    static const int32_t xs[] = {0, 1, -1, 2, -2, 3, -3, 127, -128, 1 << 20, -(1 << 20),
                                 TS_INT32_MAX, TS_INT32_MIN, TS_INT32_MIN + 1, 1 << 30,
                                 -(1 << 30), 0x3FFFFFFF, -0x3FFFFFFF};
    static const int32_t ms[] = {0, 1, 1 << 30, (1 << 30) + 1, TS_INT32_MAX, 1518500250,
                                 1932735283};
    size_t a, b;
    int32_t s;
    uint32_t i;
    for (a = 0; a < sizeof xs / sizeof xs[0]; ++a) {
        for (b = 0; b < sizeof ms / sizeof ms[0]; ++b) {
            for (s = -31; s <= 30; ++s) {
                const int32_t r = ts_mbqm(xs[a], ms[b], s), f = ts_mbqm_fast(xs[a], ms[b], s);
                if (r != f) {
                    TS_FAIL_("x=%ld m=%ld s=%ld: %ld vs %ld", (long)xs[a], (long)ms[b], (long)s,
                             (long)r, (long)f);
                }
            }
        }
    }
    for (i = 0; i < TRIALS(200000u); ++i) {
        const int32_t x = (i & 1u) ? (int32_t)rnd() : rnd_range(-5000000, 5000000);
        const int32_t m = (int32_t)(rnd() >> 1);
        const int32_t s = rnd_range(-31, 30);
        if (ts_mbqm(x, m, s) != ts_mbqm_fast(x, m, s)) {
            TS_FAIL_("x=%ld m=%ld s=%ld", (long)x, (long)m, (long)s);
        }
    }
}

static void test_rounding_primitives(void) {
    /* gemmlowp semantics: SRDHM rounds half away from zero and saturates MIN*MIN. */
    TS_ASSERT_EQ_INT(TS_INT32_MAX, ts_srdhm(TS_INT32_MIN, TS_INT32_MIN));
    TS_ASSERT_EQ_INT(1, ts_srdhm(1 << 30, 2));           /* 2^31/2^31 */
    TS_ASSERT_EQ_INT(1, ts_srdhm(1 << 30, 1));           /* 0.5 -> 1 */
    TS_ASSERT_EQ_INT(-1, ts_srdhm(-(3 << 28), 4));       /* -1.5 -> -1 */
    TS_ASSERT_EQ_INT(0, ts_srdhm(-(1 << 30), 1));        /* -0.5 -> 0: ties toward +inf */
    TS_ASSERT_EQ_INT(-1, ts_srdhm(-(1 << 30) - 1, 1));
    TS_ASSERT_EQ_INT(0, ts_srdhm((1 << 30) - 1, 1));
    /* RoundingDivideByPOT: half away from zero */
    TS_ASSERT_EQ_INT(2, ts_rdbpot(3, 1));
    TS_ASSERT_EQ_INT(-2, ts_rdbpot(-3, 1));
    TS_ASSERT_EQ_INT(1, ts_rdbpot(5, 2));  /* 1.25 */
    TS_ASSERT_EQ_INT(-1, ts_rdbpot(-5, 2));
    TS_ASSERT_EQ_INT(2, ts_rdbpot(6, 2));  /* 1.5 */
    TS_ASSERT_EQ_INT(-2, ts_rdbpot(-6, 2));
    TS_ASSERT_EQ_INT(-1, ts_rdbpot(TS_INT32_MIN, 31));
    TS_ASSERT_EQ_INT(1, ts_rdbpot(TS_INT32_MAX, 31));
    TS_ASSERT_EQ_INT(TS_INT32_MAX, ts_sat_mul_pot(1 << 30, 1));
    TS_ASSERT_EQ_INT(TS_INT32_MIN, ts_sat_mul_pot(-(1 << 30) - 1, 1));
    TS_ASSERT_EQ_INT(-(1 << 30) * 2, ts_sat_mul_pot(-(1 << 30), 1));
}

/* ---- random layers: DSP path == scalar path --------------------------------------------- */

#define MAXW 4096
#define MAXA 8192
static int8_t g_w[MAXW];
static int32_t g_bias[64], g_mult[64], g_shift[64];
/* g_out_dsp: 8 guard bytes past the largest output (a DSP kernel writes no byte past its own) */
static int8_t g_in[MAXA], g_out_ref[MAXA], g_out_dsp[MAXA + 8];

static int32_t out_size(int same, int32_t in, int32_t f, int32_t s, int32_t d) {
    const int32_t eff = (f - 1) * d + 1;
    return same ? (in + s - 1) / s : (in + s - eff) / s;
}

static int16_t same_pad(int32_t in, int32_t f, int32_t s, int32_t d, int32_t out) {
    const int32_t eff = (f - 1) * d + 1;
    const int32_t total = (out - 1) * s + eff - in;
    return (int16_t)(total > 0 ? total / 2 : 0);
}

/* Strides drawn in [1, g_max_stride] (one draw each whatever the bound: the same sequence). */
static int32_t g_max_stride = 2;

/* A random valid conv-like layer of `op`; returns 0 when the draw is degenerate. */
static int random_layer(ts_layer_t *l, uint8_t op) {
    const int same = (int)(rnd() & 1u);
    int32_t oc, k, i;
    memset(l, 0, sizeof *l);
    l->op = op;
    l->padding = (uint8_t)(same ? TS_PAD_SAME : TS_PAD_VALID);
    l->stride_h = (uint8_t)rnd_range(1, g_max_stride);
    l->stride_w = (uint8_t)rnd_range(1, g_max_stride);
    l->dilation_h = (uint8_t)((rnd() % 4u) == 0 ? 2 : 1);
    l->dilation_w = (uint8_t)((rnd() % 4u) == 0 ? 2 : 1);
    l->filter_h = (uint8_t)rnd_range(1, 3);
    l->filter_w = (uint8_t)rnd_range(1, 3);
    l->depth_multiplier = 1;
    if (op == TS_OP_DEPTHWISE_CONV_2D && (rnd() % 2u) == 0) {
        /* half the depthwise layers: the 3x3 shape with its own DSP path (channel planes) */
        l->filter_h = l->filter_w = 3;
        l->dilation_h = l->dilation_w = 1;
    }
    l->in.h = rnd_range(1, 9);
    l->in.w = rnd_range(1, 9);
    l->in.c = rnd_range(1, 13);
    if (op == TS_OP_FULLY_CONNECTED) {
        l->in.h = 1;
        l->in.w = rnd_range(1, 4);
        l->in.c = rnd_range(1, 80);
        l->out.h = 1;
        l->out.w = 1;
        l->out.c = rnd_range(1, 11);
        k = l->in.w * l->in.c;
        oc = l->out.c;
        l->filter_h = l->filter_w = 1;
        l->stride_h = l->stride_w = 1;
        l->dilation_h = l->dilation_w = 1;
        l->padding = TS_PAD_VALID;
    } else {
        l->out.h = out_size(same, l->in.h, l->filter_h, l->stride_h, l->dilation_h);
        l->out.w = out_size(same, l->in.w, l->filter_w, l->stride_w, l->dilation_w);
        if (l->out.h < 1 || l->out.w < 1) {
            return 0;
        }
        l->pad_h = same_pad(l->in.h, l->filter_h, l->stride_h, l->dilation_h, l->out.h);
        l->pad_w = same_pad(l->in.w, l->filter_w, l->stride_w, l->dilation_w, l->out.w);
        if (op == TS_OP_CONV_2D) {
            l->out.c = rnd_range(1, 11);
            k = l->filter_h * l->filter_w * l->in.c;
        } else {
            l->depth_multiplier = (uint16_t)((rnd() % 3u) == 0 && l->filter_h != 3 ? 2 : 1);
            l->out.c = l->in.c * l->depth_multiplier;
            k = l->filter_h * l->filter_w;
        }
        oc = l->out.c;
    }
    if (k * oc > MAXW || l->in.h * l->in.w * l->in.c > MAXA ||
        l->out.h * l->out.w * l->out.c > MAXA || oc > 64) {
        return 0;
    }
    for (i = 0; i < k * oc; ++i) {
        g_w[i] = (int8_t)rnd_range(-128, 127);
    }
    for (i = 0; i < l->in.h * l->in.w * l->in.c; ++i) {
        g_in[i] = (int8_t)rnd_range(-128, 127);
    }
    {
        /* mostly right shifts (the DSP kernels' fast requantization); sometimes a shift >= 0
         * or a huge bias (their scalar fallback) */
        const int left = (rnd() % 8u) == 0;
        const int huge = (rnd() % 8u) == 0;
        for (i = 0; i < oc; ++i) {
            g_bias[i] = huge ? rnd_range(-1000000000, 1000000000) : rnd_range(-200000, 200000);
            g_mult[i] = (int32_t)((rnd() >> 1) | 0x40000000u);
            g_shift[i] = left ? rnd_range(-3, 2) : rnd_range(-14, -1);
        }
    }
    l->weights = g_w;
    l->weights_len = (uint32_t)(k * oc);
    l->bias = (rnd() % 4u) == 0 ? NULL : g_bias;
    l->bias_len = l->bias ? (uint32_t)oc : 0u;
    l->multiplier = g_mult;
    l->shift = g_shift;
    l->quant_len = (rnd() % 3u) == 0 ? 1u : (uint32_t)oc;
    l->input_zero_point = rnd_range(-128, 127);
    l->output_zero_point = rnd_range(-128, 127);
    l->act_min = rnd_range(-128, 0);
    l->act_max = rnd_range(0, 127);
    return 1;
}

/* A FULLY_CONNECTED layer of `in` inputs and `out` units from hand-written tables (weights
 * out x in, per-unit bias, multiplier and shift), zero points 0, no activation clamp. */
static void hand_fc(ts_layer_t *l, int32_t in, int32_t out, const int8_t *w, const int32_t *b,
                    const int32_t *mult, const int32_t *sh) {
    memset(l, 0, sizeof *l);
    l->op = TS_OP_FULLY_CONNECTED;
    l->in = (ts_dims_t){1, 1, in};
    l->out = (ts_dims_t){1, 1, out};
    l->act_min = -128;
    l->act_max = 127;
    l->weights = w;
    l->weights_len = (uint32_t)(in * out);
    l->bias = b;
    l->bias_len = (uint32_t)out;
    l->multiplier = mult;
    l->shift = sh;
    l->quant_len = (uint32_t)out;
}

static void test_dsp_equals_scalar_random_layers(void) {
    static const uint8_t ops[3] = {TS_OP_CONV_2D, TS_OP_DEPTHWISE_CONV_2D, TS_OP_FULLY_CONNECTED};
    /* the DSP kernels' scratch, exactly their *_scratch_size() bytes with a guard after */
    static uint8_t scratch[8192 + 8] __attribute__((aligned(8)));
    uint32_t trial, done = 0;
    for (trial = 0; trial < TRIALS(3000u); ++trial) {
        ts_layer_t l;
        size_t n;
        const uint8_t op = ops[trial % 3u];
        if (!random_layer(&l, op)) {
            continue;
        }
        if (ts_layer_check(&l) != TS_OK) {
            TS_FAIL_("trial %u: random layer (op %d) refused: %d", (unsigned)trial, (int)op,
                     (int)ts_layer_check(&l));
        }
        n = ts_layer_out_bytes(&l);
        memset(g_out_ref, 0x11, n);
        memset(g_out_dsp, 0x22, n + 8u);
        {
            const size_t need = op == TS_OP_CONV_2D ? ts_conv2d_s8_dsp_scratch_size(&l)
                              : op == TS_OP_DEPTHWISE_CONV_2D
                                  ? ts_depthwise_conv2d_s8_dsp_scratch_size(&l)
                                  : ts_fully_connected_s8_dsp_scratch_size(&l);
            void *sp = need > 0u ? scratch : NULL;
            TS_ASSERT(need <= 8192u);
            memset(scratch + need, 0x5A, 8);
            if (op == TS_OP_CONV_2D) {
                ts_conv2d_s8_ref(&l, g_in, g_out_ref);
                ts_conv2d_s8_dsp(&l, g_in, g_out_dsp, sp);
            } else if (op == TS_OP_DEPTHWISE_CONV_2D) {
                ts_depthwise_conv2d_s8_ref(&l, g_in, g_out_ref);
                ts_depthwise_conv2d_s8_dsp(&l, g_in, g_out_dsp, sp);
            } else {
                ts_fully_connected_s8_ref(&l, g_in, g_out_ref);
                ts_fully_connected_s8_dsp(&l, g_in, g_out_dsp, sp);
            }
            TS_ASSERT(scratch[need] == 0x5A && scratch[need + 7u] == 0x5A); /* stays inside */
        }
        if (memcmp(g_out_ref, g_out_dsp, n) != 0) {
            TS_FAIL_("trial %u op %d in %ldx%ldx%ld out %ldx%ldx%ld f %ux%u s %ux%u d %ux%u "
                     "pad %d: dsp != scalar", (unsigned)trial, (int)op, (long)l.in.h,
                     (long)l.in.w, (long)l.in.c, (long)l.out.h, (long)l.out.w, (long)l.out.c,
                     l.filter_h, l.filter_w, l.stride_h, l.stride_w, l.dilation_h,
                     l.dilation_w, l.padding);
        }
        TS_ASSERT(g_out_dsp[n] == 0x22 && g_out_dsp[n + 7u] == 0x22); /* nothing past it */
        if (op == TS_OP_DEPTHWISE_CONV_2D) {
            /* no scratch: the 4-channel kernel (dw_block), whose unrolled 3x3 window the
             * layers above reach only without scratch (with it they take the plane kernel) */
            memset(g_out_dsp, 0x22, n + 8u);
            ts_depthwise_conv2d_s8_dsp(&l, g_in, g_out_dsp, NULL);
            if (memcmp(g_out_ref, g_out_dsp, n) != 0 || g_out_dsp[n] != 0x22) {
                TS_FAIL_("trial %u depthwise in %ldx%ldx%ld f %ux%u s %ux%u d %ux%u dm %u, no "
                         "scratch: dsp != scalar", (unsigned)trial, (long)l.in.h, (long)l.in.w,
                         (long)l.in.c, l.filter_h, l.filter_w, l.stride_h, l.stride_w,
                         l.dilation_h, l.dilation_w, (unsigned)l.depth_multiplier);
            }
        }
        ++done;
    }
    TS_ASSERT(done > TRIALS(1500u));
    /* a bias past 2^30 (the random ones stay below: 2 * bias then leaves int32): the DSP
     * kernel must take the scalar requantization */
    {
        static const int8_t w[2 * 8] = {1, -2, 3, -4, 5, -6, 7, -8, 8, 7, 6, 5, 4, 3, 2, 1};
        static const int32_t b[2] = {1500000000, -1500000000};
        static const int32_t mult[2] = {1 << 30, 1 << 30}, sh[2] = {-20, -20};
        ts_layer_t l;
        hand_fc(&l, 8, 2, w, b, mult, sh);
        TS_ASSERT_EQ_INT(TS_OK, ts_layer_check(&l));
        ts_fully_connected_s8_ref(&l, g_in, g_out_ref);
        ts_fully_connected_s8_dsp(&l, g_in, g_out_dsp, scratch);
        TS_ASSERT(g_out_ref[0] == 127 && g_out_ref[1] == -128);
        TS_ASSERT_MEM_EQ(g_out_ref, g_out_dsp, 2);
    }
}

/* Both kernels on layer l (a random_layer draw, possibly edited); 1 when they agree byte for
 * byte and the DSP kernel kept inside its *_scratch_size() bytes and its output (a depthwise
 * layer also without scratch: the 4-channel kernel). */
static int dsp_agrees_with_scalar(const ts_layer_t *l) {
    static uint8_t scratch[8192 + 8] __attribute__((aligned(8)));
    const uint8_t op = l->op;
    const size_t n = ts_layer_out_bytes(l);
    const size_t need = op == TS_OP_CONV_2D ? ts_conv2d_s8_dsp_scratch_size(l)
                      : op == TS_OP_DEPTHWISE_CONV_2D ? ts_depthwise_conv2d_s8_dsp_scratch_size(l)
                                                      : ts_fully_connected_s8_dsp_scratch_size(l);
    void *sp = need > 0u ? scratch : NULL;
    if (need > 8192u) {
        return 0;
    }
    memset(g_out_ref, 0x11, n);
    memset(g_out_dsp, 0x22, n + 8u);
    memset(scratch + need, 0x5A, 8);
    if (op == TS_OP_CONV_2D) {
        ts_conv2d_s8_ref(l, g_in, g_out_ref);
        ts_conv2d_s8_dsp(l, g_in, g_out_dsp, sp);
    } else if (op == TS_OP_DEPTHWISE_CONV_2D) {
        ts_depthwise_conv2d_s8_ref(l, g_in, g_out_ref);
        ts_depthwise_conv2d_s8_dsp(l, g_in, g_out_dsp, sp);
    } else {
        ts_fully_connected_s8_ref(l, g_in, g_out_ref);
        ts_fully_connected_s8_dsp(l, g_in, g_out_dsp, sp);
    }
    if (scratch[need] != 0x5A || scratch[need + 7u] != 0x5A || g_out_dsp[n] != 0x22 ||
        g_out_dsp[n + 7u] != 0x22 || memcmp(g_out_ref, g_out_dsp, n) != 0) {
        return 0;
    }
    if (op == TS_OP_DEPTHWISE_CONV_2D) {
        memset(g_out_dsp, 0x22, n + 8u);
        ts_depthwise_conv2d_s8_dsp(l, g_in, g_out_dsp, NULL);
        return g_out_dsp[n] == 0x22 && memcmp(g_out_ref, g_out_dsp, n) == 0;
    }
    return 1;
}

/* Random layers with no activation clamp (act_min -128, act_max 127: a linear layer, or a
 * ReLU whose output zero point is -128), which the draws above almost never give (1 in 16,512).
 * Only then do the DSP kernels take their unclamped paths: on Armv7E-M the assembly channel
 * pair loop of CONV_2D (conv_pairs_asm: two pixels, k % 4 == 0) and rq_row's two-a-pass
 * branch of the 3x3 plane kernel; and only there does SSAT alone bound the output. Half the
 * layers with small weights and right shifts (e = 1..3), where an unsaturated negative y on
 * an exact tie (y = -2^(e-1) mod 2^e) is frequent: the - [y < 0] of the rounding decides
 * it; half with full weights and e = 5..10 (outputs saturate at both ends). Audit
 * (2026-12-06), mutants this test alone of test_engine kills: that term dropped from
 * conv_pairs_asm (otherwise only the graph export's golden run on qemu-m4 failed, 2 of 100
 * outputs) or from rq_row (no check failed), SSAT to 9 bits (only the golden runs failed).
 * Its own seed, the shared generator restored after (the later tests draw as before). */
static void test_dsp_equals_scalar_full_int8_range(void) {
    static const uint8_t ops[4] = {TS_OP_CONV_2D, TS_OP_CONV_2D, TS_OP_DEPTHWISE_CONV_2D,
                                   TS_OP_FULLY_CONNECTED};
    const uint32_t saved_rng = g_rng;
    uint32_t trial, done = 0, pairs_asm = 0;
    g_rng = 0x9E3779B9u;
    for (trial = 0; trial < TRIALS(5000u); ++trial) {
        ts_layer_t l;
        int32_t i;
        const uint8_t op = ops[trial % 4u];
        if (!random_layer(&l, op)) {
            continue;
        }
        l.act_min = -128;
        l.act_max = 127;
        if (rnd() & 1u) {
            /* weights / 32 and e = 1..3: |y| mostly inside the unsaturated window 2^(e+8) */
            for (i = 0; i < (int32_t)l.weights_len; ++i) {
                g_w[i] = (int8_t)(g_w[i] / 32);
            }
            for (i = 0; i < (int32_t)l.out.c; ++i) {
                g_shift[i] = rnd_range(-3, -1);
            }
        } else {
            for (i = 0; i < (int32_t)l.out.c; ++i) { /* full weights: scales as trained */
                g_shift[i] = rnd_range(-10, -5);
            }
        }
        TS_ASSERT_EQ_INT(TS_OK, ts_layer_check(&l));
        if (op == TS_OP_CONV_2D && l.out.h * l.out.w >= 2 &&
            (l.filter_h * l.filter_w * l.in.c) % 4 == 0) {
            ++pairs_asm;
        }
        if (!dsp_agrees_with_scalar(&l)) {
            TS_FAIL_("trial %u op %d in %ldx%ldx%ld out %ldx%ldx%ld f %ux%u s %ux%u d %ux%u: "
                     "dsp != scalar (no clamp)", (unsigned)trial, (int)op, (long)l.in.h,
                     (long)l.in.w, (long)l.in.c, (long)l.out.h, (long)l.out.w, (long)l.out.c,
                     l.filter_h, l.filter_w, l.stride_h, l.stride_w, l.dilation_h,
                     l.dilation_w);
        }
        ++done;
    }
    TS_ASSERT(done > TRIALS(2500u));
    TS_ASSERT(pairs_asm > TRIALS(600u)); /* the assembly path ran on many layers */
    g_rng = saved_rng;
}

/* Right shifts past the fast requantization's range (e = 23..31, which TFLM allows: an
 * effective scale below 2^-23) with output zero points at the int8 ends: there
 * 2^(e-1) + zp * 2^e leaves int32, so the DSP kernels must take the scalar requantization
 * (rq_fast_ok). Audit (2026-12-06): accepting e up to 30 there passed every other check
 * (the random layers' shifts stop at -14). */
static void test_dsp_equals_scalar_tiny_scales(void) {
    static const uint8_t ops[3] = {TS_OP_CONV_2D, TS_OP_DEPTHWISE_CONV_2D, TS_OP_FULLY_CONNECTED};
    const uint32_t saved_rng = g_rng;
    uint32_t trial, done = 0;
    g_rng = 0x2545F491u;
    for (trial = 0; trial < TRIALS(600u); ++trial) {
        ts_layer_t l;
        int32_t i;
        const uint8_t op = ops[trial % 3u];
        if (!random_layer(&l, op)) {
            continue;
        }
        for (i = 0; i < (int32_t)l.out.c; ++i) {
            g_shift[i] = rnd_range(-31, -23);
        }
        l.output_zero_point = (rnd() & 1u) ? 127 : -128;
        l.act_min = -128;
        l.act_max = 127;
        TS_ASSERT_EQ_INT(TS_OK, ts_layer_check(&l));
        if (!dsp_agrees_with_scalar(&l)) {
            TS_FAIL_("trial %u op %d out zp %ld shift[0] %ld: dsp != scalar", (unsigned)trial,
                     (int)op, (long)l.output_zero_point, (long)g_shift[0]);
        }
        ++done;
    }
    TS_ASSERT(done > TRIALS(300u));
    g_rng = saved_rng;
}

/* Strides up to 3 (valid in TFLite; no export has one): the 3x3 plane kernel handles strides
 * 1 and 2 only, every other stride must take another kernel. Audit (2026-12-06): letting
 * stride 3 into the plane kernel (run as stride 2) passed every check. */
static void test_dsp_equals_scalar_stride_3(void) {
    static const uint8_t ops[2] = {TS_OP_CONV_2D, TS_OP_DEPTHWISE_CONV_2D};
    const uint32_t saved_rng = g_rng;
    uint32_t trial, done = 0, stride3 = 0;
    g_rng = 0x6A09E667u;
    g_max_stride = 3;
    for (trial = 0; trial < TRIALS(2000u); ++trial) {
        ts_layer_t l;
        const uint8_t op = ops[trial % 2u];
        if (!random_layer(&l, op)) {
            continue;
        }
        TS_ASSERT_EQ_INT(TS_OK, ts_layer_check(&l));
        stride3 += l.stride_h == 3 || l.stride_w == 3;
        if (!dsp_agrees_with_scalar(&l)) {
            TS_FAIL_("trial %u op %d in %ldx%ldx%ld f %ux%u s %ux%u d %ux%u: dsp != scalar",
                     (unsigned)trial, (int)op, (long)l.in.h, (long)l.in.w, (long)l.in.c,
                     l.filter_h, l.filter_w, l.stride_h, l.stride_w, l.dilation_h,
                     l.dilation_w);
        }
        ++done;
    }
    g_max_stride = 2;
    TS_ASSERT(stride3 > TRIALS(600u));
    g_rng = saved_rng;
}

/* More output channels than one requantization table holds (TS_DSP_RQ_BLOCK, 64): CONV_2D
 * (pointwise, and 3x3 SAME with k % 4 != 0) and FULLY_CONNECTED with 133 channels run in
 * three blocks, each with its own weights, constants and outputs; with and without a clamp.
 * The random layers stop at 11 channels and the golden exports at 64. Audit (2026-12-06):
 * every block after the first reusing the first block's weights (conv or FC) passed every
 * check. */
static void test_dsp_equals_scalar_many_channels(void) {
    enum { OC = 133 };
    static int8_t w[OC * 96];
    static int32_t bias[OC], mult[OC], shift[OC];
    static const struct {
        uint8_t op, f;
        ts_dims_t in, out;
    } shapes[3] = {
        {TS_OP_CONV_2D, 1, {4, 3, 8}, {4, 3, OC}},
        {TS_OP_CONV_2D, 3, {5, 3, 3}, {5, 3, OC}},
        {TS_OP_FULLY_CONNECTED, 1, {1, 1, 96}, {1, 1, OC}},
    };
    const uint32_t saved_rng = g_rng;
    uint32_t s, full;
    int32_t i;
    g_rng = 0xBB67AE85u;
    for (i = 0; i < (int32_t)sizeof w; ++i) {
        w[i] = (int8_t)rnd_range(-128, 127);
    }
    for (i = 0; i < MAXA; ++i) {
        g_in[i] = (int8_t)rnd_range(-128, 127);
    }
    for (i = 0; i < OC; ++i) {
        bias[i] = rnd_range(-20000, 20000);
        mult[i] = (int32_t)((rnd() >> 1) | 0x40000000u);
        shift[i] = rnd_range(-11, -7);
    }
    for (s = 0; s < 3u; ++s) {
        for (full = 0; full < 2u; ++full) {
            ts_layer_t l;
            memset(&l, 0, sizeof l);
            l.op = shapes[s].op;
            l.in = shapes[s].in;
            l.out = shapes[s].out;
            l.filter_h = l.filter_w = shapes[s].f;
            l.stride_h = l.stride_w = 1;
            l.dilation_h = l.dilation_w = 1;
            l.depth_multiplier = 1;
            l.padding = shapes[s].f == 3 ? TS_PAD_SAME : TS_PAD_VALID;
            l.pad_h = l.pad_w = shapes[s].f == 3 ? 1 : 0;
            l.weights = w;
            l.weights_len = (uint32_t)OC * (l.op == TS_OP_FULLY_CONNECTED
                                                ? (uint32_t)(l.in.h * l.in.w * l.in.c)
                                                : (uint32_t)(l.filter_h * l.filter_w * l.in.c));
            l.bias = bias;
            l.bias_len = OC;
            l.multiplier = mult;
            l.shift = shift;
            l.quant_len = OC;
            l.input_zero_point = -3;
            l.output_zero_point = full ? 5 : -128;
            l.act_min = full ? -128 : -128 + 20;
            l.act_max = full ? 127 : 100;
            TS_ASSERT_EQ_INT(TS_OK, ts_layer_check(&l));
            if (!dsp_agrees_with_scalar(&l)) {
                TS_FAIL_("shape %u (op %d, %d channels) %s: dsp != scalar", (unsigned)s,
                         (int)l.op, (int)OC, full ? "no clamp" : "clamped");
            }
        }
    }
    g_rng = saved_rng;
}

/* FULLY_CONNECTED with an odd unit count, its weights in an array of exactly their size: the
 * DSP kernel computes the last row in a pair with itself and must read no row past it (under
 * the sanitizers, native-asan, that read is a global-buffer-overflow; on a device it runs off
 * the end of the model). Audit (2026-12-06): the pair's second row at w0 + k for the last
 * row too passed every check (its result is not stored). */
static void test_dsp_fc_reads_no_weight_past_its_layer(void) {
    static const int8_t w[3 * 11] = {1,  -2, 3,  -4, 5,  -6, 7,  -8, 9,  -10, 11,
                                     12, 13, 14, 15, 16, 17, 18, 19, 20, 21,  22,
                                     -1, -3, -5, -7, -9, 11, 13, 15, 17, 19,  21};
    static const int32_t b[3] = {100, -200, 300};
    static const int32_t mult[3] = {1 << 30, 1 << 30, 1 << 30}, sh[3] = {-4, -4, -4};
    static const int8_t x[11] = {5, -7, 9, -11, 13, -15, 17, -19, 21, -23, 25};
    static uint8_t scratch[256] __attribute__((aligned(8)));
    int8_t ref[3], dsp[3];
    ts_layer_t l;
    hand_fc(&l, 11, 3, w, b, mult, sh);
    TS_ASSERT_EQ_INT(TS_OK, ts_layer_check(&l));
    TS_ASSERT(ts_fully_connected_s8_dsp_scratch_size(&l) <= sizeof scratch);
    ts_fully_connected_s8_ref(&l, x, ref);
    ts_fully_connected_s8_dsp(&l, x, dsp, scratch);
    TS_ASSERT_MEM_EQ(ref, dsp, 3);
}

/* ---- a small valid model and its malformed variants -------------------------------------- */

static const int8_t k_conv_w[4 * 3 * 3 * 2] = {
    1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12, 13, -14, 15, -16, 17, -18,
    -1, 2, -3, 4, -5, 6, -7, 8, -9, 10, -11, 12, -13, 14, -15, 16, -17, 18,
    20, 0, 0, 20, 0, 0, 20, 0, 0, 20, 0, 0, 20, 0, 0, 20, 0, 0,
    -5, -5, -5, -5, 30, 30, -5, -5, -5, -5, -5, -5, 30, 30, -5, -5, -5, -5};
static const int32_t k_conv_b[4] = {100, -100, 0, 50};
static const int32_t k_mult4[4] = {1518500250, 1240000000, 1900000000, 1073741824};
static const int32_t k_shift4[4] = {-7, -6, -8, -7};
static const int8_t k_dw_w[3 * 3 * 4] = {
    3, -1, 2, 0, 1, 1, 1, 1, -2, 4, 0, 2, 5, 5, 5, 5, 7, -7, 7, -7,
    1, 2, 3, 4, -1, -2, -3, -4, 0, 9, 0, 9, 2, 2, 2, 2};
static const int32_t k_dw_b[4] = {-30, 30, 10, 0};
static const int8_t k_fc_w[3 * 4] = {10, -20, 30, -40, 50, 60, -70, 80, 1, 2, 3, 4};
static const int32_t k_fc_b[3] = {1000, -2000, 500};
/* Per-tensor (quant_len 1), backed by one entry per channel: the table's lengths describe
 * its arrays, and the corruption test below may set quant_len to the channel count. */
static const int32_t k_fc_mult[3] = {1431655765, 1431655765, 1431655765};
static const int32_t k_fc_shift[3] = {-9, -9, -9};
static const int32_t k_q_mult[1] = {1610612736};
static const int32_t k_q_shift[1] = {0};

#define NL 8
static ts_layer_t g_layers[NL];
static ts_model_t g_model;
static uint8_t g_arena[1024] __attribute__((aligned(8)));
static int8_t g_x[6 * 6 * 2];
static int8_t g_y[4096];

static ts_layer_t row(uint8_t op, ts_dims_t in, ts_dims_t out) {
    ts_layer_t l;
    memset(&l, 0, sizeof l);
    l.op = op;
    l.in = in;
    l.out = out;
    l.stride_h = l.stride_w = 1;
    l.dilation_h = l.dilation_w = 1;
    l.filter_h = l.filter_w = 1;
    l.depth_multiplier = 1;
    l.act_min = -128;
    l.act_max = 127;
    return l;
}

/* The fields every hand-built model here sets: the layers gl[0..n-1] from `input`, this
 * format's version, the rest zero (no tensor table, no head); the caller adds what it tests. */
static ts_model_t model_of(const ts_layer_t *gl, uint32_t n, ts_dims_t input) {
    ts_model_t m;
    memset(&m, 0, sizeof m);
    m.format_version = TS_FORMAT_VERSION;
    m.num_layers = n;
    m.layers = gl;
    m.input = input;
    return m;
}

static void build_valid_model(void) {
    const ts_dims_t d662 = {6, 6, 2}, d664 = {6, 6, 4}, d334 = {3, 3, 4}, d224 = {2, 2, 4};
    const ts_dims_t d114 = {1, 1, 4}, d113 = {1, 1, 3};
    ts_layer_t *l = g_layers;
    int i;
    /* 0 CONV 3x3 SAME, ReLU-like clamp */
    l[0] = row(TS_OP_CONV_2D, d662, d664);
    l[0].padding = TS_PAD_SAME;
    l[0].filter_h = l[0].filter_w = 3;
    l[0].pad_h = l[0].pad_w = 1;
    l[0].input_zero_point = -128;
    l[0].output_zero_point = -10;
    l[0].act_min = -10;
    l[0].weights = k_conv_w;
    l[0].weights_len = sizeof k_conv_w;
    l[0].bias = k_conv_b;
    l[0].bias_len = 4;
    l[0].multiplier = k_mult4;
    l[0].shift = k_shift4;
    l[0].quant_len = 4;
    /* 1 DEPTHWISE 3x3 stride 2 SAME */
    l[1] = row(TS_OP_DEPTHWISE_CONV_2D, d664, d334);
    l[1].padding = TS_PAD_SAME;
    l[1].filter_h = l[1].filter_w = 3;
    l[1].stride_h = l[1].stride_w = 2;
    l[1].pad_h = l[1].pad_w = 0;
    l[1].input_zero_point = -10;
    l[1].output_zero_point = 3;
    l[1].weights = k_dw_w;
    l[1].weights_len = sizeof k_dw_w;
    l[1].bias = k_dw_b;
    l[1].bias_len = 4;
    l[1].multiplier = k_mult4;
    l[1].shift = k_shift4;
    l[1].quant_len = 4;
    /* 2 MAX_POOL 2x2 stride 1 VALID */
    l[2] = row(TS_OP_MAX_POOL_2D, d334, d224);
    l[2].filter_h = l[2].filter_w = 2;
    /* 3 AVERAGE_POOL 2x2 VALID */
    l[3] = row(TS_OP_AVERAGE_POOL_2D, d224, d114);
    l[3].filter_h = l[3].filter_w = 2;
    /* 4 RESHAPE */
    l[4] = row(TS_OP_RESHAPE, d114, d114);
    /* 5 FULLY_CONNECTED 4 -> 3 */
    l[5] = row(TS_OP_FULLY_CONNECTED, d114, d113);
    l[5].input_zero_point = 3;
    l[5].output_zero_point = 5;
    l[5].weights = k_fc_w;
    l[5].weights_len = sizeof k_fc_w;
    l[5].bias = k_fc_b;
    l[5].bias_len = 3;
    l[5].multiplier = k_fc_mult;
    l[5].shift = k_fc_shift;
    l[5].quant_len = 1;
    /* 6 QUANTIZE int8 -> int8 */
    l[6] = row(TS_OP_QUANTIZE, d113, d113);
    l[6].input_zero_point = 5;
    l[6].output_zero_point = -3;
    l[6].multiplier = k_q_mult;
    l[6].shift = k_q_shift;
    l[6].quant_len = 1;
    /* 7 SOFTMAX */
    l[7] = row(TS_OP_SOFTMAX, d113, d113);
    l[7].output_zero_point = -128;
    l[7].softmax_input_multiplier = 1717986918;
    l[7].softmax_input_left_shift = 22;
    l[7].softmax_diff_min = -248;

    g_model = model_of(g_layers, NL, d662);
    g_model.head_layer = 5;
    g_model.num_classes = 3;
    for (i = 0; i < (int)sizeof g_x; ++i) {
        g_x[i] = (int8_t)((i * 37) % 256 - 128);
    }
}

static ts_status_t invoke(void) {
    return ts_invoke(&g_model, g_x, g_y, g_arena, sizeof g_arena);
}

static void test_valid_model_runs(void) {
    int32_t sum = 0;
    int i;
    build_valid_model();
    TS_ASSERT_EQ_INT(TS_OK, ts_model_check(&g_model));
    /* largest layer: conv 72 + 144 bytes, then (DSP build) the largest kernel scratch */
    TS_ASSERT_EQ_INT(72 + 144 + ts_scratch_size(&g_model), ts_arena_size(&g_model));
    TS_ASSERT(TS_USE_DSP ? ts_scratch_size(&g_model) > 0u : ts_scratch_size(&g_model) == 0u);
    TS_ASSERT_EQ_INT(TS_OK, invoke());
    for (i = 0; i < 3; ++i) {
        sum += g_y[i] + 128;
    }
    /* softmax outputs are probabilities in 1/256 units */
    TS_ASSERT(sum >= 250 && sum <= 260);
    /* a prefix, then the rest from the prefix's output: the same result */
    {
        int8_t mid[16], y2[3];
        TS_ASSERT_EQ_INT(TS_OK, ts_run_layers(&g_model, 0, 4, g_x, mid, g_arena, sizeof g_arena));
        TS_ASSERT_EQ_INT(TS_OK, ts_run_layers(&g_model, 4, NL, mid, y2, g_arena, sizeof g_arena));
        TS_ASSERT_MEM_EQ(g_y, y2, 3);
    }
    /* a single layer needs no arena */
    {
        int8_t y3[3];
        TS_ASSERT_EQ_INT(TS_OK, ts_run_layers(&g_model, 7, 8, g_y, y3, NULL, 0));
    }
    /* every prefix of the chain (its ping-pong buffers) gives what its layers give run one
     * at a time, each into a buffer of its own */
    {
        static int8_t bufs[2][256], prefix[256];
        const int8_t *src = g_x;
        uint32_t k;
        for (k = 0; k < NL; ++k) {
            const size_t n = ts_layer_out_bytes(&g_layers[k]);
            TS_ASSERT(n <= sizeof bufs[0]);
            TS_ASSERT_EQ_INT(TS_OK, ts_run_layers(&g_model, k, k + 1u, src, bufs[k & 1u], NULL, 0));
            src = bufs[k & 1u];
            TS_ASSERT_EQ_INT(TS_OK, ts_run_layers(&g_model, 0, k + 1u, g_x, prefix, g_arena,
                                                  sizeof g_arena));
            TS_ASSERT_MEM_EQ(src, prefix, n);
        }
        TS_ASSERT_MEM_EQ(g_y, src, 3);
    }
}

#define EXPECT_CHECK(expected, ...)                                                            \
    do {                                                                                       \
        build_valid_model();                                                                   \
        __VA_ARGS__;                                                                           \
        TS_ASSERT_EQ_INT((expected), ts_model_check(&g_model));                                \
        TS_ASSERT_EQ_INT((expected), invoke());                                                \
        TS_ASSERT_EQ_INT(0, ts_arena_size(&g_model));                                          \
    } while (0)

static void test_wrong_version(void) {
    EXPECT_CHECK(TS_ERR_VERSION, g_model.format_version = 1);
    EXPECT_CHECK(TS_ERR_VERSION, g_model.format_version = 3);
    EXPECT_CHECK(TS_ERR_VERSION, g_model.format_version = 0);
    EXPECT_CHECK(TS_ERR_VERSION, g_model.format_version = 0xFFFFFFFFu);
}

static void test_null_pointers(void) {
    build_valid_model();
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_model_check(NULL));
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_invoke(NULL, g_x, g_y, g_arena, sizeof g_arena));
    TS_ASSERT_EQ_INT(0, ts_arena_size(NULL));
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_invoke(&g_model, NULL, g_y, g_arena, sizeof g_arena));
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_invoke(&g_model, g_x, NULL, g_arena, sizeof g_arena));
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_invoke(&g_model, g_x, g_y, NULL, sizeof g_arena));
    EXPECT_CHECK(TS_ERR_NULL, g_model.layers = NULL);
    EXPECT_CHECK(TS_ERR_NULL, g_layers[0].weights = NULL);
    EXPECT_CHECK(TS_ERR_NULL, g_layers[1].weights = NULL);
    EXPECT_CHECK(TS_ERR_NULL, g_layers[5].weights = NULL);
    EXPECT_CHECK(TS_ERR_NULL, g_layers[0].bias = NULL);
    EXPECT_CHECK(TS_ERR_NULL, g_layers[0].multiplier = NULL);
    EXPECT_CHECK(TS_ERR_NULL, g_layers[5].shift = NULL);
    EXPECT_CHECK(TS_ERR_NULL, g_layers[6].multiplier = NULL);
}

static void test_shapes_that_do_not_chain(void) {
    /* each layer valid on its own, but not fed by its predecessor */
    EXPECT_CHECK(TS_ERR_SHAPE, {
        g_layers[2].in.h = 4;
        g_layers[2].in.w = 4;
        g_layers[2].out.h = 3;
        g_layers[2].out.w = 3;
        g_layers[3].in = g_layers[2].out;
        g_layers[3].filter_h = g_layers[3].filter_w = 3;
    });
    EXPECT_CHECK(TS_ERR_SHAPE, g_model.input.c = 3);
    EXPECT_CHECK(TS_ERR_SHAPE, { g_layers[4].in.c = 8; g_layers[4].out.c = 8; });
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[4].out.c = 5);  /* RESHAPE changes the count */
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[7].out.c = 4);  /* SOFTMAX in != out */
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[0].out.h = 5);  /* does not follow from padding */
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[1].out.c = 8);  /* depthwise channels */
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[3].in.c = 5);   /* pool changes channels */
    EXPECT_CHECK(TS_ERR_SHAPE, g_model.num_layers = 0);
}

static void test_array_lengths(void) {
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[0].weights_len -= 1);
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[1].weights_len += 1);
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[5].weights_len = 0);
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[0].bias_len = 3);
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[0].quant_len = 2);
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[0].quant_len = 0);
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[6].quant_len = 0);
    /* MEAN runs TFLM's multiplier path only: quant_len 0, once read as the truncated raw
     * mean (which TFLM never runs), is refused */
    EXPECT_CHECK(TS_ERR_SHAPE, { g_layers[3].op = TS_OP_MEAN; g_layers[3].quant_len = 0; });
    EXPECT_CHECK(TS_ERR_SHAPE, { g_layers[5].bias_len = 0; }); /* bias without a length */
}

static void test_bad_op(void) {
    EXPECT_CHECK(TS_ERR_UNSUPPORTED_OP, g_layers[4].op = 99);
    EXPECT_CHECK(TS_ERR_UNSUPPORTED_OP, g_layers[0].op = 0);
    EXPECT_CHECK(TS_ERR_UNSUPPORTED_OP, g_layers[4].op = 16);
    /* a chain has no second operand for ADD (no constant either), no CONCATENATION */
    EXPECT_CHECK(TS_ERR_SHAPE, { static const int32_t m[3] = {1 << 30, 1 << 30, 1 << 30};
                                 static const int32_t sh[3] = {0, 0, 0};
                                 g_layers[4].op = TS_OP_ADD; g_layers[4].in2 = g_layers[4].in;
                                 g_layers[4].multiplier = m; g_layers[4].shift = sh;
                                 g_layers[4].quant_len = 3; });
}

static void test_out_of_range_params(void) {
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[0].stride_h = 0);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[2].stride_w = 0);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[0].dilation_w = 0);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[0].filter_h = 0);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[0].padding = 7);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[0].pad_h = 2);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[1].pad_w = -1);
    EXPECT_CHECK(TS_ERR_PARAM, { static const int32_t s[4] = {-7, 31, -8, -7};
                                 g_layers[0].shift = s; });
    EXPECT_CHECK(TS_ERR_PARAM, { static const int32_t s[1] = {-32}; g_layers[5].shift = s; });
    EXPECT_CHECK(TS_ERR_PARAM, { static const int32_t m[1] = {-5}; g_layers[6].multiplier = m; });
    EXPECT_CHECK(TS_ERR_PARAM, { g_layers[0].act_min = 10; g_layers[0].act_max = 5; });
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[2].act_max = 128);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[5].input_zero_point = 200);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[6].output_zero_point = -129);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[7].output_zero_point = 0);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[7].softmax_input_left_shift = 32);
    EXPECT_CHECK(TS_ERR_PARAM, g_layers[7].softmax_diff_min = 1);
    /* a bias that could overflow the int32 accumulator */
    EXPECT_CHECK(TS_ERR_PARAM, { static const int32_t b[3] = {1000, 2147483000, 0};
                                 g_layers[5].bias = b; });
    EXPECT_CHECK(TS_ERR_PARAM, { static const int32_t b[3] = {1000, -2147483000, 0};
                                 g_layers[5].bias = b; });
    /* absurd dimensions (and ones whose product would overflow) */
    EXPECT_CHECK(TS_ERR_SHAPE, g_layers[4].in.h = -1);
    EXPECT_CHECK(TS_ERR_SHAPE, { g_layers[4].in.h = 30000; g_layers[4].in.w = 30000;
                                 g_layers[4].in.c = 30000; });
    /* ... on a first layer that flattens: the model input is compared by element count,
     * which overflowed int64 (UBSan) before layer 0's dims were checked */
    EXPECT_CHECK(TS_ERR_SHAPE, { g_layers[0] = row(TS_OP_RESHAPE, g_model.input, g_model.input);
                                 g_layers[0].in.h = 2147483647; g_layers[0].in.w = 2147483647;
                                 g_layers[0].in.c = 2147483647; });
    EXPECT_CHECK(TS_ERR_SHAPE, { g_layers[0] = row(TS_OP_FULLY_CONNECTED, g_model.input,
                                                   g_model.input);
                                 g_layers[0].in.h = -2147483647 - 1;
                                 g_layers[0].in.w = -2147483647 - 1;
                                 g_layers[0].in.c = -2147483647 - 1; });
}

/* A graph whose plan fits its arena_bytes, but an arena_bytes near 2^32: align8 of it (plus
 * the scratch) wrapped a 32-bit size_t, so ts_arena_size said a few bytes and ts_invoke ran
 * with them, writing tensor 1 at arena + 0xFFFFFF00 (before arena on the target). */
static void test_graph_arena_beyond_2g(void) {
    static ts_layer_t gl[2];
    static ts_tensor_t tt[3];
    static uint8_t arena[64] __attribute__((aligned(8)));
    static int8_t x[4], y[4];
    const ts_dims_t d = {1, 1, 4};
    ts_model_t m;
    gl[0] = row(TS_OP_RESHAPE, d, d);
    gl[1] = row(TS_OP_RESHAPE, d, d);
    gl[0].num_inputs = gl[1].num_inputs = 1;
    gl[0].inputs[0] = 0;
    gl[1].inputs[0] = 1;
    tt[0].offset = TS_TENSOR_EXTERNAL;
    tt[0].last_use = 0;
    tt[1].offset = 0xFFFFFF00u;
    tt[1].last_use = 1;
    tt[2].offset = TS_TENSOR_EXTERNAL;
    tt[2].last_use = 2;
    m = model_of(gl, 2, d);
    m.num_tensors = 3;
    m.tensors = tt;
    m.arena_bytes = 0xFFFFFFF9u;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_model_check(&m));
    TS_ASSERT_EQ_INT(0, ts_arena_size(&m));
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_invoke(&m, x, y, arena, sizeof arena));
    /* the same plan low in the arena runs */
    tt[1].offset = 0;
    m.arena_bytes = 4;
    TS_ASSERT_EQ_INT(TS_OK, ts_model_check(&m));
    TS_ASSERT_EQ_INT(TS_OK, ts_invoke(&m, x, y, arena, sizeof arena));
    /* the largest arena_bytes a graph may plan */
    tt[1].offset = 0x7FFFFF00u;
    m.arena_bytes = 0x80000000u;
    TS_ASSERT_EQ_INT(TS_OK, ts_model_check(&m));
    m.arena_bytes = 0x80000001u;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_model_check(&m));
}

/* A three-layer graph: RESHAPE t0 -> t1, RESHAPE t1 -> t2, CONCATENATION (axis c) of t1 and
 * t2 -> t3; t1 and t2 planned at offsets o1, o2, both read last by layer 2. */
static ts_model_t graph3(ts_layer_t *gl, ts_tensor_t *tt, uint32_t o1, uint32_t o2) {
    const ts_dims_t d = {1, 1, 4}, d8 = {1, 1, 8};
    ts_model_t m;
    gl[0] = row(TS_OP_RESHAPE, d, d);
    gl[1] = row(TS_OP_RESHAPE, d, d);
    gl[2] = row(TS_OP_CONCATENATION, d, d8);
    gl[2].axis = 2;
    gl[0].num_inputs = gl[1].num_inputs = 1;
    gl[0].inputs[0] = 0;
    gl[1].inputs[0] = 1;
    gl[2].num_inputs = 2;
    gl[2].inputs[0] = 1;
    gl[2].inputs[1] = 2;
    tt[0].offset = TS_TENSOR_EXTERNAL;
    tt[0].last_use = 0;
    tt[1].offset = o1;
    tt[1].last_use = 2;
    tt[2].offset = o2;
    tt[2].last_use = 2;
    tt[3].offset = TS_TENSOR_EXTERNAL;
    tt[3].last_use = 3;
    m = model_of(gl, 3, d);
    m.num_tensors = 4;
    m.tensors = tt;
    m.arena_bytes = 16;
    return m;
}

/* The checks at their boundaries (each was dropped or moved by one in a mutation audit
 * without a test failing): a tensor offset off 8-byte alignment; a tensor overlapping the
 * output of its own last reader; a layer range whose layer reads the tensor produced just
 * before the range (not its input); CONCATENATION's axis, and its inputs filling it; ADD's
 * second tensor's dims; a layer reading its own output; which layer reads the previous
 * one's output; a one-input op dispatched with two inputs; a planned model input; 4097
 * layers; a tensor table longer than the layers; PAD wider than its output; SAME padding
 * over an odd size; a constant operand's length; LOGISTIC's input shift. */
static void test_check_boundaries(void) {
    static ts_layer_t gl[3];
    static ts_tensor_t tt[4];
    static uint8_t arena[64] __attribute__((aligned(8)));
    static int8_t x[4] = {1, -2, 3, -4}, y[8];
    static const int8_t want[8] = {1, -2, 3, -4, 1, -2, 3, -4};
    ts_model_t m = graph3(gl, tt, 0, 8);
    TS_ASSERT_EQ_INT(TS_OK, ts_model_check(&m));
    TS_ASSERT_EQ_INT(TS_OK, ts_invoke(&m, x, y, arena, sizeof arena));
    TS_ASSERT_MEM_EQ(want, y, 8);
    /* apart but misaligned */
    m = graph3(gl, tt, 0, 4);
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_model_check(&m));
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_invoke(&m, x, y, arena, sizeof arena));
    /* t2 (layer 1's output) on t1, which layer 1 reads */
    m = graph3(gl, tt, 0, 0);
    m.arena_bytes = 8;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_model_check(&m));
    /* ... and the same with t1 read last by layer 1 (layer 2 reads t2 twice) */
    m = graph3(gl, tt, 0, 0);
    m.arena_bytes = 8;
    gl[2].inputs[0] = 2;
    tt[1].last_use = 1;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_model_check(&m));
    /* run layer 2 alone: its input is t1 (the caller's), but it also reads t2, made before
     * the range; layers 1..2 from t1 read only what they make */
    m = graph3(gl, tt, 0, 8);
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_run_layers(&m, 2, 3, x, y, arena, sizeof arena));
    TS_ASSERT_EQ_INT(TS_OK, ts_run_layers(&m, 1, 3, x, y, arena, sizeof arena));
    TS_ASSERT_MEM_EQ(want, y, 8);
    /* CONCATENATION has no axis 3; no layer reads its own output */
    m = graph3(gl, tt, 0, 8);
    gl[2].axis = 3;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_model_check(&m));
    m = graph3(gl, tt, 0, 8);
    gl[1].inputs[0] = 2;
    TS_ASSERT_EQ_INT(TS_ERR_SHAPE, ts_model_check(&m));
    /* a one-input op given two inputs, or none, by the kernels' dispatch */
    {
        const ts_dims_t dd[2] = {{1, 1, 4}, {1, 1, 4}};
        const int8_t *ins[2] = {x, x};
        m = graph3(gl, tt, 0, 8);
        TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_run_layer_inputs(&gl[0], dd, ins, 2u, y, NULL));
        TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_run_layer_inputs(&gl[0], dd, ins, 0u, y, NULL));
        TS_ASSERT_EQ_INT(TS_OK, ts_run_layer_inputs(&gl[0], dd, ins, 1u, y, NULL));
    }
    /* layer 1 reads the previous layer's output (tensor 1); not when it reads the model
     * input instead; layer 2 reads two tensors */
    m = graph3(gl, tt, 0, 8);
    TS_ASSERT(ts_layer_reads_previous(&m, 1));
    TS_ASSERT(!ts_layer_reads_previous(&m, 2));
    gl[1].inputs[0] = 0;
    TS_ASSERT(!ts_layer_reads_previous(&m, 1));
    /* CONCATENATION's inputs must fill its axis */
    m = graph3(gl, tt, 0, 8);
    gl[2].out.c = 12;
    TS_ASSERT_EQ_INT(TS_ERR_SHAPE, ts_model_check(&m));
    /* ADD of two tensors: its in2 is the second tensor's dims (here 1 x 1 x 1, which
     * broadcasts, but tensor 2 is 1 x 1 x 4) */
    {
        static const int32_t am[3] = {1 << 30, 1 << 30, 1 << 30}, as[3] = {0, 0, 0};
        m = graph3(gl, tt, 0, 8);
        gl[2] = row(TS_OP_ADD, gl[1].out, gl[1].out);
        gl[2].num_inputs = 2;
        gl[2].inputs[0] = 1;
        gl[2].inputs[1] = 2;
        gl[2].in2 = gl[1].out;
        gl[2].multiplier = am;
        gl[2].shift = as;
        gl[2].quant_len = 3;
        TS_ASSERT_EQ_INT(TS_OK, ts_model_check(&m));
        gl[2].in2.c = 1;
        TS_ASSERT_EQ_INT(TS_ERR_SHAPE, ts_model_check(&m));
    }
    /* the model input is the caller's, never planned */
    m = graph3(gl, tt, 0, 8);
    tt[0].offset = 16;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_model_check(&m));
    /* 4096 layers at most, refused before any layer is read (an unknown op here) */
    m = graph3(gl, tt, 0, 8);
    gl[0].op = 99;
    m.num_layers = 4097;
    TS_ASSERT_EQ_INT(TS_ERR_SHAPE, ts_model_check(&m));
    m.num_layers = 4096;
    TS_ASSERT_EQ_INT(TS_ERR_UNSUPPORTED_OP, ts_model_check(&m));
    /* a tensor table of one entry more than the layers make */
    m = graph3(gl, tt, 0, 8);
    m.num_tensors = 5;
    TS_ASSERT_EQ_INT(TS_ERR_SHAPE, ts_model_check(&m));
    /* PAD: one column more than its output holds; then exactly what it holds */
    {
        static ts_layer_t pad;
        static int8_t px[8], py[12];
        ts_model_t pm;
        pad = row(TS_OP_PAD, (ts_dims_t){1, 2, 4}, (ts_dims_t){1, 3, 4});
        pad.pad_w = 2;
        pm = model_of(&pad, 1, pad.in);
        TS_ASSERT_EQ_INT(TS_ERR_SHAPE, ts_model_check(&pm));
        TS_ASSERT_EQ_INT(TS_ERR_SHAPE, ts_invoke(&pm, px, py, NULL, 0));
        pad.pad_w = 1;
        TS_ASSERT_EQ_INT(TS_OK, ts_invoke(&pm, px, py, NULL, 0));
    }
    /* SAME over an odd size: TFLM's output is ceil(in / stride) (7 -> 4 at stride 2) */
    {
        static ts_layer_t pool;
        static int8_t px[7 * 7], py[4 * 4];
        ts_model_t pm;
        pool = row(TS_OP_MAX_POOL_2D, (ts_dims_t){7, 7, 1}, (ts_dims_t){4, 4, 1});
        pool.padding = TS_PAD_SAME;
        pool.filter_h = pool.filter_w = 2;
        pool.stride_h = pool.stride_w = 2;
        pm = model_of(&pool, 1, pool.in);
        TS_ASSERT_EQ_INT(TS_OK, ts_invoke(&pm, px, py, NULL, 0));
    }
    /* ADD of a constant operand: as long as its dims say */
    {
        static ts_layer_t ad;
        static const int8_t c4[4] = {1, 2, 3, 4};
        static const int32_t am[3] = {1 << 30, 1 << 30, 1 << 30}, as[3] = {0, 0, 0};
        static int8_t ax[4] = {5, 6, 7, 8}, ay[4];
        ts_model_t am_;
        ad = row(TS_OP_ADD, (ts_dims_t){1, 1, 4}, (ts_dims_t){1, 1, 4});
        ad.in2 = ad.in;
        ad.weights = c4;
        ad.weights_len = 3;
        ad.multiplier = am;
        ad.shift = as;
        ad.quant_len = 3;
        am_ = model_of(&ad, 1, ad.in);
        TS_ASSERT_EQ_INT(TS_ERR_SHAPE, ts_invoke(&am_, ax, ay, NULL, 0));
        ad.weights_len = 4;
        TS_ASSERT_EQ_INT(TS_OK, ts_invoke(&am_, ax, ay, NULL, 0));
    }
    /* LOGISTIC: an input left shift of 30 at most */
    {
        static ts_layer_t lg;
        static int8_t lx[4] = {-100, -1, 0, 100}, ly[4];
        ts_model_t lm;
        lg = row(TS_OP_LOGISTIC, (ts_dims_t){1, 1, 4}, (ts_dims_t){1, 1, 4});
        lg.output_zero_point = -128;
        lg.softmax_input_multiplier = 1073741824;
        lg.softmax_input_left_shift = 31;
        lg.softmax_diff_min = 50;
        lm = model_of(&lg, 1, lg.in);
        TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_invoke(&lm, lx, ly, NULL, 0));
        lg.softmax_input_left_shift = 30;
        TS_ASSERT_EQ_INT(TS_OK, ts_invoke(&lm, lx, ly, NULL, 0));
    }
}

static void test_softmax_depth_limit(void) {
    static ts_layer_t sm;
    static int8_t x[600], y[600];
    ts_model_t m;
    sm = row(TS_OP_SOFTMAX, (ts_dims_t){1, 1, 600}, (ts_dims_t){1, 1, 600});
    sm.output_zero_point = -128;
    sm.softmax_input_multiplier = 1717986918;
    sm.softmax_input_left_shift = 22;
    sm.softmax_diff_min = -248;
    m = model_of(&sm, 1, sm.in);
    memset(x, 0, sizeof x);
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_invoke(&m, x, y, NULL, 0));
    sm.in.c = sm.out.c = 512; /* one past the limit */
    m.input = sm.in;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_invoke(&m, x, y, NULL, 0));
    sm.in.c = sm.out.c = 511;
    m.input = sm.in;
    TS_ASSERT_EQ_INT(TS_OK, ts_invoke(&m, x, y, NULL, 0));
}

static void test_arena_too_small(void) {
    size_t need;
    build_valid_model();
    need = ts_arena_size(&g_model);
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_invoke(&g_model, g_x, g_y, g_arena, need - 1u));
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_invoke(&g_model, g_x, g_y, g_arena, 0));
    TS_ASSERT_EQ_INT(TS_OK, ts_invoke(&g_model, g_x, g_y, g_arena, need));
    /* misaligned */
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_invoke(&g_model, g_x, g_y, g_arena + 1, 512));
    /* bad layer ranges */
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_run_layers(&g_model, 3, 3, g_x, g_y, g_arena, 512));
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_run_layers(&g_model, 0, NL + 1, g_x, g_y, g_arena, 512));
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_run_layers(&g_model, 5, 2, g_x, g_y, g_arena, 512));
}

/* Random single-field corruptions: whatever ts_model_check accepts must run cleanly (the
 * sanitizers would flag any out-of-bounds access or signed overflow). */
static void test_random_corruptions(void) {
    static const int32_t values[] = {-2147483647 - 1, -65536, -32769, -256, -129, -128, -2,
                                     -1, 0, 1, 2, 3, 4, 5, 7, 8, 127, 128, 255, 256, 511,
                                     600, 32767, 65535, 2147483647};
    uint32_t trial, accepted = 0;
    for (trial = 0; trial < TRIALS(20000u); ++trial) {
        ts_layer_t *l;
        int32_t v;
        ts_status_t st;
        build_valid_model();
        l = &g_layers[rnd() % NL];
        v = (rnd() & 1u) ? values[rnd() % (sizeof values / sizeof values[0])] : (int32_t)rnd();
        switch (rnd() % 22u) {
        case 0: l->op = (uint8_t)v; break;
        case 1: l->padding = (uint8_t)v; break;
        case 2: l->stride_h = (uint8_t)v; break;
        case 3: l->stride_w = (uint8_t)v; break;
        case 4: l->dilation_h = (uint8_t)v; break;
        case 5: l->filter_w = (uint8_t)v; break;
        case 6: l->depth_multiplier = (uint16_t)v; break;
        case 7: l->pad_h = (int16_t)v; break;
        case 8: l->in.h = v; break;
        case 9: l->in.c = v; break;
        case 10: l->out.w = v; break;
        case 11: l->out.c = v; break;
        case 12: l->input_zero_point = v; break;
        case 13: l->output_zero_point = v; break;
        case 14: l->act_min = v; break;
        case 15: l->act_max = v; break;
        case 16: l->weights_len = (uint32_t)v; break;
        case 17: l->bias_len = (uint32_t)v; break;
        case 18: l->quant_len = (uint32_t)v; break;
        case 19: l->softmax_input_multiplier = v; break;
        case 20: l->softmax_input_left_shift = v; break;
        default: l->softmax_diff_min = v; break;
        }
        st = ts_model_check(&g_model);
        if (st == TS_OK) {
            ++accepted;
            TS_ASSERT_EQ_INT(TS_OK, ts_invoke(&g_model, g_x, g_y, g_arena, sizeof g_arena));
        } else {
            TS_ASSERT(st >= TS_ERR_NULL && st <= TS_ERR_DATA);
            TS_ASSERT_EQ_INT(st, invoke());
        }
    }
    TS_ASSERT(accepted > 0u);
}

/* ---- the trainer's and the replay buffer's sizes ------------------------------------------ */

/* A model whose head reads D = 65536 features (two RESHAPEs below it, so that the frozen
 * layers need an arena): the sizes below are products of caller counts with D. Nothing here
 * runs a layer: every call is refused (or stopped by the arena) before the head is read. */
#define BIG_D 65536u
static const int8_t g_big_w[BIG_D];
static const uint8_t g_big_labels[BIG_D + 1u]; /* all class 0 */
static const int32_t g_one_mult[1] = {1 << 30}, g_zero_shift[1] = {0};
static float g_head_f[4]; /* non-NULL; the trainer reads it only when it trains */
static uint32_t g_cycle_calls;

static uint32_t count_cycles(void) {
    return ++g_cycle_calls;
}

static void big_head_model(ts_model_t *m, ts_layer_t *gl) {
    const ts_dims_t d = {1, 4, 16384}, one = {1, 1, 1};
    gl[0] = row(TS_OP_RESHAPE, d, d);
    gl[1] = row(TS_OP_RESHAPE, d, d);
    gl[2] = row(TS_OP_FULLY_CONNECTED, d, one);
    gl[2].weights = g_big_w;
    gl[2].weights_len = BIG_D;
    gl[2].multiplier = g_one_mult;
    gl[2].shift = g_zero_shift;
    gl[2].quant_len = 1;
    *m = model_of(gl, 3, d);
    m->head_layer = 2;
    m->feature_dim = BIG_D;
    m->num_classes = 1;
    m->feature_scale = 1.0f;
    m->logit_scale = 1.0f;
    m->head_weights = g_head_f;
    m->head_bias = g_head_f;
}

/* (train + test) * sample_bytes in a 32-bit size_t: 65537 * 65536 wrapped to 65536, so a
 * cache of 64 KiB passed for one of 4 GiB; now every product from 2^31 up is refused. */
static void test_trainer_cache_sizes_beyond_2g(void) {
    static ts_layer_t gl[3];
    ts_model_t m;
    big_head_model(&m, gl);
    TS_ASSERT_EQ_INT(TS_OK, ts_trainer_check_model(&m));
    TS_ASSERT(ts_trainer_cache_bytes(&m, TS_UPDATE_HEAD, 1, 32766) ==
              (size_t)32767u * BIG_D); /* the largest below 2^31 */
    TS_ASSERT(ts_trainer_cache_bytes(&m, TS_UPDATE_HEAD, 1, 32767) == 0u); /* 2^31 */
    TS_ASSERT(ts_trainer_cache_bytes(&m, TS_UPDATE_HEAD, 1, 65536) == 0u); /* 2^32 + 2^16 */
    TS_ASSERT(ts_trainer_cache_bytes(&m, TS_UPDATE_HEAD, 65535, 0xFFFFFFFFu) == 0u);
    TS_ASSERT(ts_trainer_cache_size(&m, 1, 32766) == (size_t)32767u * BIG_D);
    TS_ASSERT(ts_trainer_cache_size(&m, 1, 65536) == 0u);
    TS_ASSERT(ts_trainer_cache_size(&m, 0xFFFFFFFFu, 0xFFFFFFFFu) == 0u);
}

/* ts_trainer_extract_features checked out_bytes against count * feature_dim in size_t: a
 * count of 65537 passed with 64 KiB on the target and the frozen layers wrote 4 GiB. Now
 * TS_ERR_ARENA before any sample runs (the counter is never read); without an arena the
 * first sample would stop with TS_ERR_NULL, which is what a count below the limit gets. */
static void test_trainer_extract_beyond_2g(void) {
    static ts_layer_t gl[3];
    static int8_t out[16];
    ts_model_t m;
    ts_dataset_t ds;
    uint64_t c = 0;
    big_head_model(&m, gl);
    ds.count = 65537;
    ds.sample_bytes = BIG_D;
    ds.x = g_big_w; /* never read: refused first */
    ds.y = g_big_labels;
    g_cycle_calls = 0;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_trainer_extract_features(&m, &ds, out, (size_t)-1, NULL, 0,
                                                               count_cycles, &c));
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_trainer_extract_features(&m, &ds, out, BIG_D, NULL, 0,
                                                               count_cycles, &c));
    TS_ASSERT_EQ_INT(0, g_cycle_calls);
    ds.count = 32768; /* 2^31 bytes */
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_trainer_extract_inputs(&m, TS_UPDATE_HEAD, &ds, out,
                                                             (size_t)-1, NULL, 0, NULL, NULL));
    ds.count = 32767; /* below: the size passes, the missing arena stops the first sample */
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_trainer_extract_features(&m, &ds, out, (size_t)-1, NULL, 0,
                                                              NULL, NULL));
}

/* ts_train_head's cache check: train + test samples (the test count is not bounded by
 * TS_TRAINER_MAX_SAMPLES) times feature_dim wrapped too; now refused before the cache fill
 * starts (its first step reads the counter). */
static void test_trainer_cache_fill_beyond_2g(void) {
    static ts_layer_t gl[3];
    static uint8_t ws[64] __attribute__((aligned(8)));
    static uint8_t arena[64] __attribute__((aligned(8)));
    static int8_t cache[16], hq_w[4];
    static int32_t hq_b[4];
    ts_model_t m;
    ts_dataset_t train, test;
    ts_head_q_t hq;
    ts_trainer_config_t cfg;
    ts_train_request_t req;
    big_head_model(&m, gl);
    train.count = 1;
    train.sample_bytes = BIG_D;
    train.x = g_big_w;
    train.y = g_big_labels;
    test = train;
    test.count = 65536; /* (1 + 65536) * 65536 = 2^32 + 2^16 */
    memset(&cfg, 0, sizeof cfg);
    cfg.epochs = 1;
    cfg.batch_size = 1;
    cfg.learning_rate = 0.1f;
    cfg.cycles = count_cycles;
    memset(&hq, 0, sizeof hq);
    hq.weights = hq_w;
    hq.bias = hq_b;
    memset(&req, 0, sizeof req);
    req.train = &train;
    req.test = &test;
    req.workspace = ws; /* the sizes claimed are never reached: refused first */
    req.workspace_bytes = (size_t)-1;
    req.feature_cache = cache;
    req.feature_cache_bytes = (size_t)-1;
    req.arena = arena + 1; /* misaligned: a cache fill that started would stop at once */
    req.arena_bytes = sizeof arena - 1u;
    req.head_q = &hq;
    g_cycle_calls = 0;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_train_head(&m, &cfg, &req));
    TS_ASSERT_EQ_INT(0, g_cycle_calls);
    req.feature_cache_bytes = BIG_D; /* the wrapped product on the target */
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_train_head(&m, &cfg, &req));
    TS_ASSERT_EQ_INT(0, g_cycle_calls);
    /* below the limit the fill starts (and the misaligned arena stops it) */
    test.count = 32766;
    req.feature_cache_bytes = (size_t)-1;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_train_head(&m, &cfg, &req));
    TS_ASSERT(g_cycle_calls > 0u);
}

/* update=bias masks one bit per conv output value below the head: 64 convolutions of
 * 8192 x 8192 outputs are 2^32 bits. ts_trainer_sizes let them through (it allowed up to
 * 2^35) and stored mask_bits in a uint32_t as 0, so the masks took no room in the workspace
 * while the float layers wrote bits up to 2^32 (and TS_TRAINER_TAIL_BYTES, a size_t sum,
 * wrapped on the target besides). Now every count stays below 2^31. */
#define MB_CONVS 64
static void test_trainer_mask_bits_beyond_2g(void) {
    static ts_layer_t gl[MB_CONVS + 4];
    static const int8_t w1[1] = {1};
    const ts_dims_t big = {8192, 8192, 1}, mid = {64, 64, 1}, one = {1, 1, 1}, two = {1, 1, 2};
    static const int8_t w2[2] = {1, 1};
    ts_model_t m;
    ts_trainer_sizes_t sz;
    uint32_t i, convs;
    for (convs = 31; convs <= MB_CONVS; ++convs) {
        const uint32_t n = convs + 4u;
        if (convs != 31u && convs != 32u && convs != MB_CONVS) {
            continue;
        }
        for (i = 0; i < convs; ++i) {
            gl[i] = row(TS_OP_CONV_2D, big, big);
            gl[i].weights = w1;
            gl[i].weights_len = 1;
            gl[i].multiplier = g_one_mult;
            gl[i].shift = g_zero_shift;
            gl[i].quant_len = 1;
        }
        gl[convs] = row(TS_OP_AVERAGE_POOL_2D, big, mid);
        gl[convs].filter_h = gl[convs].filter_w = 128;
        gl[convs].stride_h = gl[convs].stride_w = 128;
        gl[convs + 1u] = row(TS_OP_AVERAGE_POOL_2D, mid, one);
        gl[convs + 1u].filter_h = gl[convs + 1u].filter_w = 64;
        gl[convs + 1u].stride_h = gl[convs + 1u].stride_w = 64;
        gl[convs + 2u] = row(TS_OP_RESHAPE, one, one);
        gl[convs + 3u] = row(TS_OP_FULLY_CONNECTED, one, two);
        gl[convs + 3u].weights = w2;
        gl[convs + 3u].weights_len = 2;
        gl[convs + 3u].multiplier = g_one_mult;
        gl[convs + 3u].shift = g_zero_shift;
        gl[convs + 3u].quant_len = 1;
        m = model_of(gl, n, big);
        m.head_layer = n - 1u;
        m.feature_dim = 1;
        m.num_classes = 2;
        m.feature_scale = 1.0f;
        m.logit_scale = 1.0f;
        m.head_weights = g_head_f;
        m.head_bias = g_head_f;
        TS_ASSERT_EQ_INT(TS_OK, ts_model_check(&m));
        if (convs == 31u) { /* 31 * 2^26 bits: below 2^31, sized in full */
            TS_ASSERT_EQ_INT(TS_OK, ts_trainer_sizes(&m, TS_UPDATE_BIAS, &sz));
            TS_ASSERT(sz.mask_bits == 31u << 26);
            TS_ASSERT(sz.workspace_bytes ==
                      TS_TRAINER_BIAS_WORKSPACE_BYTES(n - 1u, 31u, 1u << 26, 31u << 26));
        } else { /* 2^31 and 2^32 bits */
            TS_ASSERT_EQ_INT(TS_ERR_SHAPE, ts_trainer_sizes(&m, TS_UPDATE_BIAS, &sz));
        }
    }
}

/* The replay buffer's workspace: K*C*D reaches 65280 * 66051 = 4.3e9 bytes within the limits
 * on K*C and D; TS_REPLAY_WORKSPACE_BYTES, a size_t sum, wrapped on the target (a few MB then
 * passed ts_replay_bind's check). Now such a config is refused. */
static void test_replay_workspace_beyond_2g(void) {
    static uint32_t radius2[256];
    static uint8_t ws[64] __attribute__((aligned(4)));
    ts_replay_config_t cfg;
    ts_replay_t r;
    memset(&cfg, 0, sizeof cfg);
    cfg.policy = TS_REPLAY_COVERAGE;
    cfg.capacity = 1;
    cfg.num_classes = 256;
    cfg.per_class = 255;
    cfg.radius2 = radius2;
    cfg.dim = 32768; /* 65280 * 32768 + the bookkeeping: just below 2^31 */
    TS_ASSERT(ts_replay_workspace_size(&cfg) ==
              TS_REPLAY_WORKSPACE_BYTES(1u, 256u, 255u, 32768u));
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_replay_init(&r, &cfg, ws, sizeof ws));
    cfg.dim = TS_REPLAY_MAX_DIM;
    TS_ASSERT(ts_replay_workspace_size(&cfg) == 0u);
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, sizeof ws));
    cfg.dim = 32900; /* 2^31 + 0.3 MB */
    TS_ASSERT(ts_replay_workspace_size(&cfg) == 0u);
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, sizeof ws));
}

/* A coverage config of B slots, K classes, C codewords of D bytes; the arrays are the caller's. */
static void replay_cfg(ts_replay_config_t *cfg, uint32_t policy, uint32_t b, uint32_t k,
                       uint32_t c, uint32_t d) {
    memset(cfg, 0, sizeof *cfg);
    cfg->policy = policy;
    cfg->capacity = b;
    cfg->seed = 1;
    cfg->num_classes = k;
    cfg->per_class = c;
    cfg->dim = d;
}

/* The replay buffer's config refusals, each at its boundary (ts_replay.h, docs/trainer.md
 * "Replay upkeep"): the limits on B, K, C and D are inclusive (at the limit the config passes
 * and only the short workspace stops it, TS_ERR_ARENA; one past it is TS_ERR_PARAM); the
 * workspace is refused from exactly 2^31 bytes; exactly TS_REPLAY_WORKSPACE_BYTES is enough and
 * one byte less is not; it must be 4-byte aligned; reservoir sampling ignores C and D. */
static void test_replay_config_boundaries(void) {
    static uint32_t radius2[256];
    static uint8_t counts[2];
    static const int8_t codebook[2 * 2 * 3];
    /* 6*4 + 6*2*2 + 3*2 + 2*2*3 = 66 -> 68 bytes, and 8 to spare for the offsets below */
    static uint8_t ws[68 + 8] __attribute__((aligned(4)));
    ts_replay_config_t cfg;
    ts_replay_t r;
    TS_ASSERT(TS_REPLAY_WORKSPACE_BYTES(4u, 2u, 2u, 3u) == 68u);
    replay_cfg(&cfg, TS_REPLAY_COVERAGE, 4, 2, 2, 3);
    cfg.codebook = codebook;
    cfg.codebook_count = counts;
    cfg.radius2 = radius2;
    counts[0] = 1;
    counts[1] = 0;
    TS_ASSERT(ts_replay_workspace_size(&cfg) == 68u);
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws, 68));
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_replay_init(&r, &cfg, ws, 67));
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws + 4, 68));
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws + 1, 68));
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws + 2, 68));
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_replay_init(NULL, &cfg, ws, 68));
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_replay_init(&r, NULL, ws, 68));
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_replay_init(&r, &cfg, NULL, 68));
    TS_ASSERT(ts_replay_workspace_size(NULL) == 0u);
    /* the codebook and the radii: exported counts up to C, a codebook when one is exported, a
     * radius for every online class (codebook_count NULL: every class online) */
    counts[0] = 2;
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws, 68));
    counts[0] = 3;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    counts[0] = 1;
    cfg.codebook = NULL;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    counts[0] = 0;
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws, 68));
    cfg.codebook = codebook;
    counts[0] = 1;
    cfg.radius2 = NULL;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    counts[1] = 2;
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws, 68));
    cfg.codebook_count = NULL;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    cfg.radius2 = radius2;
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws, 68));
    /* the policy; B in 1..65535; K in 1..256; C in 1..255; D in 1..TS_REPLAY_MAX_DIM */
    cfg.policy = TS_REPLAY_POLICY_COUNT;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    cfg.policy = TS_REPLAY_COVERAGE;
    cfg.capacity = 0;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    cfg.capacity = TS_REPLAY_MAX_CAPACITY;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_replay_init(&r, &cfg, ws, 68));
    cfg.capacity = TS_REPLAY_MAX_CAPACITY + 1u;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    cfg.capacity = 4;
    cfg.num_classes = 0;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    cfg.num_classes = 256;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_replay_init(&r, &cfg, ws, 68));
    cfg.num_classes = 257;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    cfg.num_classes = 2;
    cfg.per_class = 255;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_replay_init(&r, &cfg, ws, 68));
    cfg.per_class = 256;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    cfg.per_class = 0;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    cfg.per_class = 2;
    cfg.dim = 0;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    cfg.dim = TS_REPLAY_MAX_DIM;
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_replay_init(&r, &cfg, ws, 68));
    cfg.dim = TS_REPLAY_MAX_DIM + 1u;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, 68));
    /* exactly 2^31 bytes: 6*5333 + 6*65280 + 3*256 + 65280*32890 = 2^31 - 2 -> 2^31 (refused);
     * one slot less: 2^31 - 8 (passes the check, stopped by the workspace) */
    replay_cfg(&cfg, TS_REPLAY_COVERAGE, 5332, 256, 255, 32890);
    cfg.radius2 = radius2;
    TS_ASSERT(ts_replay_workspace_size(&cfg) == (size_t)2147483640u);
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_replay_init(&r, &cfg, ws, sizeof ws));
    cfg.capacity = 5333;
    TS_ASSERT(TS_REPLAY_WORKSPACE_BYTES(5333u, 256u, 255u, 32890u) == ((uint64_t)1 << 31));
    TS_ASSERT(ts_replay_workspace_size(&cfg) == 0u);
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_init(&r, &cfg, ws, sizeof ws));
    /* reservoir sampling ignores C and D (and the codebook): 6*4 + 3*2 = 30 -> 32 bytes */
    replay_cfg(&cfg, TS_REPLAY_RESERVOIR, 4, 2, 2, 3);
    TS_ASSERT(ts_replay_workspace_size(&cfg) == 32u);
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws, 32));
    TS_ASSERT_EQ_INT(TS_ERR_ARENA, ts_replay_init(&r, &cfg, ws, 31));
    cfg.per_class = 300;
    cfg.dim = 0;
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws, 32));
    TS_ASSERT(ts_replay_workspace_size(&cfg) == 32u);
}

/* ts_replay_offer()'s refusals: past the NULL checks *slot is TS_REPLAY_DROP and the stream
 * does not advance; an offer on a buffer never started (its arrays NULL) is TS_ERR_NULL; a
 * stream holds at most 2^32 - 1 samples (r.seen is set to 2^32 - 2 here as a stand-in for as
 * many offers: the next sample's index would wrap). And the policies' names, class stats
 * outside coverage. */
static void test_replay_offer_refusals(void) {
    static uint8_t ws[68] __attribute__((aligned(4)));
    static const int8_t codebook[2 * 2 * 3];
    static const uint8_t counts[2] = {1, 1};
    static const int8_t f[3] = {1, 2, 3};
    ts_replay_config_t cfg;
    ts_replay_t r, blank;
    uint32_t slot = 0, n = 7, k = 7;
    replay_cfg(&cfg, TS_REPLAY_RESERVOIR, 2, 2, 0, 0);
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws, sizeof ws));
    TS_ASSERT_EQ_INT(TS_ERR_DATA, ts_replay_offer(&r, 2, NULL, &slot));
    TS_ASSERT(slot == TS_REPLAY_DROP && r.seen == 0u && r.kept == 0u);
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_replay_offer(NULL, 0, NULL, &slot));
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_replay_offer(&r, 0, NULL, NULL));
    memset(&blank, 0, sizeof blank);
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_replay_offer(&blank, 0, NULL, &slot));
    TS_ASSERT(ts_replay_compact(&blank, NULL, 0, NULL) == 0u);
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_offer(&r, 1, NULL, &slot));
    TS_ASSERT(slot == 0u && r.seen == 1u);
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_offer(&r, 0, NULL, &slot));
    TS_ASSERT(slot == 1u && r.seen == 2u && r.kept == 2u);
    r.seen = 0xFFFFFFFEu;
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_offer(&r, 0, NULL, &slot));
    TS_ASSERT(r.seen == 0xFFFFFFFFu);
    slot = 0;
    TS_ASSERT_EQ_INT(TS_ERR_PARAM, ts_replay_offer(&r, 0, NULL, &slot));
    TS_ASSERT(slot == TS_REPLAY_DROP && r.seen == 0xFFFFFFFFu);
    ts_replay_class_stats(&r, 0, &n, &k);
    TS_ASSERT(n == 0u && k == 0u);
    /* coverage needs the features */
    replay_cfg(&cfg, TS_REPLAY_COVERAGE, 4, 2, 2, 3);
    cfg.codebook = codebook;
    cfg.codebook_count = counts;
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_init(&r, &cfg, ws, sizeof ws));
    slot = 0;
    TS_ASSERT_EQ_INT(TS_ERR_NULL, ts_replay_offer(&r, 0, NULL, &slot));
    TS_ASSERT(slot == TS_REPLAY_DROP && r.seen == 0u && r.kept == 0u);
    TS_ASSERT_EQ_INT(TS_OK, ts_replay_offer(&r, 1, f, &slot));
    TS_ASSERT(slot == 0u && r.seen == 1u && r.slot_cw[0] == 2u);
    ts_replay_class_stats(&r, 1, &n, &k);
    TS_ASSERT(n == 1u && k == 1u);
    n = k = 7;
    ts_replay_class_stats(&r, 2, &n, &k);
    TS_ASSERT(n == 0u && k == 0u);
    TS_ASSERT(strcmp(ts_replay_policy_name(TS_REPLAY_RESERVOIR), "reservoir") == 0);
    TS_ASSERT(strcmp(ts_replay_policy_name(TS_REPLAY_COVERAGE), "coverage") == 0);
    TS_ASSERT(ts_replay_policy_name(TS_REPLAY_POLICY_COUNT) == NULL);
}

int main(void) {
    TS_TEST_BEGIN();
    TS_RUN(test_mbqm_fast_equals_reference);
    TS_RUN(test_rounding_primitives);
    TS_RUN(test_dsp_equals_scalar_random_layers);
    TS_RUN(test_dsp_equals_scalar_full_int8_range);
    TS_RUN(test_dsp_equals_scalar_tiny_scales);
    TS_RUN(test_dsp_equals_scalar_stride_3);
    TS_RUN(test_dsp_equals_scalar_many_channels);
    TS_RUN(test_dsp_fc_reads_no_weight_past_its_layer);
    TS_RUN(test_valid_model_runs);
    TS_RUN(test_wrong_version);
    TS_RUN(test_null_pointers);
    TS_RUN(test_shapes_that_do_not_chain);
    TS_RUN(test_array_lengths);
    TS_RUN(test_bad_op);
    TS_RUN(test_out_of_range_params);
    TS_RUN(test_softmax_depth_limit);
    TS_RUN(test_arena_too_small);
    TS_RUN(test_graph_arena_beyond_2g);
    TS_RUN(test_check_boundaries);
    TS_RUN(test_random_corruptions);
    TS_RUN(test_trainer_cache_sizes_beyond_2g);
    TS_RUN(test_trainer_extract_beyond_2g);
    TS_RUN(test_trainer_cache_fill_beyond_2g);
    TS_RUN(test_trainer_mask_bits_beyond_2g);
    TS_RUN(test_replay_workspace_beyond_2g);
    TS_RUN(test_replay_config_boundaries);
    TS_RUN(test_replay_offer_refusals);
    return TS_TEST_END();
}
