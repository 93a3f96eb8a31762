/*
 * libFuzzer harness for the engine's model validation (firmware/lib/tsengine): malformed layer
 * tables (chains, and graphs with their tensor tables) through ts_model_check, the executor
 * and the trainer's size rules, and malformed .tflite flatbuffers through the trainer's reader
 * of quantization parameters (ts_tflite.h). Built with clang -fsanitize=fuzzer,address,undefined
 * by tools/fuzz.sh: target `model` with the scalar kernels, `model-dsp` with TS_USE_DSP=1 (the
 * DSP kernels, their instructions emulated in C, and their scratch at the arena's end);
 * tests/test_fuzz_protocol.py runs both for a bounded time. See docs/engine.md and
 * docs/protocol.md ("Testing").
 *
 * Input: two bytes give the length L of the table part (the low 15 bits; the top bit of the
 * second byte asks for a graph); data[2 .. 2+L) builds a layer table, the rest is a .tflite.
 * The table builder makes a model that is valid by construction (shapes, windows, padding,
 * weight counts, quantization ranges) from a few bytes per layer, then lets the bytes corrupt
 * any field: near-valid tables are where validation bugs hide. A chain: each layer reads the
 * previous one's output (ops CONV_2D .. QUANTIZE). A graph (format version 2): every op,
 * each layer reading the previous output or an earlier tensor, ADD / MUL / CONCATENATION
 * reading several (residual and skip connections), and an arena plan that reuses the bytes
 * of tensors no longer alive (the exporter's rule); its corruptions reach the tensor table
 * and each layer's inputs too. Every array is an exactly-sized heap block, so a read or write
 * past its end is an ASan report. Properties:
 *   - a table ts_model_check accepts runs: ts_invoke and ts_run_layers on any range return
 *     TS_OK (TS_ERR_PARAM for a graph range that reads a tensor from before it) with an arena
 *     of ts_arena_size() bytes, TS_ERR_ARENA with one byte less;
 *   - its ts_invoke output equals a reference run of the same layers, each into a buffer of
 *     its own with the scalar kernels (so the arena plan, the chain's ping-pong buffers and,
 *     in `model-dsp`, the DSP kernels change nothing);
 *   - a table it refuses is refused by every entry point (nothing runs);
 *   - ts_trainer_sizes and the .tflite reader never crash, the trainer's sizes stay below
 *     TS_TRAINER_MAX_BYTES whatever the counts; the reader's values are finite.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_kernels.h"
#include "ts_tflite.h"
#include "ts_trainer.h"

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_model: property violated: %s (%s:%d)\n", #cond, __FILE__,     \
                    __LINE__);                                                                 \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#define MAX_LAYERS 6        /* a chain */
#define GRAPH_MAX_LAYERS 8  /* a graph */
#define ROWS (GRAPH_MAX_LAYERS + 2u) /* room for a corrupted count */
#define MAX_MACS 400000

typedef struct {
    const uint8_t *p;
    size_t n, at;
} reader_t;

static uint8_t u8(reader_t *r)
{
    return r->at < r->n ? r->p[r->at++] : 0u;
}

static int32_t i32(reader_t *r)
{
    uint32_t v = 0;
    int k;
    for (k = 0; k < 4; ++k) {
        v = (v << 8) | u8(r);
    }
    return (int32_t)v;
}

/* Heap blocks of one input, freed at the end. */
static void *g_blocks[16 * ROWS + 16];
static size_t g_nblocks;

static void *block(size_t bytes)
{
    void *p = malloc(bytes > 0 ? bytes : 1u);
    CHECK(p != NULL && g_nblocks < sizeof g_blocks / sizeof g_blocks[0]);
    g_blocks[g_nblocks++] = p;
    return p;
}

static void free_blocks(void)
{
    while (g_nblocks > 0) {
        free(g_blocks[--g_nblocks]);
    }
}

static int64_t count(ts_dims_t d)
{
    return (int64_t)d.h * d.w * d.c;
}

static int32_t out_size(int same, int32_t in, int32_t f, int32_t s, int32_t dil)
{
    int32_t eff = (f - 1) * dil + 1;
    return same ? (in + s - 1) / s : (in + s - eff) / s;
}

