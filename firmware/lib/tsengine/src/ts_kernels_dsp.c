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
 * then 2 channels x 2 pixels per inner loop (8 SMLAD per 16 MACs).
 * FULLY_CONNECTED: the input expanded once, then 2 rows at a time.
 * DEPTHWISE_CONV_2D (depth multiplier 1, no dilation): 4 channels per word, SMLABB/SMLATT per
 * tap; weights of windows up to 3x3 expanded once per call, the 3x3 window unrolled when it
 * lies inside the image.
 * Layers larger than TS_DSP_MAX_K use the scalar kernels.
 *
 * Scratch (the im2col columns, the expanded FC input, the expanded depthwise weights and the
 * requantization tables) comes from the caller, as in CMSIS-NN: *_scratch_size() bytes,
 * 4-byte aligned; a kernel keeps only a few words on the stack. NULL scratch runs the scalar
 * kernel (same result).
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

/* conv: im2col of two pixels (4 * ceil(k / 4) words), the staging row (k + 4 bytes), the
 * requantization table of one block */
size_t ts_conv2d_s8_dsp_scratch_size(const ts_layer_t *p) {
    const int32_t k = p->filter_h * p->filter_w * p->in.c;
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

/* depthwise: none (its requantization table and expanded weights for TS_DW_RQ_BLOCK
 * channels at a time, 544 bytes, live on the stack) */
size_t ts_depthwise_conv2d_s8_dsp_scratch_size(const ts_layer_t *p) {
    (void)p;
    return 0;
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
    int32_t n, c, cb;

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
            for (c = cb; c + 1 < ce; c += 2) {
                const int8_t *w0 = weights + (size_t)c * (size_t)k;
                const ts_rq_t *r = &rq[c - cb];
                int32_t acc[4];
                mac_2x2(w0, w0 + k, cols, k, acc);
                out0[c] = rq_apply(acc[0], r, &cl);
                out0[c + 1] = rq_apply(acc[2], r + 1, &cl);
                if (two) {
                    out1[c] = rq_apply(acc[1], r, &cl);
                    out1[c + 1] = rq_apply(acc[3], r + 1, &cl);
                }
            }
            if (c < ce) {
                int32_t acc[2];
                mac_1x2(weights + (size_t)c * (size_t)k, cols, k, acc);
                out0[c] = rq_apply(acc[0], &rq[c - cb], &cl);
                if (two) {
                    out1[c] = rq_apply(acc[1], &rq[c - cb], &cl);
                }
            }
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
    int32_t cb;

    (void)scratch; /* its tables are small enough for the stack (ts_kernels.h) */
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
