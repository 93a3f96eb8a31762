/*
 * tinysift firmware app: the command handlers of TSP/1 (docs/protocol.md): name, info,
 * db (app_db.c), train, eval, results, reset. Training fine-tunes the compiled-in export
 * (ts_trainer.h) on the training set `db` selects. update=head: from features cached in
 * static buffers (the feature window fills the caches: training set, then test set), then
 * ts_train_head_features() trains from them. update=last-block / bias: ts_train_head() runs
 * the frozen int8 layers for every sample it needs and trains the float layers above them
 * in the static backbone buffers; their scales come from the export's .tflite.
 *
 * Phases: the `@phase` records use the trainer's phases (ts_trainer_phase_t) and names
 * (ts_trainer_phase_name()). What the app counts in each differs from the trainer's
 * buckets only where the app fills the cache itself: see phases_of_train().
 */
#include <stdint.h>
#include <string.h>

#include "app.h"
#include "ts_engine.h"
#include "ts_platform.h"

/* ---- static buffers --------------------------------------------------------------------- */

static uint8_t s_arena[APP_ARENA] APP_ALIGNED(8);
static uint8_t s_ws[APP_WS_BYTES] APP_ALIGNED(4);
/* The training set's features (update=head) and the float layers' workspace (last-block,
 * bias) share one buffer: a train uses one or the other, and nothing reads either after it
 * (eval reads the test features, the re-quantized head and backbone). */
static uint8_t s_shared[APP_SHARED_BYTES] APP_ALIGNED(4);
static int8_t *const s_cache_train = (int8_t *)(void *)s_shared;
static uint8_t *const s_bb_ws = s_shared;
static int8_t s_cache_test[APP_CACHE_TEST_BYTES];
static int8_t s_head_w[APP_K * APP_D];
static int32_t s_head_b[APP_K];
static const float k_zero_head[APP_K * APP_D + APP_K]; /* init=zero: W then b, all 0 */
static ts_layer_t s_layers[APP_LAYERS];
/* update=last-block / bias: the float layers' re-quantized form */
static uint8_t s_bb_q[APP_BB_Q_BYTES] APP_ALIGNED(4);
static uint32_t s_per_class[TS_TRAINER_PER_CLASS_COUNT(APP_K)];

/* the protocol's update / schedule values are the trainer's */
typedef char app_update_values_match[
    ((int)TS_TRAIN_UPDATE_LAST_BLOCK == (int)TS_UPDATE_LAST_BLOCK &&
     (int)TS_TRAIN_UPDATE_BIAS == (int)TS_UPDATE_BIAS &&
     (int)TS_TRAIN_SCHEDULE_COSINE == (int)TS_SCHEDULE_COSINE &&
     (int)TS_TRAIN_SCHEDULE_STEP == (int)TS_SCHEDULE_STEP)
        ? 1
        : -1];

/* ---- state ------------------------------------------------------------------------------ */

static struct {
    /* heads */
    int test_features_valid; /* s_cache_test holds the test set's features */
    int head_trained;        /* the last train succeeded: float head in s_ws, int8 in head_q */
    uint32_t trained_update; /* its update mode */
    const float *trained_w;
    const float *trained_b;
    ts_head_q_t head_q;
    ts_model_t tuned;
    /* the last train, for `results` */
    int results_valid;
    uint32_t epochs_run;
    uint64_t epoch_lookup_cycles; /* the trainer's TS_PHASE_FEATURES inside the epochs */
    app_epoch_rec_t epochs[TS_APP_RESULT_EPOCHS];
    app_eval_rec_t before, after;
    uint64_t phases[TS_PHASE_COUNT];
} s_app;

void app_commands_init(void)
{
    memset(&s_app, 0, sizeof s_app);
}

int app_need_model(void)
{
    return app_export.model == NULL
               ? app_fail(TS_PROTO_ERR_NO_MODEL, "no_model:build_with_TS_EXPORT_DIR")
               : 0;
}

