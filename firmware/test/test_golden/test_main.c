/*
 * Golden test: the engine's outputs equal the TFLM runtime's, bit for bit, on every test
 * sample of an export (RUN/export/, see docs/format.md).
 *
 * Built against one export directory: its ts_export*.c files and ts_export.h are compiled
 * in (host: tests/test_engine_golden.py passes -I and the sources; PlatformIO: set
 * TS_EXPORT_DIR, see firmware/test/golden_export.py). Without an export (TS_HAVE_EXPORT
 * undefined) the test reports SKIP.
 *
 * On a mismatch it runs the first TS_EXPORT_GOLDEN_LAYER_SAMPLES samples layer by layer and
 * names the first layer whose output differs from TFLM's (chained: the engine's own layers
 * [0, i] run in order; isolated: layer i alone fed TFLM's outputs of the layers it reads,
 * which pins the faulty kernel). Graphs (residual connections, several inputs) and chains
 * alike.
 *
 * Machine-readable summary lines (parsed by the pytest driver):
 *   GOLDEN hash=<h> layers=<n> inputs=<n> equal=<n> dsp=<0|1>
 *   GOLDEN_LAYER first_diff=<i> op=<name> ...          (only on a mismatch)
 *   GOLDEN_PERF cycles_per_inference=<n> counter=<name> macs=<n> stack_high_water=<n>
 */
#include <stdint.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_kernels.h"
#include "ts_platform.h"
#include "ts_test.h"

#if defined(TS_HAVE_EXPORT)
#include "ts_export.h"

/* the planned tensors, then (DSP build) the kernels' scratch */
#define ARENA_BYTES TS_ARENA_BYTES(TS_EXPORT_ARENA_BYTES, TS_EXPORT_SCRATCH_BYTES)
/* every layer output fits: the intermediate ones in the arena's size, the last is the
 * model output */
#define BUF_BYTES (TS_EXPORT_ARENA_BYTES > TS_EXPORT_OUTPUT_BYTES ? TS_EXPORT_ARENA_BYTES \
                                                                  : TS_EXPORT_OUTPUT_BYTES)

static uint8_t g_arena[ARENA_BYTES + 8] __attribute__((aligned(8)));
static int8_t g_buf_a[BUF_BYTES] __attribute__((aligned(8)));
/* the DSP kernels called directly (both builds): the largest layer's scratch */
static uint8_t g_scratch[TS_EXPORT_SCRATCH_BYTES + 8] __attribute__((aligned(8)));
static int8_t g_buf_b[BUF_BYTES] __attribute__((aligned(8)));

static const char *op_name(uint8_t op) {
    switch (op) {
    case TS_OP_CONV_2D: return "CONV_2D";
    case TS_OP_DEPTHWISE_CONV_2D: return "DEPTHWISE_CONV_2D";
    case TS_OP_FULLY_CONNECTED: return "FULLY_CONNECTED";
    case TS_OP_AVERAGE_POOL_2D: return "AVERAGE_POOL_2D";
    case TS_OP_MAX_POOL_2D: return "MAX_POOL_2D";
    case TS_OP_RESHAPE: return "RESHAPE";
    case TS_OP_SOFTMAX: return "SOFTMAX";
    case TS_OP_MEAN: return "MEAN";
    case TS_OP_QUANTIZE: return "QUANTIZE";
    case TS_OP_ADD: return "ADD";
    case TS_OP_MUL: return "MUL";
    case TS_OP_PAD: return "PAD";
    case TS_OP_CONCATENATION: return "CONCATENATION";
    case TS_OP_LOGISTIC: return "LOGISTIC";
    case TS_OP_HARD_SWISH: return "HARD_SWISH";
    default: return "?";
    }
}

static const ts_model_t *model(void) { return &ts_export_model; }

static size_t out_bytes(void) {
    return ts_layer_out_bytes(&model()->layers[model()->num_layers - 1u]);
}

/* TFLM's output of `layer` for golden-layer sample s (s < GOLDEN_LAYER_SAMPLES). */
static const int8_t *golden_layer(uint32_t layer, uint32_t s) {
    size_t offset = 0;
    uint32_t j;
    for (j = 0; j < layer; ++j) {
        offset += (size_t)TS_EXPORT_GOLDEN_LAYER_SAMPLES * (size_t)ts_export_golden_layer_sizes[j];
    }
    return ts_export_golden_layers + offset + (size_t)s * (size_t)ts_export_golden_layer_sizes[layer];
}

static const int8_t *test_input(uint32_t i) {
    return ts_export_test.x + (size_t)i * (size_t)ts_export_test.sample_bytes;
}

/* TFLM's version of the tensors layer i reads, for golden-layer sample s: their pointers and
 * dims; returns how many. */
