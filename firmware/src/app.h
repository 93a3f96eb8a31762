/*
 * tinysift firmware app: what its parts share (build-time sizes, the compiled-in export, the
 * record types and each part's functions). The parts, one concern each:
 *
 *   main.c          boot (the reset counter) and the command loop: framing, data lines
 *   app_commands.c  the command handlers (name, info, train, eval, results, reset) and the
 *                   static buffers of training: arena, workspace, feature caches, head,
 *                   the backbone buffers of update=last-block / bias
 *   app_db.c        `db load` / `db use`: the RAM training set and the load state machine
 *   app_stream.c    `db stream` / `db kept`: the RAM set kept by a replay policy while
 *                   samples stream in (ts_replay.h), and its survival across a reset
 *   app_records.c   the typed @-records (docs/protocol.md) and the image's memory figures
 *   app_window.c    the measurement windows (marker + drained UART)
 *   app_calib.c     `calib`: the fixed workload of an energy calibration
 *
 * Memory: no heap. Every buffer is a static array sized at build time from the export's
 * macros (below); `info` and `@mem` report their sizes.
 */
#ifndef APP_H
#define APP_H

#include <stddef.h>
#include <stdint.h>

#include "ts_kernels.h"
#include "ts_model.h"
#include "ts_protocol.h"
#include "ts_replay.h"
#include "ts_trainer.h"

#if defined(TS_HAVE_EXPORT)
#include "ts_export.h"
#define APP_HAVE_MODEL 1
#define APP_K TS_EXPORT_NUM_CLASSES
#define APP_D TS_EXPORT_FEATURE_DIM
#define APP_S TS_EXPORT_SAMPLE_BYTES
#define APP_N TS_EXPORT_TRAIN_COUNT
#define APP_T TS_EXPORT_TEST_COUNT
#define APP_LAYERS TS_EXPORT_NUM_LAYERS
/* ts_arena_size(): the planned tensors, then the DSP kernels' scratch (ts_kernels.h) */
#define APP_ARENA TS_ARENA_BYTES(TS_EXPORT_ARENA_BYTES, TS_EXPORT_SCRATCH_BYTES)
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

/* Kept across a system reset: the bare-metal targets' linker script (the shared Cortex-M
 * layout, boards/runtime/cortex-m/ts_sections.ld: QEMU and the STM32 boards) has a NOLOAD
 * .noinit section (neither copied nor zeroed at reset; SRAM keeps its contents over a system
 * reset). Other targets (native, the framework ports) restart in-process or zero it: they
 * keep these in ordinary RAM. */
#if (defined(TS_TARGET_QEMU) || defined(TS_TARGET_BAREMETAL)) && defined(__GNUC__)
#define APP_NOINIT __attribute__((section(".noinit")))
#else
#define APP_NOINIT
#endif

#define APP_MAX(a, b) ((a) > (b) ? (a) : (b))
/* Largest training set: the compiled-in one and the RAM one (`db use both`). */
#define APP_NMAX (APP_N + TS_DB_CAPACITY)

/* update=last-block / bias: the model's dims (the build script ts_export_dir.py defines
 * them from the export's export.json; 0 where the model has no such layers) and the
 * buffers they size. -DTS_APP_BACKBONE_TRAINING=0 leaves the buffers out (and the .tflite
 * the scales are read from): `train update=last-block|bias` then answers code 4. */
#ifndef TS_APP_BACKBONE_TRAINING
#define TS_APP_BACKBONE_TRAINING APP_HAVE_MODEL
#endif
#ifndef TS_MODEL_BLOCK_IN_C
#define TS_MODEL_BLOCK_IN_C 0
#define TS_MODEL_BLOCK_PIXELS 0
#endif
#ifndef TS_MODEL_BIAS_CHANNELS
#define TS_MODEL_BIAS_CHANNELS 0
#define TS_MODEL_BIAS_ACT_MAX 0
#define TS_MODEL_BIAS_MASK_BITS 0
#endif
#if TS_APP_BACKBONE_TRAINING && APP_HAVE_MODEL
#define APP_HEAD_LAYER TS_EXPORT_HEAD_LAYER
#define APP_BLOCK_WS                                                                        \
    (TS_MODEL_BLOCK_IN_C > 0 ? TS_TRAINER_BLOCK_WORKSPACE_BYTES(APP_HEAD_LAYER, TS_MODEL_BLOCK_IN_C,  \
                                                                APP_D, TS_MODEL_BLOCK_PIXELS) \
                             : 0u)
