/*
 * tinysift firmware app: the typed @-records of TSP/1 (docs/protocol.md) and the memory
 * figures they report. Each record is built in one buffer and sent as one framed line.
 */
#include <stdint.h>

#include "app.h"
#include "ts_platform.h"
#include "ts_version.h"

static ts_record_t s_rec;
static char s_rec_buf[TS_PROTO_RECORD_BUF];

ts_record_t *app_rec(const char *type)
{
    ts_record_begin(&s_rec, s_rec_buf, sizeof s_rec_buf, type);
    return &s_rec;
}

void app_rec_send(void)
{
    size_t n = ts_record_end(&s_rec);
    if (n == 0) { /* a record too long for a line: a bug; say so instead of a broken line */
        ts_record_t *r = app_rec("err");
        ts_record_u32(r, "code", TS_PROTO_ERR_TOO_LONG);
        ts_record_text(r, "msg", "record_overflow");
        n = ts_record_end(r);
    }
    ts_uart_write(s_rec_buf, n);
}

void app_send_err(uint32_t code, const char *msg)
{
    ts_record_t *r = app_rec("err");
    ts_record_u32(r, "code", code);
    ts_record_text(r, "msg", msg);
    app_rec_send();
}

void app_send_ready(const char *cmd, uint32_t status)
{
    ts_record_t *r = app_rec("ready");
    ts_record_text(r, "cmd", cmd);
    ts_record_u32(r, "status", status);
    app_rec_send();
}

int app_fail(int code, const char *msg)
{
    app_send_err((uint32_t)code, msg);
    return code;
}

const char *app_engine_status_name(int st)
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

/* ---- memory figures of the image (the shared Cortex-M linker script's symbols, QEMU and
 * the STM32 boards; 0 where unknown) ------------------------------------------------------ */

