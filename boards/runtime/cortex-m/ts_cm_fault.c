/*
 * Faults and stray interrupts, for every bare-metal Cortex-M port: the handler prints the
 * stacked PC, LR and xPSR with the fault status registers on the serial port, then ends with
 * ts_exit(3) (fault) or ts_exit(4) (an interrupt without a handler). Under QEMU that is the
 * emulator's exit status; on a board the port's ts_exit halts (or returns to a debugger).
 *
 * Fault status registers: DDI 0403E B3.2.15 (CFSR), B3.2.16 (HFSR), B3.2.17 (MMFAR),
 * B3.2.18 (BFAR).
 */
#include <stdint.h>

#include "ts_cortexm.h"
#include "ts_platform.h"

void ts_fault_report(uint32_t *frame, uint32_t exc_return, const char *what);

#define WEAK_DEFAULT __attribute__((weak, alias("Default_Handler")))
void NMI_Handler(void) WEAK_DEFAULT;
void SVC_Handler(void) WEAK_DEFAULT;
void DebugMon_Handler(void) WEAK_DEFAULT;
void PendSV_Handler(void) WEAK_DEFAULT;

/* The fault handlers run on this stack: after an overflow the thread's SP is outside RAM. */
__attribute__((used, aligned(8))) uint32_t ts_fault_stack[256];

extern uint32_t __stack_bottom[];

__attribute__((used)) void ts_fault_report(uint32_t *frame, uint32_t exc_return, const char *what)
{
    static const uint32_t k_zero_frame[8];
    int overflow = frame < __stack_bottom || frame + 8 > __stack_top;
    if (overflow) {
        ts_printf("\r\n!! stack overflow: sp=0x%08lx is outside the %lu-byte stack "
                  "[0x%08lx, 0x%08lx)\r\n",
                  (unsigned long)(uintptr_t)frame, (unsigned long)ts_stack_size(),
                  (unsigned long)(uintptr_t)__stack_bottom, (unsigned long)(uintptr_t)__stack_top);
        frame = (uint32_t *)k_zero_frame; /* the stacked registers were not stored anywhere */
    }
    ts_printf("\r\n!! FAULT %s: pc=0x%08lx lr=0x%08lx psr=0x%08lx cfsr=0x%08lx hfsr=0x%08lx "
              "mmfar=0x%08lx bfar=0x%08lx exc_return=0x%08lx\r\n",
              what, (unsigned long)frame[6], (unsigned long)frame[5], (unsigned long)frame[7],
              (unsigned long)TS_SCB_CFSR, (unsigned long)TS_SCB_HFSR, (unsigned long)TS_SCB_MMFAR,
              (unsigned long)TS_SCB_BFAR, (unsigned long)exc_return);
    if (!overflow && !ts_stack_ok()) {
        ts_printf("!! the stack canary was overwritten: the stack overflowed earlier\r\n");
    }
    ts_exit(TS_EXIT_FAULT);
}

/* Each handler picks the stacked frame (MSP or PSP), moves to a fresh stack (after an
 * overflow the old one points outside RAM) and reports; the program ends there anyway. */
__attribute__((used)) static const char k_hardfault[] = "HardFault";
__attribute__((used)) static const char k_memmanage[] = "MemManage";
__attribute__((used)) static const char k_busfault[] = "BusFault";
__attribute__((used)) static const char k_usagefault[] = "UsageFault";

#define TS_FAULT_HANDLER(handler, label)                                                    \
    __attribute__((naked)) void handler(void)                                               \
    {                                                                                       \
        __asm__ volatile("tst lr, #4        \n"                                             \
                         "ite eq            \n"                                             \
                         "mrseq r0, msp     \n"                                             \
                         "mrsne r0, psp     \n"                                             \
                         "mov r1, lr        \n"                                             \
                         "ldr r3, =ts_fault_stack + 1024 \n"                                \
                         "mov sp, r3        \n"                                             \
                         "ldr r2, =" #label " \n"                                           \
                         "b ts_fault_report \n");                                           \
    }

TS_FAULT_HANDLER(HardFault_Handler, k_hardfault)
TS_FAULT_HANDLER(MemManage_Handler, k_memmanage)
TS_FAULT_HANDLER(BusFault_Handler, k_busfault)
TS_FAULT_HANDLER(UsageFault_Handler, k_usagefault)

void Default_Handler(void)
{
    uint32_t active = TS_SCB_ICSR & 0x1FFu;
    ts_printf("\r\n!! unexpected exception %lu (IRQ %ld)\r\n", (unsigned long)active,
              (long)active - 16);
    ts_exit(TS_EXIT_STRAY_IRQ);
}
