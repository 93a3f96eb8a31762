/*
 * The trainer on the emulated board: one ts_train_head() run on an export, printed in the
 * line format of tests/c/trainer_driver.c (so tests/test_trainer.py can compare it with the
 * numpy reference; floats as float32 bit patterns in hex), then, for update=head, the same
 * training again from the filled cache without per-phase counting (the counter's own
 * overhead).
 *
 * The mode comes from -D flags: BENCH_UPDATE (0 head, 1 last-block, 2 bias), BENCH_EPOCHS or
 * BENCH_STEPS, BENCH_SCHEDULE, BENCH_BALANCE, BENCH_CACHE (1: the trained layers' inputs
 * cached once; 0: the frozen layers recomputed every time; update=bias reads the samples
 * themselves). Static buffers sized by the trainer's macros, the model's dims from
 * firmware/scripts/ts_model_dims.py (TS_MODEL_*).
 *
 * tools/bench_trainer.sh builds it for the Cortex-M4F (hard float) and with the engine
 * compiled as Cortex-M0+ code (ARMv6-M, soft float) and runs it under QEMU -icount, where
 * ts_cycles() counts instructions (see docs/trainer.md).
 */
#include <stdint.h>

#include "ts_engine.h"
#include "ts_kernels.h"
#include "ts_export.h"
#include "ts_platform.h"
#include "ts_trainer.h"

#ifndef BENCH_EPOCHS
#define BENCH_EPOCHS 2u
#endif
#ifndef BENCH_STEPS
#define BENCH_STEPS 0u
#endif
#ifndef BENCH_UPDATE
#define BENCH_UPDATE 0u
#endif
#ifndef BENCH_SCHEDULE
#define BENCH_SCHEDULE 0u
#endif
#ifndef BENCH_BALANCE
#define BENCH_BALANCE 0u
#endif
#ifndef BENCH_CACHE
#define BENCH_CACHE 1
#endif
#ifndef TS_MODEL_BLOCK_IN_C
#error "build with the TS_MODEL_* flags of firmware/scripts/ts_model_dims.py"
#endif
#define K TS_EXPORT_NUM_CLASSES
#define D TS_EXPORT_FEATURE_DIM
#define H TS_EXPORT_HEAD_LAYER
#define N_TRAIN TS_EXPORT_TRAIN_COUNT
#define N_TEST TS_EXPORT_TEST_COUNT
#define MAX2(a, b) ((a) > (b) ? (a) : (b))
/* bytes of a sample of the trained layers' input (the cache holds N_TRAIN + N_TEST) */
#if BENCH_UPDATE == 1
#define SAMPLE (TS_MODEL_BLOCK_IN_C * TS_MODEL_BLOCK_PIXELS)
#define BB_WS TS_TRAINER_BLOCK_WORKSPACE_BYTES(H, TS_MODEL_BLOCK_IN_C, D, TS_MODEL_BLOCK_PIXELS)
#define BB_Q TS_TRAINER_BLOCK_Q_BYTES(TS_MODEL_BLOCK_IN_C, D)
#elif BENCH_UPDATE == 2
#define SAMPLE 1
#define BB_WS                                                                                \
    TS_TRAINER_BIAS_WORKSPACE_BYTES(H, TS_MODEL_BIAS_CHANNELS, TS_MODEL_BIAS_ACT_MAX,       \
                                    TS_MODEL_BIAS_MASK_BITS)
#define BB_Q TS_TRAINER_BIAS_Q_BYTES(TS_MODEL_BIAS_CHANNELS)
#else
#define SAMPLE D
#define BB_WS 4
#define BB_Q 4
#endif

static uint8_t g_arena[TS_ARENA_BYTES(TS_EXPORT_ARENA_BYTES, TS_EXPORT_SCRATCH_BYTES)]
    __attribute__((aligned(8)));
#if BENCH_CACHE
static int8_t g_cache[(N_TRAIN + N_TEST) * SAMPLE];
#else
static int8_t g_cache[1];
#endif
static uint8_t g_ws[TS_TRAINER_WORKSPACE_BYTES(K, D, N_TRAIN)] __attribute__((aligned(8)));
static uint8_t g_bb_ws[BB_WS] __attribute__((aligned(8)));
static uint8_t g_bb_q[BB_Q] __attribute__((aligned(8)));
static ts_layer_t g_layers[TS_EXPORT_NUM_LAYERS];
static uint32_t g_per_class[TS_TRAINER_PER_CLASS_COUNT(K)];
static int8_t g_qw[K * D];
static int32_t g_qb[K];
#if BENCH_UPDATE != 0 || !BENCH_CACHE
static int8_t g_feat[D]; /* one sample's features, when they are not in the cache */
#endif