static uint32_t tflm_inputs(uint32_t i, uint32_t s, const int8_t **ins, ts_dims_t *dims) {
    const ts_model_t *m = model();
    uint32_t k, count;
    if (m->num_tensors == 0u) { /* a chain */
        ins[0] = i == 0 ? test_input(s) : golden_layer(i - 1u, s);
        dims[0] = m->layers[i].in;
        return 1u;
    }
    count = m->layers[i].num_inputs;
    for (k = 0; k < count; ++k) {
        const uint32_t t = m->layers[i].inputs[k];
        ins[k] = t == 0 ? test_input(s) : golden_layer(t - 1u, s);
        dims[k] = ts_tensor_dims(m, t);
    }
    return count;
}

static void test_model_valid(void) {
    TS_ASSERT_EQ_INT(TS_OK, ts_model_check(model()));
    TS_ASSERT_EQ_INT(TS_EXPORT_NUM_LAYERS, model()->num_layers);
    /* the engine needs exactly the arena the exporter planned, and its twin of the DSP
     * kernels' scratch sizes (tinysift.export.memory.layer_scratch_bytes) is exact */
    TS_ASSERT_EQ_INT(ARENA_BYTES, ts_arena_size(model()));
    TS_ASSERT_EQ_INT(TS_USE_DSP ? TS_EXPORT_SCRATCH_BYTES : 0, ts_scratch_size(model()));
    TS_ASSERT_EQ_INT(TS_EXPORT_SAMPLE_BYTES, ts_export_test.sample_bytes);
    TS_ASSERT_EQ_INT(ts_export_golden_layer_sizes[TS_EXPORT_NUM_LAYERS - 1], out_bytes());
}

/* Layer by layer on golden-layer sample s: the first layer that differs, chained (the
 * engine's layers [0, i] in order) and isolated. Returns the layer index, or -1 when every
 * layer matches. */
static int32_t first_layer_diff(uint32_t s) {
    const ts_model_t *m = model();
    uint32_t i;
    for (i = 0; i < m->num_layers; ++i) {
        const size_t n = ts_layer_out_bytes(&m->layers[i]);
        const int8_t *want = golden_layer(i, s);
        size_t k, diffs = 0, first = 0;
        ts_status_t st = ts_run_layers(m, 0, i + 1u, test_input(s), g_buf_a, g_arena,
                                       ARENA_BYTES);
        if (st != TS_OK) {
            ts_printf("GOLDEN_LAYER sample=%u layer=%u op=%s status=%d\n", (unsigned)s,
                      (unsigned)i, op_name(m->layers[i].op), (int)st);
            return (int32_t)i;
        }
        for (k = 0; k < n; ++k) {
            if (g_buf_a[k] != want[k]) {
                if (diffs++ == 0) {
                    first = k;
                }
            }
        }
        if (diffs > 0) {
            size_t iso_diffs = 0;
            const int8_t *ins[TS_MAX_INPUTS];
            ts_dims_t dims[TS_MAX_INPUTS];
            const uint32_t count = tflm_inputs(i, s, ins, dims);
            (void)ts_run_layer_inputs(&m->layers[i], dims, ins, count, g_buf_b, g_scratch);
            for (k = 0; k < n; ++k) {
                iso_diffs += g_buf_b[k] != want[k];
            }
            ts_printf("GOLDEN_LAYER sample=%u first_diff=%u op=%s differing=%u/%u "
                      "first_index=%u expected=%d got=%d isolated_differing=%u\n",
                      (unsigned)s, (unsigned)i, op_name(m->layers[i].op), (unsigned)diffs,
                      (unsigned)n, (unsigned)first, (int)want[first], (int)g_buf_a[first],
                      (unsigned)iso_diffs);
            return (int32_t)i;
        }
    }
    return -1;
}

static void test_golden_outputs(void) {
    const ts_model_t *m = model();
    const size_t n_out = out_bytes();
    const uint32_t count = ts_export_test.count;
    uint32_t i, equal = 0, first_bad = count;
    uint64_t t0, t1;
    uint32_t macs = 0;
    ts_status_t st;

    for (i = 0; i < m->num_layers; ++i) {
        macs += ts_layer_macs(&m->layers[i]);
    }
    t0 = ts_cycles64();
    for (i = 0; i < count; ++i) {
        st = ts_invoke(m, test_input(i), g_buf_a, g_arena, ARENA_BYTES);
        if (st != TS_OK) {
            TS_FAIL_("ts_invoke status %d on sample %u", (int)st, (unsigned)i);
        }
        if (memcmp(g_buf_a, ts_export_golden_outputs + (size_t)i * n_out, n_out) == 0) {
            ++equal;
        } else if (first_bad == count) {
            first_bad = i;
        }
    }
    t1 = ts_cycles64();
    ts_printf("GOLDEN hash=%s layers=%u inputs=%u equal=%u dsp=%d platform=%s\n",
              TS_EXPORT_CONTENT_HASH, (unsigned)m->num_layers, (unsigned)count,
              (unsigned)equal, TS_USE_DSP, ts_platform_name());
    ts_printf("GOLDEN_PERF cycles_per_inference=%lu counter=%s macs=%lu stack_high_water=%lu\n",
              (unsigned long)(count ? (t1 - t0) / count : 0), ts_cycle_counter_name(),
              (unsigned long)macs, (unsigned long)ts_stack_high_water());
    if (equal != count) {
        uint32_t s;
        int32_t layer = -1;
        for (s = 0; s < TS_EXPORT_GOLDEN_LAYER_SAMPLES && layer < 0; ++s) {
            layer = first_layer_diff(s);
        }
        TS_FAIL_("%u of %u outputs differ from TFLM (first: sample %u; first differing layer "
                 "%d %s)", (unsigned)(count - equal), (unsigned)count, (unsigned)first_bad,
                 (int)layer, layer >= 0 ? op_name(m->layers[layer].op) : "(not in the "
                 "layer-golden samples)");
    }
    TS_ASSERT(count > 0u);
}