#define APP_BIAS_WS                                                                         \
    (TS_MODEL_BIAS_CHANNELS > 0                                                             \
         ? TS_TRAINER_BIAS_WORKSPACE_BYTES(APP_HEAD_LAYER, TS_MODEL_BIAS_CHANNELS,                   \
                                           TS_MODEL_BIAS_ACT_MAX, TS_MODEL_BIAS_MASK_BITS)  \
         : 0u)
#define APP_BB_WS_BYTES ((APP_MAX(APP_MAX(APP_BLOCK_WS, APP_BIAS_WS), 4u) + 3u) & ~(size_t)3u)
#define APP_BLOCK_Q                                                                         \
    (TS_MODEL_BLOCK_IN_C > 0 ? TS_TRAINER_BLOCK_Q_BYTES(TS_MODEL_BLOCK_IN_C, APP_D) : 0u)
#define APP_BB_Q_BYTES                                                                      \
    ((APP_MAX(APP_MAX(APP_BLOCK_Q, TS_TRAINER_BIAS_Q_BYTES(TS_MODEL_BIAS_CHANNELS)), 4u) +   \
      3u) &                                                                                 \
     ~(size_t)3u)
#else
#define APP_BB_WS_BYTES 4u
#define APP_BB_Q_BYTES 4u
#endif

/* The static buffers' sizes (`info` and `@mem` report them). */
/* The trainer's workspace for the largest training set, rounded up to 4 bytes. */
#define APP_WS_BYTES ((TS_TRAINER_WORKSPACE_BYTES(APP_K, APP_D, APP_NMAX) + 3u) & ~(size_t)3u)
#define APP_CACHE_TRAIN_BYTES ((size_t)APP_NMAX * APP_D) /* features of the training set */
/* ... sharing one buffer with the float layers' workspace (app_commands.c) */
#define APP_SHARED_BYTES                                                                    \
    ((APP_MAX(APP_CACHE_TRAIN_BYTES, (size_t)APP_BB_WS_BYTES) + 3u) & ~(size_t)3u)
#define APP_CACHE_TEST_BYTES ((size_t)APP_T * APP_D)     /* features of the test set */
#define APP_DB_X_BYTES ((size_t)TS_DB_CAPACITY * APP_S)  /* the RAM set's samples */
#define APP_DB_Y_BYTES ((size_t)TS_DB_CAPACITY)          /* and its labels */
/* `db stream policy=coverage`: the export's per-class VQ codebook (C codewords per class in
 * the feature space; 0 without one: reservoir only) and the upkeep's workspace for a buffer
 * of up to TS_DB_CAPACITY samples (ts_replay.h). */
#if defined(TS_EXPORT_VQ_PER_CLASS) && APP_HAVE_MODEL
#define APP_VQ_C TS_EXPORT_VQ_PER_CLASS
#else
#define APP_VQ_C 0
#endif
#define APP_STREAM_WS_BYTES                                                                 \
    TS_REPLAY_WORKSPACE_BYTES(TS_DB_CAPACITY, APP_K, APP_VQ_C, APP_VQ_C > 0 ? APP_D : 0)
/* Longest host line: a command (255) or a db data line. */
#define APP_LINE_MAX APP_MAX(TS_PROTO_MAX_LINE, TS_PROTO_DB_LINE_MAX(APP_S))

/* The compiled-in export; every pointer NULL when the app is built without one. */
typedef struct {
    const ts_model_t *model;
    const ts_dataset_t *flash_train;
    const ts_dataset_t *test;
} app_export_t;

extern const app_export_t app_export;

/* ---- records (app_records.c) ------------------------------------------------------------ */

typedef struct {
    uint32_t n; /* 1-based */
    float loss;
    float train_acc;
    uint32_t correct;
    uint32_t samples;
    uint64_t cycles;
} app_epoch_rec_t;

typedef struct {
    uint32_t correct;      /* float model */
    uint32_t int8_correct; /* int8 model */
    uint32_t total;
    /* per class (the `@class` records) */
    uint32_t class_correct[APP_K];
    uint32_t class_int8_correct[APP_K];
    uint32_t class_total[APP_K];
} app_eval_rec_t;

/* A record of this type, to be filled with ts_record_*() and sent with app_rec_send(). */
ts_record_t *app_rec(const char *type);
void app_rec_send(void);

void app_send_err(uint32_t code, const char *msg);
void app_send_ready(const char *cmd, uint32_t status);
/* @err code msg; returns code (for `return app_fail(...)` in a command). */
int app_fail(int code, const char *msg);
/* The engine's status code as an @err msg ("engine:arena", ...). */
const char *app_engine_status_name(int st);