static int16_t same_pad(int32_t in, int32_t f, int32_t s, int32_t dil, int32_t out)
{
    int32_t total = (out - 1) * s + (f - 1) * dil + 1 - in;
    return (int16_t)(total > 0 ? total / 2 : 0);
}

/* Quantization arrays: multipliers in [0, 2^31), shifts in [-31, 30]. */
static void quant(reader_t *r, ts_layer_t *l, uint32_t channels)
{
    int32_t *mult, *shift, *bias;
    uint32_t i, n = (u8(r) & 1u) ? channels : 1u;
    mult = block(n * sizeof *mult);
    shift = block(n * sizeof *shift);
    for (i = 0; i < n; ++i) {
        mult[i] = (int32_t)((uint32_t)i32(r) & 0x7FFFFFFFu);
        shift[i] = (int32_t)(u8(r) % 62u) - 31;
    }
    l->multiplier = mult;
    l->shift = shift;
    l->quant_len = n;
    if (u8(r) & 1u) {
        bias = block(channels * sizeof *bias);
        for (i = 0; i < channels; ++i) {
            bias[i] = (int32_t)(i32(r) >> (u8(r) % 24u));
        }
        l->bias = bias;
        l->bias_len = channels;
    }
    l->input_zero_point = (int8_t)u8(r);
    l->output_zero_point = (int8_t)u8(r);
    l->act_min = -128 + (u8(r) & 0x3F);
    l->act_max = 127 - (u8(r) & 0x3F);
}

static void weights(reader_t *r, ts_layer_t *l, int64_t n)
{
    int8_t *w = block((size_t)n);
    int64_t i;
    uint8_t seed = u8(r);
    for (i = 0; i < n; ++i) {
        w[i] = (int8_t)(seed + 37u * (uint32_t)i);
    }
    l->weights = w;
    l->weights_len = (uint32_t)n;
}

/* Multiplier and shift arrays of n entries, the shifts in [lo, hi] (ADD, MUL, HARD_SWISH). */
static void mults(reader_t *r, ts_layer_t *l, uint32_t n, const int32_t *lo, const int32_t *hi,
                  int32_t max_mult)
{
    int32_t *mult = block(n * sizeof *mult), *shift = block(n * sizeof *shift);
    uint32_t i;
    for (i = 0; i < n; ++i) {
        mult[i] = (int32_t)((uint32_t)i32(r) % ((uint32_t)max_mult + 1u));
        shift[i] = lo[i] + (int32_t)(u8(r) % (uint32_t)(hi[i] - lo[i] + 1));
    }
    l->multiplier = mult;
    l->shift = shift;
    l->quant_len = n;
}

/* A layer `op` on input `in`, valid by construction, or 0 when the shape cannot take it.
 * graph: also MEAN as the engine runs it (a chain keeps the table its seeds were made for). */
