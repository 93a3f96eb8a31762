/*
 * tinysift serial protocol TSP/1, device side (docs/protocol.md): CRC-16/CCITT-FALSE, the
 * line framer, the command parser, the `db` data-line decoder and the record writer.
 *
 * Portable C99, no heap, no static state, no strtod/atof/sscanf (newlib's need a heap): the
 * numbers are parsed by the small parsers below. Every buffer is the caller's. The record
 * writer formats reals with ts_snprintf (boards/runtime, heap-free), so the library is
 * linked with the board runtime; everything else needs only <stddef.h>/<stdint.h>.
 */
#ifndef TS_PROTOCOL_H
#define TS_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_PROTO_VERSION 1

/* Longest line in bytes before the '\n' (the ` *XXXX` frame included, a '\r' not). */
#define TS_PROTO_MAX_LINE 255u
/* Longest `db` data line for samples of `sb` bytes: `<label>:<2*sb hex> *XXXX`. */
#define TS_PROTO_DB_LINE_MAX(sb) (2u * (size_t)(sb) + 16u)
/* ` *XXXX`: the space (covered by the CRC), the star and four upper-case hex digits. */
#define TS_PROTO_FRAME_BYTES 6u
/* A record buffer of this size holds any record (line, '\n' and a NUL). */
#define TS_PROTO_RECORD_BUF (TS_PROTO_MAX_LINE + 2u)
/* Command names in `@ready cmd=` are at most this long (longer unknown words are cut). */
#define TS_PROTO_CMD_NAME_MAX 16u
/* Limits of the `train` arguments (docs/protocol.md). */
#define TS_PROTO_MAX_EPOCHS 10000u
#define TS_PROTO_MAX_STEPS 1000000u
#define TS_PROTO_MAX_BATCH 65535u
#define TS_PROTO_MAX_LR 10.0f
/* `calib ms=`: the fixed workload's length, 1..TS_PROTO_MAX_CALIB_MS ms (default 2000) */
#define TS_PROTO_MAX_CALIB_MS 600000u
#define TS_PROTO_CALIB_MS_DEFAULT 2000u

/* Protocol status codes (above the engine's ts_status_t range, which ends at 7). */
typedef enum {
    TS_PROTO_OK = 0,
    TS_PROTO_ERR_UNKNOWN_CMD = 100, /* unknown command */
    TS_PROTO_ERR_BAD_ARG = 101,     /* missing, extra, unknown or out-of-range argument */
    TS_PROTO_ERR_TOO_LONG = 102,    /* line too long */
    TS_PROTO_ERR_BAD_CRC = 103,     /* bad or missing ` *XXXX`, non-printable byte */
    TS_PROTO_ERR_DB_MALFORMED = 104,/* db data line malformed, or the load was interrupted */
    TS_PROTO_ERR_DB_CAPACITY = 105, /* db load count above the build's capacity */
    TS_PROTO_ERR_NO_DATA = 106,     /* db use ram / train on ram with no set loaded */
    TS_PROTO_ERR_NO_MODEL = 107     /* firmware built without an export (TS_EXPORT_DIR) */
} ts_proto_status_t;

/* ---- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR ---------- */

#define TS_CRC16_INIT 0xFFFFu
uint16_t ts_crc16_update(uint16_t crc, const void *data, size_t len);
uint16_t ts_crc16(const void *data, size_t len); /* ts_crc16_update(TS_CRC16_INIT, ...) */

/* ---- line framer ---------------------------------------------------------------------------
 * Feed it received bytes one at a time. At each '\n' it validates the line (a '\r' right
 * before the '\n' is ignored) and reports what it was; the bytes of a bad line are dropped
 * and counted, and the next line starts fresh (resynchronization at '\n'). */
typedef enum {
    TS_FRAME_PENDING = 0,  /* no complete line yet */
    TS_FRAME_LINE,         /* a valid line: *payload (NUL-terminated, frame removed) */
    TS_FRAME_EMPTY,        /* an empty line (just "\n" or "\r\n") */
    TS_FRAME_TOO_LONG,     /* more than max_len bytes before the '\n' */
    TS_FRAME_NONPRINT,     /* a byte outside 0x20..0x7E */
    TS_FRAME_BAD_FRAME,    /* no ` *XXXX` trailer (upper-case hex), or a '*' in the payload */
    TS_FRAME_BAD_CRC       /* well-formed, but the CRC does not match */
} ts_frame_result_t;

typedef struct {
    uint32_t lines;     /* valid lines */
    uint32_t empty;
    uint32_t too_long;
    uint32_t nonprint;
    uint32_t bad_frame;
    uint32_t bad_crc;
} ts_framer_counters_t;

