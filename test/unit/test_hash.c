/* tether_hash64 (lib/util/hash.c): the digest of every key length equals
 * the word-by-word definition (the tail copied into the low bytes of a
 * zeroed word), wherever the key sits in memory; digests are compared
 * across nodes (group ETags), so the tail's faster read must not move
 * them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/hash.h"

static uint64_t rotl(uint64_t x, int r)
{
    return x << r | x >> (64 - r);
}

static uint64_t reference(uint64_t seed, const uint8_t *p, size_t n)
{
    const uint64_t k1 = 0x9e3779b97f4a7c15ull, k2 = 0xc2b2ae3d27d4eb4full;
    uint64_t h = seed ^ (n * k1), w;
    for (; n >= 8; p += 8, n -= 8) {
        w = 0;
        for (int i = 0; i < 8; i++)
            w |= (uint64_t)p[i] << (8 * i);
        h = rotl(h ^ w * k2, 31) * k1;
    }
    w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    h = rotl(h ^ w * k2, 31) * k1;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static void test_every_length_and_offset(void **state)
{
    (void)state;
    uint8_t buf[80];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 37 + 11);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 64; n++)
            assert_true(tether_hash64(0x5eed + off, buf + off, n) ==
                        reference(0x5eed + off, buf + off, n));
    assert_true(tether_hash64(1, NULL, 0) == reference(1, NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_length_and_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
