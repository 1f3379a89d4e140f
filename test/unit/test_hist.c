/* Unit tests for lib/util/hist.c: log-linear latency histogram. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "tether/hist.h"

static tether_hist_t *new_hist(void)
{
    tether_hist_t *h = malloc(sizeof *h);
    assert_non_null(h);
    tether_hist_init(h);
    return h;
}

/* Every value falls in the bucket whose range holds it, and ranges tile the
 * number line without gaps or overlaps. */
static void test_buckets_tile_the_range(void **state)
{
    (void)state;
    assert_int_equal(tether_hist_bucket_lo(0), 0);
    for (size_t i = 0; i + 1 < TETHER_HIST_NBUCKETS; i++) {
        uint64_t lo = tether_hist_bucket_lo(i), hi = tether_hist_bucket_hi(i);
        assert_true(lo <= hi);
        assert_int_equal(tether_hist_bucket_lo(i + 1), hi + 1);
        assert_int_equal(tether_hist_index(lo), i);
        assert_int_equal(tether_hist_index(hi), i);
        /* Relative width bound: <= 1% of the lower bound beyond the linear part. */
        if (lo >= TETHER_HIST_LINEAR)
            assert_true((double)(hi - lo + 1) / (double)lo <= 0.01);
    }
    assert_int_equal(tether_hist_index(UINT64_MAX), TETHER_HIST_NBUCKETS - 1);
    assert_int_equal(tether_hist_bucket_hi(TETHER_HIST_NBUCKETS - 1), UINT64_MAX);
    /* 60 s in microseconds is still inside the range. */
    assert_true(tether_hist_index(60000000) < TETHER_HIST_NBUCKETS - 1);
}

static void test_empty(void **state)
{
    (void)state;
    tether_hist_t *h = new_hist();
    assert_int_equal(h->count, 0);
    assert_int_equal(tether_hist_percentile(h, 50), 0);
    assert_true(tether_hist_mean(h) == 0.0);
    tether_hist_iter_t it = {0};
    tether_hist_bucket_t b;
    assert_false(tether_hist_next(h, &it, &b));
    free(h);
}

/* 1..100000 uniformly: percentiles within 1% of the exact answer; count,
 * min, max and mean exact. */
static void test_percentiles_within_one_percent(void **state)
{
    (void)state;
    tether_hist_t *h = new_hist();
    for (uint64_t v = 1; v <= 100000; v++)
        tether_hist_record(h, v);
    assert_int_equal(h->count, 100000);
    assert_int_equal(h->min, 1);
    assert_int_equal(h->max, 100000);
    assert_true(tether_hist_mean(h) == 50000.5);
    const double ps[] = {50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        double exact = ps[i] * 1000;
        double got = (double)tether_hist_percentile(h, ps[i]);
        assert_true(got >= exact);
        assert_true(got <= exact * 1.01);
    }
    assert_int_equal(tether_hist_percentile(h, 100), 100000);
    assert_int_equal(tether_hist_percentile(h, 0), 1);
    free(h);
}

/* Small exact values come back exactly; a single value is every percentile. */
static void test_exact_small_values(void **state)
{
    (void)state;
    tether_hist_t *h = new_hist();
    tether_hist_record(h, 42);
    assert_int_equal(tether_hist_percentile(h, 1), 42);
    assert_int_equal(tether_hist_percentile(h, 99.9), 42);
    tether_hist_record(h, 7);
    tether_hist_record(h, 7);
    tether_hist_record(h, 200);
    assert_int_equal(tether_hist_percentile(h, 50), 7);
    assert_int_equal(tether_hist_percentile(h, 75), 42);
    assert_int_equal(tether_hist_percentile(h, 100), 200);
    free(h);
}

/* Merging two halves gives the same histogram as recording everything. */
static void test_merge(void **state)
{
    (void)state;
    tether_hist_t *a = new_hist(), *b = new_hist(), *all = new_hist();
    for (uint64_t v = 0; v < 50000; v++) {
        uint64_t x = (v * 2654435761u) % 3000000;
        tether_hist_record(v % 2 ? a : b, x);
        tether_hist_record(all, x);
    }
    tether_hist_merge(a, b);
    assert_memory_equal(a, all, sizeof *a);
    tether_hist_t *empty = new_hist();
    tether_hist_merge(a, empty);
    assert_memory_equal(a, all, sizeof *a);
    free(a);
    free(b);
    free(all);
    free(empty);
}

/* Values beyond the range are clamped into the last bucket and counted;
 * max stays exact. */
static void test_overflow(void **state)
{
    (void)state;
    tether_hist_t *h = new_hist();
    tether_hist_record(h, 100);
    tether_hist_record(h, (uint64_t)1 << 40);
    assert_int_equal(h->overflow, 1);
    assert_int_equal(h->buckets[TETHER_HIST_NBUCKETS - 1], 1);
    assert_int_equal(tether_hist_percentile(h, 100), (uint64_t)1 << 40);
    free(h);
}

/* Iteration yields the non-empty buckets in order with running totals that
 * agree with count_le at each bucket's upper bound (Prometheus `le`). */
static void test_iteration_and_cumulative(void **state)
{
    (void)state;
    tether_hist_t *h = new_hist();
    const uint64_t vals[] = {3, 3, 250, 251, 1000, 1000, 999999, 5000000};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        tether_hist_record(h, vals[i]);
    tether_hist_iter_t it = {0};
    tether_hist_bucket_t b;
    uint64_t prev_hi = 0, total = 0;
    size_t n = 0;
    while (tether_hist_next(h, &it, &b)) {
        assert_true(n == 0 || b.lo > prev_hi);
        assert_true(b.count > 0);
        total += b.count;
        assert_int_equal(b.cumulative, total);
        assert_int_equal(tether_hist_count_le(h, b.hi), total);
        prev_hi = b.hi;
        n++;
    }
    assert_int_equal(total, h->count);
    assert_int_equal(n, 6);
    assert_int_equal(tether_hist_count_le(h, 2), 0);
    assert_int_equal(tether_hist_count_le(h, 3), 2);
    assert_int_equal(tether_hist_count_le(h, UINT64_MAX), 8);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_tile_the_range),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_percentiles_within_one_percent),
        cmocka_unit_test(test_exact_small_values),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_iteration_and_cumulative),
    };
    return cmocka_run_group_tests_name("hist", tests, NULL, NULL);
}
