/* Internal to the QEMU mps2 runtime: its registers. The core's own (SysTick, NVIC, SCB) and
 * the runtime's exit statuses are the shared Cortex-M runtime's (ts_cortexm.h). */
#ifndef TS_MPS2_H
#define TS_MPS2_H

#include <stdint.h>

#include "ts_cortexm.h"

/* CMSDK APB UART0 */
#define TS_UART0_BASE 0x40004000u
#define TS_UART_DATA (*(volatile uint32_t *)(TS_UART0_BASE + 0x00u))
#define TS_UART_STATE (*(volatile uint32_t *)(TS_UART0_BASE + 0x04u))
#define TS_UART_CTRL (*(volatile uint32_t *)(TS_UART0_BASE + 0x08u))
#define TS_UART_INTCLEAR (*(volatile uint32_t *)(TS_UART0_BASE + 0x0Cu))
#define TS_UART_BAUDDIV (*(volatile uint32_t *)(TS_UART0_BASE + 0x10u))
#define TS_UART_STATE_TXFULL 0x1u
#define TS_UART_STATE_RXFULL 0x2u
#define TS_UART_CTRL_TXEN 0x1u
#define TS_UART_CTRL_RXEN 0x2u
#define TS_UART_CTRL_RXINTEN 0x8u
#define TS_UART0_RX_IRQ 0

/* CMSDK APB TIMER0 (PCLK = SYSCLK): the wake-up alarm of ts_uart_getc_timeout() */
#define TS_TIMER0_BASE 0x40000000u
#define TS_TIMER0_CTRL (*(volatile uint32_t *)(TS_TIMER0_BASE + 0x00u))
#define TS_TIMER0_VALUE (*(volatile uint32_t *)(TS_TIMER0_BASE + 0x04u))
#define TS_TIMER0_RELOAD (*(volatile uint32_t *)(TS_TIMER0_BASE + 0x08u))
#define TS_TIMER0_INTCLEAR (*(volatile uint32_t *)(TS_TIMER0_BASE + 0x0Cu))
#define TS_TIMER_CTRL_EN 0x1u
#define TS_TIMER_CTRL_IRQEN 0x8u
#define TS_TIMER0_IRQ 8

#endif
