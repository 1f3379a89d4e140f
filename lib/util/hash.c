/* The seeded 64-bit digest (see hash.h). */
#include <string.h>

#include "util/hash.h"

static uint64_t rotl64(uint64_t x, int r)
{
    return x << r | x >> (64 - r);
}

uint64_t tether_hash64(uint64_t seed, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    const uint64_t k1 = 0x9e3779b97f4a7c15ull, k2 = 0xc2b2ae3d27d4eb4full;
    const size_t whole = n;
    uint64_t h = seed ^ (n * k1), w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = rotl64(h ^ w * k2, 31) * k1;
    }
    /* The tail as the low bytes of a word (what a memcpy of n bytes into
     * w gives on a little-endian host, so digests are unchanged there),
     * without a call for a variable length: a key of 8 bytes or more has
     * its last 8 bytes loaded and shifted; a shorter one is read by byte. */
    w = 0;
    if (n && whole >= 8) {
        memcpy(&w, p + n - 8, 8);
        w >>= 8 * (8 - n);
    } else {
        for (size_t i = 0; i < n; i++) /* a zero-length key may come without a pointer */
            w |= (uint64_t)p[i] << (8 * i);
    }
    h = rotl64(h ^ w * k2, 31) * k1;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}
