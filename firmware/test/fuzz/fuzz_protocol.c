/*
 * libFuzzer harness for the device side of TSP/1 (firmware/lib/tsproto): the line framer, the
 * command parser, the number parsers, the db data-line decoder and the record writer.
 * Built on the host with clang -fsanitize=fuzzer,address,undefined by tools/fuzz_protocol.sh;
 * tests/test_fuzz_protocol.py runs it for a bounded time. See docs/protocol.md ("Testing").
 *
 * Input: byte 0 configures the db decoder (sample_bytes = 1 + low nibble, num_classes = 1 +
 * high nibble); the rest is a received byte stream. The harness
 *   1. feeds the stream to the framer: every valid line must be printable, '*'-free, within
 *      the length limit, and must survive a round trip (ts_frame_line -> a second framer);
 *      valid lines go to the command parser or the db decoder as the app dispatches them;
 *   2. splits the raw stream at '\n' and gives each piece (unframed: the CRC would otherwise
 *      hide the parser from the fuzzer) to the parser, the decoder and the number parsers,
 *      each from an exactly-sized heap copy so that ASan catches any read past `len`;
 *   3. writes records from the pieces (text, and a double taken from the bytes: NaN, inf,
 *      denormals) and checks they are valid lines of at most 255 bytes.
 * Any violated property aborts (a crash for libFuzzer), like a sanitizer report.
 */
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_platform.h"
#include "ts_protocol.h"

/* ts_format.c (ts_snprintf, used by the record writer) also has ts_printf, which writes to the
 * board's UART: on the host that is stdout. */
void ts_uart_write(const char *buf, size_t len)
{
    (void)fwrite(buf, 1, len, stdout);
}

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_protocol: property violated: %s (%s:%d)\n", #cond, __FILE__,  \
                    __LINE__);                                                                 \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

static int printable(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        if ((unsigned char)s[i] < 0x20u || (unsigned char)s[i] > 0x7Eu) {
            return 0;
        }
    }
    return 1;
}

static void check_command(const char *p, size_t n)
{
    ts_command_t c;
    ts_proto_status_t st = ts_command_parse(p, n, &c);
    size_t name_len = strlen(c.name); /* must be NUL-terminated within the struct */
    CHECK(name_len >= 1u && name_len <= TS_PROTO_CMD_NAME_MAX);
    CHECK(printable(c.name, name_len) && strchr(c.name, ' ') == NULL &&
          strchr(c.name, '*') == NULL);
    if (st == TS_PROTO_OK) {
        CHECK(c.id != TS_CMD_NONE);
        CHECK(c.error == NULL);
        switch (c.id) {
        case TS_CMD_DB_LOAD: CHECK(c.db_count >= 1u); break;
        case TS_CMD_DB_STREAM:
            CHECK(c.db_count >= 1u && c.stream.cap <= TS_PROTO_MAX_STREAM_CAP);
            CHECK(c.stream.policy == TS_STREAM_RESERVOIR ||
                  c.stream.policy == TS_STREAM_COVERAGE);
            break;
        case TS_CMD_DB_USE:
            CHECK(c.db_source == TS_DB_FLASH || c.db_source == TS_DB_RAM ||
                  c.db_source == TS_DB_BOTH);
            break;
        case TS_CMD_TRAIN:
            CHECK(c.train.epochs <= TS_PROTO_MAX_EPOCHS);
            CHECK(c.train.batch >= 1u && c.train.batch <= TS_PROTO_MAX_BATCH);
            CHECK(c.train.lr > 0.0f && c.train.lr <= TS_PROTO_MAX_LR);
            CHECK(c.train.momentum >= 0.0f && c.train.momentum < 1.0f);
            CHECK(c.train.init == TS_INIT_EXPORT || c.train.init == TS_INIT_ZERO);
            CHECK(c.train.steps <= TS_PROTO_MAX_STEPS);
            CHECK((unsigned)c.train.schedule <= 2u && c.train.balance <= 1u);
            CHECK((unsigned)c.train.update <= 2u);
            break;
        default: break;
        }
    } else {
        CHECK(st == TS_PROTO_ERR_UNKNOWN_CMD || st == TS_PROTO_ERR_BAD_ARG);
        CHECK(c.error != NULL && printable(c.error, strlen(c.error)));
    }
}

static void check_data_line(const char *p, size_t n, size_t sb, uint32_t nc)
{
    int8_t sample[17];
    uint8_t label = 0xEE;
    memset(sample, 0x5A, sizeof sample);
    /* the form the app drops outside a load starts with a digit, as a data line does */
    CHECK(!ts_db_has_data_form(p, n) || ts_db_is_data_line(p, n));
    if (ts_db_decode_line(p, n, nc, sample, sb, &label) == TS_PROTO_OK) {
        CHECK(label < nc);
        CHECK(n == 2u + 2u * sb || n == 3u + 2u * sb || n == 4u + 2u * sb);
        CHECK(ts_db_has_data_form(p, n)); /* every line a load accepts has the form */
    } else {
        CHECK(label == 0xEE);
        CHECK(sample[0] == 0x5A); /* nothing written on failure */
    }
    CHECK(sample[sb] == 0x5A);    /* never past sample_bytes */
}

static void check_numbers(const char *p, size_t n)
{
    uint32_t u;
    float f;
    if (ts_parse_u32(p, n, &u) == TS_PROTO_OK) {
        CHECK(n >= 1u && n <= 10u);
    }
    if (ts_parse_real(p, n, &f) == TS_PROTO_OK) {
        CHECK(f == f && f <= FLT_MAX && f >= -FLT_MAX);
    }
}

