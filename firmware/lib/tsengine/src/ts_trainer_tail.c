/*
 * tinysift engine: the trainer's float layers below the head, for update=last-block (the
 * last pointwise convolution before the average pooling: weights and bias) and update=bias
 * (every conv/depthwise bias of the backbone, TinyTL). The exact algorithm is
 * docs/trainer.md ("Modes"); tests/trainer_reference.py is its numpy twin.
 *
 * The layers [first, head_layer) run in float32 on dequantized activations: the int8 input
 * of layer `first` (the frozen int8 layers' output, or the sample itself) is dequantized
 * (x = s_in * (float)(q - zp)), every conv/depthwise computes
 *   pre[c] = s_w[c] * (sum (float)w_q * x) + b[c]          (frozen int8 weights)
 *   pre[c] = (sum W * x) + b[c]                             (trained float weights)
 * and clamps it as its fused activation does in int8 (lo = s_out * (act_min - zp_out),
 * hi = s_out * (act_max - zp_out)), keeping one mask bit (lo < pre < hi) for the backward
 * pass; average pooling divides the window sum by its in-image count; RESHAPE and QUANTIZE
 * pass values through. The backward pass multiplies by the masks, sums the bias gradients
 * over the pixels, the first layer's weight gradients (last-block) from its input, and the
 * input gradients of every layer above the first through the transposed convolutions
 * (frozen weights, no weight gradients). Afterwards the trained layers are re-quantized as
 * TFLM's Prepare computes a convolution's parameters, keeping every activation scale.
 *
 * The scales come from the model's .tflite (ts_tflite.h). C99, no heap, no static state;
 * every buffer is the caller's backbone workspace.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_tflite.h"
#include "ts_trainer.h"
#include "ts_trainer_internal.h"

/* the layer record is 32 bytes, as TS_TRAINER_TAIL_BYTES counts it */
typedef char ts_tail_layer_is_32_bytes[sizeof(ts_tail_layer_t) == 32u ? 1 : -1];

static uint64_t elems(ts_dims_t d)
{
    return (uint64_t)d.h * (uint64_t)d.w * (uint64_t)d.c;
}

static int is_conv(const ts_layer_t *l)
{
    return l->op == TS_OP_CONV_2D || l->op == TS_OP_DEPTHWISE_CONV_2D;
}

/* The ops the float layers handle (an AVERAGE_POOL_2D only without a fused activation). */
static int float_op_ok(const ts_layer_t *l)
{
    switch (l->op) {
    case TS_OP_CONV_2D:
    case TS_OP_DEPTHWISE_CONV_2D:
    case TS_OP_RESHAPE:
    case TS_OP_QUANTIZE:
        return 1;
    case TS_OP_AVERAGE_POOL_2D:
        return l->act_min <= -128 && l->act_max >= 127;
    default:
        return 0;
    }
}

/* update=last-block: the pointwise CONV_2D right below the AVERAGE_POOL_2D that comes before
 * the head (RESHAPE / QUANTIZE between them allowed); head_layer when there is none. */
static uint32_t last_pointwise(const ts_model_t *m)
{
    uint32_t l = m->head_layer;
    const ts_layer_t *pw;
    while (l > 0 && (m->layers[l - 1u].op == TS_OP_RESHAPE ||
                     m->layers[l - 1u].op == TS_OP_QUANTIZE)) {
        --l;
    }
    if (l < 2u || m->layers[l - 1u].op != TS_OP_AVERAGE_POOL_2D) {
        return m->head_layer;
    }
    pw = &m->layers[l - 2u];
    if (pw->op != TS_OP_CONV_2D || pw->filter_h != 1u || pw->filter_w != 1u ||
        pw->stride_h != 1u || pw->stride_w != 1u) {
        return m->head_layer;
    }
    return l - 2u;
}

