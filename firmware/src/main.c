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
 * This file is the boot and the command loop; the rest of the app is split by concern
 * (app.h lists the parts): the command handlers (app_commands.c), the db loader
 * (app_db.c), the records (app_records.c) and the measurement windows (app_window.c).
 *
 * Memory: no heap. Every buffer is a static array sized at build time from the export's
 * macros: the inference arena, the trainer workspace, the int8 feature cache (training set and
 * test set), the re-quantized head, the `db` RAM set (TS_DB_CAPACITY samples, default the
 * export's TRAIN_COUNT; -DTS_DB_CAPACITY=N changes it), the `db stream` upkeep's workspace
 * and the line buffer. `@mem` reports the arena, the workspace, the caches, the db set and
 * the backbone buffers one by one; the upkeep's workspace and the line buffer are counted
 * only in `@info ram_static` (all static RAM, where the port knows it).
 */
#include <stdint.h>

#include "app.h"
#include "ts_platform.h"

#if APP_HAVE_MODEL
const app_export_t app_export = {&ts_export_model, &ts_export_train, &ts_export_test};
#else
const app_export_t app_export = {NULL, NULL, NULL};
#endif

/* The reset counter lives in no-init RAM (APP_NOINIT, app.h). */
static volatile uint32_t g_boot_magic APP_NOINIT;
static volatile uint32_t g_boot_resets APP_NOINIT;
static volatile uint32_t g_boot_check APP_NOINIT;
#define APP_BOOT_MAGIC 0x7153B007u

static char g_line[TS_FRAMER_BUF_BYTES(APP_LINE_MAX)];
static ts_framer_t g_framer;

static void boot(void)
{
    uint32_t resets = 0;
    if (g_boot_magic == APP_BOOT_MAGIC && g_boot_check == ~g_boot_resets) {
        resets = g_boot_resets + 1u;
    }
    g_boot_resets = resets;
    g_boot_check = ~resets;
    g_boot_magic = APP_BOOT_MAGIC;

    app_commands_init();
    app_db_init();
    ts_framer_init(&g_framer, g_line, sizeof g_line, APP_LINE_MAX);
    app_send_boot(resets, app_db_count());
}

/* A framed line that failed validation (or a command line above TS_PROTO_MAX_LINE). */
static void bad_line(int code, const char *msg)
{
    if (app_db_loading()) {
        app_db_load_abort(code, msg);
    } else {
        app_send_err((uint32_t)code, msg);
        app_send_ready("-", (uint32_t)code);
    }
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
        fr = ts_framer_push(&g_framer, (uint8_t)c, &payload, &len);
        if (fr == TS_FRAME_PENDING || fr == TS_FRAME_EMPTY) {
            continue;
        }
        if (fr != TS_FRAME_LINE) {
            bad_line((int)ts_frame_status(fr), ts_frame_result_name(fr));
            continue;
        }
        /* a data line: in a load, any line that starts with a digit (a malformed one ends
         * the load); outside one, a line of the data line form (the rest of a failed load:
         * dropped). Any other line is a command line (`5train` answers unknown_command). */
        if (ts_db_is_data_line(payload, len) &&
            (app_db_loading() || ts_db_has_data_form(payload, len))) {
            app_db_data_line(payload, len);
            continue;
        }
        if (len + TS_PROTO_FRAME_BYTES > TS_PROTO_MAX_LINE) {
            bad_line(TS_PROTO_ERR_TOO_LONG, "too_long");
            continue;
        }
        if (app_db_loading()) { /* a command where data was expected: the load is over */
            app_db_load_abort(TS_PROTO_ERR_DB_MALFORMED, "load_interrupted");
        }
        if (app_run_command(payload, len)) {
            return 1;
        }
    }
}

/* Frameworks that own main() (Arduino, ESP-IDF: boards/ports/) call ts_app_main() from theirs. */
#if defined(TS_FRAMEWORK_MAIN)
int ts_app_main(void)
#else
int main(void)
#endif
{
    while (app_run()) {
    }
    return 0;
}
