/* Checkpoint high-water marks (see ckseen.h). */
#include <stdlib.h>
#include <string.h>

#include "dtls/ckseen.h"
#include "tether/common.h"
#include "tether/container.h"

int tether_ckseen_init(tether_ckseen_t *t, size_t max, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->max = max ? max : 1;
    return tether_hmap_init(&t->map, 64, seed);
}

static void drop(tether_ckseen_t *t, tether_ckseen_ent_t *e)
{
    tether_hmap_remove(&t->map, &e->node);
    tether_list_del(&t->order, &e->ln);
    t->n--;
    free(e);
}

void tether_ckseen_free(tether_ckseen_t *t)
{
    while (t->order.head)
        drop(t, container_of(t->order.head, tether_ckseen_ent_t, ln));
    tether_hmap_free(&t->map);
}

static tether_ckseen_ent_t *find(const tether_ckseen_t *t, const uint8_t *cid, size_t len)
{
    tether_hnode_t *h = tether_hmap_find(&t->map, cid, len);
    return h ? container_of(h, tether_ckseen_ent_t, node) : NULL;
}

void tether_ckseen_note(tether_ckseen_t *t, const uint8_t *cid, size_t len, uint64_t version,
                        uint64_t ceiling)
{
    if (!len || len > TETHER_CKSEEN_CID_MAX)
        return;
    tether_ckseen_ent_t *e = find(t, cid, len);
    if (e) {
        tether_list_del(&t->order, &e->ln);
    } else {
        if (t->n >= t->max)
            drop(t, container_of(t->order.head, tether_ckseen_ent_t, ln));
        if (!(e = calloc(1, sizeof *e)))
            return;
        e->cid_len = (uint8_t)len;
        memcpy(e->cid, cid, len);
        if (tether_hmap_insert(&t->map, &e->node, e->cid, len) < 0) {
            free(e);
            return;
        }
        t->n++;
    }
    tether_list_push(&t->order, &e->ln);
    if (version > e->version)
        e->version = version;
    if (ceiling > e->ceiling)
        e->ceiling = ceiling;
}

bool tether_ckseen_stale(const tether_ckseen_t *t, const uint8_t *cid, size_t len, uint64_t version,
                         uint64_t ceiling)
{
    const tether_ckseen_ent_t *e = len <= TETHER_CKSEEN_CID_MAX ? find(t, cid, len) : NULL;
    return e && (version < e->version || ceiling < e->ceiling);
}
