/*
 * tinysift serial protocol TSP/1, device side. See ts_protocol.h and docs/protocol.md.
 * C99, no heap, no static mutable state.
 */
#include "ts_protocol.h"

#include <float.h>
#include <string.h>

#include "ts_platform.h" /* ts_snprintf (heap-free) for %.6g */

/* ---- CRC-16/CCITT-FALSE --------------------------------------------------------------------- */

/* crc of each nibble value shifted through the polynomial 0x1021 */
static const uint16_t k_crc_nibble[16] = {
    0x0000u, 0x1021u, 0x2042u, 0x3063u, 0x4084u, 0x50A5u, 0x60C6u, 0x70E7u,
    0x8108u, 0x9129u, 0xA14Au, 0xB16Bu, 0xC18Cu, 0xD1ADu, 0xE1CEu, 0xF1EFu,
};

uint16_t ts_crc16_update(uint16_t crc, const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    size_t i;
    for (i = 0; i < len; ++i) {
        uint8_t b = p[i];
        crc = (uint16_t)((crc << 4) ^ k_crc_nibble[((crc >> 12) ^ (b >> 4)) & 0xFu]);
        crc = (uint16_t)((crc << 4) ^ k_crc_nibble[((crc >> 12) ^ (b & 0xFu)) & 0xFu]);
    }
    return crc;
}

uint16_t ts_crc16(const void *data, size_t len)
{
    return ts_crc16_update(TS_CRC16_INIT, data, len);
}

static const char k_hex_upper[] = "0123456789ABCDEF";

/* 0..15 for an upper-case hex digit, -1 otherwise (the frame's CRC is upper-case only). */
static int hex_upper_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* 0..15 for a hex digit of either case, -1 otherwise. */
static int hex_value(char c)
{
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return hex_upper_value(c);
}

static int is_printable(uint8_t c)
{
    return c >= 0x20u && c <= 0x7Eu;
}

/* ---- framer ----------------------------------------------------------------------------- */

ts_proto_status_t ts_framer_init(ts_framer_t *fr, char *buf, size_t cap, size_t max_len)
{
    if (fr == NULL || buf == NULL || max_len < TS_PROTO_FRAME_BYTES ||
        cap < TS_FRAMER_BUF_BYTES(max_len)) {
        return TS_PROTO_ERR_BAD_ARG;
    }
    memset(fr, 0, sizeof *fr);
    fr->buf = buf;
    fr->cap = cap;
    fr->max_len = max_len;
    buf[0] = '\0';
    return TS_PROTO_OK;
}

void ts_framer_reset(ts_framer_t *fr)
{
    fr->len = 0;
    fr->nonprint = 0;
    fr->cr_pending = 0;
}

/* Validates buf[0..len) (printable, no '\r'): the ` *XXXX` trailer, no '*' in the payload,
 * the CRC over the payload and the space. */
static ts_frame_result_t check_frame(char *buf, size_t len, size_t *payload_len)
{
    size_t plen, i;
    uint16_t want = 0;
    if (len < TS_PROTO_FRAME_BYTES || buf[len - 6u] != ' ' || buf[len - 5u] != '*') {
        return TS_FRAME_BAD_FRAME;
    }
    for (i = len - 4u; i < len; ++i) {
        int v = hex_upper_value(buf[i]);
        if (v < 0) {
            return TS_FRAME_BAD_FRAME;
        }
        want = (uint16_t)((want << 4) | (uint16_t)v);
    }
    plen = len - TS_PROTO_FRAME_BYTES;
    if (memchr(buf, '*', plen) != NULL) {
        return TS_FRAME_BAD_FRAME;
    }
    if (ts_crc16(buf, plen + 1u) != want) { /* the payload and the space before '*' */
        return TS_FRAME_BAD_CRC;
    }
    buf[plen] = '\0';
    *payload_len = plen;
    return TS_FRAME_LINE;
}

