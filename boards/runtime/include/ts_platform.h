/*
 * ts_platform.h -- the small board layer every tinysift firmware target provides.
 *
 * Implemented by the local PlatformIO dev-platforms in boards/:
 *   platform-qemu    QEMU mps2-an386 (Cortex-M4F) / mps2-an500 (Cortex-M7): CMSDK UART0,
 *                    SysTick as the cycle counter, semihosting exit.
 *   platform-stm32   the STM32 ports (NUCLEO-F411RE/F401RE/F446RE, NUCLEO-L4R5ZI): clock
 *                    set-up, USART2 / LPUART1, DWT CYCCNT, marker GPIO; and the STM32F4 port
 *                    under QEMU netduinoplus2 (SysTick under -icount as the counter).
 *   platform-native  the host: stdin/stdout as the serial link, clock_gettime as the counter.
 * and, for stock PlatformIO with internet, by boards/ports/ (Arduino: nano33ble, pico;
 * ESP-IDF: esp32-s3).
 * The formatter (ts_printf and friends) is the same code on every target and never allocates.
 * No function here uses the heap.
 */
#ifndef TS_PLATFORM_H
#define TS_PLATFORM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_PLATFORM_API_VERSION 1

#if defined(__GNUC__)
#define TS_NORETURN __attribute__((noreturn))
#define TS_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define TS_NORETURN
#define TS_PRINTF_LIKE(f, a)
#endif

/* Board set-up. Runs before main() (reset handler on QEMU, a constructor on native);
 * calling it again does nothing. */
void ts_platform_init(void);

/* "qemu-mps2-an386", "qemu-mps2-an500", "native", "nucleo_f411re", "qemu-netduinoplus2", ... */
const char *ts_platform_name(void);

/* The port (the code behind this header) and the state of its clock set-up, for `@boot`
 * (docs/protocol.md): e.g. "stm32f4" and "hse_pll", or "skipped_under_qemu" where an
 * emulated build leaves out what the emulator lacks. NULL where there is nothing to say: the
 * defaults (boards/runtime/src/ts_port_info.c) are weak and return NULL, so `@boot` of the
 * QEMU mps2 and native targets has no such fields. */
const char *ts_platform_port(void);
const char *ts_platform_clock(void);

/* ---- cycle counter -------------------------------------------------------------------
 * ts_cycles() is a free-running 32-bit counter (it wraps; subtract two readings as uint32_t);
 * ts_cycles64() does not wrap in practice. ts_cycle_counter_name() says what it counts, for
 * reports:
 *   "systick-icount"  QEMU under -icount: executed instructions (CPI 1), deterministic run to
 *                     run. Derived from SysTick at the 25 MHz core clock, which ticks
 *                     instructions * 2^shift / 40 times; the shift is measured at boot
 *                     (ts_icount_shift()). QEMU's DWT CYCCNT reads 0, so it is not used.
 *   "systick"         QEMU without -icount: raw SysTick ticks (host-speed dependent).
 *   "clock_gettime"   native: nanoseconds of CLOCK_MONOTONIC.
 *   "dwt"             a real Cortex-M3/M4/M7: DWT CYCCNT, core clock cycles.
 *   "timer"           a microsecond timer (RP2040: no DWT on the Cortex-M0+).
 *   "ccount"          the ESP32-S3's CCOUNT, core clock cycles.
 * ts_cycles_hz() is the nominal rate: 25 MHz on QEMU (seconds = instructions / 25e6, i.e. a
 * 25 MHz core at CPI 1), 1e9 on native. */
uint32_t ts_cycles(void);
uint64_t ts_cycles64(void);
uint32_t ts_cycles_hz(void);
const char *ts_cycle_counter_name(void);
/* QEMU: the -icount shift found at boot, -1 without -icount; -1 on other targets. */
int ts_icount_shift(void);
/* Called at the start of every measurement window. Under -icount the SysTick period starts at
 * a virtual time that depends on how long the emulator idled waiting for the host, and each
 * reading truncates to whole ticks differently; this restarts the SysTick period at this
 * instruction, so every reading inside the window is the same from run to run. The counter
 * stays monotonic (it loses the few ticks of the restart). A no-op where the counter counts
 * cycles or time directly (DWT, native). */
void ts_cycles_align(void);

/* ---- serial link (QEMU: CMSDK UART0 at 0x40004000; native: stdin/stdout) --------------- */
void ts_uart_putc(char c);
void ts_uart_write(const char *buf, size_t len);
void ts_uart_puts(const char *s);          /* no newline added */
void ts_uart_flush(void);                  /* wait until every byte has left */
int ts_uart_getc_nonblock(void);           /* a byte 0..255, or -1 when none is waiting */
int ts_uart_getc(void);                    /* blocks; -1 only at end of input (native) */
/* Blocks for at most `cycles` counter ticks; -1 on timeout or end of input. */
int ts_uart_getc_timeout(uint32_t cycles);

/* ---- exit ------------------------------------------------------------------------------
 * Flushes the serial link and ends the program with `code` as the process exit status
 * (QEMU: semihosting SYS_EXIT_EXTENDED, so qemu-system-arm exits with it; needs
 * -semihosting-config enable=on,target=native). Returning from main() does the same. */
TS_NORETURN void ts_exit(int code);

/* ---- stack (fixed region, painted at reset on QEMU) --------------------------------------
 * Size of the stack region and the most of it ever used, in bytes; 0 where unknown (native).
 * ts_stack_ok() is 0 once the canary word at the stack's far end was overwritten. */
size_t ts_stack_size(void);
size_t ts_stack_high_water(void);
int ts_stack_ok(void);

/* ---- measurement marker ------------------------------------------------------------------
 * ts_marker(1) at the start of a measurement window (a training phase or epoch), ts_marker(0)
 * at its end; the firmware sends no serial bytes inside a window (docs/protocol.md). This is
 * where a board drives its GPIO marker pin for a power monitor (Joulescope, PPK2). The
 * default (boards/runtime/src/ts_marker.c) is a weak no-op: a board port overrides it by
 * defining ts_marker() itself. */
void ts_marker(int on);

/* ---- formatting: one implementation on every target, no heap ------------------------------
 * Conversions: d i u x X o c s p % f F e E g G; flags - + space # 0; width and precision
 * (also *); length hh h l ll z t j. Floats are printed from double with at most 17
 * significant digits (correct for the values a report prints; not a full dtoa). */
typedef void (*ts_putc_fn)(char c, void *ctx);
int ts_vformat(ts_putc_fn out, void *ctx, const char *fmt, va_list ap);
int ts_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int ts_snprintf(char *buf, size_t size, const char *fmt, ...) TS_PRINTF_LIKE(3, 4);
int ts_vprintf(const char *fmt, va_list ap);
int ts_printf(const char *fmt, ...) TS_PRINTF_LIKE(1, 2);

#ifdef __cplusplus
}
#endif

#endif /* TS_PLATFORM_H */