static int build_op(reader_t *r, ts_layer_t *l, ts_dims_t in, uint8_t op, int graph)
{
    memset(l, 0, sizeof *l);
    l->op = op;
    l->in = in;
    l->out = in;
    l->act_min = -128;
    l->act_max = 127;
    switch (op) {
    case TS_OP_CONV_2D:
    case TS_OP_DEPTHWISE_CONV_2D:
    case TS_OP_AVERAGE_POOL_2D:
    case TS_OP_MAX_POOL_2D: {
        int pool = op == TS_OP_AVERAGE_POOL_2D || op == TS_OP_MAX_POOL_2D;
        int same = u8(r) & 1u;
        uint8_t fh = (uint8_t)(1u + u8(r) % 3u), fw = (uint8_t)(1u + u8(r) % 3u);
        uint8_t sh = (uint8_t)(1u + u8(r) % 2u), sw = (uint8_t)(1u + u8(r) % 2u);
        uint8_t dh = pool ? 1u : (uint8_t)(1u + u8(r) % 2u);
        uint8_t dw = pool ? 1u : (uint8_t)(1u + u8(r) % 2u);
        l->padding = same ? TS_PAD_SAME : TS_PAD_VALID;
        l->filter_h = fh;
        l->filter_w = fw;
        l->stride_h = sh;
        l->stride_w = sw;
        l->dilation_h = pool ? 0u : dh;
        l->dilation_w = pool ? 0u : dw;
        l->out.h = out_size(same, in.h, fh, sh, dh);
        l->out.w = out_size(same, in.w, fw, sw, dw);
        if (l->out.h < 1 || l->out.w < 1) {
            return 0;
        }
        l->pad_h = same_pad(in.h, fh, sh, dh, l->out.h);
        l->pad_w = same_pad(in.w, fw, sw, dw, l->out.w);
        if (op == TS_OP_CONV_2D) {
            l->out.c = 1 + u8(r) % 8u;
            weights(r, l, (int64_t)fh * fw * in.c * l->out.c);
            quant(r, l, (uint32_t)l->out.c);
        } else if (op == TS_OP_DEPTHWISE_CONV_2D) {
            l->depth_multiplier = (uint16_t)(1u + u8(r) % 2u);
            l->out.c = in.c * l->depth_multiplier;
            weights(r, l, (int64_t)fh * fw * l->out.c);
            quant(r, l, (uint32_t)l->out.c);
        }
        return 1;
    }
    case TS_OP_FULLY_CONNECTED:
        l->out.h = l->out.w = 1;
        l->out.c = 1 + u8(r) % 12u;
        weights(r, l, count(in) * l->out.c);
        quant(r, l, (uint32_t)l->out.c);
        return 1;
    case TS_OP_RESHAPE:
        l->out.h = l->out.w = 1;
        l->out.c = (int32_t)count(in);
        return 1;
    case TS_OP_SOFTMAX:
        l->output_zero_point = -128;
        l->softmax_input_multiplier = (int32_t)((uint32_t)i32(r) & 0x7FFFFFFFu);
        l->softmax_input_left_shift = u8(r) % 32u;
        l->softmax_diff_min = -(int32_t)((uint32_t)i32(r) & 0x7FFFFFFFu);
        return 1;
    case TS_OP_QUANTIZE: {
        int32_t *mult = block(sizeof *mult), *shift = block(sizeof *shift);
        mult[0] = (int32_t)((uint32_t)i32(r) & 0x7FFFFFFFu);
        shift[0] = (int32_t)(u8(r) % 62u) - 31;
        l->multiplier = mult;
        l->shift = shift;
        l->quant_len = 1;
        l->input_zero_point = (int8_t)u8(r);
        l->output_zero_point = (int8_t)u8(r);
        return 1;
    }
    case TS_OP_MEAN:
        if (!graph) { /* left as the chain's seeds have it: refused unless corrupted */
            return 1;
        }
        l->out.h = l->out.w = 1;
        if (u8(r) & 1u) {
            static const int32_t lo[1] = {-31}, hi[1] = {30};
            mults(r, l, 1u, lo, hi, 0x7FFFFFFF);
            l->input_zero_point = (int8_t)u8(r);
            l->output_zero_point = (int8_t)u8(r);
        }
        return 1;
    case TS_OP_PAD: {
        uint8_t b = u8(r);
        l->pad_h = (int16_t)(b & 3u);
        l->pad_w = (int16_t)(b >> 2 & 3u);
        l->pad_c = (int16_t)(b >> 4 & 3u);
        l->out.h = in.h + l->pad_h + (b >> 6 & 1u);
        l->out.w = in.w + l->pad_w + (b >> 7 & 1u);
        l->out.c = in.c + l->pad_c + (u8(r) & 1u);
        l->output_zero_point = (int8_t)u8(r);
        return 1;
    }
    case TS_OP_LOGISTIC:
        l->input_zero_point = (int8_t)u8(r);
        l->output_zero_point = -128;
        l->softmax_input_multiplier = (int32_t)((uint32_t)i32(r) & 0x7FFFFFFFu);
        l->softmax_input_left_shift = u8(r) % 31u;
        l->softmax_diff_min = (int32_t)((uint32_t)i32(r) & 0x7FFFFFFFu);
        return 1;
    case TS_OP_HARD_SWISH: {
        static const int32_t lo[2] = {-30, -30}, hi[2] = {0, 15};
        mults(r, l, 2u, lo, hi, 32767);
        l->input_zero_point = (int8_t)u8(r);
        l->output_zero_point = (int8_t)u8(r);
        return 1;
    }
    default: /* ADD, MUL, CONCATENATION: build_graph_layer, which knows the tensors */
        return 0;
    }
}

/* A valid chain layer on input `in` (op from the bytes), or 0 when the shape cannot take it. */
static int build_layer(reader_t *r, ts_layer_t *l, ts_dims_t in)
{
    uint8_t op = (uint8_t)(1u + u8(r) % 9u);
    return build_op(r, l, in, op, 0);
}