ts_frame_result_t ts_framer_push(ts_framer_t *fr, uint8_t byte, const char **payload,
                                 size_t *payload_len)
{
    ts_frame_result_t r;
    size_t len, plen = 0;
    if (byte != '\n') {
        if (fr->cr_pending) {
            /* a '\r' not followed by '\n' is an ordinary (non-printable) byte of the line */
            fr->nonprint = 1;
            fr->cr_pending = 0;
        }
        if (byte == '\r') {
            fr->cr_pending = 1;
            fr->len++; /* counts towards the length until the '\n' proves it a line end */
            return TS_FRAME_PENDING;
        }
        if (!is_printable(byte)) {
            fr->nonprint = 1;
        }
        if (fr->len < fr->cap - 1u) {
            fr->buf[fr->len] = (char)byte;
        }
        if (fr->len < (size_t)-1) {
            fr->len++;
        }
        return TS_FRAME_PENDING;
    }

    /* end of line */
    len = fr->len;
    if (fr->cr_pending) {
        len--; /* "\r\n": the '\r' is not part of the line */
    }
    if (len == 0) {
        r = TS_FRAME_EMPTY;
    } else if (len > fr->max_len || len > fr->cap - 2u) {
        r = TS_FRAME_TOO_LONG;
    } else if (fr->nonprint) {
        r = TS_FRAME_NONPRINT;
    } else {
        r = check_frame(fr->buf, len, &plen);
    }
    ts_framer_reset(fr);
    switch (r) {
    case TS_FRAME_LINE:
        fr->count.lines++;
        if (payload != NULL) {
            *payload = fr->buf;
        }
        if (payload_len != NULL) {
            *payload_len = plen;
        }
        break;
    case TS_FRAME_EMPTY: fr->count.empty++; break;
    case TS_FRAME_TOO_LONG: fr->count.too_long++; break;
    case TS_FRAME_NONPRINT: fr->count.nonprint++; break;
    case TS_FRAME_BAD_FRAME: fr->count.bad_frame++; break;
    case TS_FRAME_BAD_CRC: fr->count.bad_crc++; break;
    default: break;
    }
    return r;
}

ts_proto_status_t ts_frame_status(ts_frame_result_t r)
{
    switch (r) {
    case TS_FRAME_PENDING:
    case TS_FRAME_LINE:
    case TS_FRAME_EMPTY: return TS_PROTO_OK;
    case TS_FRAME_TOO_LONG: return TS_PROTO_ERR_TOO_LONG;
    default: return TS_PROTO_ERR_BAD_CRC;
    }
}

const char *ts_frame_result_name(ts_frame_result_t r)
{
    switch (r) {
    case TS_FRAME_PENDING: return "pending";
    case TS_FRAME_LINE: return "line";
    case TS_FRAME_EMPTY: return "empty";
    case TS_FRAME_TOO_LONG: return "too_long";
    case TS_FRAME_NONPRINT: return "non_printable";
    case TS_FRAME_BAD_FRAME: return "bad_frame";
    case TS_FRAME_BAD_CRC: return "bad_crc";
    default: return "?";
    }
}

static void put_crc(char *p, uint16_t crc)
{
    p[0] = ' ';
    p[1] = '*';
    p[2] = k_hex_upper[(crc >> 12) & 0xFu];
    p[3] = k_hex_upper[(crc >> 8) & 0xFu];
    p[4] = k_hex_upper[(crc >> 4) & 0xFu];
    p[5] = k_hex_upper[crc & 0xFu];
    p[6] = '\n';
    p[7] = '\0';
}

size_t ts_frame_line(const char *payload, size_t len, char *out, size_t out_cap)
{
    size_t i;
    if (payload == NULL || out == NULL || out_cap < 8u || len > out_cap - 8u) {
        return 0;
    }
    for (i = 0; i < len; ++i) {
        if (!is_printable((uint8_t)payload[i]) || payload[i] == '*') {
            return 0;
        }
    }
    memmove(out, payload, len);
    out[len] = ' ';
    put_crc(out + len, ts_crc16(out, len + 1u));
    return len + 7u;
}

/* ---- numbers ------------------------------------------------------------------------------ */

ts_proto_status_t ts_parse_u32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (s == NULL || len == 0 || len > 10u) {
        return TS_PROTO_ERR_BAD_ARG;
    }
    for (i = 0; i < len; ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return TS_PROTO_ERR_BAD_ARG;
        }
        v = v * 10u + (uint64_t)(s[i] - '0');
    }
    if (v > 0xFFFFFFFFu) {
        return TS_PROTO_ERR_BAD_ARG;
    }
    *out = (uint32_t)v;
    return TS_PROTO_OK;
}

/* 10^0 .. 10^22 are exact doubles */
static const double k_pow10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#define TS_REAL_MAX_CHARS 40u
#define TS_REAL_MAX_SIG 19 /* significant digits kept in a uint64 */