typedef struct {
    char *buf;
    size_t cap;
    size_t max_len;
    size_t len;         /* bytes of the current line seen so far (stored: min(len, cap-1)) */
    uint8_t nonprint;   /* current line has a byte outside 0x20..0x7E (a '\r' counts
                           unless it is the last byte before '\n') */
    uint8_t cr_pending; /* the previous byte was '\r' */
    ts_framer_counters_t count;
} ts_framer_t;

/* Bytes of buffer a framer accepting lines of max_len bytes needs (max_len + '\r' + NUL). */
#define TS_FRAMER_BUF_BYTES(max_len) ((size_t)(max_len) + 2u)

/* buf must hold TS_FRAMER_BUF_BYTES(max_len) bytes; TS_PROTO_ERR_BAD_ARG otherwise (or NULL,
 * or max_len < TS_PROTO_FRAME_BYTES). */
ts_proto_status_t ts_framer_init(ts_framer_t *fr, char *buf, size_t cap, size_t max_len);
/* Drops a partial line (counters kept). */
void ts_framer_reset(ts_framer_t *fr);
/* One received byte (0..255). On TS_FRAME_LINE, *payload / *payload_len (both may be NULL)
 * receive the payload without the frame, NUL-terminated, valid until the next call. */
ts_frame_result_t ts_framer_push(ts_framer_t *fr, uint8_t byte, const char **payload,
                                 size_t *payload_len);
/* TS_PROTO_OK for PENDING/LINE/EMPTY, 102 for TOO_LONG, 103 for the others. */
ts_proto_status_t ts_frame_status(ts_frame_result_t r);
/* "line", "empty", "too_long", "non_printable", "bad_frame", "bad_crc", "pending". */
const char *ts_frame_result_name(ts_frame_result_t r);
/* Frames payload[0..len) into out as `<payload> *XXXX\n` plus a NUL; returns the length
 * without the NUL, or 0 when out is too small (out_cap < len + 8) or the payload holds a
 * byte that may not appear in a payload. For host-side tools, tests and the fuzzer. */
size_t ts_frame_line(const char *payload, size_t len, char *out, size_t out_cap);

/* ---- numbers (no strtod) ------------------------------------------------------------------ */

/* Decimal digits only (no sign, no spaces), 1..10 of them, value <= UINT32_MAX. */
ts_proto_status_t ts_parse_u32(const char *s, size_t len, uint32_t *out);
/* [+-]digits[.digits][(e|E)[+-]digits] (also ".5", "5."), at most 40 characters; the result
 * must be a finite float. Exact (correctly rounded to double, then to float) for up to 15
 * significant digits and |decimal exponent| <= 22, within a few ulps otherwise. */
ts_proto_status_t ts_parse_real(const char *s, size_t len, float *out);

/* ---- commands ------------------------------------------------------------------------------ */

typedef enum {
    TS_CMD_NONE = 0, /* unknown, or not identified */
    TS_CMD_NAME,
    TS_CMD_INFO,
    TS_CMD_DB_LOAD,
    TS_CMD_DB_USE,
    TS_CMD_TRAIN,
    TS_CMD_EVAL,
    TS_CMD_RESULTS,
    TS_CMD_RESET,
    TS_CMD_DB_STREAM, /* db stream N [cap=B] [policy=reservoir|coverage] [seed=S] */
    TS_CMD_DB_KEPT,   /* db kept */
    TS_CMD_CALIB
} ts_cmd_id_t;

/* The training set: the compiled-in one, the streamed one, or both (flash first). */
typedef enum { TS_DB_FLASH = 0, TS_DB_RAM = 1, TS_DB_BOTH = 2 } ts_db_source_t;

/* Where training starts: the export's head, or an all-zero head (learned from scratch). */
typedef enum { TS_INIT_EXPORT = 0, TS_INIT_ZERO = 1 } ts_head_init_t;

/* What `train` updates (update=): the same values as the trainer's ts_trainer_update_t. */
typedef enum {
    TS_TRAIN_UPDATE_HEAD = 0,
    TS_TRAIN_UPDATE_LAST_BLOCK = 1,
    TS_TRAIN_UPDATE_BIAS = 2
} ts_train_update_t;

/* The learning rate per step (schedule=): the trainer's ts_trainer_schedule_t values. */
typedef enum {
    TS_TRAIN_SCHEDULE_CONSTANT = 0,
    TS_TRAIN_SCHEDULE_COSINE = 1,
    TS_TRAIN_SCHEDULE_STEP = 2
} ts_train_schedule_t;

typedef struct {
    uint32_t epochs;    /* 0..TS_PROTO_MAX_EPOCHS, default 5 */
    float lr;           /* (0, TS_PROTO_MAX_LR], default 0.05 */
    float momentum;     /* [0, 1), default 0.9 */
    uint32_t batch;     /* 1..TS_PROTO_MAX_BATCH, default 32 */
    uint32_t seed;      /* any uint32, default 1 */
    ts_head_init_t init;/* init=export (default) or init=zero */
    uint32_t steps;     /* steps=1..TS_PROTO_MAX_STEPS instead of epochs; 0 (default): epochs */
    ts_train_schedule_t schedule; /* schedule=constant (default)|cosine|step */
    uint32_t balance;   /* balance=0 (default)|1 */
    ts_train_update_t update;     /* update=head (default)|last-block|bias */
} ts_train_args_t;

