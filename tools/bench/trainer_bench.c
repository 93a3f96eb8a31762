/*
 * The trainer on the emulated board: one ts_train_head() run on an export (feature cache
 * filled once through the executor), printed in the line format of tests/c/trainer_driver.c
 * (so tests/test_trainer.py can compare it with the numpy reference), then the same training
 * again from the filled cache without per-phase counting (the counter's own overhead).
 *
 * tools/bench_trainer.sh builds it for the Cortex-M4F (hard float) and with the engine
 * compiled as Cortex-M0+ code (ARMv6-M, soft float) and runs it under QEMU -icount, where
 * ts_cycles() counts instructions (see docs/trainer.md).
 */
#include <stdint.h>

#include "ts_engine.h"
#include "ts_export.h"
#include "ts_platform.h"
#include "ts_trainer.h"

#ifndef BENCH_EPOCHS
#define BENCH_EPOCHS 2u
#endif
#define K TS_EXPORT_NUM_CLASSES
#define D TS_EXPORT_FEATURE_DIM
#define N_TRAIN TS_EXPORT_TRAIN_COUNT
#define N_TEST TS_EXPORT_TEST_COUNT

static uint8_t g_arena[TS_EXPORT_ARENA_BYTES] __attribute__((aligned(8)));
static int8_t g_cache[(N_TRAIN + N_TEST) * D];
static uint8_t g_ws[TS_TRAINER_WORKSPACE_BYTES(K, D, N_TRAIN)] __attribute__((aligned(8)));
static int8_t g_qw[K * D];
static int32_t g_qb[K];

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

int main(void)
{
    ts_trainer_config_t cfg = {0};
    ts_trainer_result_t res;
    ts_head_q_t hq;
    ts_train_request_t req;
    ts_dataset_t train_f, test_f; /* the filled cache as feature sets */
    ts_status_t st;
    int8_t logits[K];
    uint64_t counted = 0;
    uint32_t t0, t1;
    unsigned i, s;
    int ph;
    cfg.epochs = BENCH_EPOCHS;
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
    if (ts_trainer_workspace_size(&ts_export_model, N_TRAIN) != sizeof(g_ws)) {
        ts_printf("workspace size mismatch\n");
        return 1;
    }
    req = (ts_train_request_t){.train = &ts_export_train, .test = &ts_export_test,
                               .workspace = g_ws, .workspace_bytes = sizeof(g_ws),
                               .feature_cache = g_cache, .feature_cache_bytes = sizeof(g_cache),
                               .arena = g_arena, .arena_bytes = sizeof(g_arena),
                               .head_q = &hq, .result = &res};
    st = ts_train_head(&ts_export_model, &cfg, &req);
    if (st != TS_OK) {
        ts_printf("status %d\n", (int)st);
        return 1;
    }
    ts_printf("result %u %u %u %u %u\n", (unsigned)res.epochs_run, (unsigned)res.test_count,
              (unsigned)res.test_correct_initial, (unsigned)res.test_correct_float,
              (unsigned)res.test_correct_int8);
    ts_printf("cycles");
    for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
        ts_printf(" %llu", (unsigned long long)res.cycles[ph]);
    }
    ts_printf("\n");
    print_floats("wx", res.weights, K * D);
    print_floats("bx", res.bias, K);
    ts_printf("qw");
    for (i = 0; i < K * D; ++i) {
        ts_printf(" %d", g_qw[i]);
    }
    ts_printf("\nqb");
    for (i = 0; i < K; ++i) {
        ts_printf(" %ld", (long)g_qb[i]);
    }
    ts_printf("\n");
    print_floats("qsx", &hq.weight_scale, 1);
    print_floats("qsbx", &hq.bias_scale, 1);
    ts_printf("qs 0 0 %ld %ld\n", (long)hq.multiplier, (long)hq.shift);
    ts_printf("logits8");
    for (s = 0; s < N_TEST; ++s) {
        ts_trainer_head_int8(&ts_export_model, &hq, g_cache + (N_TRAIN + s) * D, logits);
        for (i = 0; i < K; ++i) {
            ts_printf(" %d", logits[i]);
        }
    }
    ts_printf("\n");

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
}