static int on_epoch(const ts_trainer_epoch_t *e, void *user)
{
    int ph;
    (void)user;
    ts_printf("epoch %u %.9g %u", (unsigned)e->epoch, (double)e->mean_loss,
              (unsigned)e->correct);
    for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
        ts_printf(" %llu", (unsigned long long)e->cycles[ph]);
    }
    ts_printf("\n");
    return 0;
}

/* float32 bit patterns in hex: exact, whatever the formatter's float conversion does */
static void print_floats(const char *tag, const float *v, unsigned n)
{
    unsigned i;
    ts_printf("%s", tag);
    for (i = 0; i < n; ++i) {
        union {
            float f;
            uint32_t u;
        } bits;
        bits.f = v[i];
        ts_printf(" %08lx", (unsigned long)bits.u);
    }
    ts_printf("\n");
}

static void print_ints(const char *tag, const void *base, unsigned n, unsigned size)
{
    unsigned i;
    ts_printf("%s", tag);
    for (i = 0; i < n; ++i) {
        long v = size == 4u ? (long)((const int32_t *)base)[i] : (long)((const int8_t *)base)[i];
        ts_printf(" %ld", v);
    }
    ts_printf("\n");
}

/* The tuned model's int8 logits of test sample s (the whole model from the image: the
 * frozen layers are the export's, the trained ones the patched rows of g_layers). */
static ts_status_t test_logits(const ts_model_t *tuned, const ts_head_q_t *hq, unsigned s,
                               int8_t *logits)
{
#if BENCH_UPDATE == 0 && BENCH_CACHE
    (void)tuned;
    return ts_trainer_head_int8(&ts_export_model, hq, g_cache + (N_TRAIN + s) * D, logits);
#else
    ts_status_t st = ts_run_layers(tuned, 0, H, ts_export_test.x + s * ts_export_test.sample_bytes,
                                   g_feat, g_arena, sizeof g_arena);
    return st == TS_OK ? ts_trainer_head_int8(&ts_export_model, hq, g_feat, logits) : st;
#endif
}