ts_proto_status_t ts_parse_real(const char *s, size_t len, float *out)
{
    size_t i = 0;
    int neg = 0, sig = 0, digits = 0, exp10 = 0;
    uint64_t mant = 0;
    double v;
    if (s == NULL || len == 0 || len > TS_REAL_MAX_CHARS) {
        return TS_PROTO_ERR_BAD_ARG;
    }
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    for (; i < len && s[i] >= '0' && s[i] <= '9'; ++i) {
        digits++;
        if (mant == 0 && s[i] == '0') {
            continue; /* leading zero */
        }
        if (sig < TS_REAL_MAX_SIG) {
            mant = mant * 10u + (uint64_t)(s[i] - '0');
            sig++;
        } else {
            exp10++; /* dropped integer digit */
        }
    }
    if (i < len && s[i] == '.') {
        for (++i; i < len && s[i] >= '0' && s[i] <= '9'; ++i) {
            digits++;
            if (mant == 0 && s[i] == '0') {
                exp10--;
                continue;
            }
            if (sig < TS_REAL_MAX_SIG) {
                mant = mant * 10u + (uint64_t)(s[i] - '0');
                sig++;
                exp10--;
            }
        }
    }
    if (digits == 0) {
        return TS_PROTO_ERR_BAD_ARG;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0, edigits = 0, ev = 0;
        ++i;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            ++i;
        }
        for (; i < len && s[i] >= '0' && s[i] <= '9'; ++i) {
            edigits++;
            if (ev < 10000) {
                ev = ev * 10 + (s[i] - '0');
            }
        }
        if (edigits == 0) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        exp10 += eneg ? -ev : ev;
    }
    if (i != len) {
        return TS_PROTO_ERR_BAD_ARG;
    }
    if (mant == 0 || exp10 < -400) {
        v = 0.0;
    } else if (exp10 > 60) {
        return TS_PROTO_ERR_BAD_ARG; /* >= 1e60: far beyond FLT_MAX */
    } else {
        int e = exp10;
        v = (double)mant;
        while (e > 22) {
            v *= 1e22;
            e -= 22;
        }
        while (e < -22) {
            v /= 1e22;
            e += 22;
        }
        v = (e >= 0) ? v * k_pow10[e] : v / k_pow10[-e];
    }
    if (v > (double)FLT_MAX) {
        return TS_PROTO_ERR_BAD_ARG;
    }
    *out = neg ? -(float)v : (float)v;
    return TS_PROTO_OK;
}

/* ---- commands ------------------------------------------------------------------------------- */

void ts_train_args_default(ts_train_args_t *args)
{
    args->epochs = 5u;
    args->lr = 0.05f;
    args->momentum = 0.9f;
    args->batch = 32u;
    args->seed = 1u;
    args->init = TS_INIT_EXPORT;
    args->steps = 0u;
    args->schedule = TS_TRAIN_SCHEDULE_CONSTANT;
    args->balance = 0u;
    args->update = TS_TRAIN_UPDATE_HEAD;
}

typedef struct {
    const char *p;
    size_t len;
} ts_word_t;

/* The next space-separated word at or after *pos; 0 when none is left. */
static int next_word(const char *s, size_t len, size_t *pos, ts_word_t *w)
{
    size_t i = *pos, start;
    while (i < len && s[i] == ' ') {
        ++i;
    }
    if (i >= len) {
        *pos = i;
        return 0;
    }
    start = i;
    while (i < len && s[i] != ' ') {
        ++i;
    }
    w->p = s + start;
    w->len = i - start;
    *pos = i;
    return 1;
}

static int word_is(const ts_word_t *w, const char *lit)
{
    size_t n = strlen(lit);
    return w->len == n && memcmp(w->p, lit, n) == 0;
}

static void set_name(ts_command_t *cmd, const char *p, size_t len)
{
    size_t i;
    if (len > TS_PROTO_CMD_NAME_MAX) {
        len = TS_PROTO_CMD_NAME_MAX;
    }
    for (i = 0; i < len; ++i) {
        uint8_t c = (uint8_t)p[i];
        cmd->name[i] = (c > 0x20u && c <= 0x7Eu && c != '*') ? (char)c : '?';
    }
    cmd->name[len] = '\0';
}

static ts_proto_status_t fail(ts_command_t *cmd, ts_proto_status_t st, const char *msg)
{
    cmd->error = msg;
    return st;
}

