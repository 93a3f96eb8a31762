/*
 * ts_test.h -- a tiny assertion helper for firmware tests (PlatformIO test_framework = custom;
 * Unity is not available offline). Same output on the host and under QEMU, parsed by
 * test/test_custom_runner.py:
 *
 *   TS_TEST:<file>:<line>:<name>:PASS
 *   TS_TEST:<file>:<line>:<name>:FAIL:<message>
 *   TS_TESTS_DONE <n> Tests <f> Failures
 *
 * Usage:
 *   static void test_add(void) { TS_ASSERT_EQ_INT(4, 2 + 2); }
 *   int main(void) { TS_TEST_BEGIN(); TS_RUN(test_add); return TS_TEST_END(); }
 * A failed assertion ends the current test function (it returns); the next one still runs.
 * TS_TEST_END() returns 0 when all passed, 1 otherwise (the program's exit status).
 */
#ifndef TS_TEST_H
#define TS_TEST_H

#include <stdint.h>
#include <string.h>

#include "ts_platform.h"

#if defined(__GNUC__)
#define TS_TEST_UNUSED_ __attribute__((unused))
#else
#define TS_TEST_UNUSED_
#endif

static int ts_test_count_ TS_TEST_UNUSED_;
static int ts_test_failures_ TS_TEST_UNUSED_;
static int ts_test_failed_ TS_TEST_UNUSED_;
static int ts_test_fail_line_ TS_TEST_UNUSED_;
static const char *ts_test_fail_file_ TS_TEST_UNUSED_;
static char ts_test_msg_[192] TS_TEST_UNUSED_;

#define TS_TEST_BEGIN()                                                                        \
    do {                                                                                       \
        ts_test_count_ = 0;                                                                    \
        ts_test_failures_ = 0;                                                                 \
    } while (0)

#define TS_RUN(fn)                                                                             \
    do {                                                                                       \
        ts_test_failed_ = 0;                                                                   \
        ts_test_msg_[0] = '\0';                                                                \
        fn();                                                                                  \
        ts_test_count_++;                                                                      \
        if (ts_test_failed_) {                                                                 \
            ts_test_failures_++;                                                               \
            ts_printf("TS_TEST:%s:%d:%s:FAIL:%s\n", ts_test_fail_file_, ts_test_fail_line_,     \
                      #fn, ts_test_msg_);                                                      \
        } else {                                                                               \
            ts_printf("TS_TEST:%s:%d:%s:PASS\n", __FILE__, __LINE__, #fn);                     \
        }                                                                                      \
    } while (0)

#define TS_TEST_END()                                                                          \
    (ts_printf("TS_TESTS_DONE %d Tests %d Failures\n", ts_test_count_, ts_test_failures_),     \
     ts_test_failures_ ? 1 : 0)

#define TS_FAIL_(...)                                                                          \
    do {                                                                                       \
        ts_test_failed_ = 1;                                                                   \
        ts_test_fail_file_ = __FILE__;                                                         \
        ts_test_fail_line_ = __LINE__;                                                         \
        ts_snprintf(ts_test_msg_, sizeof ts_test_msg_, __VA_ARGS__);                           \
        return;                                                                                \
    } while (0)

#define TS_FAIL(msg) TS_FAIL_("%s", msg)

#define TS_ASSERT(cond)                                                                        \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            TS_FAIL_("expected %s", #cond);                                                    \
        }                                                                                      \
    } while (0)

#define TS_ASSERT_EQ_INT(expected, actual)                                                     \
    do {                                                                                       \
        long long e_ = (long long)(expected);                                                  \
        long long a_ = (long long)(actual);                                                    \
        if (e_ != a_) {                                                                        \
            TS_FAIL_("%s == %s: expected %lld, got %lld", #expected, #actual, e_, a_);         \
        }                                                                                      \
    } while (0)

#define TS_ASSERT_NEAR(expected, actual, tol)                                                  \
    do {                                                                                       \
        double e_ = (double)(expected);                                                        \
        double a_ = (double)(actual);                                                          \
        double d_ = e_ > a_ ? e_ - a_ : a_ - e_;                                               \
        if (!(d_ <= (double)(tol))) {                                                          \
            TS_FAIL_("%s ~ %s: expected %.9g, got %.9g (tol %g)", #expected, #actual, e_, a_,  \
                     (double)(tol));                                                           \
        }                                                                                      \
    } while (0)

#define TS_ASSERT_STR_EQ(expected, actual)                                                     \
    do {                                                                                       \
        const char *e_ = (expected);                                                           \
        const char *a_ = (actual);                                                             \
        if (strcmp(e_, a_) != 0) {                                                             \
            TS_FAIL_("%s: expected \"%s\", got \"%s\"", #actual, e_, a_);                      \
        }                                                                                      \
    } while (0)

#define TS_ASSERT_MEM_EQ(expected, actual, len)                                                \
    do {                                                                                       \
        if (memcmp((expected), (actual), (len)) != 0) {                                        \
            TS_FAIL_("%s and %s differ in %lu bytes", #expected, #actual,                      \
                     (unsigned long)(len));                                                    \
        }                                                                                      \
    } while (0)

#endif /* TS_TEST_H */