int main(void)
{
    ts_trainer_config_t cfg = {0};
    ts_trainer_result_t res;
    ts_head_q_t hq;
    ts_train_request_t req;
    ts_dataset_t train_f, test_f; /* the filled cache as feature sets */
    ts_model_t tuned;
    ts_trainer_sizes_t sz;
    ts_status_t st;
    int8_t logits[K];
    uint64_t counted = 0;
    uint32_t t0, t1;
    unsigned i, s;
    int ph;
    cfg.epochs = BENCH_EPOCHS;
    cfg.steps = BENCH_STEPS;
    cfg.schedule = BENCH_SCHEDULE;
    cfg.balance = BENCH_BALANCE;
    cfg.update = BENCH_UPDATE;
    cfg.batch_size = 32;
    cfg.learning_rate = 0.05f;
    cfg.momentum = 0.9f;
    cfg.seed = 7;
    cfg.eval_initial = 1;
    cfg.cycles = ts_cycles;
    cfg.on_epoch = on_epoch;
    hq.weights = g_qw;
    hq.bias = g_qb;
    ts_printf("platform %s counter %s\n", ts_platform_name(), ts_cycle_counter_name());
    ts_printf("ws_size %u\n", (unsigned)ts_trainer_workspace_size(&ts_export_model, N_TRAIN));
    st = ts_trainer_sizes(&ts_export_model, cfg.update, &sz);
    ts_printf("mode %s cache %d backbone_ws %u backbone_q %u\n",
              ts_trainer_update_name(cfg.update), BENCH_CACHE, (unsigned)sz.workspace_bytes,
              (unsigned)sz.q_bytes);
    if (ts_trainer_workspace_size(&ts_export_model, N_TRAIN) != sizeof(g_ws) || st != TS_OK ||
        (cfg.update != 0u && (sz.workspace_bytes != sizeof g_bb_ws ||
                              sz.q_bytes != sizeof g_bb_q))) {
        ts_printf("workspace size mismatch\n");
        return 1;
    }
    req = (ts_train_request_t){.train = &ts_export_train, .test = &ts_export_test,
                               .workspace = g_ws, .workspace_bytes = sizeof(g_ws),
                               .arena = g_arena, .arena_bytes = sizeof(g_arena),
                               .head_q = &hq, .result = &res, .backbone_ws = g_bb_ws,
                               .backbone_ws_bytes = sizeof g_bb_ws, .tflite = ts_export_tflite,
                               .tflite_bytes = ts_export_tflite_len, .layers = g_layers,
                               .layers_cap = TS_EXPORT_NUM_LAYERS, .backbone_q = g_bb_q,
                               .backbone_q_bytes = sizeof g_bb_q, .per_class = g_per_class};
    if (BENCH_CACHE) {
        req.feature_cache = g_cache;
        req.feature_cache_bytes = sizeof(g_cache);
    }
    st = ts_train_head(&ts_export_model, &cfg, &req);
    if (st != TS_OK) {
        ts_printf("status %d\n", (int)st);
        return 1;
    }
    ts_printf("result %u %u %u %u %u\n", (unsigned)res.epochs_run, (unsigned)res.test_count,
              (unsigned)res.test_correct_initial, (unsigned)res.test_correct_float,
              (unsigned)res.test_correct_int8);
    ts_printf("steps_run %u\n", (unsigned)res.steps_run);
    ts_printf("cycles");
    for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
        ts_printf(" %llu", (unsigned long long)res.cycles[ph]);
    }
    ts_printf("\n");
    print_floats("wx", res.weights, K * D);
    print_floats("bx", res.bias, K);
    print_ints("qw", g_qw, K * D, 1);
    print_ints("qb", g_qb, K, 4);
    print_floats("qsx", &hq.weight_scale, 1);
    print_floats("qsbx", &hq.bias_scale, 1);
    ts_printf("qs 0 0 %ld %ld\n", (long)hq.multiplier, (long)hq.shift);
    print_ints("pc", g_per_class, 4u * K, 4);
    st = ts_trainer_patch_model(&ts_export_model, &hq, g_layers, TS_EXPORT_NUM_LAYERS, &tuned);
    if (cfg.update != 0u) {
        unsigned words = cfg.update == 1u ? 3u * D : sz.q_bytes / 4u;
        print_floats("bpx", res.backbone_params, res.backbone_param_count);
        print_ints("bq", g_bb_q, words, 4);
        print_ints("bw", g_bb_q + 4u * words, cfg.update == 1u ? sz.q_bytes - 4u * words : 0u,
                   1);
        if (st == TS_OK) {
            st = ts_trainer_patch_backbone(&ts_export_model, cfg.update, g_bb_q, sizeof g_bb_q,
                                           g_layers, TS_EXPORT_NUM_LAYERS);
        }
    }
    ts_printf("logits8");
    for (s = 0; s < N_TEST && st == TS_OK; ++s) {
        st = test_logits(&tuned, &hq, s, logits);
        for (i = 0; i < K; ++i) {
            ts_printf(" %d", logits[i]);
        }
    }
    ts_printf("\n");
#if BENCH_UPDATE != 0 || !BENCH_CACHE
    (void)train_f;
    (void)test_f;
    (void)counted;
    (void)t0;
    (void)t1;
    return st == TS_OK ? 0 : 1;
#else
    for (ph = TS_PHASE_HEAD_FORWARD; ph < TS_PHASE_COUNT; ++ph) {
        counted += res.cycles[ph];
    }
    cfg.cycles = 0;
    cfg.on_epoch = 0;
    train_f = ts_trainer_feature_set(&ts_export_model, g_cache, ts_export_train.y, N_TRAIN);
    test_f = ts_trainer_feature_set(&ts_export_model, g_cache + N_TRAIN * D, ts_export_test.y,
                                    N_TEST);
    req.train = &train_f;
    req.test = &test_f;
    t0 = ts_cycles();
    st = ts_train_head_features(&ts_export_model, &cfg, &req);
    t1 = ts_cycles();
    ts_printf("overhead uncounted %lu counted %llu status %d\n",
              (unsigned long)(uint32_t)(t1 - t0), (unsigned long long)counted, (int)st);
    return st == TS_OK ? 0 : 1;
#endif
}