/* The index of val[0..vlen) in the n names, or n when it is none of them. */
static unsigned word_index(const char *val, size_t vlen, const char *const *names, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; ++i) {
        if (strlen(names[i]) == vlen && memcmp(names[i], val, vlen) == 0) {
            break;
        }
    }
    return i;
}

/* One `key=value` word of a command: *k the key's index in keys[0..n) (seen: a bit per key,
 * so that a key given twice is refused), *val / *vlen the value. Else 101 and *msg. */
static ts_proto_status_t split_key(const ts_word_t *w, const char *const *keys, unsigned n,
                                   unsigned *seen, unsigned *k, const char **val,
                                   size_t *vlen, const char **msg)
{
    const char *eq = (const char *)memchr(w->p, '=', w->len);
    size_t klen;
    if (eq == NULL) {
        *msg = "expected_key=value";
        return TS_PROTO_ERR_BAD_ARG;
    }
    klen = (size_t)(eq - w->p);
    *val = eq + 1;
    *vlen = w->len - klen - 1u;
    *k = word_index(w->p, klen, keys, n);
    if (*k == n) {
        *msg = "unknown_key";
        return TS_PROTO_ERR_BAD_ARG;
    }
    if (*seen & (1u << *k)) {
        *msg = "duplicate_key";
        return TS_PROTO_ERR_BAD_ARG;
    }
    *seen |= 1u << *k;
    return TS_PROTO_OK;
}

/* One `key=value` of `db stream`: cap, policy, seed. */
static ts_proto_status_t parse_stream_arg(const ts_word_t *w, ts_stream_args_t *a,
                                          unsigned *seen, const char **msg)
{
    static const char *const keys[3] = {"cap", "policy", "seed"};
    static const char *const bad[3] = {"bad_value:cap", "bad_value:policy", "bad_value:seed"};
    static const char *const policies[2] = {"reservoir", "coverage"};
    size_t vlen;
    const char *val;
    unsigned k;
    uint32_t u = 0;
    if (split_key(w, keys, 3u, seen, &k, &val, &vlen, msg) != TS_PROTO_OK) {
        return TS_PROTO_ERR_BAD_ARG;
    }
    *msg = bad[k];
    if (k == 1u) {
        u = word_index(val, vlen, policies, 2u);
        if (u == 2u) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->policy = (ts_stream_policy_t)u;
    } else if (ts_parse_u32(val, vlen, &u) != TS_PROTO_OK ||
               (k == 0u && (u == 0u || u > TS_PROTO_MAX_STREAM_CAP))) {
        return TS_PROTO_ERR_BAD_ARG;
    } else if (k == 0u) {
        a->cap = u;
    } else {
        a->seed = u;
    }
    *msg = NULL;
    return TS_PROTO_OK;
}

#define TS_TRAIN_KEYS 10u