/* How `db stream` keeps its buffer (stream policy=): ts_replay_policy_t's values. */
typedef enum { TS_STREAM_RESERVOIR = 0, TS_STREAM_COVERAGE = 1 } ts_stream_policy_t;

/* Limit of the `db stream` buffer (cap=). */
#define TS_PROTO_MAX_STREAM_CAP 65535u

typedef struct {
    uint32_t cap;               /* cap=1..TS_PROTO_MAX_STREAM_CAP; 0 (default): the app's db
                                   capacity */
    ts_stream_policy_t policy;  /* policy=reservoir (default)|coverage */
    uint32_t seed;              /* seed=any uint32, default 1 */
} ts_stream_args_t;

typedef struct {
    ts_cmd_id_t id;
    /* For `@ready cmd=`: the command's first word ("name", "info", "db", "train", "eval",
     * "results", "reset", "calib"), also for an unknown command (printable, no spaces, cut to
     * TS_PROTO_CMD_NAME_MAX); "-" for an empty payload. */
    char name[TS_PROTO_CMD_NAME_MAX + 1u];
    /* On failure: a static message for `@err msg=` ("unknown_command", "bad_value:lr", ...). */
    const char *error;
    uint32_t db_count;          /* TS_CMD_DB_LOAD: >= 1 (the capacity is the app's check);
                                   TS_CMD_DB_STREAM: the samples streamed, >= 1 */
    ts_db_source_t db_source;   /* TS_CMD_DB_USE */
    ts_train_args_t train;      /* TS_CMD_TRAIN: defaults, then the given key=value pairs */
    ts_stream_args_t stream;    /* TS_CMD_DB_STREAM: defaults, then the given pairs */
    uint32_t calib_ms;          /* TS_CMD_CALIB: 1..TS_PROTO_MAX_CALIB_MS, default 2000 */
} ts_command_t;

void ts_train_args_default(ts_train_args_t *args);

/* Parses one payload (words separated by spaces). Fills *cmd (name and error even on
 * failure); returns TS_PROTO_OK, 100 (unknown command) or 101 (bad argument). The payload
 * need not be NUL-terminated. */
ts_proto_status_t ts_command_parse(const char *payload, size_t len, ts_command_t *cmd);

/* ---- db data lines: `<label>:<hex>` ------------------------------------------------------- */

/* Nonzero when the payload looks like a data line (starts with a decimal digit); commands
 * start with a letter. */
int ts_db_is_data_line(const char *payload, size_t len);
/* Nonzero when the payload has the form of a data line: 1..3 decimal digits, ':', one or more
 * hex digits (either case) and nothing else; the label's range and the sample's length are
 * not checked (ts_db_decode_line does, against the model). Outside a load the app drops such
 * a line silently (the rest of a failed load); any other line is a command line there. */
int ts_db_has_data_form(const char *payload, size_t len);
/* label: 1..3 decimal digits, < num_classes; ':'; exactly 2 * sample_bytes hex digits (either
 * case), each byte an int8 in two's complement ("FF" = -1). Writes sample and *label only on
 * success; TS_PROTO_ERR_DB_MALFORMED otherwise. */
ts_proto_status_t ts_db_decode_line(const char *payload, size_t len, uint32_t num_classes,
                                    int8_t *sample, size_t sample_bytes, uint8_t *label);

/* ---- records (device -> host): `@type k=v ... *XXXX\n` ------------------------------------ */

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    int overflow; /* the line would exceed TS_PROTO_MAX_LINE or cap */
} ts_record_t;

/* Starts "@<type>" in buf (cap >= TS_PROTO_RECORD_BUF is always enough). */
void ts_record_begin(ts_record_t *r, char *buf, size_t cap, const char *type);
void ts_record_u32(ts_record_t *r, const char *key, uint32_t value);
void ts_record_i32(ts_record_t *r, const char *key, int32_t value);
void ts_record_u64(ts_record_t *r, const char *key, uint64_t value);
/* %.6g; "nan", "inf", "-inf" for non-finite values. */
void ts_record_real(ts_record_t *r, const char *key, double value);
/* Text: spaces become '_', bytes outside 0x21..0x7E and '*' become '?', "" becomes "-". */
void ts_record_text(ts_record_t *r, const char *key, const char *text);
/* Appends " *XXXX\n" (and a NUL); returns the line's length including the '\n', or 0 when
 * the record overflowed (nothing usable in buf). */
size_t ts_record_end(ts_record_t *r);

#ifdef __cplusplus
}
#endif

#endif /* TS_PROTOCOL_H */
