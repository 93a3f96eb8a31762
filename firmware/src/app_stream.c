/*
 * tinysift firmware app: `db stream N cap=B policy=reservoir|coverage seed=S` and `db kept`.
 *
 * The host sends N data lines exactly as for `db load`; the device keeps at most B of the
 * samples in the RAM set, chosen by the replay policy of ts_replay.h: `reservoir` (Algorithm
 * R) or `coverage` (a class-balanced reservoir stratified by the export's per-class VQ
 * codebook in the feature space; the features of every arriving sample are computed with the frozen layers
 * [0, head_layer), as the trainer caches them). Each sample is decoded into a scratch buffer,
 * offered, and copied into the slot of the RAM set the policy gives (or dropped). At the end
 * the buffer is compacted (slot order) and becomes the RAM set: `db use ram|both` trains on
 * it as on a loaded set.
 *
 * A finished stream's RAM set survives a reset: the samples, labels, the upkeep's state and
 * a header live in no-init RAM (APP_NOINIT), the header holding a magic, a tag of the build
 * (model hash, capacity, sample and codebook sizes) and a CRC-16 over the header, the state,
 * the workspace and the kept samples. At boot app_stream_restore() checks them and restores
 * the RAM set (`@boot ... db=<kept>`); a `db load`, a stream that did not finish, or a
 * mismatch leave nothing (`db=0`). Memory: no heap, every buffer static and sized by the
 * macros of app.h.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "app.h"
#include "ts_platform.h"

#define APP_STREAM_MAGIC 0x5EA3B0F7u

typedef struct {
    uint32_t magic;      /* APP_STREAM_MAGIC: the RAM set is a finished stream's buffer */
    uint32_t build;      /* build_tag() of the image that wrote it */
    uint32_t seen;       /* N: samples streamed */
    uint32_t cap;        /* B */
    uint32_t policy;
    uint32_t seed;
    uint64_t cycles;     /* counter ticks spent in features and policy, over the stream */
    uint32_t class_seen[APP_K];
    uint32_t check;      /* CRC-16 (checksum()) of everything above after `magic` and more */
} app_stream_saved_t;

static ts_replay_t s_stream APP_NOINIT;
static uint8_t s_stream_ws[APP_STREAM_WS_BYTES] APP_NOINIT APP_ALIGNED(4);
static app_stream_saved_t s_stream_saved APP_NOINIT;
static int8_t s_stream_scratch[APP_S];
static int8_t s_stream_features[APP_D];
static int s_from_stream; /* the RAM set is the buffer of s_stream */

/* What a kept buffer must have been written by: this model, this layout. */
static uint32_t build_tag(void)
{
    const char *hash = app_export.model != NULL ? app_export.model->content_hash : "";
    uint32_t dims[5] = {(uint32_t)TS_DB_CAPACITY, (uint32_t)APP_S, (uint32_t)APP_K,
                        (uint32_t)APP_VQ_C, (uint32_t)APP_STREAM_WS_BYTES};
    uint16_t crc = ts_crc16_update(TS_CRC16_INIT, hash, strlen(hash));
    return ((uint32_t)ts_crc16_update(crc, dims, sizeof dims) << 16) | 0x5A5Au;
}

/* CRC-16 over the header (after the magic, up to the check), the upkeep's state and
 * workspace, and the kept samples and labels. */
static uint32_t checksum(uint32_t kept)
{
    uint16_t crc = ts_crc16_update(TS_CRC16_INIT, &s_stream_saved.build,
                                   offsetof(app_stream_saved_t, check) -
                                       offsetof(app_stream_saved_t, build));
    crc = ts_crc16_update(crc, &s_stream, sizeof s_stream);
    crc = ts_crc16_update(crc, s_stream_ws, sizeof s_stream_ws);
    crc = ts_crc16_update(crc, app_db_x, (size_t)kept * APP_S);
    return ts_crc16_update(crc, app_db_y, kept);
}