int app_sample_features(const int8_t *x, int8_t *f)
{
    const ts_model_t *m = app_export.model;
    if (m == NULL) {
        return TS_ERR_NULL;
    }
    if (m->head_layer == 0u) { /* no backbone: the features are the input */
        memcpy(f, x, m->feature_dim);
        return TS_OK;
    }
    return ts_run_layers(m, 0, m->head_layer, x, f, s_arena, sizeof s_arena);
}

/* TS_OK when `train update=<u>` can run: the trainer supports the model (else its status)
 * and the app's buffers hold what it needs (else TS_ERR_ARENA). */
static int update_usable(uint32_t u, ts_trainer_sizes_t *sz)
{
    int st = ts_trainer_sizes(app_export.model, u, sz);
    if (st != TS_OK || u == TS_UPDATE_HEAD) {
        return st;
    }
    if (!TS_APP_BACKBONE_TRAINING || sz->workspace_bytes > APP_BB_WS_BYTES ||
        sz->q_bytes > sizeof s_bb_q) {
        return TS_ERR_ARENA;
    }
    return TS_OK;
}

/* ---- heads and evaluation ----------------------------------------------------------------- */

/* Test-set features into s_cache_test (once; they do not depend on the head). */
static int ensure_test_features(uint64_t *cycles)
{
    int st;
    if (s_app.test_features_valid) {
        return TS_OK;
    }
    st = ts_trainer_extract_features(app_export.model, app_export.test, s_cache_test,
                                     sizeof s_cache_test, s_arena, sizeof s_arena, ts_cycles,
                                     cycles);
    s_app.test_features_valid = (st == TS_OK);
    return st;
}

typedef enum {
    HEAD_EXPORT,  /* the export's float head; int8: the exported head layer */
    HEAD_ZERO,    /* an all-zero head; its int8 form predicts exactly what the float one does */
    HEAD_TRAINED  /* the last train's float head (in s_ws); int8: the re-quantized head_q */
} head_kind_t;

/* One test prediction of each form, counted per class. */
static void tally(app_eval_rec_t *out, uint32_t y, uint32_t pred_float, uint32_t pred_int8)
{
    out->class_total[y]++;
    if (pred_float == y) {
        out->correct++;
        out->class_correct[y]++;
    }
    if (pred_int8 == y) {
        out->int8_correct++;
        out->class_int8_correct[y]++;
    }
}

/* A head on the cached test features: float and int8 predictions. */
static int eval_head(head_kind_t kind, app_eval_rec_t *out)
{
    const ts_model_t *m = app_export.model;
    const ts_dataset_t *test = app_export.test;
    const float *w, *b;
    uint32_t i, k_n;
    float z[APP_K];
    int8_t q[APP_K];
    memset(out, 0, sizeof *out);
    if (!APP_HAVE_MODEL || m == NULL) {
        return TS_ERR_NULL;
    }
    k_n = m->num_classes;
    switch (kind) {
    case HEAD_TRAINED:
        w = s_app.trained_w;
        b = s_app.trained_b;
        break;
    case HEAD_ZERO:
        w = k_zero_head;
        b = k_zero_head + (size_t)APP_K * APP_D;
        break;
    default:
        w = m->head_weights;
        b = m->head_bias;
        break;
    }
    out->total = test->count;
    for (i = 0; i < test->count; ++i) {
        const int8_t *f = s_cache_test + (size_t)i * m->feature_dim;
        uint32_t pred_f, pred_q;
        int st = TS_OK;
        ts_trainer_head_float(m, w, b, f, z);
        pred_f = ts_trainer_argmax_f(z, k_n);
        pred_q = pred_f;
        if (kind == HEAD_TRAINED) {
            st = ts_trainer_head_int8(m, &s_app.head_q, f, q);
            pred_q = ts_trainer_argmax_q(q, k_n);
        } else if (kind == HEAD_EXPORT) {
            st = ts_run_layers(m, m->head_layer, m->head_layer + 1u, f, q, s_arena,
                               sizeof s_arena);
            pred_q = ts_trainer_argmax_q(q, k_n);
        }
        if (st != TS_OK) {
            return st;
        }
        tally(out, test->y[i], pred_f, pred_q);
    }
    return TS_OK;
}

