/*
 * What the framework ports (boards/ports/arduino, boards/ports/espidf) share: the parts of
 * ts_platform.h a framework leaves the same on every board. The framework owns the stack
 * (its linker script, its RTOS), so the stack figures say "unknown"; counters of cycles or
 * microseconds need no -icount alignment. NOT BUILT on this project's machines (see the
 * ports).
 */
#include <stddef.h>
#include <string.h>

#include "ts_platform.h"

const char *ts_platform_clock(void)
{
    return "framework"; /* the framework's clock set-up */
}

int ts_icount_shift(void)
{
    return -1;
}

void ts_cycles_align(void)
{
}

void ts_uart_putc(char c)
{
    ts_uart_write(&c, 1);
}

void ts_uart_puts(const char *s)
{
    ts_uart_write(s, strlen(s));
}

size_t ts_stack_size(void)
{
    return 0;
}

size_t ts_stack_high_water(void)
{
    return 0;
}

int ts_stack_ok(void)
{
    return 1;
}