int app_stream_begin(uint32_t count, uint32_t cap, uint32_t policy, uint32_t seed)
{
    ts_replay_config_t cfg;
    int st;
    app_stream_forget();
    if (policy == TS_STREAM_COVERAGE && APP_VQ_C == 0) {
        return app_fail(TS_PROTO_ERR_BAD_ARG, "no_codebook:export_with_a_vq_codebook");
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.policy = policy;
    cfg.capacity = cap;
    cfg.seed = seed;
    cfg.num_classes = app_export.model->num_classes;
#if APP_VQ_C > 0
    cfg.per_class = APP_VQ_C;
    cfg.dim = APP_D;
    cfg.codebook = ts_export_vq_codebook;
    cfg.codebook_count = ts_export_vq_count;
    cfg.radius2 = ts_export_vq_radius2;
#endif
    st = ts_replay_init(&s_stream, &cfg, s_stream_ws, sizeof s_stream_ws);
    if (st != TS_OK) {
        return app_fail(st, app_engine_status_name(st));
    }
    memset(&s_stream_saved, 0, sizeof s_stream_saved);
    s_stream_saved.seen = count;
    s_stream_saved.cap = cap;
    s_stream_saved.policy = policy;
    s_stream_saved.seed = seed;
    return 0;
}

int8_t *app_stream_scratch(void)
{
    return s_stream_scratch;
}

int app_stream_sample(uint8_t label)
{
    uint32_t slot = TS_REPLAY_DROP, t0 = ts_cycles();
    int st = TS_OK;
    if (s_stream.policy == TS_REPLAY_COVERAGE) {
        st = app_sample_features(s_stream_scratch, s_stream_features);
    }
    if (st == TS_OK) {
        st = ts_replay_offer(&s_stream, label, s_stream_features, &slot);
    }
    if (st == TS_OK && slot != TS_REPLAY_DROP) {
        memcpy(app_db_x + (size_t)slot * APP_S, s_stream_scratch, APP_S);
        app_db_y[slot] = label;
    }
    s_stream_saved.cycles += (uint32_t)(ts_cycles() - t0);
    if (label < APP_K) {
        s_stream_saved.class_seen[label]++;
    }
    return st;
}

uint32_t app_stream_end(void)
{
    uint32_t kept = ts_replay_compact(&s_stream, app_db_x, APP_S, app_db_y);
    s_stream_saved.build = build_tag();
    s_stream_saved.check = checksum(kept);
    s_stream_saved.magic = APP_STREAM_MAGIC;
    s_from_stream = 1;
    return kept;
}

void app_stream_forget(void)
{
    s_stream_saved.magic = 0;
    s_from_stream = 0;
}

uint32_t app_stream_restore(void)
{
    uint32_t kept = s_stream.kept;
    s_from_stream = 0;
    if (!APP_HAVE_MODEL || s_stream_saved.magic != APP_STREAM_MAGIC || s_stream_saved.build != build_tag() ||
        kept == 0u || kept > TS_DB_CAPACITY || kept > s_stream.capacity) {
        s_stream_saved.magic = 0;
        return 0;
    }
    if (checksum(kept) != s_stream_saved.check ||
        ts_replay_bind(&s_stream, s_stream_ws, sizeof s_stream_ws) != TS_OK) {
        s_stream_saved.magic = 0;
        return 0;
    }
    s_stream_saved.check = checksum(kept); /* the state's pointers may have been re-bound */
    s_from_stream = 1;
    return kept;
}

void app_stream_send_db(void)
{
    uint32_t k, i, covered = 0;
    ts_record_t *r = app_rec("db");
    for (k = 0; k < s_stream.num_classes; ++k) {
        uint32_t cw = 0, cov = 0;
        ts_replay_class_stats(&s_stream, k, &cw, &cov);
        covered += cov;
    }
    ts_record_u32(r, "loaded", s_stream.kept);
    ts_record_text(r, "source", "ram");
    ts_record_text(r, "policy", ts_replay_policy_name(s_stream.policy));
    ts_record_u32(r, "seen", s_stream.seen);
    ts_record_u32(r, "cap", s_stream.capacity);
    ts_record_u32(r, "codewords", s_stream.codewords);
    ts_record_u32(r, "covered", covered);
    ts_record_u32(r, "evicted", s_stream.evicted);
    ts_record_u64(r, "cycles", s_stream_saved.cycles);
    app_rec_send();
    for (k = 0; k < s_stream.num_classes && k < APP_K; ++k) {
        uint32_t kept = 0, cw = 0, cov = 0;
        for (i = 0; i < s_stream.kept; ++i) {
            kept += app_db_y[i] == k ? 1u : 0u;
        }
        ts_replay_class_stats(&s_stream, k, &cw, &cov);
        r = app_rec("dbclass");
        ts_record_u32(r, "class", k);
        ts_record_u32(r, "kept", kept);
        ts_record_u32(r, "seen", s_stream_saved.class_seen[k]);
        ts_record_u32(r, "codewords", cw);
        ts_record_u32(r, "covered", cov);
        app_rec_send();
    }
}

int app_stream_provenance(uint32_t i, uint32_t *index, int32_t *codeword)
{
    *index = i;
    *codeword = -1;
    if (!s_from_stream || i >= s_stream.kept) {
        return 0;
    }
    *index = s_stream.slot_index[i];
    if (s_stream.slot_cw[i] != TS_REPLAY_NO_CODEWORD) {
        *codeword = (int32_t)s_stream.slot_cw[i];
    }
    return 1;
}
