/*
 * tinysift firmware app: the device side of the serial protocol TSP/1 (docs/protocol.md).
 *
 * At boot it prints `@boot`, then reads host lines with the framer (ts_protocol.h) and runs
 * each command, ending every command with exactly one `@ready`. Training fine-tunes the
 * compiled-in export's classifier head (ts_trainer.h) on the compiled-in training set
 * (`db use flash`, the default) or on a set streamed over the link (`db load N`).
 *
 * The export comes from TS_EXPORT_DIR=RUN/export at build time (scripts/ts_export_dir.py).
 * Without one the app still builds and answers `name`, `info` and `reset`; the commands that
 * need a model answer `@err code=107`.
 *
 * Memory: no heap. Every buffer is a static array sized at build time from the export's
 * macros: the inference arena, the trainer workspace, the int8 feature cache (training set and
 * test set), the re-quantized head, the `db` RAM set (TS_DB_CAPACITY samples, default the
 * export's TRAIN_COUNT; -DTS_DB_CAPACITY=N changes it) and the line buffer. `info` and `@mem`
 * report their sizes.
 *
 * Measurement windows: every phase and every epoch of `train` runs between ts_marker(1) and
 * ts_marker(0) (the board's GPIO marker; a no-op on the emulated boards) and no serial byte is
 * sent inside a window: the UART is drained before a window opens and the records of a window
 * are sent after it closes.
 */
#include <stdint.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_model.h"
#include "ts_platform.h"
#include "ts_protocol.h"
#include "ts_trainer.h"
#include "ts_version.h"

#if defined(TS_HAVE_EXPORT)
#include "ts_export.h"
#define APP_HAVE_MODEL 1
#define APP_K TS_EXPORT_NUM_CLASSES
#define APP_D TS_EXPORT_FEATURE_DIM
#define APP_S TS_EXPORT_SAMPLE_BYTES
#define APP_N TS_EXPORT_TRAIN_COUNT
#define APP_T TS_EXPORT_TEST_COUNT
#define APP_LAYERS TS_EXPORT_NUM_LAYERS
#define APP_ARENA TS_EXPORT_ARENA_BYTES
#else
/* No export: placeholders so that every buffer still has a (tiny) size. */
#define APP_HAVE_MODEL 0
#define APP_K 1
#define APP_D 1
#define APP_S 1
#define APP_N 1
#define APP_T 1
#define APP_LAYERS 1
#define APP_ARENA 8
#endif

#ifndef TS_APP_NAME
#define TS_APP_NAME "tinysift-fw"
#endif

/* Samples the `db` RAM set holds (`db load N` accepts N <= this): the export's memory plan
 * (TS_EXPORT_DB_CAPACITY, at least 1), else its training-set size. */
#ifndef TS_DB_CAPACITY
#if defined(TS_EXPORT_DB_CAPACITY)
#define TS_DB_CAPACITY (TS_EXPORT_DB_CAPACITY > 0 ? TS_EXPORT_DB_CAPACITY : 1)
#else
#define TS_DB_CAPACITY APP_N
#endif
#endif
#if TS_DB_CAPACITY < 1 || TS_DB_CAPACITY > 65535
#error "TS_DB_CAPACITY must be in 1..65535 (the trainer's sample order is uint16)"
#endif

/* `results` repeats at most this many (the last) `@epoch` records. */
#ifndef TS_APP_RESULT_EPOCHS
#define TS_APP_RESULT_EPOCHS 64
#endif

#if defined(__GNUC__)
#define APP_ALIGNED(n) __attribute__((aligned(n)))
#else
#define APP_ALIGNED(n)
#endif

/* Kept across a system reset: QEMU's linker script has a NOLOAD .noinit section (neither
 * copied nor zeroed at reset); a real board's script needs one too (most vendor scripts have
 * it). Other targets (native) restart in-process and keep the counter in ordinary RAM. */
