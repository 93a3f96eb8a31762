/*
 * The STM32L4+ port: NUCLEO-L4R5ZI (STM32L4R5ZI, the MLPerf Tiny reference board), 120 MHz.
 * Built and size-checked on this project's machines; not run here (QEMU has no L4+ machine).
 *
 *   clock   MSI 4 MHz (the reset clock) -> PLL (M 1, N 60, R 2) -> 120 MHz, in voltage
 *           range 1 boost mode with 5 flash wait states; every ready bit waited for with a
 *           bound. A PLL that does not lock leaves the core on MSI 4 MHz (@boot `clock=`).
 *   serial  LPUART1 on PG7 (TX) / PG8 (RX), AF8: the ST-LINK virtual COM port of the
 *           Nucleo-144. Port G pins 2..15 are powered from VDDIO2, which PWR must declare
 *           valid (IOSV) before they work. 115200 8N1 from PCLK1 = 120 MHz, receive interrupt.
 *   marker  PF13 (Arduino D7 on the Nucleo-144 Zio connector), push-pull, high inside a
 *           measurement window.
 *   counter DWT CYCCNT (common/ts_stm32_counter.c).
 *
 * Every register address and bit below cites RM0432 (STM32L4+ Series reference manual,
 * Rev 9): chapter 2 (memory map), 3 (FLASH), 5 (PWR), 6 (RCC), 8 (GPIO), 14 (NVIC vector
 * table) and the LPUART chapter ("LPUART registers"). Written from the manual's register
 * descriptions; check them against the PDF before trusting a board to them.
 */
#include <stdint.h>

#include "ts_platform.h"
#include "ts_stm32.h"

#if !defined(TS_BOARD_NUCLEO_L4R5ZI)
#error "no STM32L4+ board selected (TS_BOARD_*: the board JSON's extra_flags)"
#endif
#if TS_STM32_IS_EMULATED
#error "QEMU has no STM32L4+ machine: the L4 port is built for hardware only"
#endif

const char ts_stm32_port_name[] = "stm32l4";
const char ts_stm32_board_name[] = "nucleo_l4r5zi";

#define L4_HCLK 120000000u
#define L4_MSI_HZ 4000000u /* MSI range 6 after reset: RM0432 6.4.1, RCC_CR MSIRANGE reset value */

/* ---- RCC: RM0432 6.4, base 0x4002 1000 (2.2.2, memory map: AHB1) ------------------------- */
#define RCC_BASE 0x40021000u
#define RCC_CR TS_REG32(RCC_BASE + 0x00u)       /* 6.4.1 RCC_CR */
#define RCC_CFGR TS_REG32(RCC_BASE + 0x08u)     /* 6.4.3 RCC_CFGR */
#define RCC_PLLCFGR TS_REG32(RCC_BASE + 0x0Cu)  /* 6.4.4 RCC_PLLCFGR */
#define RCC_AHB2ENR TS_REG32(RCC_BASE + 0x4Cu)  /* 6.4.17 RCC_AHB2ENR */
#define RCC_APB1ENR1 TS_REG32(RCC_BASE + 0x58u) /* 6.4.19 RCC_APB1ENR1 */
#define RCC_APB1ENR2 TS_REG32(RCC_BASE + 0x5Cu) /* 6.4.20 RCC_APB1ENR2 */
#define RCC_CR_PLLON (1u << 24)                 /* RCC_CR PLLON */
#define RCC_CR_PLLRDY (1u << 25)                /* RCC_CR PLLRDY */
#define RCC_CFGR_SW_MASK (3u << 0)              /* RCC_CFGR SW[1:0]: 11 = PLL */
#define RCC_CFGR_SW_PLL (3u << 0)
#define RCC_CFGR_SWS_MASK (3u << 2)             /* RCC_CFGR SWS[1:0]: 11 = PLL */
#define RCC_CFGR_SWS_PLL (3u << 2)
#define RCC_CFGR_HPRE_MASK (0xFu << 4)          /* RCC_CFGR HPRE[3:0]: 0xxx /1, 1000 /2 */
#define RCC_CFGR_HPRE_DIV2 (8u << 4)
/* RCC_PLLCFGR: PLLSRC[1:0] bits 1:0 (01 = MSI), PLLM[3:0] bits 7:4 (divide by M + 1),
 * PLLN[6:0] bits 14:8, PLLREN bit 24, PLLR[1:0] bits 26:25 (00 = divide by 2) */
#define RCC_PLLCFGR_MSI_M1_N60_R2 ((1u << 0) | (0u << 4) | (60u << 8) | (1u << 24) | (0u << 25))
#define RCC_AHB2ENR_GPIOFEN (1u << 5)   /* RCC_AHB2ENR GPIOFEN */
#define RCC_AHB2ENR_GPIOGEN (1u << 6)   /* RCC_AHB2ENR GPIOGEN */
#define RCC_APB1ENR1_PWREN (1u << 28)   /* RCC_APB1ENR1 PWREN */
#define RCC_APB1ENR2_LPUART1EN (1u << 0) /* RCC_APB1ENR2 LPUART1EN */

