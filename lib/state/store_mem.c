/* The embedded in-memory state store (see tether/store.h): one node
 * without Redis keeps its shared state here, behind the same interface a
 * Redis store implements.
 *
 * Records are found by a hash lookup on (kind, seeded digest of the key),
 * the full key compared after a hit (a digest collision between two live
 * keys makes the second put fail with TETHER_ELIMIT rather than mix them
 * up). Each kind keeps its records in creation order for scans; an entry
 * stays in place when its record is replaced, so a scan cursor (the
 * entry's creation number) survives updates. Records put with a ttl sit in
 * a timer heap; expired ones are never returned, and tick removes them.
 * Every operation completes, callback first and then watchers, before the
 * call returns. */
#include <stdlib.h>
#include <string.h>

#include "state/store_impl.h"
#include "util/container.h"
#include "util/hash.h"
#include "util/heap.h"
#include "util/hmap.h"
#include "util/list.h"

#define MAP_KEY_LEN (1 + sizeof(uint64_t)) /* kind, digest */

/* One record in one allocation sized to its kind (SPEC S9: a registered
 * device's directory entry is part of an idle tunnel's budget): the
 * header, then `body`: the kind's struct (not the whole record union),
 * without its leading name array for the kinds keyed by a name, then the
 * variable parts (arrays first, at the body's 8-byte alignment), then the
 * name at its length. A get or scan rebuilds the record in the caller's
 * frame (valid during the callback, as tether/store.h promises), its
 * pointers into body. A record put with a ttl has its timer just before
 * the header, in the same allocation; the others (a device's directory
 * entry) have none. */
typedef struct {
    tether_hnode_t hn;    /* key: kind + digest of the record key */
    tether_lnode_t order; /* in m->order[kind], creation order */
    uint64_t seq;         /* creation number: the scan cursor */
    uint64_t version;
    uint32_t key_off; /* the key: body + key_off */
    uint16_t key_len; /* <= TETHER_STORE_KEY_MAX */
    uint8_t kind;
    bool timed;      /* a timer precedes the header (put with a ttl) */
    uint64_t body[]; /* 8-byte aligned */
} entry_t;

_Static_assert(sizeof(tether_timer_t) % 8 == 0, "the header after a timer stays aligned");

/* The ttl timer of `e`, NULL when it was put without a ttl. */
static tether_timer_t *entry_timer(const entry_t *e)
{
    return e->timed ? (tether_timer_t *)e - 1 : NULL;
}

static entry_t *timer_entry(tether_timer_t *t)
{
    return (entry_t *)(t + 1);
}

static const uint8_t *entry_key(const entry_t *e)
{
    return (const uint8_t *)e->body + e->key_off;
}

/* Its ttl ran out (it is not yet ticked away). */
static bool entry_expired(const entry_t *e, tether_time_t now)
{
    const tether_timer_t *t = entry_timer(e);
    return t && tether_timer_armed(t) && t->at <= now;
}

/* An entry of `size` bytes after the header (uninitialised but for the
 * header, zeroed, and the timer when `timed`); NULL on TETHER_ENOMEM. */
static entry_t *entry_alloc(size_t size, bool timed)
{
    size_t pad = timed ? sizeof(tether_timer_t) : 0;
    uint8_t *p = malloc(pad + sizeof(entry_t) + size);
    if (!p)
        return NULL;
    entry_t *e = (entry_t *)(p + pad);
    memset(e, 0, sizeof *e);
    e->timed = timed;
    if (timed)
        tether_timer_init(entry_timer(e));
    return e;
}

static void entry_dealloc(entry_t *e)
{
    if (e)
        free(e->timed ? (void *)entry_timer(e) : (void *)e);
}

typedef struct {
    tether_store_t base;
    tether_hmap_t map;
    tether_list_t order[TETHER_STORE_KINDS];
    tether_store_scan_pos_t scan[TETHER_STORE_KINDS];
    tether_heap_t expiry;
    uint64_t seed, next_seq;
    size_t count, max;
} mem_t;

