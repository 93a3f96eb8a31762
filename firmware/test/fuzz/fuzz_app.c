/*
 * libFuzzer harness for the firmware app (firmware/src/): its command dispatch and the
 * `db load` state machine, with a real export compiled in (firmware/test/fuzz/export/,
 * tools/make_fuzz_export.py: a tiny digits model, 20 flash samples, `db load` capacity 8).
 * Built with clang -fsanitize=fuzzer,address,undefined by tools/fuzz.sh (target `app`);
 * tests/test_fuzz_protocol.py runs it for a bounded time. See docs/protocol.md ("Testing").
 *
 * The input is the byte stream the host sends; this file is the board (ts_platform.h): the
 * UART reads the input and ends it with -1 (the app's loop then returns, as on the host
 * build), writes go to a buffer, the cycle counter counts calls. main.c runs unchanged
 * (compiled with -Dmain=ts_app_main). Properties, checked on every input:
 *   - every byte the app sends forms valid TSP/1 lines (CRC, printable, <= 255 bytes),
 *     each a record `@type ...`, the first one `@boot`;
 *   - no byte is sent inside a measurement window (ts_marker on), and every window closes;
 *   - a failed command's `@ready status=N` follows its `@err code=N`;
 *   - one `@ready` per command: with C valid command lines and B unreadable lines, the
 *     app sends between C - 1 (a `db load` still waiting for data) and C + B `@ready`s
 *     (`reset` restarts the app: its @ready counts, the @boot after it does not);
 *   - no line goes unanswered but a data line: every command line other than a `db load`
 *     / `db stream` the parser accepts gets its own `@ready`, and so does every unreadable
 *     line and every line that starts with a digit without the data line form (`5train`),
 *     except one that ends a load (it then brings the load's `@ready`: a load ends at most
 *     once, so at least C - L + B + U `@ready`s for L loads and U such lines).
 * Inputs whose `train` commands would take too long (epochs x samples, steps x batch above
 * a budget) are rejected before they run: the fuzzer is after the dispatcher, not the
 * trainer's arithmetic (tests/test_trainer.py checks that against a reference).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "ts_platform.h"

int ts_app_main(void); /* main.c, renamed */

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_app: property violated: %s (%s:%d)\n", #cond, __FILE__,       \
                    __LINE__);                                                                 \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* sample-passes of training one input may ask for (update=last-block / bias count 16x) */
#define TRAIN_BUDGET 3000u

/* ---- the board ---------------------------------------------------------------------------- */

static const uint8_t *g_in;
static size_t g_in_len, g_in_at;
static char g_out[1u << 20];
static size_t g_out_len;
static int g_marker;
static uint64_t g_cycles;

void ts_platform_init(void) {}
const char *ts_platform_name(void) { return "fuzz"; }
uint64_t ts_cycles64(void) { return g_cycles += 7u; }
uint32_t ts_cycles(void) { return (uint32_t)ts_cycles64(); }
uint32_t ts_cycles_hz(void) { return 1000000u; }
const char *ts_cycle_counter_name(void) { return "calls"; }
int ts_icount_shift(void) { return -1; }
void ts_cycles_align(void) {}
size_t ts_stack_size(void) { return 0; }
size_t ts_stack_high_water(void) { return 0; }
int ts_stack_ok(void) { return 1; }
void ts_exit(int code) { (void)code; abort(); } /* the app never exits */

void ts_marker(int on)
{
    CHECK(on == !g_marker); /* windows alternate: open, close */
    g_marker = on;
}

void ts_uart_write(const char *buf, size_t len)
{
    CHECK(!g_marker); /* no serial byte inside a measurement window */
    CHECK(g_out_len + len <= sizeof g_out);
    memcpy(g_out + g_out_len, buf, len);
    g_out_len += len;
}

void ts_uart_putc(char c) { ts_uart_write(&c, 1); }
void ts_uart_puts(const char *s) { ts_uart_write(s, strlen(s)); }
void ts_uart_flush(void) {}
int ts_uart_getc(void) { return g_in_at < g_in_len ? g_in[g_in_at++] : -1; }
int ts_uart_getc_nonblock(void) { return ts_uart_getc(); }
int ts_uart_getc_timeout(uint32_t cycles) { (void)cycles; return ts_uart_getc(); }

/* ---- what the host sent ------------------------------------------------------------------- */

typedef struct {
    uint32_t commands; /* valid command lines (a `db load` included) */
    uint32_t loads;    /* ... of them `db load` / `db stream` the parser accepts */
    uint32_t bad;      /* lines the app cannot read (framing, a command line too long) */
    uint32_t odd;      /* lines starting with a digit without the data line form */
    uint64_t cost;     /* sample-passes of training asked for */
} host_lines_t;

