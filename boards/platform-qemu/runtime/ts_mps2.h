/* Internal to the QEMU mps2 runtime: registers and start-up hooks. */
#ifndef TS_MPS2_H
#define TS_MPS2_H

#include <stdint.h>

/* Exit statuses the runtime itself uses (main's return value is passed through as is). */
#define TS_EXIT_FAULT 3     /* HardFault / MemManage / BusFault / UsageFault */
#define TS_EXIT_STRAY_IRQ 4 /* an interrupt without a handler */
#define TS_EXIT_ABORT 6     /* abort() or a failed assert() */

/* SYSCLK of the QEMU mps2 models (25 MHz); SysTick with CLKSOURCE=1 runs at this rate. */
#ifndef TS_MPS2_SYSCLK_HZ
#define TS_MPS2_SYSCLK_HZ 25000000u
#endif

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

/* SysTick and NVIC */
#define TS_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define TS_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define TS_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define TS_NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define TS_SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define TS_SCB_ICSR_PENDSTCLR (1u << 25)

void ts_mps2_paint_stack(void);

#endif