static void resize_weights(ts_layer_t *l, uint32_t n)
{
    int8_t *w;
    if (l->weights == NULL) {
        l->weights_len = n; /* a NULL array with a length: refused as NULL */
        return;
    }
    w = block(n);
    memset(w, 1, n);
    memcpy(w, l->weights, n < l->weights_len ? n : l->weights_len);
    l->weights = w;
    l->weights_len = n;
}

static void resize_bias(ts_layer_t *l, uint32_t n)
{
    int32_t *b;
    uint32_t i;
    if (l->bias == NULL) {
        l->bias_len = n;
        return;
    }
    b = block(n * sizeof *b);
    for (i = 0; i < n; ++i) {
        b[i] = i < l->bias_len ? l->bias[i] : 0;
    }
    l->bias = b;
    l->bias_len = n;
}

static void resize_quant(ts_layer_t *l, uint32_t n)
{
    int32_t *mult, *shift;
    uint32_t i;
    if (l->multiplier == NULL || l->shift == NULL) {
        l->quant_len = n;
        return;
    }
    mult = block(n * sizeof *mult);
    shift = block(n * sizeof *shift);
    for (i = 0; i < n; ++i) {
        mult[i] = i < l->quant_len ? l->multiplier[i] : 1 << 30;
        shift[i] = i < l->quant_len ? l->shift[i] : 0;
    }
    l->multiplier = mult;
    l->shift = shift;
    l->quant_len = n;
}

/* One field of the table set to a value from the bytes. */
static void corrupt(reader_t *r, ts_model_t *m, ts_layer_t *layers)
{
    ts_layer_t *l = &layers[u8(r) % (m->num_layers > 0u ? m->num_layers : 1u)];
    int32_t v = i32(r);
    switch (u8(r) % 24u) {
    case 0: l->op = (uint8_t)v; break;
    case 1: l->padding = (uint8_t)v; break;
    case 2: l->stride_h = (uint8_t)v; break;
    case 3: l->dilation_w = (uint8_t)v; break;
    case 4: l->filter_h = (uint8_t)v; break;
    case 5: l->depth_multiplier = (uint16_t)v; break;
    case 6: l->pad_h = (int16_t)v; break;
    case 7: l->in.h = v % 64; break;
    case 8: l->in.c = v % 64; break;
    case 9: l->out.w = v % 64; break;
    case 10: l->out.c = v; break;
    case 11: l->input_zero_point = v; break;
    case 12: l->act_max = v; break;
    /* A length that does not fit the layer, with an array of that length: the table's
     * lengths are its arrays' sizes (the exporter writes both), the engine checks them
     * against the shapes and cannot check them against the memory. */
    case 13: resize_weights(l, l->weights_len + (uint32_t)(v & 3)
                                   - (l->weights_len < 4u ? 0u : (uint32_t)(v >> 2 & 3))); break;
    case 14: resize_bias(l, (uint32_t)v % 16u); break;
    case 15: resize_quant(l, (uint32_t)v % 16u); break;
    case 16: l->weights = NULL; break;
    case 17: l->multiplier = NULL; break;
    case 18: l->softmax_input_left_shift = v; break;
    case 19: l->softmax_diff_min = v; break;
    case 20: m->num_layers = (uint32_t)v % (MAX_LAYERS + 2u); break;
    case 21: m->format_version = (uint32_t)v; break;
    case 22: m->input.w = v % 64; break;
    default: l->output_zero_point = v; break;
    }
}

/* ---- graphs (format version 2) ------------------------------------------------------------ */

static ts_tensor_t *g_tensors; /* the model's tensor table (ROWS + 1 entries) */

static ts_dims_t tensor_dims(const ts_model_t *m, uint32_t t)
{
    return t == 0u ? m->input : m->layers[t - 1u].out;
}

/* Do a and b broadcast against each other (every dim equal, or one of them 1)? */
static int broadcastable(ts_dims_t a, ts_dims_t b)
{
    return (a.h == b.h || a.h == 1 || b.h == 1) && (a.w == b.w || a.w == 1 || b.w == 1) &&
           (a.c == b.c || a.c == 1 || b.c == 1);
}

static int32_t max32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

