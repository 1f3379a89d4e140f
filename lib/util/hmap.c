/* Chained hash map with a keyed hash (so remote peers cannot aim many keys
 * at one bucket) and doubling growth at load factor LOAD_MAX. */
#include <stdlib.h>
#include <string.h>

#include "tether/common.h"
#include "tether/hmap.h"
#include "util/hash.h"

/* Entries per bucket before the table doubles: chains of 1-2 on average
 * (a lookup compares about 1.5 keys instead of 1.25 at 1) and buckets of
 * 4-8 bytes per entry instead of 8-16: a registered device is in six maps
 * (SPEC S9 budgets an idle tunnel at 600 bytes). */
#define LOAD_MAX 2

/* The per-map seeded digest (util/hash.h) of a key: its bucket's index in
 * a table of nbuckets (a power of two). Not stored in the node: growing
 * (rare) and removing hash the key again. */
static size_t bucket_of(const tether_hmap_t *m, size_t nbuckets, const uint8_t *k, size_t n)
{
    return (size_t)tether_hash64(m->seed, k, n) & (nbuckets - 1);
}

int tether_hmap_init(tether_hmap_t *m, size_t initial, uint64_t seed)
{
    size_t n = 16;
    while (n < initial)
        n <<= 1;
    m->buckets = calloc(n, sizeof *m->buckets);
    if (!m->buckets)
        return TETHER_ENOMEM;
    m->nbuckets = n;
    m->count = 0;
    m->seed = seed;
    return 0;
}

void tether_hmap_free(tether_hmap_t *m)
{
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->count = 0;
}

static void grow(tether_hmap_t *m)
{
    size_t n = m->nbuckets * 2;
    tether_hnode_t **b = calloc(n, sizeof *b);
    if (!b)
        return; /* keep working at a higher load factor */
    for (size_t i = 0; i < m->nbuckets; i++) {
        tether_hnode_t *e = m->buckets[i];
        while (e) {
            tether_hnode_t *next = e->next;
            size_t i2 = bucket_of(m, n, e->key, e->klen);
            e->next = b[i2];
            b[i2] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

/* The entry with key k in the chain starting at e, or NULL. */
static tether_hnode_t *chain_find(tether_hnode_t *e, const void *k, size_t klen)
{
    for (; e; e = e->next)
        if (e->klen == klen && memcmp(e->key, k, klen) == 0)
            return e;
    return NULL;
}

tether_hnode_t *tether_hmap_find(const tether_hmap_t *m, const void *key, size_t klen)
{
    if (klen > TETHER_HKEY_MAX)
        return NULL;
    return chain_find(m->buckets[bucket_of(m, m->nbuckets, key, klen)], key, klen);
}

int tether_hmap_insert(tether_hmap_t *m, tether_hnode_t *n, const void *key, size_t klen)
{
    if (klen > TETHER_HKEY_MAX)
        return TETHER_EINVAL;
    /* One digest serves the duplicate check and the link; only growing
     * (rare) moves the key to another bucket. */
    uint64_t h = tether_hash64(m->seed, key, klen);
    if (chain_find(m->buckets[h & (m->nbuckets - 1)], key, klen))
        return TETHER_EEXIST;
    if (m->count >= LOAD_MAX * m->nbuckets)
        grow(m);
    memcpy(n->key, key, klen);
    n->klen = (uint8_t)klen;
    tether_hnode_t **b = &m->buckets[h & (m->nbuckets - 1)];
    n->next = *b;
    *b = n;
    m->count++;
    return 0;
}

void tether_hmap_remove(tether_hmap_t *m, tether_hnode_t *n)
{
    tether_hnode_t **p = &m->buckets[bucket_of(m, m->nbuckets, n->key, n->klen)];
    while (*p && *p != n)
        p = &(*p)->next;
    if (*p) {
        *p = n->next;
        m->count--;
    }
    n->next = NULL;
}
