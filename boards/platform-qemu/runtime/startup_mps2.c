/*
 * Start-up for QEMU mps2-an386 (Cortex-M4F) and mps2-an500 (Cortex-M7).
 *
 * Reset: enable the FPU (before any C code can touch it), copy .data, zero .bss, paint the
 * stack, bring up the UART and SysTick (ts_platform_init), run constructors, call main(),
 * and exit through semihosting with main's return value.
 * Faults print their registers on the UART and exit with status 3 (fault) or 4 (stray IRQ).
 */
#include <stdint.h>
#include <string.h>

#include "ts_mps2.h"
#include "ts_platform.h"

extern int main(void);

extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_top[];
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

void Reset_Handler(void);
void ts_reset_c(void);
void Default_Handler(void);
void ts_fault_report(uint32_t *frame, uint32_t exc_return, const char *what);

#define WEAK_DEFAULT __attribute__((weak, alias("Default_Handler")))
void NMI_Handler(void) WEAK_DEFAULT;
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);
void SVC_Handler(void) WEAK_DEFAULT;
void DebugMon_Handler(void) WEAK_DEFAULT;
void PendSV_Handler(void) WEAK_DEFAULT;
void SysTick_Handler(void); /* ts_platform_mps2.c */
void UART0RX_IRQHandler(void); /* ts_platform_mps2.c */
void TIMER0_IRQHandler(void);  /* ts_platform_mps2.c */

#define TS_NUM_IRQ 32

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) const vector_t ts_vector_table[16 + TS_NUM_IRQ] = {
    (vector_t)(uintptr_t)__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    /* external interrupts (AN386/AN500 numbering): 0 UART0 RX, 8 TIMER0; the rest end in
     * Default_Handler, which reports the IRQ and exits */
    UART0RX_IRQHandler, /* 0 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* 1-4 */
    Default_Handler, Default_Handler, Default_Handler,                  /* 5-7 */
    TIMER0_IRQHandler,                                                  /* 8 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* 9-12 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* 13-16 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* 17-20 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* 21-24 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* 25-28 */
    Default_Handler, Default_Handler, Default_Handler,                  /* 29-31 */
};

/* The FPU must be on before the compiler may use an FP register, so this part is assembly. */
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
    ts_mps2_paint_stack();
    ts_platform_init();
    for (ctor = __init_array_start; ctor < __init_array_end; ctor++) {
        (*ctor)();
    }
    ts_exit(main());
}

/* ---- faults ------------------------------------------------------------------------------ */

#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)

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
              (unsigned long)SCB_CFSR, (unsigned long)SCB_HFSR, (unsigned long)SCB_MMFAR,
              (unsigned long)SCB_BFAR, (unsigned long)exc_return);
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

__attribute__((naked)) void HardFault_Handler(void)
{
    __asm__ volatile("tst lr, #4        \n"
                     "ite eq            \n"
                     "mrseq r0, msp     \n"
                     "mrsne r0, psp     \n"
                     "mov r1, lr        \n"
                     "ldr r3, =ts_fault_stack + 1024 \n" /* own stack: the old may be gone */
                     "mov sp, r3        \n"
                     "ldr r2, =k_hardfault \n"
                     "b ts_fault_report \n");
}

__attribute__((naked)) void MemManage_Handler(void)
{
    __asm__ volatile("tst lr, #4        \n"
                     "ite eq            \n"
                     "mrseq r0, msp     \n"
                     "mrsne r0, psp     \n"
                     "mov r1, lr        \n"
                     "ldr r3, =ts_fault_stack + 1024 \n" /* own stack: the old may be gone */
                     "mov sp, r3        \n"
                     "ldr r2, =k_memmanage \n"
                     "b ts_fault_report \n");
}

__attribute__((naked)) void BusFault_Handler(void)
{
    __asm__ volatile("tst lr, #4        \n"
                     "ite eq            \n"
                     "mrseq r0, msp     \n"
                     "mrsne r0, psp     \n"
                     "mov r1, lr        \n"
                     "ldr r3, =ts_fault_stack + 1024 \n" /* own stack: the old may be gone */
                     "mov sp, r3        \n"
                     "ldr r2, =k_busfault \n"
                     "b ts_fault_report \n");
}

__attribute__((naked)) void UsageFault_Handler(void)
{
    __asm__ volatile("tst lr, #4        \n"
                     "ite eq            \n"
                     "mrseq r0, msp     \n"
                     "mrsne r0, psp     \n"
                     "mov r1, lr        \n"
                     "ldr r3, =ts_fault_stack + 1024 \n" /* own stack: the old may be gone */
                     "mov sp, r3        \n"
                     "ldr r2, =k_usagefault \n"
                     "b ts_fault_report \n");
}

void Default_Handler(void)
{
    uint32_t active = SCB_ICSR & 0x1FFu;
    ts_printf("\r\n!! unexpected exception %lu (IRQ %ld)\r\n", (unsigned long)active,
              (long)active - 16);
    ts_exit(TS_EXIT_STRAY_IRQ);
}