/* ADD / MUL reading tensor t0 (layer i): a constant second operand whose dims broadcast to
 * t0's, or a second tensor (an earlier one whose dims broadcast against t0's; t0 itself
 * otherwise). */
static void build_binary(reader_t *r, ts_model_t *m, ts_layer_t *l, uint32_t i, uint32_t t0,
                         uint8_t op)
{
    static const int32_t add_lo[3] = {-31, -31, -31}, add_hi[3] = {0, 0, 30};
    static const int32_t mul_lo[1] = {-31}, mul_hi[1] = {30};
    const ts_dims_t in = tensor_dims(m, t0);
    const uint8_t b = u8(r);
    memset(l, 0, sizeof *l);
    l->op = op;
    l->in = in;
    l->out = in;
    l->num_inputs = 1;
    l->inputs[0] = (uint16_t)t0;
    if (b & 1u) {
        const ts_dims_t d2 = {(b & 2u) ? 1 : in.h, (b & 4u) ? 1 : in.w, (b & 8u) ? 1 : in.c};
        l->in2 = d2;
        weights(r, l, count(d2));
    } else {
        uint32_t t1 = u8(r) % (i + 1u);
        ts_dims_t d1 = tensor_dims(m, t1);
        if (!broadcastable(in, d1)) {
            t1 = t0;
            d1 = in;
        }
        l->in2 = d1;
        l->out.h = max32(in.h, d1.h);
        l->out.w = max32(in.w, d1.w);
        l->out.c = max32(in.c, d1.c);
        l->num_inputs = 2;
        l->inputs[1] = (uint16_t)t1;
    }
    if (op == TS_OP_ADD) {
        mults(r, l, 3u, add_lo, add_hi, 0x7FFFFFFF);
    } else {
        mults(r, l, 1u, mul_lo, mul_hi, 0x7FFFFFFF);
    }
    l->input_zero_point = (int8_t)u8(r);
    l->input2_zero_point = (int8_t)u8(r);
    l->output_zero_point = (int8_t)u8(r);
    l->act_min = -128 + (u8(r) & 0x3F);
    l->act_max = 127 - (u8(r) & 0x3F);
}

/* CONCATENATION of tensor t0 and up to three more (earlier ones that fit along the axis; t0
 * again otherwise). */
static void build_concat(reader_t *r, ts_model_t *m, ts_layer_t *l, uint32_t i, uint32_t t0)
{
    const ts_dims_t in = tensor_dims(m, t0);
    const int32_t axis = (int32_t)(u8(r) % 3u);
    const uint32_t k = 1u + u8(r) % 4u;
    uint32_t j;
    memset(l, 0, sizeof *l);
    l->op = TS_OP_CONCATENATION;
    l->in = in;
    l->out = in;
    l->axis = axis;
    l->act_min = -128;
    l->act_max = 127;
    l->num_inputs = (uint16_t)k;
    l->inputs[0] = (uint16_t)t0;
    for (j = 1; j < k; ++j) {
        uint32_t t = u8(r) % (i + 1u);
        ts_dims_t d = tensor_dims(m, t);
        const int fits = axis == 0   ? d.w == in.w && d.c == in.c
                         : axis == 1 ? d.h == in.h && d.c == in.c
                                     : d.h == in.h && d.w == in.w;
        if (!fits) {
            t = t0;
            d = in;
        }
        l->inputs[j] = (uint16_t)t;
        l->out.h += axis == 0 ? d.h : 0;
        l->out.w += axis == 1 ? d.w : 0;
        l->out.c += axis == 2 ? d.c : 0;
    }
}

/* A graph of up to n layers into layers[] and g_tensors, valid by construction: layer i reads
 * the previous output (now and then an earlier tensor instead), any op; then the exporter's
 * kind of arena plan: each activation tensor at the lowest 8-aligned offset that overlaps no
 * tensor alive at the same time (the engine's rule: a < b are alive together when layer b - 1
 * runs before a's last reader is done). Returns the layers built. */
