/*
 * tinysift engine: the executor for the exported layer table (ts_model.h, format version 2).
 *
 * ts_model_check validates a table completely before anything runs, so that no table (a
 * wrong version, an unknown op, shapes that do not chain, out-of-range parameters, NULL or
 * short arrays, a tensor plan that does not fit or overlaps live tensors) can make a kernel
 * read or write out of bounds or overflow an int32: every entry point returns a status
 * code instead.
 *
 * Graphs (a tensor table): layers run in table order (the .tflite's execution order); tensor
 * i + 1 (layer i's output) lives at its planned arena offset from layer i to its last
 * reader. The exporter plans the offsets from those lifetimes (greedy by size, as TFLM's
 * GreedyMemoryPlanner); the check here proves that no two tensors alive at once overlap and
 * that every tensor fits in arena_bytes, exactly the exporter's TS_EXPORT_ARENA_BYTES.
 *
 * Chains (no tensor table): the caller's arena holds two activation buffers at its two
 * ends; layer i reads from one end and writes to the other, so a layer needs align8(in) +
 * align8(out) bytes, and the arena the largest of those over the layers.
 *
 * Either way the first layer run reads the caller's input and the last writes the caller's
 * output directly (no copies).
 */
#include <string.h>

#include "ts_engine.h"
#include "ts_fixedpoint.h"
#include "ts_kernels.h"

/* Dimensions are bounded so that every size and index fits comfortably in int32. */
#define TS_MAX_DIM 32767
#define TS_MAX_ELEMS ((int64_t)1 << 26)
#define TS_MAX_SOFTMAX_DEPTH 511 /* keeps RoundingDivideByPOT's exponent <= 31 */
#define TS_MAX_MEAN_COUNT ((int64_t)1 << 23) /* h*w: 2^23 * 256 fits in int32 */
/* A graph's planned arena: align8(arena_bytes) plus the kernels' scratch (a few KiB) must
 * fit a 32-bit size_t, else ts_arena_size wraps to a few bytes on the target while the
 * tensor offsets still reach up to arena_bytes. */