#if defined(TS_TARGET_QEMU) && defined(__GNUC__)
#define APP_NOINIT __attribute__((section(".noinit")))
#else
#define APP_NOINIT
#endif

#define APP_MAX(a, b) ((a) > (b) ? (a) : (b))
/* Largest training set: the compiled-in one or the RAM one. */
#define APP_NMAX APP_MAX(APP_N, TS_DB_CAPACITY)
/* The trainer's workspace for the largest training set, rounded up to 4 bytes. */
#define APP_WS_BYTES ((TS_TRAINER_WORKSPACE_BYTES(APP_K, APP_D, APP_NMAX) + 3u) & ~(size_t)3u)
/* Longest host line: a command (255) or a db data line. */
#define APP_LINE_MAX APP_MAX(TS_PROTO_MAX_LINE, TS_PROTO_DB_LINE_MAX(APP_S))

/* ---- static buffers --------------------------------------------------------------------- */

static uint8_t g_arena[APP_ARENA] APP_ALIGNED(8);
static uint8_t g_ws[APP_WS_BYTES] APP_ALIGNED(4);
static int8_t g_cache_train[(size_t)APP_NMAX * APP_D];
static int8_t g_cache_test[(size_t)APP_T * APP_D];
static int8_t g_head_w[APP_K * APP_D];
static int32_t g_head_b[APP_K];
static const float k_zero_head[APP_K * APP_D + APP_K]; /* init=zero: W then b, all 0 */
static ts_layer_t g_layers[APP_LAYERS];
static int8_t g_db_x[(size_t)TS_DB_CAPACITY * APP_S];
static uint8_t g_db_y[TS_DB_CAPACITY];
static char g_line[TS_FRAMER_BUF_BYTES(APP_LINE_MAX)];
static char g_rec_buf[TS_PROTO_RECORD_BUF];

static volatile uint32_t g_boot_magic APP_NOINIT;
static volatile uint32_t g_boot_resets APP_NOINIT;
static volatile uint32_t g_boot_check APP_NOINIT;
#define APP_BOOT_MAGIC 0x7153B007u

/* ---- state ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t n; /* 1-based */
    float loss;
    float train_acc;
    uint32_t correct;
    uint32_t samples;
    uint64_t cycles;
} epoch_rec_t;

typedef struct {
    uint32_t correct;      /* float head */
    uint32_t int8_correct; /* int8 head */
    uint32_t total;
} eval_rec_t;

typedef struct {
    const ts_model_t *model; /* NULL: built without an export */
    const ts_dataset_t *flash_train;
    const ts_dataset_t *test;
    ts_framer_t framer;
    ts_record_t rec;
    /* db */
    ts_db_source_t source;
    uint32_t db_count;       /* samples in the RAM set */
    int loading;             /* inside `db load`: data lines expected */
    uint32_t load_total;
    uint32_t load_done;
    uint32_t stray_data;     /* data lines outside a load (rest of an aborted load), dropped */
    /* heads */
    int test_features_valid; /* g_cache_test holds the test set's features */
    int head_trained;        /* the last train succeeded: float head in g_ws, int8 in g_head_* */
    const float *trained_w;
    const float *trained_b;
    ts_head_q_t head_q;
    ts_model_t tuned;
    /* the last train, for `results` */
    int results_valid;
    uint32_t epochs_run;
    uint64_t epoch_lookup_cycles; /* the trainer's TS_PHASE_FEATURES inside the epochs */
    epoch_rec_t epochs[TS_APP_RESULT_EPOCHS];
    eval_rec_t before, after;
    uint64_t phases[TS_PHASE_COUNT];
} app_t;

static app_t g_app;

/* ---- records ---------------------------------------------------------------------------- */

static ts_record_t *rec(const char *type)
{
    ts_record_begin(&g_app.rec, g_rec_buf, sizeof g_rec_buf, type);
    return &g_app.rec;
}