static bool kind_ok(tether_store_kind_t k)
{
    return k >= TETHER_STORE_DEVICE && k < TETHER_STORE_KINDS;
}

static size_t map_key(const mem_t *m, tether_store_kind_t kind, const uint8_t *key, size_t len,
                      uint8_t out[MAP_KEY_LEN])
{
    uint64_t d = tether_hash64(m->seed, key, len);
    out[0] = (uint8_t)kind;
    memcpy(out + 1, &d, sizeof d);
    return MAP_KEY_LEN;
}

static entry_t *find(const mem_t *m, tether_store_kind_t kind, const uint8_t *key, size_t len,
                     tether_time_t now)
{
    uint8_t mk[MAP_KEY_LEN];
    tether_hnode_t *h = tether_hmap_find(&m->map, mk, map_key(m, kind, key, len, mk));
    entry_t *e = h ? container_of(h, entry_t, hn) : NULL;
    if (!e || e->key_len != len || memcmp(entry_key(e), key, len) != 0)
        return NULL;
    if (entry_expired(e, now))
        return NULL; /* not yet ticked away */
    return e;
}

/* ---- an entry's layout ----------------------------------------------------------- */

#define ALIGN8(x) (((x) + 7) & ~(size_t)7)

/* The other kinds keyed by a name have it as their first member (a
 * device has a body of its own: dev_body_t). */
_Static_assert(offsetof(tether_store_cred_t, identity) == 0, "cred identity first");
_Static_assert(offsetof(tether_store_group_t, name) == 0, "group name first");

static size_t kind_size(tether_store_kind_t k)
{
    const tether_store_rec_t *r = NULL;
    switch (k) {
    case TETHER_STORE_CRED: return sizeof r->u.cred;
    case TETHER_STORE_OBSERVE: return sizeof r->u.observe;
    case TETHER_STORE_SESSION: return sizeof r->u.session;
    case TETHER_STORE_NODE: return sizeof r->u.node;
    case TETHER_STORE_GROUP: return sizeof r->u.group;
    default: return 0;
    }
}

/* Bytes of the kind's struct left out of the body: its leading name,
 * stored at its length after the variable parts instead. */
static size_t name_cut(tether_store_kind_t k)
{
    return k == TETHER_STORE_CRED || k == TETHER_STORE_GROUP ? TETHER_IDENTITY_MAX : 0;
}

static size_t var_size(const tether_store_rec_t *r)
{
    switch (r->kind) {
    case TETHER_STORE_CRED: return r->u.cred.nallow * sizeof *r->u.cred.allow;
    case TETHER_STORE_OBSERVE:
        return r->u.observe.nobservers * sizeof *r->u.observe.observers + r->u.observe.key_len;
    case TETHER_STORE_SESSION: return r->u.session.blob_len;
    case TETHER_STORE_GROUP: return r->u.group.members_len;
    default: return 0;
    }
}

/* Copies `src` into `dst`, its variable parts into data[var_size(src)]
 * (arrays first: the body's alignment serves them). */
static void var_copy(tether_store_rec_t *dst, const tether_store_rec_t *src, uint8_t *data)
{
    *dst = *src;
    switch (src->kind) {
    case TETHER_STORE_CRED:
        if (dst->u.cred.nallow)
            memcpy(data, src->u.cred.allow, src->u.cred.nallow * sizeof *src->u.cred.allow);
        dst->u.cred.allow = (const tether_store_allow_t *)data;
        break;
    case TETHER_STORE_OBSERVE: {
        size_t ol = src->u.observe.nobservers * sizeof *src->u.observe.observers;
        if (ol)
            memcpy(data, src->u.observe.observers, ol);
        dst->u.observe.observers = (const tether_store_observer_t *)data;
        memcpy(data + ol, src->u.observe.key, src->u.observe.key_len);
        dst->u.observe.key = data + ol;
        break;
    }
    case TETHER_STORE_SESSION:
        if (src->u.session.blob_len)
            memcpy(data, src->u.session.blob, src->u.session.blob_len);
        dst->u.session.blob = data;
        break;
    case TETHER_STORE_GROUP:
        if (src->u.group.members_len)
            memcpy(data, src->u.group.members, src->u.group.members_len);
        dst->u.group.members = (const char *)data;
        break;
    default: break;
    }
}

