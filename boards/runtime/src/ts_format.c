/*
 * ts_format.c -- a small printf-style formatter without heap or libc stdio.
 *
 * The same code formats on every target, so the native build and the emulated board print
 * the same text. newlib's printf is not used on the boards: its stdio allocates buffers (and
 * its %f allocates in dtoa), and the firmware has no heap.
 *
 * Floats: the value is turned into 17 significant decimal digits with double arithmetic and
 * rounded from there (half to even on exact ties, like glibc); up to ~15 significant digits this equals glibc, beyond that the
 * last digit may differ (not a full correctly-rounded dtoa).
 */
#include <stdint.h>
#include <string.h>

#include "ts_platform.h"

enum {
    F_LEFT = 1,
    F_PLUS = 2,
    F_SPACE = 4,
    F_ALT = 8,
    F_ZERO = 16,
    F_UPPER = 32,
};

#define TS_FMT_MAX_FLOAT_PREC 40
#define TS_FMT_FLOAT_BUF 400 /* 309 integer digits of DBL_MAX + '.' + 40 + slack */

typedef struct {
    ts_putc_fn out;
    void *ctx;
    int count;
} sink_t;

static void emit(sink_t *s, char c)
{
    s->out(c, s->ctx);
    s->count++;
}

static void emit_n(sink_t *s, char c, int n)
{
    while (n-- > 0) {
        emit(s, c);
    }
}

static void emit_str(sink_t *s, const char *p, int n)
{
    while (n-- > 0) {
        emit(s, *p++);
    }
}

/* [spaces] prefix [zero padding] zeros body [spaces] */
static void emit_field(sink_t *s, const char *prefix, int zeros, const char *body, int blen,
                       int width, int flags, int zero_pad_ok)
{
    int plen = (int)strlen(prefix);
    int pad = width - plen - zeros - blen;
    int zpad = (flags & F_ZERO) && zero_pad_ok && !(flags & F_LEFT);
    if (!(flags & F_LEFT) && !zpad) {
        emit_n(s, ' ', pad);
    }
    emit_str(s, prefix, plen);
    if (zpad) {
        emit_n(s, '0', pad);
    }
    emit_n(s, '0', zeros);
    emit_str(s, body, blen);
    if (flags & F_LEFT) {
        emit_n(s, ' ', pad);
    }
}

static void format_uint(sink_t *s, uint64_t v, unsigned base, int is_neg, int flags, int width,
                        int prec, char conv)
{
    char digits[24];
    int nd = 0;
    const char *set = (flags & F_UPPER) ? "0123456789ABCDEF" : "0123456789abcdef";
    char prefix[3] = {0, 0, 0};
    int zeros;
    int i;
    uint64_t x = v;

    while (x != 0) {
        digits[nd++] = set[x % base];
        x /= base;
    }
    if (v == 0 && prec != 0) {
        digits[nd++] = '0';
    }
    /* reverse */
    for (i = 0; i < nd / 2; i++) {
        char t = digits[i];
        digits[i] = digits[nd - 1 - i];
        digits[nd - 1 - i] = t;
    }
    zeros = (prec > nd) ? prec - nd : 0;
    if (conv == 'd' || conv == 'i') {
        if (is_neg) {
            prefix[0] = '-';
        } else if (flags & F_PLUS) {
            prefix[0] = '+';
        } else if (flags & F_SPACE) {
            prefix[0] = ' ';
        }
    } else if ((flags & F_ALT) && base == 16 && v != 0) {
        prefix[0] = '0';
        prefix[1] = (flags & F_UPPER) ? 'X' : 'x';
    } else if ((flags & F_ALT) && base == 8 && zeros == 0 && (nd == 0 || digits[0] != '0')) {
        zeros = 1;
    }
    emit_field(s, prefix, zeros, digits, nd, width, flags, prec < 0);
}

/* ---- floating point ---------------------------------------------------------------------- */

static double pow10_pos(int n)
{
    double r = 1.0;
    double b = 10.0;
    while (n > 0) {
        if (n & 1) {
            r *= b;
        }
        b *= b;
        n >>= 1;
    }
    return r;
}

static double scale10(double v, int k)
{
    while (k > 300) {
        v *= 1e300;
        k -= 300;
    }
    while (k < -300) {
        v /= 1e300;
        k += 300;
    }
    return (k >= 0) ? v * pow10_pos(k) : v / pow10_pos(-k);
}