static void rec_send(void)
{
    size_t n = ts_record_end(&g_app.rec);
    if (n == 0) { /* a record too long for a line: a bug; say so instead of a broken line */
        ts_record_t *r = rec("err");
        ts_record_u32(r, "code", TS_PROTO_ERR_TOO_LONG);
        ts_record_text(r, "msg", "record_overflow");
        n = ts_record_end(r);
    }
    ts_uart_write(g_rec_buf, n);
}

static void send_err(uint32_t code, const char *msg)
{
    ts_record_t *r = rec("err");
    ts_record_u32(r, "code", code);
    ts_record_text(r, "msg", msg);
    rec_send();
}

static void send_ready(const char *cmd, uint32_t status)
{
    ts_record_t *r = rec("ready");
    ts_record_text(r, "cmd", cmd);
    ts_record_u32(r, "status", status);
    rec_send();
}

static float ratio(uint32_t k, uint32_t n)
{
    return n > 0u ? (float)k / (float)n : 0.0f;
}

static void send_eval(const char *when, const eval_rec_t *e)
{
    ts_record_t *r = rec("eval");
    ts_record_text(r, "when", when);
    ts_record_real(r, "acc", ratio(e->correct, e->total));
    ts_record_u32(r, "correct", e->correct);
    ts_record_u32(r, "total", e->total);
    ts_record_real(r, "int8_acc", ratio(e->int8_correct, e->total));
    rec_send();
}

static void send_epoch(const epoch_rec_t *e)
{
    ts_record_t *r = rec("epoch");
    ts_record_u32(r, "n", e->n);
    ts_record_real(r, "loss", e->loss);
    ts_record_real(r, "train_acc", e->train_acc);
    ts_record_u32(r, "correct", e->correct);
    ts_record_u32(r, "samples", e->samples);
    ts_record_u64(r, "cycles", e->cycles);
    rec_send();
}

/* The phases are the trainer's, named by ts_trainer_phase_name(). */
static void send_phase(ts_trainer_phase_t ph)
{
    ts_record_t *r = rec("phase");
    ts_record_text(r, "name", ts_trainer_phase_name(ph));
    ts_record_u64(r, "cycles", g_app.phases[ph]);
    rec_send();
}

static size_t model_bytes(size_t n)
{
    return g_app.model != NULL ? n : 0u;
}

static void send_mem(void)
{
    ts_record_t *r = rec("mem");
    ts_record_u32(r, "stack_hwm", (uint32_t)ts_stack_high_water());
    ts_record_u32(r, "stack", (uint32_t)ts_stack_size());
    ts_record_u32(r, "arena", (uint32_t)model_bytes(sizeof g_arena));
    ts_record_u32(r, "workspace", (uint32_t)model_bytes(sizeof g_ws));
    ts_record_u32(r, "cache", (uint32_t)model_bytes(sizeof g_cache_train + sizeof g_cache_test));
    ts_record_u32(r, "db", (uint32_t)model_bytes(sizeof g_db_x + sizeof g_db_y));
    rec_send();
}

static const char *engine_status_name(int st)
{
    switch (st) {
    case TS_ERR_NULL: return "engine:null";
    case TS_ERR_VERSION: return "engine:version";
    case TS_ERR_SHAPE: return "engine:shape";
    case TS_ERR_ARENA: return "engine:arena";
    case TS_ERR_UNSUPPORTED_OP: return "engine:unsupported_op";
    case TS_ERR_PARAM: return "engine:param";
    case TS_ERR_DATA: return "engine:data";
    default: return "engine:error";
    }
}

/* ---- memory figures of the image (QEMU linker script symbols; 0 where unknown) ---------- */

