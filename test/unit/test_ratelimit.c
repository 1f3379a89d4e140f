/* Unit tests for lib/dtls/ratelimit.c: token buckets per source address,
 * driven by a stepping clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "dtls/ratelimit.h"

static const uint8_t key[TETHER_RL_KEY] = "fixed key so slots are stable..";
static const uint8_t a[] = {4, 10, 0, 0, 1}, b[] = {4, 10, 0, 0, 2};
static tether_rl_t rl; /* 64 KiB: not on the stack */

static void test_burst_then_rate(void **state)
{
    (void)state;
    tether_time_t now = 5000;
    tether_rl_init(&rl, 10, 3, key, now); /* 10/s, burst 3 */
    for (int i = 0; i < 3; i++)
        assert_true(tether_rl_admit(&rl, a, sizeof a, now));
    assert_false(tether_rl_admit(&rl, a, sizeof a, now));
    now += 99; /* 0.99 tokens */
    assert_false(tether_rl_admit(&rl, a, sizeof a, now));
    now += 1; /* 1.0 token */
    assert_true(tether_rl_admit(&rl, a, sizeof a, now));
    assert_false(tether_rl_admit(&rl, a, sizeof a, now));
    now += 60000; /* a long pause refills to the burst, not beyond */
    for (int i = 0; i < 3; i++)
        assert_true(tether_rl_admit(&rl, a, sizeof a, now));
    assert_false(tether_rl_admit(&rl, a, sizeof a, now));
}

static void test_sources_have_their_own_buckets(void **state)
{
    (void)state;
    tether_rl_init(&rl, 1, 1, key, 0);
    assert_true(tether_rl_admit(&rl, a, sizeof a, 0));
    assert_false(tether_rl_admit(&rl, a, sizeof a, 0));
    assert_true(tether_rl_admit(&rl, b, sizeof b, 0)); /* different slot with this key */
    /* 100,000 distinct sources share the fixed table (nothing grows): each
     * slot admits one per second, so all but at most TETHER_RL_SLOTS wait. */
    size_t refused = 0;
    for (uint32_t i = 0; i < 100000; i++) {
        uint8_t s[5] = {4};
        memcpy(s + 1, &i, 4);
        refused += !tether_rl_admit(&rl, s, sizeof s, 1);
    }
    assert_true(refused >= 100000 - TETHER_RL_SLOTS);
}

static void test_rate_zero_is_unlimited(void **state)
{
    (void)state;
    tether_rl_init(&rl, 0, 0, key, 0);
    for (int i = 0; i < 100000; i++)
        assert_true(tether_rl_admit(&rl, a, sizeof a, 0));
}

static void test_clock_wrap(void **state)
{
    (void)state;
    tether_time_t now = 0xfffffff0ull; /* the slot keeps 32 bits of ms */
    tether_rl_init(&rl, 1000, 1, key, now);
    assert_true(tether_rl_admit(&rl, a, sizeof a, now));
    assert_false(tether_rl_admit(&rl, a, sizeof a, now));
    now += 0x20; /* crosses 2^32 ms */
    assert_true(tether_rl_admit(&rl, a, sizeof a, now));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_sources_have_their_own_buckets),
        cmocka_unit_test(test_rate_zero_is_unlimited),
        cmocka_unit_test(test_clock_wrap),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