/* After a train with update=last-block or bias: the tuned int8 model on the test set (its
 * float model is the trainer's, unchanged since: s_app.after). */
static int eval_tuned(app_eval_rec_t *out)
{
    const ts_model_t *m = app_export.model;
    const ts_dataset_t *test = app_export.test;
    uint32_t i, k;
    int8_t f[APP_D];
    int8_t q[APP_K];
    *out = s_app.after;
    out->int8_correct = 0;
    for (k = 0; k < APP_K; ++k) {
        out->class_int8_correct[k] = 0;
    }
    for (i = 0; i < test->count; ++i) {
        int st = ts_run_layers(&s_app.tuned, 0, m->head_layer,
                               test->x + (size_t)i * test->sample_bytes, f, s_arena,
                               sizeof s_arena);
        if (st == TS_OK) {
            st = ts_trainer_head_int8(m, &s_app.head_q, f, q);
        }
        if (st != TS_OK) {
            return st;
        }
        if (ts_trainer_argmax_q(q, m->num_classes) == test->y[i]) {
            out->int8_correct++;
            out->class_int8_correct[test->y[i]]++;
        }
    }
    return TS_OK;
}

/* ---- train ---------------------------------------------------------------------------------- */

static int on_epoch(const ts_trainer_epoch_t *es, void *user)
{
    app_epoch_rec_t e;
    int ph;
    (void)user;
    app_window_close();
    e.n = es->epoch + 1u;
    e.loss = es->mean_loss;
    e.train_acc = es->train_accuracy;
    e.correct = es->correct;
    e.samples = es->samples;
    e.cycles = 0;
    for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
        e.cycles += es->cycles[ph];
    }
    s_app.epoch_lookup_cycles += es->cycles[TS_PHASE_FEATURES];
    s_app.epochs[es->epoch % TS_APP_RESULT_EPOCHS] = e;
    s_app.epochs_run = es->epoch + 1u;
    app_send_epoch(&e);
    app_window_open(); /* the next epoch, or the final evaluation */
    return 0;
}

/* The trainer's cycles into the app's phases (features: the app's own cache fill, already
 * in s_app.phases). The trainer's TS_PHASE_FEATURES bucket holds the lookups of cached
 * feature vectors (update=head) or the frozen layers run again for every sample
 * (last-block): those of the epochs go to head_forward, the rest to evaluation, so that the
 * phases add up to the epochs' cycles plus the evaluations. */
static void phases_of_train(const ts_trainer_result_t *res)
{
    s_app.phases[TS_PHASE_HEAD_FORWARD] =
        res->cycles[TS_PHASE_HEAD_FORWARD] + s_app.epoch_lookup_cycles;
    s_app.phases[TS_PHASE_BACKWARD] = res->cycles[TS_PHASE_BACKWARD];
    s_app.phases[TS_PHASE_UPDATE] = res->cycles[TS_PHASE_UPDATE];
    s_app.phases[TS_PHASE_EVALUATION] +=
        res->cycles[TS_PHASE_EVALUATION] +
        (res->cycles[TS_PHASE_FEATURES] - s_app.epoch_lookup_cycles);
}

/* What follows the epochs in `train` and `results`: the evaluations, the other phases, @mem. */
static void send_train_summary(void)
{
    int ph;
    app_send_eval("before", &s_app.before);
    app_send_eval("after", &s_app.after);
    for (ph = TS_PHASE_HEAD_FORWARD; ph < TS_PHASE_COUNT; ++ph) {
        app_send_phase((ts_trainer_phase_t)ph, s_app.phases[ph]);
    }
    app_send_mem();
}

/* The window of the features phase: update=head: the training set's features (train, then
 * extra) and the test set's into the caches; other modes: the test set's (the `before`
 * evaluation and `eval` read them). */
