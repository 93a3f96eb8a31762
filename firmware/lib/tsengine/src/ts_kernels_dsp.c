/*
 * tinysift engine: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with dual 16-bit MACs
 * (Cortex-M4/M7 SMLAD, SMLABB/SMLATT, SMMULR, SSAT; see ts_dsp.h), bit-exact with the scalar
 * kernels in ts_kernels.c and so with TFLM.
 *
 * Why the MACs are exact: every product (x - zp) * w is formed exactly in 16x16->32 bits
 * (|x - zp| <= 255, |w| <= 128) and int32 addition is associative; ts_layer_check refuses
 * any layer whose accumulator could leave int32, so summation order does not matter.
 *
 * Why the requantization is exact: TFLM computes (double rounding, see ts_fixedpoint.h)
 *   y = SaturatingRoundingDoublingHighMul(x, m) = floor((x * m + 2^30) / 2^31)   (m >= 0)
 *   out = RoundingDivideByPOT(y, e) + zp = floor((y + 2^(e-1) - [y < 0]) / 2^e) + zp
 * with x = acc + bias and e = -shift >= 1. Here, for layers where every |x| < 2^30 and every
 * e is in [1, 22] (checked once per call; other layers run the scalar kernel):
 *   floor((x * m + 2^30) / 2^31) = floor((2x * m + 2^31) / 2^32) = SMMULR(2x, m)
 *     (2x = 2 * acc + 2 * bias fits in int32 because |x| < 2^30), and
 *   floor((y + 2^(e-1) - [y < 0]) / 2^e) + zp = (y + (2^(e-1) + zp * 2^e) - [y < 0]) >> e
 *     (adding a multiple of 2^e commutes with the floor; |y| <= |x| < 2^30, |zp| <= 128 and
 *     e <= 22 keep the sum inside int32),
 * then SSAT to int8 (and the activation clamp when it is narrower than int8): 6 to 7
 * instructions per output with per-channel constants tabulated once per call.
 *
 * Data layout trick (the one CMSIS-NN uses for its s8 kernels): SXTB16 of a word of four
 * int8 gives lanes (b0, b2) and SXTB16 ROR 8 gives (b1, b3). Activations are expanded the
 * same way (SXTAB16 also adds the input offset), so each SMLAD pairs matching elements
 * without any repacking.
 *
 * CONV_2D: im2col of two output pixels at a time into a q15 scratch buffer (the two
 * columns interleaved per group of 4; padded taps hold the zero point, i.e. contribute 0),
 * then 2 channels x 2 pixels per inner loop (8 SMLAD per 16 MACs); for two pixels, no clamp
 * inside int8 and K % 4 == 0 the loop over channel pairs, requantization included, is inline
 * assembly (conv_pairs_asm: the MAC loop needs all 14 allocatable registers).
 * FULLY_CONNECTED: the input expanded once, then 2 rows at a time.
 * 3x3 DEPTHWISE_CONV_2D (depth multiplier 1, no dilation, strides 1-2) and a 3x3 CONV_2D on
 * one input channel: one input channel at a time in an int16 plane (conv3x3_planes), two
 * adjacent outputs per pass with SMLAD/SMLADX over pairs of taps (pairs_row_*), a row of
 * accumulators requantized at once.
 * Other DEPTHWISE_CONV_2D (depth multiplier 1, no dilation): 4 channels per word,
 * SMLABB/SMLATT per tap; weights of windows up to 3x3 expanded once per call, the 3x3 window
 * unrolled when it lies inside the image.
 * Layers larger than TS_DSP_MAX_K use the scalar kernels.
 *
 * Scratch (the im2col columns, the expanded FC input, the channel plane and the
 * requantization tables) comes from the caller, as in CMSIS-NN: *_scratch_size() bytes,
 * 4-byte aligned (the exporter's twin: export/memory.py); a kernel keeps only a few words on
 * the stack. NULL scratch runs the scalar kernel (the 4-channel kernel for depthwise; same
 * result).
 */
#include <string.h>

#include "ts_dsp.h"
#include "ts_fixedpoint.h"
#include "ts_kernels.h"

#ifndef TS_DSP_RQ_BLOCK
#define TS_DSP_RQ_BLOCK 64 /* output channels per requantization table (16 bytes each) */
#endif

#define TS_FAST_ACC_LIMIT ((int64_t)1 << 30)
#define TS_DW_MAX_XTAPS 9 /* depthwise windows up to 3x3 use pre-expanded weights */
#define TS_DW_RQ_BLOCK 16 /* depthwise channels per on-stack table (16 + 72 words each 4) */
#define TS_FAST_MAX_E 22
#ifndef TS_DW_PLANE_MAX_BYTES
#define TS_DW_PLANE_MAX_BYTES 8192 /* the largest depthwise channel plane (scratch) */
#endif

/* Inner loops in inline assembly (Armv7E-M with GCC's asm syntax); the C versions elsewhere. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
#define TS_DSP_ASM 1
#define TS_NOINLINE __attribute__((noinline)) /* a fresh register file for the loop */
#else
#define TS_DSP_ASM 0
#define TS_NOINLINE
#endif

/* Keeps the compiler from hoisting the loads of a whole unrolled window ahead of their use
 * (which spills registers on a 13-register core); no instruction is emitted. */
#if defined(__GNUC__)
#define TS_COMPILER_BARRIER() __asm__ volatile("" ::: "memory")
#else
#define TS_COMPILER_BARRIER() ((void)0)
#endif

/* Requantization constants of one output channel (see the file comment). */
typedef struct {
    int32_t bias2; /* 2 * bias */
    int32_t mult;
    int32_t e;     /* right shift, 1..TS_FAST_MAX_E */
    int32_t rz;    /* 2^(e-1) + output_zero_point * 2^e */
} ts_rq_t;

static size_t align4(size_t n) { return (n + 3u) & ~(size_t)3u; }

static size_t rq_bytes(int32_t channels) {
    return (size_t)(channels < TS_DSP_RQ_BLOCK ? channels : TS_DSP_RQ_BLOCK) * sizeof(ts_rq_t);
}

/* Depthwise 3x3 (depth multiplier 1, no dilation, strides 1 or 2), and CONV_2D 3x3 with one
 * input channel (a stem: the same sum over one channel's 3x3 window, once per output
 * channel), work on one input channel at a time, copied into an int16 plane bordered with
 * the input zero point: `rows` rows of `pitch` halfwords (even, so every row starts on a
 * word), wide enough for the last pair of outputs of a row (an odd last output is computed
 * in a pair and not stored); one row of int32 accumulators follows it. */
typedef struct {
    int32_t rows, pitch;
} ts_plane3x3_t;

static int plane3x3_of(const ts_layer_t *p, ts_plane3x3_t *g) {
    const int32_t sh = p->stride_h, sw = p->stride_w;
    const int32_t out_w2 = p->out.w + (p->out.w & 1);
    int32_t rows, pitch;
    const int depthwise = p->op == TS_OP_DEPTHWISE_CONV_2D && p->depth_multiplier == 1u;
    const int conv1 = p->op == TS_OP_CONV_2D && p->in.c == 1;
    if ((!depthwise && !conv1) || p->filter_h != 3u || p->filter_w != 3u ||
        p->dilation_h != 1u || p->dilation_w != 1u || sh < 1 || sh > 2 || sw < 1 || sw > 2 ||
        p->pad_h < 0 || p->pad_w < 0) {
        return 0;
    }
    rows = (p->out.h - 1) * sh + 3;
    rows = rows > p->pad_h + p->in.h ? rows : p->pad_h + p->in.h;
    pitch = (out_w2 - 1) * sw + 4;
    pitch = pitch > p->pad_w + p->in.w ? pitch : p->pad_w + p->in.w;
    pitch += pitch & 1;
    if ((int64_t)rows * pitch * 2 + (int64_t)out_w2 * 4 > TS_DW_PLANE_MAX_BYTES) {
        return 0;
    }
    g->rows = rows;
    g->pitch = pitch;
    return 1;
}

/* the plane, then one row of accumulators */
static size_t plane3x3_bytes(const ts_layer_t *p, const ts_plane3x3_t *g) {
    return 2u * (size_t)g->rows * (size_t)g->pitch + 4u * (size_t)(p->out.w + (p->out.w & 1));
}

