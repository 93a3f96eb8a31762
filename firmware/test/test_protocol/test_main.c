/*
 * TSP/1 device-side protocol (firmware/lib/tsproto): CRC-16 check values, the framer's drop
 * and resynchronization rules, the command parser's accept/reject cases, the number parsers,
 * the db data-line decoder and the record writer. Same program on native, native-asan and
 * qemu-m4:  tools/pio test -d firmware -e native -f test_protocol
 */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "ts_platform.h"
#include "ts_protocol.h"
#include "ts_test.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char g_fbuf[TS_FRAMER_BUF_BYTES(64)];
static volatile double g_zero = 0.0;

/* Feeds s (len bytes) into fr; returns the last non-PENDING result (PENDING if none) and
 * copies the payload of the last valid line into payload_out. */
static ts_frame_result_t feed(ts_framer_t *fr, const char *s, size_t len, char *payload_out,
                              size_t out_cap)
{
    ts_frame_result_t last = TS_FRAME_PENDING;
    size_t i;
    for (i = 0; i < len; ++i) {
        const char *p = NULL;
        size_t n = 0;
        ts_frame_result_t r = ts_framer_push(fr, (uint8_t)s[i], &p, &n);
        if (r != TS_FRAME_PENDING) {
            last = r;
        }
        if (r == TS_FRAME_LINE && payload_out != NULL && n < out_cap) {
            memcpy(payload_out, p, n);
            payload_out[n] = '\0';
        }
    }
    return last;
}

static ts_frame_result_t feed_str(ts_framer_t *fr, const char *s, char *out, size_t cap)
{
    return feed(fr, s, strlen(s), out, cap);
}

/* `payload *XXXX\n` into buf */
static const char *framed(const char *payload, char *buf, size_t cap)
{
    size_t n = ts_frame_line(payload, strlen(payload), buf, cap);
    return n ? buf : "";
}

static ts_proto_status_t parse(const char *s, ts_command_t *cmd)
{
    return ts_command_parse(s, strlen(s), cmd);
}

/* ---- CRC ----------------------------------------------------------------------------------- */

static void test_crc_check_values(void)
{
    TS_ASSERT_EQ_INT(0x29B1, ts_crc16("123456789", 9));
    TS_ASSERT_EQ_INT(0x4946, ts_crc16("@ready cmd=info status=0 ", 25));
    TS_ASSERT_EQ_INT(0xFFFF, ts_crc16("", 0));
    /* incremental == one shot */
    TS_ASSERT_EQ_INT(0x29B1, ts_crc16_update(ts_crc16("1234", 4), "56789", 5));
}

/* ---- framer -------------------------------------------------------------------------------- */

static void test_framer_valid_lines(void)
{
    ts_framer_t fr;
    char out[80], line[80];
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_framer_init(&fr, g_fbuf, sizeof g_fbuf, 64));
    TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed_str(&fr, framed("info", line, sizeof line), out,
                                             sizeof out));
    TS_ASSERT_STR_EQ("info", out);
    /* \r\n */
    framed("db use ram", line, sizeof line);
    line[strlen(line) - 1] = '\0';
    strcat(line, "\r\n");
    TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed_str(&fr, line, out, sizeof out));
    TS_ASSERT_STR_EQ("db use ram", out);
    /* the spec's example line */
    TS_ASSERT_EQ_INT(TS_FRAME_LINE,
                     feed_str(&fr, "@ready cmd=info status=0 *4946\n", out, sizeof out));
    TS_ASSERT_STR_EQ("@ready cmd=info status=0", out);
    /* an empty payload is a valid frame */
    TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed_str(&fr, framed("", line, sizeof line), out, sizeof out));
    TS_ASSERT_STR_EQ("", out);
    TS_ASSERT(fr.count.lines >= 3u);
}