/* A device's body (the kind every registered device has one of): its
 * fixed fields packed, then at `tail` (not at sizeof: its padding would
 * push an entry into the next malloc size class) the address's first
 * addr_len bytes (16 for IPv4, not the 32 of a tether_addr_t),
 * cid[cid_len], regid[regid_len], then links, groups and name, each
 * NUL-terminated, back to back. */
typedef struct {
    uint64_t last_seen_s;
    uint32_t lifetime_s, links_len, groups_len;
    uint8_t node_id, cid_len, regid_len, addr_len;
    bool queue_mode;
    char tail[];
} dev_body_t;

#define DEV_FIXED offsetof(dev_body_t, tail)

/* Whether the lengths of `rec` fit its entry. */
static bool rec_fits(const tether_store_rec_t *rec)
{
    const tether_store_device_t *d = &rec->u.device;
    return rec->kind != TETHER_STORE_DEVICE ||
           (d->links_len <= UINT32_MAX && d->groups_len <= UINT32_MAX &&
            d->cid_len <= TETHER_STORE_CID_MAX);
}

static entry_t *device_new(const tether_store_device_t *d, size_t kl, bool timed)
{
    size_t al = d->addr.len < sizeof d->addr.ss ? d->addr.len : sizeof d->addr.ss;
    size_t rl = strnlen(d->regid, sizeof d->regid);
    entry_t *e = entry_alloc(
        DEV_FIXED + al + d->cid_len + rl + d->links_len + d->groups_len + kl + 3, timed);
    if (!e)
        return NULL;
    dev_body_t *b = (dev_body_t *)e->body;
    memset(b, 0, DEV_FIXED);
    b->addr_len = (uint8_t)al;
    b->regid_len = (uint8_t)rl;
    b->last_seen_s = d->last_seen_s;
    b->lifetime_s = d->lifetime_s;
    b->links_len = (uint32_t)d->links_len;
    b->groups_len = (uint32_t)d->groups_len;
    b->node_id = d->node_id;
    b->cid_len = d->cid_len;
    b->queue_mode = d->queue_mode;
    char *p = b->tail;
    memcpy(p, &d->addr.ss, al);
    p += al;
    memcpy(p, d->cid, d->cid_len);
    p += d->cid_len;
    memcpy(p, d->regid, rl);
    p += rl;
    if (d->links_len)
        memcpy(p, d->links, d->links_len);
    p[d->links_len] = 0;
    p += d->links_len + 1;
    if (d->groups_len)
        memcpy(p, d->groups, d->groups_len);
    p[d->groups_len] = 0;
    p += d->groups_len + 1;
    memcpy(p, d->name, kl);
    p[kl] = 0;
    e->key_off = (uint32_t)((uint8_t *)p - (uint8_t *)e->body);
    return e;
}

static void device_rec(const entry_t *e, tether_store_device_t *d)
{
    const dev_body_t *b = (const dev_body_t *)e->body;
    memset(d, 0, sizeof *d);
    memcpy(d->name, entry_key(e), e->key_len); /* key_len < TETHER_IDENTITY_MAX */
    d->node_id = b->node_id;
    d->cid_len = b->cid_len;
    d->lifetime_s = b->lifetime_s;
    d->queue_mode = b->queue_mode;
    d->last_seen_s = b->last_seen_s;
    const char *p = b->tail;
    memcpy(&d->addr.ss, p, b->addr_len); /* the rest zero, as when it was put */
    d->addr.len = b->addr_len;
    p += b->addr_len;
    memcpy(d->cid, p, b->cid_len);
    p += b->cid_len;
    memcpy(d->regid, p, b->regid_len);
    p += b->regid_len;
    d->links = p;
    d->links_len = b->links_len;
    d->groups = d->links + b->links_len + 1;
    d->groups_len = b->groups_len;
}