/* conv: im2col of two pixels (4 * ceil(k / 4) words), the staging row (k + 4 bytes), the
 * requantization table of one block */
size_t ts_conv2d_s8_dsp_scratch_size(const ts_layer_t *p) {
    const int32_t k = p->filter_h * p->filter_w * p->in.c;
    ts_plane3x3_t g;
    if (plane3x3_of(p, &g)) { /* a 3x3 stem on one input channel: its plane */
        return plane3x3_bytes(p, &g);
    }
    if (k > TS_DSP_MAX_K) {
        return 0;
    }
    return 16u * (size_t)((k + 3) / 4) + align4((size_t)k + 4u) + rq_bytes(p->out.c);
}

/* FC: the expanded input (2 * ceil(k / 4) words), the requantization table of one block */
size_t ts_fully_connected_s8_dsp_scratch_size(const ts_layer_t *p) {
    const int32_t k = p->in.h * p->in.w * p->in.c;
    if (k > 2 * TS_DSP_MAX_K) {
        return 0;
    }
    return 8u * (size_t)((k + 3) / 4) + rq_bytes(p->out.c);
}

/* depthwise: the channel plane (3x3 windows; other windows keep their small tables, 544
 * bytes, on the stack and need none) */
size_t ts_depthwise_conv2d_s8_dsp_scratch_size(const ts_layer_t *p) {
    ts_plane3x3_t g;
    return plane3x3_of(p, &g) ? plane3x3_bytes(p, &g) : 0u;
}

/* Output range of a layer: the activation clamp, and whether it is all of int8. */
typedef struct {
    int32_t lo, hi;
    int full;
} ts_clamp_t;

/* May the fast requantization be used for this layer? Every shift in [-22, -1], and every
 * accumulator plus bias below 2^30 in magnitude (k = MACs per output). */
static int rq_fast_ok(const ts_layer_t *p, int64_t k) {
    int64_t max_bias = 0;
    uint32_t i;
    for (i = 0; i < p->quant_len; ++i) {
        if (p->shift[i] > -1 || p->shift[i] < -TS_FAST_MAX_E) {
            return 0;
        }
    }
    if (p->bias != NULL) {
        for (i = 0; i < p->bias_len; ++i) {
            const int64_t b = p->bias[i] < 0 ? -(int64_t)p->bias[i] : (int64_t)p->bias[i];
            max_bias = b > max_bias ? b : max_bias;
        }
    }
    return k * 255 * 128 + max_bias < TS_FAST_ACC_LIMIT;
}

/* The constants of output channels [c0, c1) into table[0 .. c1-c0). */
static void rq_table(const ts_layer_t *p, int32_t c0, int32_t c1, ts_rq_t *table) {
    const int per_channel = p->quant_len != 1u;
    int32_t c;
    for (c = c0; c < c1; ++c) {
        const int32_t q = per_channel ? c : 0;
        ts_rq_t *r = &table[c - c0];
        r->bias2 = p->bias != NULL ? 2 * p->bias[c] : 0;
        r->mult = p->multiplier[q];
        r->e = -p->shift[q];
        r->rz = ((int32_t)1 << (r->e - 1)) + p->output_zero_point * ((int32_t)1 << r->e);
    }
}

static ts_clamp_t clamp_of(const ts_layer_t *p) {
    ts_clamp_t c;
    c.lo = p->act_min;
    c.hi = p->act_max;
    c.full = p->act_min == -128 && p->act_max == 127;
    return c;
}

/* acc -> int8 output (see the file comment). */
static inline int8_t rq_apply(int32_t acc, const ts_rq_t *r, const ts_clamp_t *cl) {
    const int32_t y = ts_smmulr(2 * acc + r->bias2, r->mult);
    int32_t v = ts_ssat8((y + r->rz - (int32_t)((uint32_t)y >> 31)) >> r->e);
    if (!cl->full) {
        v = v < cl->lo ? cl->lo : v;
        v = v > cl->hi ? cl->hi : v;
    }
    return (int8_t)v;
}

/* Two accumulators of one channel -> int8 (before the clamp), its constants read once. */
static inline void rq_pair(int32_t acc0, int32_t acc1, const ts_rq_t *r, int32_t *v0,
                           int32_t *v1) {
    const int32_t bias2 = r->bias2, mult = r->mult, rz = r->rz, e = r->e;
    const int32_t y0 = ts_smmulr(2 * acc0 + bias2, mult);
    const int32_t y1 = ts_smmulr(2 * acc1 + bias2, mult);
    *v0 = ts_ssat8((y0 + rz - (int32_t)((uint32_t)y0 >> 31)) >> e);
    *v1 = ts_ssat8((y1 + rz - (int32_t)((uint32_t)y1 >> 31)) >> e);
}

static inline int32_t clamp_v(int32_t v, const ts_clamp_t *cl) {
    v = v < cl->lo ? cl->lo : v;
    return v > cl->hi ? cl->hi : v;
}

/* Four weights of a row's last, partial group (n = 1..3 bytes), zero-padded. */
static inline uint32_t tail_word(const int8_t *w, int32_t n) {
    uint32_t v = (uint8_t)w[0];
    if (n > 1) {
        v |= (uint32_t)(uint8_t)w[1] << 8;
    }
    if (n > 2) {
        v |= (uint32_t)(uint8_t)w[2] << 16;
    }
    return v;
}

/* Expand n int8 (n % 4 == 0) with the offset added; per 4 inputs the two words
 * (x0+o, x2+o), (x1+o, x3+o), written `stride` words apart from one group to the next. */
static inline uint32_t *expand_s8x4(const int8_t *src, int32_t n, uint32_t offset2, uint32_t *dst,
                                    int32_t stride) {
    int32_t i;
    for (i = 0; i < n; i += 4) {
        const uint32_t v = ts_read_s8x4(src + i);
        dst[0] = ts_sxtab16(offset2, v);
        dst[1] = ts_sxtab16_ror8(offset2, v);
        dst += stride;
    }
    return dst;
}

/* Small copies and fills for the im2col gather, a word at a time (plain loops would be
 * turned into library calls, too slow for spans of a few bytes). */
static inline void copy_s8(int8_t *dst, const int8_t *src, int32_t n) {
    while (n >= 4) {
        const uint32_t v = ts_read_s8x4(src);
        memcpy(dst, &v, sizeof v);
        dst += 4;
        src += 4;
        n -= 4;
    }
    if (n > 0) {
        dst[0] = src[0];
        if (n > 1) {
            dst[1] = src[1];
            if (n > 2) {
                dst[2] = src[2];
            }
        }
    }
}

static inline void fill_s8(int8_t *dst, int8_t v, int32_t n) {
    const uint32_t w = 0x01010101u * (uint8_t)v;
    while (n >= 4) {
        memcpy(dst, &w, sizeof w);
        dst += 4;
        n -= 4;
    }
    if (n > 0) {
        dst[0] = v;
        if (n > 1) {
            dst[1] = v;
            if (n > 2) {
                dst[2] = v;
            }
        }
    }
}

/* ---- 3x3 windows on one channel plane (DEPTHWISE_CONV_2D, a CONV_2D stem) ------------- */

/* 3x3 windows on channel planes: per channel, the plane is filled once, then each pair of
 * horizontally adjacent outputs takes 3 rows x (2 loads, 4 MACs: SMLAD / SMLADX over tap
 * pairs, SMLAxy for the third column), the weights held in 5 registers for the whole plane.
 * Stride 1: out0 = (x0,x1).(w0,w1) + x2 w2 and out1 = (x1,x2).(w0,w1) + x3 w2, (x2 | x1)
 * packed by one PKHBT; stride 2: out1 = (x2,x3).(w0,w1) + x4 w2. */
/* `row` points at a window row's first pair of taps (a word of the plane) */
#define TS_DW_PAIR_S1(row, wp, wtap, acc0, acc1, bb, bt)                                       \
    do {                                                                                       \
        uint32_t xa_ = (row)[0];                                                               \
        const uint32_t xb_ = (row)[1];                                                         \
        acc0 = ts_smlad(xa_, wp, acc0);                                                        \
        acc0 = bb(xb_, wtap, acc0);                                                            \
        xa_ = ts_pkhbt(xb_, xa_);                                                              \
        acc1 = ts_smladx(xa_, wp, acc1);                                                       \
        acc1 = bt(xb_, wtap, acc1);                                                            \
    } while (0)

