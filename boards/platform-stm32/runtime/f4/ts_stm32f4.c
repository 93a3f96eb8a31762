/*
 * The STM32F4 port: NUCLEO-F411RE (100 MHz), NUCLEO-F401RE (84 MHz), NUCLEO-F446RE (180 MHz),
 * and the same code under QEMU netduinoplus2 (an STM32F405) as the emulated board.
 *
 *   clock   HSE in bypass (the 8 MHz MCO of the Nucleo's ST-LINK) -> PLL -> the chip's full
 *           speed, with flash wait states, the voltage scale (and the F446's over-drive);
 *           every ready bit waited for with a bound. No HSE (an old Nucleo without the MCO
 *           link): the PLL runs from HSI 16 MHz to the same speed. A PLL that does not lock
 *           leaves the core on HSI 16 MHz, and @boot says which (`clock=`). The emulated build
 *           skips the clock set-up (QEMU models no RCC) and says `clock=skipped_under_qemu`.
 *   serial  USART2 on PA2 (TX) / PA3 (RX), AF7: the ST-LINK virtual COM port of the
 *           Nucleo-64 boards (QEMU: the second -serial), 115200 8N1, receive interrupt.
 *   marker  PA8 (Arduino D7) as a push-pull output, high inside a measurement window.
 *   counter DWT CYCCNT on hardware (common/ts_stm32_counter.c); SysTick under -icount in the
 *           emulated build (boards/runtime/cortex-m/ts_cm_systick.c), since QEMU's DWT
 *           CYCCNT reads 0.
 *
 * Register addresses and bits: RM0383 (STM32F411xC/E) and the same registers in RM0368
 * (F401), RM0390 (F446), RM0090 (F405). Chapters (RM0383 numbering): 2.3 memory map,
 * 3 Flash interface (FLASH_ACR), 5 PWR, 6 RCC, 8 GPIO, 10 interrupts (vector table),
 * 19 USART. Differences between the chips are noted where they matter.
 */
#include <stdint.h>

#include "ts_platform.h"
#include "ts_stm32.h"

/* ---- the boards -------------------------------------------------------------------------- */
/* PLL: f(VCO) = f(in) / M * N (VCO input 2 MHz, VCO 100..432 MHz); SYSCLK = VCO / P;
 * PLL48CK = VCO / Q (<= 48 MHz). APB1 <= 50 MHz (F411) / 42 MHz (F401) / 45 MHz (F446). */
