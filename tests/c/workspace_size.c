/*
 * Host program for tests/test_trainer.py: the trainer's workspace formula as the firmware
 * sees it. Prints TS_TRAINER_WORKSPACE_BYTES for compile-time constants (the sizes of static
 * arrays, as the app declares its workspace) and, for each "K D N" line on stdin, the macro
 * and ts_trainer_workspace_size() of a minimal model with K classes and D features (0 when
 * the trainer refuses the shape or N):
 *
 *   const K D N BYTES          (one per static array)
 *   ws K D N MACRO FUNCTION    (one per stdin line "K D N")
 *
 * and the backbone macros of update=last-block / bias, for stdin lines "block H CIN COUT PIX",
 * "bias H SUMC AMAX MBITS" and "class K":
 *   block H CIN COUT PIX WORKSPACE Q     bias H SUMC AMAX MBITS WORKSPACE Q     class K COUNT
 * (static arrays of each too: "const_block ...", "const_bias ...").
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ts_trainer.h"

/* Static arrays: the macro is an integer constant expression. */
static uint8_t ws_1_1_0[TS_TRAINER_WORKSPACE_BYTES(1, 1, 0)];
static uint8_t ws_2_3_7[TS_TRAINER_WORKSPACE_BYTES(2, 3, 7)];
static uint8_t ws_10_64_1437[TS_TRAINER_WORKSPACE_BYTES(10, 64, 1437)];
/* the backbone buffers of the digits ds-cnn export */
static uint8_t block_ws[TS_TRAINER_BLOCK_WORKSPACE_BYTES(9, 64, 64, 16)];
static uint8_t block_q[TS_TRAINER_BLOCK_Q_BYTES(64, 64)];
static uint8_t bias_ws[TS_TRAINER_BIAS_WORKSPACE_BYTES(9, 288, 2048, 7680)];
static uint8_t bias_q[TS_TRAINER_BIAS_Q_BYTES(288)];
static uint32_t per_class[TS_TRAINER_PER_CLASS_COUNT(10)];
/* and one usable in a constant condition (C99 has no static_assert) */
typedef char ws_grows_with_n[TS_TRAINER_WORKSPACE_BYTES(3, 5, 8) >
                                     TS_TRAINER_WORKSPACE_BYTES(3, 5, 7)
                                 ? 1
                                 : -1];

static const float k_zero[1];

static size_t function_bytes(uint32_t k, uint32_t d, uint32_t n)
{
    ts_layer_t head;
    ts_model_t m;
    memset(&head, 0, sizeof(head));
    memset(&m, 0, sizeof(m));
    head.op = TS_OP_FULLY_CONNECTED;
    head.in.h = head.in.w = head.out.h = head.out.w = 1;
    head.in.c = (int32_t)d;
    head.out.c = (int32_t)k;
    head.act_min = -128;
    head.act_max = 127;
    m.format_version = TS_FORMAT_VERSION;
    m.num_layers = 1;
    m.layers = &head;
    m.head_layer = 0;
    m.input.h = m.input.w = 1;
    m.input.c = (int32_t)d;
    m.feature_dim = d;
    m.feature_scale = 1.0f;
    m.num_classes = k;
    m.logit_scale = 1.0f;
    m.head_weights = k_zero; /* only checked for NULL by the size functions */
    m.head_bias = k_zero;
    return ts_trainer_workspace_size(&m, n);
}

int main(void)
{
    char line[128];
    printf("const 1 1 0 %zu\n", sizeof(ws_1_1_0));
    printf("const 2 3 7 %zu\n", sizeof(ws_2_3_7));
    printf("const 10 64 1437 %zu\n", sizeof(ws_10_64_1437));
    printf("const_block 9 64 64 16 %zu %zu\n", sizeof(block_ws), sizeof(block_q));
    printf("const_bias 9 288 2048 7680 %zu %zu\n", sizeof(bias_ws), sizeof(bias_q));
    printf("const_class 10 %zu\n", sizeof(per_class) / sizeof(per_class[0]));
    while (fgets(line, sizeof(line), stdin) != NULL) {
        uint32_t k, d, n, a, b, c, e;
        if (sscanf(line, "block %" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu32, &a, &b, &c,
                   &e) == 4) {
            printf("block %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %zu %zu\n", a, b, c,
                   e, (size_t)TS_TRAINER_BLOCK_WORKSPACE_BYTES(a, b, c, e),
                   (size_t)TS_TRAINER_BLOCK_Q_BYTES(b, c));
            continue;
        }
        if (sscanf(line, "bias %" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu32, &a, &b, &c,
                   &e) == 4) {
            printf("bias %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %zu %zu\n", a, b, c, e,
                   (size_t)TS_TRAINER_BIAS_WORKSPACE_BYTES(a, b, c, e),
                   (size_t)TS_TRAINER_BIAS_Q_BYTES(b));
            continue;
        }
        if (sscanf(line, "class %" SCNu32, &a) == 1) {
            printf("class %" PRIu32 " %zu\n", a, (size_t)TS_TRAINER_PER_CLASS_COUNT(a));
            continue;
        }
        if (sscanf(line, "%" SCNu32 " %" SCNu32 " %" SCNu32, &k, &d, &n) != 3) {
            fprintf(stderr, "workspace_size: bad line: %s", line);
            return 2;
        }
        printf("ws %" PRIu32 " %" PRIu32 " %" PRIu32 " %zu %zu\n", k, d, n,
               (size_t)TS_TRAINER_WORKSPACE_BYTES(k, d, n), function_bytes(k, d, n));
    }
    return 0;
}