/* One `key=value` of `train`. seen: bit per key, so a key given twice is refused. */
static ts_proto_status_t parse_train_arg(const ts_word_t *w, ts_train_args_t *a,
                                         unsigned *seen, const char **msg)
{
    static const char *const keys[TS_TRAIN_KEYS] = {"epochs", "lr", "momentum", "batch",
                                                    "seed", "init", "steps", "schedule",
                                                    "balance", "update"};
    static const char *const bad[TS_TRAIN_KEYS] = {
        "bad_value:epochs", "bad_value:lr", "bad_value:momentum", "bad_value:batch",
        "bad_value:seed", "bad_value:init", "bad_value:steps", "bad_value:schedule",
        "bad_value:balance", "bad_value:update"};
    static const char *const schedules[3] = {"constant", "cosine", "step"};
    static const char *const updates[3] = {"head", "last-block", "bias"};
    size_t vlen;
    const char *val;
    unsigned k;
    uint32_t u = 0;
    float f = 0.0f;
    if (split_key(w, keys, TS_TRAIN_KEYS, seen, &k, &val, &vlen, msg) != TS_PROTO_OK) {
        return TS_PROTO_ERR_BAD_ARG;
    }
    *msg = bad[k];
    switch (k) {
    case 0:
        if (ts_parse_u32(val, vlen, &u) != TS_PROTO_OK || u > TS_PROTO_MAX_EPOCHS) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->epochs = u;
        break;
    case 1:
        if (ts_parse_real(val, vlen, &f) != TS_PROTO_OK || !(f > 0.0f) ||
            !(f <= TS_PROTO_MAX_LR)) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->lr = f;
        break;
    case 2:
        if (ts_parse_real(val, vlen, &f) != TS_PROTO_OK || !(f >= 0.0f) || !(f < 1.0f)) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->momentum = f;
        break;
    case 3:
        if (ts_parse_u32(val, vlen, &u) != TS_PROTO_OK || u == 0u || u > TS_PROTO_MAX_BATCH) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->batch = u;
        break;
    case 4:
        if (ts_parse_u32(val, vlen, &u) != TS_PROTO_OK) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->seed = u;
        break;
    case 5:
        if (vlen == 6u && memcmp(val, "export", 6u) == 0) {
            a->init = TS_INIT_EXPORT;
        } else if (vlen == 4u && memcmp(val, "zero", 4u) == 0) {
            a->init = TS_INIT_ZERO;
        } else {
            return TS_PROTO_ERR_BAD_ARG;
        }
        break;
    case 6:
        if (ts_parse_u32(val, vlen, &u) != TS_PROTO_OK || u == 0u || u > TS_PROTO_MAX_STEPS) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->steps = u;
        break;
    case 7:
        u = word_index(val, vlen, schedules, 3u);
        if (u == 3u) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->schedule = (ts_train_schedule_t)u;
        break;
    case 8:
        if (ts_parse_u32(val, vlen, &u) != TS_PROTO_OK || u > 1u) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->balance = u;
        break;
    default:
        u = word_index(val, vlen, updates, 3u);
        if (u == 3u) {
            return TS_PROTO_ERR_BAD_ARG;
        }
        a->update = (ts_train_update_t)u;
        break;
    }
    *msg = NULL;
    return TS_PROTO_OK;
}

