/* Per-client bounds of the proxy (see bounds.h). */
#include <stdlib.h>
#include <string.h>

#include "proxy/bounds.h"
#include "tether/addr.h"
#include "tether/creds.h"
#include "util/container.h"
#include "util/hash.h"

#define DIGEST_LEN 16

int tether_bounds_init(tether_bounds_t *b, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    b->seed = seed;
    return tether_hmap_init(&b->clients, 64, seed);
}

void tether_bounds_free(tether_bounds_t *b)
{
    while (b->all.head) {
        tether_bclient_t *c = container_of(b->all.head, tether_bclient_t, all);
        tether_list_del(&b->all, &c->all);
        tether_hmap_remove(&b->clients, &c->node);
        free(c);
    }
    tether_hmap_free(&b->clients);
}

/* The client's key into key[]: its identity, else its link; 0 when it is
 * exempt (an operator request). */
static size_t client_key(const tether_peer_t *peer, uint8_t key[TETHER_IDENTITY_MAX + 21])
{
    if (peer->link.kind == TETHER_LINK_INTERNAL)
        return 0;
    if (peer->identity) {
        size_t l = strnlen(peer->identity, TETHER_IDENTITY_MAX - 1);
        key[0] = 'I';
        memcpy(key + 1, peer->identity, l);
        return 1 + l;
    }
    key[0] = 'L';
    return 1 + tether_link_key(&peer->link, key + 1);
}

/* Keyed 128-bit digest of a client key (two seeded passes of the one
 * hash): identities are longer than a hash map key. */
static void digest(const tether_bounds_t *b, const uint8_t *key, size_t kl, uint8_t d[DIGEST_LEN])
{
    for (int half = 0; half < 2; half++) {
        uint64_t h = tether_hash64(b->seed + (uint64_t)half * 0x9e3779b97f4a7c15ull, key, kl);
        memcpy(d + 8 * half, &h, 8);
    }
}

int tether_bounds_charge(tether_bounds_t *b, const tether_peer_t *peer, enum tether_bound_kind kind,
                         uint32_t limit, tether_bclient_t **out)
{
    uint8_t key[TETHER_IDENTITY_MAX + 21], d[DIGEST_LEN];
    size_t kl = client_key(peer, key);
    *out = NULL;
    if (!kl)
        return 0;
    digest(b, key, kl, d);
    tether_hnode_t *h = tether_hmap_find(&b->clients, d, sizeof d);
    tether_bclient_t *c = h ? container_of(h, tether_bclient_t, node) : NULL;
    if (c && (c->key_len != kl || memcmp(c->key, key, kl) != 0))
        return TETHER_EEXIST;
    if (c && limit && c->n[kind] >= limit)
        return TETHER_ELIMIT;
    if (!c) {
        if (!(c = calloc(1, sizeof *c + kl)))
            return TETHER_ENOMEM;
        memcpy(c->key, key, kl);
        c->key_len = (uint8_t)kl;
        tether_hmap_insert(&b->clients, &c->node, d, sizeof d); /* absent: just looked */
        tether_list_push(&b->all, &c->all);
    }
    c->n[kind]++;
    *out = c;
    return 0;
}

int tether_bounds_charge_more(tether_bclient_t *c, enum tether_bound_kind kind, uint32_t limit)
{
    if (!c)
        return 0;
    if (limit && c->n[kind] >= limit)
        return TETHER_ELIMIT;
    c->n[kind]++;
    return 0;
}

void tether_bounds_release(tether_bounds_t *b, tether_bclient_t *c, enum tether_bound_kind kind)
{
    if (!c)
        return;
    c->n[kind]--;
    for (int k = 0; k < TETHER_BOUND_KINDS; k++)
        if (c->n[k])
            return;
    tether_hmap_remove(&b->clients, &c->node);
    tether_list_del(&b->all, &c->all);
    free(c);
}