#if defined(TS_TARGET_QEMU)
extern uint32_t __stack_bottom[], __noinit_end[], __data_load[], __data_start[], __data_end[];
static uint32_t ram_static_bytes(void)
{
    return (uint32_t)((uintptr_t)__noinit_end - (uintptr_t)__stack_bottom);
}
static uint32_t flash_bytes(void)
{
    /* FLASH starts at 0: everything up to the end of .data's load image */
    return (uint32_t)((uintptr_t)__data_load + ((uintptr_t)__data_end - (uintptr_t)__data_start));
}
#else
static uint32_t ram_static_bytes(void)
{
    return 0u;
}
static uint32_t flash_bytes(void)
{
    return 0u;
}
#endif

/* ---- measurement windows ---------------------------------------------------------------- */

static void window_open(void)
{
    ts_uart_flush(); /* no serial bytes inside a window */
    ts_cycles_align(); /* readings inside the window repeat exactly run to run (-icount) */
    ts_marker(1);
}

static void window_close(void)
{
    ts_marker(0);
}

/* ---- heads and evaluation ----------------------------------------------------------------- */

/* Test-set features into g_cache_test (once; they do not depend on the head). */
static int ensure_test_features(uint64_t *cycles)
{
    const ts_model_t *m = g_app.model;
    int st;
    if (g_app.test_features_valid) {
        return TS_OK;
    }
    st = ts_trainer_extract_features(m, g_app.test, g_cache_test, sizeof g_cache_test, g_arena,
                                     sizeof g_arena, ts_cycles, cycles);
    g_app.test_features_valid = (st == TS_OK);
    return st;
}

typedef enum {
    HEAD_EXPORT,  /* the export's float head; int8: the exported head layer */
    HEAD_ZERO,    /* an all-zero head; its int8 form predicts exactly what the float one does */
    HEAD_TRAINED  /* the last train's float head (in g_ws); int8: the re-quantized g_head_q */
} head_kind_t;

/* A head on the cached test features: float and int8 predictions. */
static int eval_head(head_kind_t kind, eval_rec_t *out)
{
    const ts_model_t *m = g_app.model;
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
        w = g_app.trained_w;
        b = g_app.trained_b;
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
    out->total = g_app.test->count;
    for (i = 0; i < g_app.test->count; ++i) {
        const int8_t *f = g_cache_test + (size_t)i * m->feature_dim;
        uint32_t y = g_app.test->y[i];
        uint32_t pred;
        int st = TS_OK;
        ts_trainer_head_float(m, w, b, f, z);
        pred = ts_trainer_argmax_f(z, k_n);
        out->correct += pred == y;
        if (kind == HEAD_TRAINED) {
            st = ts_trainer_head_int8(m, &g_app.head_q, f, q);
            pred = ts_trainer_argmax_q(q, k_n);
        } else if (kind == HEAD_EXPORT) {
            st = ts_run_layers(m, m->head_layer, m->head_layer + 1u, f, q, g_arena,
                               sizeof g_arena);
            pred = ts_trainer_argmax_q(q, k_n);
        }
        if (st != TS_OK) {
            return st;
        }
        out->int8_correct += pred == y;
    }
    return TS_OK;
}

/* ---- commands ----------------------------------------------------------------------------- */

static int fail(int code, const char *msg)
{
    send_err((uint32_t)code, msg);
    return code;
}

static int need_model(void)
{
    return g_app.model == NULL ? fail(TS_PROTO_ERR_NO_MODEL, "no_model:build_with_TS_EXPORT_DIR")
                               : 0;
}

static int cmd_name(void)
{
    ts_record_t *r = rec("name");
    ts_record_text(r, "name", TS_APP_NAME);
    rec_send();
    return 0;
}

