/*
 * ts_platform.h for the Arduino framework: nano33ble (Arduino Mbed OS Nano core, nRF52840,
 * Cortex-M4F) and pico (Arduino Mbed OS RP2040 core, Cortex-M0+).
 *
 * NOT BUILT on this project's machines: the Arduino cores come from PlatformIO's registry
 * (stock PlatformIO with internet: `pio run -e nano33ble`). Written against the documented
 * Arduino API only: Serial.begin / available / read / write / flush, micros(), pinMode /
 * digitalWrite, yield(); plus the Cortex-M4's DWT registers on the Nano (Armv7-M ARM,
 * C1.8: DEMCR.TRCENA, DWT_CTRL.CYCCNTENA, DWT_CYCCNT).
 *
 *   serial  Serial: the USB CDC port, 115200 (the baud rate is ignored by USB CDC)
 *   counter nano33ble: "dwt", core cycles at SystemCoreClock (64 MHz); pico (no DWT on the
 *           M0+): "timer", micros() at 1 MHz. Both extended to 64 bits by observation.
 *   marker  digital pin TS_MARKER_PIN (default 7: D7 on the Nano, GP7 on the Pico)
 *   exit    the core halts in a loop (the framework owns main(); setup() runs the app)
 *   stack   unknown to the port: ts_stack_size() is 0 (the framework's linker script)
 *
 * scripts/ts_port.py compiles this file with boards/runtime and boards/ports/common for the envs that set
 * `custom_ts_port = arduino`, and defines TS_FRAMEWORK_MAIN (the app's entry is then
 * ts_app_main()) and TS_BOARD_NAME (the env's name).
 */
#include <Arduino.h>

#include <stdint.h>
#include <string.h>

extern "C" {
#include "ts_platform.h"
int ts_app_main(void);
}

#ifndef TS_MARKER_PIN
#define TS_MARKER_PIN 7
#endif
#ifndef TS_BOARD_NAME
#define TS_BOARD_NAME "arduino"
#endif

#if defined(ARDUINO_ARCH_NRF52840) || defined(NRF52840_XXAA)
#define TS_ARDUINO_DWT 1 /* Cortex-M4F: count core cycles */
#define TS_REG(addr) (*(volatile uint32_t *)(addr))
#else
#define TS_ARDUINO_DWT 0 /* RP2040's Cortex-M0+ has no DWT cycle counter */
#endif

static uint32_t g_last;
static uint32_t g_high;

extern "C" {

void ts_platform_init(void)
{
    static int done;
    if (done) {
        return;
    }
    done = 1;
    Serial.begin(115200);
    while (!Serial) { /* USB CDC: wait for the host to open the port */
        yield();
    }
    pinMode(TS_MARKER_PIN, OUTPUT);
    digitalWrite(TS_MARKER_PIN, LOW);
#if TS_ARDUINO_DWT
    TS_REG(0xE000EDFCu) |= 1u << 24; /* DEMCR.TRCENA */
    TS_REG(0xE0001004u) = 0u;        /* DWT_CYCCNT */
    TS_REG(0xE0001000u) |= 1u;       /* DWT_CTRL.CYCCNTENA */
#endif
}

const char *ts_platform_name(void)
{
    return TS_BOARD_NAME;
}

const char *ts_platform_port(void)
{
    return "arduino";
}

uint32_t ts_cycles(void)
{
#if TS_ARDUINO_DWT
    return TS_REG(0xE0001004u);
#else
    return (uint32_t)micros();
#endif
}

uint64_t ts_cycles64(void)
{
    uint32_t now = ts_cycles(); /* wraps after 67 s (DWT at 64 MHz) or 71 min (micros) */
    if (now < g_last) {
        g_high++;
    }
    g_last = now;
    return ((uint64_t)g_high << 32) | now;
}

uint32_t ts_cycles_hz(void)
{
#if TS_ARDUINO_DWT
    return SystemCoreClock;
#else
    return 1000000u;
#endif
}

const char *ts_cycle_counter_name(void)
{
    return TS_ARDUINO_DWT ? "dwt" : "timer";
}

void ts_uart_write(const char *buf, size_t len)
{
    Serial.write((const uint8_t *)buf, len);
}

void ts_uart_flush(void)
{
    Serial.flush();
}

int ts_uart_getc_nonblock(void)
{
    return Serial.available() > 0 ? Serial.read() : -1;
}

int ts_uart_getc(void)
{
    int c;
    while ((c = ts_uart_getc_nonblock()) < 0) {
        yield();
    }
    return c;
}

int ts_uart_getc_timeout(uint32_t cycles)
{
    uint64_t start = ts_cycles64();
    int c;
    while ((c = ts_uart_getc_nonblock()) < 0) {
        if (ts_cycles64() - start >= cycles) {
            return -1;
        }
        yield();
    }
    return c;
}

void ts_exit(int code)
{
    (void)code;
    Serial.flush();
    for (;;) {
        yield();
    }
}

void ts_marker(int on)
{
    digitalWrite(TS_MARKER_PIN, on ? HIGH : LOW);
}

} /* extern "C" */

void setup()
{
    ts_platform_init();
    ts_exit(ts_app_main());
}

void loop()
{
}
