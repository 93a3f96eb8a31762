/*
 * tinysift firmware app (placeholder until the command loop of the serial protocol lands).
 *
 * Prints one boot line, then waits briefly (0.2 s of counter time) for input: if the host sends lines, each is echoed
 * back as "echo: <line>" and "exit N" ends the program with status N. Without input it exits
 * with status 0. On QEMU the exit status is QEMU's (semihosting); see docs/firmware-build.md.
 */
#include <stdint.h>
#include <string.h>

#include "ts_platform.h"
#include "ts_version.h"

#define LINE_MAX_LEN 128

static int parse_int(const char *s)
{
    int v = 0;
    int neg = 0;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
    }
    return neg ? -v : v;
}

int main(void)
{
    char line[LINE_MAX_LEN];
    size_t n = 0;
    uint32_t t0 = ts_cycles();
    uint32_t boot_cycles;
    int c;

    ts_printf("tinysift-fw boot engine=%d platform=%s counter=%s hz=%lu icount_shift=%d\n",
              ts_engine_version(), ts_platform_name(), ts_cycle_counter_name(),
              (unsigned long)ts_cycles_hz(), ts_icount_shift());
    boot_cycles = ts_cycles() - t0;
    ts_printf("tinysift-fw cycles boot_line=%lu stack=%lu/%lu\n", (unsigned long)boot_cycles,
              (unsigned long)ts_stack_high_water(), (unsigned long)ts_stack_size());

    /* Input must start within 0.2 s (counter time; QEMU sleeps in WFI meanwhile). */
    c = ts_uart_getc_timeout(ts_cycles_hz() / 5u);
    while (c >= 0) {
        if (c == '\r') {
            /* ignore */
        } else if (c == '\n') {
            line[n] = '\0';
            if (strncmp(line, "exit", 4) == 0) {
                ts_printf("tinysift-fw bye\n");
                return parse_int(line + 4 + (line[4] == ' '));
            }
            ts_printf("echo: %s\n", line);
            n = 0;
        } else if (n + 1 < sizeof line) {
            line[n++] = (char)c;
        }
        c = ts_uart_getc();
    }
    return 0;
}
