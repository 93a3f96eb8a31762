/*
 * tinysift engine: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with dual 16-bit MACs
 * (Cortex-M4/M7 SMLAD, SMLABB/SMLATT; see ts_dsp.h), bit-exact with the scalar kernels in
 * ts_kernels.c and so with TFLM.
 *
 * Why it is exact: every product (x - zp) * w is formed exactly in 16x16->32 bits
 * (|x - zp| <= 255, |w| <= 128) and int32 addition is associative; ts_layer_check refuses
 * any layer whose accumulator could leave int32, so summation order does not matter.
 * Requantization uses ts_mbqm_fast, proven equal to ts_mbqm (ts_fixedpoint.h).
 *
 * Data layout trick (the one CMSIS-NN uses for its s8 kernels): SXTB16 of a word of four
 * int8 gives lanes (b0, b2) and SXTB16 ROR 8 gives (b1, b3). Activations are expanded the
 * same way (SXTAB16 also adds the input offset), so each SMLAD pairs matching elements
 * without any repacking.
 *
 * CONV_2D: im2col of two output pixels at a time into an on-stack q15 buffer (zero points
 * for padded taps, so they contribute 0), then a 2-channel x 2-pixel SMLAD kernel.
 * FULLY_CONNECTED: the input expanded once, then 2 rows at a time.
 * DEPTHWISE_CONV_2D (depth multiplier 1): 4 channels per word, SMLABB/SMLATT per tap.
 * Layers too large for the stack buffer (TS_DSP_MAX_K) use the scalar kernels.
 */
#include <string.h>

#include "ts_dsp.h"
#include "ts_fixedpoint.h"
#include "ts_kernels.h"

static inline int8_t requant(const ts_layer_t *p, int32_t acc, int32_t channel) {
    const int32_t q = p->quant_len == 1u ? 0 : channel;
    if (p->bias != NULL) {
        acc += p->bias[channel];
    }
    acc = ts_mbqm_fast(acc, p->multiplier[q], p->shift[q]) + p->output_zero_point;
    return (int8_t)ts_clamp_i32(acc, p->act_min, p->act_max);
}

/* Expand n int8 (n % 4 == 0) to q15 pairs with the offset added: per 4 inputs two words
 * (x0+o, x2+o), (x1+o, x3+o). */
static inline uint32_t *expand_s8x4(const int8_t *src, int32_t n, uint32_t offset2,
                                    uint32_t *dst) {
    int32_t i;
    for (i = 0; i < n; i += 4) {
        const uint32_t v = ts_read_s8x4(src + i);
        dst[0] = ts_sxtab16(offset2, v);
        dst[1] = ts_sxtab16_ror8(offset2, v);
        dst += 2;
    }
    return dst;
}

/* Expand n int8 (any n): groups of 4 as above; the tail (n % 4 values) in natural order
 * as halfwords, padded with 0 to a whole group. */
static void expand_s8(const int8_t *src, int32_t n, int32_t offset, uint32_t *dst) {
    const int32_t n4 = n & ~3;
    const int32_t tail = n - n4;
    int32_t v[4] = {0, 0, 0, 0};
    int32_t i;
    dst = expand_s8x4(src, n4, ts_dup16(offset), dst);
    if (tail > 0) {
        for (i = 0; i < tail; ++i) {
            v[i] = (int32_t)src[n4 + i] + offset;
        }
        dst[0] = ((uint32_t)(uint16_t)v[0]) | ((uint32_t)(uint16_t)v[1] << 16);
        dst[1] = ((uint32_t)(uint16_t)v[2]) | ((uint32_t)(uint16_t)v[3] << 16);
    }
}

/* Tail of a dot product: up to 3 weights against a natural-order q15 tail. */
static inline int32_t dot_tail(const int8_t *w, const uint32_t *col, int32_t tail, int32_t acc) {
    int32_t i;
    for (i = 0; i < tail; ++i) {
        const uint32_t word = col[i >> 1];
        const int32_t x = (i & 1) ? (int32_t)(int16_t)(uint16_t)(word >> 16)
                                  : (int32_t)(int16_t)(uint16_t)(word & 0xFFFFu);
        acc += x * (int32_t)w[i];
    }
    return acc;
}

