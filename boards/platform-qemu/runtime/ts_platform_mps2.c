/*
 * ts_platform for QEMU mps2-an386 / mps2-an500: CMSDK UART0, SysTick cycle counter,
 * semihosting exit, stack painting, and the minimal libc glue (syscalls, printf family
 * mapped onto the heap-free ts_format.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_mps2.h"
#include "ts_platform.h"

/* ---- init ------------------------------------------------------------------------------- */

static volatile uint32_t g_systick_wraps;
static uint64_t g_ticks_base; /* ticks before the last ts_cycles_align() */
static int g_initialized;
static int g_icount_shift = -1; /* -1: QEMU runs without -icount (SysTick is wall-clock) */

static uint64_t systick_ticks64(void)
{
    uint32_t hi;
    uint32_t lo;
    do {
        hi = g_systick_wraps;
        lo = TS_SYST_CVR;
    } while (hi != g_systick_wraps);
    return g_ticks_base + ((uint64_t)hi << 24) + (uint64_t)(0x00FFFFFFu - lo);
}

/*
 * Under `-icount shift=N` QEMU's virtual clock advances 2^N ns per instruction, and SysTick
 * ticks at SYSCLK (25 MHz: one tick per 40 ns), so ticks = instructions * 2^N / 40 exactly.
 * Time a loop of known length once at boot to find N; ts_cycles() then converts ticks back
 * to instructions, whatever shift the emulator was started with.
 */
#define TS_CAL_ITER 4096u /* 2 instructions per iteration */
#define TS_NS_PER_TICK (1000000000u / TS_MPS2_SYSCLK_HZ) /* 40 */
_Static_assert(1000000000u % TS_MPS2_SYSCLK_HZ == 0 && TS_NS_PER_TICK == 40u,
               "the tick->instruction conversion below assumes a 25 MHz SYSCLK");

static void spin_loop(uint32_t n)
{
    __asm__ volatile("1: subs %0, %0, #1 \n"
                     "   bne 1b          \n"
                     : "+r"(n)::"cc");
}

static void calibrate_icount(void)
{
    uint64_t t0 = systick_ticks64();
    uint64_t ticks;
    int n;
    spin_loop(TS_CAL_ITER);
    ticks = systick_ticks64() - t0;
    /* expected ticks for shift n: 2 * TS_CAL_ITER * 2^n / 40, plus a few for the reads */
    for (n = 0; n <= 12; n++) {
        uint64_t want = ((uint64_t)2u * TS_CAL_ITER << n) / TS_NS_PER_TICK;
        if (ticks * 100u >= want * 99u && ticks * 100u <= want * 102u + 100u) {
            g_icount_shift = n;
            return;
        }
    }
    g_icount_shift = -1;
}

void ts_platform_init(void)
{
    if (g_initialized) {
        return;
    }
    g_initialized = 1;
    /* UART0: TX must be enabled or TXFULL never clears and output spins forever. */
    TS_UART_BAUDDIV = 16u;
    TS_UART_CTRL = TS_UART_CTRL_TXEN | TS_UART_CTRL_RXEN;
    /* SysTick: core clock, full 24-bit range, wrap interrupt extends it to 64 bits. */
    TS_SYST_CSR = 0;
    TS_SYST_RVR = 0x00FFFFFFu;
    TS_SYST_CVR = 0;
    TS_SYST_CSR = 0x7u; /* CLKSOURCE=core | TICKINT | ENABLE */
    /* VAL reads 0 until the first tick reloads it from LOAD: wait for that (bounded). */
    for (int i = 0; i < 100000 && TS_SYST_CVR == 0u; i++) {
    }
    calibrate_icount();
}

const char *ts_platform_name(void)
{
#if defined(TS_QEMU_MPS2_AN500)
    return "qemu-mps2-an500";
#else
    return "qemu-mps2-an386";
#endif
}

/* ---- cycle counter: SysTick ------------------------------------------------------------- */

void SysTick_Handler(void)
{
    g_systick_wraps++;
}

uint64_t ts_cycles64(void)
{
    uint64_t t = systick_ticks64();
    int sh = g_icount_shift;
    /* instructions = ticks * 40 / 2^N = ticks * 5 * 2^(3 - N) */
    if (sh < 0) {
        return t;
    }
    return (sh >= 3) ? (t * 5u) >> (sh - 3) : (t * 5u) << (3 - sh);
}