/* ---- PWR: RM0432 5.4, base 0x4000 7000 ------------------------------------------------------ */
#define PWR_BASE 0x40007000u
#define PWR_CR1 TS_REG32(PWR_BASE + 0x00u) /* 5.4.1 PWR_CR1: VOS[1:0] bits 10:9, 01 = range 1 */
#define PWR_CR2 TS_REG32(PWR_BASE + 0x04u) /* 5.4.2 PWR_CR2: IOSV bit 9, VDDIO2 valid */
#define PWR_SR2 TS_REG32(PWR_BASE + 0x14u) /* 5.4.6 PWR_SR2: VOSF bit 10, range changing */
#define PWR_CR5 TS_REG32(PWR_BASE + 0x80u) /* 5.4 PWR_CR5: R1MODE bit 8, 0 = range 1 boost */
#define PWR_CR1_VOS_MASK (3u << 9)
#define PWR_CR1_VOS_RANGE1 (1u << 9)
#define PWR_CR2_IOSV (1u << 9)
#define PWR_SR2_VOSF (1u << 10)
#define PWR_CR5_R1MODE (1u << 8)

/* ---- FLASH: RM0432 3.7.1 FLASH_ACR, base 0x4002 2000 ---------------------------------------- */
#define FLASH_ACR TS_REG32(0x40022000u) /* LATENCY[3:0] bits 3:0, PRFTEN 8, ICEN 9, DCEN 10 */
#define FLASH_ACR_CACHES ((1u << 8) | (1u << 9) | (1u << 10))
#define L4_LATENCY 5u /* RM0432 3.3.3 (read access latency): range 1 boost, 100 < HCLK <= 120 MHz */

/* ---- GPIO: RM0432 8.5 (layout in common/ts_stm32.h), ports on AHB2 (2.2.2 memory map) -------- */
#define GPIOF_BASE 0x48001400u
#define GPIOG_BASE 0x48001800u

/* ---- LPUART1: RM0432 LPUART chapter, "LPUART registers"; base 0x4000 8000 (2.2.2) ---------- */
#define LPUART1_BASE 0x40008000u
#define LPUART1_CR1 TS_REG32(LPUART1_BASE + 0x00u) /* LPUART_CR1: UE 0, RE 2, TE 3, RXNEIE 5 */
#define LPUART1_BRR TS_REG32(LPUART1_BASE + 0x0Cu) /* LPUART_BRR: 256 * f(ck) / baud, 20 bits */
#define LPUART1_ISR TS_REG32(LPUART1_BASE + 0x1Cu) /* LPUART_ISR: ORE 3, RXNE 5, TC 6, TXE 7 */
#define LPUART1_ICR TS_REG32(LPUART1_BASE + 0x20u) /* LPUART_ICR: ORECF 3 */
#define LPUART1_RDR TS_REG32(LPUART1_BASE + 0x24u) /* LPUART_RDR */
#define LPUART1_TDR TS_REG32(LPUART1_BASE + 0x28u) /* LPUART_TDR */
#define LPUART_CR1_ENABLE ((1u << 0) | (1u << 2) | (1u << 3) | (1u << 5))
#define LPUART_ISR_ORE (1u << 3)
#define LPUART_ISR_RXNE (1u << 5)
#define LPUART_ISR_TC (1u << 6)
#define LPUART_ISR_TXE (1u << 7)
#define LPUART_ICR_ORECF (1u << 3)
#define LPUART1_IRQ 70u /* RM0432 14.3, vector table: position 70, LPUART1 global interrupt */

#define TS_BAUD 115200u

const uint32_t ts_stm32_marker_gpio = GPIOF_BASE;
const uint32_t ts_stm32_marker_pin = 13u; /* PF13 = Arduino D7 (Nucleo-144 Zio) */

/* ---- vector table: 95 IRQs (0..94, DMAMUX1_OVR last); LPUART1 at 70 ------------------------- */

void LPUART1_IRQHandler(void);

__attribute__((section(".isr_vector"), used)) const ts_vector_t ts_vector_table[16 + 95] = {
    TS_CM_SYSTEM_VECTORS,
    TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, /* 0-31 */
    TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, /* 32-63 */
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, /* 64-67 */
    Default_Handler, Default_Handler,                                   /* 68-69 */
    LPUART1_IRQHandler,                                                 /* 70 */
    TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8,                  /* 71-94 */
};

/* ---- clock ------------------------------------------------------------------------------- */

static void wait_cycles(uint32_t n)
{
    while (n--) {
        __asm__ volatile("nop");
    }
}

/* RM0432 chapter 5, "Dynamic voltage scaling management": to run above 80 MHz the main
 * regulator must be in range 1 boost mode (PWR_CR5.R1MODE = 0). The manual's sequence for
 * raising the clock: AHB prescaler to /2, R1MODE cleared, wait states raised, PLL selected,
 * then after at least 1 us the AHB prescaler back to /1. */