ts_status_t ts_trainer_sizes(const ts_model_t *model, uint32_t update, ts_trainer_sizes_t *out)
{
    uint64_t sc = 0, act = 0, mb = 0, np = 0, x8, ws;
    uint32_t first, l;
    ts_status_t st;
    if (out == NULL) {
        return TS_ERR_NULL;
    }
    memset(out, 0, sizeof *out);
    st = ts_trainer_check_model(model);
    if (st != TS_OK) {
        return st;
    }
    if (update >= (uint32_t)TS_UPDATE_COUNT) {
        return TS_ERR_PARAM;
    }
    if (update == TS_UPDATE_HEAD) {
        out->first_layer = model->head_layer;
        out->sample_bytes = model->feature_dim;
        return TS_OK;
    }
    st = ts_model_check(model);
    if (st != TS_OK) {
        return st;
    }
    /* no layer below the head: nothing for the float layers to train (and no int8 layers
     * [first, head_layer) for the tuned evaluation to run) */
    if (model->head_layer == 0u) {
        return TS_ERR_UNSUPPORTED_OP;
    }
    first = 0;
    if (update == TS_UPDATE_LAST_BLOCK) {
        first = last_pointwise(model);
        if (first == model->head_layer) {
            return TS_ERR_UNSUPPORTED_OP;
        }
    }
    for (l = first; l < model->head_layer; ++l) {
        const ts_layer_t *ly = &model->layers[l];
        /* the float layers form a chain (each reads its predecessor's output) */
        if (!float_op_ok(ly) || !ts_layer_reads_previous(model, l)) {
            return TS_ERR_UNSUPPORTED_OP;
        }
        act = elems(ly->in) > act ? elems(ly->in) : act;
        act = elems(ly->out) > act ? elems(ly->out) : act;
        if (is_conv(ly)) {
            sc += (uint64_t)ly->out.c;
            mb += elems(ly->out);
            np += (uint64_t)ly->out.c;
            if (update == TS_UPDATE_LAST_BLOCK && l == first) {
                np += ly->weights_len;
                out->in_c = (uint32_t)ly->in.c;
                out->out_c = (uint32_t)ly->out.c;
                out->pixels = (uint32_t)(ly->out.h * ly->out.w);
            }
        }
    }
    out->first_layer = first;
    out->sample_bytes = (uint32_t)elems(model->layers[first].in);
    x8 = update == TS_UPDATE_LAST_BLOCK ? out->sample_bytes : 0u;
    /* every count below 2^31 (mask_bits and the layers' mask offsets are uint32_t: more mask
     * bits than that were truncated, the masks then overlapping what follows them), and the
     * workspace (TS_TRAINER_TAIL_BYTES sums in uint64_t) below 2^31 */
    if (sc >= (1u << 28) || act >= (1u << 27) || mb >= TS_TRAINER_MAX_BYTES ||
        np >= (1u << 27)) {
        return TS_ERR_SHAPE;
    }
    ws = TS_TRAINER_TAIL_BYTES(model->head_layer, sc, act, mb, np, x8);
    if (ws >= TS_TRAINER_MAX_BYTES) {
        return TS_ERR_SHAPE;
    }
    out->channels = (uint32_t)sc;
    out->act_max = (uint32_t)act;
    out->mask_bits = (uint32_t)mb;
    out->params = (uint32_t)np;
    out->workspace_bytes = (size_t)ws;
    out->q_bytes = update == TS_UPDATE_LAST_BLOCK
                       ? TS_TRAINER_BLOCK_Q_BYTES(out->in_c, out->out_c)
                       : TS_TRAINER_BIAS_Q_BYTES(sc);
    return TS_OK;
}

size_t ts_trainer_cache_bytes(const ts_model_t *model, uint32_t update, uint32_t train_count,
                              uint32_t test_count)
{
    ts_trainer_sizes_t sz;
    uint64_t bytes; /* in 64 bits: the counts are the caller's, a 32-bit size_t wraps */
    if (ts_trainer_sizes(model, update, &sz) != TS_OK || update == TS_UPDATE_BIAS) {
        return 0;
    }
    bytes = ((uint64_t)train_count + test_count) * sz.sample_bytes;
    return bytes < TS_TRAINER_MAX_BYTES ? (size_t)bytes : 0u;
}

/* ---- the workspace -------------------------------------------------------------------- */

void ts_tail_bind(ts_tail_t *t, const ts_model_t *model, uint32_t update,
                  const ts_trainer_sizes_t *sz, uint8_t *ws)
{
    size_t off = 32u * (size_t)model->head_layer;
    t->model = model;
    t->update = update;
    t->sz = *sz;
    t->layers = (ts_tail_layer_t *)(void *)ws;
    t->wscale = (float *)(void *)(ws + off);
    off += 4u * (size_t)sz->channels;
    t->buf[0] = (float *)(void *)(ws + off);
    off += 4u * (size_t)sz->act_max;
    t->buf[1] = (float *)(void *)(ws + off);
    off += 4u * (size_t)sz->act_max;
    t->par = (float *)(void *)(ws + off);
    off += 4u * (size_t)sz->params;
    t->vel = (float *)(void *)(ws + off);
    off += 4u * (size_t)sz->params;
    t->grad = (float *)(void *)(ws + off);
    off += 4u * (size_t)sz->params;
    t->mask = (uint32_t *)(void *)(ws + off);
    off += 4u * (((size_t)sz->mask_bits + 31u) / 32u);
    t->x8 = (int8_t *)(void *)(ws + off);
    t->grad_buf = 0;
}