/* A new entry holding `rec` (whose key, kl bytes, was checked, and which
 * fits: rec_fits), its key in its body, with a (disarmed) ttl timer when
 * `timed`; NULL on TETHER_ENOMEM. */
static entry_t *entry_new(const tether_store_rec_t *rec, size_t kl, bool timed)
{
    entry_t *e;
    const uint8_t *key;
    if (rec->kind == TETHER_STORE_DEVICE) {
        if (!(e = device_new(&rec->u.device, kl, timed)))
            return NULL;
        goto done;
    }
    size_t cut = name_cut(rec->kind), fixed = ALIGN8(kind_size(rec->kind) - cut);
    size_t var = ALIGN8(var_size(rec));
    if (!(e = entry_alloc(fixed + var + (cut ? kl + 1 : 0), timed)))
        return NULL;
    uint8_t *body = (uint8_t *)e->body;
    tether_store_rec_t tmp;
    var_copy(&tmp, rec, body + fixed);
    memcpy(body, (const uint8_t *)&tmp.u + cut, kind_size(rec->kind) - cut);
    switch (rec->kind) {
    case TETHER_STORE_OBSERVE: key = tmp.u.observe.key; break;
    case TETHER_STORE_SESSION: key = body + offsetof(tether_store_session_t, cid); break;
    case TETHER_STORE_NODE: key = body + offsetof(tether_store_node_t, node_id); break;
    default: { /* keyed by its name */
        uint8_t *name = body + fixed + var;
        memcpy(name, &tmp.u, kl);
        name[kl] = 0;
        key = name;
    }
    }
    e->key_off = (uint32_t)(key - body);
done:
    e->key_len = (uint16_t)kl;
    e->kind = (uint8_t)rec->kind;
    return e;
}

/* The record of `e` rebuilt in `out`, its variable parts in e's body. */
static const tether_store_rec_t *entry_rec(const entry_t *e, tether_store_rec_t *out)
{
    out->kind = e->kind;
    if (e->kind == TETHER_STORE_DEVICE) {
        device_rec(e, &out->u.device);
        return out;
    }
    size_t cut = name_cut(e->kind);
    memset(&out->u, 0, cut);
    memcpy((uint8_t *)&out->u + cut, e->body, kind_size(e->kind) - cut);
    if (cut)
        memcpy(&out->u, entry_key(e), e->key_len); /* terminated by the memset: key_len < cut */
    return out;
}

/* ---- operations ------------------------------------------------------------------ */

static void complete(tether_store_cb cb, void *user, int rc, tether_store_kind_t kind,
                     const uint8_t *key, size_t key_len, uint64_t version,
                     const tether_store_rec_t *rec, uint64_t cursor)
{
    if (!cb)
        return;
    tether_store_result_t res = {.rc = rc,
                                 .kind = kind,
                                 .key = key,
                                 .key_len = key_len,
                                 .version = version,
                                 .rec = rec,
                                 .cursor = cursor};
    cb(user, &res);
}

static void entry_free(mem_t *m, entry_t *e)
{
    if (e->timed)
        tether_heap_disarm(&m->expiry, entry_timer(e));
    tether_hmap_remove(&m->map, &e->hn);
    tether_store_scan_forget(&m->scan[e->kind], &e->order);
    tether_list_del(&m->order[e->kind], &e->order);
    m->count--;
    entry_dealloc(e);
}

/* Removes `e` and tells the watchers (the key is copied first: it lives in e). */
static void entry_drop(mem_t *m, entry_t *e)
{
    uint8_t key[TETHER_STORE_KEY_MAX];
    size_t kl = e->key_len;
    tether_store_kind_t kind = e->kind;
    memcpy(key, entry_key(e), kl);
    entry_free(m, e);
    tether_store_notify(&m->base, kind, key, kl, 0);
}

