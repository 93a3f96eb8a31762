/*
 * tinysift engine: replay-buffer upkeep (ts_replay.h): reservoir sampling and the
 * per-codeword reservoir over a per-class VQ codebook. The rules, step by step, are
 * docs/trainer.md "Replay upkeep"; tests/replay_reference.py is the numpy reference.
 * C99, no heap, no static state.
 */
#include "ts_replay.h"

#include <string.h>

#include "ts_trainer.h" /* ts_trainer_xorshift32, TS_TRAINER_SEED_ZERO */

/* Codewords per class the policy uses (0 for reservoir sampling). */
static uint32_t used_per_class(uint32_t policy, uint32_t per_class)
{
    return policy == TS_REPLAY_COVERAGE ? per_class : 0u;
}

/* TS_REPLAY_WORKSPACE_BYTES, a uint64_t: K*C*D alone reaches 4.3e9 within the limits on B,
 * K*C and D, which a 32-bit size_t wrapped (a workspace of a few MB then passed
 * ts_replay_bind's check for one of 4 GB). */
static uint64_t workspace_bytes(uint32_t policy, uint32_t b, uint32_t k, uint32_t c, uint32_t d)
{
    uint32_t pc = used_per_class(policy, c);
    return TS_REPLAY_WORKSPACE_BYTES(b, k, pc, pc > 0u ? d : 0u);
}

size_t ts_replay_workspace_size(const ts_replay_config_t *cfg)
{
    uint64_t bytes;
    if (cfg == NULL) {
        return 0;
    }
    bytes = workspace_bytes(cfg->policy, cfg->capacity, cfg->num_classes, cfg->per_class,
                            cfg->dim);
    return bytes < TS_REPLAY_MAX_BYTES ? (size_t)bytes : 0u;
}

const char *ts_replay_policy_name(uint32_t policy)
{
    switch (policy) {
    case TS_REPLAY_RESERVOIR: return "reservoir";
    case TS_REPLAY_COVERAGE: return "coverage";
    default: return NULL;
    }
}

static ts_status_t check_config(const ts_replay_config_t *cfg)
{
    uint32_t c;
    if (cfg->policy >= (uint32_t)TS_REPLAY_POLICY_COUNT || cfg->capacity == 0u ||
        cfg->capacity > TS_REPLAY_MAX_CAPACITY || cfg->num_classes == 0u ||
        cfg->num_classes > 256u) {
        return TS_ERR_PARAM;
    }
    if (cfg->policy != TS_REPLAY_COVERAGE) {
        return TS_OK;
    }
    if (cfg->per_class == 0u || cfg->per_class > 255u || cfg->dim == 0u ||
        cfg->dim > TS_REPLAY_MAX_DIM ||
        (uint64_t)cfg->num_classes * cfg->per_class > TS_REPLAY_MAX_CODEWORDS ||
        workspace_bytes(cfg->policy, cfg->capacity, cfg->num_classes, cfg->per_class,
                        cfg->dim) >= TS_REPLAY_MAX_BYTES) {
        return TS_ERR_PARAM;
    }
    for (c = 0; c < cfg->num_classes; ++c) {
        uint32_t n = cfg->codebook_count != NULL ? cfg->codebook_count[c] : 0u;
        if (n > cfg->per_class || (n > 0u && cfg->codebook == NULL) ||
            (n == 0u && cfg->radius2 == NULL)) {
            return TS_ERR_PARAM;
        }
    }
    return TS_OK;
}

ts_status_t ts_replay_bind(ts_replay_t *r, uint8_t *ws, size_t ws_bytes)
{
    size_t b, kc;
    uint32_t pc;
    if (r == NULL || ws == NULL) {
        return TS_ERR_NULL;
    }
    if (((uintptr_t)ws & 3u) != 0u) {
        return TS_ERR_PARAM;
    }
    if ((uint64_t)ws_bytes < workspace_bytes(r->policy, r->capacity, r->num_classes,
                                             r->per_class, r->dim)) {
        return TS_ERR_ARENA;
    }
    pc = used_per_class(r->policy, r->per_class);
    b = r->capacity;
    kc = (size_t)r->num_classes * pc;
    r->slot_index = (uint32_t *)(void *)ws;
    r->cw_seen = r->slot_index + b;
    r->slot_cw = (uint16_t *)(void *)(r->cw_seen + kc);
    r->cw_kept = r->slot_cw + b;
    r->class_kept = r->cw_kept + kc;
    r->online_count = (uint8_t *)(void *)(r->class_kept + r->num_classes);
    r->online = (int8_t *)(void *)(r->online_count + r->num_classes);
    return TS_OK;
}