/* A record built from the piece must be a valid line, and read back to the same payload. */
static void check_record(const char *piece, size_t n)
{
    char text[300], buf[TS_PROTO_RECORD_BUF], line_buf[TS_FRAMER_BUF_BYTES(255)];
    ts_record_t r;
    ts_framer_t fr;
    double d = 0.0;
    size_t len, i;
    size_t m = n < sizeof text - 1u ? n : sizeof text - 1u;
    memcpy(text, piece, m);
    text[m] = '\0';
    if (n >= sizeof d) {
        memcpy(&d, piece, sizeof d);
    }
    ts_record_begin(&r, buf, sizeof buf, "fuzz");
    ts_record_real(&r, "d", d);
    ts_record_real(&r, "f", (double)(float)d);
    ts_record_u64(&r, "u", (uint64_t)n * 0x9E3779B97F4A7C15ull);
    ts_record_i32(&r, "i", (int32_t)(uint32_t)n * -7);
    ts_record_text(&r, "t", text);
    len = ts_record_end(&r);
    if (len == 0) {
        return; /* too long for a line: refused */
    }
    CHECK(len <= TS_PROTO_MAX_LINE + 1u && buf[len - 1u] == '\n' && strlen(buf) == len);
    CHECK(ts_framer_init(&fr, line_buf, sizeof line_buf, TS_PROTO_MAX_LINE) == TS_PROTO_OK);
    for (i = 0; i + 1u < len; ++i) {
        CHECK(ts_framer_push(&fr, (uint8_t)buf[i], NULL, NULL) == TS_FRAME_PENDING);
    }
    {
        const char *p = NULL;
        size_t pl = 0;
        CHECK(ts_framer_push(&fr, '\n', &p, &pl) == TS_FRAME_LINE);
        CHECK(pl == len - 7u && memcmp(p, buf, pl) == 0);
    }
}

/* A valid line re-framed by ts_frame_line must come back identical from a second framer. */
static void check_round_trip(const char *payload, size_t n)
{
    char out[TS_FRAMER_BUF_BYTES(600)], buf2[TS_FRAMER_BUF_BYTES(600)];
    ts_framer_t fr;
    const char *p = NULL;
    size_t pl = 0, len, i;
    ts_frame_result_t res = TS_FRAME_PENDING;
    len = ts_frame_line(payload, n, out, sizeof out);
    CHECK(len == n + 7u);
    CHECK(ts_framer_init(&fr, buf2, sizeof buf2, 600) == TS_PROTO_OK);
    for (i = 0; i < len; ++i) {
        res = ts_framer_push(&fr, (uint8_t)out[i], &p, &pl);
    }
    CHECK(res == TS_FRAME_LINE && pl == n && memcmp(p, payload, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char line_buf[TS_FRAMER_BUF_BYTES(TS_PROTO_MAX_LINE)]; /* sb <= 16: data lines fit */
    ts_framer_t fr;
    size_t sb, i, start;
    uint32_t nc;
    size_t max_len;
    if (size == 0) {
        return 0;
    }
    sb = 1u + (data[0] & 0x0Fu);
    nc = 1u + (uint32_t)(data[0] >> 4);
    data++;
    size--;

    /* 1. the framer and what the app does with valid lines */
    max_len = TS_PROTO_DB_LINE_MAX(sb) > TS_PROTO_MAX_LINE ? TS_PROTO_DB_LINE_MAX(sb)
                                                           : TS_PROTO_MAX_LINE;
    CHECK(ts_framer_init(&fr, line_buf, sizeof line_buf, max_len) == TS_PROTO_OK);
    for (i = 0; i < size; ++i) {
        const char *p = NULL;
        size_t n = 0;
        ts_frame_result_t r = ts_framer_push(&fr, data[i], &p, &n);
        if (r != TS_FRAME_LINE) {
            CHECK(r >= TS_FRAME_PENDING && r <= TS_FRAME_BAD_CRC);
            continue;
        }
        CHECK(p == line_buf && p[n] == '\0' && n + TS_PROTO_FRAME_BYTES <= max_len);
        CHECK(printable(p, n) && memchr(p, '*', n) == NULL);
        check_round_trip(p, n);
        if (ts_db_is_data_line(p, n)) {
            check_data_line(p, n, sb, nc);
        } else {
            check_command(p, n);
        }
    }
    {
        ts_framer_counters_t c = fr.count;
        CHECK(c.lines + c.empty + c.too_long + c.nonprint + c.bad_frame + c.bad_crc <= size);
    }

    /* 2. + 3. the raw pieces, unframed */
    for (start = 0; start <= size; ) {
        const uint8_t *nl = start < size ? memchr(data + start, '\n', size - start) : NULL;
        size_t end = nl != NULL ? (size_t)(nl - data) : size;
        size_t n = end - start;
        char *piece = (char *)malloc(n > 0 ? n : 1u); /* exact size: ASan sees over-reads */
        if (piece == NULL) {
            return 0;
        }
        memcpy(piece, data + start, n);
        check_command(piece, n);
        check_data_line(piece, n, sb, nc);
        check_numbers(piece, n);
        check_record(piece, n);
        free(piece);
        if (nl == NULL) {
            break;
        }
        start = end + 1u;
    }
    return 0;
}
