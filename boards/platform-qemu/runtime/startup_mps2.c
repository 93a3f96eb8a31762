/*
 * The vector table of QEMU mps2-an386 (Cortex-M4F) and mps2-an500 (Cortex-M7). The reset,
 * the fault handlers and Default_Handler are the shared Cortex-M runtime's
 * (boards/runtime/cortex-m): reset enables the FPU, copies .data, zeroes .bss, paints the
 * stack, brings up the UART and SysTick (ts_platform_init), runs constructors, calls main(),
 * and exits through semihosting with main's return value. Faults print their registers on
 * the UART and exit with status 3 (fault) or 4 (stray IRQ).
 */
#include <stdint.h>

#include "ts_cortexm.h"
#include "ts_mps2.h"

void UART0RX_IRQHandler(void); /* ts_platform_mps2.c */
void TIMER0_IRQHandler(void);  /* ts_platform_mps2.c */

#define TS_NUM_IRQ 32

__attribute__((section(".isr_vector"), used)) const ts_vector_t ts_vector_table[16 + TS_NUM_IRQ] = {
    TS_CM_SYSTEM_VECTORS,
    /* external interrupts (AN386/AN500 numbering): 0 UART0 RX, 8 TIMER0; the rest end in
     * Default_Handler, which reports the IRQ and exits */
    UART0RX_IRQHandler, /* 0 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* 1-4 */
    Default_Handler, Default_Handler, Default_Handler,                  /* 5-7 */
    TIMER0_IRQHandler,                                                  /* 8 */
    TS_CM_DEFAULT_8,                                                    /* 9-16 */
    TS_CM_DEFAULT_8,                                                    /* 17-24 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* 25-28 */
    Default_Handler, Default_Handler, Default_Handler,                  /* 29-31 */
};
