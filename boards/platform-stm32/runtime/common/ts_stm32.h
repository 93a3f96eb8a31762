/*
 * Internal to the STM32 ports (boards/platform-stm32): what the families share, and the
 * hooks each family (runtime/f4, runtime/l4) provides to the common part (runtime/common).
 *
 * The common part is the serial link above the register level (an interrupt-driven receive
 * ring, so no byte is lost while the app is busy: the F4's USART and the L4's LPUART hold one
 * received byte), the counter (DWT CYCCNT on hardware, extended to 64 bits by a SysTick wrap
 * observer; QEMU's SysTick under -icount in an emulated build), the marker GPIO, ts_exit and
 * the board's name. GPIO registers have the same layout on both families (F4: RM0383 / RM0368
 * / RM0390 / RM0090, L4+: RM0432, chapter "General-purpose I/Os (GPIO)", GPIO registers):
 * MODER 0x00 (2 bits a pin: 01 output, 10 alternate function), OSPEEDR 0x08 (2 bits a pin),
 * PUPDR 0x0C (2 bits a pin: 01 pull-up), BSRR 0x18 (bits 0-15 set, 16-31 reset),
 * AFRL 0x20 / AFRH 0x24 (4 bits a pin).
 */
#ifndef TS_STM32_H
#define TS_STM32_H

#include <stdint.h>

#include "ts_cortexm.h"

#if defined(TS_STM32_EMULATED)
#define TS_STM32_IS_EMULATED 1
#else
#define TS_STM32_IS_EMULATED 0
#endif

/* Bounded waits: no ready bit is waited for longer than this many polls (a few ms even at
 * the reset clock). QEMU models no RCC (every read is 0), so an unbounded wait would hang. */
#define TS_STM32_WAIT_POLLS 200000u

/* Polls `reg & mask` until it equals `want`, at most TS_STM32_WAIT_POLLS times; 1 if it did. */
int ts_stm32_wait(volatile uint32_t *reg, uint32_t mask, uint32_t want);

/* GPIO: `base` is the port's base address (the family header's TS_GPIO(port)). */
#define TS_GPIO_MODER(base) TS_REG32((base) + 0x00u)
#define TS_GPIO_OSPEEDR(base) TS_REG32((base) + 0x08u)
#define TS_GPIO_PUPDR(base) TS_REG32((base) + 0x0Cu)
#define TS_GPIO_BSRR(base) TS_REG32((base) + 0x18u)
#define TS_GPIO_AFR(base, pin) TS_REG32((base) + ((pin) < 8u ? 0x20u : 0x24u))
void ts_stm32_gpio_output(uint32_t base, uint32_t pin);
void ts_stm32_gpio_af(uint32_t base, uint32_t pin, uint32_t af, int pull_up);

/* ---- what each family provides --------------------------------------------------------- */

/* Clock set-up to the board's full speed, with bounded waits; returns the state for @boot
 * ("hse_pll", "msi_pll", "hsi", ... or "skipped_under_qemu") and sets the core clock. */
const char *ts_stm32_clock_init(uint32_t *hclk_hz);
/* The board's serial port at 115200 8N1 (pins, clock, baud rate from the peripheral clock,
 * receive interrupt on). */
void ts_stm32_serial_init(uint32_t hclk_hz);
void ts_stm32_serial_tx(uint8_t byte); /* waits until the data register is free */
void ts_stm32_serial_drain(void);      /* waits until the last byte has left (TC) */
/* The marker pin as a push-pull output, low. */
void ts_stm32_marker_init(void);
/* The family name for @boot ("stm32f4", "stm32l4"), the board's name, the marker pin. */
extern const char ts_stm32_port_name[];
extern const char ts_stm32_board_name[];
extern const uint32_t ts_stm32_marker_gpio;
extern const uint32_t ts_stm32_marker_pin;

/* ---- what the common part provides to the families ------------------------------------- */

/* A received byte, from the family's serial interrupt. */
void ts_stm32_rx_push(uint8_t byte);
/* An overrun (a byte lost before the interrupt could read it), from the same interrupt. */
void ts_stm32_rx_overrun(void);

/* The counter: DWT on hardware, SysTick under -icount in an emulated build
 * (ts_stm32_counter.c). */
void ts_stm32_counter_init(uint32_t hclk_hz);

#endif