/* Words of one expanded column of k values. */
static inline int32_t col_words(int32_t k) { return ((k + 3) / 4) * 2; }

/* im2col of output pixel n of a conv layer into dst (k = fh * fw * in_c values). */
static void conv_im2col(const ts_layer_t *p, const int8_t *input, int32_t n, uint32_t *dst,
                        int8_t *stage) {
    const int32_t in_c = p->in.c;
    const int32_t oy = n / p->out.w, ox = n % p->out.w;
    const int32_t in_y0 = oy * p->stride_h - p->pad_h;
    const int32_t in_x0 = ox * p->stride_w - p->pad_w;
    const int32_t offset = -p->input_zero_point;
    int32_t ky, kx;

    if ((in_c & 3) == 0) {
        const uint32_t offset2 = ts_dup16(offset);
        for (ky = 0; ky < p->filter_h; ++ky) {
            const int32_t iy = in_y0 + p->dilation_h * ky;
            for (kx = 0; kx < p->filter_w; ++kx) {
                const int32_t ix = in_x0 + p->dilation_w * kx;
                if (iy < 0 || iy >= p->in.h || ix < 0 || ix >= p->in.w) {
                    memset(dst, 0, (size_t)in_c / 2u * sizeof(uint32_t));
                    dst += in_c / 2;
                } else {
                    dst = expand_s8x4(input + ((size_t)iy * (size_t)p->in.w + (size_t)ix) * (size_t)in_c,
                                      in_c, offset2, dst);
                }
            }
        }
        return;
    }
    /* Channels not a multiple of 4: gather the int8 column first (padded taps hold the zero
     * point, which the offset turns into 0), then expand it. */
    {
        int8_t *s = stage;
        for (ky = 0; ky < p->filter_h; ++ky) {
            const int32_t iy = in_y0 + p->dilation_h * ky;
            for (kx = 0; kx < p->filter_w; ++kx) {
                const int32_t ix = in_x0 + p->dilation_w * kx;
                if (iy < 0 || iy >= p->in.h || ix < 0 || ix >= p->in.w) {
                    memset(s, p->input_zero_point, (size_t)in_c);
                } else {
                    memcpy(s, input + ((size_t)iy * (size_t)p->in.w + (size_t)ix) * (size_t)in_c,
                           (size_t)in_c);
                }
                s += in_c;
            }
        }
        expand_s8(stage, p->filter_h * p->filter_w * in_c, offset, dst);
    }
}

