/*
 * ts_marker.c -- the default measurement marker: a no-op (see ts_platform.h).
 *
 * A board with a power monitor attached overrides it with a strong definition that drives a
 * GPIO pin (high inside a measurement window), e.g.
 *
 *     void ts_marker(int on) { if (on) GPIOA->BSRR = 1u << 5; else GPIOA->BRR = 1u << 5; }
 *
 * Keep it short and deterministic: it runs at the edges of every measured window.
 */
#include "ts_platform.h"

#if defined(__GNUC__)
__attribute__((weak))
#endif
void ts_marker(int on)
{
    (void)on;
}
