/*
 * ts_platform for the STM32 ports, the part every family shares: start-up order, the serial
 * link above the register level, the marker GPIO, ts_exit and the names for @boot.
 *
 * Serial: the family's receive interrupt pushes every byte into a ring, so nothing is lost
 * while the app is busy (the USART / LPUART data register holds one byte: at 115200 baud a
 * new one arrives every 87 us). Waiting for a byte sleeps in WFI; the receive interrupt or
 * the SysTick (which always runs: the DWT wrap observer on hardware, the counter under QEMU)
 * wakes the core. Transmission polls the data register.
 */
#include <stddef.h>
#include <stdint.h>

#include "ts_platform.h"
#include "ts_stm32.h"

/* ---- helpers ----------------------------------------------------------------------------- */

int ts_stm32_wait(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    uint32_t i;
    for (i = 0; i < TS_STM32_WAIT_POLLS; i++) {
        if ((*reg & mask) == want) {
            return 1;
        }
    }
    return 0;
}

void ts_stm32_gpio_output(uint32_t base, uint32_t pin)
{
    TS_GPIO_BSRR(base) = 1u << (pin + 16u); /* low before it drives */
    TS_GPIO_OSPEEDR(base) |= 3u << (2u * pin);
    TS_GPIO_MODER(base) = (TS_GPIO_MODER(base) & ~(3u << (2u * pin))) | (1u << (2u * pin));
}

void ts_stm32_gpio_af(uint32_t base, uint32_t pin, uint32_t af, int pull_up)
{
    uint32_t shift = 4u * (pin & 7u);
    TS_GPIO_AFR(base, pin) = (TS_GPIO_AFR(base, pin) & ~(0xFu << shift)) | (af << shift);
    TS_GPIO_OSPEEDR(base) |= 3u << (2u * pin);
    TS_GPIO_PUPDR(base) = (TS_GPIO_PUPDR(base) & ~(3u << (2u * pin))) |
                          ((pull_up ? 1u : 0u) << (2u * pin));
    TS_GPIO_MODER(base) = (TS_GPIO_MODER(base) & ~(3u << (2u * pin))) | (2u << (2u * pin));
}

/* ---- start-up ---------------------------------------------------------------------------- */

static const char *g_clock_state = "reset";
static int g_initialized;

void ts_platform_init(void)
{
    uint32_t hclk = 0;
    if (g_initialized) {
        return;
    }
    g_initialized = 1;
    g_clock_state = ts_stm32_clock_init(&hclk);
    ts_stm32_counter_init(hclk);
    ts_stm32_serial_init(hclk);
    ts_stm32_marker_init();
}

const char *ts_platform_name(void)
{
    return ts_stm32_board_name;
}

const char *ts_platform_port(void)
{
    return ts_stm32_port_name;
}

const char *ts_platform_clock(void)
{
    return g_clock_state;
}

/* ---- marker ------------------------------------------------------------------------------ */

void ts_marker(int on)
{
    TS_GPIO_BSRR(ts_stm32_marker_gpio) = 1u << (ts_stm32_marker_pin + (on ? 0u : 16u));
}

/* ---- serial: receive ring ------------------------------------------------------------------ */

#define TS_RX_RING 512u /* a power of two */
static volatile uint8_t g_rx[TS_RX_RING];
static volatile uint32_t g_rx_head; /* written by the interrupt */
static volatile uint32_t g_rx_tail; /* written by thread code */
static volatile uint32_t g_rx_lost; /* ring full or hardware overrun */

void ts_stm32_rx_push(uint8_t byte)
{
    uint32_t head = g_rx_head;
    if (head - g_rx_tail >= TS_RX_RING) {
        g_rx_lost++;
        return;
    }
    g_rx[head & (TS_RX_RING - 1u)] = byte;
    g_rx_head = head + 1u;
}

void ts_stm32_rx_overrun(void)
{
    g_rx_lost++;
}

int ts_uart_getc_nonblock(void)
{
    uint32_t tail = g_rx_tail;
    int c;
    if (tail == g_rx_head) {
        return -1;
    }
    c = g_rx[tail & (TS_RX_RING - 1u)];
    g_rx_tail = tail + 1u;
    return c;
}

/* PRIMASK is set around the check, so a byte arriving just before WFI still wakes it. */
static int wait_byte(int bounded, uint32_t cycles)
{
    uint64_t start = ts_cycles64();
    for (;;) {
        int c;
        __asm__ volatile("cpsid i" ::: "memory");
        c = ts_uart_getc_nonblock();
        if (c < 0) {
            __asm__ volatile("dsb\n wfi" ::: "memory");
        }
        __asm__ volatile("cpsie i" ::: "memory");
        if (c >= 0) {
            return c;
        }
        if (bounded && ts_cycles64() - start >= cycles) {
            return -1;
        }
    }
}

int ts_uart_getc(void)
{
    int c = ts_uart_getc_nonblock();
    return c >= 0 ? c : wait_byte(0, 0u);
}

int ts_uart_getc_timeout(uint32_t cycles)
{
    int c = ts_uart_getc_nonblock();
    if (c >= 0 || cycles == 0u) {
        return c;
    }
    return wait_byte(1, cycles);
}

/* ---- serial: transmit ---------------------------------------------------------------------- */

void ts_uart_putc(char c)
{
    ts_stm32_serial_tx((uint8_t)c);
}

void ts_uart_write(const char *buf, size_t len)
{
    while (len--) {
        ts_stm32_serial_tx((uint8_t)*buf++);
    }
}

void ts_uart_puts(const char *s)
{
    while (*s) {
        ts_stm32_serial_tx((uint8_t)*s++);
    }
}

void ts_uart_flush(void)
{
    ts_stm32_serial_drain();
}

/* ---- exit ---------------------------------------------------------------------------------- */

/* Under QEMU: semihosting, so the emulator's exit status is the code. On a board: the same
 * when a debugger is attached (OpenOCD / pyOCD with semihosting on report it); otherwise the
 * core stops here with interrupts off, so what the firmware printed last (a fault report)
 * stays the last thing on the serial port; the reset button starts it again. */
void ts_exit(int code)
{
    ts_uart_flush();
    if (TS_STM32_IS_EMULATED || ts_cm_debugger_attached()) {
        ts_cm_semihost_exit(code);
    }
    __asm__ volatile("cpsid i" ::: "memory");
    for (;;) {
        __asm__ volatile("wfi");
    }
}