/* Two output channels (rows w0, w1) against two columns a, b. */
static inline void mac_2x2(const int8_t *w0, const int8_t *w1, const uint32_t *a,
                           const uint32_t *b, int32_t k, int32_t acc[4]) {
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
    int32_t g = k >> 2;
    while (g-- > 0) {
        const uint32_t v0 = ts_read_s8x4(w0);
        const uint32_t v1 = ts_read_s8x4(w1);
        const uint32_t w0l = ts_sxtb16(v0), w0h = ts_sxtb16_ror8(v0);
        const uint32_t w1l = ts_sxtb16(v1), w1h = ts_sxtb16_ror8(v1);
        const uint32_t x0 = a[0], x1 = a[1], y0 = b[0], y1 = b[1];
        w0 += 4;
        w1 += 4;
        a += 2;
        b += 2;
        a00 = ts_smlad(w0l, x0, a00);
        a00 = ts_smlad(w0h, x1, a00);
        a01 = ts_smlad(w0l, y0, a01);
        a01 = ts_smlad(w0h, y1, a01);
        a10 = ts_smlad(w1l, x0, a10);
        a10 = ts_smlad(w1h, x1, a10);
        a11 = ts_smlad(w1l, y0, a11);
        a11 = ts_smlad(w1h, y1, a11);
    }
    if ((k & 3) != 0) {
        a00 = dot_tail(w0, a, k & 3, a00);
        a01 = dot_tail(w0, b, k & 3, a01);
        a10 = dot_tail(w1, a, k & 3, a10);
        a11 = dot_tail(w1, b, k & 3, a11);
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* One row against one column. */
static inline int32_t mac_1x1(const int8_t *w, const uint32_t *a, int32_t k) {
    int32_t acc = 0;
    int32_t g = k >> 2;
    while (g-- > 0) {
        const uint32_t v = ts_read_s8x4(w);
        acc = ts_smlad(ts_sxtb16(v), a[0], acc);
        acc = ts_smlad(ts_sxtb16_ror8(v), a[1], acc);
        w += 4;
        a += 2;
    }
    return (k & 3) != 0 ? dot_tail(w, a, k & 3, acc) : acc;
}

/* Two rows against one column. */
static inline void mac_2x1(const int8_t *w0, const int8_t *w1, const uint32_t *a, int32_t k,
                           int32_t *acc0, int32_t *acc1) {
    int32_t s0 = 0, s1 = 0;
    int32_t g = k >> 2;
    while (g-- > 0) {
        const uint32_t v0 = ts_read_s8x4(w0);
        const uint32_t v1 = ts_read_s8x4(w1);
        const uint32_t x0 = a[0], x1 = a[1];
        s0 = ts_smlad(ts_sxtb16(v0), x0, s0);
        s0 = ts_smlad(ts_sxtb16_ror8(v0), x1, s0);
        s1 = ts_smlad(ts_sxtb16(v1), x0, s1);
        s1 = ts_smlad(ts_sxtb16_ror8(v1), x1, s1);
        w0 += 4;
        w1 += 4;
        a += 2;
    }
    if ((k & 3) != 0) {
        s0 = dot_tail(w0, a, k & 3, s0);
        s1 = dot_tail(w1, a, k & 3, s1);
    }
    *acc0 = s0;
    *acc1 = s1;
}

void ts_conv2d_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t k = p->filter_h * p->filter_w * p->in.c;
    const int32_t out_c = p->out.c;
    const int32_t pixels = p->out.h * p->out.w;
    uint32_t cols[2 * ((TS_DSP_MAX_K + 3) / 4) * 2];
    int8_t stage[TS_DSP_MAX_K];
    int32_t n, c;

    if (k > TS_DSP_MAX_K) {
        ts_conv2d_s8_ref(p, input, output);
        return;
    }
    for (n = 0; n < pixels; n += 2) {
        const int two = (n + 1) < pixels;
        uint32_t *col0 = cols;
        uint32_t *col1 = cols + col_words(k);
        int8_t *out0 = output + (size_t)n * (size_t)out_c;
        int8_t *out1 = out0 + out_c;
        conv_im2col(p, input, n, col0, stage);
        if (two) {
            conv_im2col(p, input, n + 1, col1, stage);
        }
        for (c = 0; c < out_c; c += 2) {
            const int8_t *w0 = p->weights + (size_t)c * (size_t)k;
            if (c + 1 < out_c) {
                const int8_t *w1 = w0 + k;
                if (two) {
                    int32_t acc[4];
                    mac_2x2(w0, w1, col0, col1, k, acc);
                    out0[c] = requant(p, acc[0], c);
                    out1[c] = requant(p, acc[1], c);
                    out0[c + 1] = requant(p, acc[2], c + 1);
                    out1[c + 1] = requant(p, acc[3], c + 1);
                } else {
                    int32_t a0, a1;
                    mac_2x1(w0, w1, col0, k, &a0, &a1);
                    out0[c] = requant(p, a0, c);
                    out0[c + 1] = requant(p, a1, c + 1);
                }
            } else {
                out0[c] = requant(p, mac_1x1(w0, col0, k), c);
                if (two) {
                    out1[c] = requant(p, mac_1x1(w0, col1, k), c);
                }
            }
        }
    }
}

void ts_fully_connected_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t k = p->in.h * p->in.w * p->in.c;
    const int32_t units = p->out.c;
    uint32_t col[2 * ((TS_DSP_MAX_K + 3) / 4) * 2];
    int32_t o;

    if (k > 2 * TS_DSP_MAX_K) {
        ts_fully_connected_s8_ref(p, input, output);
        return;
    }
    expand_s8(input, k, -p->input_zero_point, col);
    for (o = 0; o + 1 < units; o += 2) {
        int32_t a0, a1;
        const int8_t *w0 = p->weights + (size_t)o * (size_t)k;
        mac_2x1(w0, w0 + k, col, k, &a0, &a1);
        output[o] = requant(p, a0, o);
        output[o + 1] = requant(p, a1, o + 1);
    }
    if (o < units) {
        output[o] = requant(p, mac_1x1(p->weights + (size_t)o * (size_t)k, col, k), o);
    }
}