const char *ts_stm32_clock_init(uint32_t *hclk_hz)
{
    *hclk_hz = L4_MSI_HZ;
    RCC_APB1ENR1 |= RCC_APB1ENR1_PWREN;
    (void)RCC_APB1ENR1;
    PWR_CR1 = (PWR_CR1 & ~PWR_CR1_VOS_MASK) | PWR_CR1_VOS_RANGE1; /* range 1 (reset value) */
    if (!ts_stm32_wait(&PWR_SR2, PWR_SR2_VOSF, 0u)) {
        return "msi_vos_timeout";
    }
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_HPRE_MASK) | RCC_CFGR_HPRE_DIV2;
    PWR_CR5 &= ~PWR_CR5_R1MODE;
    FLASH_ACR = (FLASH_ACR & ~0xFu) | L4_LATENCY | FLASH_ACR_CACHES;
    if ((FLASH_ACR & 0xFu) != L4_LATENCY) {
        RCC_CFGR &= ~RCC_CFGR_HPRE_MASK;
        return "msi_flash_latency_failed";
    }
    RCC_CR &= ~RCC_CR_PLLON; /* PLLCFGR may only change with the PLL off and unlocked */
    if (!ts_stm32_wait(&RCC_CR, RCC_CR_PLLRDY, 0u)) {
        RCC_CFGR &= ~RCC_CFGR_HPRE_MASK;
        return "msi_pll_busy";
    }
    RCC_PLLCFGR = RCC_PLLCFGR_MSI_M1_N60_R2; /* 4 MHz x 60 = 240 MHz VCO, / 2 = 120 MHz */
    RCC_CR |= RCC_CR_PLLON;
    if (!ts_stm32_wait(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
        RCC_CFGR &= ~RCC_CFGR_HPRE_MASK;
        return "msi_pll_timeout";
    }
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_PLL;
    if (!ts_stm32_wait(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL)) {
        RCC_CFGR &= ~(RCC_CFGR_SW_MASK | RCC_CFGR_HPRE_MASK);
        return "msi_switch_timeout";
    }
    wait_cycles(200u); /* >= 1 us at HCLK = 60 MHz */
    RCC_CFGR &= ~RCC_CFGR_HPRE_MASK;
    *hclk_hz = L4_HCLK;
    return "msi_pll";
}

/* ---- LPUART1 ----------------------------------------------------------------------------- */

void ts_stm32_serial_init(uint32_t hclk_hz)
{
    RCC_APB1ENR1 |= RCC_APB1ENR1_PWREN;
    (void)RCC_APB1ENR1;
    PWR_CR2 |= PWR_CR2_IOSV; /* PG2..PG15 run from VDDIO2 (tied to VDD on the Nucleo) */
    RCC_AHB2ENR |= RCC_AHB2ENR_GPIOGEN;
    RCC_APB1ENR2 |= RCC_APB1ENR2_LPUART1EN; /* kernel clock: PCLK1 (RCC_CCIPR reset value) */
    (void)RCC_APB1ENR2;
    ts_stm32_gpio_af(GPIOG_BASE, 7u, 8u, 0); /* PG7 LPUART1_TX, AF8 */
    ts_stm32_gpio_af(GPIOG_BASE, 8u, 8u, 1); /* PG8 LPUART1_RX, AF8, pulled up */
    LPUART1_CR1 = 0u; /* BRR is writable only while UE = 0 */
    /* PCLK1 = HCLK (APB1 prescaler /1 from reset); BRR must be >= 0x300 (4 MHz: 8889) */
    LPUART1_BRR = (uint32_t)(((uint64_t)hclk_hz * 256u + TS_BAUD / 2u) / TS_BAUD);
    LPUART1_CR1 = LPUART_CR1_ENABLE; /* 8N1, TX, RX, receive interrupt */
    TS_NVIC_ISER(LPUART1_IRQ / 32u) = 1u << (LPUART1_IRQ % 32u);
}

void LPUART1_IRQHandler(void)
{
    uint32_t isr = LPUART1_ISR;
    if (isr & LPUART_ISR_ORE) {
        LPUART1_ICR = LPUART_ICR_ORECF;
        ts_stm32_rx_overrun();
    }
    if (isr & LPUART_ISR_RXNE) {
        ts_stm32_rx_push((uint8_t)LPUART1_RDR); /* reading RDR clears RXNE */
    }
}

void ts_stm32_serial_tx(uint8_t byte)
{
    while (!(LPUART1_ISR & LPUART_ISR_TXE)) {
    }
    LPUART1_TDR = byte;
}

void ts_stm32_serial_drain(void)
{
    while (!(LPUART1_ISR & LPUART_ISR_TC)) {
    }
}

/* ---- marker ------------------------------------------------------------------------------ */

void ts_stm32_marker_init(void)
{
    RCC_AHB2ENR |= RCC_AHB2ENR_GPIOFEN;
    (void)RCC_AHB2ENR;
    ts_stm32_gpio_output(GPIOF_BASE, ts_stm32_marker_pin);
}
