/*
 * tinysift firmware app: `calib ms=N`, the fixed workload behind `tinysift device calibrate`.
 * For N ms of the board's counter it runs int8 multiply-accumulates and float updates over
 * static buffers (the trainer's two kinds of arithmetic), inside one measurement window: the
 * marker is high for exactly that time, so a power monitor measures the board's active
 * current, with nothing on the serial link. Then `@phase name=calib cycles=<n>`. Works
 * without a model.
 */
#include <stdint.h>

#include "app.h"
#include "ts_platform.h"

#define APP_CALIB_N 256u

static int8_t s_calib_a[APP_CALIB_N];
static int8_t s_calib_b[APP_CALIB_N];
/* unsigned, so the sum wraps (an int32 one would overflow, undefined, after ~76k passes of
 * the loop: well inside the default 2000 ms on a fast board); only its use matters */
static volatile uint32_t s_calib_sink;

int app_cmd_calib(uint32_t ms)
{
    uint64_t want = (uint64_t)ts_cycles_hz() / 1000u * ms;
    uint64_t t0;
    uint64_t elapsed;
    uint32_t x = 0x9E3779B9u;
    uint32_t acc = 0;
    float f = 0.0f;
    uint32_t i;
    ts_record_t *r;

    for (i = 0; i < APP_CALIB_N; i++) { /* the same data every time */
        x = x * 1664525u + 1013904223u;
        s_calib_a[i] = (int8_t)(x >> 24);
        s_calib_b[i] = (int8_t)(x >> 16);
    }
    app_window_open();
    t0 = ts_cycles64();
    do {
        for (i = 0; i < APP_CALIB_N; i++) {
            acc += (uint32_t)((int32_t)s_calib_a[i] * (int32_t)s_calib_b[i]);
            f = f * 0.999f + (float)s_calib_a[i];
        }
        elapsed = ts_cycles64() - t0;
    } while (elapsed < want);
    app_window_close();
    s_calib_sink = acc + (uint32_t)(int32_t)f;

    r = app_rec("phase");
    ts_record_text(r, "name", "calib");
    ts_record_u64(r, "cycles", elapsed);
    app_rec_send();
    return 0;
}
