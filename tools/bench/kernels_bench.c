/*
 * Kernel benchmark for QEMU mps2-an386 (Cortex-M4F) under -icount: instructions per MAC of
 * the CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels, scalar (*_ref) and DSP
 * (*_dsp, SMLAD) side by side, on the layer shapes of the exported tinysift models, plus
 * each call's stack use (the stack is re-painted before every call). Driven by
 * tools/bench_kernels.py, which parses the lines:
 *
 *   BENCH_INFO counter=<name> icount_shift=<n> stack_size=<bytes>
 *   BENCH case=<name> op=<op> macs=<n> outputs=<n> ref_instr=<n> dsp_instr=<n>
 *         ref_stack=<bytes> dsp_stack=<bytes> equal=<0|1>
 *   BENCH_LAYER ...  (with an export compiled in, TS_HAVE_EXPORT: every layer of its model)
 *   BENCH_DONE
 *
 * The counter is SysTick converted to executed instructions (deterministic under -icount;
 * a 40-instruction granularity at shift 0, so each kernel runs enough times to make that
 * negligible). Inputs and weights are pseudo-random; the requantization parameters are in
 * the ranges real exports have.
 */
#include <stdint.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_kernels.h"
#include "ts_mps2.h"
#include "ts_platform.h"

#if defined(TS_HAVE_EXPORT)
#include "ts_export.h"
#endif

#define MAX_W (64 * 64 * 9)
#define MAX_ACT (32 * 32 * 16)
#define MAX_C 128

static int8_t g_w[MAX_W];
static int8_t g_in[MAX_ACT];
static int8_t g_out_ref[MAX_ACT];
static int8_t g_out_dsp[MAX_ACT];
static int32_t g_bias[MAX_C], g_mult[MAX_C], g_shift[MAX_C];
static uint32_t g_rng = 12345u;

static uint32_t rnd(void) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return g_rng >> 8;
}

typedef void (*kernel_fn)(const ts_layer_t *, const int8_t *, int8_t *);

/* The DSP kernels' scratch (caller-owned, as in CMSIS-NN): not on the stack they report. */
static uint8_t g_scratch[4096] __attribute__((aligned(8)));

static void conv_dsp(const ts_layer_t *l, const int8_t *in, int8_t *out) {
    ts_conv2d_s8_dsp(l, in, out, g_scratch);
}
static void dw_dsp(const ts_layer_t *l, const int8_t *in, int8_t *out) {
    ts_depthwise_conv2d_s8_dsp(l, in, out, g_scratch);
}
static void fc_dsp(const ts_layer_t *l, const int8_t *in, int8_t *out) {
    ts_fully_connected_s8_dsp(l, in, out, g_scratch);
}

typedef struct {
    const char *name;
    uint8_t op;
    ts_dims_t in;
    int32_t out_c;
    uint8_t filter, stride, padding;
} bench_case_t;

/* Shapes of the exported models (docs: Fashion-MNIST ds-cnn 28x28x1, digits 8x8x1, the
 * 32x32x3 conv-maxpool model) and a larger FC. */
static const bench_case_t k_cases[] = {
    {"conv3x3_stem_28x28x1_s2", TS_OP_CONV_2D, {28, 28, 1}, 16, 3, 2, TS_PAD_SAME},
    {"conv3x3_32x32x3", TS_OP_CONV_2D, {32, 32, 3}, 16, 3, 1, TS_PAD_SAME},
    {"conv3x3_16x16x16_valid", TS_OP_CONV_2D, {16, 16, 16}, 32, 3, 1, TS_PAD_VALID},
    {"conv1x1_14x14x16_to32", TS_OP_CONV_2D, {14, 14, 16}, 32, 1, 1, TS_PAD_VALID},
    {"conv1x1_7x7x32_to64", TS_OP_CONV_2D, {7, 7, 32}, 64, 1, 1, TS_PAD_VALID},
    {"conv1x1_7x7x64_to64", TS_OP_CONV_2D, {7, 7, 64}, 64, 1, 1, TS_PAD_VALID},
    {"dw3x3_14x14x16", TS_OP_DEPTHWISE_CONV_2D, {14, 14, 16}, 16, 3, 1, TS_PAD_SAME},
    {"dw3x3_14x14x32_s2", TS_OP_DEPTHWISE_CONV_2D, {14, 14, 32}, 32, 3, 2, TS_PAD_SAME},
    {"dw3x3_7x7x64", TS_OP_DEPTHWISE_CONV_2D, {7, 7, 64}, 64, 3, 1, TS_PAD_SAME},
    {"fc_64_to_10", TS_OP_FULLY_CONNECTED, {1, 1, 64}, 10, 1, 1, TS_PAD_VALID},
    {"fc_256_to_64", TS_OP_FULLY_CONNECTED, {1, 1, 256}, 64, 1, 1, TS_PAD_VALID},
};

