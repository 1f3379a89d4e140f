/* Unit tests for checkpoint high-water marks (lib/dtls/ckseen.c): marks
 * only rise, an older version or a lower ceiling is stale, CIDs are
 * independent, and the table keeps at most `max` CIDs, dropping the one
 * noted least recently. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "dtls/ckseen.h"

static const uint8_t c1[8] = {1, 1, 1, 1, 1, 1, 1, 1}, c2[8] = {2, 2, 2, 2, 2, 2, 2, 2},
                     c3[8] = {3, 3, 3, 3, 3, 3, 3, 3};

static void test_marks_rise(void **state)
{
    (void)state;
    tether_ckseen_t t;
    assert_int_equal(tether_ckseen_init(&t, 16, 7), 0);
    assert_false(tether_ckseen_stale(&t, c1, 8, 0, 0)); /* never seen: nothing is stale */
    tether_ckseen_note(&t, c1, 8, 5, 8192);
    assert_false(tether_ckseen_stale(&t, c1, 8, 5, 8192)); /* the same record again */
    assert_false(tether_ckseen_stale(&t, c1, 8, 6, 9000));
    assert_true(tether_ckseen_stale(&t, c1, 8, 4, 8192)); /* older version */
    assert_true(tether_ckseen_stale(&t, c1, 8, 6, 4096)); /* lower ceiling */
    tether_ckseen_note(&t, c1, 8, 3, 1024);               /* a late, older one: no fall */
    assert_true(tether_ckseen_stale(&t, c1, 8, 4, 8192));
    tether_ckseen_note(&t, c1, 8, 9, 4096); /* each mark rises on its own */
    assert_true(tether_ckseen_stale(&t, c1, 8, 9, 4096));
    assert_false(tether_ckseen_stale(&t, c1, 8, 9, 8192));
    assert_false(tether_ckseen_stale(&t, c2, 8, 1, 1)); /* another CID */
    uint8_t longcid[TETHER_CKSEEN_CID_MAX + 1] = {0};
    tether_ckseen_note(&t, longcid, sizeof longcid, 1, 1); /* not noted, no harm */
    assert_false(tether_ckseen_stale(&t, longcid, sizeof longcid, 0, 0));
    tether_ckseen_free(&t);
}

static void test_bounded(void **state)
{
    (void)state;
    tether_ckseen_t t;
    assert_int_equal(tether_ckseen_init(&t, 2, 7), 0);
    tether_ckseen_note(&t, c1, 8, 5, 100);
    tether_ckseen_note(&t, c2, 8, 5, 100);
    tether_ckseen_note(&t, c1, 8, 6, 100); /* c1 noted again: c2 is the oldest now */
    tether_ckseen_note(&t, c3, 8, 5, 100);
    assert_int_equal(t.n, 2);
    assert_true(tether_ckseen_stale(&t, c1, 8, 5, 100));
    assert_true(tether_ckseen_stale(&t, c3, 8, 4, 100));
    assert_false(tether_ckseen_stale(&t, c2, 8, 1, 1)); /* evicted: only this check lost */
    tether_ckseen_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marks_rise),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
