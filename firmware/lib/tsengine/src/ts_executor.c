/*
 * tinysift engine: the executor for the exported layer table (ts_model.h, format version 1).
 *
 * ts_model_check validates a table completely before anything runs, so that no table (a
 * wrong version, an unknown op, shapes that do not chain, out-of-range parameters, NULL or
 * short arrays) can make a kernel read or write out of bounds or overflow an int32: every
 * entry point returns a status code instead.
 *
 * Memory: the caller's arena holds two activation buffers at its two ends. Layer i reads
 * from one end and writes to the other, so a layer needs align8(in) + align8(out) bytes,
 * and the arena the largest of those over the layers: exactly the exporter's
 * TS_EXPORT_ARENA_BYTES. The first layer reads the caller's input and the last writes the
 * caller's output directly (no copies).
 */
#include <string.h>

#include "ts_engine.h"
#include "ts_fixedpoint.h"
#include "ts_kernels.h"

/* Dimensions are bounded so that every size and index fits comfortably in int32. */
#define TS_MAX_DIM 32767
#define TS_MAX_ELEMS ((int64_t)1 << 26)
#define TS_MAX_SOFTMAX_DEPTH 511 /* keeps RoundingDivideByPOT's exponent <= 31 */

static int64_t dims_count(ts_dims_t d) { return (int64_t)d.h * (int64_t)d.w * (int64_t)d.c; }

static int dims_ok(ts_dims_t d) {
    return d.h >= 1 && d.w >= 1 && d.c >= 1 && d.h <= TS_MAX_DIM && d.w <= TS_MAX_DIM &&
           d.c <= TS_MAX_DIM && dims_count(d) <= TS_MAX_ELEMS;
}

static int dims_equal(ts_dims_t a, ts_dims_t b) { return a.h == b.h && a.w == b.w && a.c == b.c; }

static size_t align8(size_t n) { return (n + 7u) & ~(size_t)7u; }

size_t ts_layer_out_bytes(const ts_layer_t *layer) { return (size_t)dims_count(layer->out); }

size_t ts_layer_in_bytes(const ts_layer_t *layer) { return (size_t)dims_count(layer->in); }

uint32_t ts_layer_macs(const ts_layer_t *l) {
    switch (l->op) {
    case TS_OP_CONV_2D:
        return (uint32_t)(dims_count(l->out) * l->filter_h * l->filter_w * l->in.c);
    case TS_OP_DEPTHWISE_CONV_2D:
        return (uint32_t)(dims_count(l->out) * l->filter_h * l->filter_w);
    case TS_OP_FULLY_CONNECTED:
        return (uint32_t)(dims_count(l->in) * l->out.c);
    default:
        return 0u;
    }
}

/* Output size along one axis as TFLM's ComputeOutSize / padding as
 * ComputePaddingHeightWidth (floor of half the total padding). */
static int32_t out_size(int padding, int32_t in, int32_t filter, int32_t stride, int32_t dilation) {
    const int32_t effective = (filter - 1) * dilation + 1;
    if (padding == TS_PAD_SAME) {
        return (in + stride - 1) / stride;
    }
    return (in + stride - effective) / stride;
}

static int32_t same_pad(int32_t in, int32_t filter, int32_t stride, int32_t dilation, int32_t out) {
    const int32_t effective = (filter - 1) * dilation + 1;
    const int32_t total = (out - 1) * stride + effective - in;
    return total > 0 ? total / 2 : 0;
}

/* Spatial geometry of conv / depthwise / pool rows. */
static ts_status_t check_window(const ts_layer_t *l, int dilated) {
    int32_t dil_h = 1, dil_w = 1;
    if (l->padding != TS_PAD_VALID && l->padding != TS_PAD_SAME) {
        return TS_ERR_PARAM;
    }
    if (l->stride_h < 1u || l->stride_w < 1u || l->filter_h < 1u || l->filter_w < 1u) {
        return TS_ERR_PARAM;
    }
    if (dilated) {
        if (l->dilation_h < 1u || l->dilation_w < 1u) {
            return TS_ERR_PARAM;
        }
        dil_h = l->dilation_h;
        dil_w = l->dilation_w;
    }
    if (out_size(l->padding, l->in.h, l->filter_h, l->stride_h, dil_h) != l->out.h ||
        out_size(l->padding, l->in.w, l->filter_w, l->stride_w, dil_w) != l->out.w) {
        return TS_ERR_SHAPE;
    }
    if (l->pad_h != same_pad(l->in.h, l->filter_h, l->stride_h, dil_h, l->out.h) ||
        l->pad_w != same_pad(l->in.w, l->filter_w, l->stride_w, dil_w, l->out.w)) {
        return TS_ERR_PARAM;
    }
    return TS_OK;
}