/* the first row starts the accumulators (SMUAD: no zero register to keep) */
#define TS_DW_PAIR_S1_FIRST(row, wp, wtap, acc0, acc1)                                         \
    do {                                                                                       \
        uint32_t xa_ = (row)[0];                                                               \
        const uint32_t xb_ = (row)[1];                                                         \
        acc0 = ts_smlabb(xb_, wtap, ts_smuad(xa_, wp));                                        \
        xa_ = ts_pkhbt(xb_, xa_);                                                              \
        acc1 = ts_smlatb(xb_, wtap, ts_smuadx(xa_, wp));                                       \
    } while (0)

#define TS_DW_PAIR_S2_FIRST(row, wp, wtap, acc0, acc1)                                         \
    do {                                                                                       \
        const uint32_t xb_ = (row)[1];                                                         \
        acc0 = ts_smlabb(xb_, wtap, ts_smuad((row)[0], wp));                                   \
        acc1 = ts_smlabb((row)[2], wtap, ts_smuad(xb_, wp));                                   \
    } while (0)

#define TS_DW_PAIR_S2(row, wp, wtap, acc0, acc1, bb)                                           \
    do {                                                                                       \
        const uint32_t xb_ = (row)[1];                                                         \
        acc0 = bb(xb_, wtap, ts_smlad((row)[0], wp, acc0));                                    \
        acc1 = bb((row)[2], wtap, ts_smlad(xb_, wp, acc1));                                    \
    } while (0)

/* One output row of pairs: r0..r2 the window's rows (words), acc[0 .. n2) (n2 even). The
 * weights: w0..w2 (w[r][0], w[r][1]) per row, wc (w[0][2], w[1][2]), w8 (w[2][2], 0). */
typedef struct {
    uint32_t w0, w1, w2, wc, w8;
} ts_w3x3_t;

#if TS_DSP_ASM
/* The loops in assembly: they need all 14 allocatable registers (3 row pointers, the
 * accumulator pointer and its end, 5 weights, 2 accumulators, 2 taps), which the compiler,
 * allocating the C version, spills from (30 instructions a pair instead of 21). Same
 * arithmetic as the C version below, which the host tests run. */
static TS_NOINLINE void pairs_row_s1(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2,
                         int32_t *a, const int32_t *a_end, const ts_w3x3_t *w) {
    uint32_t acc0, acc1, t0, t1;
    __asm__ volatile(
        "1:\n\t"
        "ldrd   %[t0], %[t1], [%[r0]], #4\n\t"
        "smuad  %[acc0], %[t0], %[w0]\n\t"
        "smlabb %[acc0], %[t1], %[wc], %[acc0]\n\t"
        "pkhbt  %[t0], %[t1], %[t0]\n\t"
        "smuadx %[acc1], %[t0], %[w0]\n\t"
        "smlatb %[acc1], %[t1], %[wc], %[acc1]\n\t"
        "ldrd   %[t0], %[t1], [%[r1]], #4\n\t"
        "smlad  %[acc0], %[t0], %[w1], %[acc0]\n\t"
        "smlabt %[acc0], %[t1], %[wc], %[acc0]\n\t"
        "pkhbt  %[t0], %[t1], %[t0]\n\t"
        "smladx %[acc1], %[t0], %[w1], %[acc1]\n\t"
        "smlatt %[acc1], %[t1], %[wc], %[acc1]\n\t"
        "ldrd   %[t0], %[t1], [%[r2]], #4\n\t"
        "smlad  %[acc0], %[t0], %[w2], %[acc0]\n\t"
        "smlabb %[acc0], %[t1], %[w8], %[acc0]\n\t"
        "pkhbt  %[t0], %[t1], %[t0]\n\t"
        "smladx %[acc1], %[t0], %[w2], %[acc1]\n\t"
        "smlatb %[acc1], %[t1], %[w8], %[acc1]\n\t"
        "strd   %[acc0], %[acc1], [%[a]], #8\n\t"
        "cmp    %[a], %[end]\n\t"
        "bne    1b"
        : [r0] "+r"(r0), [r1] "+r"(r1), [r2] "+r"(r2), [a] "+r"(a), [acc0] "=&r"(acc0),
          [acc1] "=&r"(acc1), [t0] "=&r"(t0), [t1] "=&r"(t1)
        : [end] "r"(a_end), [w0] "r"(w->w0), [w1] "r"(w->w1), [w2] "r"(w->w2),
          [wc] "r"(w->wc), [w8] "r"(w->w8)
        : "cc", "memory");
}

static TS_NOINLINE void pairs_row_s2(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2,
                         int32_t *a, const int32_t *a_end, const ts_w3x3_t *w) {
    uint32_t acc0, acc1, t0, t1;
    __asm__ volatile(
        "1:\n\t"
        "ldrd   %[t0], %[t1], [%[r0]], #8\n\t"
        "smuad  %[acc0], %[t0], %[w0]\n\t"
        "ldr    %[t0], [%[r0]]\n\t"
        "smlabb %[acc0], %[t1], %[wc], %[acc0]\n\t"
        "smuad  %[acc1], %[t1], %[w0]\n\t"
        "smlabb %[acc1], %[t0], %[wc], %[acc1]\n\t"
        "ldrd   %[t0], %[t1], [%[r1]], #8\n\t"
        "smlad  %[acc0], %[t0], %[w1], %[acc0]\n\t"
        "ldr    %[t0], [%[r1]]\n\t"
        "smlabt %[acc0], %[t1], %[wc], %[acc0]\n\t"
        "smlad  %[acc1], %[t1], %[w1], %[acc1]\n\t"
        "smlabt %[acc1], %[t0], %[wc], %[acc1]\n\t"
        "ldrd   %[t0], %[t1], [%[r2]], #8\n\t"
        "smlad  %[acc0], %[t0], %[w2], %[acc0]\n\t"
        "ldr    %[t0], [%[r2]]\n\t"
        "smlabb %[acc0], %[t1], %[w8], %[acc0]\n\t"
        "smlad  %[acc1], %[t1], %[w2], %[acc1]\n\t"
        "smlabb %[acc1], %[t0], %[w8], %[acc1]\n\t"
        "strd   %[acc0], %[acc1], [%[a]], #8\n\t"
        "cmp    %[a], %[end]\n\t"
        "bne    1b"
        : [r0] "+r"(r0), [r1] "+r"(r1), [r2] "+r"(r2), [a] "+r"(a), [acc0] "=&r"(acc0),
          [acc1] "=&r"(acc1), [t0] "=&r"(t0), [t1] "=&r"(t1)
        : [end] "r"(a_end), [w0] "r"(w->w0), [w1] "r"(w->w1), [w2] "r"(w->w2),
          [wc] "r"(w->wc), [w8] "r"(w->w8)
        : "cc", "memory");
}
#else
static TS_NOINLINE void pairs_row_s1(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2,
                         int32_t *a, const int32_t *a_end, const ts_w3x3_t *w) {
    const uint32_t w0 = w->w0, w1 = w->w1, w2 = w->w2, wc = w->wc, w8 = w->w8;
    while (a != a_end) {
        int32_t a0, a1;
        TS_DW_PAIR_S1_FIRST(r0, w0, wc, a0, a1);
        TS_DW_PAIR_S1(r1, w1, wc, a0, a1, ts_smlabt, ts_smlatt);
        TS_DW_PAIR_S1(r2, w2, w8, a0, a1, ts_smlabb, ts_smlatb);
        a[0] = a0;
        a[1] = a1;
        a += 2;
        ++r0;
        ++r1;
        ++r2;
    }
}

