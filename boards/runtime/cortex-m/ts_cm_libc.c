/*
 * libc glue for every bare-metal Cortex-M port: the printf family, puts and putchar mapped
 * onto the heap-free formatter (boards/runtime/src/ts_format.c) and the port's serial port;
 * abort() and assert() end the program through ts_exit() instead of pulling in stdio; and the
 * newlib syscalls, linked only when something asks for them. newlib's own stdio would need a
 * heap, and the firmware has none.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "ts_cortexm.h"
#include "ts_platform.h"


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
