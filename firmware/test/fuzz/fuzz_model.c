/*
 * libFuzzer harness for the engine's model validation (firmware/lib/tsengine): malformed layer
 * tables through ts_model_check, the executor and the trainer's size rules, and malformed
 * .tflite flatbuffers through the trainer's reader of quantization parameters (ts_tflite.h).
 * Built with clang -fsanitize=fuzzer,address,undefined by tools/fuzz.sh (target `model`);
 * tests/test_fuzz_protocol.py runs it for a bounded time. See docs/engine.md and
 * docs/protocol.md ("Testing").
 *
 * Input: two bytes give the length L of the table part; data[2 .. 2+L) builds a layer table,
 * the rest is a .tflite. The table builder makes a chain of layers that is valid by
 * construction (shapes, windows, padding, weight counts, quantization ranges) from a few
 * bytes per layer, then lets the bytes corrupt any field: near-valid tables are where
 * validation bugs hide. Every array is an exactly-sized heap block, so a read or write past
 * its end is an ASan report. Properties:
 *   - a table ts_model_check accepts runs: ts_invoke and ts_run_layers on any range return
 *     TS_OK with an arena of ts_arena_size() bytes, TS_ERR_ARENA with one byte less;
 *   - a table it refuses is refused by every entry point (nothing runs);
 *   - ts_trainer_sizes and the .tflite reader never crash; the reader's values are finite.
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

#define MAX_LAYERS 6
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
static void *g_blocks[8 * MAX_LAYERS + 8];
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

/* A valid layer on input `in` (op from the bytes), or 0 when the shape cannot take it. */
static int build_layer(reader_t *r, ts_layer_t *l, ts_dims_t in)
{
    uint8_t op = (uint8_t)(1u + u8(r) % 9u);
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
    default: /* MEAN: not run by this engine */
        return 1;
    }
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

static uint32_t total_macs(const ts_model_t *m)
{
    uint64_t sum = 0;
    uint32_t i;
    for (i = 0; i < m->num_layers; ++i) {
        sum += ts_layer_macs(&m->layers[i]);
    }
    return sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
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
    CHECK(arena_bytes > 0);
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
    memset(in, (int)u8(r), (size_t)n_in);
    CHECK(ts_run_layers(m, first, last, in, out, arena, arena_bytes) == TS_OK);
    if (last - first > 1u) {
        CHECK(ts_run_layers(m, first, last, in, out, arena, arena_bytes - 1u) == TS_ERR_ARENA);
    }
    if (first == 0 && last == m->num_layers) {
        CHECK(ts_invoke(m, in, out, arena, arena_bytes) == TS_OK);
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
        }
        (void)ts_trainer_cache_bytes(m, u, 3, 2);
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
    if (size < 2u) {
        return 0;
    }
    table_len = ((size_t)data[0] | (size_t)data[1] << 8) % (size - 1u);
    r.p = data + 2;
    r.n = table_len;
    r.at = 0;

    n = 1u + u8(&r) % MAX_LAYERS;
    layers = block(sizeof *layers * (MAX_LAYERS + 2u)); /* room for a corrupted count */
    memset(layers, 0, sizeof *layers * (MAX_LAYERS + 2u));
    in.h = 1 + u8(&r) % 12u;
    in.w = 1 + u8(&r) % 12u;
    in.c = 1 + u8(&r) % 4u;
    memset(&m, 0, sizeof m);
    m.format_version = TS_FORMAT_VERSION;
    m.input = in;
    m.layers = layers;
    for (i = 0; i < n; ++i) {
        if (!build_layer(&r, &layers[i], in)) {
            break;
        }
        in = layers[i].out;
    }
    m.num_layers = i > 0 ? i : 1u;
    corruptions = u8(&r) % 4u;
    for (i = 0; i < corruptions; ++i) {
        corrupt(&r, &m, layers);
    }
    if (m.num_layers > MAX_LAYERS) { /* the table has MAX_LAYERS + 2 rows */
        m.num_layers = MAX_LAYERS + 2u;
    }
    run_table(&r, &m);
    trainer_sizes(&r, &m);
    read_tflite(data + 2 + table_len, size - 2u - table_len, &m);
    free_blocks();
    return 0;
}