static int cmd_info(void)
{
    const ts_model_t *m = g_app.model;
    ts_record_t *r = rec("info");
    ts_record_u32(r, "proto", TS_PROTO_VERSION);
    ts_record_u32(r, "format", m != NULL ? m->format_version : 0u);
    ts_record_text(r, "model", m != NULL ? m->content_hash : "none");
    ts_record_u32(r, "train", m != NULL ? g_app.flash_train->count : 0u);
    ts_record_u32(r, "test", m != NULL ? g_app.test->count : 0u);
    ts_record_u32(r, "classes", m != NULL ? m->num_classes : 0u);
    ts_record_u32(r, "features", m != NULL ? m->feature_dim : 0u);
    ts_record_u32(r, "sample_bytes", m != NULL ? g_app.flash_train->sample_bytes : 0u);
    ts_record_u32(r, "db_capacity", m != NULL ? (uint32_t)TS_DB_CAPACITY : 0u);
    ts_record_u32(r, "arena", (uint32_t)model_bytes(sizeof g_arena));
    ts_record_u32(r, "ram_static", ram_static_bytes());
    ts_record_u32(r, "flash", flash_bytes());
    ts_record_text(r, "counter", ts_cycle_counter_name());
    ts_record_u32(r, "hz", ts_cycles_hz());
    ts_record_i32(r, "icount_shift", ts_icount_shift());
    rec_send();
    send_mem();
    return 0;
}

static void send_db(uint32_t loaded, const char *source)
{
    ts_record_t *r = rec("db");
    ts_record_u32(r, "loaded", loaded);
    ts_record_text(r, "source", source);
    rec_send();
}

/* Starts a load; returns -1 (no @ready yet: the data lines follow) or an error code. */
static int cmd_db_load(uint32_t count)
{
    int st = need_model();
    if (st != 0) {
        return st;
    }
    if (count > TS_DB_CAPACITY) {
        return fail(TS_PROTO_ERR_DB_CAPACITY, "above_db_capacity");
    }
    g_app.loading = 1;
    g_app.load_total = count;
    g_app.load_done = 0;
    g_app.db_count = 0; /* loaded in place: the previous RAM set is gone */
    return -1;
}

static void load_end(int code, const char *msg)
{
    g_app.loading = 0;
    if (code == 0) {
        g_app.db_count = g_app.load_total;
        g_app.source = TS_DB_RAM;
        send_db(g_app.db_count, "ram");
    } else {
        g_app.db_count = 0;
        send_err((uint32_t)code, msg);
    }
    send_ready("db", (uint32_t)code);
}

static void load_line(const char *p, size_t n)
{
    uint32_t i = g_app.load_done;
    ts_proto_status_t st =
        ts_db_decode_line(p, n, g_app.model->num_classes, g_db_x + (size_t)i * APP_S, APP_S,
                          &g_db_y[i]);
    if (st != TS_PROTO_OK) {
        load_end(st, "malformed_data_line");
        return;
    }
    if (++g_app.load_done == g_app.load_total) {
        load_end(0, NULL);
    }
}

static int cmd_db_use(ts_db_source_t src)
{
    int st = need_model();
    if (st != 0) {
        return st;
    }
    if (src == TS_DB_RAM) {
        if (g_app.db_count == 0) {
            return fail(TS_PROTO_ERR_NO_DATA, "no_data_loaded");
        }
        g_app.source = TS_DB_RAM;
        send_db(g_app.db_count, "ram");
    } else {
        g_app.source = TS_DB_FLASH;
        send_db(g_app.flash_train->count, "flash");
    }
    return 0;
}

static int on_epoch(const ts_trainer_epoch_t *es, void *user)
{
    epoch_rec_t e;
    int ph;
    (void)user;
    window_close();
    e.n = es->epoch + 1u;
    e.loss = es->mean_loss;
    e.train_acc = es->train_accuracy;
    e.correct = es->correct;
    e.samples = es->samples;
    e.cycles = 0;
    for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
        e.cycles += es->cycles[ph];
    }
    g_app.epoch_lookup_cycles += es->cycles[TS_PHASE_FEATURES];
    g_app.epochs[es->epoch % TS_APP_RESULT_EPOCHS] = e;
    g_app.epochs_run = es->epoch + 1u;
    send_epoch(&e);
    window_open(); /* the next epoch, or the final evaluation */
    return 0;
}