#define TS_MAX_ARENA_BYTES ((uint32_t)1 << 31)

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
    if (!ts_acc_bound_ok(k, max_bias)) {
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

/* multiplier[i] >= 0 and shift[i] in [lo, hi] (the arrays are non-NULL and long enough). */
static ts_status_t check_mult(const ts_layer_t *l, uint32_t i, int32_t lo, int32_t hi) {
    if (l->multiplier == NULL || l->shift == NULL) {
        return TS_ERR_NULL;
    }
    if (l->multiplier[i] < 0 || l->shift[i] < lo || l->shift[i] > hi) {
        return TS_ERR_PARAM;
    }
    return TS_OK;
}

/* Does `d` broadcast to `out` (every dim equal, or 1)? */
static int broadcasts(ts_dims_t d, ts_dims_t out) {
    return dims_ok(d) && (d.h == out.h || d.h == 1) && (d.w == out.w || d.w == 1) &&
           (d.c == out.c || d.c == 1);
}

/* ADD / MUL: operands that broadcast, zero points, clamp, multipliers (ADD: the two input
 * multipliers are smaller than one, shift <= 0), and a constant operand's length. */
static ts_status_t check_binary(const ts_layer_t *l) {
    const uint32_t need = l->op == TS_OP_ADD ? 3u : 1u;
    uint32_t i;
    ts_status_t st;
    if (!broadcasts(l->in, l->out) || !broadcasts(l->in2, l->out)) {
        return TS_ERR_SHAPE;
    }
    if (!int8_range(l->input_zero_point) || !int8_range(l->input2_zero_point) ||
        !int8_range(l->output_zero_point) || !int8_range(l->act_min) ||
        !int8_range(l->act_max) || l->act_min > l->act_max) {
        return TS_ERR_PARAM;
    }
    if (l->quant_len != need) {
        return l->multiplier == NULL || l->shift == NULL ? TS_ERR_NULL : TS_ERR_SHAPE;
    }
    for (i = 0; i < need; ++i) {
        st = check_mult(l, i, -31, (l->op == TS_OP_ADD && i < 2u) ? 0 : 30);
        if (st != TS_OK) {
            return st;
        }
    }
    if (l->weights != NULL && (int64_t)l->weights_len != dims_count(l->in2)) {
        return TS_ERR_SHAPE;
    }
    return TS_OK;
}

/* One CONCATENATION input of dims d: equal to the output off the axis, no longer along it. */
static int concat_fits(const ts_layer_t *l, ts_dims_t d) {
    if (!dims_ok(d)) {
        return 0;
    }
    switch (l->axis) {
    case 0: return d.w == l->out.w && d.c == l->out.c && d.h <= l->out.h;
    case 1: return d.h == l->out.h && d.c == l->out.c && d.w <= l->out.w;
    default: return d.h == l->out.h && d.w == l->out.w && d.c <= l->out.c;
    }
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
    case TS_OP_ADD:
    case TS_OP_MUL:
        return check_binary(l);
    case TS_OP_MEAN:
        if (l->out.h != 1 || l->out.w != 1 || l->out.c != l->in.c) {
            return TS_ERR_SHAPE;
        }
        /* the sum of h*w int8 values minus zero points must fit in int32 */
        if (dims_count(l->in) / l->in.c > TS_MAX_MEAN_COUNT) {
            return TS_ERR_PARAM;
        }
        if (l->quant_len != 1u) {
            return TS_ERR_SHAPE;
        }
        if (!int8_range(l->input_zero_point) || !int8_range(l->output_zero_point)) {
            return TS_ERR_PARAM;
        }
        return check_mult(l, 0u, -31, 30);
    case TS_OP_PAD:
        if (l->pad_h < 0 || l->pad_w < 0 || l->pad_c < 0 || l->in.h + l->pad_h > l->out.h ||
            l->in.w + l->pad_w > l->out.w || l->in.c + l->pad_c > l->out.c) {
            return TS_ERR_SHAPE;
        }
        return int8_range(l->output_zero_point) ? TS_OK : TS_ERR_PARAM;
    case TS_OP_CONCATENATION:
        if (l->axis < 0 || l->axis > 2) {
            return TS_ERR_PARAM;
        }
        if (l->num_inputs < 1u || l->num_inputs > TS_MAX_INPUTS) {
            return TS_ERR_SHAPE;
        }
        return concat_fits(l, l->in) ? TS_OK : TS_ERR_SHAPE;
    case TS_OP_LOGISTIC:
        if (!dims_equal(l->in, l->out)) {
            return TS_ERR_SHAPE;
        }
        if (!int8_range(l->input_zero_point) || l->output_zero_point != -128 ||
            l->softmax_input_multiplier < 0 || l->softmax_input_left_shift < 0 ||
            l->softmax_input_left_shift > 30 || l->softmax_diff_min < 0) {
            return TS_ERR_PARAM;
        }
        return TS_OK;
    case TS_OP_HARD_SWISH:
        if (!dims_equal(l->in, l->out)) {
            return TS_ERR_SHAPE;
        }
        if (!int8_range(l->input_zero_point) || !int8_range(l->output_zero_point)) {
            return TS_ERR_PARAM;
        }
        if (l->multiplier == NULL || l->shift == NULL) {
            return TS_ERR_NULL;
        }
        if (l->quant_len != 2u) {
            return TS_ERR_SHAPE;
        }
        if (l->multiplier[0] < 0 || l->multiplier[0] > 32767 || l->multiplier[1] < 0 ||
            l->multiplier[1] > 32767 || l->shift[0] > 0 || l->shift[0] < -30 ||
            l->shift[1] < -30 || l->shift[1] > 15) {
            return TS_ERR_PARAM;
        }
        return TS_OK;
    default:
        return TS_ERR_UNSUPPORTED_OP;
    }
}

/* ---- the model: a chain, or a graph with its tensor plan ------------------------------------ */

static int is_graph(const ts_model_t *m) { return m->num_tensors != 0u; }

ts_dims_t ts_tensor_dims(const ts_model_t *model, uint32_t tensor) {
    return tensor == 0u ? model->input : model->layers[tensor - 1u].out;
}

/* Operands ADD / MUL take from tensors: 1 with a constant second operand, else 2. */
static uint32_t tensor_operands(const ts_layer_t *l) {
    if (l->op == TS_OP_ADD || l->op == TS_OP_MUL) {
        return l->weights != NULL ? 1u : 2u;
    }
    return l->op == TS_OP_CONCATENATION ? l->num_inputs : 1u;
}

/* Layer l's first input has dims d: equal, or (FULLY_CONNECTED, RESHAPE flatten) the same
 * element count. */
static int input_matches(const ts_layer_t *l, ts_dims_t d) {
    const int flat = l->op == TS_OP_FULLY_CONNECTED || l->op == TS_OP_RESHAPE;
    return flat ? dims_count(d) == dims_count(l->in) : dims_equal(d, l->in);
}

