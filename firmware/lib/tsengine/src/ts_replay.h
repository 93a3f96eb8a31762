/*
 * tinysift engine: replay-buffer upkeep. While samples stream in one at a time, keep at most
 * B of them in a fixed buffer (the caller's sample storage, B slots), chosen by a policy:
 *
 *   TS_REPLAY_RESERVOIR  plain reservoir sampling (Vitter's Algorithm R): every sample of the
 *                        stream ends in the buffer with the same probability B / N.
 *   TS_REPLAY_COVERAGE   a class-balanced reservoir stratified by the codewords of a
 *                        per-class VQ codebook in the model's feature space: each sample is
 *                        assigned to the nearest codeword of its class (exported by the
 *                        host, or opened online by a leader rule for classes the host had no
 *                        data for); once the buffer is full, a sample of a class that has
 *                        fewer samples kept than the largest class replaces one of the
 *                        largest class's fullest codeword (largest share kept), else one of
 *                        its own class's fullest codeword when its own codeword's share kept
 *                        is lower, else it enters its codeword's own reservoir. The buffer
 *                        always holds min(B, N) samples, every class that lost a sample
 *                        holds at least the largest class's count minus one, and a class's
 *                        slots follow its codewords' sample counts.
 *
 * The exact rules (the random draws, their order, the capacities, evictions, slot choice) are
 * docs/trainer.md "Replay upkeep"; tests/replay_reference.py is the numpy reference and
 * tests/test_replay.py checks one against the other, sample by sample.
 *
 * C99, no heap, no static state; status codes; every buffer is the caller's (one workspace
 * of TS_REPLAY_WORKSPACE_BYTES). The library decides where a sample goes (a slot) and keeps
 * the bookkeeping; the caller stores the sample's bytes in that slot of its own storage.
 */
#ifndef TS_REPLAY_H
#define TS_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "ts_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TS_REPLAY_RESERVOIR = 0,
    TS_REPLAY_COVERAGE = 1,
    TS_REPLAY_POLICY_COUNT
} ts_replay_policy_t;

/* ts_replay_offer(): the sample is not kept. */
#define TS_REPLAY_DROP 0xFFFFFFFFu
/* slot_cw[]: a free slot; a slot kept by reservoir sampling (no codeword). */
#define TS_REPLAY_FREE 0xFFFFu
#define TS_REPLAY_NO_CODEWORD 0xFFFEu
/* Largest buffer (slots) and codebook (K * C codewords). */
#define TS_REPLAY_MAX_CAPACITY 65535u
#define TS_REPLAY_MAX_CODEWORDS 65534u
/* Largest feature dimension: squared int8 distances D * 255^2 fit a uint32. */
#define TS_REPLAY_MAX_DIM 66051u
/* Largest workspace (exclusive): B, K*C and D within the limits above still reach 4.3e9
 * bytes (K*C*D), which no target addresses and a 32-bit size_t wraps; such a config is
 * refused (TS_ERR_PARAM). */
#define TS_REPLAY_MAX_BYTES ((uint64_t)1 << 31)

/* Workspace bytes for a buffer of B slots, K classes, C codewords per class and D feature
 * bytes (C = 0 for reservoir sampling only): the one definition of the formula (a constant
 * expression for static arrays; ts_replay_workspace_size() returns it; the host's memory plan,
 * tinysift.export.memory.replay_workspace_bytes(), is its Python twin, checked against it by
 * tests/test_replay.py):
 *   4 * B        the stream index of each slot (uint32)
 *   + 4 * K*C    samples assigned to each codeword (uint32)
 *   + 2 * B      the codeword of each slot (uint16; TS_REPLAY_FREE, TS_REPLAY_NO_CODEWORD)
 *   + 2 * K*C    samples kept of each codeword (uint16)
 *   + 2 * K      samples kept of each class (uint16)
 *   + K          online codewords opened per class (uint8)
 *   + K*C*D      the online codewords (int8), for classes without exported ones
 * rounded up to a multiple of 4, in uint64_t (K*C*D reaches 4.3e9 within the limits, which a
 * 32-bit size_t wraps; such a config is refused). The workspace must be 4-byte aligned. */
#define TS_REPLAY_WORKSPACE_BYTES(B, K, C, D)                                                \
    ((6u * (uint64_t)(B) + 6u * (uint64_t)(K) * (uint64_t)(C) + 3u * (uint64_t)(K) +               \
      (uint64_t)(K) * (uint64_t)(C) * (uint64_t)(D) + 3u) &                                       \
     ~(uint64_t)3u)