static int cmd_train(const ts_train_args_t *a)
{
    const ts_model_t *m = g_app.model;
    ts_dataset_t ram_set, train_f, test_f;
    const ts_dataset_t *train;
    ts_trainer_config_t cfg;
    ts_train_request_t req;
    ts_trainer_result_t res;
    uint64_t c_train = 0, c_test = 0;
    uint32_t t0;
    size_t ws;
    int st = need_model();
    if (st != 0) {
        return st;
    }
    if (g_app.source == TS_DB_RAM) {
        if (g_app.db_count == 0) {
            return fail(TS_PROTO_ERR_NO_DATA, "no_data_loaded");
        }
        ram_set.count = g_app.db_count;
        ram_set.sample_bytes = APP_S;
        ram_set.x = g_db_x;
        ram_set.y = g_db_y;
        train = &ram_set;
    } else {
        train = g_app.flash_train;
    }
    ws = ts_trainer_workspace_size(m, train->count);
    if (ws == 0 || ws > sizeof g_ws ||
        (size_t)train->count * m->feature_dim > sizeof g_cache_train) {
        return fail(TS_ERR_ARENA, "buffers_too_small");
    }

    g_app.head_trained = 0; /* the workspace (the trained float head) is about to change */
    g_app.results_valid = 0;
    g_app.epochs_run = 0;
    g_app.epoch_lookup_cycles = 0;
    memset(g_app.phases, 0, sizeof g_app.phases);

    /* window: features of the training and the test set (the cache) */
    window_open();
    st = ts_trainer_extract_features(m, train, g_cache_train, sizeof g_cache_train, g_arena,
                                     sizeof g_arena, ts_cycles, &c_train);
    if (st == TS_OK) {
        g_app.test_features_valid = 0;
        st = ensure_test_features(&c_test);
    }
    window_close();
    if (st != TS_OK) {
        return fail(st, engine_status_name(st));
    }
    g_app.phases[TS_PHASE_FEATURES] = c_train + c_test;

    send_phase(TS_PHASE_FEATURES);

    /* windows: one per epoch (on_epoch closes and reopens them), then the evaluation: the
     * trainer's (trained head, float and int8, and its re-quantization), then the initial
     * head's ("before"), which needs the features and so comes after them */
    memset(&cfg, 0, sizeof cfg);
    cfg.epochs = a->epochs;
    cfg.batch_size = a->batch;
    cfg.learning_rate = a->lr;
    cfg.momentum = a->momentum;
    cfg.seed = a->seed;
    cfg.eval_initial = 0;
    if (a->init == TS_INIT_ZERO) {
        cfg.init_weights = k_zero_head;
        cfg.init_bias = k_zero_head + (size_t)APP_K * APP_D;
    }
    cfg.cycles = ts_cycles;
    cfg.on_epoch = on_epoch;
    g_app.head_q.weights = g_head_w;
    g_app.head_q.bias = g_head_b;
    /* the cached features as the trainer's feature sets */
    train_f = ts_trainer_feature_set(m, g_cache_train, train->y, train->count);
    test_f = ts_trainer_feature_set(m, g_cache_test, g_app.test->y, g_app.test->count);
    req = (ts_train_request_t){.train = &train_f, .test = &test_f, .workspace = g_ws,
                               .workspace_bytes = sizeof g_ws, .head_q = &g_app.head_q,
                               .result = &res};
    window_open();
    st = ts_train_head_features(m, &cfg, &req);
    if (st == TS_OK) {
        t0 = ts_cycles();
        st = eval_head(a->init == TS_INIT_ZERO ? HEAD_ZERO : HEAD_EXPORT, &g_app.before);
        g_app.phases[TS_PHASE_EVALUATION] += (uint32_t)(ts_cycles() - t0);
    }
    window_close();
    if (st == TS_OK) {
        st = ts_trainer_patch_model(m, &g_app.head_q, g_layers, APP_LAYERS, &g_app.tuned);
    }
    if (st != TS_OK) {
        return fail(st, engine_status_name(st));
    }
    g_app.head_trained = 1;
    g_app.trained_w = res.weights;
    g_app.trained_b = res.bias;
    g_app.after.correct = res.test_correct_float;
    g_app.after.int8_correct = res.test_correct_int8;
    g_app.after.total = res.test_count;
    /* The app's features phase is its own cache fill (above). With cached features the
     * trainer's TS_PHASE_FEATURES bucket only holds the lookups of cached feature vectors:
     * those of the epochs go to head_forward, the rest to evaluation, so that the phases add
     * up to the epochs' cycles plus the evaluations. */
    g_app.phases[TS_PHASE_HEAD_FORWARD] =
        res.cycles[TS_PHASE_HEAD_FORWARD] + g_app.epoch_lookup_cycles;
    g_app.phases[TS_PHASE_BACKWARD] = res.cycles[TS_PHASE_BACKWARD];
    g_app.phases[TS_PHASE_UPDATE] = res.cycles[TS_PHASE_UPDATE];
    g_app.phases[TS_PHASE_EVALUATION] +=
        res.cycles[TS_PHASE_EVALUATION] +
        (res.cycles[TS_PHASE_FEATURES] - g_app.epoch_lookup_cycles);
    g_app.results_valid = 1;

    send_eval("before", &g_app.before);
    send_eval("after", &g_app.after);
    send_phase(TS_PHASE_HEAD_FORWARD);
    send_phase(TS_PHASE_BACKWARD);
    send_phase(TS_PHASE_UPDATE);
    send_phase(TS_PHASE_EVALUATION);
    send_mem();
    return 0;
}