#if defined(TS_BOARD_NUCLEO_F411RE)
#define F4_BOARD "nucleo_f411re"
#define F4_HCLK 100000000u
#define F4_PLL_N 100u /* 2 MHz x 100 = 200 MHz VCO */
#define F4_PLL_P 2u
#define F4_PLL_Q 5u   /* 40 MHz */
#define F4_LATENCY 3u /* RM0383 3.4.1: 3 WS for 90 < HCLK <= 100 MHz at 2.7-3.6 V */
#define F4_VOS (3u << 14) /* PWR_CR VOS = 11: scale 1, up to 100 MHz (RM0383 5.4.1) */
#define F4_PPRE1 (4u << 10) /* APB1 = HCLK / 2 = 50 MHz */
#define F4_PPRE2 (0u << 13) /* APB2 = HCLK */
#define F4_APB1 (F4_HCLK / 2u)
#define F4_OVERDRIVE 0
#elif defined(TS_BOARD_NUCLEO_F401RE)
#define F4_BOARD "nucleo_f401re"
#define F4_HCLK 84000000u
#define F4_PLL_N 168u /* 336 MHz VCO */
#define F4_PLL_P 4u
#define F4_PLL_Q 7u   /* 48 MHz */
#define F4_LATENCY 2u /* RM0368 3.4.1: 2 WS for 60 < HCLK <= 84 MHz at 2.7-3.6 V */
#define F4_VOS (2u << 14) /* VOS = 10: scale 2, up to 84 MHz (RM0368 5.4.1) */
#define F4_PPRE1 (4u << 10) /* APB1 = 42 MHz */
#define F4_PPRE2 (0u << 13)
#define F4_APB1 (F4_HCLK / 2u)
#define F4_OVERDRIVE 0
#elif defined(TS_BOARD_NUCLEO_F446RE)
#define F4_BOARD "nucleo_f446re"
#define F4_HCLK 180000000u
#define F4_PLL_N 180u /* 360 MHz VCO */
#define F4_PLL_P 2u
#define F4_PLL_Q 8u   /* 45 MHz */
#define F4_LATENCY 5u /* RM0390 3.4.1: 5 WS for 150 < HCLK <= 180 MHz at 2.7-3.6 V */
#define F4_VOS (3u << 14) /* VOS = 11: scale 1 (RM0390 5.4.1) */
#define F4_PPRE1 (5u << 10) /* APB1 = HCLK / 4 = 45 MHz */
#define F4_PPRE2 (4u << 13) /* APB2 = HCLK / 2 = 90 MHz */
#define F4_APB1 (F4_HCLK / 4u)
#define F4_OVERDRIVE 1 /* 180 MHz needs the over-drive (RM0390 5.1.4) */
#elif defined(TS_BOARD_QEMU_NETDUINOPLUS2)
#define F4_BOARD "qemu-netduinoplus2"
#define F4_HCLK 168000000u /* QEMU's SYSCLK for the machine, the F405's full speed */
#define F4_APB1 (F4_HCLK / 4u)
#if !TS_STM32_IS_EMULATED
#error "qemu-netduinoplus2 is the emulated build of the STM32F4 port (TS_STM32_EMULATED)"
#endif
#else
#error "no STM32F4 board selected (TS_BOARD_*: the board JSON's extra_flags)"
#endif

const char ts_stm32_port_name[] = "stm32f4";
const char ts_stm32_board_name[] = F4_BOARD;

/* ---- registers (RM0383 2.3, Table 1: boundary addresses) ---------------------------------- */
#define RCC_BASE 0x40023800u
#define RCC_CR TS_REG32(RCC_BASE + 0x00u)      /* 6.3.1 */
#define RCC_PLLCFGR TS_REG32(RCC_BASE + 0x04u) /* 6.3.2 */
#define RCC_CFGR TS_REG32(RCC_BASE + 0x08u)    /* 6.3.3 */
#define RCC_AHB1ENR TS_REG32(RCC_BASE + 0x30u) /* GPIOAEN bit 0 */
#define RCC_APB1ENR TS_REG32(RCC_BASE + 0x40u) /* USART2EN bit 17, PWREN bit 28 */
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_HSEBYP (1u << 18)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
/* PLLCFGR: PLLM [5:0], PLLN [14:6], PLLP [17:16] (P = 2, 4, 6, 8 as 0..3), PLLSRC bit 22
 * (1 = HSE), PLLQ [27:24]; the rest (F446: PLLR [30:28]) keeps its reset value */
#define RCC_PLLCFGR_FIELDS 0x0F437FFFu
#define RCC_PLLCFGR_SRC_HSE (1u << 22)
/* CFGR: SW [1:0] (10 = PLL), SWS [3:2], HPRE [7:4], PPRE1 [12:10], PPRE2 [15:13] */
#define RCC_CFGR_SW_PLL 2u
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_PLL (2u << 2)
#define RCC_CFGR_CLEAR 0x0000FCF3u /* SW, HPRE, PPRE1, PPRE2 */
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_APB1ENR_USART2EN (1u << 17)
#define RCC_APB1ENR_PWREN (1u << 28)

#define PWR_BASE 0x40007000u
#define PWR_CR TS_REG32(PWR_BASE + 0x00u)  /* 5.4.1: VOS [15:14]; F446: ODEN 16, ODSWEN 17 */
#define PWR_CSR TS_REG32(PWR_BASE + 0x04u) /* 5.4.2: VOSRDY 14; F446: ODRDY 16, ODSWRDY 17 */
#define PWR_CR_VOS_MASK (3u << 14)
#define PWR_CR_ODEN (1u << 16)
#define PWR_CR_ODSWEN (1u << 17)
#define PWR_CSR_VOSRDY (1u << 14)
#define PWR_CSR_ODRDY (1u << 16)
#define PWR_CSR_ODSWRDY (1u << 17)