static uint32_t build_graph(reader_t *r, ts_model_t *m, ts_layer_t *layers, uint32_t n)
{
    uint32_t last_use[ROWS + 1u];
    uint32_t i, k, a, b;
    uint64_t arena = 0;
    for (i = 0; i < n; ++i) {
        const uint8_t sel = u8(r);
        const uint32_t t0 = (i > 0u && (sel & 7u) == 0u) ? u8(r) % i : i;
        const uint8_t op = (uint8_t)(1u + (sel >> 3) % 15u);
        ts_layer_t *l = &layers[i];
        m->num_layers = i; /* tensor_dims reads layers [0, i) */
        if (op == TS_OP_ADD || op == TS_OP_MUL) {
            build_binary(r, m, l, i, t0, op);
        } else if (op == TS_OP_CONCATENATION) {
            build_concat(r, m, l, i, t0);
        } else {
            if (!build_op(r, l, tensor_dims(m, t0), op, 1)) {
                break;
            }
            l->num_inputs = 1;
            l->inputs[0] = (uint16_t)t0;
        }
    }
    n = i > 0u ? i : 1u;
    m->num_layers = n;
    for (a = 0; a <= n; ++a) {
        last_use[a] = a; /* no reader: refused (a tensor nobody reads has no place) */
    }
    for (i = 0; i < n; ++i) {
        for (k = 0; k < layers[i].num_inputs; ++k) {
            last_use[layers[i].inputs[k]] = i;
        }
    }
    g_tensors[0].offset = TS_TENSOR_EXTERNAL;
    g_tensors[0].last_use = last_use[0];
    g_tensors[n].offset = TS_TENSOR_EXTERNAL;
    g_tensors[n].last_use = n;
    for (a = 1; a < n; ++a) {
        const uint64_t size = (uint64_t)count(layers[a - 1u].out);
        uint64_t off = 0;
        int moved = 1;
        while (moved) {
            moved = 0;
            for (b = 1; b < a; ++b) {
                const uint64_t b0 = g_tensors[b].offset;
                const uint64_t b1 = b0 + (uint64_t)count(layers[b - 1u].out);
                if (a - 1u <= last_use[b] && off < b1 && b0 < off + size) {
                    off = (b1 + 7u) & ~(uint64_t)7u;
                    moved = 1;
                }
            }
        }
        g_tensors[a].offset = (uint32_t)off;
        g_tensors[a].last_use = last_use[a];
        arena = off + size > arena ? off + size : arena;
    }
    m->num_tensors = n + 1u;
    m->tensors = g_tensors;
    m->arena_bytes = (uint32_t)arena + (u8(r) & 8u);
    return n;
}

/* One field of a graph set to a value from the bytes: its tensor table, a layer's inputs and
 * graph-only parameters, or (half the time) any field corrupt() reaches. */
static void corrupt_graph(reader_t *r, ts_model_t *m, ts_layer_t *layers)
{
    const uint32_t n = m->num_layers > 0u ? m->num_layers : 1u;
    ts_layer_t *l = &layers[u8(r) % n];
    ts_tensor_t *t = &g_tensors[u8(r) % (n + 1u)];
    const int32_t v = i32(r);
    switch (u8(r) % 20u) {
    case 0: l->inputs[(uint32_t)v % TS_MAX_INPUTS] = (uint16_t)((uint32_t)v >> 8) % (n + 2u);
        break;
    case 1: l->num_inputs = (uint16_t)((uint32_t)v % (TS_MAX_INPUTS + 2u)); break;
    case 2: t->offset = (v & 1) ? (uint32_t)v : t->offset + (uint32_t)(v >> 1) % 17u - 8u;
        break;
    case 3: t->last_use = (uint32_t)v % (n + 2u); break;
    case 4: m->arena_bytes = (v & 1) ? (uint32_t)v : m->arena_bytes - (uint32_t)(v >> 1 & 15);
        break;
    case 5: m->num_tensors = (uint32_t)v % (ROWS + 2u); break;
    case 6: l->in2.h = v % 8; break;
    case 7: l->in2.c = v % 8; break;
    case 8: l->axis = v % 4; break;
    case 9: l->pad_c = (int16_t)(v % 8); break;
    case 10: /* on another planned tensor's bytes: refused unless their lifetimes are apart */
        t->offset = g_tensors[1u + (uint32_t)v % (n > 1u ? n - 1u : 1u)].offset;
        break;
    default: corrupt(r, m, layers); break;
    }
}

static uint32_t total_macs(const ts_model_t *m)
{
    uint64_t sum = 0;
    uint32_t i;
    for (i = 0; i < m->num_layers; ++i) {
        sum += ts_layer_macs(&m->layers[i]);
    }
    return sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}

