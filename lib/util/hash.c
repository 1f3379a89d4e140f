/* The seeded 64-bit digest (see hash.h). */
#include <string.h>

#include "util/hash.h"

static uint64_t rotl64(uint64_t x, int r) { return x << r | x >> (64 - r); }

uint64_t tether_hash64(uint64_t seed, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    const uint64_t k1 = 0x9e3779b97f4a7c15ull, k2 = 0xc2b2ae3d27d4eb4full;
    uint64_t h = seed ^ (n * k1), w;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = rotl64(h ^ w * k2, 31) * k1;
    }
    w = 0;
    if (n) /* a zero-length key may come without a pointer */
        memcpy(&w, p, n);
    h = rotl64(h ^ w * k2, 31) * k1;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}
