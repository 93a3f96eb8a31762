/*
 * ts_platform for the host build (PlatformIO env `native`): stdin/stdout are the serial link,
 * CLOCK_MONOTONIC nanoseconds are the cycle counter, exit() is the exit.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "ts_platform.h"

static int g_initialized;
static uint64_t g_t0_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((constructor)) static void ts_native_ctor(void)
{
    ts_platform_init();
}

void ts_platform_init(void)
{
    if (g_initialized) {
        return;
    }
    g_initialized = 1;
    g_t0_ns = now_ns();
}

const char *ts_platform_name(void)
{
    return "native";
}

uint64_t ts_cycles64(void)
{
    return now_ns() - g_t0_ns;
}

uint32_t ts_cycles(void)
{
    return (uint32_t)ts_cycles64();
}

uint32_t ts_cycles_hz(void)
{
    return 1000000000u;
}

const char *ts_cycle_counter_name(void)
{
    return "clock_gettime";
}

void ts_cycles_align(void)
{
    /* CLOCK_MONOTONIC has no tick phase to align */
}

int ts_icount_shift(void)
{
    return -1;
}

void ts_uart_putc(char c)
{
    fputc((unsigned char)c, stdout);
    if (c == '\n') {
        fflush(stdout);
    }
}

void ts_uart_write(const char *buf, size_t len)
{
    fwrite(buf, 1, len, stdout);
    if (len > 0 && buf[len - 1] == '\n') {
        fflush(stdout);
    }
}

void ts_uart_puts(const char *s)
{
    fputs(s, stdout);
}

void ts_uart_flush(void)
{
    fflush(stdout);
}

static int read_byte(void)
{
    unsigned char c;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, &c, 1);
        if (n == 1) {
            return c;
        }
        if (n == 0) {
            return -1;
        }
        if (errno != EINTR) {
            return -1;
        }
    }
}

static int wait_readable(int timeout_ms)
{
    struct pollfd p;
    p.fd = STDIN_FILENO;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, timeout_ms) > 0;
}

int ts_uart_getc_nonblock(void)
{
    fflush(stdout);
    return wait_readable(0) ? read_byte() : -1;
}

int ts_uart_getc(void)
{
    fflush(stdout);
    return read_byte();
}

int ts_uart_getc_timeout(uint32_t cycles)
{
    uint64_t ms = (uint64_t)cycles / 1000000u;
    fflush(stdout);
    return wait_readable(ms > 0x7fffffff ? 0x7fffffff : (int)ms) ? read_byte() : -1;
}

void ts_exit(int code)
{
    fflush(stdout);
    exit(code);
}

size_t ts_stack_size(void)
{
    return 0;
}

size_t ts_stack_high_water(void)
{
    return 0;
}

int ts_stack_ok(void)
{
    return 1;
}
