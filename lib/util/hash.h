/* The one hash function of tether: a seeded, non-cryptographic 64-bit
 * digest of a byte string (a multiply-rotate pass over 8-byte words and a
 * final avalanche). Hash maps, the cache's keys and the registry's name
 * keys all use it. The seed is random per table so remote peers cannot
 * aim many keys at one bucket; callers that need equality still compare
 * the full key after a digest hit. Where an attacker could gain from a
 * collision (rate limiting, cookies) the code uses SHA-256/HMAC instead. */
#ifndef TETHER_HASH_H
#define TETHER_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t tether_hash64(uint64_t seed, const void *p, size_t n);

#endif