static int fill_caches(const ts_dataset_t *train, const ts_dataset_t *extra, uint32_t update)
{
    uint64_t c_train = 0, c_extra = 0, c_test = 0;
    int st = TS_OK;
    size_t at = (size_t)train->count * APP_D;
    app_window_open();
    if (update == TS_UPDATE_HEAD) {
        st = ts_trainer_extract_features(app_export.model, train, s_cache_train,
                                         APP_CACHE_TRAIN_BYTES, s_arena, sizeof s_arena,
                                         ts_cycles, &c_train);
        if (st == TS_OK && extra != NULL) {
            st = ts_trainer_extract_features(app_export.model, extra, s_cache_train + at,
                                             APP_CACHE_TRAIN_BYTES - at, s_arena,
                                             sizeof s_arena, ts_cycles, &c_extra);
        }
    }
    if (st == TS_OK) {
        s_app.test_features_valid = 0;
        st = ensure_test_features(&c_test);
    }
    app_window_close();
    s_app.phases[TS_PHASE_FEATURES] = c_train + c_extra + c_test;
    return st;
}

/* The trainer's config from the `train` arguments. */
static void train_config(const ts_train_args_t *a, ts_trainer_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->epochs = a->epochs;
    cfg->steps = a->steps;
    cfg->schedule = (uint32_t)a->schedule;
    cfg->balance = a->balance;
    cfg->update = (uint32_t)a->update;
    cfg->batch_size = a->batch;
    cfg->learning_rate = a->lr;
    cfg->momentum = a->momentum;
    cfg->seed = a->seed;
    cfg->eval_initial = 0;
    if (a->init == TS_INIT_ZERO) {
        cfg->init_weights = k_zero_head;
        cfg->init_bias = k_zero_head + (size_t)APP_K * APP_D;
    }
    cfg->cycles = ts_cycles;
    cfg->on_epoch = on_epoch;
}

/* The trainer's request: update=head trains from the cached features (train, then extra);
 * the other modes from the samples themselves, the frozen layers run again for each
 * (ts_train_head), with the backbone buffers and the .tflite. */
static void train_request(const ts_train_args_t *a, const ts_dataset_t *train,
                          const ts_dataset_t *extra, ts_dataset_t f[3],
                          ts_trainer_result_t *res, ts_train_request_t *req)
{
    const ts_model_t *m = app_export.model;
    *req = (ts_train_request_t){.workspace = s_ws, .workspace_bytes = sizeof s_ws,
                                .head_q = &s_app.head_q, .result = res,
                                .per_class = s_per_class};
    if (a->update == TS_TRAIN_UPDATE_HEAD) {
        f[0] = ts_trainer_feature_set(m, s_cache_train, train->y, train->count);
        f[2] = ts_trainer_feature_set(m, s_cache_test, app_export.test->y,
                                      app_export.test->count);
        req->train = &f[0];
        req->test = &f[2];
        if (extra != NULL) {
            f[1] = ts_trainer_feature_set(m, s_cache_train + (size_t)train->count * APP_D,
                                          extra->y, extra->count);
            req->train_extra = &f[1];
        }
        return;
    }
    req->train = train;
    req->train_extra = extra;
    req->test = app_export.test;
    req->arena = s_arena;
    req->arena_bytes = sizeof s_arena;
    req->backbone_ws = s_bb_ws;
    req->backbone_ws_bytes = APP_BB_WS_BYTES;
    req->backbone_q = s_bb_q;
    req->backbone_q_bytes = sizeof s_bb_q;
    req->layers = s_layers;
    req->layers_cap = APP_LAYERS;
#if TS_APP_BACKBONE_TRAINING && APP_HAVE_MODEL
    req->tflite = ts_export_tflite;
    req->tflite_bytes = ts_export_tflite_len;
#endif
}