static void test_framer_drops_and_resyncs(void)
{
    ts_framer_t fr;
    char out[80], good[80], bad[80];
    ts_framer_init(&fr, g_fbuf, sizeof g_fbuf, 64);
    framed("name", good, sizeof good);

    /* bad CRC: one payload bit flipped */
    strcpy(bad, good);
    bad[0] ^= 0x01;
    TS_ASSERT_EQ_INT(TS_FRAME_BAD_CRC, feed_str(&fr, bad, NULL, 0));
    out[0] = '\0';
    TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed_str(&fr, good, out, sizeof out));
    TS_ASSERT_STR_EQ("name", out);
    /* bad CRC digit */
    strcpy(bad, good);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == '0' ? '1' : '0';
    TS_ASSERT_EQ_INT(TS_FRAME_BAD_CRC, feed_str(&fr, bad, NULL, 0));

    /* no frame, lower-case hex, no space before '*', '*' in the payload */
    TS_ASSERT_EQ_INT(TS_FRAME_BAD_FRAME, feed_str(&fr, "name\n", NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_BAD_FRAME, feed_str(&fr, "@ready cmd=info status=0 *4946x\n",
                                                  NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_BAD_FRAME, feed_str(&fr, "x *abcd\n", NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_BAD_FRAME, feed_str(&fr, "name*1234\n", NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_BAD_FRAME, feed_str(&fr, "a*b *1234\n", NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_BAD_FRAME, feed_str(&fr, " *12\n", NULL, 0));

    /* non-printable bytes, a lone '\r' inside a line, NUL */
    TS_ASSERT_EQ_INT(TS_FRAME_NONPRINT, feed_str(&fr, "na\tme *1234\n", NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_NONPRINT, feed_str(&fr, "na\rme *1234\n", NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_NONPRINT, feed_str(&fr, "\r\r\n", NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_NONPRINT, feed(&fr, "a\0b *1234\n", 10, NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_NONPRINT, feed_str(&fr, "\xff\xfe boot rom\n", NULL, 0));

    /* empty lines */
    TS_ASSERT_EQ_INT(TS_FRAME_EMPTY, feed_str(&fr, "\n", NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_EMPTY, feed_str(&fr, "\r\n", NULL, 0));

    /* noise glued in front of a line spoils only that line; the next one is read */
    TS_ASSERT_EQ_INT(TS_FRAME_NONPRINT, feed_str(&fr, "\x01garbage\n", NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed_str(&fr, good, out, sizeof out));

    TS_ASSERT_EQ_INT(2, fr.count.bad_crc);
    TS_ASSERT_EQ_INT(6, fr.count.bad_frame);
    TS_ASSERT_EQ_INT(6, fr.count.nonprint);
    TS_ASSERT_EQ_INT(2, fr.count.empty);
    TS_ASSERT_EQ_INT(0, fr.count.too_long);
    TS_ASSERT_EQ_INT(2, fr.count.lines);
}

static void test_framer_length_limit(void)
{
    ts_framer_t fr;
    char payload[80], line[96], out[96];
    size_t i;
    ts_framer_init(&fr, g_fbuf, sizeof g_fbuf, 64);
    /* exactly 64 bytes before '\n' (58 payload + 6 frame): accepted, also with "\r\n" */
    for (i = 0; i < 58; ++i) {
        payload[i] = (char)('a' + (int)(i % 26));
    }
    payload[58] = '\0';
    framed(payload, line, sizeof line);
    TS_ASSERT_EQ_INT(65, strlen(line));
    TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed_str(&fr, line, out, sizeof out));
    TS_ASSERT_STR_EQ(payload, out);
    line[64] = '\0';
    strcat(line, "\r\n");
    TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed_str(&fr, line, out, sizeof out));
    /* 65 bytes: too long, then the next line is fine */
    payload[58] = 'z';
    payload[59] = '\0';
    framed(payload, line, sizeof line);
    TS_ASSERT_EQ_INT(TS_FRAME_TOO_LONG, feed_str(&fr, line, NULL, 0));
    TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed_str(&fr, framed("eval", line, sizeof line), out,
                                             sizeof out));
    TS_ASSERT_STR_EQ("eval", out);
    /* a very long run of bytes without '\n' is counted, not stored */
    for (i = 0; i < 5000; ++i) {
        TS_ASSERT_EQ_INT(TS_FRAME_PENDING, ts_framer_push(&fr, 'x', NULL, NULL));
    }
    TS_ASSERT_EQ_INT(TS_FRAME_TOO_LONG, ts_framer_push(&fr, '\n', NULL, NULL));
    TS_ASSERT_EQ_INT(2, fr.count.too_long);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_TOO_LONG, ts_frame_status(TS_FRAME_TOO_LONG));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_CRC, ts_frame_status(TS_FRAME_BAD_CRC));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_CRC, ts_frame_status(TS_FRAME_BAD_FRAME));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_CRC, ts_frame_status(TS_FRAME_NONPRINT));
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_frame_status(TS_FRAME_LINE));
    /* a partial line is dropped by reset */
    feed_str(&fr, "garb", NULL, 0);
    ts_framer_reset(&fr);
    TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed_str(&fr, framed("name", line, sizeof line), out,
                                             sizeof out));
    TS_ASSERT_STR_EQ("name", out);
}

static void test_framer_init_and_frame_line(void)
{
    ts_framer_t fr;
    char small[8], out[32];
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_framer_init(&fr, g_fbuf, 65, 64));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_framer_init(&fr, NULL, 100, 64));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_framer_init(&fr, small, sizeof small, 5));
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_framer_init(&fr, small, sizeof small, 6));
    TS_ASSERT_EQ_INT(31, ts_frame_line("@ready cmd=info status=0", 24, out, sizeof out));
    TS_ASSERT_STR_EQ("@ready cmd=info status=0 *4946\n", out);
    TS_ASSERT_EQ_INT(0, ts_frame_line("@ready cmd=info status=0", 24, out, 31)); /* no NUL room */
    TS_ASSERT_EQ_INT(0, ts_frame_line("a*b", 3, out, sizeof out));
    TS_ASSERT_EQ_INT(0, ts_frame_line("a\nb", 3, out, sizeof out));
}