ts_proto_status_t ts_command_parse(const char *payload, size_t len, ts_command_t *cmd)
{
    static const struct {
        const char *word;
        ts_cmd_id_t id;
    } simple[] = {
        {"name", TS_CMD_NAME}, {"info", TS_CMD_INFO},       {"eval", TS_CMD_EVAL},
        {"results", TS_CMD_RESULTS}, {"reset", TS_CMD_RESET},
    };
    ts_word_t w, arg;
    size_t pos = 0, i;
    memset(cmd, 0, sizeof *cmd);
    ts_train_args_default(&cmd->train);
    cmd->stream.seed = 1u;
    cmd->name[0] = '-';
    if (payload == NULL || !next_word(payload, len, &pos, &w)) {
        return fail(cmd, TS_PROTO_ERR_UNKNOWN_CMD, "empty_command");
    }
    set_name(cmd, w.p, w.len);

    for (i = 0; i < sizeof simple / sizeof simple[0]; ++i) {
        if (word_is(&w, simple[i].word)) {
            cmd->id = simple[i].id;
            if (next_word(payload, len, &pos, &arg)) {
                return fail(cmd, TS_PROTO_ERR_BAD_ARG, "unexpected_argument");
            }
            return TS_PROTO_OK;
        }
    }

    if (word_is(&w, "db")) {
        if (!next_word(payload, len, &pos, &arg)) {
            return fail(cmd, TS_PROTO_ERR_BAD_ARG, "expected_load_or_use");
        }
        if (word_is(&arg, "load") || word_is(&arg, "stream")) {
            cmd->id = word_is(&arg, "load") ? TS_CMD_DB_LOAD : TS_CMD_DB_STREAM;
            if (!next_word(payload, len, &pos, &arg)) {
                return fail(cmd, TS_PROTO_ERR_BAD_ARG, "expected_count");
            }
            if (ts_parse_u32(arg.p, arg.len, &cmd->db_count) != TS_PROTO_OK ||
                cmd->db_count == 0u) {
                return fail(cmd, TS_PROTO_ERR_BAD_ARG, "bad_count");
            }
            if (cmd->id == TS_CMD_DB_STREAM) {
                unsigned seen = 0;
                while (next_word(payload, len, &pos, &arg)) {
                    const char *msg = NULL;
                    ts_proto_status_t st = parse_stream_arg(&arg, &cmd->stream, &seen, &msg);
                    if (st != TS_PROTO_OK) {
                        return fail(cmd, st, msg);
                    }
                }
            }
        } else if (word_is(&arg, "kept")) {
            cmd->id = TS_CMD_DB_KEPT;
        } else if (word_is(&arg, "use")) {
            cmd->id = TS_CMD_DB_USE;
            if (!next_word(payload, len, &pos, &arg)) {
                return fail(cmd, TS_PROTO_ERR_BAD_ARG, "expected_flash_or_ram");
            }
            if (word_is(&arg, "flash")) {
                cmd->db_source = TS_DB_FLASH;
            } else if (word_is(&arg, "ram")) {
                cmd->db_source = TS_DB_RAM;
            } else if (word_is(&arg, "both")) {
                cmd->db_source = TS_DB_BOTH;
            } else {
                return fail(cmd, TS_PROTO_ERR_BAD_ARG, "expected_flash_or_ram");
            }
        } else {
            return fail(cmd, TS_PROTO_ERR_BAD_ARG, "expected_load_or_use");
        }
        if (next_word(payload, len, &pos, &arg)) {
            return fail(cmd, TS_PROTO_ERR_BAD_ARG, "unexpected_argument");
        }
        return TS_PROTO_OK;
    }

    if (word_is(&w, "calib")) { /* calib [ms=<1..TS_PROTO_MAX_CALIB_MS>] */
        cmd->id = TS_CMD_CALIB;
        cmd->calib_ms = TS_PROTO_CALIB_MS_DEFAULT;
        if (next_word(payload, len, &pos, &arg)) {
            if (arg.len < 3u || memcmp(arg.p, "ms=", 3) != 0) {
                return fail(cmd, TS_PROTO_ERR_BAD_ARG, "unknown_key");
            }
            if (ts_parse_u32(arg.p + 3, arg.len - 3u, &cmd->calib_ms) != TS_PROTO_OK ||
                cmd->calib_ms == 0u || cmd->calib_ms > TS_PROTO_MAX_CALIB_MS) {
                return fail(cmd, TS_PROTO_ERR_BAD_ARG, "bad_value:ms");
            }
            if (next_word(payload, len, &pos, &arg)) {
                return fail(cmd, TS_PROTO_ERR_BAD_ARG, "unexpected_argument");
            }
        }
        return TS_PROTO_OK;
    }

    if (word_is(&w, "train")) {
        unsigned seen = 0;
        cmd->id = TS_CMD_TRAIN;
        while (next_word(payload, len, &pos, &arg)) {
            const char *msg = NULL;
            ts_proto_status_t st = parse_train_arg(&arg, &cmd->train, &seen, &msg);
            if (st != TS_PROTO_OK) {
                return fail(cmd, st, msg);
            }
        }
        if ((seen & 1u) && (seen & (1u << 6))) { /* epochs= and steps=: one or the other */
            return fail(cmd, TS_PROTO_ERR_BAD_ARG, "epochs_and_steps");
        }
        return TS_PROTO_OK;
    }

    return fail(cmd, TS_PROTO_ERR_UNKNOWN_CMD, "unknown_command");
}

/* ---- db data lines ---------------------------------------------------------------------- */

int ts_db_is_data_line(const char *payload, size_t len)
{
    return payload != NULL && len > 0 && payload[0] >= '0' && payload[0] <= '9';
}

int ts_db_has_data_form(const char *payload, size_t len)
{
    size_t i = 0, j;
    if (payload == NULL) {
        return 0;
    }
    while (i < len && i < 3u && payload[i] >= '0' && payload[i] <= '9') {
        ++i;
    }
    if (i == 0 || i + 1u >= len || payload[i] != ':') {
        return 0;
    }
    for (j = i + 1u; j < len; ++j) {
        if (hex_value(payload[j]) < 0) {
            return 0;
        }
    }
    return 1;
}

ts_proto_status_t ts_db_decode_line(const char *payload, size_t len, uint32_t num_classes,
                                    int8_t *sample, size_t sample_bytes, uint8_t *label)
{
    size_t i = 0, j;
    uint32_t lab = 0;
    if (payload == NULL || sample == NULL || label == NULL) {
        return TS_PROTO_ERR_DB_MALFORMED;
    }
    while (i < len && i < 3u && payload[i] >= '0' && payload[i] <= '9') {
        lab = lab * 10u + (uint32_t)(payload[i] - '0');
        ++i;
    }
    if (i == 0 || i >= len || payload[i] != ':' || lab >= num_classes || lab > 255u) {
        return TS_PROTO_ERR_DB_MALFORMED;
    }
    ++i;
    if (sample_bytes > (len - i) / 2u || len - i != 2u * sample_bytes) {
        return TS_PROTO_ERR_DB_MALFORMED;
    }
    for (j = i; j < len; ++j) { /* validate all before writing anything */
        if (hex_value(payload[j]) < 0) {
            return TS_PROTO_ERR_DB_MALFORMED;
        }
    }
    for (j = 0; j < sample_bytes; ++j) {
        int hi = hex_value(payload[i + 2u * j]);
        int lo = hex_value(payload[i + 2u * j + 1u]);
        uint8_t byte = (uint8_t)((hi << 4) | lo);
        sample[j] = (int8_t)(byte >= 128u ? (int)byte - 256 : (int)byte);
    }
    *label = (uint8_t)lab;
    return TS_PROTO_OK;
}