static TS_NOINLINE void pairs_row_s2(const uint32_t *r0, const uint32_t *r1, const uint32_t *r2,
                         int32_t *a, const int32_t *a_end, const ts_w3x3_t *w) {
    const uint32_t w0 = w->w0, w1 = w->w1, w2 = w->w2, wc = w->wc, w8 = w->w8;
    while (a != a_end) {
        int32_t a0, a1;
        TS_DW_PAIR_S2_FIRST(r0, w0, wc, a0, a1);
        TS_DW_PAIR_S2(r1, w1, wc, a0, a1, ts_smlabt);
        TS_DW_PAIR_S2(r2, w2, w8, a0, a1, ts_smlabb);
        a[0] = a0;
        a[1] = a1;
        a += 2;
        r0 += 2;
        r1 += 2;
        r2 += 2;
    }
}
#endif

static void rq_row(const int32_t *acc, int32_t n, const ts_rq_t *r, const ts_clamp_t *cl,
                   int8_t *out, int32_t ch) {
    const int32_t bias2 = r->bias2, mult = r->mult, rz = r->rz, e = r->e;
    const int32_t lo = cl->lo, hi = cl->hi;
    const int32_t *const end2 = acc + (n & ~1);
    const size_t ch2 = 2u * (size_t)ch;
    if (cl->full) {
        /* two outputs a pass (one LDRD, half the loop tests) */
        while (acc != end2) {
            const int32_t y0 = ts_smmulr(2 * acc[0] + bias2, mult);
            const int32_t y1 = ts_smmulr(2 * acc[1] + bias2, mult);
            acc += 2;
            out[0] = (int8_t)ts_ssat8((y0 + rz - (int32_t)((uint32_t)y0 >> 31)) >> e);
            out[ch] = (int8_t)ts_ssat8((y1 + rz - (int32_t)((uint32_t)y1 >> 31)) >> e);
            out += ch2;
        }
    } else {
        while (acc != end2) {
            const int32_t y0 = ts_smmulr(2 * acc[0] + bias2, mult);
            const int32_t y1 = ts_smmulr(2 * acc[1] + bias2, mult);
            int32_t v0 = ts_ssat8((y0 + rz - (int32_t)((uint32_t)y0 >> 31)) >> e);
            int32_t v1 = ts_ssat8((y1 + rz - (int32_t)((uint32_t)y1 >> 31)) >> e);
            acc += 2;
            v0 = v0 < lo ? lo : v0;
            v1 = v1 < lo ? lo : v1;
            out[0] = (int8_t)(v0 > hi ? hi : v0);
            out[ch] = (int8_t)(v1 > hi ? hi : v1);
            out += ch2;
        }
    }
    if (n & 1) {
        *out = rq_apply(*acc, r, cl);
    }
}

static void conv3x3_planes(const ts_layer_t *p, const int8_t *input, int8_t *output,
                           int16_t *plane, const ts_plane3x3_t *g) {
    const int32_t in_h = p->in.h, in_w = p->in.w, in_c = p->in.c, out_c = p->out.c;
    const int32_t out_h = p->out.h, out_w = p->out.w;
    const int32_t sh = p->stride_h, sw = p->stride_w;
    const int32_t pitch = g->pitch;
    const int32_t offset = -p->input_zero_point;
    const int depthwise = p->op == TS_OP_DEPTHWISE_CONV_2D;
    const ts_clamp_t cl = clamp_of(p);
    const size_t in_row = (size_t)in_w * (size_t)in_c, out_row = (size_t)out_w * (size_t)out_c;
    const size_t plane_len = (size_t)g->rows * (size_t)pitch; /* even */
    /* tap t of output channel c: depthwise [3][3][c], conv [c][3][3][1] */
    const size_t tap_step = depthwise ? (size_t)out_c : 1u;
    int32_t *const acc = (int32_t *)(void *)(plane + plane_len);
    const uint32_t zp2 = ts_dup16(p->input_zero_point);
    int32_t c, y;
    size_t i;

    /* The plane holds the raw inputs and its border the input zero point, so every tap
     * contributes (x - zp) * w - (-zp) * w: the offset's share, offset * sum(w) over all 9
     * taps, goes into the bias (a padded tap then contributes 0, as in TFLM). */
    for (i = 0; i < plane_len; i += 2) {
        memcpy(plane + i, &zp2, sizeof zp2);
    }
    for (c = 0; c < out_c; ++c) {
        const int8_t *w = p->weights + (depthwise ? (size_t)c : (size_t)c * 9u);
        const size_t s = tap_step;
        /* (w[r][0], w[r][1]) per row r, then (w[0][2], w[1][2]) and w[2][2] */
        ts_w3x3_t wt;
        int32_t sum_w = 0;
        ts_rq_t r;
        for (i = 0; i < 9u; ++i) {
            sum_w += w[i * s];
        }
        wt.w0 = ts_pack_q15(w[0], w[s]);
        wt.w1 = ts_pack_q15(w[3 * s], w[4 * s]);
        wt.w2 = ts_pack_q15(w[6 * s], w[7 * s]);
        wt.wc = ts_pack_q15(w[2 * s], w[5 * s]);
        wt.w8 = ts_pack_q15(w[8 * s], 0);
        rq_table(p, c, c + 1, &r);
        r.bias2 += 2 * offset * sum_w;
        /* the input channel into the plane (a stem's one channel: once) */
        for (y = 0; (depthwise || c == 0) && y < in_h; ++y) {
            const int8_t *src = input + (size_t)y * in_row + (depthwise ? c : 0);
            int16_t *dst = plane + (size_t)(y + p->pad_h) * (size_t)pitch + p->pad_w;
            int16_t *const dst_end = dst + (in_w & ~1);
            while (dst != dst_end) {
                const uint32_t v = ts_pkhbt_lsl16((uint32_t)src[0], (uint32_t)src[in_c]);
                memcpy(dst, &v, sizeof v); /* an unaligned STR when pad_w is odd */
                dst += 2;
                src += 2 * in_c;
            }
            if (in_w & 1) {
                const int16_t v = src[0];
                memcpy(dst, &v, sizeof v);
            }
        }
        for (y = 0; y < out_h; ++y) {
            /* the window's three rows as words (pairs of taps; the plane was written by
             * memcpy, which aliases any type), each pointer stepped along */
            const uint32_t *r0 = (const uint32_t *)(const void *)(plane + (size_t)(y * sh) * (size_t)pitch);
            const uint32_t *r1 = r0 + pitch / 2, *r2 = r1 + pitch / 2;
            int32_t *const a_end = acc + (out_w + (out_w & 1));
            if (sw == 1) {
                pairs_row_s1(r0, r1, r2, acc, a_end, &wt);
            } else {
                pairs_row_s2(r0, r1, r2, acc, a_end, &wt);
            }
            rq_row(acc, out_w, &r, &cl, output + (size_t)y * out_row + c, out_c);
        }
    }
}

/* ---- CONV_2D ------------------------------------------------------------------------------ */

/* Geometry of a conv layer's im2col, read once per call. */
typedef struct {
    const int8_t *input;
    int32_t in_h, in_w, in_c;
    int32_t fh, fw, sh, sw, dh, dw, pad_h, pad_w;
    int32_t zp;
    uint32_t offset2;
    int pointwise; /* 1x1 filter, no padding, in_c % 4 == 0: a column is one input pixel */
} ts_im2col_t;

/* im2col of output pixel (oy, ox) into dst = cols + 2j of the interleaved buffer (group g of
 * the column at dst[4g], dst[4g + 1]). `stage` holds k + 3 bytes. */
