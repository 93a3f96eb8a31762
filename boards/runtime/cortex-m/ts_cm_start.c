/*
 * Reset for every bare-metal Cortex-M port: enable the FPU (before any C code can touch it),
 * copy .data, zero .bss, paint the stack, bring up the board (ts_platform_init: its clock,
 * serial port and counter), run constructors, call main(), and end with ts_exit(main's value).
 */
#include <stdint.h>

#include "ts_cortexm.h"
#include "ts_platform.h"

extern int main(void);

extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

void ts_reset_c(void);

/* The FPU must be on before the compiler may use an FP register, so this part is assembly.
 * CPACR CP10/CP11 full access (DDI 0403E B3.2.20); a core without an FPU ignores the write. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm__ volatile(
        "ldr r0, =0xE000ED88      \n" /* SCB->CPACR */
        "ldr r1, [r0]             \n"
        "orr r1, r1, #(0xF << 20) \n" /* CP10, CP11 full access */
        "str r1, [r0]             \n"
        "dsb                      \n"
        "isb                      \n"
        "b ts_reset_c             \n");
}

__attribute__((noreturn, used)) void ts_reset_c(void)
{
    uint32_t *src = __data_load;
    uint32_t *dst = __data_start;
    void (**ctor)(void);

    while (dst < __data_end) {
        *dst++ = *src++;
    }
    for (dst = __bss_start; dst < __bss_end;) {
        *dst++ = 0;
    }
    ts_cm_paint_stack();
    ts_platform_init();
    for (ctor = __init_array_start; ctor < __init_array_end; ctor++) {
        (*ctor)();
    }
    ts_exit(main());
}