typedef struct {
    uint32_t policy;       /* ts_replay_policy_t */
    uint32_t capacity;     /* B: 1..TS_REPLAY_MAX_CAPACITY slots */
    uint32_t seed;         /* xorshift32 seed; 0 -> TS_TRAINER_SEED_ZERO (0x6D2B79F5) */
    uint32_t num_classes;  /* K: labels are < K */
    /* coverage only (reservoir ignores them) */
    uint32_t per_class;    /* C: 1..255 codewords per class */
    uint32_t dim;          /* D: feature bytes per sample, 1..TS_REPLAY_MAX_DIM */
    const int8_t *codebook;        /* [K][C][D] exported codewords (rows j < count[c] used);
                                      may be NULL when every count is 0 */
    const uint8_t *codebook_count; /* [K] exported codewords of each class (0: online); NULL:
                                      every class online */
    const uint32_t *radius2;       /* [K] squared radius of each online class (int8 units) */
} ts_replay_config_t;

/* The buffer's state. Read the fields; change them only through the functions below. */
typedef struct {
    uint32_t policy, capacity, num_classes, per_class, dim;
    const int8_t *codebook;
    const uint8_t *codebook_count;
    const uint32_t *radius2;
    uint32_t rng;          /* xorshift32 state */
    uint32_t seen;         /* samples offered (the next sample's stream index) */
    uint32_t kept;         /* samples in the buffer */
    uint32_t codewords;    /* M: codewords seen (coverage) */
    uint32_t evicted;      /* samples replaced to balance classes or codewords (coverage) */
    /* the workspace's parts */
    uint32_t *slot_index;  /* [B] stream index of the sample in each slot */
    uint32_t *cw_seen;     /* [K*C] samples assigned to each codeword (cw = class * C + j) */
    uint16_t *slot_cw;     /* [B] codeword of each slot, or TS_REPLAY_FREE / _NO_CODEWORD */
    uint16_t *cw_kept;     /* [K*C] samples of each codeword in the buffer */
    uint16_t *class_kept;  /* [K] samples of each class in the buffer (coverage) */
    uint8_t *online_count; /* [K] codewords opened online per class */
    int8_t *online;        /* [K][C][D] the online codewords */
} ts_replay_t;

/* TS_REPLAY_WORKSPACE_BYTES(B, K, C, D); C and D count only for coverage (0 otherwise);
 * 0 from TS_REPLAY_MAX_BYTES up. */
size_t ts_replay_workspace_size(const ts_replay_config_t *cfg);

/* Checks the config (TS_ERR_NULL, TS_ERR_PARAM: policy, B, K, C, D out of range, a
 * workspace of TS_REPLAY_MAX_BYTES or more, a count above C, a missing codebook or radius) and the workspace (TS_ERR_ARENA: too short;
 * TS_ERR_PARAM: not 4-byte aligned), then starts an empty buffer. */
ts_status_t ts_replay_init(ts_replay_t *r, const ts_replay_config_t *cfg, uint8_t *ws,
                           size_t ws_bytes);

/* Points r's arrays into ws again from r's own dims (after the state was kept across a reset
 * in memory the image may place elsewhere); the contents of ws are not touched. */
ts_status_t ts_replay_bind(ts_replay_t *r, uint8_t *ws, size_t ws_bytes);

/* Offers the next sample of the stream (its index is r->seen) with its label and, for
 * coverage, its D feature bytes (NULL allowed for reservoir). *slot receives the slot the
 * caller must store the sample in (replacing what was there), or TS_REPLAY_DROP. TS_ERR_DATA:
 * label >= K;
 * TS_ERR_NULL; TS_ERR_PARAM: the stream already holds 2^32 - 1 samples. */
ts_status_t ts_replay_offer(ts_replay_t *r, uint32_t label, const int8_t *features,
                            uint32_t *slot);

/* Moves the kept samples to slots [0, kept) keeping their order (the bookkeeping and, when
 * not NULL, the caller's rows x[slot * sample_bytes ...] and labels y[slot]); returns kept.
 * Offers may go on afterwards: the order of each codeword's samples is unchanged. */
uint32_t ts_replay_compact(ts_replay_t *r, int8_t *x, size_t sample_bytes, uint8_t *y);

/* For class c: codewords seen and codewords with at least one sample kept (coverage; 0 for
 * reservoir). */
void ts_replay_class_stats(const ts_replay_t *r, uint32_t c, uint32_t *codewords,
                           uint32_t *covered);

/* "reservoir", "coverage"; NULL otherwise. */
const char *ts_replay_policy_name(uint32_t policy);

#ifdef __cplusplus
}
#endif

#endif /* TS_REPLAY_H */