static uint64_t train_cost(const ts_train_args_t *t)
{
    uint64_t passes = t->steps ? (uint64_t)t->steps * t->batch : (uint64_t)t->epochs * APP_NMAX;
    return (passes + 2u * (APP_NMAX + APP_T)) * (t->update == TS_TRAIN_UPDATE_HEAD ? 1u : 16u);
}

static host_lines_t scan_host(const uint8_t *data, size_t size)
{
    static char buf[TS_FRAMER_BUF_BYTES(APP_LINE_MAX)];
    host_lines_t h = {0, 0, 0, 0, 0};
    ts_framer_t fr;
    size_t i;
    CHECK(ts_framer_init(&fr, buf, sizeof buf, APP_LINE_MAX) == TS_PROTO_OK);
    for (i = 0; i < size; ++i) {
        const char *p = NULL;
        size_t n = 0;
        ts_command_t cmd;
        ts_frame_result_t r = ts_framer_push(&fr, data[i], &p, &n);
        if (r == TS_FRAME_PENDING || r == TS_FRAME_EMPTY) {
            continue;
        }
        if (r != TS_FRAME_LINE || (!ts_db_is_data_line(p, n) &&
                                   n + TS_PROTO_FRAME_BYTES > TS_PROTO_MAX_LINE)) {
            h.bad++;
            continue;
        }
        if (ts_db_is_data_line(p, n)) {
            /* in a load a data line (a malformed one ends it); outside one the data line
             * form is dropped, anything else answered (unknown command, or too long) */
            h.odd += !ts_db_has_data_form(p, n);
            continue;
        }
        h.commands++;
        if (ts_command_parse(p, n, &cmd) == TS_PROTO_OK) {
            if (cmd.id == TS_CMD_TRAIN) {
                h.cost += train_cost(&cmd.train);
            }
            h.loads += cmd.id == TS_CMD_DB_LOAD || cmd.id == TS_CMD_DB_STREAM;
        }
    }
    return h;
}

/* ---- what the app sent -------------------------------------------------------------------- */

static void check_output(const host_lines_t *h)
{
    static char buf[TS_FRAMER_BUF_BYTES(TS_PROTO_MAX_LINE)];
    char prev_err[32] = "";
    ts_framer_t fr;
    size_t i;
    uint32_t readies = 0, records = 0;
    CHECK(g_out_len > 0 && g_out[g_out_len - 1u] == '\n');
    CHECK(ts_framer_init(&fr, buf, sizeof buf, TS_PROTO_MAX_LINE) == TS_PROTO_OK);
    for (i = 0; i < g_out_len; ++i) {
        const char *p = NULL;
        size_t n = 0;
        ts_frame_result_t r = ts_framer_push(&fr, (uint8_t)g_out[i], &p, &n);
        if (r == TS_FRAME_PENDING) {
            continue;
        }
        CHECK(r == TS_FRAME_LINE);
        CHECK(n >= 2u && p[0] == '@');
        if (records++ == 0) {
            CHECK(strncmp(p, "@boot ", 6) == 0);
        }
        if (strncmp(p, "@ready ", 7) == 0) {
            const char *st = strstr(p, " status=");
            CHECK(st != NULL);
            readies++;
            if (strcmp(st + 8, "0") != 0) { /* "@err code=N ..." right before */
                CHECK(strncmp(prev_err, st + 8, strlen(st + 8)) == 0 &&
                      prev_err[strlen(st + 8)] == ' ');
            }
        }
        prev_err[0] = '\0';
        if (strncmp(p, "@err code=", 10) == 0) {
            size_t k = n - 10u < sizeof prev_err - 1u ? n - 10u : sizeof prev_err - 1u;
            memcpy(prev_err, p + 10, k);
            prev_err[k] = '\0';
        }
    }
    CHECK(readies + 1u >= h->commands && readies <= h->commands + h->bad + h->odd);
    CHECK(readies >= h->commands - h->loads + h->bad + h->odd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    host_lines_t h = scan_host(data, size);
    if (h.cost > TRAIN_BUDGET) {
        return -1; /* too slow to be worth running: not added to the corpus */
    }
    g_in = data;
    g_in_len = size;
    g_in_at = 0;
    g_out_len = 0;
    g_marker = 0;
    CHECK(ts_app_main() == 0);
    CHECK(!g_marker); /* every window closed */
    check_output(&h);
    return 0;
}