/* The weight scales of a conv/depthwise layer (per tensor: repeated per channel). */
static ts_status_t read_layer(ts_tail_t *t, uint32_t l, const uint8_t *tflite, size_t bytes,
                              uint32_t sc, uint32_t mb)
{
    const ts_layer_t *ly = &t->model->layers[l];
    ts_tail_layer_t *tl = &t->layers[l];
    uint32_t ch = is_conv(ly) ? (uint32_t)ly->out.c : 0u;
    ts_tflite_op_t op;
    uint32_t c;
    ts_status_t st = ts_tflite_op(tflite, bytes, l + t->model->tflite_first_op, &op,
                                  ch > 0 ? t->wscale + sc : NULL, ch);
    if (st != TS_OK) {
        return st;
    }
    memset(tl, 0, sizeof *tl);
    tl->s_in = op.input_scale;
    tl->s_out = op.output_scale;
    tl->lo = op.output_scale * (float)(ly->act_min - ly->output_zero_point);
    tl->hi = op.output_scale * (float)(ly->act_max - ly->output_zero_point);
    tl->sc_off = sc;
    tl->mask_off = mb;
    if (ch > 0) {
        if (op.weight_scales == 1u) {
            for (c = 1; c < ch; ++c) {
                t->wscale[sc + c] = t->wscale[sc];
            }
        } else if (op.weight_scales != ch) {
            return TS_ERR_DATA;
        }
    }
    return TS_OK;
}

ts_status_t ts_tail_init(ts_tail_t *t, const uint8_t *tflite, size_t tflite_bytes)
{
    const ts_model_t *m = t->model;
    uint32_t l, c, sc = 0, mb = 0, np = 0;
    size_t j;
    for (l = t->sz.first_layer; l < m->head_layer; ++l) {
        const ts_layer_t *ly = &m->layers[l];
        ts_tail_layer_t *tl = &t->layers[l];
        ts_status_t st = read_layer(t, l, tflite, tflite_bytes, sc, mb);
        if (st != TS_OK) {
            return st;
        }
        if (!is_conv(ly)) {
            continue;
        }
        if (t->update == TS_UPDATE_LAST_BLOCK && l == t->sz.first_layer) {
            /* W = s_w[c] * (float)w_q, the rows of output channel c */
            uint32_t per_c = ly->weights_len / (uint32_t)ly->out.c;
            tl->w_off = np;
            for (j = 0; j < ly->weights_len; ++j) {
                t->par[np + j] = t->wscale[sc + j / per_c] * (float)ly->weights[j];
            }
            np += ly->weights_len;
        }
        /* b = (float)(((double)b_q * (double)s_in) * (double)s_w[c]) */
        tl->b_off = np;
        for (c = 0; c < (uint32_t)ly->out.c; ++c) {
            int32_t bq = ly->bias_len > 0u ? ly->bias[c] : 0;
            t->par[np + c] =
                (float)(((double)bq * (double)tl->s_in) * (double)t->wscale[sc + c]);
        }
        np += (uint32_t)ly->out.c;
        sc += (uint32_t)ly->out.c;
        mb += (uint32_t)elems(ly->out);
    }
    for (j = 0; j < np; ++j) {
        t->vel[j] = 0.0f;
        t->grad[j] = 0.0f;
    }
    return TS_OK;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* The clamp of a fused activation and its mask bit (1: the gradient passes). */
static float clamp_mask(float pre, float lo, float hi, uint32_t *mask, size_t bit)
{
    uint32_t b = 1u << (bit & 31u);
    if (pre > lo && pre < hi) {
        mask[bit >> 5] |= b;
        return pre;
    }
    mask[bit >> 5] &= ~b;
    return pre <= lo ? lo : hi;
}

/* Running sums acc + w[0] x[0] + w[1] x[1] + ... and updates over n contiguous values,
 * unrolled by four without changing the order of the additions (the results equal the plain
 * loops' bit for bit). */
static float dot_f(float acc, const float *w, const float *x, int32_t n)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        acc += w[i] * x[i];
        acc += w[i + 1] * x[i + 1];
        acc += w[i + 2] * x[i + 2];
        acc += w[i + 3] * x[i + 3];
    }
    for (; i < n; ++i) {
        acc += w[i] * x[i];
    }
    return acc;
}