/* ---- records ---------------------------------------------------------------------------- */

/* Room left for content: the line may not exceed TS_PROTO_MAX_LINE with its frame, and the
 * buffer needs the frame, '\n' and NUL. */
static size_t record_limit(const ts_record_t *r)
{
    size_t lim = TS_PROTO_MAX_LINE - TS_PROTO_FRAME_BYTES;
    if (r->cap < 8u) {
        return 0;
    }
    if (r->cap - 8u < lim) {
        lim = r->cap - 8u;
    }
    return lim;
}

static void record_put(ts_record_t *r, const char *s, size_t n)
{
    if (r->overflow) {
        return;
    }
    if (n > record_limit(r) || r->len > record_limit(r) - n) {
        r->overflow = 1;
        return;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

void ts_record_begin(ts_record_t *r, char *buf, size_t cap, const char *type)
{
    r->buf = buf;
    r->cap = cap;
    r->len = 0;
    r->overflow = (buf == NULL || cap < 8u);
    record_put(r, "@", 1u);
    record_put(r, type, strlen(type));
}

static void record_key(ts_record_t *r, const char *key)
{
    record_put(r, " ", 1u);
    record_put(r, key, strlen(key));
    record_put(r, "=", 1u);
}

void ts_record_u32(ts_record_t *r, const char *key, uint32_t value)
{
    ts_record_u64(r, key, value);
}

void ts_record_i32(ts_record_t *r, const char *key, int32_t value)
{
    char tmp[16];
    int n = ts_snprintf(tmp, sizeof tmp, "%ld", (long)value);
    record_key(r, key);
    record_put(r, tmp, (size_t)n);
}

void ts_record_u64(ts_record_t *r, const char *key, uint64_t value)
{
    char tmp[24];
    size_t n = sizeof tmp;
    do { /* digits from the end: no 64-bit printf needed */
        tmp[--n] = (char)('0' + (int)(value % 10u));
        value /= 10u;
    } while (value != 0u);
    record_key(r, key);
    record_put(r, tmp + n, sizeof tmp - n);
}

void ts_record_real(ts_record_t *r, const char *key, double value)
{
    char tmp[32];
    int n;
    if (value != value) {
        n = ts_snprintf(tmp, sizeof tmp, "nan");
    } else if (value > DBL_MAX) {
        n = ts_snprintf(tmp, sizeof tmp, "inf");
    } else if (value < -DBL_MAX) {
        n = ts_snprintf(tmp, sizeof tmp, "-inf");
    } else {
        n = ts_snprintf(tmp, sizeof tmp, "%.6g", value);
    }
    record_key(r, key);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        r->overflow = 1;
        return;
    }
    record_put(r, tmp, (size_t)n);
}

void ts_record_text(ts_record_t *r, const char *key, const char *text)
{
    record_key(r, key);
    if (text == NULL || *text == '\0') {
        record_put(r, "-", 1u);
        return;
    }
    for (; *text != '\0' && !r->overflow; ++text) {
        uint8_t c = (uint8_t)*text;
        char o = (char)c;
        if (c == ' ') {
            o = '_';
        } else if (c < 0x21u || c > 0x7Eu || c == '*') {
            o = '?';
        }
        record_put(r, &o, 1u);
    }
}

size_t ts_record_end(ts_record_t *r)
{
    if (r->overflow || r->buf == NULL || r->cap < r->len + 8u) {
        if (r->buf != NULL && r->cap > 0) {
            r->buf[0] = '\0';
        }
        return 0;
    }
    r->buf[r->len] = ' ';
    put_crc(r->buf + r->len, ts_crc16(r->buf, r->len + 1u));
    r->len += 7u;
    return r->len;
}
