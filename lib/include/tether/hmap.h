/* tether — intrusive chained hash map keyed by short byte strings (CIDs,
 * address tuples), with a keyed hash so peers cannot aim keys at one bucket.
 * The map never owns entries: callers embed tether_hnode_t, keep it alive
 * while linked and recover the owner with container_of. Public because
 * tetherd (cluster routes) and tether-bench keep tables of their own. */
#ifndef TETHER_HMAP_H
#define TETHER_HMAP_H

#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"

/* 23: a node is then 32 bytes (no stored hash: growing and removing
 * hash the key again), and every session and registration holds several
 * (SPEC S9 budgets an idle tunnel at 600 bytes). The longest key in use
 * is 22 (a link key and a message ID, coap/exchange.c). */
#define TETHER_HKEY_MAX 23

typedef struct tether_hnode {
    struct tether_hnode *next;
    uint8_t klen;
    uint8_t key[TETHER_HKEY_MAX];
} tether_hnode_t;

typedef struct {
    tether_hnode_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    uint64_t seed;
} tether_hmap_t;

/* Empty map of at least `initial` buckets (it doubles as entries come).
 * 0 or TETHER_ENOMEM. */
TETHER_API int tether_hmap_init(tether_hmap_t *m, size_t initial, uint64_t seed);
/* Frees the buckets; linked entries stay the caller's. */
TETHER_API void tether_hmap_free(tether_hmap_t *m);
/* Sets n's key and links it: 0, TETHER_EEXIST when the key is present,
 * TETHER_EINVAL when klen > TETHER_HKEY_MAX. */
TETHER_API int tether_hmap_insert(tether_hmap_t *m, tether_hnode_t *n, const void *key,
                                  size_t klen);
/* The entry with that key, NULL when none. */
TETHER_API tether_hnode_t *tether_hmap_find(const tether_hmap_t *m, const void *key, size_t klen);
/* Unlinks n (which must be linked in m). */
TETHER_API void tether_hmap_remove(tether_hmap_t *m, tether_hnode_t *n);

#endif