static float dot_q(float acc, const int8_t *w, const float *x, int32_t n)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        acc += (float)w[i] * x[i];
        acc += (float)w[i + 1] * x[i + 1];
        acc += (float)w[i + 2] * x[i + 2];
        acc += (float)w[i + 3] * x[i + 3];
    }
    for (; i < n; ++i) {
        acc += (float)w[i] * x[i];
    }
    return acc;
}

/* y[i] += g * x[i] */
static void axpy_f(float *y, float g, const float *x, int32_t n)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        y[i] += g * x[i];
        y[i + 1] += g * x[i + 1];
        y[i + 2] += g * x[i + 2];
        y[i + 3] += g * x[i + 3];
    }
    for (; i < n; ++i) {
        y[i] += g * x[i];
    }
}

static void axpy_q(float *y, float g, const int8_t *w, int32_t n)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        y[i] += g * (float)w[i];
        y[i + 1] += g * (float)w[i + 1];
        y[i + 2] += g * (float)w[i + 2];
        y[i + 3] += g * (float)w[i + 3];
    }
    for (; i < n; ++i) {
        y[i] += g * (float)w[i];
    }
}

/* The filter taps [*k0, *k1) of output position o whose input index
 * o * stride - pad + dil * k lies in [0, size). */
static void tap_range(int32_t o, int32_t stride, int32_t pad, int32_t dil, int32_t filter,
                      int32_t size, int32_t *k0, int32_t *k1)
{
    int32_t first = o * stride - pad;
    int32_t a = 0, b = filter;
    while (a < b && first + dil * a < 0) {
        ++a;
    }
    while (b > a && first + dil * (b - 1) >= size) {
        --b;
    }
    *k0 = a;
    *k1 = b;
}

static void conv_forward(ts_tail_t *t, uint32_t l, const float *in, float *out)
{
    const ts_layer_t *ly = &t->model->layers[l];
    const ts_tail_layer_t *tl = &t->layers[l];
    const int32_t in_h = ly->in.h, in_w = ly->in.w, in_c = ly->in.c, out_c = ly->out.c;
    const int32_t fh = ly->filter_h, fw = ly->filter_w;
    const int trained = t->update == TS_UPDATE_LAST_BLOCK && l == t->sz.first_layer;
    const float *wf = t->par + tl->w_off;
    const float *b = t->par + tl->b_off;
    const float *s = t->wscale + tl->sc_off;
    int32_t oy, ox, oc, ky, kx, ky0, ky1, kx0, kx1;
    for (oy = 0; oy < ly->out.h; ++oy) {
        tap_range(oy, ly->stride_h, ly->pad_h, ly->dilation_h, fh, in_h, &ky0, &ky1);
        for (ox = 0; ox < ly->out.w; ++ox) {
            size_t o = ((size_t)oy * (size_t)ly->out.w + (size_t)ox) * (size_t)out_c;
            tap_range(ox, ly->stride_w, ly->pad_w, ly->dilation_w, fw, in_w, &kx0, &kx1);
            for (oc = 0; oc < out_c; ++oc) {
                float acc = 0.0f, pre;
                for (ky = ky0; ky < ky1; ++ky) {
                    int32_t iy = oy * ly->stride_h - ly->pad_h + ly->dilation_h * ky;
                    for (kx = kx0; kx < kx1; ++kx) {
                        int32_t ix = ox * ly->stride_w - ly->pad_w + ly->dilation_w * kx;
                        const float *x =
                            in + ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)in_c;
                        size_t wo = ((size_t)(oc * fh + ky) * (size_t)fw + (size_t)kx) *
                                    (size_t)in_c;
                        acc = trained ? dot_f(acc, wf + wo, x, in_c)
                                      : dot_q(acc, ly->weights + wo, x, in_c);
                    }
                }
                pre = trained ? acc + b[oc] : s[oc] * acc + b[oc];
                out[o + (size_t)oc] = clamp_mask(pre, tl->lo, tl->hi, t->mask,
                                                 (size_t)tl->mask_off + o + (size_t)oc);
            }
        }
    }
}