/* Every layer of the layer-golden samples, fed TFLM's inputs: also the kernel variant
 * ts_invoke does not use (scalar vs DSP), so both are checked in every build. */
static void test_layers_both_paths(void) {
    const ts_model_t *m = model();
    uint32_t s, i;
    for (s = 0; s < TS_EXPORT_GOLDEN_LAYER_SAMPLES; ++s) {
        for (i = 0; i < m->num_layers; ++i) {
            const ts_layer_t *l = &m->layers[i];
            const int8_t *ins[TS_MAX_INPUTS];
            ts_dims_t dims[TS_MAX_INPUTS];
            const uint32_t count = tflm_inputs(i, s, ins, dims);
            const int8_t *in = ins[0];
            const int8_t *want = golden_layer(i, s);
            const size_t n = ts_layer_out_bytes(l);
            int v;
            for (v = 0; v < 2; ++v) {
                memset(g_buf_a, 0x55, n);
                switch (l->op) {
                case TS_OP_CONV_2D:
                    if (v) {
                        ts_conv2d_s8_dsp(l, in, g_buf_a, g_scratch);
                    } else {
                        ts_conv2d_s8_ref(l, in, g_buf_a);
                    }
                    break;
                case TS_OP_DEPTHWISE_CONV_2D:
                    if (v) {
                        ts_depthwise_conv2d_s8_dsp(l, in, g_buf_a, g_scratch);
                    } else {
                        ts_depthwise_conv2d_s8_ref(l, in, g_buf_a);
                    }
                    break;
                case TS_OP_FULLY_CONNECTED:
                    if (v) {
                        ts_fully_connected_s8_dsp(l, in, g_buf_a, g_scratch);
                    } else {
                        ts_fully_connected_s8_ref(l, in, g_buf_a);
                    }
                    break;
                default:
                    TS_ASSERT_EQ_INT(TS_OK, ts_run_layer_inputs(l, dims, ins, count, g_buf_a,
                                                                g_scratch));
                    break;
                }
                if (memcmp(g_buf_a, want, n) != 0) {
                    TS_FAIL_("sample %u layer %u (%s, %s path) differs from TFLM", (unsigned)s,
                             (unsigned)i, op_name(l->op), v ? "dsp" : "scalar");
                }
            }
        }
    }
}

/* The arena really is enough: a guard pattern just past it stays intact. */
static void test_arena_bounds(void) {
    const size_t n_out = out_bytes();
    memset(g_arena + ARENA_BYTES, 0xA5, 8);
    TS_ASSERT_EQ_INT(TS_OK, ts_invoke(model(), test_input(0), g_buf_a, g_arena, ARENA_BYTES));
    TS_ASSERT_MEM_EQ(ts_export_golden_outputs, g_buf_a, n_out);
    TS_ASSERT_EQ_INT(0xA5, g_arena[ARENA_BYTES]);
    TS_ASSERT_EQ_INT(0xA5, g_arena[ARENA_BYTES + 7]);
    if (model()->num_layers > 1u && ARENA_BYTES > 0) {
        TS_ASSERT_EQ_INT(TS_ERR_ARENA,
                         ts_invoke(model(), test_input(0), g_buf_a, g_arena, ARENA_BYTES - 1u));
    }
}

int main(void) {
    TS_TEST_BEGIN();
    TS_RUN(test_model_valid);
    TS_RUN(test_golden_outputs);
    TS_RUN(test_layers_both_paths);
    TS_RUN(test_arena_bounds);
    return TS_TEST_END();
}

#else /* no export compiled in */

int main(void) {
    TS_TEST_BEGIN();
    ts_printf("TS_TEST:%s:%d:test_golden_outputs:SKIP:no export (set TS_EXPORT_DIR to a "
              "RUN/export directory)\n", __FILE__, __LINE__);
    return TS_TEST_END();
}

#endif