static void conv_im2col(const ts_im2col_t *g, int32_t oy, int32_t ox, uint32_t *dst,
                        int8_t *stage) {
    const int32_t in_h = g->in_h, in_w = g->in_w, in_c = g->in_c;
    const int32_t fh = g->fh, fw = g->fw;
    const int32_t in_y0 = oy * g->sh - g->pad_h;
    const int32_t in_x0 = ox * g->sw - g->pad_w;
    int32_t ky, kx, i;

    if (g->pointwise) {
        (void)expand_s8x4(g->input + ((size_t)in_y0 * (size_t)in_w + (size_t)in_x0) * (size_t)in_c,
                          in_c, g->offset2, dst, 4);
        return;
    }
    if ((in_c & 3) == 0) {
        for (ky = 0; ky < fh; ++ky) {
            const int32_t iy = in_y0 + g->dh * ky;
            for (kx = 0; kx < fw; ++kx) {
                const int32_t ix = in_x0 + g->dw * kx;
                if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                    for (i = 0; i < in_c; i += 4) {
                        dst[0] = 0u;
                        dst[1] = 0u;
                        dst += 4;
                    }
                } else {
                    dst = expand_s8x4(g->input + ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)in_c,
                                      in_c, g->offset2, dst, 4);
                }
            }
        }
        return;
    }
    /* Channels not a multiple of 4: gather the int8 column (padded taps and the partial last
     * group hold the zero point, which the offset turns into 0), then expand it. With
     * dilation 1 each filter row is one contiguous span of the input. */
    {
        const int32_t k = fh * fw * in_c;
        const int32_t row_bytes = fw * in_c;
        const int8_t zp = (int8_t)g->zp;
        int8_t *s = stage;
        if (g->dw == 1 && in_y0 >= 0 && in_x0 >= 0 && in_y0 + g->dh * (fh - 1) < in_h &&
            in_x0 + fw <= in_w) {
            /* the window lies inside the image: fh spans of fw * in_c bytes */
            const int8_t *src = g->input + ((size_t)in_y0 * (size_t)in_w + (size_t)in_x0) * (size_t)in_c;
            const size_t src_step = (size_t)g->dh * (size_t)in_w * (size_t)in_c;
            for (ky = 0; ky < fh; ++ky) {
                copy_s8(s, src, row_bytes);
                s += row_bytes;
                src += src_step;
            }
        } else {
        for (ky = 0; ky < fh; ++ky) {
            const int32_t iy = in_y0 + g->dh * ky;
            if (iy < 0 || iy >= in_h) {
                fill_s8(s, zp, row_bytes);
            } else if (g->dw == 1) {
                const int32_t kx0 = in_x0 < 0 ? -in_x0 : 0;
                const int32_t kx1 = (in_w - in_x0) < fw ? (in_w - in_x0) : fw;
                fill_s8(s, zp, kx0 * in_c);
                copy_s8(s + kx0 * in_c,
                        g->input + ((size_t)iy * (size_t)in_w + (size_t)(in_x0 + kx0)) * (size_t)in_c,
                        (kx1 - kx0) * in_c);
                fill_s8(s + kx1 * in_c, zp, (fw - kx1) * in_c);
            } else {
                for (kx = 0; kx < fw; ++kx) {
                    const int32_t ix = in_x0 + g->dw * kx;
                    if (ix < 0 || ix >= in_w) {
                        fill_s8(s + kx * in_c, zp, in_c);
                    } else {
                        copy_s8(s + kx * in_c,
                                g->input + ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)in_c,
                                in_c);
                    }
                }
            }
            s += row_bytes;
        }
        }
        fill_s8(stage + k, zp, ((k + 3) & ~3) - k);
        (void)expand_s8x4(stage, (k + 3) & ~3, g->offset2, dst, 4);
    }
}