#define FLASH_ACR TS_REG32(0x40023C00u) /* 3.8.1: LATENCY [3:0], PRFTEN 8, ICEN 9, DCEN 10 */
#define FLASH_ACR_CACHES ((1u << 8) | (1u << 9) | (1u << 10))

#define GPIOA_BASE 0x40020000u /* 8.4: the layout is common/ts_stm32.h's */

#define USART2_BASE 0x40004400u
#define USART2_SR TS_REG32(USART2_BASE + 0x00u)  /* 19.6.1: ORE 3, RXNE 5, TC 6, TXE 7 */
#define USART2_DR TS_REG32(USART2_BASE + 0x04u)  /* 19.6.2 */
#define USART2_BRR TS_REG32(USART2_BASE + 0x08u) /* 19.6.3: f(APB1) / baud with OVER8 = 0 */
#define USART2_CR1 TS_REG32(USART2_BASE + 0x0Cu) /* 19.6.4: RE 2, TE 3, RXNEIE 5, UE 13 */
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TC (1u << 6)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_ENABLE ((1u << 13) | (1u << 5) | (1u << 3) | (1u << 2))
#define USART2_IRQ 38u /* 10.2, Table 37: position 38 on every F4 */

#define TS_BAUD 115200u

const uint32_t ts_stm32_marker_gpio = GPIOA_BASE;
const uint32_t ts_stm32_marker_pin = 8u; /* PA8 = Arduino D7 on the Nucleo-64 boards */

/* ---- vector table: 97 IRQs (the F446 has the most; 0..96); USART2 at 38 ------------------- */

void USART2_IRQHandler(void);

__attribute__((section(".isr_vector"), used)) const ts_vector_t ts_vector_table[16 + 97] = {
    TS_CM_SYSTEM_VECTORS,
    TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, /* 0-31 */
    Default_Handler, Default_Handler, Default_Handler,                  /* 32-34 */
    Default_Handler, Default_Handler, Default_Handler,                  /* 35-37 */
    USART2_IRQHandler,                                                  /* 38 */
    TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, /* 39-70 */
    TS_CM_DEFAULT_8, TS_CM_DEFAULT_8, TS_CM_DEFAULT_8,                  /* 71-94 */
    Default_Handler, Default_Handler,                                   /* 95-96 */
};

/* ---- clock ------------------------------------------------------------------------------- */

static uint32_t g_apb1_hz = 16000000u; /* HSI after reset, no prescaler */

#if TS_STM32_IS_EMULATED

const char *ts_stm32_clock_init(uint32_t *hclk_hz)
{
    *hclk_hz = F4_HCLK;
    g_apb1_hz = F4_APB1;
    return "skipped_under_qemu";
}

#else

#define F4_PLL_FIELDS(m, src)                                                               \
    ((m) | (F4_PLL_N << 6) | ((F4_PLL_P / 2u - 1u) << 16) | (src) | (F4_PLL_Q << 24))