/* v > 0, finite: 17 significant digits in d[0..16] and the decimal exponent of d[0]. */
static void float_digits17(double v, char d[17], int *exp10)
{
    union {
        double f;
        uint64_t u;
    } bits;
    int e2;
    int e10;
    int guard;
    uint64_t n = 0;
    int i;

    bits.f = v;
    e2 = (int)((bits.u >> 52) & 0x7ff) - 1023;
    e10 = (e2 * 30103) / 100000; /* log10(2) ~ 0.30103 */
    if (e2 < 0) {
        e10 -= 1;
    }
    for (guard = 0; guard < 40; guard++) {
        double scaled = scale10(v, 16 - e10);
        if (scaled >= 1e17) {
            e10++;
            continue;
        }
        if (scaled < 1e16) {
            e10--;
            continue;
        }
        n = (uint64_t)(scaled + 0.5);
        if (n >= 100000000000000000ULL) {
            n /= 10;
            e10++;
        }
        break;
    }
    for (i = 16; i >= 0; i--) {
        d[i] = (char)('0' + (int)(n % 10));
        n /= 10;
    }
    *exp10 = e10;
}

/* An exact tie (5 then only zeros) whose kept part ends in an even digit rounds down, as
 * glibc does in the default rounding mode (round half to even). */
static int is_even_tie(const char *d, int nd, int keep)
{
    int i;
    for (i = keep + 1; i < nd; i++) {
        if (d[i] != '0') {
            return 0;
        }
    }
    return keep == 0 || ((d[keep - 1] - '0') % 2) == 0;
}

/* Rounds d (nd digits significant) to keep `keep` digits, half-up. Returns the new count of
 * digits; may bump *exp10 when the carry runs out of digits (9.99 -> 10.0). keep <= 0 means
 * rounding at or above the first digit. */
static int round_digits(char *d, int nd, int keep, int *exp10)
{
    int i;
    if (keep >= nd) {
        return nd;
    }
    if (keep < 0) {
        return 0; /* below half of the kept position: the value rounds to zero */
    }
    if (d[keep] > '5' || (d[keep] == '5' && !is_even_tie(d, nd, keep))) {
        for (i = keep - 1; i >= 0; i--) {
            if (d[i] == '9') {
                d[i] = '0';
            } else {
                d[i]++;
                break;
            }
        }
        if (i < 0) {
            /* all kept digits were 9 (or keep == 0): becomes 1 followed by zeros */
            d[0] = '1';
            for (i = 1; i < keep; i++) {
                d[i] = '0';
            }
            *exp10 += 1;
            return keep > 0 ? keep : 1;
        }
    }
    return keep;
}

/* digit at decimal position `pos` (10^pos) of the number d * 10^(exp10 - index) */
static char digit_at(const char *d, int nd, int exp10, int pos)
{
    int idx = exp10 - pos;
    if (idx < 0 || idx >= nd) {
        return '0';
    }
    return d[idx];
}

static int render_fixed(char *out, const char *d, int nd, int exp10, int prec, int alt)
{
    int n = 0;
    int pos;
    if (exp10 < 0) {
        out[n++] = '0';
    } else {
        for (pos = exp10; pos >= 0; pos--) {
            out[n++] = digit_at(d, nd, exp10, pos);
        }
    }
    if (prec > 0 || alt) {
        out[n++] = '.';
    }
    for (pos = -1; pos >= -prec; pos--) {
        out[n++] = digit_at(d, nd, exp10, pos);
    }
    return n;
}

static int render_exp(char *out, const char *d, int nd, int exp10, int prec, int alt, int upper)
{
    int n = 0;
    int i;
    int e = exp10;
    char ed[6];
    int ne = 0;
    out[n++] = nd > 0 ? d[0] : '0';
    if (prec > 0 || alt) {
        out[n++] = '.';
    }
    for (i = 1; i <= prec; i++) {
        out[n++] = (i < nd) ? d[i] : '0';
    }
    out[n++] = upper ? 'E' : 'e';
    if (e < 0) {
        out[n++] = '-';
        e = -e;
    } else {
        out[n++] = '+';
    }
    do {
        ed[ne++] = (char)('0' + e % 10);
        e /= 10;
    } while (e > 0);
    if (ne < 2) {
        ed[ne++] = '0';
    }
    while (ne > 0) {
        out[n++] = ed[--ne];
    }
    return n;
}

