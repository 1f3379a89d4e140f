/* The Redis write backlog (see backlog.h). */
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "backlog.h"
#include "tether/common.h"
#include "tether/container.h"

#define DIGEST 16

#define ENTRY(n) container_of(n, tetherd_dirty_t, order)

/* A collision-resistant digest: key names come from device names, which
 * devices choose. */
static void digest(const char *rkey, size_t len, uint8_t out[DIGEST])
{
    uint8_t d[WC_SHA256_DIGEST_SIZE];
    wc_Sha256Hash((const byte *)rkey, (word32)len, d);
    memcpy(out, d, DIGEST);
}

int tetherd_backlog_init(tetherd_backlog_t *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
    uint64_t seed = (uint64_t)(uintptr_t)b * 0x9e3779b97f4a7c15ull;
    return tether_hmap_init(&b->map, 64, seed);
}

static void entry_free(tetherd_backlog_t *b, tetherd_dirty_t *e)
{
    tether_hmap_remove(&b->map, &e->hn);
    tether_list_del(&b->order, &e->order);
    b->count--;
    free(e->value);
    free(e);
}

void tetherd_backlog_free(tetherd_backlog_t *b)
{
    while (b->order.head)
        entry_free(b, ENTRY(b->order.head));
    tether_hmap_free(&b->map);
}

tetherd_dirty_t *tetherd_backlog_find(const tetherd_backlog_t *b, const char *rkey)
{
    uint8_t d[DIGEST];
    size_t len = strlen(rkey);
    digest(rkey, len, d);
    tether_hnode_t *h = tether_hmap_find(&b->map, d, sizeof d);
    tetherd_dirty_t *e = h ? container_of(h, tetherd_dirty_t, hn) : NULL;
    return e && e->rkey_len == len && memcmp(e->rkey, rkey, len) == 0 ? e : NULL;
}

int tetherd_backlog_mark(tetherd_backlog_t *b, const char *rkey, uint64_t base, char *value,
                         uint32_t ttl_ms)
{
    tetherd_dirty_t *e = tetherd_backlog_find(b, rkey);
    if (e) {
        free(e->value);
        e->value = value;
        e->del = !value;
        e->ttl_ms = ttl_ms;
        e->gen++;
        b->coalesced++;
        return 0;
    }
    size_t len = strlen(rkey);
    uint8_t d[DIGEST];
    if (b->count >= b->max) {
        free(value);
        return TETHER_ELIMIT;
    }
    digest(rkey, len, d);
    if (tether_hmap_find(&b->map, d, sizeof d) || !(e = calloc(1, sizeof *e + len + 1))) {
        free(value); /* a digest collision is refused like a full backlog */
        return e ? TETHER_ELIMIT : TETHER_ENOMEM;
    }
    memcpy(e->rkey, rkey, len + 1);
    e->rkey_len = len;
    e->value = value;
    e->del = !value;
    e->ttl_ms = ttl_ms;
    e->base = base;
    e->gen = 1;
    tether_hmap_insert(&b->map, &e->hn, d, sizeof d); /* absent: checked above */
    tether_list_push(&b->order, &e->order);
    b->count++;
    return 0;
}

tetherd_dirty_t *tetherd_backlog_next(const tetherd_backlog_t *b)
{
    for (tether_lnode_t *n = b->order.head; n; n = n->next)
        if (!ENTRY(n)->inflight)
            return ENTRY(n);
    return NULL;
}

void tetherd_backlog_sent(tetherd_backlog_t *b, tetherd_dirty_t *e)
{
    e->inflight = true;
    e->sent_gen = e->gen;
    tether_list_del(&b->order, &e->order);
    tether_list_push(&b->order, &e->order);
}

bool tetherd_backlog_acked(tetherd_backlog_t *b, tetherd_dirty_t *e, uint64_t version)
{
    e->inflight = false;
    e->base = version;
    if (e->gen != e->sent_gen)
        return false;
    entry_free(b, e);
    return true;
}

void tetherd_backlog_failed(tetherd_backlog_t *b, tetherd_dirty_t *e)
{
    (void)b;
    e->inflight = false;
}

void tetherd_backlog_fail_all(tetherd_backlog_t *b)
{
    for (tether_lnode_t *n = b->order.head; n; n = n->next)
        ENTRY(n)->inflight = false;
}

void tetherd_backlog_drop(tetherd_backlog_t *b, tetherd_dirty_t *e)
{
    entry_free(b, e);
}