void ts_cycles_align(void)
{
    uint64_t now;
    if (g_icount_shift < 0) {
        return; /* without -icount the counter is wall-clock anyway */
    }
    now = systick_ticks64();
    TS_SYST_CSR = 0x5u; /* TICKINT off: the restart must not count as a wrap */
    TS_SYST_CVR = 0u;   /* any write clears VAL; the period restarts at the next tick */
    while (TS_SYST_CVR == 0u) {
    }
    TS_SCB_ICSR = TS_SCB_ICSR_PENDSTCLR;
    g_systick_wraps = 0u;
    /* ts_cycles64() truncates ticks * 5 / 2^(N-3): a base that is a multiple of 2^(N-3) makes
     * that truncation the same for every reading in the window, whatever `now` was */
    if (g_icount_shift > 3) {
        uint64_t mask = ((uint64_t)1u << (g_icount_shift - 3)) - 1u;
        now = (now + mask) & ~mask;
    }
    g_ticks_base = now;
    TS_SYST_CSR = 0x7u;
}

int ts_icount_shift(void)
{
    return g_icount_shift;
}

uint32_t ts_cycles(void)
{
    return (uint32_t)ts_cycles64();
}

uint32_t ts_cycles_hz(void)
{
    return TS_MPS2_SYSCLK_HZ;
}

const char *ts_cycle_counter_name(void)
{
    return (g_icount_shift >= 0) ? "systick-icount" : "systick";
}

/* ---- UART0 ------------------------------------------------------------------------------ */

void ts_uart_putc(char c)
{
    while (TS_UART_STATE & TS_UART_STATE_TXFULL) {
    }
    TS_UART_DATA = (uint8_t)c;
}

void ts_uart_write(const char *buf, size_t len)
{
    while (len--) {
        ts_uart_putc(*buf++);
    }
}

void ts_uart_puts(const char *s)
{
    while (*s) {
        ts_uart_putc(*s++);
    }
}

void ts_uart_flush(void)
{
    while (TS_UART_STATE & TS_UART_STATE_TXFULL) {
    }
}

int ts_uart_getc_nonblock(void)
{
    if (TS_UART_STATE & TS_UART_STATE_RXFULL) {
        return (int)(TS_UART_DATA & 0xFFu);
    }
    return -1;
}

/* The RX and timer interrupts only wake the core from WFI; reading happens in thread mode. */
void UART0RX_IRQHandler(void)
{
    TS_UART_INTCLEAR = 0x2u;
}

void TIMER0_IRQHandler(void)
{
    TS_TIMER0_INTCLEAR = 0x1u;
}

static void enable_rx_wakeup(void)
{
    TS_UART_CTRL |= TS_UART_CTRL_RXINTEN;
    TS_NVIC_ISER0 = (1u << TS_UART0_RX_IRQ) | (1u << TS_TIMER0_IRQ);
}

/* Counter units (instructions under -icount) -> SysTick/TIMER0 ticks at SYSCLK. */
static uint64_t cycles_to_ticks(uint64_t cycles)
{
    int sh = g_icount_shift;
    if (sh < 0) {
        return cycles;
    }
    return ((sh >= 3) ? (cycles << (sh - 3)) : (cycles >> (3 - sh))) / 5u + 1u;
}

/*
 * Waiting sleeps (WFI) instead of spinning: the emulator then does not burn a host core while
 * the host is quiet, and under -icount its clock runs at real time while the core sleeps.
 * PRIMASK is set around the check, so a byte arriving just before WFI still wakes it.
 */
int ts_uart_getc(void)
{
    int c = ts_uart_getc_nonblock();
    if (c >= 0) {
        return c;
    }
    enable_rx_wakeup();
    for (;;) {
        __asm__ volatile("cpsid i" ::: "memory");
        c = ts_uart_getc_nonblock();
        if (c < 0) {
            __asm__ volatile("dsb\n wfi" ::: "memory");
        }
        __asm__ volatile("cpsie i" ::: "memory");
        if (c >= 0) {
            return c;
        }
    }
}

int ts_uart_getc_timeout(uint32_t cycles)
{
    uint64_t start = ts_cycles64();
    int c = ts_uart_getc_nonblock();
    if (c >= 0 || cycles == 0u) {
        return c;
    }
    enable_rx_wakeup();
    for (;;) {
        uint64_t elapsed;
        __asm__ volatile("cpsid i" ::: "memory");
        c = ts_uart_getc_nonblock();
        elapsed = ts_cycles64() - start;
        if (c < 0 && elapsed < cycles) {
            uint64_t ticks = cycles_to_ticks(cycles - elapsed);
            TS_TIMER0_CTRL = 0u;
            TS_TIMER0_INTCLEAR = 0x1u;
            TS_TIMER0_RELOAD = (ticks > 0xFFFFFFFFu) ? 0xFFFFFFFFu : (uint32_t)ticks;
            TS_TIMER0_VALUE = TS_TIMER0_RELOAD;
            TS_TIMER0_CTRL = TS_TIMER_CTRL_EN | TS_TIMER_CTRL_IRQEN;
            __asm__ volatile("dsb\n wfi" ::: "memory");
            TS_TIMER0_CTRL = 0u;
            TS_TIMER0_INTCLEAR = 0x1u;
        }
        __asm__ volatile("cpsie i" ::: "memory");
        if (c >= 0) {
            return c;
        }
        if (elapsed >= cycles) {
            return -1;
        }
    }
}

