/*
 * Size probe for tools/bench_kernels.py: a program that calls ts_invoke on a model it cannot
 * know at compile time (so the whole executor and every kernel reachable from the op
 * dispatch are linked), and, with -DTS_SIZE_BASELINE, the same program without the engine.
 * The difference of their arm-none-eabi-size numbers is the engine's flash and static RAM.
 */
#include <stdint.h>

#include "ts_engine.h"
#include "ts_platform.h"

static volatile uintptr_t g_model_addr;
static uint8_t g_arena[64] __attribute__((aligned(8)));
static int8_t g_io[16];

int main(void) {
#if defined(TS_SIZE_BASELINE)
    ts_printf("status %d\n", (int)g_io[0] + (int)g_arena[0] + (int)g_model_addr);
#else
    const ts_model_t *m = (const ts_model_t *)g_model_addr;
    ts_printf("status %d\n", (int)ts_invoke(m, g_io, g_io, g_arena, sizeof g_arena));
#endif
    return 0;
}
