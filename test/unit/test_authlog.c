/* Unit tests for server/admin/authlog.c: refused admin tokens are all
 * counted, but logged at most ADMIN_AUTHLOG_BURST times per window. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../server/admin/authlog.h"

/* A flood of guesses: 10 lines in the window, the rest counted; the first
 * line of the next window tells how many were left out. */
static void test_flood_is_bounded_and_reported(void **state)
{
    (void)state;
    admin_authlog_t l = {0};
    uint64_t sup = 99, now = 1000000;
    int logged = 0;
    for (int i = 0; i < 10000; i++)
        logged += admin_authlog_failure(&l, now + (uint64_t)i / 10, &sup); /* 1 s of guesses */
    assert_int_equal(logged, ADMIN_AUTHLOG_BURST);
    assert_int_equal(l.failures, 10000);
    assert_true(admin_authlog_failure(&l, now + ADMIN_AUTHLOG_WINDOW_MS, &sup));
    assert_int_equal(sup, 10000 - ADMIN_AUTHLOG_BURST);
    assert_true(admin_authlog_failure(&l, now + ADMIN_AUTHLOG_WINDOW_MS + 1, &sup));
    assert_int_equal(sup, 0); /* reported once, then forgotten */
}

/* An operator's occasional typo is always logged, nothing suppressed. */
static void test_occasional_failures_all_logged(void **state)
{
    (void)state;
    admin_authlog_t l = {0};
    uint64_t sup;
    for (uint64_t t = 0; t < 100; t++) {
        assert_true(admin_authlog_failure(&l, 5000 + t * 2000, &sup));
        assert_int_equal(sup, 0);
    }
}

/* A clock that went back does not freeze the log. */
static void test_clock_back_starts_a_window(void **state)
{
    (void)state;
    admin_authlog_t l = {0};
    uint64_t sup;
    for (int i = 0; i < 50; i++)
        admin_authlog_failure(&l, 900000, &sup);
    assert_false(admin_authlog_failure(&l, 900001, &sup));
    assert_true(admin_authlog_failure(&l, 1000, &sup));
    assert_int_equal(sup, 50 - ADMIN_AUTHLOG_BURST + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_is_bounded_and_reported),
        cmocka_unit_test(test_occasional_failures_all_logged),
        cmocka_unit_test(test_clock_back_starts_a_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