/* ---- semihosting exit ------------------------------------------------------------------- */

#define SEMIHOST_SYS_EXIT 0x18
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUNTIME_ERROR_UNKNOWN 0x20023u

static int semihost_call(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void ts_exit(int code)
{
    uint32_t block[2];
    ts_uart_flush();
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, block);
    /* Not reached under QEMU with semihosting; older hosts only know SYS_EXIT. */
    semihost_call(SEMIHOST_SYS_EXIT, (void *)(uintptr_t)(code == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                                                   : ADP_STOPPED_RUNTIME_ERROR_UNKNOWN));
    for (;;) {
        __asm__ volatile("wfi");
    }
}

/* ---- stack ------------------------------------------------------------------------------ */

extern uint32_t __stack_bottom[], __stack_top[];
#define TS_STACK_PAINT 0xA5A5A5A5u

void ts_mps2_paint_stack(void)
{
    uint32_t *p = __stack_bottom;
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    sp -= 16; /* leave the live frame alone */
    while (p < sp) {
        *p++ = TS_STACK_PAINT;
    }
}

size_t ts_stack_size(void)
{
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)__stack_bottom);
}

size_t ts_stack_high_water(void)
{
    const uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == TS_STACK_PAINT) {
        p++;
    }
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

int ts_stack_ok(void)
{
    return __stack_bottom[0] == TS_STACK_PAINT;
}

/* ---- libc glue: printf family without newlib stdio (which would need a heap) -------------- */

int vprintf(const char *fmt, va_list ap)
{
    return ts_vprintf(fmt, ap);
}

int printf(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = ts_vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    return ts_vsnprintf(buf, size, fmt, ap);
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = ts_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int vsprintf(char *buf, const char *fmt, va_list ap)
{
    return ts_vsnprintf(buf, (size_t)-1 >> 1, fmt, ap);
}

int sprintf(char *buf, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = ts_vsnprintf(buf, (size_t)-1 >> 1, fmt, ap);
    va_end(ap);
    return n;
}

int puts(const char *s)
{
    ts_uart_puts(s);
    ts_uart_putc('\n');
    return 1;
}

int putchar(int c)
{
    ts_uart_putc((char)c);
    return (unsigned char)c;
}

/* abort() and assert() end the program with a message instead of pulling in stdio. */
void abort(void)
{
    ts_uart_puts("\r\n!! abort()\r\n");
    ts_exit(TS_EXIT_ABORT);
}

void __assert_func(const char *file, int line, const char *func, const char *expr)
{
    ts_printf("\r\n!! assertion \"%s\" failed: %s:%d (%s)\r\n", expr, file, line,
              func ? func : "?");
    ts_exit(TS_EXIT_ABORT);
}

/* ---- newlib syscalls (only linked when something asks for them) --------------------------- */

int _write(int fd, const char *buf, int len);
int _read(int fd, char *buf, int len);
int _close(int fd);
int _fstat(int fd, struct stat *st);
int _isatty(int fd);
int _lseek(int fd, int off, int whence);
void _exit(int code);
int _kill(int pid, int sig);
int _getpid(void);

int _write(int fd, const char *buf, int len)
{
    if (fd != 1 && fd != 2) {
        errno = EBADF;
        return -1;
    }
    ts_uart_write(buf, (size_t)len);
    return len;
}

int _read(int fd, char *buf, int len)
{
    int n = 0;
    if (fd != 0) {
        errno = EBADF;
        return -1;
    }
    while (n < len) {
        int c = (n == 0) ? ts_uart_getc() : ts_uart_getc_nonblock();
        if (c < 0) {
            break;
        }
        buf[n++] = (char)c;
        if (c == '\n') {
            break;
        }
    }
    return n;
}

int _close(int fd)
{
    (void)fd;
    return -1;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFCHR;
    return 0;
}

int _isatty(int fd)
{
    (void)fd;
    return 1;
}

int _lseek(int fd, int off, int whence)
{
    (void)fd;
    (void)off;
    (void)whence;
    return 0;
}

void _exit(int code)
{
    ts_exit(code);
}

int _kill(int pid, int sig)
{
    (void)pid;
    (void)sig;
    errno = EINVAL;
    return -1;
}

int _getpid(void)
{
    return 1;
}