/* ---- numbers ------------------------------------------------------------------------------- */

static void test_parse_u32(void)
{
    uint32_t v = 7;
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_parse_u32("0", 1, &v));
    TS_ASSERT_EQ_INT(0, v);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_parse_u32("4294967295", 10, &v));
    TS_ASSERT_EQ_INT(4294967295u, v);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_parse_u32("0042", 4, &v));
    TS_ASSERT_EQ_INT(42, v);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_parse_u32("123x", 3, &v)); /* length-bounded */
    TS_ASSERT_EQ_INT(123, v);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_parse_u32("4294967296", 10, &v));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_parse_u32("99999999999", 11, &v));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_parse_u32("", 0, &v));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_parse_u32("-1", 2, &v));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_parse_u32("+1", 2, &v));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_parse_u32("1a", 2, &v));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, ts_parse_u32(" 1", 2, &v));
    TS_ASSERT_EQ_INT(123, v); /* untouched on failure */
}

static int real_is(const char *s, float want)
{
    float v = -12345.0f;
    if (ts_parse_real(s, strlen(s), &v) != TS_PROTO_OK) {
        return 0;
    }
    return memcmp(&v, &want, sizeof v) == 0; /* bit-exact, so -0 != 0 */
}

static int real_bad(const char *s)
{
    float v = 0.0f;
    return ts_parse_real(s, strlen(s), &v) == TS_PROTO_ERR_BAD_ARG;
}

static void test_parse_real(void)
{
    /* correctly rounded for the values a host sends */
    TS_ASSERT(real_is("0.05", 0.05f));
    TS_ASSERT(real_is("0.9", 0.9f));
    TS_ASSERT(real_is("0.1", 0.1f));
    TS_ASSERT(real_is("0.001", 0.001f));
    TS_ASSERT(real_is("1e-3", 1e-3f));
    TS_ASSERT(real_is("1E-3", 1e-3f));
    TS_ASSERT(real_is("3e-4", 3e-4f));
    TS_ASSERT(real_is("0.0003", 3e-4f));
    TS_ASSERT(real_is("5", 5.0f));
    TS_ASSERT(real_is("+5", 5.0f));
    TS_ASSERT(real_is(".5", 0.5f));
    TS_ASSERT(real_is("5.", 5.0f));
    TS_ASSERT(real_is("-2.5e+2", -250.0f));
    TS_ASSERT(real_is("0", 0.0f));
    TS_ASSERT(real_is("-0", -0.0f));
    TS_ASSERT(real_is("0.000", 0.0f));
    TS_ASSERT(real_is("123456.789", 123456.789f));
    TS_ASSERT(real_is("0.000000000000000000000000000001", 1e-30f));
    TS_ASSERT(real_is("1000000000000000000000000000000", 1e30f));
    TS_ASSERT(real_is("12345678901234567890123", 1.2345678901234567e22f));
    TS_ASSERT(real_is("3.4028234e38", 3.4028234e38f));
    TS_ASSERT(real_is("1e-50", 0.0f)); /* below float range: 0 (then refused by range checks) */
    TS_ASSERT(real_is("0e99999", 0.0f));
    /* refused */
    TS_ASSERT(real_bad("1e39"));
    TS_ASSERT(real_bad("3.5e38"));
    TS_ASSERT(real_bad("1e99999"));
    TS_ASSERT(real_bad(""));
    TS_ASSERT(real_bad("."));
    TS_ASSERT(real_bad("-"));
    TS_ASSERT(real_bad("+."));
    TS_ASSERT(real_bad("e5"));
    TS_ASSERT(real_bad("1e"));
    TS_ASSERT(real_bad("1e+"));
    TS_ASSERT(real_bad("--1"));
    TS_ASSERT(real_bad("1.2.3"));
    TS_ASSERT(real_bad("1,5"));
    TS_ASSERT(real_bad("nan"));
    TS_ASSERT(real_bad("inf"));
    TS_ASSERT(real_bad("0x10"));
    TS_ASSERT(real_bad(" 1"));
    TS_ASSERT(real_bad("1 "));
    TS_ASSERT(real_bad("10000000000000000000000000000000000000000")); /* 41 characters */
}