/* Two output channels (rows w0, w1 of k weights) against the two interleaved columns. */
static inline void mac_2x2(const int8_t *w0, const int8_t *w1, const uint32_t *cols, int32_t k,
                           int32_t acc[4]) {
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
    const int32_t tail = k & 3;
    /* w1 addressed from w0 (one pointer, one counter: 13 registers hold the loop) */
    const int32_t d1 = (int32_t)(w1 - w0);
    int32_t n = k >> 2;
    for (; n > 0; --n) {
        const uint32_t x0 = cols[0], x1 = cols[1], y0 = cols[2], y1 = cols[3];
        uint32_t v = ts_read_s8x4(w0);
        uint32_t wl = ts_sxtb16(v), wh = ts_sxtb16_ror8(v);
        a00 = ts_smlad(wl, x0, a00);
        a00 = ts_smlad(wh, x1, a00);
        a01 = ts_smlad(wl, y0, a01);
        a01 = ts_smlad(wh, y1, a01);
        v = ts_read_s8x4(w0 + d1);
        wl = ts_sxtb16(v);
        wh = ts_sxtb16_ror8(v);
        a10 = ts_smlad(wl, x0, a10);
        a10 = ts_smlad(wh, x1, a10);
        a11 = ts_smlad(wl, y0, a11);
        a11 = ts_smlad(wh, y1, a11);
        cols += 4;
        w0 += 4;
    }
    w1 = w0 + d1;
    if (tail != 0) {
        const uint32_t x0 = cols[0], x1 = cols[1], y0 = cols[2], y1 = cols[3];
        uint32_t v = tail_word(w0, tail);
        uint32_t wl = ts_sxtb16(v), wh = ts_sxtb16_ror8(v);
        a00 = ts_smlad(wh, x1, ts_smlad(wl, x0, a00));
        a01 = ts_smlad(wh, y1, ts_smlad(wl, y0, a01));
        v = tail_word(w1, tail);
        wl = ts_sxtb16(v);
        wh = ts_sxtb16_ror8(v);
        a10 = ts_smlad(wh, x1, ts_smlad(wl, x0, a10));
        a11 = ts_smlad(wh, y1, ts_smlad(wl, y0, a11));
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* One output channel against the two interleaved columns. */
static inline void mac_1x2(const int8_t *w, const uint32_t *cols, int32_t k, int32_t acc[2]) {
    int32_t a0 = 0, a1 = 0;
    const int32_t tail = k & 3;
    const uint32_t *const end = cols + 4 * (k >> 2);
    while (cols != end) {
        const uint32_t v = ts_read_s8x4(w);
        const uint32_t wl = ts_sxtb16(v), wh = ts_sxtb16_ror8(v);
        a0 = ts_smlad(wh, cols[1], ts_smlad(wl, cols[0], a0));
        a1 = ts_smlad(wh, cols[3], ts_smlad(wl, cols[2], a1));
        cols += 4;
        w += 4;
    }
    if (tail != 0) {
        const uint32_t v = tail_word(w, tail);
        const uint32_t wl = ts_sxtb16(v), wh = ts_sxtb16_ror8(v);
        a0 = ts_smlad(wh, cols[1], ts_smlad(wl, cols[0], a0));
        a1 = ts_smlad(wh, cols[3], ts_smlad(wl, cols[2], a1));
    }
    acc[0] = a0;
    acc[1] = a1;
}

#if TS_DSP_ASM
/* conv_channels for two pixels, the full int8 range and k % 4 == 0, in assembly: n_pairs
 * channel pairs from row w (k bytes each), the columns [cols, cols_end), the constants r,
 * outputs to o0 / o1. The MAC loop needs all 14 allocatable registers (2 weight rows, the
 * column pointer and its end, 4 accumulators, 6 operands), so the outer loop's state (the
 * constants' and outputs' pointers, the end, the columns' start) lives in a 20-byte frame
 * the code pushes itself; the first group starts the accumulators with SMUAD. The same
 * arithmetic as mac_2x2 + rq_pair (the C path, which the host tests run); 46 instructions
 * a channel pair besides 18 a group of 4 (about 76 + 19 in C, which spills). */
static TS_NOINLINE void conv_pairs_asm(const int8_t *w, int32_t k, const uint32_t *cols,
                                       const uint32_t *cols_end, const ts_rq_t *r,
                                       int32_t n_pairs, int8_t *o0, int8_t *o1) {
    const int8_t *w0 = w, *w1 = w + k;
    const int8_t *const w_end = w + 2 * (size_t)k * (size_t)n_pairs;
    const uint32_t *col = cols;
    uint32_t wl, v, x0, x1, y0, y1;
    __asm__ volatile(
        /* frame: [sp] r, [sp+4] o0, [sp+8] o1, [sp+12] w_end, [sp+16] cols */
        "str    %[col], [sp, #-4]!\n\t"
        "strd   %[o1], %[wend], [sp, #-8]!\n\t"
        "strd   %[r], %[o0], [sp, #-8]!\n\t"
        "2:\n\t"
        "ldr    %[col], [sp, #16]\n\t"
        /* first group: SMUAD starts the accumulators (in the r, o0, o1, w_end registers) */
        "ldr    %[v], [%[w0]], #4\n\t"
        "ldrd   %[x0], %[x1], [%[col]], #16\n\t"
        "ldrd   %[y0], %[y1], [%[col], #-8]\n\t"
        "sxtb16 %[wl], %[v]\n\t"
        "sxtb16 %[v], %[v], ror #8\n\t"
        "smuad  %[r], %[wl], %[x0]\n\t"
        "smlad  %[r], %[v], %[x1], %[r]\n\t"
        "smuad  %[o0], %[wl], %[y0]\n\t"
        "smlad  %[o0], %[v], %[y1], %[o0]\n\t"
        "ldr    %[v], [%[w1]], #4\n\t"
        "sxtb16 %[wl], %[v]\n\t"
        "sxtb16 %[v], %[v], ror #8\n\t"
        "smuad  %[o1], %[wl], %[x0]\n\t"
        "smlad  %[o1], %[v], %[x1], %[o1]\n\t"
        "smuad  %[wend], %[wl], %[y0]\n\t"
        "smlad  %[wend], %[v], %[y1], %[wend]\n\t"
        "cmp    %[col], %[cend]\n\t"
        "beq    4f\n\t"
        "3:\n\t"
        "ldr    %[v], [%[w0]], #4\n\t"
        "ldrd   %[x0], %[x1], [%[col]], #16\n\t"
        "ldrd   %[y0], %[y1], [%[col], #-8]\n\t"
        "sxtb16 %[wl], %[v]\n\t"
        "sxtb16 %[v], %[v], ror #8\n\t"
        "smlad  %[r], %[wl], %[x0], %[r]\n\t"
        "smlad  %[r], %[v], %[x1], %[r]\n\t"
        "smlad  %[o0], %[wl], %[y0], %[o0]\n\t"
        "smlad  %[o0], %[v], %[y1], %[o0]\n\t"
        "ldr    %[v], [%[w1]], #4\n\t"
        "sxtb16 %[wl], %[v]\n\t"
        "sxtb16 %[v], %[v], ror #8\n\t"
        "smlad  %[o1], %[wl], %[x0], %[o1]\n\t"
        "smlad  %[o1], %[v], %[x1], %[o1]\n\t"
        "smlad  %[wend], %[wl], %[y0], %[wend]\n\t"
        "smlad  %[wend], %[v], %[y1], %[wend]\n\t"
        "cmp    %[col], %[cend]\n\t"
        "bne    3b\n\t"
        "4:\n\t"
        /* next pair: w0 = w1, w1 = w1 + k = 2 w1 - w0 */
        "rsb    %[x0], %[w0], %[w1], lsl #1\n\t"
        "mov    %[w0], %[w1]\n\t"
        "mov    %[w1], %[x0]\n\t"
        /* requantize (see rq_apply): channel c (acc r: pixel 0, o0: pixel 1), then c + 1
         * (o1, w_end), each from its bias2, mult, e, rz */
        "ldr    %[col], [sp]\n\t"
        "ldrd   %[x0], %[x1], [%[col]]\n\t"
        "ldrd   %[y0], %[y1], [%[col], #8]\n\t"
        "add    %[wl], %[x0], %[r], lsl #1\n\t"
        "smmulr %[wl], %[wl], %[x1]\n\t"
        "add    %[r], %[wl], %[y1]\n\t"
        "sub    %[r], %[r], %[wl], lsr #31\n\t"
        "asr    %[r], %[r], %[y0]\n\t"
        "ssat   %[r], #8, %[r]\n\t"
        "add    %[wl], %[x0], %[o0], lsl #1\n\t"
        "smmulr %[wl], %[wl], %[x1]\n\t"
        "add    %[o0], %[wl], %[y1]\n\t"
        "sub    %[o0], %[o0], %[wl], lsr #31\n\t"
        "asr    %[o0], %[o0], %[y0]\n\t"
        "ssat   %[o0], #8, %[o0]\n\t"
        "ldrd   %[x0], %[x1], [%[col], #16]\n\t"
        "ldrd   %[y0], %[y1], [%[col], #24]\n\t"
        "add    %[col], %[col], #32\n\t"
        "str    %[col], [sp]\n\t"
        "add    %[wl], %[x0], %[o1], lsl #1\n\t"
        "smmulr %[wl], %[wl], %[x1]\n\t"
        "add    %[o1], %[wl], %[y1]\n\t"
        "sub    %[o1], %[o1], %[wl], lsr #31\n\t"
        "asr    %[o1], %[o1], %[y0]\n\t"
        "ssat   %[o1], #8, %[o1]\n\t"
        "add    %[wl], %[x0], %[wend], lsl #1\n\t"
        "smmulr %[wl], %[wl], %[x1]\n\t"
        "add    %[wend], %[wl], %[y1]\n\t"
        "sub    %[wend], %[wend], %[wl], lsr #31\n\t"
        "asr    %[wend], %[wend], %[y0]\n\t"
        "ssat   %[wend], #8, %[wend]\n\t"
        /* out0[c], out0[c + 1], out1[c], out1[c + 1] */
        "ldrd   %[x0], %[x1], [sp, #4]\n\t"
        "strb   %[r], [%[x0]], #1\n\t"
        "strb   %[o1], [%[x0]], #1\n\t"
        "strb   %[o0], [%[x1]], #1\n\t"
        "strb   %[wend], [%[x1]], #1\n\t"
        "strd   %[x0], %[x1], [sp, #4]\n\t"
        "ldr    %[y0], [sp, #12]\n\t"
        "cmp    %[w0], %[y0]\n\t"
        "bne    2b\n\t"
        /* the pointers back in their registers, the frame dropped */
        "ldrd   %[r], %[o0], [sp], #8\n\t"
        "ldrd   %[o1], %[wend], [sp], #8\n\t"
        "add    sp, sp, #4"
        : [w0] "+r"(w0), [w1] "+r"(w1), [col] "+r"(col), [r] "+r"(r), [o0] "+r"(o0),
          [o1] "+r"(o1), [wl] "=&r"(wl), [v] "=&r"(v), [x0] "=&r"(x0), [x1] "=&r"(x1),
          [y0] "=&r"(y0), [y1] "=&r"(y1)
        : [cend] "r"(cols_end), [wend] "r"(w_end)
        : "cc", "memory");
}
#endif

/* Channels [0, n) of two output pixels (their columns interleaved in `cols`), weights and
 * requantization constants from channel 0, outputs to out0 / out1 (out1 only when `two`;
 * `full`: no clamp inside int8). The common case (two pixels, no clamp, k % 4 == 0) runs in
 * assembly on Armv7E-M. */
static void conv_channels(const int8_t *w, int32_t k, const uint32_t *cols,
                                           const ts_rq_t *r, int32_t n, int8_t *out0,
                                           int8_t *out1, const ts_clamp_t *cl, const int two,
                                           const int full) {
    const int8_t *const w_end = w + (size_t)(n & ~1) * (size_t)k;
    const size_t step = 2u * (size_t)k;
#if TS_DSP_ASM
    if (two && full && (k & 3) == 0 && n >= 2) {
        conv_pairs_asm(w, k, cols, cols + (size_t)k, r, n >> 1, out0, out1);
        r += n & ~1;
        out0 += n & ~1;
        out1 += n & ~1;
        w = w_end;
    }
#endif
    for (; w != w_end; w += step, r += 2, out0 += 2, out1 += 2) {
        int32_t acc[4], v00, v01, v10, v11;
        mac_2x2(w, w + k, cols, k, acc);
        /* both pixels of a channel from one read of its constants, all four outputs before
         * any store (an int8 store would force the table to be read again) */
        rq_pair(acc[0], acc[1], &r[0], &v00, &v01);
        rq_pair(acc[2], acc[3], &r[1], &v10, &v11);
        if (!full) {
            v00 = clamp_v(v00, cl);
            v01 = clamp_v(v01, cl);
            v10 = clamp_v(v10, cl);
            v11 = clamp_v(v11, cl);
        }
        out0[0] = (int8_t)v00;
        out0[1] = (int8_t)v10;
        if (two) {
            out1[0] = (int8_t)v01;
            out1[1] = (int8_t)v11;
        }
    }
    if (n & 1) {
        int32_t acc[2];
        mac_1x2(w, cols, k, acc);
        out0[0] = rq_apply(acc[0], r, cl);
        if (two) {
            out1[0] = rq_apply(acc[1], r, cl);
        }
    }
}

void ts_conv2d_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output,
                      void *scratch) {
    const int32_t k = p->filter_h * p->filter_w * p->in.c;
    const int32_t out_c = p->out.c, out_w = p->out.w;
    const int32_t pixels = p->out.h * p->out.w;
    const int8_t *const weights = p->weights;
    const ts_clamp_t cl = clamp_of(p);
    const size_t cols_bytes = 16u * (size_t)((k + 3) / 4);
    ts_im2col_t g;
    /* restrict: the scratch is no alias of the input, weights or output (int8 stores could
     * alias anything otherwise, and every table entry would be reloaded after each) */
    uint32_t *restrict cols;
    int8_t *restrict stage;
    ts_rq_t *restrict rq;
    int32_t n, cb;

    ts_plane3x3_t plane;

    if (scratch != NULL && plane3x3_of(p, &plane) && rq_fast_ok(p, 9)) {
        conv3x3_planes(p, input, output, (int16_t *)scratch, &plane);
        return;
    }
    if (scratch == NULL || k > TS_DSP_MAX_K || !rq_fast_ok(p, k)) {
        ts_conv2d_s8_ref(p, input, output);
        return;
    }
    cols = (uint32_t *)scratch;
    stage = (int8_t *)scratch + cols_bytes;
    rq = (ts_rq_t *)(void *)((uint8_t *)scratch + cols_bytes + align4((size_t)k + 4u));
    g.input = input;
    g.in_h = p->in.h;
    g.in_w = p->in.w;
    g.in_c = p->in.c;
    g.fh = p->filter_h;
    g.fw = p->filter_w;
    g.sh = p->stride_h;
    g.sw = p->stride_w;
    g.dh = p->dilation_h;
    g.dw = p->dilation_w;
    g.pad_h = p->pad_h;
    g.pad_w = p->pad_w;
    g.zp = p->input_zero_point;
    g.offset2 = ts_dup16(-p->input_zero_point);
    g.pointwise = g.fh == 1 && g.fw == 1 && g.pad_h == 0 && g.pad_w == 0 && (g.in_c & 3) == 0;
    if (pixels & 1) {
        memset(cols, 0, cols_bytes); /* the unused second column of the last pixel */
    }
    /* Output channels in blocks whose requantization constants fit the table (one block for
     * up to TS_DSP_RQ_BLOCK channels; more blocks repeat the im2col). */
    for (cb = 0; cb < out_c; cb += TS_DSP_RQ_BLOCK) {
        const int32_t ce = (out_c - cb) < TS_DSP_RQ_BLOCK ? out_c : cb + TS_DSP_RQ_BLOCK;
        int32_t oy = 0, ox = 0;
        rq_table(p, cb, ce, rq);
        for (n = 0; n < pixels; n += 2) {
            const int two = (n + 1) < pixels;
            int8_t *out0 = output + (size_t)n * (size_t)out_c;
            int8_t *out1 = out0 + out_c;
            conv_im2col(&g, oy, ox, cols, stage);
            if (++ox == out_w) {
                ox = 0;
                ++oy;
            }
            if (two) {
                conv_im2col(&g, oy, ox, cols + 2, stage);
                if (++ox == out_w) {
                    ox = 0;
                    ++oy;
                }
            }
            conv_channels(weights + (size_t)cb * (size_t)k, k, cols, rq, ce - cb, out0 + cb,
                          out1 + cb, &cl, two, cl.full);
        }
    }
}

/* ---- FULLY_CONNECTED ------------------------------------------------------------------------ */

void ts_fully_connected_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output,
                               void *scratch) {
    const int32_t k = p->in.h * p->in.w * p->in.c;
    const int32_t units = p->out.c;
    const int32_t k4 = k & ~3, tail = k & 3;
    const int8_t *const weights = p->weights;
    const uint32_t offset2 = ts_dup16(-p->input_zero_point);
    const ts_clamp_t cl = clamp_of(p);
    uint32_t *restrict col;
    ts_rq_t *restrict rq;
    int32_t o, cb;

    if (scratch == NULL || k > 2 * TS_DSP_MAX_K || !rq_fast_ok(p, k)) {
        ts_fully_connected_s8_ref(p, input, output);
        return;
    }
    col = (uint32_t *)scratch;
    rq = (ts_rq_t *)(void *)((uint8_t *)scratch + 8u * (size_t)((k + 3) / 4));
    (void)expand_s8x4(input, k4, offset2, col, 2);
    if (tail != 0) {
        int8_t last[4];
        int32_t i;
        for (i = 0; i < 4; ++i) {
            last[i] = i < tail ? input[k4 + i] : (int8_t)p->input_zero_point;
        }
        (void)expand_s8x4(last, 4, offset2, col + k4 / 2, 2);
    }
    for (cb = 0; cb < units; cb += TS_DSP_RQ_BLOCK) {
        const int32_t ce = (units - cb) < TS_DSP_RQ_BLOCK ? units : cb + TS_DSP_RQ_BLOCK;
        rq_table(p, cb, ce, rq);
        /* 2 rows at a time, 2 groups of 4 per iteration (13 registers: no spills); a last odd
         * row is computed twice (stored once). */
        for (o = cb; o < ce; o += 2) {
            const int two = o + 1 < ce;
            const int8_t *w0 = weights + (size_t)o * (size_t)k;
            const int8_t *w1 = two ? w0 + k : w0;
            const uint32_t *x = col;
            const uint32_t *const end2 = col + (k4 / 8) * 4;
            int32_t a0 = 0, a1 = 0;
            uint32_t v;
            while (x != end2) {
                const uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
                v = ts_read_s8x4(w0);
                a0 = ts_smlad(ts_sxtb16_ror8(v), x1, ts_smlad(ts_sxtb16(v), x0, a0));
                v = ts_read_s8x4(w1);
                a1 = ts_smlad(ts_sxtb16_ror8(v), x1, ts_smlad(ts_sxtb16(v), x0, a1));
                v = ts_read_s8x4(w0 + 4);
                a0 = ts_smlad(ts_sxtb16_ror8(v), x3, ts_smlad(ts_sxtb16(v), x2, a0));
                v = ts_read_s8x4(w1 + 4);
                a1 = ts_smlad(ts_sxtb16_ror8(v), x3, ts_smlad(ts_sxtb16(v), x2, a1));
                x += 4;
                w0 += 8;
                w1 += 8;
            }
            if ((k4 & 4) != 0) {
                const uint32_t x0 = x[0], x1 = x[1];
                v = ts_read_s8x4(w0);
                a0 = ts_smlad(ts_sxtb16_ror8(v), x1, ts_smlad(ts_sxtb16(v), x0, a0));
                v = ts_read_s8x4(w1);
                a1 = ts_smlad(ts_sxtb16_ror8(v), x1, ts_smlad(ts_sxtb16(v), x0, a1));
                x += 2;
                w0 += 4;
                w1 += 4;
            }
            if (tail != 0) {
                const uint32_t x0 = x[0], x1 = x[1];
                v = tail_word(w0, tail);
                a0 = ts_smlad(ts_sxtb16_ror8(v), x1, ts_smlad(ts_sxtb16(v), x0, a0));
                v = tail_word(w1, tail);
                a1 = ts_smlad(ts_sxtb16_ror8(v), x1, ts_smlad(ts_sxtb16(v), x0, a1));
            }
            output[o] = rq_apply(a0, &rq[o - cb], &cl);
            if (two) {
                output[o + 1] = rq_apply(a1, &rq[o + 1 - cb], &cl);
            }
        }
    }
}

