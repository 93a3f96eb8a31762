/*
 * ts_platform.h for ESP-IDF: esp32-s3 (ESP32-S3-DevKitC-1, Xtensa LX7, one core used).
 *
 * NOT BUILT on this project's machines: ESP-IDF and its toolchain come from PlatformIO's
 * registry (stock PlatformIO with internet: `pio run -e esp32-s3`). Written against the
 * documented ESP-IDF 5 API only: usb_serial_jtag_driver_install / _read_bytes /
 * _write_bytes (driver/usb_serial_jtag.h), esp_cpu_get_cycle_count (esp_cpu.h),
 * esp_timer_get_time (esp_timer.h), gpio_reset_pin / gpio_set_direction / gpio_set_level
 * (driver/gpio.h), vTaskDelay (FreeRTOS).
 *
 *   serial  the S3's USB Serial/JTAG (the board's "USB" connector, 303a:1001)
 *   counter "ccount": CCOUNT, core cycles at the CPU clock (240 MHz), 32 bits (18 s); the
 *           64-bit count takes its high word from esp_timer's microseconds
 *   marker  GPIO TS_MARKER_GPIO (default 7)
 *   exit    the task sleeps (ESP-IDF owns main; app_main runs the app)
 *
 * scripts/ts_port.py compiles this file with boards/runtime and boards/ports/common for the envs that set
 * `custom_ts_port = espidf`, and defines TS_FRAMEWORK_MAIN and TS_BOARD_NAME.
 */
#include <stdint.h>
#include <string.h>

#include "driver/gpio.h"
#include "driver/usb_serial_jtag.h"
#include "esp_cpu.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#include "ts_platform.h"

#ifndef TS_MARKER_GPIO
#define TS_MARKER_GPIO 7
#endif
#ifndef TS_BOARD_NAME
#define TS_BOARD_NAME "esp32-s3"
#endif
#ifdef CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ
#define TS_CPU_HZ ((uint32_t)CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ * 1000000u)
#else
#define TS_CPU_HZ 240000000u
#endif

int ts_app_main(void);

void ts_platform_init(void)
{
    static int done;
    usb_serial_jtag_driver_config_t cfg = USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT();
    if (done) {
        return;
    }
    done = 1;
    usb_serial_jtag_driver_install(&cfg);
    gpio_reset_pin(TS_MARKER_GPIO);
    gpio_set_direction(TS_MARKER_GPIO, GPIO_MODE_OUTPUT);
    gpio_set_level(TS_MARKER_GPIO, 0);
}

const char *ts_platform_name(void)
{
    return TS_BOARD_NAME;
}

const char *ts_platform_port(void)
{
    return "esp-idf";
}

uint32_t ts_cycles(void)
{
    return (uint32_t)esp_cpu_get_cycle_count();
}

/* CCOUNT wraps every 2^32 / 240 MHz = 17.9 s: esp_timer's microseconds say how many times. */
uint64_t ts_cycles64(void)
{
    uint32_t lo = ts_cycles();
    uint64_t approx = (uint64_t)esp_timer_get_time() * (TS_CPU_HZ / 1000000u);
    uint64_t high = (approx - lo + 0x80000000ull) >> 32;
    return (high << 32) | lo;
}

uint32_t ts_cycles_hz(void)
{
    return TS_CPU_HZ;
}

const char *ts_cycle_counter_name(void)
{
    return "ccount";
}

void ts_uart_write(const char *buf, size_t len)
{
    while (len > 0) {
        int n = usb_serial_jtag_write_bytes(buf, len, portMAX_DELAY);
        if (n <= 0) {
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void ts_uart_flush(void)
{
    vTaskDelay(pdMS_TO_TICKS(5)); /* the driver sends from its ring buffer on its own */
}

int ts_uart_getc_nonblock(void)
{
    uint8_t b;
    return usb_serial_jtag_read_bytes(&b, 1, 0) == 1 ? (int)b : -1;
}

int ts_uart_getc(void)
{
    uint8_t b;
    while (usb_serial_jtag_read_bytes(&b, 1, portMAX_DELAY) != 1) {
    }
    return (int)b;
}

int ts_uart_getc_timeout(uint32_t cycles)
{
    uint8_t b;
    TickType_t ticks = pdMS_TO_TICKS((uint64_t)cycles * 1000u / TS_CPU_HZ) + 1;
    return usb_serial_jtag_read_bytes(&b, 1, ticks) == 1 ? (int)b : -1;
}

void ts_exit(int code)
{
    (void)code;
    ts_uart_flush();
    for (;;) {
        vTaskDelay(portMAX_DELAY);
    }
}

void ts_marker(int on)
{
    gpio_set_level(TS_MARKER_GPIO, on ? 1 : 0);
}

void app_main(void)
{
    ts_platform_init();
    ts_exit(ts_app_main());
}