static void format_float(sink_t *s, double v, int flags, int width, int prec, char conv)
{
    union {
        double f;
        uint64_t u;
    } bits;
    char prefix[2] = {0, 0};
    char body[TS_FMT_FLOAT_BUF];
    char d[17];
    int nd = 17;
    int exp10 = 0;
    int blen;
    int upper = (conv == 'F' || conv == 'E' || conv == 'G');
    char lc = (char)(conv | 0x20);
    int alt = (flags & F_ALT) != 0;

    bits.f = v;
    if (bits.u >> 63) {
        prefix[0] = '-';
        v = -v;
    } else if (flags & F_PLUS) {
        prefix[0] = '+';
    } else if (flags & F_SPACE) {
        prefix[0] = ' ';
    }
    if (v != v || v > 1.7976931348623157e308) {
        const char *txt = (v != v) ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf");
        emit_field(s, prefix, 0, txt, 3, width, flags, 0);
        return;
    }
    if (prec < 0) {
        prec = 6;
    }
    if (prec > TS_FMT_MAX_FLOAT_PREC) {
        prec = TS_FMT_MAX_FLOAT_PREC;
    }
    if (v == 0.0) {
        memset(d, '0', sizeof d);
        exp10 = 0;
    } else {
        float_digits17(v, d, &exp10);
    }

    if (lc == 'f') {
        nd = round_digits(d, 17, exp10 + 1 + prec, &exp10);
        blen = render_fixed(body, d, nd, exp10, prec, alt);
    } else if (lc == 'e') {
        nd = round_digits(d, 17, prec + 1, &exp10);
        if (v == 0.0) {
            exp10 = 0;
        }
        blen = render_exp(body, d, nd, exp10, prec, alt, upper);
    } else { /* g */
        int p = (prec == 0) ? 1 : prec;
        nd = round_digits(d, 17, p, &exp10);
        if (v == 0.0) {
            exp10 = 0;
        }
        if (p > exp10 && exp10 >= -4) {
            blen = render_fixed(body, d, nd, exp10, p - 1 - exp10, alt);
        } else {
            blen = render_exp(body, d, nd, exp10, p - 1, alt, upper);
        }
        if (!alt) {
            /* drop trailing zeros of the fraction, then a bare '.' */
            int epos = blen;
            int i;
            int dot = -1;
            for (i = 0; i < blen; i++) {
                if (body[i] == '.') {
                    dot = i;
                }
                if (body[i] == 'e' || body[i] == 'E') {
                    epos = i;
                    break;
                }
            }
            if (dot >= 0) {
                int end = epos;
                while (end > dot + 1 && body[end - 1] == '0') {
                    end--;
                }
                if (end == dot + 1) {
                    end = dot;
                }
                memmove(body + end, body + epos, (size_t)(blen - epos));
                blen = end + (blen - epos);
            }
        }
    }
    emit_field(s, prefix, 0, body, blen, width, flags, 1);
}

/* ---- the driver -------------------------------------------------------------------------- */