/* A chain: single-operand layers, each fed by its predecessor. */
static ts_status_t check_chain(const ts_model_t *model) {
    uint32_t i;
    for (i = 0; i < model->num_layers; ++i) {
        const ts_layer_t *l = &model->layers[i];
        if (tensor_operands(l) != 1u || l->op == TS_OP_CONCATENATION) {
            return TS_ERR_SHAPE;
        }
        if (i > 0 && !input_matches(l, model->layers[i - 1].out)) {
            return TS_ERR_SHAPE;
        }
    }
    return TS_OK;
}

/* Does layer l read tensor t? */
static int reads(const ts_layer_t *l, uint32_t t) {
    uint32_t k;
    for (k = 0; k < l->num_inputs && k < TS_MAX_INPUTS; ++k) {
        if (l->inputs[k] == t) {
            return 1;
        }
    }
    return 0;
}

/* A graph: every layer reads tensors produced before it, with the dims its op expects; every
 * tensor's last reader is right; the plan keeps each tensor inside the arena and apart from
 * every tensor alive at the same time. */
static ts_status_t check_graph(const ts_model_t *model) {
    const uint32_t n = model->num_layers;
    const ts_tensor_t *tt = model->tensors;
    uint32_t i, k, a, b;
    if (tt == NULL) {
        return TS_ERR_NULL;
    }
    if (model->num_tensors != n + 1u) {
        return TS_ERR_SHAPE;
    }
    if (model->arena_bytes > TS_MAX_ARENA_BYTES) {
        return TS_ERR_ARENA;
    }
    for (i = 0; i < n; ++i) {
        const ts_layer_t *l = &model->layers[i];
        if (l->num_inputs < 1u || l->num_inputs > TS_MAX_INPUTS ||
            l->num_inputs != tensor_operands(l)) {
            return TS_ERR_SHAPE;
        }
        for (k = 0; k < l->num_inputs; ++k) {
            const uint32_t t = l->inputs[k];
            if (t > i || tt[t].last_use < i || tt[t].last_use >= n) {
                return TS_ERR_SHAPE; /* not produced yet, or its lifetime ends too early */
            }
        }
        if (!input_matches(l, ts_tensor_dims(model, l->inputs[0]))) {
            return TS_ERR_SHAPE;
        }
        if ((l->op == TS_OP_ADD || l->op == TS_OP_MUL) && l->num_inputs == 2u &&
            !dims_equal(l->in2, ts_tensor_dims(model, l->inputs[1]))) {
            return TS_ERR_SHAPE;
        }
        if (l->op == TS_OP_CONCATENATION) {
            int64_t along = 0;
            for (k = 0; k < l->num_inputs; ++k) {
                const ts_dims_t d = ts_tensor_dims(model, l->inputs[k]);
                if (!concat_fits(l, d)) {
                    return TS_ERR_SHAPE;
                }
                along += l->axis == 0 ? d.h : (l->axis == 1 ? d.w : d.c);
            }
            if (along != (l->axis == 0 ? l->out.h : (l->axis == 1 ? l->out.w : l->out.c))) {
                return TS_ERR_SHAPE;
            }
        }
    }
    /* the model input and output are the caller's; every other tensor is planned */
    if (tt[0].offset != TS_TENSOR_EXTERNAL || tt[n].offset != TS_TENSOR_EXTERNAL ||
        tt[n].last_use != n || tt[0].last_use >= n ||
        !reads(&model->layers[tt[0].last_use], 0u)) {
        return TS_ERR_PARAM;
    }
    for (a = 1; a < n; ++a) {
        const uint64_t end = (uint64_t)tt[a].offset + (uint64_t)dims_count(model->layers[a - 1].out);
        if (tt[a].offset == TS_TENSOR_EXTERNAL || (tt[a].offset & 7u) != 0u ||
            end > model->arena_bytes) {
            return TS_ERR_ARENA;
        }
        if (tt[a].last_use < a || tt[a].last_use >= n ||
            !reads(&model->layers[tt[a].last_use], a)) {
            return TS_ERR_SHAPE;
        }
    }
    /* tensors a < b are alive together when b is produced (by layer b-1) before a's last
     * reader is done: then their bytes must not overlap */
    for (a = 1; a < n; ++a) {
        const uint64_t a0 = tt[a].offset, a1 = a0 + (uint64_t)dims_count(model->layers[a - 1].out);
        for (b = a + 1; b < n && b - 1u <= tt[a].last_use; ++b) {
            const uint64_t b0 = tt[b].offset;
            const uint64_t b1 = b0 + (uint64_t)dims_count(model->layers[b - 1].out);
            if (a0 < b1 && b0 < a1) {
                return TS_ERR_ARENA;
            }
        }
    }
    return TS_OK;
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
    /* layer 0's own dims first (ts_layer_check refuses them as TS_ERR_SHAPE too): the
     * element count input_matches compares would overflow int64 for absurd ones */
    if (!dims_ok(model->input) || !dims_ok(model->layers[0].in) ||
        !input_matches(&model->layers[0], model->input)) {
        return TS_ERR_SHAPE;
    }
    for (i = 0; i < model->num_layers; ++i) {
        const ts_status_t st = ts_layer_check(&model->layers[i]);
        if (st != TS_OK) {
            return st;
        }
    }
    return is_graph(model) ? check_graph(model) : check_chain(model);
}