/* ---- command parser ---------------------------------------------------------------------- */

static void test_parse_simple_commands(void)
{
    ts_command_t c;
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("name", &c));
    TS_ASSERT_EQ_INT(TS_CMD_NAME, c.id);
    TS_ASSERT_STR_EQ("name", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("info", &c));
    TS_ASSERT_EQ_INT(TS_CMD_INFO, c.id);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("eval", &c));
    TS_ASSERT_EQ_INT(TS_CMD_EVAL, c.id);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("results", &c));
    TS_ASSERT_EQ_INT(TS_CMD_RESULTS, c.id);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("reset", &c));
    TS_ASSERT_EQ_INT(TS_CMD_RESET, c.id);
    TS_ASSERT_STR_EQ("reset", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("  info  ", &c)); /* extra spaces are separators */
    TS_ASSERT_EQ_INT(TS_CMD_INFO, c.id);
    /* extra arguments */
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("info now", &c));
    TS_ASSERT_STR_EQ("info", c.name);
    TS_ASSERT_STR_EQ("unexpected_argument", c.error);
    /* unknown: the first word names the command in @ready */
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_UNKNOWN_CMD, parse("Info", &c));
    TS_ASSERT_STR_EQ("Info", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_UNKNOWN_CMD, parse("frobnicate_the_device_now x", &c));
    TS_ASSERT_STR_EQ("frobnicate_the_d", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_UNKNOWN_CMD, parse("", &c));
    TS_ASSERT_STR_EQ("-", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_UNKNOWN_CMD, parse("   ", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_UNKNOWN_CMD, ts_command_parse(NULL, 0, &c));
    /* length-bounded: "infox" cut to 4 bytes is "info" */
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_command_parse("infox", 4, &c));
    TS_ASSERT_EQ_INT(TS_CMD_INFO, c.id);
}

static void test_parse_db(void)
{
    ts_command_t c;
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("db load 5", &c));
    TS_ASSERT_EQ_INT(TS_CMD_DB_LOAD, c.id);
    TS_ASSERT_EQ_INT(5, c.db_count);
    TS_ASSERT_STR_EQ("db", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("db use ram", &c));
    TS_ASSERT_EQ_INT(TS_CMD_DB_USE, c.id);
    TS_ASSERT_EQ_INT(TS_DB_RAM, c.db_source);
    TS_ASSERT_STR_EQ("db", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("db use flash", &c));
    TS_ASSERT_EQ_INT(TS_DB_FLASH, c.db_source);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db load", &c));
    TS_ASSERT_STR_EQ("db", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db load 0", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db load -3", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db load 3.0", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db load 4294967296", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db load 3 4", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("db use both", &c));
    TS_ASSERT_EQ_INT(TS_DB_BOTH, c.db_source);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db use disk", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db use", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db use ram now", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db", &c));
    TS_ASSERT_STR_EQ("db", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db drop", &c));
    TS_ASSERT_STR_EQ("db", c.name);
}