static void depthwise_forward(ts_tail_t *t, uint32_t l, const float *in, float *out)
{
    const ts_layer_t *ly = &t->model->layers[l];
    const ts_tail_layer_t *tl = &t->layers[l];
    const int32_t in_h = ly->in.h, in_w = ly->in.w, in_c = ly->in.c, out_c = ly->out.c;
    const int32_t dm = ly->depth_multiplier;
    const float *b = t->par + tl->b_off;
    const float *s = t->wscale + tl->sc_off;
    int32_t oy, ox, ic, m, ky, kx, ky0, ky1, kx0, kx1;
    for (oy = 0; oy < ly->out.h; ++oy) {
        tap_range(oy, ly->stride_h, ly->pad_h, ly->dilation_h, ly->filter_h, in_h, &ky0, &ky1);
        for (ox = 0; ox < ly->out.w; ++ox) {
            size_t o = ((size_t)oy * (size_t)ly->out.w + (size_t)ox) * (size_t)out_c;
            tap_range(ox, ly->stride_w, ly->pad_w, ly->dilation_w, ly->filter_w, in_w, &kx0,
                      &kx1);
            for (ic = 0; ic < in_c; ++ic) {
                for (m = 0; m < dm; ++m) {
                    int32_t oc = m + ic * dm;
                    float acc = 0.0f;
                    for (ky = ky0; ky < ky1; ++ky) {
                        int32_t iy = oy * ly->stride_h - ly->pad_h + ly->dilation_h * ky;
                        for (kx = kx0; kx < kx1; ++kx) {
                            int32_t ix = ox * ly->stride_w - ly->pad_w + ly->dilation_w * kx;
                            acc += (float)ly->weights[(size_t)(ky * ly->filter_w + kx) *
                                                          (size_t)out_c + (size_t)oc] *
                                   in[((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)in_c +
                                      (size_t)ic];
                        }
                    }
                    out[o + (size_t)oc] =
                        clamp_mask(s[oc] * acc + b[oc], tl->lo, tl->hi, t->mask,
                                   (size_t)tl->mask_off + o + (size_t)oc);
                }
            }
        }
    }
}

/* The in-image part [*f0, *f1) of a pooling window along one axis, and its origin. */
static void pool_window(int32_t o, int32_t stride, int32_t pad, int32_t filter, int32_t size,
                        int32_t *origin, int32_t *f0, int32_t *f1)
{
    int32_t org = o * stride - pad;
    *origin = org;
    *f0 = org < 0 ? -org : 0;
    *f1 = (size - org) < filter ? (size - org) : filter;
}

/* AVERAGE_POOL_2D forward: out = the window sums / their in-image counts. Backward
 * (backward != 0): in is the output gradient, out receives the input gradient (zeroed, then
 * each window's g / count added to its elements). */
static void pool(const ts_layer_t *ly, const float *in, float *out, int backward)
{
    const int32_t in_w = ly->in.w, depth = ly->in.c;
    int32_t oy, ox, c, fy, fx;
    if (backward) {
        memset(out, 0, (size_t)elems(ly->in) * sizeof(float));
    }
    for (oy = 0; oy < ly->out.h; ++oy) {
        int32_t y0, fy0, fy1;
        pool_window(oy, ly->stride_h, ly->pad_h, ly->filter_h, ly->in.h, &y0, &fy0, &fy1);
        for (ox = 0; ox < ly->out.w; ++ox) {
            int32_t x0, fx0, fx1, count;
            size_t o = ((size_t)oy * (size_t)ly->out.w + (size_t)ox) * (size_t)depth;
            pool_window(ox, ly->stride_w, ly->pad_w, ly->filter_w, in_w, &x0, &fx0, &fx1);
            count = (fy1 > fy0 && fx1 > fx0) ? (fy1 - fy0) * (fx1 - fx0) : 0;
            for (c = 0; c < depth; ++c) {
                float acc = 0.0f, g = 0.0f;
                if (backward) {
                    g = count > 0 ? in[o + (size_t)c] / (float)count : 0.0f;
                }
                for (fy = fy0; fy < fy1; ++fy) {
                    for (fx = fx0; fx < fx1; ++fx) {
                        size_t i = ((size_t)(y0 + fy) * (size_t)in_w + (size_t)(x0 + fx)) *
                                       (size_t)depth + (size_t)c;
                        if (backward) {
                            out[i] += g;
                        } else {
                            acc += in[i];
                        }
                    }
                }
                if (!backward) {
                    out[o + (size_t)c] = count > 0 ? acc / (float)count : 0.0f;
                }
            }
        }
    }
}

/* x = s_in * (float)(q - zp) of the first float layer's int8 input. */
static void dequantize_input(const ts_tail_t *t, const int8_t *x, float *dst)
{
    uint32_t first = t->sz.first_layer;
    const ts_layer_t *ly = &t->model->layers[first];
    const float s = t->layers[first].s_in;
    uint32_t i;
    for (i = 0; i < t->sz.sample_bytes; ++i) {
        dst[i] = s * (float)((int32_t)x[i] - ly->input_zero_point);
    }
}

void ts_tail_forward(ts_tail_t *t, const int8_t *x, float *f)
{
    const ts_model_t *m = t->model;
    uint32_t l, cur = 0;
    dequantize_input(t, x, t->buf[0]);
    for (l = t->sz.first_layer; l < m->head_layer; ++l) {
        const ts_layer_t *ly = &m->layers[l];
        switch (ly->op) {
        case TS_OP_CONV_2D:
            conv_forward(t, l, t->buf[cur], t->buf[cur ^ 1u]);
            cur ^= 1u;
            break;
        case TS_OP_DEPTHWISE_CONV_2D:
            depthwise_forward(t, l, t->buf[cur], t->buf[cur ^ 1u]);
            cur ^= 1u;
            break;
        case TS_OP_AVERAGE_POOL_2D:
            pool(ly, t->buf[cur], t->buf[cur ^ 1u], 0);
            cur ^= 1u;
            break;
        default: /* RESHAPE, QUANTIZE: the values pass through */
            break;
        }
    }
    memcpy(f, t->buf[cur], (size_t)m->feature_dim * sizeof(float));
}

/* ---- backward ----------------------------------------------------------------------------- */

float *ts_tail_grad_out(ts_tail_t *t)
{
    t->grad_buf = 0;
    return t->buf[0];
}

/* d *= mask; the bias gradient sums += d summed over the pixels. */
static void mask_and_bias_grad(ts_tail_t *t, uint32_t l, float *d)
{
    const ts_layer_t *ly = &t->model->layers[l];
    const ts_tail_layer_t *tl = &t->layers[l];
    const size_t ch = (size_t)ly->out.c, n = (size_t)elems(ly->out);
    float *gb = t->grad + tl->b_off;
    size_t i, c;
    for (i = 0; i < n; i += ch) {
        for (c = 0; c < ch; ++c) {
            size_t bit = (size_t)tl->mask_off + i + c;
            if ((t->mask[bit >> 5] & (1u << (bit & 31u))) == 0u) {
                d[i + c] = 0.0f;
            }
            gb[c] += d[i + c];
        }
    }
}

/* Convolution, x == NULL: din = the transposed convolution of d with the frozen weights
 * s_w[c] * w_q (din zeroed first). x != NULL: the trained weights' gradient sums
 * += d * x instead (x: the layer's float input). */
static void conv_backward(ts_tail_t *t, uint32_t l, const float *d, float *din,
                          const float *x)
{
    const ts_layer_t *ly = &t->model->layers[l];
    const ts_tail_layer_t *tl = &t->layers[l];
    const int32_t in_h = ly->in.h, in_w = ly->in.w, in_c = ly->in.c, out_c = ly->out.c;
    const int32_t fh = ly->filter_h, fw = ly->filter_w;
    const float *s = t->wscale + tl->sc_off;
    float *gw = t->grad + tl->w_off;
    int32_t oy, ox, oc, ky, kx, ky0, ky1, kx0, kx1;
    if (x == NULL) {
        memset(din, 0, (size_t)elems(ly->in) * sizeof(float));
    }
    for (oy = 0; oy < ly->out.h; ++oy) {
        tap_range(oy, ly->stride_h, ly->pad_h, ly->dilation_h, fh, in_h, &ky0, &ky1);
        for (ox = 0; ox < ly->out.w; ++ox) {
            const float *dp = d + ((size_t)oy * (size_t)ly->out.w + (size_t)ox) * (size_t)out_c;
            tap_range(ox, ly->stride_w, ly->pad_w, ly->dilation_w, fw, in_w, &kx0, &kx1);
            for (oc = 0; oc < out_c; ++oc) {
                float g = dp[oc];
                if (g == 0.0f) {
                    continue;
                }
                if (x == NULL) {
                    g = g * s[oc];
                }
                for (ky = ky0; ky < ky1; ++ky) {
                    int32_t iy = oy * ly->stride_h - ly->pad_h + ly->dilation_h * ky;
                    for (kx = kx0; kx < kx1; ++kx) {
                        int32_t ix = ox * ly->stride_w - ly->pad_w + ly->dilation_w * kx;
                        size_t io = ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)in_c;
                        size_t wo = ((size_t)(oc * fh + ky) * (size_t)fw + (size_t)kx) *
                                    (size_t)in_c;
                        if (x != NULL) {
                            axpy_f(gw + wo, g, x + io, in_c);
                        } else {
                            axpy_q(din + io, g, ly->weights + wo, in_c);
                        }
                    }
                }
            }
        }
    }
}

