/*
 * The stack of every bare-metal Cortex-M port: a fixed region at the bottom of RAM
 * (ts_sections.ld: __stack_bottom .. __stack_top), painted at reset, with the canary at its
 * far end. An overflow runs off the bottom of RAM, where the next access faults (on an STM32
 * the addresses below SRAM are reserved) or, under QEMU, is ignored until something faults.
 */
#include <stddef.h>
#include <stdint.h>

#include "ts_cortexm.h"
#include "ts_platform.h"

extern uint32_t __stack_bottom[], __stack_top[];
#define TS_STACK_PAINT 0xA5A5A5A5u

void ts_cm_paint_stack(void)
{
    uint32_t *p = __stack_bottom;
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    sp -= 16; /* leave the live frame alone */
    while (p < sp) {
        *p++ = TS_STACK_PAINT;
    }
}

size_t ts_stack_size(void)
{
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)__stack_bottom);
}

size_t ts_stack_high_water(void)
{
    const uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == TS_STACK_PAINT) {
        p++;
    }
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

int ts_stack_ok(void)
{
    return __stack_bottom[0] == TS_STACK_PAINT;
}