/* @boot; db: the samples of a streamed RAM set that survived the reset (0: none). */
void app_send_boot(uint32_t resets, uint32_t db);
void app_send_name(void);
void app_send_info(void);
void app_send_mem(void);
void app_send_db(uint32_t loaded, const char *source);
void app_send_epoch(const app_epoch_rec_t *e);
/* @eval when=..., then one @class record per class */
void app_send_eval(const char *when, const app_eval_rec_t *e);
/* @phase name=<ts_trainer_phase_name(phase)> cycles=... */
void app_send_phase(ts_trainer_phase_t phase, uint64_t cycles);

/* ---- measurement windows (app_window.c) ---------------------------------------------------- */

/* Every phase and every epoch of `train` runs between app_window_open() (UART drained, then
 * ts_marker(1)) and app_window_close() (ts_marker(0)); no serial byte is sent inside a
 * window: the records of a window are sent after it closes. */
void app_window_open(void);
void app_window_close(void);

/* ---- calib (app_calib.c) ------------------------------------------------------------------ */

/* `calib ms=N`: a fixed workload in one measurement window, then `@phase name=calib`; 0. */
int app_cmd_calib(uint32_t ms);

/* ---- db (app_db.c) ------------------------------------------------------------------------- */

/* The RAM set's samples and labels (kept across a reset: a finished stream's set survives). */
extern int8_t app_db_x[APP_DB_X_BYTES];
extern uint8_t app_db_y[APP_DB_Y_BYTES];

/* At boot: the flash set in use; the RAM set is what app_stream_restore() finds (a finished
 * stream's buffer that survived the reset), else empty. */
void app_db_init(void);
/* Samples in the RAM set (at boot: those that survived the reset). */
uint32_t app_db_count(void);
/* `db load N`: -1 when the data lines follow (the load ends with its own @ready), else an
 * error code (already reported). */
int app_cmd_db_load(uint32_t count);
/* `db stream N cap= policy= seed=`: -1 when the data lines follow, else an error code. */
int app_cmd_db_stream(uint32_t count, const ts_stream_args_t *args);
/* `db kept`: one @kept per sample of the RAM set; 0 or an error code (already reported). */
int app_cmd_db_kept(void);
/* `db use flash|ram|both`: 0 or an error code (already reported). */
int app_cmd_db_use(ts_db_source_t src);
/* Nonzero inside `db load` (data lines expected). */
int app_db_loading(void);
/* A data line: the next sample of the load, or dropped outside one. */
void app_db_data_line(const char *payload, size_t len);
/* Ends the load in progress with an error (@err, then @ready cmd=db); the RAM set is empty. */
void app_db_load_abort(int code, const char *msg);
/* The training set `train` uses: *set (the flash set or the RAM set, *ram filled when it is
 * the RAM set) and *extra (the RAM set after the flash set for `db use both`, else NULL): 0,
 * or an error code (already reported) when the RAM set is selected but empty. */
int app_db_train_set(ts_dataset_t *ram, const ts_dataset_t **set, const ts_dataset_t **extra);

/* ---- db stream (app_stream.c) ------------------------------------------------------------ */

/* Starts a stream of `count` samples into a buffer of `cap` (already checked against
 * TS_DB_CAPACITY): 0, or an error code (already reported). The RAM set is empty from now on
 * until the stream ends. */
int app_stream_begin(uint32_t count, uint32_t cap, uint32_t policy, uint32_t seed);
/* Where the next data line is decoded (one sample, APP_S bytes). */
int8_t *app_stream_scratch(void);
/* Offers the decoded sample with its label: 0, or an engine status. */
int app_stream_sample(uint8_t label);
/* The stream is complete: the buffer becomes the RAM set (compacted, saved for a reset);
 * returns its samples. */
uint32_t app_stream_end(void);
/* The RAM set is no longer a stream's (a `db load`, a failed stream): nothing survives. */
void app_stream_forget(void);
/* At boot: the samples of a finished stream's RAM set that survived the reset (magic, build
 * and checksum valid), else 0. */
uint32_t app_stream_restore(void);
/* @db (stream form) and one @dbclass per class. */
void app_stream_send_db(void);
/* The stream index and codeword (-1: none) of RAM sample i; 0 when the RAM set is not a
 * stream's (then index = i). */
int app_stream_provenance(uint32_t i, uint32_t *index, int32_t *codeword);

/* ---- commands (app_commands.c) --------------------------------------------------------------- */

/* At boot: no trained head, no results. */
void app_commands_init(void);
/* 0 when the app has a model, else @err code=107 and that code. */
int app_need_model(void);
/* The int8 features of one sample (layers [0, head_layer), what the trainer caches) into f
 * (APP_D bytes), with the app's arena: an engine status. */
int app_sample_features(const int8_t *x, int8_t *f);
/* Runs one command line; returns 1 when the app must restart (reset without hardware). */
int app_run_command(const char *payload, size_t len);

#endif /* APP_H */