const char *ts_stm32_clock_init(uint32_t *hclk_hz)
{
    const char *state = "hse_pll";
    uint32_t m = 4u; /* 8 MHz HSE / 4 = 2 MHz */
    uint32_t src = RCC_PLLCFGR_SRC_HSE;
    *hclk_hz = 16000000u; /* HSI until the switch below succeeds */

    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR; /* the write must land before PWR is touched */
    /* VOS can only change while the PLL is off; it applies once the PLL runs */
    PWR_CR = (PWR_CR & ~PWR_CR_VOS_MASK) | F4_VOS;

    RCC_CR |= RCC_CR_HSEBYP; /* the ST-LINK's MCO drives OSC_IN: bypass, set before HSEON */
    RCC_CR |= RCC_CR_HSEON;
    if (!ts_stm32_wait(&RCC_CR, RCC_CR_HSERDY, RCC_CR_HSERDY)) {
        RCC_CR &= ~RCC_CR_HSEON;
        RCC_CR &= ~RCC_CR_HSEBYP;
        m = 8u; /* HSI 16 MHz / 8 = 2 MHz: the same PLL settings give the same speed */
        src = 0u;
        state = "hsi_pll";
    }
    RCC_PLLCFGR = (RCC_PLLCFGR & ~RCC_PLLCFGR_FIELDS) | F4_PLL_FIELDS(m, src);
    RCC_CR |= RCC_CR_PLLON;
    if (!ts_stm32_wait(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY) ||
        !ts_stm32_wait(&PWR_CSR, PWR_CSR_VOSRDY, PWR_CSR_VOSRDY)) {
        return "hsi_pll_timeout";
    }
#if F4_OVERDRIVE
    PWR_CR |= PWR_CR_ODEN;
    if (!ts_stm32_wait(&PWR_CSR, PWR_CSR_ODRDY, PWR_CSR_ODRDY)) {
        return "hsi_overdrive_timeout";
    }
    PWR_CR |= PWR_CR_ODSWEN;
    if (!ts_stm32_wait(&PWR_CSR, PWR_CSR_ODSWRDY, PWR_CSR_ODSWRDY)) {
        return "hsi_overdrive_timeout";
    }
#endif
    /* wait states before the clock goes up; read back: the write takes effect when it reads */
    FLASH_ACR = F4_LATENCY | FLASH_ACR_CACHES;
    if ((FLASH_ACR & 0xFu) != F4_LATENCY) {
        return "hsi_flash_latency_failed";
    }
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_CLEAR) | F4_PPRE1 | F4_PPRE2 | RCC_CFGR_SW_PLL;
    if (!ts_stm32_wait(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL)) {
        RCC_CFGR &= ~RCC_CFGR_CLEAR; /* back to HSI without prescalers */
        return "hsi_switch_timeout";
    }
    *hclk_hz = F4_HCLK;
    g_apb1_hz = F4_APB1;
    return state;
}

#endif

/* ---- USART2 ------------------------------------------------------------------------------ */

void ts_stm32_serial_init(uint32_t hclk_hz)
{
    (void)hclk_hz;
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    RCC_APB1ENR |= RCC_APB1ENR_USART2EN;
    (void)RCC_APB1ENR;
    ts_stm32_gpio_af(GPIOA_BASE, 2u, 7u, 0); /* PA2 USART2_TX, AF7 */
    ts_stm32_gpio_af(GPIOA_BASE, 3u, 7u, 1); /* PA3 USART2_RX, AF7, pulled up (idle high) */
    USART2_BRR = (g_apb1_hz + TS_BAUD / 2u) / TS_BAUD;
    USART2_CR1 = USART_CR1_ENABLE; /* 8N1, TX, RX, receive interrupt */
    TS_NVIC_ISER(USART2_IRQ / 32u) = 1u << (USART2_IRQ % 32u);
}

/* Reading SR then DR clears RXNE and ORE (19.6.1). */
void USART2_IRQHandler(void)
{
    uint32_t sr = USART2_SR;
    if (sr & (USART_SR_RXNE | USART_SR_ORE)) {
        uint8_t byte = (uint8_t)USART2_DR;
        if (sr & USART_SR_ORE) {
            ts_stm32_rx_overrun();
        }
        if (sr & USART_SR_RXNE) {
            ts_stm32_rx_push(byte);
        }
    }
}

void ts_stm32_serial_tx(uint8_t byte)
{
    while (!(USART2_SR & USART_SR_TXE)) {
    }
    USART2_DR = byte;
}

void ts_stm32_serial_drain(void)
{
    while (!(USART2_SR & USART_SR_TC)) {
    }
}

/* ---- marker ------------------------------------------------------------------------------ */

void ts_stm32_marker_init(void)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    (void)RCC_AHB1ENR;
    ts_stm32_gpio_output(GPIOA_BASE, ts_stm32_marker_pin);
}