/* ---- DEPTHWISE_CONV_2D ---------------------------------------------------------------------- */

/* One tap for 4 channels: the input word at xp, the weight word at wp. */
#define TS_DW_TAP(xp, wp)                                                                      \
    do {                                                                                       \
        const uint32_t xv_ = ts_read_s8x4(xp);                                                 \
        const uint32_t wv_ = ts_read_s8x4(wp);                                                 \
        const uint32_t xe_ = ts_sxtab16(offset2, xv_);      /* channels c, c+2 */              \
        const uint32_t xo_ = ts_sxtab16_ror8(offset2, xv_); /* channels c+1, c+3 */            \
        const uint32_t we_ = ts_sxtb16(wv_);                                                   \
        const uint32_t wo_ = ts_sxtb16_ror8(wv_);                                              \
        a0 = ts_smlabb(xe_, we_, a0);                                                          \
        a2 = ts_smlatt(xe_, we_, a2);                                                          \
        a1 = ts_smlabb(xo_, wo_, a1);                                                          \
        a3 = ts_smlatt(xo_, wo_, a3);                                                          \
    } while (0)

/* One tap for 4 channels with pre-expanded weights wp[0] = (w_c, w_c+2), wp[1] =
 * (w_c+1, w_c+3). */
#define TS_DW_TAPX(xp, wp)                                                                     \
    do {                                                                                       \
        const uint32_t xv_ = ts_read_s8x4(xp);                                                 \
        const uint32_t xe_ = ts_sxtab16(offset2, xv_);                                         \
        const uint32_t xo_ = ts_sxtab16_ror8(offset2, xv_);                                    \
        const uint32_t we_ = (wp)[0], wo_ = (wp)[1];                                           \
        a0 = ts_smlabb(xe_, we_, a0);                                                          \
        a2 = ts_smlatt(xe_, we_, a2);                                                          \
        a1 = ts_smlabb(xo_, wo_, a1);                                                          \
        a3 = ts_smlatt(xo_, wo_, a3);                                                          \
    } while (0)

