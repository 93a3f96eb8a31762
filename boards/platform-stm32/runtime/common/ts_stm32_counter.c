/*
 * The cycle counter on a real STM32: DWT CYCCNT (DDI 0403E C1.8: DEMCR.TRCENA enables the
 * DWT, DWT_CTRL.CYCCNTENA starts the count), which counts core clock cycles. It is 32 bits
 * wide (43 s at 100 MHz), so SysTick interrupts every 2^24 cycles to observe every wrap and
 * ts_cycles64() never wraps in practice. Counter name "dwt"; ts_cycles_hz() is the core clock
 * the clock set-up reached. An emulated build counts with SysTick under -icount instead
 * (boards/runtime/cortex-m/ts_cm_systick.c: QEMU's DWT CYCCNT reads 0).
 */
#include <stdint.h>

#include "ts_platform.h"
#include "ts_stm32.h"

#if !TS_STM32_IS_EMULATED

static uint32_t g_hz;
static volatile uint32_t g_last;
static volatile uint32_t g_high;

/* With interrupts masked, or from the SysTick interrupt. */
static uint64_t observe(void)
{
    uint32_t now = TS_DWT_CYCCNT;
    if (now < g_last) {
        g_high++;
    }
    g_last = now;
    return ((uint64_t)g_high << 32) | now;
}

void ts_stm32_counter_init(uint32_t hclk_hz)
{
    g_hz = hclk_hz;
    TS_DEMCR |= TS_DEMCR_TRCENA;
    TS_DWT_LAR = 0xC5ACCE55u; /* unlock (needed on Cortex-M7, ignored on M4) */
    TS_DWT_CYCCNT = 0u;
    TS_DWT_CTRL |= 1u; /* CYCCNTENA */
    g_last = 0u;
    g_high = 0u;
    /* SysTick: core clock, full 24-bit period, interrupt on every wrap (the observer) */
    TS_SYST_CSR = 0u;
    TS_SYST_RVR = 0x00FFFFFFu;
    TS_SYST_CVR = 0u;
    TS_SYST_CSR = 0x7u; /* CLKSOURCE=core | TICKINT | ENABLE */
}

void SysTick_Handler(void)
{
    (void)observe();
}

uint64_t ts_cycles64(void)
{
    uint32_t primask;
    uint64_t now;
    __asm__ volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    now = observe();
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
    return now;
}

uint32_t ts_cycles(void)
{
    return TS_DWT_CYCCNT;
}

uint32_t ts_cycles_hz(void)
{
    return g_hz;
}

const char *ts_cycle_counter_name(void)
{
    return "dwt";
}

int ts_icount_shift(void)
{
    return -1;
}

void ts_cycles_align(void)
{
    /* cycles are cycles: nothing to align */
}

#else

void ts_stm32_counter_init(uint32_t hclk_hz)
{
    (void)hclk_hz;
    ts_cm_systick_start();
}

#endif
