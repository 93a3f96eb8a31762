/* Smoke test of the firmware build: runtime, counter, formatter, engine library. */
#include <stdint.h>
#include <string.h>

#include "ts_platform.h"
#include "ts_test.h"
#include "ts_version.h"

#if defined(TS_TARGET_NATIVE)
#include <stdio.h>
#include <stdlib.h>
#endif

static volatile uint32_t g_sink;

static void work(uint32_t n)
{
    uint32_t acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        acc = acc * 1664525u + 1013904223u;
    }
    g_sink = acc;
}

static void test_engine_version(void)
{
    TS_ASSERT_EQ_INT(TS_ENGINE_VERSION, ts_engine_version());
}

static void test_counter_runs(void)
{
    uint64_t t0 = ts_cycles64();
    work(10000);
    uint64_t t1 = ts_cycles64();
    TS_ASSERT(t1 > t0);
    TS_ASSERT(ts_cycles_hz() > 0);
#if defined(TS_TARGET_QEMU)
    /* tests run under -icount: the counter is instructions, and 10000 iterations of a
     * multiply-add loop take at least 30000 of them */
    TS_ASSERT_STR_EQ("systick-icount", ts_cycle_counter_name());
    TS_ASSERT(ts_icount_shift() >= 0);
    TS_ASSERT(t1 - t0 >= 30000u);
    TS_ASSERT(t1 - t0 < 200000u);
#else
    TS_ASSERT_STR_EQ("clock_gettime", ts_cycle_counter_name());
#endif
}

static void test_counter_deterministic(void)
{
#if defined(TS_TARGET_QEMU)
    uint32_t d[3];
    for (int k = 0; k < 3; k++) {
        uint32_t t0 = ts_cycles();
        work(5000);
        d[k] = ts_cycles() - t0;
    }
    /* same instructions -> same count, up to the tick rounding (< 1 instruction + reads) */
    TS_ASSERT(d[1] + 2u >= d[0] && d[0] + 2u >= d[1]);
    TS_ASSERT(d[2] + 2u >= d[1] && d[1] + 2u >= d[2]);
#endif
}

static void test_float_math(void)
{
    volatile float a = 1.5f;
    volatile float b = -0.25f;
    volatile double c = 3.0;
    TS_ASSERT_NEAR(1.25, a + b, 0.0);
    TS_ASSERT_NEAR(-0.375, a * b, 0.0);
    TS_ASSERT_NEAR(1.7320508075688772, __builtin_sqrt(c), 1e-15);
}

static void test_format_fixed_cases(void)
{
    char buf[96];
    ts_snprintf(buf, sizeof buf, "%d|%5d|%-5d|%05d|%+d|%x|%#X|%o|%u", -42, 7, 7, -7, 3, 255u,
                255u, 8u, 4000000000u);
    TS_ASSERT_STR_EQ("-42|    7|7    |-0007|+3|ff|0XFF|10|4000000000", buf);
    ts_snprintf(buf, sizeof buf, "%lld|%llu|%ld|%zu|%hhd|%.3d|%.0d|", -9000000000LL,
                18446744073709551615ULL, -1L, (size_t)12, 300, 5, 0);
    TS_ASSERT_STR_EQ("-9000000000|18446744073709551615|-1|12|44|005||", buf);
    ts_snprintf(buf, sizeof buf, "%s|%8s|%-4s|%.2s|%c|%%", "ab", "right", "l", "xyz", 'Q');
    TS_ASSERT_STR_EQ("ab|   right|l   |xy|Q|%", buf);
    ts_snprintf(buf, sizeof buf, "%f|%.2f|%.0f|%8.3f|%-8.1f|%+.1f|%f", 3.14159, 2.005, 2.5,
                -1.5, 0.25, 1.0, 0.0);
    TS_ASSERT_STR_EQ("3.141590|2.00|2|  -1.500|0.2     |+1.0|0.000000", buf);
    ts_snprintf(buf, sizeof buf, "%e|%.2E|%g|%g|%g|%.3g|%g", 12345.678, 0.000123, 0.0001,
                123456.0, 1234567.0, 3.14159, 100.0);
    TS_ASSERT_STR_EQ("1.234568e+04|1.23E-04|0.0001|123456|1.23457e+06|3.14|100", buf);
    ts_snprintf(buf, sizeof buf, "%.9g|%.9g|%g|%f", 0.1f, 1.0f / 3.0f, -0.0, 1e300 * 1e300);
    TS_ASSERT_STR_EQ("0.100000001|0.333333343|-0|inf", buf);
    /* truncation: returns the full length, always terminates */
    TS_ASSERT_EQ_INT(11, ts_snprintf(buf, 6, "hello %s", "world"));
    TS_ASSERT_STR_EQ("hello", buf);
}

#if defined(TS_TARGET_NATIVE)
/* The same formatter must match the host's libc on ordinary report values. */
static void test_format_matches_libc(void)
{
    char ours[128];
    char libc[128];
    static const char *const fmts[] = {"%.9g", "%.6f", "%e", "%.3e", "%g", "%12.4f", "%.1f"};
    uint32_t state = 12345u;
    for (int i = 0; i < 4000; i++) {
        state = state * 1664525u + 1013904223u;
        float mant = (float)(state >> 8) / (float)(1u << 24); /* [0, 1) */
        int e = (int)(state % 13u) - 6;
        double v = (double)mant;
        for (int k = 0; k < (e < 0 ? -e : e); k++) {
            v = (e < 0) ? v / 10.0 : v * 10.0;
        }
        if (state & 1u) {
            v = -v;
        }
        v = (double)(float)v; /* what the firmware prints are floats */
        for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
            ts_snprintf(ours, sizeof ours, fmts[f], v);
            snprintf(libc, sizeof libc, fmts[f], v);
            if (strcmp(ours, libc) != 0) {
                TS_FAIL_("%s of %.17g: ours \"%s\", libc \"%s\"", fmts[f], v, ours, libc);
            }
        }
        long long iv = (long long)(int32_t)state * (long long)(state % 1000u);
        ts_snprintf(ours, sizeof ours, "%lld %08x %-6u|", iv, (unsigned)state, state % 999u);
        snprintf(libc, sizeof libc, "%lld %08x %-6u|", iv, (unsigned)state, state % 999u);
        TS_ASSERT_STR_EQ(libc, ours);
    }
}
#endif

static void test_stack(void)
{
#if defined(TS_TARGET_QEMU)
    TS_ASSERT(ts_stack_ok());
    TS_ASSERT(ts_stack_size() >= 4096u);
    TS_ASSERT(ts_stack_high_water() > 0u);
    TS_ASSERT(ts_stack_high_water() < ts_stack_size());
#else
    TS_ASSERT_EQ_INT(1, ts_stack_ok());
#endif
}

int main(void)
{
    TS_TEST_BEGIN();
    TS_RUN(test_engine_version);
    TS_RUN(test_counter_runs);
    TS_RUN(test_counter_deterministic);
    TS_RUN(test_float_math);
    TS_RUN(test_format_fixed_cases);
#if defined(TS_TARGET_NATIVE)
    TS_RUN(test_format_matches_libc);
#endif
    TS_RUN(test_stack);
    return TS_TEST_END();
}