static int int8_range(int32_t v) { return v >= -128 && v <= 127; }

/* Zero points, activation clamp, multipliers/shifts, bias; and the accumulator bound:
 * |sum (x - zp) * w| + |bias| <= k * 255 * 128 + max|bias| must fit in int32 (then no
 * kernel can overflow, whatever the summation order). */
static ts_status_t check_quant(const ts_layer_t *l, uint32_t channels, int64_t k) {
    uint32_t i;
    int64_t max_bias = 0;
    if (!int8_range(l->input_zero_point) || !int8_range(l->output_zero_point) ||
        !int8_range(l->act_min) || !int8_range(l->act_max) || l->act_min > l->act_max) {
        return TS_ERR_PARAM;
    }
    if (l->multiplier == NULL || l->shift == NULL) {
        return TS_ERR_NULL;
    }
    if (l->quant_len != 1u && l->quant_len != channels) {
        return TS_ERR_SHAPE;
    }
    for (i = 0; i < l->quant_len; ++i) {
        if (l->multiplier[i] < 0 || l->shift[i] < -31 || l->shift[i] > 30) {
            return TS_ERR_PARAM;
        }
    }
    if (l->bias_len != 0u) {
        if (l->bias == NULL) {
            return TS_ERR_NULL;
        }
        if (l->bias_len != channels) {
            return TS_ERR_SHAPE;
        }
        for (i = 0; i < l->bias_len; ++i) {
            const int64_t b = l->bias[i] < 0 ? -(int64_t)l->bias[i] : (int64_t)l->bias[i];
            max_bias = b > max_bias ? b : max_bias;
        }
    } else if (l->bias != NULL) {
        return TS_ERR_SHAPE;
    }
    if (k * 255 * 128 + max_bias > (int64_t)TS_INT32_MAX) {
        return TS_ERR_PARAM;
    }
    return TS_OK;
}

static ts_status_t check_weights(const ts_layer_t *l, int64_t expected) {
    if (l->weights == NULL) {
        return TS_ERR_NULL;
    }
    return (int64_t)l->weights_len == expected ? TS_OK : TS_ERR_SHAPE;
}

ts_status_t ts_layer_check(const ts_layer_t *l) {
    ts_status_t st;
    if (l == NULL) {
        return TS_ERR_NULL;
    }
    if (!dims_ok(l->in) || !dims_ok(l->out)) {
        return TS_ERR_SHAPE;
    }
    switch (l->op) {
    case TS_OP_CONV_2D: {
        const int64_t k = (int64_t)l->filter_h * l->filter_w * l->in.c;
        if ((st = check_window(l, 1)) != TS_OK) {
            return st;
        }
        if ((st = check_weights(l, k * l->out.c)) != TS_OK) {
            return st;
        }
        return check_quant(l, (uint32_t)l->out.c, k);
    }
    case TS_OP_DEPTHWISE_CONV_2D: {
        const int64_t taps = (int64_t)l->filter_h * l->filter_w;
        if (l->depth_multiplier < 1u || (int64_t)l->in.c * l->depth_multiplier != l->out.c) {
            return TS_ERR_SHAPE;
        }
        if ((st = check_window(l, 1)) != TS_OK) {
            return st;
        }
        if ((st = check_weights(l, taps * l->out.c)) != TS_OK) {
            return st;
        }
        return check_quant(l, (uint32_t)l->out.c, taps);
    }
    case TS_OP_FULLY_CONNECTED: {
        const int64_t k = dims_count(l->in);
        if (l->out.h != 1 || l->out.w != 1) {
            return TS_ERR_SHAPE;
        }
        if ((st = check_weights(l, k * l->out.c)) != TS_OK) {
            return st;
        }
        return check_quant(l, (uint32_t)l->out.c, k);
    }
    case TS_OP_AVERAGE_POOL_2D:
    case TS_OP_MAX_POOL_2D:
        if (l->in.c != l->out.c) {
            return TS_ERR_SHAPE;
        }
        if ((st = check_window(l, 0)) != TS_OK) {
            return st;
        }
        if (!int8_range(l->act_min) || !int8_range(l->act_max) || l->act_min > l->act_max) {
            return TS_ERR_PARAM;
        }
        /* the sum of a window must fit in int32 (AVERAGE_POOL) */
        return (int64_t)l->filter_h * l->filter_w * 128 <= (int64_t)TS_INT32_MAX ? TS_OK
                                                                                  : TS_ERR_PARAM;
    case TS_OP_RESHAPE:
        return dims_count(l->in) == dims_count(l->out) ? TS_OK : TS_ERR_SHAPE;
    case TS_OP_SOFTMAX:
        if (!dims_equal(l->in, l->out)) {
            return TS_ERR_SHAPE;
        }
        if (l->in.c > TS_MAX_SOFTMAX_DEPTH || l->output_zero_point != -128 ||
            l->softmax_input_multiplier < 0 || l->softmax_input_left_shift < 0 ||
            l->softmax_input_left_shift > 31 || l->softmax_diff_min > 0) {
            return TS_ERR_PARAM;
        }
        return TS_OK;
    case TS_OP_QUANTIZE:
        if (!dims_equal(l->in, l->out)) {
            return TS_ERR_SHAPE;
        }
        if (!int8_range(l->input_zero_point) || !int8_range(l->output_zero_point)) {
            return TS_ERR_PARAM;
        }
        if (l->multiplier == NULL || l->shift == NULL) {
            return TS_ERR_NULL;
        }
        if (l->quant_len < 1u) {
            return TS_ERR_SHAPE;
        }
        if (l->multiplier[0] < 0 || l->shift[0] < -31 || l->shift[0] > 30) {
            return TS_ERR_PARAM;
        }
        return TS_OK;
    default: /* TS_OP_MEAN has no parameters in format version 1; the exporter never
              * emits it (it lowers global pooling to AVERAGE_POOL_2D). */
        return TS_ERR_UNSUPPORTED_OP;
    }
}

