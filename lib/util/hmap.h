/* Intrusive chained hash map keyed by short byte strings (CIDs, address
 * tuples). The map never owns entries: callers embed tether_hnode_t. */
#ifndef TETHER_HMAP_H
#define TETHER_HMAP_H

#include <stddef.h>
#include <stdint.h>

#define TETHER_HKEY_MAX 24

typedef struct tether_hnode {
    struct tether_hnode *next;
    uint32_t hash;
    uint8_t klen;
    uint8_t key[TETHER_HKEY_MAX];
} tether_hnode_t;

typedef struct {
    tether_hnode_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    uint64_t seed;
} tether_hmap_t;

int tether_hmap_init(tether_hmap_t *m, size_t initial, uint64_t seed);
void tether_hmap_free(tether_hmap_t *m);
/* Sets n's key and links it; TETHER_EEXIST when the key is present. */
int tether_hmap_insert(tether_hmap_t *m, tether_hnode_t *n, const void *key, size_t klen);
tether_hnode_t *tether_hmap_find(const tether_hmap_t *m, const void *key, size_t klen);
void tether_hmap_remove(tether_hmap_t *m, tether_hnode_t *n);

#endif
