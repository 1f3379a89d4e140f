/* The state-store interface (see tether/store.h): dispatch to the
 * implementation, record keys and watchers, shared by every implementation. */
#include <string.h>

#include "state/store_impl.h"

/* A key that is a name in a char[TETHER_IDENTITY_MAX]: its length, or
 * the array's size when it is not terminated. */
static size_t name_len(const char *name)
{
    return strnlen(name, TETHER_IDENTITY_MAX);
}

int tether_store_rec_key(const tether_store_rec_t *rec, uint8_t buf[1], const uint8_t **key,
                         size_t *key_len)
{
    const uint8_t *k = NULL;
    size_t n = 0;
    switch (rec->kind) {
    case TETHER_STORE_DEVICE:
        k = (const uint8_t *)rec->u.device.name;
        n = name_len(rec->u.device.name);
        break;
    case TETHER_STORE_CRED:
        k = (const uint8_t *)rec->u.cred.identity;
        n = name_len(rec->u.cred.identity);
        break;
    case TETHER_STORE_GROUP:
        k = (const uint8_t *)rec->u.group.name;
        n = name_len(rec->u.group.name);
        break;
    case TETHER_STORE_OBSERVE:
        k = rec->u.observe.key;
        n = rec->u.observe.key_len;
        break;
    case TETHER_STORE_SESSION:
        k = rec->u.session.cid;
        n = rec->u.session.cid_len;
        if (n > TETHER_STORE_CID_MAX)
            return TETHER_EINVAL;
        break;
    case TETHER_STORE_NODE:
        buf[0] = rec->u.node.node_id;
        k = buf;
        n = 1;
        break;
    default: return TETHER_EINVAL;
    }
    /* a name of TETHER_IDENTITY_MAX bytes is not terminated */
    if (!n || n > TETHER_STORE_KEY_MAX || !k ||
        (n == TETHER_IDENTITY_MAX &&
         (rec->kind == TETHER_STORE_DEVICE || rec->kind == TETHER_STORE_CRED ||
          rec->kind == TETHER_STORE_GROUP)))
        return TETHER_EINVAL;
    *key = k;
    *key_len = n;
    return 0;
}

int tether_store_get(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key,
                     size_t key_len, tether_time_t now, tether_store_cb cb, void *user)
{
    return s->ops->get(s, kind, key, key_len, now, cb, user);
}

int tether_store_peek(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key,
                      size_t key_len, tether_time_t now, tether_store_rec_t *out, uint64_t *version)
{
    if (!s->ops->peek)
        return TETHER_EAGAIN;
    return s->ops->peek(s, kind, key, key_len, now, out, version);
}

int tether_store_put(tether_store_t *s, const tether_store_rec_t *rec, uint64_t expect,
                     uint32_t ttl_ms, tether_time_t now, tether_store_cb cb, void *user)
{
    return s->ops->put(s, rec, expect, ttl_ms, now, cb, user);
}

int tether_store_del(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key,
                     size_t key_len, uint64_t expect, tether_time_t now, tether_store_cb cb,
                     void *user)
{
    return s->ops->del(s, kind, key, key_len, expect, now, cb, user);
}

int tether_store_scan(tether_store_t *s, tether_store_kind_t kind, uint64_t cursor,
                      tether_time_t now, tether_store_cb cb, void *user)
{
    return s->ops->scan(s, kind, cursor, now, cb, user);
}

void tether_store_tick(tether_store_t *s, tether_time_t now)
{
    s->ops->tick(s, now);
}

tether_time_t tether_store_next_deadline(const tether_store_t *s)
{
    return s->ops->next_deadline(s);
}

void tether_store_destroy(tether_store_t *s)
{
    if (s)
        s->ops->destroy(s);
}

int tether_store_watch(tether_store_t *s, tether_store_watch_cb cb, void *user)
{
    for (size_t i = 0; i < TETHER_STORE_WATCHERS_MAX; i++) {
        if (!s->watchers[i].cb) {
            s->watchers[i].cb = cb;
            s->watchers[i].user = user;
            return 0;
        }
    }
    return TETHER_ELIMIT;
}

void tether_store_unwatch(tether_store_t *s, tether_store_watch_cb cb, void *user)
{
    for (size_t i = 0; i < TETHER_STORE_WATCHERS_MAX; i++)
        if (s->watchers[i].cb == cb && s->watchers[i].user == user)
            s->watchers[i].cb = NULL;
}

void tether_store_notify(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key,
                         size_t key_len, uint64_t version)
{
    for (size_t i = 0; i < TETHER_STORE_WATCHERS_MAX; i++)
        if (s->watchers[i].cb) /* a watcher may unwatch itself while told */
            s->watchers[i].cb(s->watchers[i].user, kind, key, key_len, version);
}

tether_lnode_t *tether_store_scan_start(const tether_list_t *order,
                                        const tether_store_scan_pos_t *p, uint64_t cursor)
{
    /* Every record before p->at has a smaller seq: none is after cursor. */
    if (p->at && p->seq <= cursor)
        return p->at->next;
    return order->head;
}

void tether_store_scan_forget(tether_store_scan_pos_t *p, const tether_lnode_t *n)
{
    if (p->at == n)
        p->at = n->prev; /* p->seq stays: the predecessor's is smaller */
}
