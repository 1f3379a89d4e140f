/* GET /observations (SPEC S6): the cluster's observe registry, read from
 * the state store's OBSERVE records (lib/proxy/obsstore.h: one record per
 * observed resource and node, each listing that node's client observers).
 * With Redis the store is the local replica of every node's records, so
 * any node answers for the whole cluster; without it, this node's own.
 *
 * Answer: {"observations": [{"device": NAME, "path": "/temp",
 * "observers": N, "nodes": {"1": n1, ...}, "list": [{"node": ID, "token":
 * HEX}, ...]}], "count": RESOURCES}. The device node's record counts only
 * its own clients: the others are in their nodes' records. */
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "tether/store.h"

#define LIST_MAX 1000 /* observers listed per resource (all are counted) */

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* "/a/b" from the cache key's path part: length byte and name, count
 * byte, then each Uri-Path as a 16-bit length and its bytes
 * (lib/proxy/cache.h). False when it does not parse. */
static bool key_path(const uint8_t *k, size_t len, char *out, size_t cap)
{
    size_t at = 0, o = 0;
    if (len < 2 || (size_t)k[0] + 2 > len)
        return false;
    at = 1 + k[0];
    unsigned nseg = k[at++];
    out[0] = 0;
    for (unsigned i = 0; i < nseg; i++) {
        if (at + 2 > len)
            return false;
        size_t sl = (size_t)k[at] << 8 | k[at + 1];
        at += 2;
        if (at + sl > len || o + sl + 2 > cap)
            return false;
        out[o++] = '/';
        memcpy(out + o, k + at, sl);
        o += sl;
        at += sl;
    }
    if (!nseg && cap > 1)
        out[o++] = '/';
    out[o] = 0;
    return true;
}

typedef struct {
    json_t *by_res; /* resource key hex -> its object */
    uint64_t cursor;
    bool more;
} scan_t;

static void one(void *user, const tether_store_result_t *res)
{
    scan_t *s = user;
    s->more = false;
    if (res->rc != 0 || !res->rec || res->rec->kind != TETHER_STORE_OBSERVE)
        return;
    s->more = true;
    s->cursor = res->cursor;
    const tether_store_observe_t *o = &res->rec->u.observe;
    if (o->key_len < 3 || o->key_len > TETHER_STORE_KEY_MAX)
        return;
    size_t rl = o->key_len - 1; /* the record key: resource | node id */
    char kh[2 * TETHER_STORE_KEY_MAX + 1], path[1024], node[4];
    hex(o->key, rl, kh);
    json_t *r = json_object_get(s->by_res, kh);
    if (!r) {
        if (!key_path(o->key, rl, path, sizeof path))
            snprintf(path, sizeof path, "?");
        r = json_pack("{s:s, s:s, s:i, s:{}, s:[]}", "device", o->device, "path", path, "observers",
                      0, "nodes", "list");
        if (!r)
            return;
        json_object_set_new(s->by_res, kh, r);
    }
    snprintf(node, sizeof node, "%u", o->key[rl]);
    json_t *nodes = json_object_get(r, "nodes"), *list = json_object_get(r, "list");
    json_object_set_new(nodes, node, json_integer((json_int_t)o->nobservers));
    json_object_set_new(r, "observers",
                        json_integer(json_integer_value(json_object_get(r, "observers")) +
                                     (json_int_t)o->nobservers));
    for (size_t i = 0; i < o->nobservers && json_array_size(list) < LIST_MAX; i++) {
        char th[2 * TETHER_STORE_TOKEN_MAX + 1];
        hex(o->observers[i].token, o->observers[i].tkl, th);
        json_array_append_new(
            list, json_pack("{s:i, s:s}", "node", (int)o->observers[i].node_id, "token", th));
    }
}

json_t *tetherd_admin_observations_json(tether_store_t *store, tether_time_t now)
{
    scan_t s = {.by_res = json_object()};
    if (!s.by_res)
        return NULL;
    /* The store's scan answers from memory before returning (the Redis
     * store from its replica); a store that did not would end the list. */
    do {
        s.more = false;
        if (tether_store_scan(store, TETHER_STORE_OBSERVE, s.cursor, now, one, &s) < 0)
            break;
    } while (s.more);
    json_t *arr = json_array(), *v;
    const char *k;
    json_object_foreach(s.by_res, k, v) json_array_append(arr, v);
    json_decref(s.by_res);
    return json_pack("{s:o, s:i}", "observations", arr, "count", (int)json_array_size(arr));
}

void admin_h_observations(admin_conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    tetherd_admin_t *a = c->a;
    if (!a->hooks.observations) {
        admin_respond_error(c, 501, NULL, "GET /observations is not available in this process");
        return;
    }
    json_t *j = a->hooks.observations(a->hooks.user);
    admin_respond_json(c, j ? 200 : 500, j, NULL);
    json_decref(j);
}
