/*
 * The cycle counter of the emulated boards: SysTick under QEMU's -icount, converted to
 * executed instructions (CPI 1), deterministic run to run (QEMU's DWT CYCCNT reads 0).
 *
 * Compiled in where the platform defines the SysTick clock: TS_SYSTICK_HZ and the length of a
 * tick in ns as the fraction TS_SYSTICK_NS_NUM / TS_SYSTICK_NS_DEN (QEMU mps2: 25 MHz, 40/1;
 * QEMU netduinoplus2: 168 MHz, 125/21). A board that counts with DWT (the STM32 ports on
 * hardware) leaves them undefined and has its own counter.
 *
 * Under `-icount shift=N` QEMU's virtual clock advances 2^N ns per instruction, so
 * ticks = instructions * 2^N * DEN / NUM. A loop of known length timed at start-up finds N;
 * ts_cycles() then converts ticks back to instructions, whatever shift the emulator was
 * started with. The wrap interrupt extends the 24-bit SysTick to 64 bits.
 */
#include <stdint.h>

#include "ts_cortexm.h"
#include "ts_platform.h"

#if defined(TS_SYSTICK_HZ)

_Static_assert((uint64_t)TS_SYSTICK_NS_NUM * TS_SYSTICK_HZ == 1000000000ull * TS_SYSTICK_NS_DEN,
               "TS_SYSTICK_NS_NUM / TS_SYSTICK_NS_DEN must be the SysTick period in ns");

static volatile uint32_t g_systick_wraps;
static uint64_t g_ticks_base; /* ticks before the last ts_cycles_align() */
static int g_icount_shift = -1; /* -1: QEMU runs without -icount (SysTick is wall-clock) */

static uint64_t systick_ticks64(void)
{
    uint32_t hi;
    uint32_t lo;
    do {
        hi = g_systick_wraps;
        lo = TS_SYST_CVR;
    } while (hi != g_systick_wraps);
    return g_ticks_base + ((uint64_t)hi << 24) + (uint64_t)(0x00FFFFFFu - lo);
}

#define TS_CAL_ITER 4096u /* 2 instructions per iteration */

static void spin_loop(uint32_t n)
{
    __asm__ volatile("1: subs %0, %0, #1 \n"
                     "   bne 1b          \n"
                     : "+r"(n)::"cc");
}

static void calibrate_icount(void)
{
    uint64_t t0 = systick_ticks64();
    uint64_t ticks;
    int n;
    spin_loop(TS_CAL_ITER);
    ticks = systick_ticks64() - t0;
    /* expected ticks for shift n: 2 * TS_CAL_ITER * 2^n * DEN / NUM, plus a few for the reads */
    for (n = 0; n <= 12; n++) {
        uint64_t want = ((uint64_t)2u * TS_CAL_ITER << n) * TS_SYSTICK_NS_DEN / TS_SYSTICK_NS_NUM;
        if (ticks * 100u >= want * 99u && ticks * 100u <= want * 102u + 100u) {
            g_icount_shift = n;
            return;
        }
    }
    g_icount_shift = -1;
}

void ts_cm_systick_start(void)
{
    /* SysTick: core clock, full 24-bit range, wrap interrupt extends it to 64 bits. */
    TS_SYST_CSR = 0;
    TS_SYST_RVR = 0x00FFFFFFu;
    TS_SYST_CVR = 0;
    TS_SYST_CSR = 0x7u; /* CLKSOURCE=core | TICKINT | ENABLE */
    /* VAL reads 0 until the first tick reloads it from LOAD: wait for that (bounded). */
    for (int i = 0; i < 100000 && TS_SYST_CVR == 0u; i++) {
    }
    calibrate_icount();
}

void SysTick_Handler(void)
{
    g_systick_wraps++;
}

#if TS_SYSTICK_NS_DEN == 1u && TS_SYSTICK_NS_NUM == 40u
#define TS_SYSTICK_POW2 1 /* 40 ns a tick: ticks and instructions differ by powers of two */
#else
#define TS_SYSTICK_POW2 0
/* The smallest number of ticks that is a whole number of instructions: a counter base that
 * is a multiple of it converts without remainder. */
static uint64_t tick_granularity(int sh)
{
    uint64_t a = TS_SYSTICK_NS_NUM;
    uint64_t b = (uint64_t)TS_SYSTICK_NS_DEN << sh;
    uint64_t den = b;
    while (b != 0u) { /* gcd */
        uint64_t r = a % b;
        a = b;
        b = r;
    }
    return den / a;
}
#endif

uint64_t ts_cycles64(void)
{
    uint64_t t = systick_ticks64();
    int sh = g_icount_shift;
    if (sh < 0) {
        return t;
    }
#if TS_SYSTICK_POW2
    /* instructions = ticks * 40 / 2^N = ticks * 5 * 2^(3 - N) */
    return (sh >= 3) ? (t * 5u) >> (sh - 3) : (t * 5u) << (3 - sh);
#else
    return t * TS_SYSTICK_NS_NUM / ((uint64_t)TS_SYSTICK_NS_DEN << sh);
#endif
}

/* Counter units (instructions under -icount) -> SysTick ticks, rounded up. */
uint64_t ts_cm_systick_ticks_for(uint64_t cycles)
{
    int sh = g_icount_shift;
    if (sh < 0) {
        return cycles;
    }
#if TS_SYSTICK_POW2
    return ((sh >= 3) ? (cycles << (sh - 3)) : (cycles >> (3 - sh))) / 5u + 1u;
#else
    return cycles * ((uint64_t)TS_SYSTICK_NS_DEN << sh) / TS_SYSTICK_NS_NUM + 1u;
#endif
}

void ts_cycles_align(void)
{
    uint64_t now;
    if (g_icount_shift < 0) {
        return; /* without -icount the counter is wall-clock anyway */
    }
    now = systick_ticks64();
    TS_SYST_CSR = 0x5u; /* TICKINT off: the restart must not count as a wrap */
    TS_SYST_CVR = 0u;   /* any write clears VAL; the period restarts at the next tick */
    while (TS_SYST_CVR == 0u) {
    }
    TS_SCB_ICSR = TS_SCB_ICSR_PENDSTCLR;
    g_systick_wraps = 0u;
    /* ts_cycles64() truncates ticks * NUM / (DEN * 2^N): a base that is a multiple of the
     * granularity makes that truncation the same for every reading in the window, whatever
     * `now` was */
#if TS_SYSTICK_POW2
    if (g_icount_shift > 3) {
        uint64_t mask = ((uint64_t)1u << (g_icount_shift - 3)) - 1u;
        now = (now + mask) & ~mask;
    }
#else
    {
        uint64_t g = tick_granularity(g_icount_shift);
        now = (now + g - 1u) / g * g;
    }
#endif
    g_ticks_base = now;
    TS_SYST_CSR = 0x7u;
}

int ts_icount_shift(void)
{
    return g_icount_shift;
}

uint32_t ts_cycles(void)
{
    return (uint32_t)ts_cycles64();
}

uint32_t ts_cycles_hz(void)
{
    return TS_SYSTICK_HZ;
}

const char *ts_cycle_counter_name(void)
{
    return (g_icount_shift >= 0) ? "systick-icount" : "systick";
}

#endif