ts_status_t ts_model_check(const ts_model_t *model) {
    uint32_t i;
    if (model == NULL) {
        return TS_ERR_NULL;
    }
    if (model->format_version != TS_FORMAT_VERSION) {
        return TS_ERR_VERSION;
    }
    if (model->layers == NULL) {
        return TS_ERR_NULL;
    }
    if (model->num_layers == 0u || model->num_layers > 4096u) {
        return TS_ERR_SHAPE;
    }
    if (!dims_ok(model->input) || !dims_equal(model->input, model->layers[0].in)) {
        return TS_ERR_SHAPE;
    }
    for (i = 0; i < model->num_layers; ++i) {
        const ts_layer_t *l = &model->layers[i];
        const ts_status_t st = ts_layer_check(l);
        if (st != TS_OK) {
            return st;
        }
        if (i > 0) {
            const ts_layer_t *prev = &model->layers[i - 1];
            /* FULLY_CONNECTED and RESHAPE flatten: only the element count must chain. */
            const int flat = l->op == TS_OP_FULLY_CONNECTED || l->op == TS_OP_RESHAPE;
            if (flat ? dims_count(prev->out) != dims_count(l->in)
                     : !dims_equal(prev->out, l->in)) {
                return TS_ERR_SHAPE;
            }
        }
    }
    return TS_OK;
}

size_t ts_arena_size(const ts_model_t *model) {
    size_t need = 0;
    uint32_t i;
    if (ts_model_check(model) != TS_OK) {
        return 0;
    }
    for (i = 0; i < model->num_layers; ++i) {
        const ts_layer_t *l = &model->layers[i];
        const size_t n = align8(ts_layer_in_bytes(l)) + align8(ts_layer_out_bytes(l));
        need = n > need ? n : need;
    }
    return need;
}

ts_status_t ts_run_layers(const ts_model_t *model, uint32_t first, uint32_t last,
                          const int8_t *input, int8_t *output, uint8_t *arena,
                          size_t arena_bytes) {
    ts_status_t st = ts_model_check(model);
    const int8_t *src = input;
    int high = 1; /* the next output goes to the high end of the arena */
    uint32_t i;

    if (st != TS_OK) {
        return st;
    }
    if (input == NULL || output == NULL) {
        return TS_ERR_NULL;
    }
    if (first >= last || last > model->num_layers) {
        return TS_ERR_PARAM;
    }
    if (last - first > 1u) {
        if (arena == NULL) {
            return TS_ERR_NULL;
        }
        if (((uintptr_t)arena & 7u) != 0u || arena_bytes < ts_arena_size(model)) {
            return TS_ERR_ARENA;
        }
    }
    for (i = first; i < last; ++i) {
        const ts_layer_t *l = &model->layers[i];
        int8_t *dst;
        if (i + 1u == last) {
            dst = output;
        } else if (high) {
            dst = (int8_t *)(arena + (arena_bytes & ~(size_t)7u) - align8(ts_layer_out_bytes(l)));
        } else {
            dst = (int8_t *)arena;
        }
        st = ts_run_layer(l, src, dst);
        if (st != TS_OK) {
            return st;
        }
        src = dst;
        high = !high;
    }
    return TS_OK;
}

ts_status_t ts_invoke(const ts_model_t *model, const int8_t *input, int8_t *output,
                      uint8_t *arena, size_t arena_bytes) {
    if (model == NULL) {
        return TS_ERR_NULL;
    }
    return ts_run_layers(model, 0u, model->num_layers, input, output, arena, arena_bytes);
}