static int mem_get(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key, size_t key_len,
                   tether_time_t now, tether_store_cb cb, void *user)
{
    mem_t *m = (mem_t *)s;
    if (!kind_ok(kind) || !key_len || key_len > TETHER_STORE_KEY_MAX)
        return TETHER_EINVAL;
    entry_t *e = find(m, kind, key, key_len, now);
    if (!e)
        complete(cb, user, TETHER_ENOTFOUND, kind, key, key_len, 0, NULL, 0);
    else {
        tether_store_rec_t rec;
        complete(cb, user, 0, kind, entry_key(e), e->key_len, e->version, entry_rec(e, &rec),
                 e->seq);
    }
    return 0;
}

static int mem_peek(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key, size_t key_len,
                    tether_time_t now, tether_store_rec_t *out, uint64_t *version)
{
    mem_t *m = (mem_t *)s;
    if (!kind_ok(kind) || !key_len || key_len > TETHER_STORE_KEY_MAX)
        return TETHER_EINVAL;
    entry_t *e = find(m, kind, key, key_len, now);
    if (!e)
        return TETHER_ENOTFOUND;
    entry_rec(e, out);
    *version = e->version;
    return 0;
}

static int mem_put(tether_store_t *s, const tether_store_rec_t *rec, uint64_t expect,
                   uint32_t ttl_ms, tether_time_t now, tether_store_cb cb, void *user)
{
    mem_t *m = (mem_t *)s;
    uint8_t kb[1], mk[MAP_KEY_LEN];
    const uint8_t *key;
    size_t kl;
    int rc;
    if ((rc = tether_store_rec_key(rec, kb, &key, &kl)) < 0)
        return rc;
    if (!rec_fits(rec))
        return TETHER_EINVAL;
    entry_t *e = find(m, rec->kind, key, kl, now), *ne, *old = NULL;
    uint64_t have = e ? e->version : 0;
    if (expect != TETHER_STORE_ANY && expect != have) {
        complete(cb, user, TETHER_ECONFLICT, rec->kind, key, kl, have, NULL, 0);
        return 0;
    }
    rc = TETHER_ENOMEM;
    /* A replaced record moves to a new allocation of its new size: its
     * place in the order, hence scan cursors, move with it. */
    if (!(ne = entry_new(rec, kl, ttl_ms != 0)))
        goto fail;
    map_key(m, rec->kind, key, kl, mk);
    if (!e) {
        tether_hnode_t *h = tether_hmap_find(&m->map, mk, MAP_KEY_LEN);
        entry_t *o = h ? container_of(h, entry_t, hn) : NULL;
        if (o && entry_expired(o, now))
            entry_drop(m, o); /* expired: gone now (else a digest collision) */
        rc = TETHER_ELIMIT;
        if (m->count >= m->max || tether_hmap_find(&m->map, mk, MAP_KEY_LEN))
            goto fail_entry;
    }
    if (ttl_ms && (rc = tether_heap_arm(&m->expiry, entry_timer(ne), now + ttl_ms)) < 0)
        goto fail_entry;
    if (e) {
        ne->seq = e->seq;
        ne->version = e->version + 1;
        if (e->timed)
            tether_heap_disarm(&m->expiry, entry_timer(e));
        tether_hmap_remove(&m->map, &e->hn);
        if (m->scan[e->kind].at == &e->order)
            m->scan[e->kind].at = &ne->order;
        tether_list_replace(&m->order[e->kind], &e->order, &ne->order);
        old = e; /* freed last: `rec` may be a result of ours, pointing into it */
    } else {
        ne->seq = ++m->next_seq;
        ne->version = 1;
        tether_list_push(&m->order[rec->kind], &ne->order);
        m->count++;
    }
    tether_hmap_insert(&m->map, &ne->hn, mk, MAP_KEY_LEN); /* absent: checked or removed above */
    e = ne;
    uint64_t version = e->version;
    complete(cb, user, 0, rec->kind, entry_key(e), e->key_len, version, NULL, 0);
    if ((e = find(m, rec->kind, key, kl, now))) /* the callback may have changed it */
        tether_store_notify(s, rec->kind, entry_key(e), e->key_len, version);
    entry_dealloc(old);
    return 0;
fail_entry:
    entry_dealloc(ne);
fail:
    complete(cb, user, rc, rec->kind, key, kl, have, NULL, 0);
    return 0;
}

