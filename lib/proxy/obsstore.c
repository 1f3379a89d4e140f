/* The observe registry in the state store (see obsstore.h). */
#include <stdio.h>
#include <string.h>

#include "proxy/obsstore.h"

void tether_obsstore_observer(const tether_node_t *n, const tether_link_t *link, const uint8_t *tok,
                              size_t tkl, tether_store_observer_t *out)
{
    memset(out, 0, sizeof *out);
    out->node_id = n->conf.node_id;
    out->link_len = (uint8_t)tether_link_key(link, out->link);
    out->tkl = (uint8_t)(tkl <= TETHER_STORE_TOKEN_MAX ? tkl : TETHER_STORE_TOKEN_MAX);
    memcpy(out->token, tok, out->tkl);
}

/* key[kl] | node into buf; false when it does not fit. */
static bool rec_key(const uint8_t *key, size_t kl, uint8_t node, uint8_t *buf, size_t *len)
{
    if (kl + 1 > TETHER_STORE_KEY_MAX)
        return false;
    memcpy(buf, key, kl);
    buf[kl] = node;
    *len = kl + 1;
    return true;
}

void tether_obsstore_write(tether_node_t *n, const uint8_t *key, size_t kl, const char *device,
                           const uint8_t *utok, size_t utok_len, const tether_store_observer_t *obs,
                           size_t nobs, tether_time_t now)
{
    uint8_t k[TETHER_STORE_KEY_MAX];
    size_t len;
    if (!rec_key(key, kl, n->conf.node_id, k, &len))
        return;
    if (!nobs) {
        tether_store_del(n->store, TETHER_STORE_OBSERVE, k, len, TETHER_STORE_ANY, now, NULL, NULL);
        return;
    }
    tether_store_rec_t rec = {.kind = TETHER_STORE_OBSERVE};
    tether_store_observe_t *o = &rec.u.observe;
    o->key = k;
    o->key_len = len;
    snprintf(o->device, sizeof o->device, "%s", device);
    o->utok_len = (uint8_t)(utok_len <= TETHER_STORE_TOKEN_MAX ? utok_len : TETHER_STORE_TOKEN_MAX);
    memcpy(o->utok, utok, o->utok_len);
    o->observers = obs;
    o->nobservers = nobs;
    /* Our own record: nobody else writes it, so unconditionally. A full
     * store drops the registry entry, never the observation. */
    tether_store_put(n->store, &rec, TETHER_STORE_ANY, 0, now, NULL, NULL);
}

void tether_obsstore_drop(tether_node_t *n, const uint8_t *key, size_t kl, uint8_t node_id,
                          tether_time_t now)
{
    uint8_t k[TETHER_STORE_KEY_MAX];
    size_t len;
    if (rec_key(key, kl, node_id, k, &len))
        tether_store_del(n->store, TETHER_STORE_OBSERVE, k, len, TETHER_STORE_ANY, now, NULL, NULL);
}