static void depthwise_backward(ts_tail_t *t, uint32_t l, const float *d, float *din)
{
    const ts_layer_t *ly = &t->model->layers[l];
    const ts_tail_layer_t *tl = &t->layers[l];
    const int32_t in_h = ly->in.h, in_w = ly->in.w, in_c = ly->in.c, out_c = ly->out.c;
    const int32_t dm = ly->depth_multiplier;
    const float *s = t->wscale + tl->sc_off;
    int32_t oy, ox, ic, m, ky, kx, ky0, ky1, kx0, kx1;
    memset(din, 0, (size_t)elems(ly->in) * sizeof(float));
    for (oy = 0; oy < ly->out.h; ++oy) {
        tap_range(oy, ly->stride_h, ly->pad_h, ly->dilation_h, ly->filter_h, in_h, &ky0, &ky1);
        for (ox = 0; ox < ly->out.w; ++ox) {
            const float *dp = d + ((size_t)oy * (size_t)ly->out.w + (size_t)ox) * (size_t)out_c;
            tap_range(ox, ly->stride_w, ly->pad_w, ly->dilation_w, ly->filter_w, in_w, &kx0,
                      &kx1);
            for (ic = 0; ic < in_c; ++ic) {
                for (m = 0; m < dm; ++m) {
                    int32_t oc = m + ic * dm;
                    float g = dp[oc];
                    if (g == 0.0f) {
                        continue;
                    }
                    g = g * s[oc];
                    for (ky = ky0; ky < ky1; ++ky) {
                        int32_t iy = oy * ly->stride_h - ly->pad_h + ly->dilation_h * ky;
                        for (kx = kx0; kx < kx1; ++kx) {
                            int32_t ix = ox * ly->stride_w - ly->pad_w + ly->dilation_w * kx;
                            din[((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)in_c +
                                (size_t)ic] +=
                                g * (float)ly->weights[(size_t)(ky * ly->filter_w + kx) *
                                                           (size_t)out_c + (size_t)oc];
                        }
                    }
                }
            }
        }
    }
}

void ts_tail_backward(ts_tail_t *t, const int8_t *x)
{
    const ts_model_t *m = t->model;
    const uint32_t first = t->sz.first_layer;
    uint32_t l = m->head_layer, cur = t->grad_buf;
    while (l-- > first) {
        const ts_layer_t *ly = &m->layers[l];
        float *d = t->buf[cur], *other = t->buf[cur ^ 1u];
        switch (ly->op) {
        case TS_OP_CONV_2D:
        case TS_OP_DEPTHWISE_CONV_2D:
            mask_and_bias_grad(t, l, d);
            if (t->update == TS_UPDATE_LAST_BLOCK && l == first) {
                dequantize_input(t, x, other);
                conv_backward(t, l, d, NULL, other);
            }
            if (l > first) {
                if (ly->op == TS_OP_CONV_2D) {
                    conv_backward(t, l, d, other, NULL);
                } else {
                    depthwise_backward(t, l, d, other);
                }
                cur ^= 1u;
            }
            break;
        case TS_OP_AVERAGE_POOL_2D:
            if (l > first) {
                pool(ly, d, other, 1);
                cur ^= 1u;
            }
            break;
        default:
            break;
        }
    }
}

void ts_tail_update(ts_tail_t *t, float lr, float mu, uint32_t bn)
{
    const float den = (float)bn;
    size_t j;
    for (j = 0; j < t->sz.params; ++j) {
        t->vel[j] = mu * t->vel[j] + t->grad[j] / den;
        t->par[j] = t->par[j] - lr * t->vel[j];
        t->grad[j] = 0.0f;
    }
}

/* ---- re-quantization ---------------------------------------------------------------------- */

static int finite_f(float v)
{
    float a = v < 0.0f ? -v : v;
    return a <= 3.0e38f;
}

/* The trained pointwise convolution: per output channel c, w_scale = max|W[c]| / 127 (1 for
 * an all-zero row), weights round_away(W / w_scale) in [-127, 127], bias
 * round_away(b / (s_in * w_scale)), (multiplier, shift) = QuantizeMultiplier(s_in * w_scale /
 * s_out) in double, as TFLM's Prepare computes them. */
static ts_status_t requantize_block(const ts_tail_t *t, uint32_t l, uint8_t *q)
{
    const ts_layer_t *ly = &t->model->layers[l];
    const ts_tail_layer_t *tl = &t->layers[l];
    const uint32_t out_c = (uint32_t)ly->out.c;
    const uint32_t per_c = ly->weights_len / out_c;
    int32_t *qb = (int32_t *)(void *)q;
    int32_t *qm = qb + out_c;
    int32_t *qs = qm + out_c;
    int8_t *qw = (int8_t *)(void *)(qs + out_c);
    uint32_t c, j;
    for (c = 0; c < out_c; ++c) {
        const float *row = t->par + tl->w_off + (size_t)c * per_c;
        float b = t->par[tl->b_off + c], maxabs = 0.0f, ws, bs;
        int32_t mult, shift;
        for (j = 0; j < per_c; ++j) {
            float a = row[j] < 0.0f ? -row[j] : row[j];
            if (!finite_f(row[j])) {
                return TS_ERR_PARAM;
            }
            maxabs = a > maxabs ? a : maxabs;
        }
        if (!finite_f(b)) {
            return TS_ERR_PARAM;
        }
        ws = maxabs > 0.0f ? maxabs / 127.0f : 1.0f;
        bs = tl->s_in * ws;
        if (!(bs > 0.0f)) {
            return TS_ERR_PARAM;
        }
        ts_trainer_quantize_multiplier((double)tl->s_in * (double)ws / (double)tl->s_out,
                                       &mult, &shift);
        if (shift > 30 || shift < -31) {
            return TS_ERR_PARAM;
        }
        for (j = 0; j < per_c; ++j) {
            qw[(size_t)c * per_c + j] =
                (int8_t)ts_trainer_round_away((double)row[j] / (double)ws, -127, 127);
        }
        qb[c] = (int32_t)ts_trainer_round_away((double)b / (double)bs, INT32_MIN, INT32_MAX);
        qm[c] = mult;
        qs[c] = shift;
    }
    return TS_OK;
}

ts_status_t ts_tail_requantize(const ts_tail_t *t, uint8_t *q)
{
    const ts_model_t *m = t->model;
    uint32_t l, c;
    for (l = t->sz.first_layer; l < m->head_layer; ++l) {
        const ts_layer_t *ly = &m->layers[l];
        const ts_tail_layer_t *tl = &t->layers[l];
        if (!is_conv(ly)) {
            continue;
        }
        if (t->update == TS_UPDATE_LAST_BLOCK) {
            return requantize_block(t, l, q);
        }
        /* bias: b_q = round_away(b / (s_in * s_w[c])), the export's scales */
        for (c = 0; c < (uint32_t)ly->out.c; ++c) {
            float b = t->par[tl->b_off + c];
            float bs = tl->s_in * t->wscale[tl->sc_off + c];
            if (!finite_f(b) || !(bs > 0.0f)) {
                return TS_ERR_PARAM;
            }
            ((int32_t *)(void *)q)[tl->sc_off + c] =
                (int32_t)ts_trainer_round_away((double)b / (double)bs, INT32_MIN, INT32_MAX);
        }
    }
    return TS_OK;
}

ts_status_t ts_trainer_patch_backbone(const ts_model_t *model, uint32_t update,
                                      const uint8_t *backbone_q, size_t backbone_q_bytes,
                                      ts_layer_t *layers_copy, uint32_t layers_cap)
{
    ts_trainer_sizes_t sz;
    uint32_t l, sc = 0;
    ts_status_t st = ts_trainer_sizes(model, update, &sz);
    if (st != TS_OK || update == TS_UPDATE_HEAD) {
        return st;
    }
    if (backbone_q == NULL || layers_copy == NULL) {
        return TS_ERR_NULL;
    }
    if (((uintptr_t)backbone_q & 3u) != 0u) {
        return TS_ERR_PARAM;
    }
    if (backbone_q_bytes < sz.q_bytes || layers_cap < model->num_layers) {
        return TS_ERR_ARENA;
    }
    for (l = sz.first_layer; l < model->head_layer; ++l) {
        ts_layer_t *ly = &layers_copy[l];
        const int32_t *q32 = (const int32_t *)(const void *)backbone_q;
        uint32_t ch = (uint32_t)model->layers[l].out.c;
        if (!is_conv(&model->layers[l])) {
            continue;
        }
        if (update == TS_UPDATE_LAST_BLOCK) {
            ly->bias = q32;
            ly->multiplier = q32 + ch;
            ly->shift = q32 + 2u * ch;
            ly->quant_len = ch;
            ly->weights = (const int8_t *)(const void *)(q32 + 3u * ch);
        } else {
            ly->bias = q32 + sc;
        }
        ly->bias_len = ch;
        sc += ch;
    }
    return TS_OK;
}