#if defined(TS_TARGET_QEMU) || defined(TS_TARGET_BAREMETAL)
extern uint32_t __stack_bottom[], __noinit_end[], __data_load[], __data_start[], __data_end[];
extern uint32_t __ts_flash_start[];
static uint32_t ram_static_bytes(void)
{
    return (uint32_t)((uintptr_t)__noinit_end - (uintptr_t)__stack_bottom);
}
static uint32_t flash_bytes(void)
{
    /* everything from the start of FLASH up to the end of .data's load image */
    return (uint32_t)((uintptr_t)__data_load - (uintptr_t)__ts_flash_start +
                      ((uintptr_t)__data_end - (uintptr_t)__data_start));
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

/* A buffer's size, or 0 when the app has no model (its buffers are placeholders). */
static uint32_t model_bytes(size_t n)
{
    return app_export.model != NULL ? (uint32_t)n : 0u;
}

/* ---- the records ----------------------------------------------------------------------- */

void app_send_boot(uint32_t resets, uint32_t db)
{
    const ts_model_t *m = app_export.model;
    ts_record_t *r = app_rec("boot");
    ts_record_u32(r, "proto", TS_PROTO_VERSION);
    ts_record_u32(r, "fw", (uint32_t)ts_engine_version());
    ts_record_text(r, "board", ts_platform_name());
    ts_record_text(r, "counter", ts_cycle_counter_name());
    ts_record_u32(r, "hz", ts_cycles_hz());
    ts_record_u32(r, "resets", resets);
    ts_record_text(r, "model", m != NULL ? m->content_hash : "none");
    ts_record_u32(r, "db", db);
    if (ts_platform_port() != NULL) { /* a port that names itself, and its clock set-up */
        ts_record_text(r, "port", ts_platform_port());
        ts_record_text(r, "clock", ts_platform_clock() != NULL ? ts_platform_clock() : "-");
    }
    app_rec_send();
}

void app_send_name(void)
{
    ts_record_t *r = app_rec("name");
    ts_record_text(r, "name", TS_APP_NAME);
    /* the board, as in @boot: a host that opened the port after the boot asks for it */
    ts_record_text(r, "board", ts_platform_name());
    app_rec_send();
}

void app_send_info(void)
{
    const ts_model_t *m = app_export.model;
    ts_record_t *r = app_rec("info");
    ts_record_u32(r, "proto", TS_PROTO_VERSION);
    /* also in @boot, which a host opening the port after the boot never sees */
    ts_record_u32(r, "fw", (uint32_t)ts_engine_version());
    ts_record_u32(r, "format", m != NULL ? m->format_version : 0u);
    ts_record_text(r, "model", m != NULL ? m->content_hash : "none");
    ts_record_u32(r, "train", m != NULL ? app_export.flash_train->count : 0u);
    ts_record_u32(r, "test", m != NULL ? app_export.test->count : 0u);
    ts_record_u32(r, "classes", m != NULL ? m->num_classes : 0u);
    ts_record_u32(r, "features", m != NULL ? m->feature_dim : 0u);
    ts_record_u32(r, "sample_bytes", m != NULL ? app_export.flash_train->sample_bytes : 0u);
    ts_record_u32(r, "db_capacity", m != NULL ? (uint32_t)TS_DB_CAPACITY : 0u);
    ts_record_u32(r, "arena", model_bytes(APP_ARENA));
    ts_record_u32(r, "ram_static", ram_static_bytes());
    ts_record_u32(r, "flash", flash_bytes());
    ts_record_text(r, "counter", ts_cycle_counter_name());
    ts_record_u32(r, "hz", ts_cycles_hz());
    ts_record_i32(r, "icount_shift", ts_icount_shift());
    app_rec_send();
}

void app_send_mem(void)
{
    ts_record_t *r = app_rec("mem");
    ts_record_u32(r, "stack_hwm", (uint32_t)ts_stack_high_water());
    ts_record_u32(r, "stack", (uint32_t)ts_stack_size());
    ts_record_u32(r, "arena", model_bytes(APP_ARENA));
    ts_record_u32(r, "workspace", model_bytes(APP_WS_BYTES));
    ts_record_u32(r, "cache", model_bytes(APP_CACHE_TRAIN_BYTES + APP_CACHE_TEST_BYTES));
    ts_record_u32(r, "db", model_bytes(APP_DB_X_BYTES + APP_DB_Y_BYTES));
    ts_record_u32(r, "backbone", model_bytes(APP_BB_WS_BYTES));
    ts_record_u32(r, "backbone_q", model_bytes(APP_BB_Q_BYTES));
    app_rec_send();
}

void app_send_db(uint32_t loaded, const char *source)
{
    ts_record_t *r = app_rec("db");
    ts_record_u32(r, "loaded", loaded);
    ts_record_text(r, "source", source);
    app_rec_send();
}

void app_send_epoch(const app_epoch_rec_t *e)
{
    ts_record_t *r = app_rec("epoch");
    ts_record_u32(r, "n", e->n);
    ts_record_real(r, "loss", e->loss);
    ts_record_real(r, "train_acc", e->train_acc);
    ts_record_u32(r, "correct", e->correct);
    ts_record_u32(r, "samples", e->samples);
    ts_record_u64(r, "cycles", e->cycles);
    app_rec_send();
}

static float ratio(uint32_t k, uint32_t n)
{
    return n > 0u ? (float)k / (float)n : 0.0f;
}

void app_send_eval(const char *when, const app_eval_rec_t *e)
{
    ts_record_t *r = app_rec("eval");
    ts_record_text(r, "when", when);
    ts_record_real(r, "acc", ratio(e->correct, e->total));
    ts_record_u32(r, "correct", e->correct);
    ts_record_u32(r, "total", e->total);
    ts_record_real(r, "int8_acc", ratio(e->int8_correct, e->total));
    app_rec_send();
    if (app_export.model != NULL) {
        uint32_t k;
        for (k = 0; k < app_export.model->num_classes && k < APP_K; ++k) {
            r = app_rec("class");
            ts_record_text(r, "when", when);
            ts_record_u32(r, "class", k);
            ts_record_u32(r, "correct", e->class_correct[k]);
            ts_record_u32(r, "int8_correct", e->class_int8_correct[k]);
            ts_record_u32(r, "total", e->class_total[k]);
            app_rec_send();
        }
    }
}

void app_send_phase(ts_trainer_phase_t phase, uint64_t cycles)
{
    ts_record_t *r = app_rec("phase");
    ts_record_text(r, "name", ts_trainer_phase_name(phase));
    ts_record_u64(r, "cycles", cycles);
    app_rec_send();
}