/* Bytes of the activation tensors (a checked model): a graph's planned arena, a chain's two
 * ping-pong buffers. The kernels' scratch follows them. */
static size_t tensor_bytes(const ts_model_t *model) {
    size_t need = 0;
    uint32_t i;
    if (is_graph(model)) {
        return align8(model->arena_bytes);
    }
    for (i = 0; i < model->num_layers; ++i) {
        const ts_layer_t *l = &model->layers[i];
        const size_t n = align8(ts_layer_in_bytes(l)) + align8(ts_layer_out_bytes(l));
        need = n > need ? n : need;
    }
    return need;
}

/* The largest layer scratch of a checked model. */
static size_t scratch_bytes(const ts_model_t *model) {
    size_t need = 0;
    uint32_t i;
    for (i = 0; i < model->num_layers; ++i) {
        const size_t n = ts_layer_scratch_size(&model->layers[i]);
        need = n > need ? n : need;
    }
    return need;
}

size_t ts_scratch_size(const ts_model_t *model) {
    return ts_model_check(model) == TS_OK ? scratch_bytes(model) : 0u;
}

size_t ts_arena_size(const ts_model_t *model) {
    if (ts_model_check(model) != TS_OK) {
        return 0;
    }
    return tensor_bytes(model) + scratch_bytes(model);
}

int ts_layer_reads_previous(const ts_model_t *model, uint32_t layer) {
    const ts_layer_t *l;
    if (model == NULL || model->layers == NULL || layer >= model->num_layers) {
        return 0;
    }
    l = &model->layers[layer];
    if (!is_graph(model)) {
        return 1;
    }
    return l->num_inputs == 1u && l->inputs[0] == layer;
}

/* Graph: run [first, last); tensors read inside the range are the range's input (layer
 * first's first input: the caller's `input`) or produced inside it. */
static ts_status_t run_graph(const ts_model_t *model, uint32_t first, uint32_t last,
                             const int8_t *input, int8_t *output, uint8_t *arena,
                             void *scratch) {
    const uint32_t t_in = model->layers[first].inputs[0];
    const int8_t *ins[TS_MAX_INPUTS];
    ts_dims_t dims[TS_MAX_INPUTS];
    uint32_t i, k;
    for (i = first; i < last; ++i) {
        const ts_layer_t *l = &model->layers[i];
        for (k = 0; k < l->num_inputs; ++k) {
            if (l->inputs[k] != t_in && l->inputs[k] <= first) {
                return TS_ERR_PARAM; /* needs a tensor from before the range */
            }
        }
    }
    for (i = first; i < last; ++i) {
        const ts_layer_t *l = &model->layers[i];
        int8_t *dst = i + 1u == last ? output : (int8_t *)(arena + model->tensors[i + 1u].offset);
        ts_status_t st;
        for (k = 0; k < l->num_inputs; ++k) {
            const uint32_t t = l->inputs[k];
            ins[k] = t == t_in ? input : (const int8_t *)(arena + model->tensors[t].offset);
            dims[k] = ts_tensor_dims(model, t);
        }
        st = ts_run_layer_inputs(l, dims, ins, l->num_inputs, dst, scratch);
        if (st != TS_OK) {
            return st;
        }
    }
    return TS_OK;
}

/* Chain: ping-pong between the two ends of the tensor part of the arena (its first
 * `tensors` bytes). */