static int32_t out_size(int same, int32_t in, int32_t f, int32_t s) {
    return same ? (in + s - 1) / s : (in + s - f) / s;
}

static void make_layer(const bench_case_t *bc, ts_layer_t *l) {
    const int same = bc->padding == TS_PAD_SAME;
    int32_t i, n_w, k;
    memset(l, 0, sizeof *l);
    l->op = bc->op;
    l->padding = bc->padding;
    l->stride_h = l->stride_w = bc->stride;
    l->dilation_h = l->dilation_w = 1;
    l->filter_h = l->filter_w = bc->filter;
    l->depth_multiplier = 1;
    l->in = bc->in;
    if (bc->op == TS_OP_FULLY_CONNECTED) {
        l->out.h = l->out.w = 1;
        k = bc->in.h * bc->in.w * bc->in.c;
    } else {
        l->out.h = out_size(same, bc->in.h, bc->filter, bc->stride);
        l->out.w = out_size(same, bc->in.w, bc->filter, bc->stride);
        if (same) {
            const int32_t th = (l->out.h - 1) * bc->stride + bc->filter - bc->in.h;
            const int32_t tw = (l->out.w - 1) * bc->stride + bc->filter - bc->in.w;
            l->pad_h = (int16_t)(th > 0 ? th / 2 : 0);
            l->pad_w = (int16_t)(tw > 0 ? tw / 2 : 0);
        }
        k = bc->op == TS_OP_CONV_2D ? bc->filter * bc->filter * bc->in.c : bc->filter * bc->filter;
    }
    l->out.c = bc->out_c;
    n_w = k * bc->out_c;
    for (i = 0; i < n_w; ++i) {
        g_w[i] = (int8_t)(rnd() % 255u) - 127;
    }
    for (i = 0; i < bc->in.h * bc->in.w * bc->in.c; ++i) {
        g_in[i] = (int8_t)((int32_t)(rnd() % 256u) - 128);
    }
    for (i = 0; i < bc->out_c; ++i) {
        g_bias[i] = (int32_t)(rnd() % 20001u) - 10000;
        g_mult[i] = (int32_t)(0x40000000u | (rnd() << 6));
        g_shift[i] = -(int32_t)(6 + rnd() % 4u);
    }
    l->weights = g_w;
    l->weights_len = (uint32_t)n_w;
    l->bias = g_bias;
    l->bias_len = (uint32_t)bc->out_c;
    l->multiplier = g_mult;
    l->shift = g_shift;
    l->quant_len = (uint32_t)bc->out_c;
    l->input_zero_point = -128;
    l->output_zero_point = -128;
    l->act_min = -128;
    l->act_max = 127;
}