static void test_parse_db_stream(void)
{
    ts_command_t c;
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("db stream 1437", &c));
    TS_ASSERT_EQ_INT(TS_CMD_DB_STREAM, c.id);
    TS_ASSERT_STR_EQ("db", c.name);
    TS_ASSERT_EQ_INT(1437, c.db_count);
    TS_ASSERT_EQ_INT(0, c.stream.cap); /* the app's capacity */
    TS_ASSERT_EQ_INT(TS_STREAM_RESERVOIR, c.stream.policy);
    TS_ASSERT_EQ_INT(1, c.stream.seed);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("db stream 70 seed=0 policy=coverage cap=65535", &c));
    TS_ASSERT_EQ_INT(70, c.db_count);
    TS_ASSERT_EQ_INT(65535, c.stream.cap);
    TS_ASSERT_EQ_INT(TS_STREAM_COVERAGE, c.stream.policy);
    TS_ASSERT_EQ_INT(0, c.stream.seed);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("db stream 4294967295 cap=1 policy=reservoir", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db stream", &c));
    TS_ASSERT_STR_EQ("expected_count", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db stream 0", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db stream 5 cap=0", &c));
    TS_ASSERT_STR_EQ("bad_value:cap", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db stream 5 cap=65536", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db stream 5 policy=random", &c));
    TS_ASSERT_STR_EQ("bad_value:policy", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db stream 5 seed=-1", &c));
    TS_ASSERT_STR_EQ("bad_value:seed", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db stream 5 cap=3 cap=4", &c));
    TS_ASSERT_STR_EQ("duplicate_key", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db stream 5 size=3", &c));
    TS_ASSERT_STR_EQ("unknown_key", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db stream 5 3", &c));
    TS_ASSERT_STR_EQ("expected_key=value", c.error);
    /* db load takes no key=value */
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db load 5 cap=3", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("db kept", &c));
    TS_ASSERT_EQ_INT(TS_CMD_DB_KEPT, c.id);
    TS_ASSERT_STR_EQ("db", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("db kept 3", &c));
    TS_ASSERT_STR_EQ("unexpected_argument", c.error);
}

static void test_parse_calib(void)
{
    ts_command_t c;
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("calib", &c));
    TS_ASSERT_EQ_INT(TS_CMD_CALIB, c.id);
    TS_ASSERT_STR_EQ("calib", c.name);
    TS_ASSERT_EQ_INT(2000, c.calib_ms);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("calib ms=1", &c));
    TS_ASSERT_EQ_INT(1, c.calib_ms);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("calib ms=600000", &c));
    TS_ASSERT_EQ_INT(600000, c.calib_ms);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("calib ms=0", &c));
    TS_ASSERT_STR_EQ("bad_value:ms", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("calib ms=600001", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("calib ms=", &c));
    TS_ASSERT_STR_EQ("bad_value:ms", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("calib ms=1.5", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("calib s=2", &c));
    TS_ASSERT_STR_EQ("unknown_key", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("calib ms=2 ms=3", &c));
    TS_ASSERT_STR_EQ("unexpected_argument", c.error);
    TS_ASSERT_STR_EQ("calib", c.name);
}

static void test_parse_train(void)
{
    ts_command_t c;
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("train", &c));
    TS_ASSERT_EQ_INT(TS_CMD_TRAIN, c.id);
    TS_ASSERT_EQ_INT(5, c.train.epochs);
    TS_ASSERT(c.train.lr == 0.05f);
    TS_ASSERT(c.train.momentum == 0.9f);
    TS_ASSERT_EQ_INT(32, c.train.batch);
    TS_ASSERT_EQ_INT(1, c.train.seed);
    TS_ASSERT_EQ_INT(TS_INIT_EXPORT, c.train.init);
    TS_ASSERT_EQ_INT(TS_PROTO_OK,
                     parse("train epochs=3 lr=0.01 momentum=0 batch=8 seed=4294967295", &c));
    TS_ASSERT_EQ_INT(3, c.train.epochs);
    TS_ASSERT(c.train.lr == 0.01f);
    TS_ASSERT(c.train.momentum == 0.0f);
    TS_ASSERT_EQ_INT(8, c.train.batch);
    TS_ASSERT_EQ_INT(4294967295u, c.train.seed);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("train seed=0 epochs=0", &c)); /* any order */
    TS_ASSERT_EQ_INT(0, c.train.epochs);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("train lr=10 momentum=0.999 batch=65535 epochs=10000", &c));
    /* what the host sends (tinysift.device.runner.TrainParams.command) */
    TS_ASSERT_EQ_INT(TS_PROTO_OK,
                     parse("train epochs=5 lr=0.05 momentum=0.9 batch=32 seed=1 init=zero", &c));
    TS_ASSERT_EQ_INT(TS_INIT_ZERO, c.train.init);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("train init=export lr=3e-05", &c));
    TS_ASSERT_EQ_INT(TS_INIT_EXPORT, c.train.init);
    TS_ASSERT(c.train.lr == 3e-05f);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train init=zeros", &c));
    TS_ASSERT_STR_EQ("bad_value:init", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train init=", &c));
    /* refused, with the key named */
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train lr=0", &c));
    TS_ASSERT_STR_EQ("bad_value:lr", c.error);
    TS_ASSERT_STR_EQ("train", c.name);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train lr=-0.1", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train lr=10.5", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train lr=nan", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train momentum=1", &c));
    TS_ASSERT_STR_EQ("bad_value:momentum", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train momentum=-0.5", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train batch=0", &c));
    TS_ASSERT_STR_EQ("bad_value:batch", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train batch=65536", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train epochs=10001", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train epochs=2.5", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train seed=-1", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train epochs=", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train epochs", &c));
    TS_ASSERT_STR_EQ("expected_key=value", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train =3", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train epoch=3", &c));
    TS_ASSERT_STR_EQ("unknown_key", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train epochs=3 epochs=4", &c));
    TS_ASSERT_STR_EQ("duplicate_key", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train lr==0.1", &c));
}

/* API 3 of the trainer: steps, schedule, balance, update (docs/protocol.md). */
static void test_parse_train_recipe(void)
{
    ts_command_t c;
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("train", &c));
    TS_ASSERT_EQ_INT(0, c.train.steps);
    TS_ASSERT_EQ_INT(TS_TRAIN_SCHEDULE_CONSTANT, c.train.schedule);
    TS_ASSERT_EQ_INT(0, c.train.balance);
    TS_ASSERT_EQ_INT(TS_TRAIN_UPDATE_HEAD, c.train.update);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("train steps=500 schedule=cosine balance=1 "
                                        "update=last-block lr=0.1 init=zero", &c));
    TS_ASSERT_EQ_INT(500, c.train.steps);
    TS_ASSERT_EQ_INT(TS_TRAIN_SCHEDULE_COSINE, c.train.schedule);
    TS_ASSERT_EQ_INT(1, c.train.balance);
    TS_ASSERT_EQ_INT(TS_TRAIN_UPDATE_LAST_BLOCK, c.train.update);
    TS_ASSERT_EQ_INT(TS_INIT_ZERO, c.train.init);
    TS_ASSERT_EQ_INT(5, c.train.epochs); /* untouched default, not used with steps */
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("train update=bias schedule=step steps=1000000", &c));
    TS_ASSERT_EQ_INT(TS_TRAIN_UPDATE_BIAS, c.train.update);
    TS_ASSERT_EQ_INT(TS_TRAIN_SCHEDULE_STEP, c.train.schedule);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, parse("train update=head schedule=constant balance=0", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train steps=0", &c));
    TS_ASSERT_STR_EQ("bad_value:steps", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train steps=1000001", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train schedule=linear", &c));
    TS_ASSERT_STR_EQ("bad_value:schedule", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train balance=2", &c));
    TS_ASSERT_STR_EQ("bad_value:balance", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train update=all", &c));
    TS_ASSERT_STR_EQ("bad_value:update", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train update=last_block", &c));
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train epochs=3 steps=30", &c));
    TS_ASSERT_STR_EQ("epochs_and_steps", c.error);
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_BAD_ARG, parse("train update=bias update=head", &c));
    TS_ASSERT_STR_EQ("duplicate_key", c.error);
}

/* ---- db data lines --------------------------------------------------------------------------- */

static void test_db_decode(void)
{
    int8_t s[4] = {9, 9, 9, 9};
    uint8_t y = 99;
    const char *ok = "7:00017F80";
    TS_ASSERT(ts_db_is_data_line(ok, strlen(ok)));
    TS_ASSERT(!ts_db_is_data_line("db load 3", 9));
    TS_ASSERT(!ts_db_is_data_line("", 0));
    /* the data line form (label and length unchecked): what the app drops outside a load */
    TS_ASSERT(ts_db_has_data_form(ok, strlen(ok)));
    TS_ASSERT(ts_db_has_data_form("999:f", 5));
    TS_ASSERT(ts_db_has_data_form("0:0", 3));
    TS_ASSERT(!ts_db_has_data_form("5train epochs=1", 15));
    TS_ASSERT(!ts_db_has_data_form("7:", 2));
    TS_ASSERT(!ts_db_has_data_form("7:00 17", 7));
    TS_ASSERT(!ts_db_has_data_form("7:0g", 4));
    TS_ASSERT(!ts_db_has_data_form("1000:00", 7));
    TS_ASSERT(!ts_db_has_data_form(":00", 3));
    TS_ASSERT(!ts_db_has_data_form("7", 1));
    TS_ASSERT(!ts_db_has_data_form("", 0));
    TS_ASSERT(!ts_db_has_data_form(NULL, 0));
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_db_decode_line(ok, strlen(ok), 10, s, 4, &y));
    TS_ASSERT_EQ_INT(7, y);
    TS_ASSERT_EQ_INT(0, s[0]);
    TS_ASSERT_EQ_INT(1, s[1]);
    TS_ASSERT_EQ_INT(127, s[2]);
    TS_ASSERT_EQ_INT(-128, s[3]);
    TS_ASSERT_EQ_INT(TS_PROTO_OK, ts_db_decode_line("009:ffFEa0", 10, 10, s, 3, &y));
    TS_ASSERT_EQ_INT(9, y);
    TS_ASSERT_EQ_INT(-1, s[0]);
    TS_ASSERT_EQ_INT(-2, s[1]);
    TS_ASSERT_EQ_INT(-96, s[2]);
    /* refused, and nothing written */
    memset(s, 9, sizeof s);
    y = 99;
#define BAD(str, k, n)                                                                          \
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_DB_MALFORMED,                                                \
                     ts_db_decode_line(str, strlen(str), k, s, n, &y))
    BAD("10:00017F80", 10, 4);    /* label out of range */
    BAD("256:00", 300, 1);        /* label above 255 */
    BAD("1000:00", 2000, 1);      /* 4-digit label */
    BAD("7:00017F", 10, 4);       /* short */
    BAD("7:00017F8000", 10, 4);   /* long */
    BAD("7:00017F8", 10, 4);      /* odd */
    BAD("7:00017G80", 10, 4);     /* not hex */
    BAD("7:00 17F80", 10, 4);
    BAD("7;00017F80", 10, 4);
    BAD(":00017F80", 10, 4);
    BAD("a:00017F80", 10, 4);
    BAD("-1:00017F80", 10, 4);
    BAD("7", 10, 4);
    BAD("7:", 10, 4);
    BAD("", 10, 4);
    BAD("7:00017F80", 0, 4);      /* a model without classes */