int ts_vformat(ts_putc_fn out, void *ctx, const char *fmt, va_list ap)
{
    sink_t s;
    s.out = out;
    s.ctx = ctx;
    s.count = 0;

    while (*fmt) {
        int flags = 0;
        int width = 0;
        int prec = -1;
        int len = 0; /* 0 int, 1 long, 2 long long, -1 short, -2 char, 3 size_t, 4 ptrdiff, 5 intmax, 6 long double */
        char c = *fmt++;
        if (c != '%') {
            emit(&s, c);
            continue;
        }
        for (;;) {
            c = *fmt;
            if (c == '-') {
                flags |= F_LEFT;
            } else if (c == '+') {
                flags |= F_PLUS;
            } else if (c == ' ') {
                flags |= F_SPACE;
            } else if (c == '#') {
                flags |= F_ALT;
            } else if (c == '0') {
                flags |= F_ZERO;
            } else {
                break;
            }
            fmt++;
        }
        if (*fmt == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                flags |= F_LEFT;
                width = -width;
            }
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9') {
                width = width * 10 + (*fmt++ - '0');
            }
        }
        if (*fmt == '.') {
            fmt++;
            prec = 0;
            if (*fmt == '*') {
                prec = va_arg(ap, int);
                if (prec < 0) {
                    prec = -1;
                }
                fmt++;
            } else {
                while (*fmt >= '0' && *fmt <= '9') {
                    prec = prec * 10 + (*fmt++ - '0');
                }
            }
        }
        switch (*fmt) {
        case 'h':
            len = -1;
            if (*++fmt == 'h') {
                len = -2;
                fmt++;
            }
            break;
        case 'l':
            len = 1;
            if (*++fmt == 'l') {
                len = 2;
                fmt++;
            }
            break;
        case 'z':
            len = 3;
            fmt++;
            break;
        case 't':
            len = 4;
            fmt++;
            break;
        case 'j':
            len = 5;
            fmt++;
            break;
        case 'L':
            len = 6;
            fmt++;
            break;
        default:
            break;
        }
        c = *fmt;
        if (c == '\0') {
            break;
        }
        fmt++;
        switch (c) {
        case 'd':
        case 'i': {
            int64_t v;
            uint64_t mag;
            if (len == 2 || len == 5) {
                v = (int64_t)va_arg(ap, long long);
            } else if (len == 1) {
                v = va_arg(ap, long);
            } else if (len == 3 || len == 4) {
                v = (int64_t)va_arg(ap, ptrdiff_t);
            } else {
                v = va_arg(ap, int);
                if (len == -1) {
                    v = (short)v;
                } else if (len == -2) {
                    v = (signed char)v;
                }
            }
            mag = (v < 0) ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            format_uint(&s, mag, 10, v < 0, flags, width, prec, 'd');
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            uint64_t v;
            unsigned base = (c == 'u') ? 10u : (c == 'o') ? 8u : 16u;
            if (len == 2 || len == 5) {
                v = (uint64_t)va_arg(ap, unsigned long long);
            } else if (len == 1) {
                v = va_arg(ap, unsigned long);
            } else if (len == 3 || len == 4) {
                v = (uint64_t)va_arg(ap, size_t);
            } else {
                v = va_arg(ap, unsigned int);
                if (len == -1) {
                    v = (unsigned short)v;
                } else if (len == -2) {
                    v = (unsigned char)v;
                }
            }
            format_uint(&s, v, base, 0, flags | (c == 'X' ? F_UPPER : 0), width, prec, c);
            break;
        }
        case 'p': {
            uintptr_t v = (uintptr_t)va_arg(ap, void *);
            format_uint(&s, (uint64_t)v, 16, 0, (flags | F_ALT) & ~F_ZERO, width, -1, 'x');
            break;
        }
        case 'c': {
            char ch = (char)va_arg(ap, int);
            emit_field(&s, "", 0, &ch, 1, width, flags, 0);
            break;
        }
        case 's': {
            const char *str = va_arg(ap, const char *);
            int n = 0;
            if (str == NULL) {
                str = "(null)";
            }
            while (str[n] && (prec < 0 || n < prec)) {
                n++;
            }
            emit_field(&s, "", 0, str, n, width, flags, 0);
            break;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G': {
            double v = (len == 6) ? (double)va_arg(ap, long double) : va_arg(ap, double);
            format_float(&s, v, flags, width, prec, c);
            break;
        }
        case 'n':
            (void)va_arg(ap, int *); /* not supported: consumed, nothing stored */
            break;
        case '%':
            emit(&s, '%');
            break;
        default:
            emit(&s, '%');
            emit(&s, c);
            break;
        }
    }
    return s.count;
}

/* ---- sinks ------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t size;
    size_t pos;
} strbuf_t;

static void strbuf_putc(char c, void *ctx)
{
    strbuf_t *b = (strbuf_t *)ctx;
    if (b->size > 0 && b->pos + 1 < b->size) {
        b->buf[b->pos] = c;
    }
    b->pos++;
}

int ts_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    strbuf_t b;
    int n;
    b.buf = buf;
    b.size = size;
    b.pos = 0;
    n = ts_vformat(strbuf_putc, &b, fmt, ap);
    if (size > 0) {
        buf[(b.pos < size) ? b.pos : size - 1] = '\0';
    }
    return n;
}

int ts_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = ts_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

typedef struct {
    char buf[64];
    size_t n;
} chunk_t;

static void chunk_putc(char c, void *ctx)
{
    chunk_t *k = (chunk_t *)ctx;
    k->buf[k->n++] = c;
    if (k->n == sizeof k->buf) {
        ts_uart_write(k->buf, k->n);
        k->n = 0;
    }
}

int ts_vprintf(const char *fmt, va_list ap)
{
    chunk_t k;
    int n;
    k.n = 0;
    n = ts_vformat(chunk_putc, &k, fmt, ap);
    if (k.n > 0) {
        ts_uart_write(k.buf, k.n);
    }
    return n;
}

int ts_printf(const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = ts_vprintf(fmt, ap);
    va_end(ap);
    return n;
}
