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
 * place ends it with `@err` and `@ready cmd=db status=<code>`, the RAM set then empty. Data
 * lines outside a load (the rest of an aborted one) are dropped.
 */
#include <stdint.h>
#include <string.h>

#include "app.h"

static int8_t s_db_x[APP_DB_X_BYTES];
static uint8_t s_db_y[APP_DB_Y_BYTES];

static struct {
    ts_db_source_t source;
    uint32_t count;      /* samples in the RAM set */
    int loading;         /* inside `db load`: data lines expected */
    uint32_t load_total;
    uint32_t load_done;
    uint32_t stray_data; /* data lines outside a load (rest of an aborted load), dropped */
} s_db;

void app_db_init(void)
{
    memset(&s_db, 0, sizeof s_db);
    s_db.source = TS_DB_FLASH;
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
    s_db.loading = 1;
    s_db.load_total = count;
    s_db.load_done = 0;
    s_db.count = 0; /* loaded in place: the previous RAM set is gone */
    return -1;
}

static void load_end(int code, const char *msg)
{
    s_db.loading = 0;
    if (code == 0) {
        s_db.count = s_db.load_total;
        s_db.source = TS_DB_RAM;
        app_send_db(s_db.count, "ram");
    } else {
        s_db.count = 0;
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
    ts_proto_status_t st;
    if (!s_db.loading) {
        s_db.stray_data++; /* the rest of an aborted load: dropped */
        return;
    }
    st = ts_db_decode_line(payload, len, app_export.model->num_classes,
                           s_db_x + (size_t)i * APP_S, APP_S, &s_db_y[i]);
    if (st != TS_PROTO_OK) {
        load_end(st, "malformed_data_line");
        return;
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
    ram->x = s_db_x;
    ram->y = s_db_y;
    if (s_db.source == TS_DB_BOTH) {
        *set = app_export.flash_train;
        *extra = ram;
    } else {
        *set = ram;
    }
    return 0;
}