ts_status_t ts_replay_init(ts_replay_t *r, const ts_replay_config_t *cfg, uint8_t *ws,
                           size_t ws_bytes)
{
    ts_status_t st;
    size_t kc, i;
    if (r == NULL || cfg == NULL || ws == NULL) {
        return TS_ERR_NULL;
    }
    st = check_config(cfg);
    if (st != TS_OK) {
        return st;
    }
    memset(r, 0, sizeof *r);
    r->policy = cfg->policy;
    r->capacity = cfg->capacity;
    r->num_classes = cfg->num_classes;
    r->per_class = used_per_class(cfg->policy, cfg->per_class);
    r->dim = r->per_class > 0u ? cfg->dim : 0u;
    if (r->per_class > 0u) {
        r->codebook = cfg->codebook;
        r->codebook_count = cfg->codebook_count;
        r->radius2 = cfg->radius2;
    }
    r->rng = cfg->seed != 0u ? cfg->seed : TS_TRAINER_SEED_ZERO;
    st = ts_replay_bind(r, ws, ws_bytes);
    if (st != TS_OK) {
        return st;
    }
    kc = (size_t)r->num_classes * r->per_class;
    memset(r->slot_index, 0, sizeof(uint32_t) * r->capacity);
    memset(r->cw_seen, 0, sizeof(uint32_t) * kc);
    for (i = 0; i < r->capacity; ++i) {
        r->slot_cw[i] = TS_REPLAY_FREE;
    }
    memset(r->cw_kept, 0, sizeof(uint16_t) * kc);
    memset(r->class_kept, 0, sizeof(uint16_t) * r->num_classes);
    memset(r->online_count, 0, r->num_classes);
    return TS_OK;
}

/* ---- coverage: codeword assignment ------------------------------------------------------ */

static uint32_t distance2(const int8_t *a, const int8_t *b, uint32_t d)
{
    uint32_t i, acc = 0;
    for (i = 0; i < d; ++i) {
        int32_t diff = (int32_t)a[i] - (int32_t)b[i];
        acc += (uint32_t)(diff * diff);
    }
    return acc;
}

/* The first of the n rows (stride D) nearest to f; *best2 its squared distance. */
static uint32_t nearest(const int8_t *rows, uint32_t n, uint32_t d, const int8_t *f,
                        uint32_t *best2)
{
    uint32_t j, best = 0, bd = 0;
    for (j = 0; j < n; ++j) {
        uint32_t dj = distance2(rows + (size_t)j * d, f, d);
        if (j == 0u || dj < bd) {
            best = j;
            bd = dj;
        }
    }
    *best2 = bd;
    return best;
}

/* The codeword (class * C + j) of a sample of class c: the nearest exported codeword of its
 * class, else the online leader rule (a sample farther than the class radius from every
 * online codeword of its class opens a new one while the class has fewer than C). */
static uint32_t assign(ts_replay_t *r, uint32_t c, const int8_t *f)
{
    uint32_t pc = r->per_class, d = r->dim, base = c * pc, d2 = 0, j;
    uint32_t exported = r->codebook_count != NULL ? r->codebook_count[c] : 0u;
    uint32_t opened = r->online_count[c];
    if (exported > 0u) {
        return base + nearest(r->codebook + (size_t)base * d, exported, d, f, &d2);
    }
    j = opened > 0u ? nearest(r->online + (size_t)base * d, opened, d, f, &d2) : 0u;
    if (opened == 0u || (d2 > r->radius2[c] && opened < pc)) {
        j = opened;
        memcpy(r->online + (size_t)(base + j) * d, f, d);
        r->online_count[c] = (uint8_t)(opened + 1u);
    }
    return base + j;
}

/* ---- slots -------------------------------------------------------------------------------- */

/* The slot of the j-th (0-based, slot order) sample of codeword g in the buffer. */
static uint32_t nth_slot(const ts_replay_t *r, uint32_t g, uint32_t j)
{
    uint32_t s;
    for (s = 0; s < r->capacity; ++s) {
        if (r->slot_cw[s] == g) {
            if (j == 0u) {
                return s;
            }
            --j;
        }
    }
    return TS_REPLAY_DROP; /* not reached: cw_kept[g] counts g's slots */
}

static uint32_t first_free_slot(const ts_replay_t *r)
{
    uint32_t s;
    for (s = 0; s < r->capacity; ++s) {
        if (r->slot_cw[s] == TS_REPLAY_FREE) {
            return s;
        }
    }
    return TS_REPLAY_DROP; /* not reached: called only while kept < B */
}

/* The first class with the most samples kept. */
static uint32_t largest_class(const ts_replay_t *r)
{
    uint32_t c, best = 0;
    for (c = 1; c < r->num_classes; ++c) {
        if (r->class_kept[c] > r->class_kept[best]) {
            best = c;
        }
    }
    return best;
}

/* The first codeword of class c with the largest share kept, kept / assigned (compared by
 * cross-multiplication in 64 bits; codewords no sample was assigned to are skipped). A class
 * with a sample kept has one. */