void ts_depthwise_conv2d_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t in_h = p->in.h, in_w = p->in.w, ch = p->in.c;
    const int32_t out_w = p->out.w;
    const int32_t filter_h = p->filter_h, filter_w = p->filter_w;
    const int32_t ch4 = ch & ~3;
    const int32_t offset = -p->input_zero_point;
    const uint32_t offset2 = ts_dup16(offset);
    int32_t oy, ox, c, ky, kx;

    if (p->depth_multiplier != 1u || p->dilation_h != 1u || p->dilation_w != 1u) {
        ts_depthwise_conv2d_s8_ref(p, input, output);
        return;
    }
    for (oy = 0; oy < p->out.h; ++oy) {
        const int32_t in_y0 = oy * p->stride_h - p->pad_h;
        const int32_t ky0 = in_y0 < 0 ? -in_y0 : 0;
        const int32_t ky1 = (in_h - in_y0) < filter_h ? (in_h - in_y0) : filter_h;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t in_x0 = ox * p->stride_w - p->pad_w;
            const int32_t kx0 = in_x0 < 0 ? -in_x0 : 0;
            const int32_t kx1 = (in_w - in_x0) < filter_w ? (in_w - in_x0) : filter_w;
            int8_t *out = output + ((size_t)oy * (size_t)out_w + (size_t)ox) * (size_t)ch;
            /* Top-left valid tap of the window, for input and weights. */
            const int8_t *in_base = input + ((size_t)(in_y0 + ky0) * (size_t)in_w
                                             + (size_t)(in_x0 + kx0)) * (size_t)ch;
            const int8_t *w_base = p->weights + (size_t)(ky0 * filter_w + kx0) * (size_t)ch;
            const int32_t rows = ky1 - ky0, cols = kx1 - kx0;
            for (c = 0; c < ch4; c += 4) {
                int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                const int8_t *in_row = in_base + c;
                const int8_t *w_row = w_base + c;
                for (ky = 0; ky < rows; ++ky) {
                    const int8_t *x = in_row;
                    const int8_t *w = w_row;
                    for (kx = 0; kx < cols; ++kx) {
                        const uint32_t xv = ts_read_s8x4(x);
                        const uint32_t wv = ts_read_s8x4(w);
                        const uint32_t xe = ts_sxtab16(offset2, xv);      /* ch c, c+2 */
                        const uint32_t xo = ts_sxtab16_ror8(offset2, xv); /* ch c+1, c+3 */
                        const uint32_t we = ts_sxtb16(wv);
                        const uint32_t wo = ts_sxtb16_ror8(wv);
                        a0 = ts_smlabb(xe, we, a0);
                        a2 = ts_smlatt(xe, we, a2);
                        a1 = ts_smlabb(xo, wo, a1);
                        a3 = ts_smlatt(xo, wo, a3);
                        x += ch;
                        w += ch;
                    }
                    in_row += (size_t)in_w * (size_t)ch;
                    w_row += (size_t)filter_w * (size_t)ch;
                }
                out[c] = requant(p, a0, c);
                out[c + 1] = requant(p, a1, c + 1);
                out[c + 2] = requant(p, a2, c + 2);
                out[c + 3] = requant(p, a3, c + 3);
            }
            for (; c < ch; ++c) {
                int32_t acc = 0;
                for (ky = 0; ky < rows; ++ky) {
                    for (kx = 0; kx < cols; ++kx) {
                        const size_t tap = (size_t)ky * (size_t)in_w + (size_t)kx;
                        acc += ((int32_t)in_base[tap * (size_t)ch + (size_t)c] + offset)
                               * (int32_t)w_base[((size_t)ky * (size_t)filter_w + (size_t)kx) * (size_t)ch
                                                 + (size_t)c];
                    }
                }
                out[c] = requant(p, acc, c);
            }
        }
    }
}
