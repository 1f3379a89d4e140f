/* tetherd per-request proxy latency: see latency.h. */
#include "latency.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tether/common.h"

static tetherd_lat_pending_t *pending_of(tether_hnode_t *h)
{
    return (tetherd_lat_pending_t *)((char *)h - offsetof(tetherd_lat_pending_t, node));
}

int tetherd_lat_init(tetherd_lat_t *l)
{
    memset(l, 0, sizeof *l);
    tether_hist_init(&l->relayed);
    l->ring = calloc(TETHERD_LAT_PENDING, sizeof *l->ring);
    if (!l->ring)
        return TETHER_ENOMEM;
    if (tether_hmap_init(&l->by_token, TETHERD_LAT_PENDING, 0x1a7e9c3) < 0) {
        free(l->ring);
        l->ring = NULL;
        return TETHER_ENOMEM;
    }
    return 0;
}

void tetherd_lat_free(tetherd_lat_t *l)
{
    if (!l->ring)
        return;
    tether_hmap_free(&l->by_token);
    free(l->ring);
    l->ring = NULL;
}

/* The CoAP header (RFC 7252 §3): code class and the token as a map key
 * after the link id. False for anything too short to be a message. */
static bool coap_key(uint64_t link, const uint8_t *msg, size_t len, uint8_t *cls, uint8_t *key,
                     uint8_t *klen)
{
    if (len < 4 || msg[0] >> 6 != 1)
        return false;
    size_t tkl = msg[0] & 0x0f;
    if (tkl > 8 || len < 4 + tkl)
        return false;
    *cls = msg[1] >> 5;
    if (msg[1] == 0) /* empty message: ACK, RST, ping */
        return false;
    memcpy(key, &link, sizeof link);
    memcpy(key + sizeof link, msg + 4, tkl);
    *klen = (uint8_t)(sizeof link + tkl);
    return true;
}

void tetherd_lat_read(tetherd_lat_t *l, uint64_t now_ns)
{
    if (!l->batch_ns)
        l->batch_ns = now_ns;
}

void tetherd_lat_in(tetherd_lat_t *l, uint64_t link, const uint8_t *msg, size_t len)
{
    uint8_t cls, key[TETHER_HKEY_MAX], klen;
    l->in_request = l->in_answer = false;
    if (!l->ring || !l->batch_ns || !coap_key(link, msg, len, &cls, key, &klen))
        return;
    l->in_link = link;
    if (cls == 0) {
        l->in_request = true;
        return;
    }
    tether_hnode_t *h = tether_hmap_find(&l->by_token, key, klen);
    if (!h)
        return;
    tetherd_lat_pending_t *p = pending_of(h);
    l->in_answer = true;
    l->in_leg1_ns = p->leg1_ns;
    tether_hmap_remove(&l->by_token, &p->node);
    p->used = false;
}

void tetherd_lat_out(tetherd_lat_t *l, uint64_t link, const uint8_t *msg, size_t len)
{
    uint8_t cls, key[TETHER_HKEY_MAX], klen;
    if (!l->batch_ns || link == l->in_link || !coap_key(link, msg, len, &cls, key, &klen))
        return;
    if (l->in_request && cls == 0 && l->nlegs1 < TETHERD_LAT_BATCH) {
        memcpy(l->legs1[l->nlegs1].key, key, klen);
        l->legs1[l->nlegs1++].klen = klen;
        l->in_request = false; /* one device request per client request */
    } else if (l->in_answer && cls != 0 && l->nlegs2 < TETHERD_LAT_BATCH) {
        l->legs2_leg1[l->nlegs2++] = l->in_leg1_ns;
        l->in_answer = false; /* the client's answer, not an observer's copy */
    }
}

void tetherd_lat_sent(tetherd_lat_t *l, uint64_t now_ns, bool batch_end)
{
    if (!l->batch_ns)
        return;
    uint64_t leg = now_ns > l->batch_ns ? now_ns - l->batch_ns : 0;
    for (size_t i = 0; i < l->nlegs1; i++) {
        tetherd_lat_pending_t *p = &l->ring[l->ring_head];
        l->ring_head = (l->ring_head + 1) % TETHERD_LAT_PENDING;
        if (p->used) { /* the oldest request still waiting: forget it */
            tether_hmap_remove(&l->by_token, &p->node);
            l->unmatched++;
        }
        tether_hnode_t *old = tether_hmap_find(&l->by_token, l->legs1[i].key, l->legs1[i].klen);
        if (old) { /* a token reused before its answer came */
            tether_hmap_remove(&l->by_token, old);
            pending_of(old)->used = false;
            l->unmatched++;
        }
        p->used =
            tether_hmap_insert(&l->by_token, &p->node, l->legs1[i].key, l->legs1[i].klen) == 0;
        p->leg1_ns = leg;
    }
    for (size_t i = 0; i < l->nlegs2; i++)
        tether_hist_record(&l->relayed, (l->legs2_leg1[i] + leg) / 1000);
    l->nlegs1 = l->nlegs2 = 0;
    if (batch_end) {
        l->batch_ns = 0;
        l->in_request = l->in_answer = false;
    }
}