static uint32_t most_kept(const ts_replay_t *r, uint32_t c)
{
    uint32_t j, base = c * r->per_class, best = TS_REPLAY_DROP;
    for (j = 0; j < r->per_class; ++j) {
        uint32_t h = base + j;
        if (r->cw_seen[h] == 0u) {
            continue;
        }
        if (best == TS_REPLAY_DROP || (uint64_t)r->cw_kept[h] * r->cw_seen[best] >
                                          (uint64_t)r->cw_kept[best] * r->cw_seen[h]) {
            best = h;
        }
    }
    return best;
}

/* Evicts a uniform draw among codeword h's kept samples; returns its slot, now the caller's. */
static uint32_t evict_from(ts_replay_t *r, uint32_t h)
{
    uint32_t j = ts_trainer_xorshift32(&r->rng) % r->cw_kept[h];
    uint32_t s = nth_slot(r, h, j);
    r->cw_kept[h]--;
    r->class_kept[h / r->per_class]--;
    r->evicted++;
    return s;
}

static uint32_t offer_reservoir(ts_replay_t *r, uint32_t t)
{
    uint32_t j;
    if (r->kept < r->capacity) {
        r->slot_cw[r->kept] = TS_REPLAY_NO_CODEWORD;
        return r->kept++;
    }
    j = ts_trainer_xorshift32(&r->rng) % (t + 1u);
    return j < r->capacity ? j : TS_REPLAY_DROP;
}

/* A class-balanced reservoir stratified by codeword (docs/trainer.md "Replay upkeep"). */
static uint32_t offer_coverage(ts_replay_t *r, uint32_t label, const int8_t *f)
{
    uint32_t g = assign(r, label, f), s, v, h, j;
    if (r->cw_seen[g]++ == 0u) {
        r->codewords++;
    }
    if (r->kept < r->capacity) {
        s = first_free_slot(r);
        r->kept++;
    } else if (r->class_kept[label] < r->class_kept[v = largest_class(r)]) {
        s = evict_from(r, most_kept(r, v)); /* balance the classes */
    } else {
        h = most_kept(r, label);
        if ((uint64_t)r->cw_kept[g] * r->cw_seen[h] >= (uint64_t)r->cw_kept[h] * r->cw_seen[g]) {
            /* g has the largest share kept of a largest class: a reservoir over g's samples */
            j = ts_trainer_xorshift32(&r->rng) % r->cw_seen[g];
            return j < r->cw_kept[g] ? nth_slot(r, g, j) : TS_REPLAY_DROP;
        }
        s = evict_from(r, h); /* stratify the class by codeword */
    }
    r->slot_cw[s] = (uint16_t)g;
    r->cw_kept[g]++;
    r->class_kept[label]++;
    return s;
}

ts_status_t ts_replay_offer(ts_replay_t *r, uint32_t label, const int8_t *features,
                            uint32_t *slot)
{
    uint32_t t, s;
    if (r == NULL || slot == NULL || r->slot_cw == NULL) {
        return TS_ERR_NULL;
    }
    *slot = TS_REPLAY_DROP;
    if (label >= r->num_classes) {
        return TS_ERR_DATA;
    }
    if (r->policy == TS_REPLAY_COVERAGE && features == NULL) {
        return TS_ERR_NULL;
    }
    if (r->seen == 0xFFFFFFFFu) {
        return TS_ERR_PARAM;
    }
    t = r->seen;
    s = r->policy == TS_REPLAY_COVERAGE ? offer_coverage(r, label, features)
                                        : offer_reservoir(r, t);
    if (s != TS_REPLAY_DROP) {
        r->slot_index[s] = t;
    }
    r->seen = t + 1u;
    *slot = s;
    return TS_OK;
}

uint32_t ts_replay_compact(ts_replay_t *r, int8_t *x, size_t sample_bytes, uint8_t *y)
{
    uint32_t s, w = 0;
    if (r == NULL || r->slot_cw == NULL) {
        return 0u;
    }
    for (s = 0; s < r->capacity; ++s) {
        if (r->slot_cw[s] == TS_REPLAY_FREE) {
            continue;
        }
        if (w != s) {
            r->slot_cw[w] = r->slot_cw[s];
            r->slot_index[w] = r->slot_index[s];
            r->slot_cw[s] = TS_REPLAY_FREE;
            if (x != NULL) {
                memcpy(x + (size_t)w * sample_bytes, x + (size_t)s * sample_bytes,
                       sample_bytes);
            }
            if (y != NULL) {
                y[w] = y[s];
            }
        }
        ++w;
    }
    return w;
}

void ts_replay_class_stats(const ts_replay_t *r, uint32_t c, uint32_t *codewords,
                           uint32_t *covered)
{
    uint32_t j, n = 0, k = 0;
    if (r != NULL && r->cw_seen != NULL && c < r->num_classes) {
        for (j = 0; j < r->per_class; ++j) {
            uint32_t g = c * r->per_class + j;
            if (r->cw_seen[g] > 0u) {
                ++n;
                k += r->cw_kept[g] > 0u ? 1u : 0u;
            }
        }
    }
    if (codewords != NULL) {
        *codewords = n;
    }
    if (covered != NULL) {
        *covered = k;
    }
}