/* The `after` record from the trainer's result and per-class counts. */
static void after_record(const ts_trainer_result_t *res)
{
    uint32_t k;
    app_eval_rec_t *e = &s_app.after;
    memset(e, 0, sizeof *e);
    e->correct = res->test_correct_float;
    e->int8_correct = res->test_correct_int8;
    e->total = res->test_count;
    for (k = 0; k < APP_K; ++k) {
        e->class_total[k] = s_per_class[k];
        e->class_correct[k] = s_per_class[2u * APP_K + k];
        e->class_int8_correct[k] = s_per_class[3u * APP_K + k];
    }
}

/* The checks of `train` before anything runs: the set, the mode, the buffers. */
static int train_checks(const ts_train_args_t *a, ts_dataset_t *ram_set,
                        const ts_dataset_t **train, const ts_dataset_t **extra)
{
    const ts_model_t *m = app_export.model;
    ts_trainer_sizes_t sz;
    uint32_t n;
    size_t ws;
    int st = app_need_model();
    if (st == 0) {
        st = app_db_train_set(ram_set, train, extra);
    }
    if (st != 0) {
        return st;
    }
    n = (*train)->count + (*extra != NULL ? (*extra)->count : 0u);
    st = update_usable((uint32_t)a->update, &sz);
    if (st != TS_OK) {
        return app_fail(st, st == TS_ERR_ARENA ? "buffers_too_small"
                                               : app_engine_status_name(st));
    }
    ws = ts_trainer_workspace_size(m, n);
    if (ws == 0 || ws > sizeof s_ws || (size_t)n * m->feature_dim > APP_CACHE_TRAIN_BYTES) {
        return app_fail(TS_ERR_ARENA, "buffers_too_small");
    }
    return 0;
}

static int cmd_train(const ts_train_args_t *a)
{
    const ts_model_t *m = app_export.model;
    ts_dataset_t ram_set, f[3];
    const ts_dataset_t *train, *extra;
    ts_trainer_config_t cfg;
    ts_train_request_t req;
    ts_trainer_result_t res;
    uint32_t t0;
    int st = train_checks(a, &ram_set, &train, &extra);
    if (st != 0) {
        return st;
    }

    s_app.head_trained = 0; /* the workspace (the trained float head) is about to change */
    s_app.results_valid = 0;
    s_app.epochs_run = 0;
    s_app.epoch_lookup_cycles = 0;
    memset(s_app.phases, 0, sizeof s_app.phases);

    st = fill_caches(train, extra, (uint32_t)a->update);
    if (st != TS_OK) {
        return app_fail(st, app_engine_status_name(st));
    }
    app_send_phase(TS_PHASE_FEATURES, s_app.phases[TS_PHASE_FEATURES]);

    /* windows: one per epoch (on_epoch closes and reopens them), then the evaluation: the
     * trainer's (trained model, float and int8, and its re-quantization), then the initial
     * head's ("before"), which needs the features and so comes after them */
    train_config(a, &cfg);
    s_app.head_q.weights = s_head_w;
    s_app.head_q.bias = s_head_b;
    train_request(a, train, extra, f, &res, &req);
    app_window_open();
    st = a->update == TS_TRAIN_UPDATE_HEAD ? ts_train_head_features(m, &cfg, &req)
                                           : ts_train_head(m, &cfg, &req);
    if (st == TS_OK) {
        t0 = ts_cycles();
        st = eval_head(a->init == TS_INIT_ZERO ? HEAD_ZERO : HEAD_EXPORT, &s_app.before);
        s_app.phases[TS_PHASE_EVALUATION] += (uint32_t)(ts_cycles() - t0);
    }
    app_window_close();
    if (st == TS_OK) {
        st = ts_trainer_patch_model(m, &s_app.head_q, s_layers, APP_LAYERS, &s_app.tuned);
    }
    if (st == TS_OK) {
        st = ts_trainer_patch_backbone(m, (uint32_t)a->update, s_bb_q, sizeof s_bb_q, s_layers,
                                       APP_LAYERS);
    }
    if (st != TS_OK) {
        return app_fail(st, app_engine_status_name(st));
    }
    s_app.head_trained = 1;
    s_app.trained_update = (uint32_t)a->update;
    s_app.trained_w = res.weights;
    s_app.trained_b = res.bias;
    after_record(&res);
    phases_of_train(&res);
    s_app.results_valid = 1;
    send_train_summary();
    return 0;
}