/* What ts_run_layers answers for [first, last) of a checked model: a graph's range must not
 * read a tensor from before it other than its input. */
static ts_status_t range_status(const ts_model_t *m, uint32_t first, uint32_t last)
{
    uint32_t i, k, t_in;
    if (m->num_tensors == 0u) {
        return TS_OK;
    }
    t_in = m->layers[first].inputs[0];
    for (i = first; i < last; ++i) {
        for (k = 0; k < m->layers[i].num_inputs; ++k) {
            if (m->layers[i].inputs[k] != t_in && m->layers[i].inputs[k] <= first) {
                return TS_ERR_PARAM;
            }
        }
    }
    return TS_OK;
}

/* The output of a checked model computed layer by layer, every tensor in a block of its own,
 * with the scalar kernels (CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED called by name:
 * under TS_USE_DSP the dispatcher would pick the DSP ones). */
static const int8_t *reference_run(const ts_model_t *m, const int8_t *x)
{
    const int8_t *bufs[ROWS + 1u];
    uint32_t i, k;
    bufs[0] = x;
    for (i = 0; i < m->num_layers; ++i) {
        const ts_layer_t *l = &m->layers[i];
        const uint32_t nin = m->num_tensors != 0u ? l->num_inputs : 1u;
        const int8_t *ins[TS_MAX_INPUTS];
        ts_dims_t dims[TS_MAX_INPUTS];
        int8_t *y = block((size_t)count(l->out));
        for (k = 0; k < nin; ++k) {
            const uint32_t t = m->num_tensors != 0u ? l->inputs[k] : i;
            ins[k] = bufs[t];
            dims[k] = tensor_dims(m, t);
        }
        switch (l->op) {
        case TS_OP_CONV_2D: ts_conv2d_s8_ref(l, ins[0], y); break;
        case TS_OP_DEPTHWISE_CONV_2D: ts_depthwise_conv2d_s8_ref(l, ins[0], y); break;
        case TS_OP_FULLY_CONNECTED: ts_fully_connected_s8_ref(l, ins[0], y); break;
        default: CHECK(ts_run_layer_inputs(l, dims, ins, nin, y, NULL) == TS_OK); break;
        }
        bufs[i + 1u] = y;
    }
    return bufs[m->num_layers];
}

static void run_table(reader_t *r, ts_model_t *m)
{
    ts_status_t st = ts_model_check(m);
    size_t arena_bytes = ts_arena_size(m);
    uint32_t first, last;
    int8_t *in, *out;
    uint8_t *arena;
    int64_t n_in, n_out;
    if (st != TS_OK) {
        int8_t tiny[8] = {0};
        uint8_t small_arena[16];
        CHECK(arena_bytes == 0);
        CHECK(ts_invoke(m, tiny, tiny, small_arena, sizeof small_arena) == st);
        CHECK(ts_run_layers(m, 0, 1, tiny, tiny, small_arena, sizeof small_arena) == st);
        return;
    }
    /* a graph of one layer plans no tensor (its input and output are the caller's) */
    CHECK(arena_bytes > 0 || (m->num_tensors != 0u && m->num_layers == 1u));
    if (total_macs(m) > MAX_MACS || arena_bytes > (1u << 20)) {
        return;
    }
    first = u8(r) % m->num_layers;
    last = first + 1u + u8(r) % (m->num_layers - first);
    n_in = count(m->layers[first].in);
    n_out = count(m->layers[last - 1u].out);
    in = block((size_t)n_in);
    out = block((size_t)n_out);
    arena = block(arena_bytes); /* malloc: 16-byte aligned */
    if (m->num_tensors == 0u) {
        memset(in, (int)u8(r), (size_t)n_in); /* as the chain's seeds were made */
    } else {
        const uint8_t seed = u8(r);
        int64_t j;
        for (j = 0; j < n_in; ++j) {
            in[j] = (int8_t)(seed + (uint8_t)(j * j * 7 + j * 31));
        }
    }
    CHECK(ts_run_layers(m, first, last, in, out, arena, arena_bytes) == range_status(m, first, last));
    if (last - first > 1u) {
        CHECK(ts_run_layers(m, first, last, in, out, arena, arena_bytes - 1u) == TS_ERR_ARENA);
    }
    if (first == 0 && last == m->num_layers) {
        CHECK(ts_invoke(m, in, out, arena, arena_bytes) == TS_OK);
        CHECK(memcmp(out, reference_run(m, in), (size_t)n_out) == 0);
    }
}

