/*
 * ts_cortexm.h -- what every bare-metal Cortex-M port of ts_platform.h shares: the core's own
 * registers (the same address on every Cortex-M3/M4/M7), the exit statuses of the runtime,
 * the first 16 entries of the vector table, and the start-up hooks.
 *
 * The code behind it (the .c files next to this header) is the reset sequence, the fault handlers,
 * the painted stack, semihosting and the libc glue. The local platforms compile it for every
 * Cortex-M board (platform-qemu: QEMU mps2; platform-stm32: the STM32 ports); a port adds its
 * vector table (its IRQs), its serial port, its counter, ts_platform_init() and ts_exit().
 *
 * Register addresses: ARMv7-M Architecture Reference Manual (Arm DDI 0403E), chapter B3
 * "System Address Map" (SCB, SysTick, NVIC) and C1 "ARMv7-M Debug" (DEMCR, DWT).
 */
#ifndef TS_CORTEXM_H
#define TS_CORTEXM_H

#include <stdint.h>

/* Exit statuses the runtime itself uses (main's return value is passed through as is). */
#define TS_EXIT_FAULT 3     /* HardFault / MemManage / BusFault / UsageFault */
#define TS_EXIT_STRAY_IRQ 4 /* an interrupt without a handler */
#define TS_EXIT_ABORT 6     /* abort() or a failed assert() */

#define TS_REG32(addr) (*(volatile uint32_t *)(addr))

/* System control block (DDI 0403E B3.2.2, "System control and ID registers") */
#define TS_SCB_ICSR TS_REG32(0xE000ED04u)  /* VECTACTIVE [8:0], PENDSTCLR bit 25 */
#define TS_SCB_AIRCR TS_REG32(0xE000ED0Cu) /* VECTKEY 0x05FA [31:16], SYSRESETREQ bit 2 */
#define TS_SCB_CPACR TS_REG32(0xE000ED88u) /* CP10/CP11 [23:20]: the FPU */
#define TS_SCB_CFSR TS_REG32(0xE000ED28u)
#define TS_SCB_HFSR TS_REG32(0xE000ED2Cu)
#define TS_SCB_MMFAR TS_REG32(0xE000ED34u)
#define TS_SCB_BFAR TS_REG32(0xE000ED38u)
#define TS_SCB_ICSR_PENDSTCLR (1u << 25)
#define TS_SCB_AIRCR_SYSRESET 0x05FA0004u

/* SysTick (DDI 0403E B3.3.2): CSR ENABLE bit 0, TICKINT bit 1, CLKSOURCE bit 2 (1 = core) */
#define TS_SYST_CSR TS_REG32(0xE000E010u)
#define TS_SYST_RVR TS_REG32(0xE000E014u)
#define TS_SYST_CVR TS_REG32(0xE000E018u)

/* NVIC (DDI 0403E B3.4.3): ISERn enables IRQs 32n..32n+31 */
#define TS_NVIC_ISER(n) TS_REG32(0xE000E100u + 4u * (n))
#define TS_NVIC_ISER0 TS_NVIC_ISER(0)

/* Debug: DHCSR C_DEBUGEN bit 0 (a debugger is attached), DEMCR TRCENA bit 24 (C1.6) */
#define TS_DHCSR TS_REG32(0xE000EDF0u)
#define TS_DEMCR TS_REG32(0xE000EDFCu)
#define TS_DEMCR_TRCENA (1u << 24)
/* DWT (C1.8): CTRL CYCCNTENA bit 0, CYCCNT the cycle counter; LAR unlocks it on Cortex-M7 */
#define TS_DWT_CTRL TS_REG32(0xE0001000u)
#define TS_DWT_CYCCNT TS_REG32(0xE0001004u)
#define TS_DWT_LAR TS_REG32(0xE0001FB0u)

/* ---- the vector table ----------------------------------------------------------------- */

typedef void (*ts_vector_t)(void);

void Reset_Handler(void);
void Default_Handler(void);
void NMI_Handler(void);
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);
void SVC_Handler(void);
void DebugMon_Handler(void);
void PendSV_Handler(void);
void SysTick_Handler(void); /* every port defines it */

extern uint32_t __stack_top[];

/* The 16 system entries every port's table starts with; the port's IRQs follow. */
#define TS_CM_SYSTEM_VECTORS                                                                \
    (ts_vector_t)(uintptr_t)__stack_top, Reset_Handler, NMI_Handler, HardFault_Handler,     \
        MemManage_Handler, BusFault_Handler, UsageFault_Handler, 0, 0, 0, 0, SVC_Handler,   \
        DebugMon_Handler, 0, PendSV_Handler, SysTick_Handler

/* Eight IRQ slots that end in Default_Handler (it reports the IRQ and exits). */
#define TS_CM_DEFAULT_8                                                                     \
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,     \
        Default_Handler, Default_Handler, Default_Handler

/* ---- start-up and the runtime's services ------------------------------------------------ */

/* Paints the stack below the live frame (ts_stack_high_water() measures what was used). */
void ts_cm_paint_stack(void);
/* Semihosting SYS_EXIT_EXTENDED with `code` (QEMU: its exit status; a debugger with
 * semihosting on: the session ends). Without a semihosting host the BKPT halts the core or,
 * with no debugger at all, faults: only call it under QEMU or with DHCSR.C_DEBUGEN set. */
void ts_cm_semihost_exit(int code);
/* Nonzero when a debugger is attached (DHCSR.C_DEBUGEN). */
int ts_cm_debugger_attached(void);

/* The emulated boards' counter (ts_cm_systick.c, where the platform defines TS_SYSTICK_HZ):
 * starts SysTick and finds the -icount shift; converts counter units to SysTick ticks. */
void ts_cm_systick_start(void);
uint64_t ts_cm_systick_ticks_for(uint64_t cycles);

#endif