static int mem_del(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key, size_t key_len,
                   uint64_t expect, tether_time_t now, tether_store_cb cb, void *user)
{
    mem_t *m = (mem_t *)s;
    if (!kind_ok(kind) || !key_len || key_len > TETHER_STORE_KEY_MAX)
        return TETHER_EINVAL;
    entry_t *e = find(m, kind, key, key_len, now);
    if (!e) {
        complete(cb, user, TETHER_ENOTFOUND, kind, key, key_len, 0, NULL, 0);
        return 0;
    }
    if (expect != TETHER_STORE_ANY && expect != e->version) {
        complete(cb, user, TETHER_ECONFLICT, kind, key, key_len, e->version, NULL, 0);
        return 0;
    }
    /* The key may be a result's, pointing into e (a delete from a get's
     * callback): the callback and watchers get a copy. */
    uint8_t kc[TETHER_STORE_KEY_MAX];
    memcpy(kc, key, key_len);
    entry_free(m, e);
    complete(cb, user, 0, kind, kc, key_len, 0, NULL, 0);
    tether_store_notify(s, kind, kc, key_len, 0);
    return 0;
}

/* Constant time per step of a scan in order; a cursor from elsewhere walks
 * from the head. */
static int mem_scan(tether_store_t *s, tether_store_kind_t kind, uint64_t cursor, tether_time_t now,
                    tether_store_cb cb, void *user)
{
    mem_t *m = (mem_t *)s;
    if (!kind_ok(kind))
        return TETHER_EINVAL;
    for (tether_lnode_t *l = tether_store_scan_start(&m->order[kind], &m->scan[kind], cursor); l;
         l = l->next) {
        entry_t *e = container_of(l, entry_t, order);
        if (e->seq <= cursor || entry_expired(e, now))
            continue;
        m->scan[kind] = (tether_store_scan_pos_t){.at = l, .seq = e->seq};
        tether_store_rec_t rec;
        complete(cb, user, 0, kind, entry_key(e), e->key_len, e->version, entry_rec(e, &rec),
                 e->seq);
        return 0;
    }
    complete(cb, user, TETHER_ENOTFOUND, kind, NULL, 0, 0, NULL, 0);
    return 0;
}

static void mem_tick(tether_store_t *s, tether_time_t now)
{
    mem_t *m = (mem_t *)s;
    tether_timer_t *t;
    while ((t = tether_heap_pop_due(&m->expiry, now)))
        entry_drop(m, timer_entry(t));
}

static tether_time_t mem_next_deadline(const tether_store_t *s)
{
    const tether_timer_t *t = tether_heap_top(&((const mem_t *)s)->expiry);
    return t ? t->at : UINT64_MAX;
}

static void mem_destroy(tether_store_t *s)
{
    mem_t *m = (mem_t *)s;
    for (int k = 0; k < TETHER_STORE_KINDS; k++)
        while (m->order[k].head)
            entry_free(m, container_of(m->order[k].head, entry_t, order));
    tether_heap_free(&m->expiry);
    tether_hmap_free(&m->map);
    free(m);
}

static const tether_store_ops_t mem_ops = {
    .get = mem_get,
    .put = mem_put,
    .del = mem_del,
    .scan = mem_scan,
    .tick = mem_tick,
    .next_deadline = mem_next_deadline,
    .destroy = mem_destroy,
    .peek = mem_peek,
};

int tether_store_mem_create(size_t max_records, tether_store_t **out)
{
    int rc = TETHER_ENOMEM;
    mem_t *m = calloc(1, sizeof *m);
    if (!m)
        return rc;
    m->base.ops = &mem_ops;
    m->max = max_records;
    /* The digest only spreads keys over buckets here; every key is written
     * by this node, so a fixed seed mixed with the table address will do. */
    m->seed = 0x2d358dccaa6c78a5ull ^ (uint64_t)(uintptr_t)m;
    if ((rc = tether_hmap_init(&m->map, 1024, m->seed)) < 0)
        goto fail_map;
    *out = &m->base;
    return 0;
fail_map:
    free(m);
    return rc;
}
