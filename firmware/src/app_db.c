/*
 * tinysift firmware app: the training set `train` uses. `db use flash` (the default) selects
 * the compiled-in set; `db load N` streams N samples over the link into the RAM set
 * (TS_DB_CAPACITY samples) and selects it; `db use ram` selects it again; `db use both`
 * trains on the compiled-in set followed by the RAM set (a replay set in flash plus new
 * samples: the trainer's train and train_extra).
 *
 * The load is a small state machine driven by the command loop: `db load N` starts it (no
 * @ready yet), each data line stores one sample in place, the N-th ends it with `@db` and
 * `@ready cmd=db status=0`; a malformed data line, a bad frame or a command line in its
 * place ends it with `@err` and `@ready cmd=db status=<code>`, the RAM set then empty. Lines
 * of the data line form outside a load (the rest of an aborted one) are dropped (main.c: any
 * other line starting with a digit is a command line there).
 *
 * `db stream N` is the same state machine, but each data line is offered to the replay
 * policy (app_stream.c), which keeps at most `cap` of the N samples in the RAM set; a
 * finished stream's set survives a reset (docs/protocol.md).
 */
#include <stdint.h>
#include <string.h>

#include "app.h"

int8_t app_db_x[APP_DB_X_BYTES] APP_NOINIT;
uint8_t app_db_y[APP_DB_Y_BYTES] APP_NOINIT;

static struct {
    ts_db_source_t source;
    uint32_t count;      /* samples in the RAM set */
    int loading;         /* inside `db load` / `db stream`: data lines expected */
    int streaming;       /* ... of `db stream` */
    uint32_t load_total;
    uint32_t load_done;
    uint32_t stray_data; /* data-form lines outside a load (rest of an aborted load), dropped */
} s_db;

void app_db_init(void)
{
    memset(&s_db, 0, sizeof s_db);
    s_db.source = TS_DB_FLASH;
    s_db.count = app_stream_restore();
}

uint32_t app_db_count(void)
{
    return s_db.count;
}

static int load_begin(uint32_t count, int streaming)
{
    s_db.loading = 1;
    s_db.streaming = streaming;
    s_db.load_total = count;
    s_db.load_done = 0;
    s_db.count = 0; /* loaded in place: the previous RAM set is gone */
    return -1;
}

int app_cmd_db_load(uint32_t count)
{
    int st = app_need_model();
    if (st != 0) {
        return st;
    }
    if (count > TS_DB_CAPACITY) {
        return app_fail(TS_PROTO_ERR_DB_CAPACITY, "above_db_capacity");
    }
    app_stream_forget();
    return load_begin(count, 0);
}

int app_cmd_db_stream(uint32_t count, const ts_stream_args_t *args)
{
    uint32_t cap = args->cap != 0u ? args->cap : (uint32_t)TS_DB_CAPACITY;
    int st = app_need_model();
    if (st != 0) {
        return st;
    }
    if (cap > TS_DB_CAPACITY) {
        return app_fail(TS_PROTO_ERR_DB_CAPACITY, "above_db_capacity");
    }
    s_db.count = 0;
    st = app_stream_begin(count, cap, (uint32_t)args->policy, args->seed);
    return st != 0 ? st : load_begin(count, 1);
}

static void load_end(int code, const char *msg)
{
    s_db.loading = 0;
    if (code == 0) {
        s_db.source = TS_DB_RAM;
        if (s_db.streaming) {
            s_db.count = app_stream_end();
            app_stream_send_db();
        } else {
            s_db.count = s_db.load_total;
            app_send_db(s_db.count, "ram");
        }
    } else {
        s_db.count = 0;
        app_stream_forget();
        app_send_err((uint32_t)code, msg);
    }
    app_send_ready("db", (uint32_t)code);
}

void app_db_load_abort(int code, const char *msg)
{
    load_end(code, msg);
}

int app_db_loading(void)
{
    return s_db.loading;
}

void app_db_data_line(const char *payload, size_t len)
{
    uint32_t i = s_db.load_done;
    uint8_t label = 0;
    ts_proto_status_t st;
    if (!s_db.loading) {
        s_db.stray_data++; /* the rest of an aborted load: dropped */
        return;
    }
    /* a load decodes in place; a stream into the scratch sample its policy then places */
    st = ts_db_decode_line(payload, len, app_export.model->num_classes,
                           s_db.streaming ? app_stream_scratch() : app_db_x + (size_t)i * APP_S,
                           APP_S, s_db.streaming ? &label : &app_db_y[i]);
    if (st != TS_PROTO_OK) {
        load_end(st, "malformed_data_line");
        return;
    }
    if (s_db.streaming) {
        int est = app_stream_sample(label);
        if (est != TS_OK) {
            load_end(est, app_engine_status_name(est));
            return;
        }
    }
    if (++s_db.load_done == s_db.load_total) {
        load_end(0, NULL);
    }
}

int app_cmd_db_use(ts_db_source_t src)
{
    int st = app_need_model();
    if (st != 0) {
        return st;
    }
    if (src == TS_DB_RAM || src == TS_DB_BOTH) {
        if (s_db.count == 0) {
            return app_fail(TS_PROTO_ERR_NO_DATA, "no_data_loaded");
        }
        s_db.source = src;
        if (src == TS_DB_RAM) {
            app_send_db(s_db.count, "ram");
        } else {
            app_send_db(app_export.flash_train->count + s_db.count, "both");
        }
    } else {
        s_db.source = TS_DB_FLASH;
        app_send_db(app_export.flash_train->count, "flash");
    }
    return 0;
}

int app_db_train_set(ts_dataset_t *ram, const ts_dataset_t **set, const ts_dataset_t **extra)
{
    *extra = NULL;
    if (s_db.source == TS_DB_FLASH) {
        *set = app_export.flash_train;
        return 0;
    }
    if (s_db.count == 0) {
        return app_fail(TS_PROTO_ERR_NO_DATA, "no_data_loaded");
    }
    ram->count = s_db.count;
    ram->sample_bytes = APP_S;
    ram->x = app_db_x;
    ram->y = app_db_y;
    if (s_db.source == TS_DB_BOTH) {
        *set = app_export.flash_train;
        *extra = ram;
    } else {
        *set = ram;
    }
    return 0;
}

int app_cmd_db_kept(void)
{
    uint32_t i;
    int st = app_need_model();
    if (st != 0) {
        return st;
    }
    if (s_db.count == 0) {
        return app_fail(TS_PROTO_ERR_NO_DATA, "no_data_loaded");
    }
    for (i = 0; i < s_db.count; ++i) {
        uint32_t index = i;
        int32_t cw = -1;
        ts_record_t *r;
        (void)app_stream_provenance(i, &index, &cw);
        r = app_rec("kept");
        ts_record_u32(r, "pos", i);
        ts_record_u32(r, "idx", index);
        ts_record_u32(r, "class", app_db_y[i]);
        ts_record_i32(r, "cw", cw);
        app_rec_send();
    }
    return 0;
}
