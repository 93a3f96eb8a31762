/*
 * ts_port_info.c -- the default port and clock descriptions for `@boot`: none (see
 * ts_platform.h). A port that has something to say (the STM32 ports: "stm32f4", "hse_pll")
 * defines these itself; weak, so its definitions win.
 */
#include <stddef.h>

#include "ts_platform.h"

#if defined(__GNUC__)
__attribute__((weak))
#endif
const char *ts_platform_port(void)
{
    return NULL;
}

#if defined(__GNUC__)
__attribute__((weak))
#endif
const char *ts_platform_clock(void)
{
    return NULL;
}