/* Channels [c0, c1) of a depthwise layer: groups of 4 in [c0, c4), single channels in
 * [c4, c1). Windows of up to TS_DW_MAX_XTAPS taps use weights expanded once per call
 * (wexp: per group, per tap, two words), others read the int8 weights per tap. */
static void dw_block(const ts_layer_t *p, const int8_t *input, int8_t *output, int32_t c0,
                     int32_t c4, int32_t c1) {
    const int32_t in_h = p->in.h, in_w = p->in.w, ch = p->in.c;
    const int32_t out_h = p->out.h, out_w = p->out.w;
    const int32_t filter_h = p->filter_h, filter_w = p->filter_w;
    const int32_t taps = filter_h * filter_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t offset = -p->input_zero_point;
    const uint32_t offset2 = ts_dup16(offset);
    const ts_clamp_t cl = clamp_of(p);
    const int8_t *const weights = p->weights;
    const size_t row_stride = (size_t)in_w * (size_t)ch;
    const int expanded = taps <= TS_DW_MAX_XTAPS;
    const int is3x3 = filter_h == 3 && filter_w == 3;
    ts_rq_t rq[TS_DW_RQ_BLOCK];
    uint32_t wexp[(TS_DW_RQ_BLOCK / 4) * TS_DW_MAX_XTAPS * 2];
    int32_t oy, ox, c, ky, kx;

    rq_table(p, c0, c1, rq);
    if (expanded) {
        uint32_t *e = wexp;
        for (c = c0; c < c4; c += 4) {
            for (ky = 0; ky < taps; ++ky) {
                const uint32_t v = ts_read_s8x4(weights + (size_t)ky * (size_t)ch + (size_t)c);
                e[0] = ts_sxtb16(v);
                e[1] = ts_sxtb16_ror8(v);
                e += 2;
            }
        }
    }
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t in_y0 = oy * stride_h - pad_h;
        const int32_t ky0 = in_y0 < 0 ? -in_y0 : 0;
        const int32_t ky1 = (in_h - in_y0) < filter_h ? (in_h - in_y0) : filter_h;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t in_x0 = ox * stride_w - pad_w;
            const int32_t kx0 = in_x0 < 0 ? -in_x0 : 0;
            const int32_t kx1 = (in_w - in_x0) < filter_w ? (in_w - in_x0) : filter_w;
            const int32_t rows = ky1 - ky0, cols = kx1 - kx0;
            int8_t *out = output + ((size_t)oy * (size_t)out_w + (size_t)ox) * (size_t)ch;
            /* Top-left valid tap of the window, for input and weights. */
            const int8_t *in_base = input + (size_t)(in_y0 + ky0) * row_stride
                                    + (size_t)(in_x0 + kx0) * (size_t)ch;
            const int32_t tap0 = ky0 * filter_w + kx0;
            const int8_t *w_base = weights + (size_t)tap0 * (size_t)ch;
            const int full = rows == filter_h && cols == filter_w;
            const uint32_t *we = wexp;
            for (c = c0; c < c4; c += 4, we += 2 * taps) {
                const ts_rq_t *r = &rq[c - c0];
                int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                if (expanded && full && is3x3) {
                    /* the common case, unrolled */
                    const int8_t *x = in_base + c;
                    const size_t ch1 = (size_t)ch, ch2 = 2u * (size_t)ch;
                    TS_DW_TAPX(x, we);
                    TS_DW_TAPX(x + ch1, we + 2);
                    TS_DW_TAPX(x + ch2, we + 4);
                    x += row_stride;
                    TS_COMPILER_BARRIER();
                    TS_DW_TAPX(x, we + 6);
                    TS_DW_TAPX(x + ch1, we + 8);
                    TS_DW_TAPX(x + ch2, we + 10);
                    x += row_stride;
                    TS_COMPILER_BARRIER();
                    TS_DW_TAPX(x, we + 12);
                    TS_DW_TAPX(x + ch1, we + 14);
                    TS_DW_TAPX(x + ch2, we + 16);
                } else if (expanded) {
                    const int8_t *x_row = in_base + c;
                    const uint32_t *w_row = we + 2 * tap0;
                    for (ky = 0; ky < rows; ++ky) {
                        const int8_t *x = x_row;
                        const uint32_t *w = w_row;
                        for (kx = 0; kx < cols; ++kx) {
                            TS_DW_TAPX(x, w);
                            x += ch;
                            w += 2;
                        }
                        x_row += row_stride;
                        w_row += 2 * filter_w;
                    }
                } else {
                    const int8_t *x_row = in_base + c;
                    const int8_t *w_row = w_base + c;
                    for (ky = 0; ky < rows; ++ky) {
                        const int8_t *x = x_row;
                        const int8_t *w = w_row;
                        for (kx = 0; kx < cols; ++kx) {
                            TS_DW_TAP(x, w);
                            x += ch;
                            w += ch;
                        }
                        x_row += row_stride;
                        w_row += (size_t)filter_w * (size_t)ch;
                    }
                }
                out[c] = rq_apply(a0, r, &cl);
                out[c + 1] = rq_apply(a1, r + 1, &cl);
                out[c + 2] = rq_apply(a2, r + 2, &cl);
                out[c + 3] = rq_apply(a3, r + 3, &cl);
            }
            for (; c < c1; ++c) {
                int32_t acc = 0;
                for (ky = 0; ky < rows; ++ky) {
                    for (kx = 0; kx < cols; ++kx) {
                        acc += ((int32_t)in_base[(size_t)ky * row_stride + (size_t)kx * (size_t)ch
                                                 + (size_t)c] + offset)
                               * (int32_t)w_base[((size_t)ky * (size_t)filter_w + (size_t)kx)
                                                 * (size_t)ch + (size_t)c];
                    }
                }
                out[c] = rq_apply(acc, &rq[c - c0], &cl);
            }
        }
    }
}

void ts_depthwise_conv2d_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output,
                                void *scratch) {
    const int32_t ch = p->in.c;
    const int32_t ch4 = ch & ~3;
    ts_plane3x3_t g;
    int32_t cb;

    if (scratch != NULL && plane3x3_of(p, &g) && rq_fast_ok(p, 9)) {
        conv3x3_planes(p, input, output, (int16_t *)scratch, &g);
        return;
    }
    if (p->depth_multiplier != 1u || p->dilation_h != 1u || p->dilation_w != 1u ||
        !rq_fast_ok(p, (int64_t)p->filter_h * p->filter_w)) {
        ts_depthwise_conv2d_s8_ref(p, input, output);
        return;
    }
    /* Channels in blocks of TS_DW_RQ_BLOCK (a multiple of 4) whose requantization constants
     * and expanded weights fit the on-stack tables. */
    for (cb = 0; cb < ch; cb += TS_DW_RQ_BLOCK) {
        const int32_t ce = (ch - cb) < TS_DW_RQ_BLOCK ? ch : cb + TS_DW_RQ_BLOCK;
        dw_block(p, input, output, cb, ce < ch4 ? ce : ch4, ce);
    }
}