#undef BAD
    TS_ASSERT_EQ_INT(99, y);
    TS_ASSERT_EQ_INT(9, s[0]);
    TS_ASSERT_EQ_INT(9, s[3]);
    /* huge sample_bytes: no overflow in the length check */
    TS_ASSERT_EQ_INT(TS_PROTO_ERR_DB_MALFORMED,
                     ts_db_decode_line(ok, strlen(ok), 10, s, (size_t)-1 / 2u + 1u, &y));
}

/* ---- records ---------------------------------------------------------------------------------- */

static void test_record_writer(void)
{
    char buf[TS_PROTO_RECORD_BUF];
    ts_record_t r;
    size_t n;
    ts_record_begin(&r, buf, sizeof buf, "ready");
    ts_record_text(&r, "cmd", "info");
    ts_record_u32(&r, "status", 0);
    n = ts_record_end(&r);
    TS_ASSERT_STR_EQ("@ready cmd=info status=0 *4946\n", buf);
    TS_ASSERT_EQ_INT(strlen(buf), n);

    ts_record_begin(&r, buf, sizeof buf, "epoch");
    ts_record_u32(&r, "n", 1);
    ts_record_real(&r, "loss", 0.05f);
    ts_record_real(&r, "acc", 1.0);
    ts_record_real(&r, "big", 123456789.0);
    ts_record_real(&r, "tiny", 1.5e-7);
    ts_record_i32(&r, "neg", -2147483647 - 1);
    ts_record_u64(&r, "cycles", 18446744073709551615ull);
    ts_record_u64(&r, "zero", 0);
    n = ts_record_end(&r);
    TS_ASSERT(n > 0);
    TS_ASSERT_STR_EQ("@epoch n=1 loss=0.05 acc=1 big=1.23457e+08 tiny=1.5e-07 neg=-2147483648 "
                     "cycles=18446744073709551615 zero=0 ",
                     (buf[n - 6] = '\0', buf));

    /* non-finite reals and text sanitization; the result is a valid frame */
    ts_record_begin(&r, buf, sizeof buf, "err");
    ts_record_real(&r, "a", g_zero / g_zero);
    ts_record_real(&r, "b", -1.0 / g_zero);
    ts_record_text(&r, "msg", "bad *value\there");
    ts_record_text(&r, "empty", "");
    ts_record_text(&r, "null", NULL);
    n = ts_record_end(&r);
    TS_ASSERT(n > 0);
    {
        ts_framer_t fr;
        char out[TS_PROTO_RECORD_BUF];
        ts_framer_init(&fr, g_fbuf, sizeof g_fbuf, 64);
        TS_ASSERT_EQ_INT(TS_FRAME_LINE, feed(&fr, buf, n, out, sizeof out));
        TS_ASSERT_STR_EQ("@err a=nan b=-inf msg=bad_?value?here empty=- null=-", out);
    }
}

