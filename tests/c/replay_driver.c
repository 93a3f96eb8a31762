/*
 * Host program for tests/test_replay.py: the replay-buffer upkeep (ts_replay.c) driven from
 * stdin, its kept set printed for the numpy reference (tests/replay_reference.py).
 *
 * Input, any number of blocks (numbers separated by white space):
 *   run POLICY B SEED K C D        POLICY 0 reservoir, 1 coverage; C = D = 0 for reservoir
 *   [coverage] K counts, K squared radii, K*C*D codebook values
 *   N                              then N samples: LABEL and D feature values each
 * Output per block:
 *   kept SLOT INDEX CODEWORD       one per kept sample after ts_replay_compact (-1: none)
 *   class C CODEWORDS COVERED      coverage: one per class
 *   stats SEEN KEPT CODEWORDS EVICTED
 *   done
 * (`status S` and `done` instead when a call fails.) And the workspace macro:
 *   size B K C D                   -> size B K C D MACRO FUNCTION (reservoir's function size
 *                                     for C = 0)
 * The first lines are the sizes of static arrays (`const B K C D BYTES`).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_replay.h"

#define MAX_B 4096u
#define MAX_K 16u
#define MAX_C 16u
#define MAX_D 64u

static uint8_t ws[TS_REPLAY_WORKSPACE_BYTES(MAX_B, MAX_K, MAX_C, MAX_D)]
    __attribute__((aligned(4)));
static uint8_t ws_small[TS_REPLAY_WORKSPACE_BYTES(10, 2, 3, 5)];
static uint8_t ws_reservoir[TS_REPLAY_WORKSPACE_BYTES(7, 3, 0, 0)];
static int8_t codebook[MAX_K * MAX_C * MAX_D];
static uint8_t counts[MAX_K];
static uint32_t radius2[MAX_K];

static int read_u32(uint32_t *v)
{
    return scanf("%" SCNu32, v) == 1;
}

static int run_block(void)
{
    uint32_t policy, b, seed, k, c, d, n, i, j, kept;
    ts_replay_config_t cfg;
    ts_replay_t r;
    ts_status_t st;
    int8_t f[MAX_D];
    if (!(read_u32(&policy) && read_u32(&b) && read_u32(&seed) && read_u32(&k) &&
          read_u32(&c) && read_u32(&d)) ||
        b > MAX_B || k > MAX_K || c > MAX_C || d > MAX_D) {
        return 2;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.policy = policy;
    cfg.capacity = b;
    cfg.seed = seed;
    cfg.num_classes = k;
    cfg.per_class = c;
    cfg.dim = d;
    if (policy == TS_REPLAY_COVERAGE) {
        for (i = 0; i < k; ++i) {
            if (!read_u32(&j)) {
                return 2;
            }
            counts[i] = (uint8_t)j;
        }
        for (i = 0; i < k; ++i) {
            if (!read_u32(&radius2[i])) {
                return 2;
            }
        }
        for (i = 0; i < k * c * d; ++i) {
            int v;
            if (scanf("%d", &v) != 1) {
                return 2;
            }
            codebook[i] = (int8_t)v;
        }
        cfg.codebook = codebook;
        cfg.codebook_count = counts;
        cfg.radius2 = radius2;
    }
    st = ts_replay_init(&r, &cfg, ws, sizeof ws);
    if (!read_u32(&n)) {
        return 2;
    }
    for (i = 0; i < n; ++i) {
        uint32_t label, slot;
        if (!read_u32(&label)) {
            return 2;
        }
        for (j = 0; j < d; ++j) {
            int v;
            if (scanf("%d", &v) != 1) {
                return 2;
            }
            f[j] = (int8_t)v;
        }
        if (st == TS_OK) {
            st = ts_replay_offer(&r, label, d > 0 ? f : NULL, &slot);
        }
    }
    if (st != TS_OK) {
        printf("status %d\ndone\n", (int)st);
        return 0;
    }
    kept = ts_replay_compact(&r, NULL, 0, NULL);
    for (i = 0; i < kept; ++i) {
        long cw = r.slot_cw[i] == TS_REPLAY_NO_CODEWORD ? -1L : (long)r.slot_cw[i];
        printf("kept %" PRIu32 " %" PRIu32 " %ld\n", i, r.slot_index[i], cw);
    }
    for (i = 0; policy == TS_REPLAY_COVERAGE && i < k; ++i) {
        uint32_t seen_cw, covered;
        ts_replay_class_stats(&r, i, &seen_cw, &covered);
        printf("class %" PRIu32 " %" PRIu32 " %" PRIu32 "\n", i, seen_cw, covered);
    }
    printf("stats %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 "\ndone\n", r.seen, r.kept,
           r.codewords, r.evicted);
    return 0;
}

int main(void)
{
    char word[16];
    printf("const 10 2 3 5 %zu\n", sizeof ws_small);
    printf("const 7 3 0 0 %zu\n", sizeof ws_reservoir);
    while (scanf("%15s", word) == 1) {
        if (strcmp(word, "run") == 0) {
            int rc = run_block();
            if (rc != 0) {
                fprintf(stderr, "replay_driver: bad input\n");
                return rc;
            }
        } else if (strcmp(word, "size") == 0) {
            uint32_t b, k, c, d;
            ts_replay_config_t cfg;
            if (!(read_u32(&b) && read_u32(&k) && read_u32(&c) && read_u32(&d))) {
                return 2;
            }
            memset(&cfg, 0, sizeof cfg);
            cfg.policy = c > 0 ? TS_REPLAY_COVERAGE : TS_REPLAY_RESERVOIR;
            cfg.capacity = b;
            cfg.num_classes = k;
            cfg.per_class = c;
            cfg.dim = d;
            printf("size %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %zu %zu\n", b, k, c,
                   d, (size_t)TS_REPLAY_WORKSPACE_BYTES(b, k, c, d),
                   ts_replay_workspace_size(&cfg));
        } else {
            fprintf(stderr, "replay_driver: unknown word %s\n", word);
            return 2;
        }
    }
    return 0;
}