/* ---- eval, results, the others -------------------------------------------------------------- */

static int cmd_eval(void)
{
    app_eval_rec_t e;
    uint64_t c = 0;
    int st = app_need_model();
    if (st != 0) {
        return st;
    }
    app_window_open();
    st = ensure_test_features(&c);
    if (st == TS_OK && s_app.head_trained && s_app.trained_update != TS_UPDATE_HEAD) {
        st = eval_tuned(&e);
    } else if (st == TS_OK) {
        st = eval_head(s_app.head_trained ? HEAD_TRAINED : HEAD_EXPORT, &e);
    }
    app_window_close();
    if (st != TS_OK) {
        return app_fail(st, app_engine_status_name(st));
    }
    app_send_eval("current", &e);
    return 0;
}

static int cmd_results(void)
{
    uint32_t n, first;
    if (!s_app.results_valid) {
        return 0; /* no train yet (or the last one failed): nothing to repeat */
    }
    app_send_phase(TS_PHASE_FEATURES, s_app.phases[TS_PHASE_FEATURES]);
    first = s_app.epochs_run > TS_APP_RESULT_EPOCHS ? s_app.epochs_run - TS_APP_RESULT_EPOCHS
                                                    : 0u;
    for (n = first; n < s_app.epochs_run; ++n) {
        app_send_epoch(&s_app.epochs[n % TS_APP_RESULT_EPOCHS]);
    }
    send_train_summary();
    return 0;
}

static int cmd_info(void)
{
    app_send_info();
    app_send_mem();
    return 0;
}

/* Cortex-M: SCB AIRCR = VECTKEY | SYSRESETREQ (QEMU mps2 restarts the -kernel image; RAM,
 * hence .noinit, is kept). Elsewhere (native) it returns, and the app restarts in-process. */
static void system_reset(void)
{
#if defined(__arm__) && defined(__ARM_ARCH_PROFILE) && (__ARM_ARCH_PROFILE == 'M')
    ts_uart_flush();
    __asm__ volatile("dsb" ::: "memory");
    *(volatile uint32_t *)0xE000ED0Cu = 0x05FA0004u;
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {
    }
#endif
}

int app_run_command(const char *payload, size_t len)
{
    ts_command_t cmd;
    int st = (int)ts_command_parse(payload, len, &cmd);
    if (st != TS_PROTO_OK) {
        app_send_err((uint32_t)st, cmd.error);
        app_send_ready(cmd.name, (uint32_t)st);
        return 0;
    }
    switch (cmd.id) {
    case TS_CMD_NAME: app_send_name(); st = 0; break;
    case TS_CMD_INFO: st = cmd_info(); break;
    case TS_CMD_DB_LOAD: st = app_cmd_db_load(cmd.db_count); break;
    case TS_CMD_DB_USE: st = app_cmd_db_use(cmd.db_source); break;
    case TS_CMD_DB_STREAM: st = app_cmd_db_stream(cmd.db_count, &cmd.stream); break;
    case TS_CMD_DB_KEPT: st = app_cmd_db_kept(); break;
    case TS_CMD_TRAIN: st = cmd_train(&cmd.train); break;
    case TS_CMD_EVAL: st = cmd_eval(); break;
    case TS_CMD_RESULTS: st = cmd_results(); break;
    case TS_CMD_CALIB: st = app_cmd_calib(cmd.calib_ms); break;
    case TS_CMD_RESET:
        app_send_ready(cmd.name, 0);
        system_reset();
        return 1;
    default: st = app_fail(TS_PROTO_ERR_UNKNOWN_CMD, "unknown_command"); break;
    }
    if (st >= 0) { /* -1: db load waits for its data lines */
        app_send_ready(cmd.name, (uint32_t)st);
    }
    return 0;
}