static uintptr_t current_sp(void) {
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

static const char *op_name(uint8_t op) {
    switch (op) {
    case TS_OP_CONV_2D: return "CONV_2D";
    case TS_OP_DEPTHWISE_CONV_2D: return "DEPTHWISE_CONV_2D";
    case TS_OP_FULLY_CONNECTED: return "FULLY_CONNECTED";
    case TS_OP_AVERAGE_POOL_2D: return "AVERAGE_POOL_2D";
    case TS_OP_MAX_POOL_2D: return "MAX_POOL_2D";
    case TS_OP_RESHAPE: return "RESHAPE";
    case TS_OP_SOFTMAX: return "SOFTMAX";
    case TS_OP_QUANTIZE: return "QUANTIZE";
    default: return "?";
    }
}

extern uint32_t __stack_top[];

static uint32_t stack_of(kernel_fn fn, const ts_layer_t *l, int8_t *out) {
    const uintptr_t sp = current_sp();
    const size_t live = (size_t)((uintptr_t)__stack_top - sp);
    size_t hw;
    ts_cm_paint_stack();
    fn(l, g_in, out);
    hw = ts_stack_high_water();
    return hw > live ? (uint32_t)(hw - live) : 0u;
}

static uint32_t instructions_of(kernel_fn fn, const ts_layer_t *l, int8_t *out, uint32_t reps) {
    uint32_t r;
    uint64_t t0 = ts_cycles64(), t1;
    for (r = 0; r < reps; ++r) {
        fn(l, g_in, out);
    }
    t1 = ts_cycles64();
    return (uint32_t)((t1 - t0 + reps / 2u) / reps);
}

static void bench_cases(void) {
    size_t i;
    for (i = 0; i < sizeof k_cases / sizeof k_cases[0]; ++i) {
        const bench_case_t *bc = &k_cases[i];
        ts_layer_t l;
        kernel_fn ref, dsp;
        uint32_t macs, reps, outputs;
        size_t scratch;
        make_layer(bc, &l);
        if (ts_layer_check(&l) != TS_OK) {
            ts_printf("BENCH_ERROR case=%s status=%d\n", bc->name, (int)ts_layer_check(&l));
            continue;
        }
        if (bc->op == TS_OP_CONV_2D) {
            ref = ts_conv2d_s8_ref;
            dsp = conv_dsp;
            scratch = ts_conv2d_s8_dsp_scratch_size(&l);
        } else if (bc->op == TS_OP_DEPTHWISE_CONV_2D) {
            ref = ts_depthwise_conv2d_s8_ref;
            dsp = dw_dsp;
            scratch = ts_depthwise_conv2d_s8_dsp_scratch_size(&l);
        } else {
            ref = ts_fully_connected_s8_ref;
            dsp = fc_dsp;
            scratch = ts_fully_connected_s8_dsp_scratch_size(&l);
        }
        if (scratch > sizeof g_scratch) {
            ts_printf("BENCH_ERROR case=%s scratch=%lu\n", bc->name, (unsigned long)scratch);
            continue;
        }
        macs = ts_layer_macs(&l);
        outputs = (uint32_t)ts_layer_out_bytes(&l);
        reps = macs >= 200000u ? 2u : (400000u / macs) + 1u;
        {
            const uint32_t ref_stack = stack_of(ref, &l, g_out_ref);
            const uint32_t dsp_stack = stack_of(dsp, &l, g_out_dsp);
            const uint32_t ref_instr = instructions_of(ref, &l, g_out_ref, reps);
            const uint32_t dsp_instr = instructions_of(dsp, &l, g_out_dsp, reps);
            const int equal = memcmp(g_out_ref, g_out_dsp, outputs) == 0;
            ts_printf("BENCH case=%s op=%s macs=%lu outputs=%lu ref_instr=%lu dsp_instr=%lu "
                      "ref_stack=%lu dsp_stack=%lu dsp_scratch=%lu equal=%d\n",
                      bc->name, op_name(bc->op), (unsigned long)macs, (unsigned long)outputs,
                      (unsigned long)ref_instr, (unsigned long)dsp_instr,
                      (unsigned long)ref_stack, (unsigned long)dsp_stack,
                      (unsigned long)scratch, equal);
        }
    }
}

#if defined(TS_HAVE_EXPORT)
static uint8_t g_arena[TS_ARENA_BYTES(TS_EXPORT_ARENA_BYTES, TS_EXPORT_SCRATCH_BYTES)]
    __attribute__((aligned(8)));
static int8_t g_a[TS_EXPORT_ARENA_BYTES], g_b[TS_EXPORT_ARENA_BYTES];

static void run_layer_ref(const ts_layer_t *l, const int8_t *in, int8_t *out) {
    switch (l->op) {
    case TS_OP_CONV_2D: ts_conv2d_s8_ref(l, in, out); break;
    case TS_OP_DEPTHWISE_CONV_2D: ts_depthwise_conv2d_s8_ref(l, in, out); break;
    case TS_OP_FULLY_CONNECTED: ts_fully_connected_s8_ref(l, in, out); break;
    default: (void)ts_run_layer(l, in, out, NULL); break;
    }
}

static void run_layer_dsp(const ts_layer_t *l, const int8_t *in, int8_t *out) {
    switch (l->op) {
    case TS_OP_CONV_2D: conv_dsp(l, in, out); break;
    case TS_OP_DEPTHWISE_CONV_2D: dw_dsp(l, in, out); break;
    case TS_OP_FULLY_CONNECTED: fc_dsp(l, in, out); break;
    default: (void)ts_run_layer(l, in, out, g_scratch); break;
    }
}

/* Every layer of the exported model on test sample 0, both paths; then ts_invoke. */
static void bench_export(void) {
    const ts_model_t *m = &ts_export_model;
    uint32_t i;
    uint64_t t0, t1;
    const int8_t *src = ts_export_test.x;
#if defined(TS_BENCH_MODEL_ONLY)
    /* whole models only (tools/bench_mlperf.py): the layer loop below chains layers and does
     * not feed a graph's second inputs (ADD, CONCATENATION) */
    i = m->num_layers;
#else
    i = 0;
#endif
    for (; i < m->num_layers; ++i) {
        const ts_layer_t *l = &m->layers[i];
        uint32_t r, ref_i, dsp_i;
        const uint32_t reps = 3u;
        int8_t *dst = (i & 1u) ? g_b : g_a;
        memcpy(g_in, src, ts_layer_in_bytes(l));
        t0 = ts_cycles64();
        for (r = 0; r < reps; ++r) {
            run_layer_ref(l, g_in, dst);
        }
        t1 = ts_cycles64();
        ref_i = (uint32_t)((t1 - t0) / reps);
        t0 = ts_cycles64();
        for (r = 0; r < reps; ++r) {
            run_layer_dsp(l, g_in, dst);
        }
        t1 = ts_cycles64();
        dsp_i = (uint32_t)((t1 - t0) / reps);
        ts_printf("BENCH_LAYER index=%lu op=%s macs=%lu ref_instr=%lu dsp_instr=%lu\n",
                  (unsigned long)i, op_name(l->op), (unsigned long)ts_layer_macs(l),
                  (unsigned long)ref_i, (unsigned long)dsp_i);
        src = dst;
    }
    {
        const uintptr_t sp = current_sp();
        const size_t live = (size_t)((uintptr_t)__stack_top - sp);
        uint32_t macs = 0;
        for (i = 0; i < m->num_layers; ++i) {
            macs += ts_layer_macs(&m->layers[i]);
        }
        ts_cm_paint_stack();
        t0 = ts_cycles64();
        (void)ts_invoke(m, ts_export_test.x, g_a, g_arena, sizeof g_arena);
        t1 = ts_cycles64();
        /* arena: the planned tensors (TFLM's arena holds the same); scratch: the kernels' */
        ts_printf("BENCH_MODEL hash=%s macs=%lu invoke_instr=%lu dsp=%d stack=%lu arena=%lu "
                  "scratch=%lu\n",
                  TS_EXPORT_CONTENT_HASH, (unsigned long)macs, (unsigned long)(t1 - t0),
                  TS_USE_DSP, (unsigned long)(ts_stack_high_water() - live),
                  (unsigned long)(sizeof g_arena - ts_scratch_size(m)),
                  (unsigned long)ts_scratch_size(m));
    }
}
#endif

int main(void) {
    ts_printf("BENCH_INFO counter=%s icount_shift=%d stack_size=%lu dsp=%d\n",
              ts_cycle_counter_name(), ts_icount_shift(), (unsigned long)ts_stack_size(),
              TS_USE_DSP);
#if defined(TS_BENCH_MODEL_ONLY)
    (void)bench_cases; /* whole models only */
#else
    bench_cases();
#endif
#if defined(TS_HAVE_EXPORT)
    bench_export();
#endif
    ts_printf("BENCH_DONE\n");
    return 0;
}