static ts_status_t run_chain(const ts_model_t *model, uint32_t first, uint32_t last,
                             const int8_t *input, int8_t *output, uint8_t *arena,
                             size_t tensors, void *scratch) {
    const int8_t *src = input;
    int high = 1; /* the next output goes to the high end of the arena */
    uint32_t i;
    for (i = first; i < last; ++i) {
        const ts_layer_t *l = &model->layers[i];
        int8_t *dst;
        ts_status_t st;
        if (i + 1u == last) {
            dst = output;
        } else if (high) {
            dst = (int8_t *)(arena + tensors - align8(ts_layer_out_bytes(l)));
        } else {
            dst = (int8_t *)arena;
        }
        st = ts_run_layer(l, src, dst, scratch);
        if (st != TS_OK) {
            return st;
        }
        src = dst;
        high = !high;
    }
    return TS_OK;
}

ts_status_t ts_run_layers(const ts_model_t *model, uint32_t first, uint32_t last,
                          const int8_t *input, int8_t *output, uint8_t *arena,
                          size_t arena_bytes) {
    void *scratch = NULL;
    size_t tensors, need;
    ts_status_t st = ts_model_check(model);
    if (st != TS_OK) {
        return st;
    }
    tensors = tensor_bytes(model);
    need = tensors + scratch_bytes(model);
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
        if (((uintptr_t)arena & 7u) != 0u || arena_bytes < need) {
            return TS_ERR_ARENA;
        }
    }
    /* the kernels' scratch: after the tensors (a single layer without a whole arena runs
     * the scalar kernels) */
    if (arena != NULL && ((uintptr_t)arena & 7u) == 0u && arena_bytes >= need && need > tensors) {
        scratch = arena + tensors;
    }
    return is_graph(model) ? run_graph(model, first, last, input, output, arena, scratch)
                           : run_chain(model, first, last, input, output, arena, tensors,
                                       scratch);
}

ts_status_t ts_invoke(const ts_model_t *model, const int8_t *input, int8_t *output,
                      uint8_t *arena, size_t arena_bytes) {
    if (model == NULL) {
        return TS_ERR_NULL;
    }
    return ts_run_layers(model, 0u, model->num_layers, input, output, arena, arena_bytes);
}

/* ---- the float edges ------------------------------------------------------------------------ */

/* std::round for float: half away from zero (exact for every float: the fraction of a float
 * below 2^23 is exact, and every float from 2^23 up is an integer). */
static float round_half_away(float x) {
    const float ax = x < 0.0f ? -x : x;
    float t;
    if (!(ax < 8388608.0f)) {
        return x; /* an integer already (or NaN) */
    }
    t = (float)(int32_t)ax;
    if (ax - t >= 0.5f) {
        t += 1.0f;
    }
    return x < 0.0f ? -t : t;
}

ts_status_t ts_quantize_input(const ts_model_t *model, const float *x, int8_t *q) {
    size_t i, n;
    if (model == NULL || x == NULL || q == NULL) {
        return TS_ERR_NULL;
    }
    if (!(model->input_scale > 0.0f) || !int8_range(model->input_zero_point)) {
        return TS_ERR_PARAM;
    }
    n = (size_t)dims_count(model->input);
    for (i = 0; i < n; ++i) {
        /* TFLM AffineQuantize: round(x / scale) + zero_point, saturated to int8 */
        float v = round_half_away(x[i] / model->input_scale);
        int32_t y;
        v = v > 1000.0f ? 1000.0f : (v < -1000.0f ? -1000.0f : v);
        y = v == v ? (int32_t)v + model->input_zero_point : model->input_zero_point;
        q[i] = (int8_t)ts_clamp_i32(y, -128, 127);
    }
    return TS_OK;
}

ts_status_t ts_dequantize_output(const ts_model_t *model, const int8_t *q, float *y) {
    size_t i, n;
    const ts_layer_t *last;
    if (model == NULL || q == NULL || y == NULL || model->layers == NULL) {
        return TS_ERR_NULL;
    }
    if (model->num_layers == 0u || !int8_range(model->output_zero_point)) {
        return TS_ERR_PARAM;
    }
    last = &model->layers[model->num_layers - 1u];
    n = (size_t)dims_count(last->out);
    for (i = 0; i < n; ++i) {
        /* TFLM Dequantize: (float)((double)scale * (q - zp)); the double product of a float
         * and a 9-bit integer is exact, so one float multiply rounds it identically */
        y[i] = (float)((int32_t)q[i] - model->output_zero_point) * model->output_scale;
    }
    return TS_OK;
}
