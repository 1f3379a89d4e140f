/* Big-endian (network order) 64-bit fields of wire formats. */
#ifndef TETHER_UTIL_BE64_H
#define TETHER_UTIL_BE64_H

#include <stdint.h>

static inline void tether_be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t tether_be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

#endif
