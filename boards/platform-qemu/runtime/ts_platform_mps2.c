/*
 * ts_platform for QEMU mps2-an386 / mps2-an500: CMSDK UART0 and semihosting exit. The
 * reset, faults, stack, libc glue and the SysTick cycle counter are the shared Cortex-M
 * runtime (boards/runtime/cortex-m).
 */
#include <stdint.h>

#include "ts_mps2.h"
#include "ts_platform.h"

/* ---- init ------------------------------------------------------------------------------- */

static int g_initialized;

void ts_platform_init(void)
{
    if (g_initialized) {
        return;
    }
    g_initialized = 1;
    /* UART0: TX must be enabled or TXFULL never clears and output spins forever. */
    TS_UART_BAUDDIV = 16u;
    TS_UART_CTRL = TS_UART_CTRL_TXEN | TS_UART_CTRL_RXEN;
    /* The counter: SysTick at SYSCLK under -icount (boards/runtime/cortex-m/ts_cm_systick.c) */
    ts_cm_systick_start();
}

const char *ts_platform_name(void)
{
#if defined(TS_QEMU_MPS2_AN500)
    return "qemu-mps2-an500";
#else
    return "qemu-mps2-an386";
#endif
}

/* ---- UART0 ------------------------------------------------------------------------------ */

void ts_uart_putc(char c)
{
    while (TS_UART_STATE & TS_UART_STATE_TXFULL) {
    }
    TS_UART_DATA = (uint8_t)c;
}

void ts_uart_write(const char *buf, size_t len)
{
    while (len--) {
        ts_uart_putc(*buf++);
    }
}

void ts_uart_puts(const char *s)
{
    while (*s) {
        ts_uart_putc(*s++);
    }
}

void ts_uart_flush(void)
{
    while (TS_UART_STATE & TS_UART_STATE_TXFULL) {
    }
}

int ts_uart_getc_nonblock(void)
{
    if (TS_UART_STATE & TS_UART_STATE_RXFULL) {
        return (int)(TS_UART_DATA & 0xFFu);
    }
    return -1;
}

/* The RX and timer interrupts only wake the core from WFI; reading happens in thread mode. */
void UART0RX_IRQHandler(void)
{
    TS_UART_INTCLEAR = 0x2u;
}

void TIMER0_IRQHandler(void)
{
    TS_TIMER0_INTCLEAR = 0x1u;
}

static void enable_rx_wakeup(void)
{
    TS_UART_CTRL |= TS_UART_CTRL_RXINTEN;
    TS_NVIC_ISER0 = (1u << TS_UART0_RX_IRQ) | (1u << TS_TIMER0_IRQ);
}

/*
 * Waiting sleeps (WFI) instead of spinning: the emulator then does not burn a host core while
 * the host is quiet, and under -icount its clock runs at real time while the core sleeps.
 * PRIMASK is set around the check, so a byte arriving just before WFI still wakes it.
 */
int ts_uart_getc(void)
{
    int c = ts_uart_getc_nonblock();
    if (c >= 0) {
        return c;
    }
    enable_rx_wakeup();
    for (;;) {
        __asm__ volatile("cpsid i" ::: "memory");
        c = ts_uart_getc_nonblock();
        if (c < 0) {
            __asm__ volatile("dsb\n wfi" ::: "memory");
        }
        __asm__ volatile("cpsie i" ::: "memory");
        if (c >= 0) {
            return c;
        }
    }
}

int ts_uart_getc_timeout(uint32_t cycles)
{
    uint64_t start = ts_cycles64();
    int c = ts_uart_getc_nonblock();
    if (c >= 0 || cycles == 0u) {
        return c;
    }
    enable_rx_wakeup();
    for (;;) {
        uint64_t elapsed;
        __asm__ volatile("cpsid i" ::: "memory");
        c = ts_uart_getc_nonblock();
        elapsed = ts_cycles64() - start;
        if (c < 0 && elapsed < cycles) {
            uint64_t ticks = ts_cm_systick_ticks_for(cycles - elapsed); /* TIMER0 runs at SYSCLK too */
            TS_TIMER0_CTRL = 0u;
            TS_TIMER0_INTCLEAR = 0x1u;
            TS_TIMER0_RELOAD = (ticks > 0xFFFFFFFFu) ? 0xFFFFFFFFu : (uint32_t)ticks;
            TS_TIMER0_VALUE = TS_TIMER0_RELOAD;
            TS_TIMER0_CTRL = TS_TIMER_CTRL_EN | TS_TIMER_CTRL_IRQEN;
            __asm__ volatile("dsb\n wfi" ::: "memory");
            TS_TIMER0_CTRL = 0u;
            TS_TIMER0_INTCLEAR = 0x1u;
        }
        __asm__ volatile("cpsie i" ::: "memory");
        if (c >= 0) {
            return c;
        }
        if (elapsed >= cycles) {
            return -1;
        }
    }
}

/* ---- exit: semihosting ------------------------------------------------------------------ */

void ts_exit(int code)
{
    ts_uart_flush();
    ts_cm_semihost_exit(code);
    for (;;) {
        __asm__ volatile("wfi");
    }
}