static void test_record_overflow(void)
{
    char buf[TS_PROTO_RECORD_BUF], small[16];
    ts_record_t r;
    int i;
    /* a record may not exceed TS_PROTO_MAX_LINE bytes before '\n' */
    ts_record_begin(&r, buf, sizeof buf, "mem");
    for (i = 0; i < 40; ++i) {
        ts_record_u32(&r, "abc", 1234567u);
    }
    TS_ASSERT_EQ_INT(0, ts_record_end(&r));
    TS_ASSERT_STR_EQ("", buf);
    /* exactly 255 bytes before '\n': "@x k=" + 244 characters + " *XXXX" */
    {
        char text[246];
        memset(text, 'a', 245);
        text[244] = '\0';
        ts_record_begin(&r, buf, sizeof buf, "x");
        ts_record_text(&r, "k", text);
        TS_ASSERT_EQ_INT(256, ts_record_end(&r));
        TS_ASSERT_EQ_INT(256, strlen(buf));
        text[244] = 'a';
        text[245] = '\0';
        ts_record_begin(&r, buf, sizeof buf, "x");
        ts_record_text(&r, "k", text);
        TS_ASSERT_EQ_INT(0, ts_record_end(&r));
        /* a buffer larger than TS_PROTO_RECORD_BUF: the line's limit still holds (with the
         * record buffer both limits are the same byte, so only a larger one tells them apart) */
        {
            char big[2u * TS_PROTO_RECORD_BUF];
            ts_record_begin(&r, big, sizeof big, "x");
            ts_record_text(&r, "k", text);
            TS_ASSERT_EQ_INT(0, ts_record_end(&r));
            text[244] = '\0';
            ts_record_begin(&r, big, sizeof big, "x");
            ts_record_text(&r, "k", text);
            TS_ASSERT_EQ_INT(256, ts_record_end(&r));
        }
    }
    /* a small buffer */
    ts_record_begin(&r, small, sizeof small, "ready");
    ts_record_u32(&r, "status", 0);
    TS_ASSERT_EQ_INT(0, ts_record_end(&r));
    ts_record_begin(&r, small, 7, "");
    TS_ASSERT_EQ_INT(0, ts_record_end(&r));
}

int main(void)
{
    TS_TEST_BEGIN();
    TS_RUN(test_crc_check_values);
    TS_RUN(test_framer_valid_lines);
    TS_RUN(test_framer_drops_and_resyncs);
    TS_RUN(test_framer_length_limit);
    TS_RUN(test_framer_init_and_frame_line);
    TS_RUN(test_parse_u32);
    TS_RUN(test_parse_real);
    TS_RUN(test_parse_simple_commands);
    TS_RUN(test_parse_db);
    TS_RUN(test_parse_db_stream);
    TS_RUN(test_parse_calib);
    TS_RUN(test_parse_train);
    TS_RUN(test_parse_train_recipe);
    TS_RUN(test_db_decode);
    TS_RUN(test_record_writer);
    TS_RUN(test_record_overflow);
    return TS_TEST_END();
}