static void trainer_sizes(reader_t *r, ts_model_t *m)
{
    ts_trainer_sizes_t sz;
    uint32_t u;
    m->head_layer = u8(r) % (m->num_layers + 1u);
    m->feature_dim = u8(r);
    m->num_classes = u8(r) % 16u;
    for (u = 0; u < 4u; ++u) {
        ts_status_t st = ts_trainer_sizes(m, u, &sz);
        if (st == TS_OK) {
            CHECK(u <= 2u);
            CHECK(sz.first_layer <= m->head_layer);
            CHECK(sz.workspace_bytes < TS_TRAINER_MAX_BYTES);
        }
        (void)ts_trainer_cache_bytes(m, u, 3, 2);
        CHECK(ts_trainer_cache_bytes(m, u, 0xFFFFFFFFu, 0xFFFFFFFFu) < TS_TRAINER_MAX_BYTES);
    }
}

static void read_tflite(const uint8_t *tfl, size_t n, const ts_model_t *m)
{
    uint32_t ops = 0, i;
    float scales[16];
    uint8_t *copy = block(n); /* exact size: any read past n is an ASan report */
    memcpy(copy, tfl, n);
    if (ts_tflite_num_ops(copy, n, &ops) != TS_OK) {
        return;
    }
    for (i = 0; i < ops && i < 16u; ++i) {
        ts_tflite_op_t op;
        uint32_t k;
        if (ts_tflite_op(copy, n, i, &op, scales, 16u) != TS_OK) {
            continue;
        }
        CHECK(isfinite(op.input_scale) && op.input_scale > 0.0f);
        CHECK(isfinite(op.output_scale) && op.output_scale > 0.0f);
        CHECK(op.weight_scales <= 16u);
        for (k = 0; k < op.weight_scales; ++k) {
            CHECK(isfinite(scales[k]) && scales[k] > 0.0f);
        }
    }
    (void)ts_tflite_check_model(copy, n, m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ts_layer_t *layers;
    ts_model_t m;
    reader_t r;
    ts_dims_t in;
    size_t table_len;
    uint32_t i, n, corruptions;
    int graph;
    if (size < 2u) {
        return 0;
    }
    /* (the chain seeds, made before graphs, have a second byte below 0x80) */
    graph = (data[1] & 0x80u) != 0u;
    table_len = ((size_t)data[0] | (size_t)(data[1] & 0x7Fu) << 8) % (size - 1u);
    r.p = data + 2;
    r.n = table_len;
    r.at = 0;

    n = 1u + u8(&r) % (graph ? GRAPH_MAX_LAYERS : MAX_LAYERS);
    layers = block(sizeof *layers * ROWS); /* room for a corrupted count */
    memset(layers, 0, sizeof *layers * ROWS);
    g_tensors = block(sizeof *g_tensors * (ROWS + 1u)); /* any num_tensors a corruption sets */
    memset(g_tensors, 0, sizeof *g_tensors * (ROWS + 1u));
    in.h = 1 + u8(&r) % 12u;
    in.w = 1 + u8(&r) % 12u;
    in.c = 1 + u8(&r) % 4u;
    memset(&m, 0, sizeof m);
    m.format_version = TS_FORMAT_VERSION;
    m.input = in;
    m.layers = layers;
    if (graph) {
        build_graph(&r, &m, layers, n);
    } else {
        for (i = 0; i < n; ++i) {
            if (!build_layer(&r, &layers[i], in)) {
                break;
            }
            in = layers[i].out;
        }
        m.num_layers = i > 0 ? i : 1u;
    }
    corruptions = u8(&r) % 4u;
    for (i = 0; i < corruptions; ++i) {
        if (graph) {
            corrupt_graph(&r, &m, layers);
        } else {
            corrupt(&r, &m, layers);
        }
    }
    if (m.num_layers > MAX_LAYERS) { /* the table has ROWS rows */
        m.num_layers = graph ? (m.num_layers > ROWS ? ROWS : m.num_layers) : MAX_LAYERS + 2u;
    }
    run_table(&r, &m);
    trainer_sizes(&r, &m);
    read_tflite(data + 2 + table_len, size - 2u - table_len, &m);
    free_blocks();
    return 0;
}