static int cmd_eval(void)
{
    eval_rec_t e;
    uint64_t c = 0;
    int st = need_model();
    if (st != 0) {
        return st;
    }
    window_open();
    st = ensure_test_features(&c);
    if (st == TS_OK) {
        st = eval_head(g_app.head_trained ? HEAD_TRAINED : HEAD_EXPORT, &e);
    }
    window_close();
    if (st != TS_OK) {
        return fail(st, engine_status_name(st));
    }
    send_eval("current", &e);
    return 0;
}

static int cmd_results(void)
{
    uint32_t n, first;
    if (!g_app.results_valid) {
        return 0; /* no train yet (or the last one failed): nothing to repeat */
    }
    send_phase(TS_PHASE_FEATURES);
    first = g_app.epochs_run > TS_APP_RESULT_EPOCHS ? g_app.epochs_run - TS_APP_RESULT_EPOCHS
                                                    : 0u;
    for (n = first; n < g_app.epochs_run; ++n) {
        send_epoch(&g_app.epochs[n % TS_APP_RESULT_EPOCHS]);
    }
    send_eval("before", &g_app.before);
    send_eval("after", &g_app.after);
    send_phase(TS_PHASE_HEAD_FORWARD);
    send_phase(TS_PHASE_BACKWARD);
    send_phase(TS_PHASE_UPDATE);
    send_phase(TS_PHASE_EVALUATION);
    send_mem();
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

/* ---- the command loop --------------------------------------------------------------------- */

static void boot(void)
{
    const ts_model_t *m;
    ts_record_t *r;
    uint32_t resets = 0;
    if (g_boot_magic == APP_BOOT_MAGIC && g_boot_check == ~g_boot_resets) {
        resets = g_boot_resets + 1u;
    }
    g_boot_resets = resets;
    g_boot_check = ~resets;
    g_boot_magic = APP_BOOT_MAGIC;

    memset(&g_app, 0, sizeof g_app);
#if APP_HAVE_MODEL
    g_app.model = &ts_export_model;
    g_app.flash_train = &ts_export_train;
    g_app.test = &ts_export_test;
#endif
    g_app.source = TS_DB_FLASH;
    ts_framer_init(&g_app.framer, g_line, sizeof g_line, APP_LINE_MAX);

    m = g_app.model;
    r = rec("boot");
    ts_record_u32(r, "proto", TS_PROTO_VERSION);
    ts_record_u32(r, "fw", (uint32_t)ts_engine_version());
    ts_record_text(r, "board", ts_platform_name());
    ts_record_text(r, "counter", ts_cycle_counter_name());
    ts_record_u32(r, "hz", ts_cycles_hz());
    ts_record_u32(r, "resets", resets);
    ts_record_text(r, "model", m != NULL ? m->content_hash : "none");
    rec_send();
}

/* A framed line that failed validation (or a command line above TS_PROTO_MAX_LINE). */
static void bad_line(int code, const char *msg)
{
    if (g_app.loading) {
        load_end(code, msg);
    } else {
        send_err((uint32_t)code, msg);
        send_ready("-", (uint32_t)code);
    }
}

/* Runs one command line; returns 1 when the app must restart (reset without hardware). */
static int run_command(const char *payload, size_t len)
{
    ts_command_t cmd;
    int st = (int)ts_command_parse(payload, len, &cmd);
    if (st != TS_PROTO_OK) {
        send_err((uint32_t)st, cmd.error);
        send_ready(cmd.name, (uint32_t)st);
        return 0;
    }
    switch (cmd.id) {
    case TS_CMD_NAME: st = cmd_name(); break;
    case TS_CMD_INFO: st = cmd_info(); break;
    case TS_CMD_DB_LOAD: st = cmd_db_load(cmd.db_count); break;
    case TS_CMD_DB_USE: st = cmd_db_use(cmd.db_source); break;
    case TS_CMD_TRAIN: st = cmd_train(&cmd.train); break;
    case TS_CMD_EVAL: st = cmd_eval(); break;
    case TS_CMD_RESULTS: st = cmd_results(); break;
    case TS_CMD_RESET:
        send_ready(cmd.name, 0);
        system_reset();
        return 1;
    default: st = fail(TS_PROTO_ERR_UNKNOWN_CMD, "unknown_command"); break;
    }
    if (st >= 0) { /* -1: db load waits for its data lines */
        send_ready(cmd.name, (uint32_t)st);
    }
    return 0;
}

/* Returns 1 to restart, 0 at the end of input (native). */
static int app_run(void)
{
    boot();
    for (;;) {
        const char *payload = NULL;
        size_t len = 0;
        ts_frame_result_t fr;
        int c = ts_uart_getc();
        if (c < 0) {
            return 0;
        }
        fr = ts_framer_push(&g_app.framer, (uint8_t)c, &payload, &len);
        if (fr == TS_FRAME_PENDING || fr == TS_FRAME_EMPTY) {
            continue;
        }
        if (fr != TS_FRAME_LINE) {
            bad_line((int)ts_frame_status(fr), ts_frame_result_name(fr));
            continue;
        }
        if (ts_db_is_data_line(payload, len)) {
            if (g_app.loading) {
                load_line(payload, len);
            } else {
                g_app.stray_data++; /* the rest of an aborted load: dropped */
            }
            continue;
        }
        if (len + TS_PROTO_FRAME_BYTES > TS_PROTO_MAX_LINE) {
            bad_line(TS_PROTO_ERR_TOO_LONG, "too_long");
            continue;
        }
        if (g_app.loading) { /* a command where data was expected: the load is over */
            load_end(TS_PROTO_ERR_DB_MALFORMED, "load_interrupted");
        }
        if (run_command(payload, len)) {
            return 1;
        }
    }
}

int main(void)
{
    while (app_run()) {
    }
    return 0;
}
