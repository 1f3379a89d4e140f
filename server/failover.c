/* Failover of DTLS sessions between nodes (see failover.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cluster.h"
#include "failover.h"
#include "store/adopt.h"
#include "tether/container.h"
#include "tether/hmap.h"
#include "tether/list.h"
#include "tether/log.h"

/* What this node knows of one of its checkpointed sessions. */
typedef struct {
    tether_hnode_t by_cid;
    tether_hnode_t by_id;
    tether_lnode_t ln;
    uint64_t sess_id;
    uint8_t cid_len;
    uint8_t cid[TETHER_STORE_CID_MAX];
    uint64_t version;    /* of its SESSION record, as this node last wrote or adopted it */
    uint64_t inflight;   /* ceiling of the write in flight (0: none) */
    uint64_t rx_next;    /* receive window of the last write */
    bool refresh;        /* the write in flight keeps the ceiling (refresh or handover) */
    bool raise_due;      /* DTLS asked for a raise while a refresh was in flight */
    bool handover_write; /* the write in flight is the handover's */
    bool stored;         /* a checkpoint of ours is in Redis */
    bool adopted;        /* came from another node's checkpoint, first write not done */
    bool released;       /* continues elsewhere: never delete its record */
    bool handed;         /* its handover checkpoint is written */
} fsess_t;

/* A dead node to claim once adopt_delay_ms passed. */
typedef struct {
    uv_timer_t timer;
    tetherd_failover_t *f;
    uint8_t id;
    uint64_t gen;
} claim_t;

struct tetherd_failover {
    uv_loop_t *loop;
    tetherd_failover_conf_t conf;
    tetherd_redis_t *redis;
    tether_store_t *store;
    tetherd_lease_t *lease;
    tether_pipeline_t *pipe;
    tether_dtls_srv_t *dtls;
    uint64_t generation; /* ours: our lease's */
    tether_hmap_t by_cid, by_id;
    tether_list_t all;
    uint64_t *todo; /* session ids whose ceiling must be written */
    size_t ntodo, todo_cap;
    claim_t *claims[256];
    uv_timer_t refresh_timer;
    bool handing_over, lease_released;
    bool watching;        /* on_store_change is registered */
    size_t handover_left; /* handover writes not answered yet */
    uint64_t checkpointed, adopted, adoptions, handed_over, released, conflicts, refreshed;
};

static tether_time_t now_of(const tetherd_failover_t *f)
{
    return uv_now(f->loop);
}

static fsess_t *by_cid(const tetherd_failover_t *f, const uint8_t *cid, size_t len)
{
    tether_hnode_t *h = tether_hmap_find(&f->by_cid, cid, len);
    return h ? container_of(h, fsess_t, by_cid) : NULL;
}

static fsess_t *by_id(const tetherd_failover_t *f, uint64_t id)
{
    tether_hnode_t *h = tether_hmap_find(&f->by_id, &id, sizeof id);
    return h ? container_of(h, fsess_t, by_id) : NULL;
}

static fsess_t *track(tetherd_failover_t *f, uint64_t id, const uint8_t *cid, size_t len,
                      uint64_t version)
{
    fsess_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->sess_id = id;
    e->cid_len = (uint8_t)len;
    memcpy(e->cid, cid, len);
    e->version = version;
    if (tether_hmap_insert(&f->by_cid, &e->by_cid, cid, len) < 0) {
        free(e);
        return NULL;
    }
    tether_hmap_insert(&f->by_id, &e->by_id, &e->sess_id, sizeof e->sess_id);
    tether_list_push(&f->all, &e->ln);
    return e;
}

static void untrack(tetherd_failover_t *f, fsess_t *e)
{
    tether_hmap_remove(&f->by_cid, &e->by_cid);
    tether_hmap_remove(&f->by_id, &e->by_id);
    tether_list_del(&f->all, &e->ln);
    free(e);
}

static void settle(tetherd_failover_t *f)
{
    tether_pipeline_settle(f->pipe, now_of(f));
    f->conf.pump(f->conf.user);
}

static void log_cid(const char *msg, const fsess_t *e, const char *k2, const char *v2)
{
    char hex[2 * TETHER_STORE_CID_MAX + 1];
    for (size_t i = 0; i < e->cid_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", e->cid[i]);
    tether_log_kv(TETHER_LOG_INFO, "failover", msg, "cid", hex, k2, v2, NULL);
}

/* Another node holds this session now: stop here without a word to the
 * peer, and keep its record. */
static void release(tetherd_failover_t *f, fsess_t *e, const char *why)
{
    if (e->released)
        return;
    e->released = true;
    f->released++;
    if (tether_log_enabled(TETHER_LOG_DEBUG))
        log_cid("session continues on another node", e, "why", why);
    tether_dtls_sess_release(f->dtls, e->sess_id);
}

/* ---- checkpoint writes ------------------------------------------------------ */

static void handover_step(tetherd_failover_t *f);
static bool raise_ceiling(tetherd_failover_t *f, uint64_t id);

static void put_done(void *user, const tether_store_result_t *res)
{
    tetherd_failover_t *f = user;
    fsess_t *e = by_cid(f, res->key, res->key_len);
    if (!e || !e->inflight)
        return;
    uint64_t c = e->inflight;
    bool refresh = e->refresh, handover = e->handover_write;
    e->inflight = 0;
    e->refresh = false;
    e->handover_write = false;
    if (handover && f->handover_left)
        f->handover_left--;
    if (res->rc == 0) {
        e->version = res->version;
        if (!e->stored)
            f->checkpointed++;
        e->stored = true;
        if (e->adopted) {
            e->adopted = false;
            f->adopted++;
        }
        if (handover)
            e->handed = true;
        if (!refresh)
            tether_dtls_ceiling_acked(f->dtls, e->sess_id, c);
    } else if (res->rc == TETHER_ECONFLICT) {
        /* Someone else wrote it: an adopter (we are fenced), or we adopted
         * from a copy that was not the newest. Never send on it. */
        f->conflicts++;
        release(f, e, "checkpoint version moved on");
    } else if (!refresh) {
        tether_dtls_ceiling_failed(f->dtls, e->sess_id); /* retried by DTLS after a pause */
    }
    if (e->raise_due && !e->released) {
        e->raise_due = false;
        raise_ceiling(f, e->sess_id);
    }
    if (f->handing_over)
        handover_step(f);
    settle(f);
}

/* Writes session e's checkpoint at ceiling `c`: a raise, or a refresh
 * at its acknowledged ceiling (receive window moved; the handover). 0
 * when the write is on its way. */
static int write_ckpt(tetherd_failover_t *f, fsess_t *e, tether_dtls_sess_t *s, uint64_t c,
                      bool refresh)
{
    tether_dtls_ckpt_bind_t b = {.owner = f->conf.self,
                                 .generation = f->generation,
                                 .version = e->version + 1,
                                 .seq_ceiling = c};
    uint8_t blob[TETHER_DTLS_CHECKPOINT_MAX];
    size_t len;
    int rc = tether_dtls_checkpoint(f->dtls, s, &b, blob, sizeof blob, &len);
    if (rc < 0)
        return rc;
    tether_store_rec_t rec = {.kind = TETHER_STORE_SESSION};
    tether_store_session_t *r = &rec.u.session;
    r->cid_len = e->cid_len;
    memcpy(r->cid, e->cid, e->cid_len);
    r->node_id = f->conf.self;
    r->generation = f->generation;
    r->seq_ceiling = c;
    r->blob = blob;
    r->blob_len = len;
    e->inflight = c;
    e->refresh = refresh;
    e->rx_next = tether_dtls_sess_rx_next(s);
    rc = tether_store_put(f->store, &rec, e->version, 0, now_of(f), put_done, f);
    if (rc < 0) {
        e->inflight = 0;
        e->refresh = false;
    }
    return rc;
}

/* A raise DTLS asked for (EV_CEILING). True when it called into DTLS. */
static bool raise_ceiling(tetherd_failover_t *f, uint64_t id)
{
    tether_dtls_sess_t *s = tether_dtls_sess_find(f->dtls, id);
    fsess_t *e = by_id(f, id);
    if (!s)
        return false;
    uint64_t want = tether_dtls_sess_ceiling_wanted(s);
    if (!want)
        return false;
    if (!e) {
        uint8_t cid[TETHER_STORE_CID_MAX];
        size_t cl = tether_dtls_sess_cid(s, cid);
        if (!cl || cl > TETHER_STORE_CID_MAX || !(e = track(f, id, cid, cl, 0))) {
            tether_dtls_ceiling_failed(f->dtls, id);
            return true;
        }
    }
    if (e->released)
        return false;  /* it never sends again */
    if (e->inflight) { /* a refresh: the raise follows its answer (one write at a time) */
        e->raise_due = e->refresh;
        return false;
    }
    /* Handing over: no more raises, so the handover checkpoint stays the
     * newest (the session waits for its adopter). */
    if (f->handing_over || write_ckpt(f, e, s, want, false) < 0) {
        tether_dtls_ceiling_failed(f->dtls, id);
        return true;
    }
    return false;
}

void tetherd_failover_dtls_event(void *user, const tether_dtls_event_t *ev)
{
    tetherd_failover_t *f = user;
    if (ev->kind == TETHER_DTLS_EV_CEILING) {
        if (f->ntodo == f->todo_cap) {
            size_t cap = f->todo_cap ? f->todo_cap * 2 : 64;
            uint64_t *n = realloc(f->todo, cap * sizeof *n);
            if (!n)
                return; /* the raise then never starts: the session holds, then drops */
            f->todo = n;
            f->todo_cap = cap;
        }
        f->todo[f->ntodo++] = ev->id;
    } else if (ev->kind == TETHER_DTLS_EV_CLOSED) {
        fsess_t *e = by_id(f, ev->id);
        if (!e)
            return;
        /* Ended here for good: its record goes (compare-and-set, so a
         * newer adopter's record stays). Released or handed over: kept. */
        if (!e->released && !e->handed && ev->why != TETHER_DTLS_WHY_HANDED_OVER && e->stored &&
            !f->handing_over)
            tether_store_del(f->store, TETHER_STORE_SESSION, e->cid, e->cid_len, e->version,
                             now_of(f), NULL, NULL);
        untrack(f, e);
    }
}

bool tetherd_failover_run(tetherd_failover_t *f)
{
    bool called = false;
    /* Raises queued while this runs wait for the next call (a store that
     * answers at once can queue more: f->todo may move, so it is indexed
     * afresh each time). */
    size_t n = f->ntodo;
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++)
        called |= raise_ceiling(f, f->todo[i]);
    memmove(f->todo, f->todo + n, (f->ntodo - n) * sizeof *f->todo);
    f->ntodo -= n;
    return called;
}

/* ---- routing ------------------------------------------------------------------ */

uint8_t tetherd_failover_cid_owner(void *user, const uint8_t *cid, size_t len)
{
    tetherd_failover_t *f = user;
    const tether_store_rec_t *rec = tetherd_redis_find(f->redis, TETHER_STORE_SESSION, cid, len);
    if (!rec)
        return 0;
    uint8_t h = rec->u.session.node_id;
    return tetherd_adopt_route(f->conf.self, h, h && tetherd_lease_member(f->lease, h)->alive);
}

/* ---- adoption ---------------------------------------------------------------- */

/* An adopted session: its id at the dead node (what that node's observe
 * registry entries name) and here. */
typedef struct {
    uint64_t origin, id;
} adopted_t;

typedef struct {
    tetherd_failover_t *f;
    uint8_t dead;
    uint64_t cursor;
    size_t adopted, refused;
    adopted_t *ids; /* sorted by origin before use */
    size_t nids, ids_cap;
} scan_t;

static void scan_note(scan_t *sc, const tether_dtls_sess_t *s)
{
    if (sc->nids == sc->ids_cap) {
        size_t cap = sc->ids_cap ? 2 * sc->ids_cap : 64;
        adopted_t *n = realloc(sc->ids, cap * sizeof *n);
        if (!n)
            return; /* its observers then register again themselves */
        sc->ids = n;
        sc->ids_cap = cap;
    }
    sc->ids[sc->nids++] = (adopted_t){tether_dtls_sess_origin(s), tether_dtls_sess_id(s)};
}

static int by_origin(const void *a, const void *b)
{
    uint64_t x = ((const adopted_t *)a)->origin, y = ((const adopted_t *)b)->origin;
    return x < y ? -1 : x > y;
}

static void scan_one(void *user, const tether_store_result_t *res)
{
    scan_t *sc = user;
    tetherd_failover_t *f = sc->f;
    sc->cursor = res->rc == 0 ? res->cursor : 0;
    if (res->rc != 0 || !res->rec)
        return;
    const tether_store_session_t *r = &res->rec->u.session;
    if (r->node_id != sc->dead || by_cid(f, r->cid, r->cid_len))
        return;
    tether_dtls_ckpt_bind_t b = {.owner = r->node_id,
                                 .generation = r->generation,
                                 .version = res->version,
                                 .seq_ceiling = r->seq_ceiling};
    tether_dtls_sess_t *s;
    int rc = tether_dtls_adopt(f->dtls, r->cid, r->cid_len, &b, r->blob, r->blob_len, f->conf.iface,
                               now_of(f), &s);
    fsess_t *e =
        rc == 0 ? track(f, tether_dtls_sess_id(s), r->cid, r->cid_len, res->version) : NULL;
    if (!e) {
        if (rc == 0)
            tether_dtls_sess_release(f->dtls, tether_dtls_sess_id(s)); /* cannot track it */
        sc->refused++;
        return;
    }
    e->adopted = true; /* its first ceiling write makes it ours (adopt.h: fencing) */
    sc->adopted++;
    scan_note(sc, s);
}

/* The dead node's devices whose sessions we adopted are registered here
 * at once (tether_node_device_adopt), so requests and observations find
 * them before they speak. */
static void adopt_devices(tetherd_failover_t *f, const scan_t *sc)
{
    tether_node_t *node = tether_pipeline_node(f->pipe);
    for (size_t i = 0; i < sc->nids; i++) {
        tether_dtls_sess_t *s = tether_dtls_sess_find(f->dtls, sc->ids[i].id);
        if (!s || tether_dtls_sess_role(s) != TETHER_ROLE_DEVICE)
            continue;
        const char *name = tether_dtls_sess_identity(s);
        const tether_store_rec_t *rec =
            tetherd_redis_find(f->redis, TETHER_STORE_DEVICE, (const uint8_t *)name, strlen(name));
        if (!rec || rec->u.device.node_id != sc->dead)
            continue;
        tether_store_device_t dev = rec->u.device; /* borrows the replica until the next call */
        tether_link_t link = {.kind = TETHER_LINK_DTLS, .id = sc->ids[i].id};
        tether_node_device_adopt(node, &dev, &link, now_of(f));
    }
}

/* One observer the dead node owed notifications, its session adopted. */
typedef struct {
    uint64_t id; /* its session here */
    uint8_t tkl, utok_len;
    uint8_t tok[TETHER_STORE_TOKEN_MAX], utok[TETHER_STORE_TOKEN_MAX];
    uint16_t key_len; /* the resource's cache key (the record key without the node byte) */
    uint8_t key[TETHER_STORE_KEY_MAX];
} owed_t;

/* The dead node's observe registry records (key | its id) list the
 * clients it notified; those whose sessions we adopted observe here now
 * (tether_node_observer_adopt), and the records go (ours replace them).
 * Copied out first: registering writes to the store, which moves the
 * replica. */
static void adopt_observers(tetherd_failover_t *f, const scan_t *sc)
{
    owed_t *v = NULL;
    size_t n = 0, cap = 0;
    uint64_t cur = 0;
    const tether_store_rec_t *rec;
    while ((rec = tetherd_redis_next(f->redis, TETHER_STORE_OBSERVE, &cur))) {
        const tether_store_observe_t *o = &rec->u.observe;
        if (o->key_len < 2 || o->key[o->key_len - 1] != sc->dead)
            continue;
        for (size_t i = 0; i < o->nobservers; i++) {
            const tether_store_observer_t *ob = &o->observers[i];
            uint64_t origin;
            if (ob->node_id != sc->dead || ob->link_len != 1 + sizeof origin ||
                ob->link[0] != TETHER_LINK_DTLS)
                continue;
            memcpy(&origin, ob->link + 1, sizeof origin); /* as tether_link_key wrote it */
            adopted_t want = {.origin = origin}, *a;
            if (!origin || !(a = bsearch(&want, sc->ids, sc->nids, sizeof *sc->ids, by_origin)))
                continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 16;
                owed_t *nv = realloc(v, nc * sizeof *nv);
                if (!nv)
                    break;
                v = nv;
                cap = nc;
            }
            owed_t *w = &v[n++];
            w->id = a->id;
            w->tkl = ob->tkl;
            memcpy(w->tok, ob->token, ob->tkl);
            w->utok_len = o->utok_len;
            memcpy(w->utok, o->utok, o->utok_len);
            w->key_len = (uint16_t)(o->key_len - 1);
            memcpy(w->key, o->key, o->key_len - 1);
        }
    }
    tether_node_t *node = tether_pipeline_node(f->pipe);
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        tether_dtls_sess_t *s = tether_dtls_sess_find(f->dtls, v[i].id);
        if (!s)
            continue;
        tether_peer_t peer = {.link = {.kind = TETHER_LINK_DTLS, .id = v[i].id},
                              .identity = tether_dtls_sess_identity(s),
                              .role = tether_dtls_sess_role(s)};
        if (tether_node_observer_adopt(node, &peer, v[i].key, v[i].key_len, v[i].tok, v[i].tkl,
                                       v[i].utok, v[i].utok_len, now_of(f)) == 0)
            done++;
    }
    for (size_t i = 0; i < n; i++) {
        if (i && v[i].key_len == v[i - 1].key_len &&
            memcmp(v[i].key, v[i - 1].key, v[i].key_len) == 0)
            continue;
        uint8_t k[TETHER_STORE_KEY_MAX];
        memcpy(k, v[i].key, v[i].key_len);
        k[v[i].key_len] = sc->dead;
        tether_store_del(f->store, TETHER_STORE_OBSERVE, k, v[i].key_len + 1u, TETHER_STORE_ANY,
                         now_of(f), NULL, NULL);
    }
    free(v);
    if (done) {
        char n_s[24];
        snprintf(n_s, sizeof n_s, "%zu", done);
        tether_log_kv(TETHER_LOG_INFO, "failover", "observers of the dead node observe here",
                      "observers", n_s, NULL);
    }
}

/* The directory: the dead node's devices are this node's now (they
 * register here again on their next update; until then clients find
 * them here). */
static void rewrite_directory(tetherd_failover_t *f, uint8_t dead)
{
    uint64_t cur = 0;
    const tether_store_rec_t *rec;
    size_t n = 0;
    while ((rec = tetherd_redis_next(f->redis, TETHER_STORE_DEVICE, &cur)))
        if (rec->u.device.node_id == dead)
            n++;
    if (!n)
        return;
    tether_store_rec_t *copy = malloc(n * sizeof *copy);
    if (!copy)
        return;
    size_t k = 0;
    cur = 0;
    while (k < n && (rec = tetherd_redis_next(f->redis, TETHER_STORE_DEVICE, &cur)))
        if (rec->u.device.node_id == dead)
            copy[k++] = *rec;
    /* The copies borrow the replica's links and groups: each put copies
     * what it needs, but a put may change the replica, so every record is
     * read again by name before it is written. */
    for (size_t i = 0; i < k; i++) {
        const char *name = copy[i].u.device.name;
        const tether_store_rec_t *cur_rec =
            tetherd_redis_find(f->redis, TETHER_STORE_DEVICE, (const uint8_t *)name, strlen(name));
        if (!cur_rec || cur_rec->u.device.node_id != dead)
            continue;
        tether_store_rec_t w = *cur_rec;
        w.u.device.node_id = f->conf.self;
        tether_store_put(f->store, &w, TETHER_STORE_ANY, 0, now_of(f), NULL, NULL);
    }
    free(copy);
}

static void claim_done(void *user, const tether_store_result_t *res)
{
    tetherd_failover_t *f = user;
    if (res->key_len != 1)
        return;
    uint8_t dead = res->key[0];
    char id_s[8], n_s[24], r_s[24];
    snprintf(id_s, sizeof id_s, "%u", dead);
    if (res->rc != 0) {
        if (tether_log_enabled(TETHER_LOG_DEBUG))
            tether_log_kv(TETHER_LOG_DEBUG, "failover", "adoption claim lost", "node", id_s,
                          "error", tether_strerror(res->rc), NULL);
        return;
    }
    f->adoptions++;
    scan_t sc = {.f = f, .dead = dead};
    do
        tether_store_scan(f->store, TETHER_STORE_SESSION, sc.cursor, now_of(f), scan_one, &sc);
    while (sc.cursor);
    if (sc.nids)
        qsort(sc.ids, sc.nids, sizeof *sc.ids, by_origin);
    adopt_devices(f, &sc);
    rewrite_directory(f, dead); /* the devices not adopted above */
    adopt_observers(f, &sc);
    free(sc.ids);
    snprintf(n_s, sizeof n_s, "%zu", sc.adopted);
    snprintf(r_s, sizeof r_s, "%zu", sc.refused);
    tether_log_kv(TETHER_LOG_INFO, "failover", "adopted the sessions of a dead node", "node", id_s,
                  "sessions", n_s, "refused", r_s, NULL);
    settle(f); /* the adopted sessions' first ceilings */
}

static void claim_closed(uv_handle_t *h)
{
    free(h->data);
}

static void claim_drop(tetherd_failover_t *f, uint8_t id)
{
    claim_t *c = f->claims[id];
    if (!c)
        return;
    f->claims[id] = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, claim_closed);
}

static void claim_now(uv_timer_t *t)
{
    claim_t *c = t->data;
    tetherd_failover_t *f = c->f;
    const tetherd_member_t *m = tetherd_lease_member(f->lease, c->id);
    tetherd_redis_stats_t st;
    tetherd_redis_stats(f->redis, &st);
    if (m->alive || m->adopted_by) { /* back, or claimed by someone */
        claim_drop(f, c->id);
        return;
    }
    if (strcmp(st.state, "up") != 0 || !st.synced) {
        uv_timer_start(&c->timer, claim_now, 1000, 0); /* no adoption while Redis is away */
        return;
    }
    tether_channel_t *ch = tether_pipeline_channel(f->pipe);
    if (tetherd_adopt_wait(m, ch && tether_channel_node_alive(ch, c->id, tetherd_wall_ms()))) {
        uv_timer_start(&c->timer, claim_now, 250, 0); /* its channel still speaks */
        return;
    }
    tether_store_rec_t rec;
    tetherd_adopt_claim(f->conf.self, c->id, c->gen, &f->conf.advertise, &rec);
    uint64_t expect = tetherd_adopt_expect(m);
    claim_drop(f, c->id);
    tether_store_put(f->store, &rec, expect, f->conf.claim_ttl_ms, now_of(f), claim_done, f);
}

void tetherd_failover_member(tetherd_failover_t *f, uint8_t id, const tetherd_member_t *m)
{
    if (tetherd_adopt_fenced(f->conf.self, f->generation, id, m)) {
        char by[8];
        snprintf(by, sizeof by, "%u", m->adopted_by);
        tether_log_kv(TETHER_LOG_WARN, "failover",
                      "our node id was claimed by another node: releasing our sessions", "by", by,
                      NULL);
        for (tether_lnode_t *l = f->all.head; l; l = l->next)
            release(f, container_of(l, fsess_t, ln), "fenced");
        settle(f);
        return;
    }
    /* Whether Redis is up is asked when the timer fires. */
    if (!tetherd_adopt_should_claim(f->conf.self, id, m, true) || f->claims[id] || f->handing_over)
        return;
    claim_t *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->f = f;
    c->id = id;
    c->gen = m->generation;
    uv_timer_init(f->loop, &c->timer);
    c->timer.data = c;
    f->claims[id] = c;
    uv_timer_start(&c->timer, claim_now, f->conf.adopt_delay_ms, 0);
}

/* ---- receive-window refresh ----------------------------------------------------- */

/* Every refresh_ms: sessions whose receive window moved since their last
 * write are written again at their acknowledged ceiling, so an adopter's
 * window is at most that old (the replay exposure, failover.h). */
static void on_refresh(uv_timer_t *t)
{
    tetherd_failover_t *f = t->data;
    if (f->handing_over)
        return;
    for (tether_lnode_t *l = f->all.head; l; l = l->next) {
        fsess_t *e = container_of(l, fsess_t, ln);
        tether_dtls_sess_t *s;
        if (e->inflight || e->released || !e->stored ||
            !(s = tether_dtls_sess_find(f->dtls, e->sess_id)) ||
            tether_dtls_sess_rx_next(s) == e->rx_next)
            continue;
        if (write_ckpt(f, e, s, tether_dtls_sess_ceiling(s), true) == 0)
            f->refreshed++;
    }
}

/* ---- handover ------------------------------------------------------------------ */

/* Once every handover write is answered: the lease goes, peers adopt. */
static void handover_step(tetherd_failover_t *f)
{
    if (f->handover_left || f->lease_released)
        return;
    f->lease_released = true;
    size_t n = 0;
    for (tether_lnode_t *l = f->all.head; l; l = l->next)
        n += container_of(l, fsess_t, ln)->handed;
    f->handed_over = n;
    char n_s[24];
    snprintf(n_s, sizeof n_s, "%zu", n);
    tether_log_kv(TETHER_LOG_INFO, "failover", "sessions checkpointed for handover; lease released",
                  "sessions", n_s, NULL);
    tetherd_lease_release(f->lease);
}

void tetherd_failover_handover(tetherd_failover_t *f)
{
    if (f->handing_over)
        return;
    f->handing_over = true;
    for (tether_lnode_t *l = f->all.head; l; l = l->next) {
        fsess_t *e = container_of(l, fsess_t, ln);
        tether_dtls_sess_t *s = tether_dtls_sess_find(f->dtls, e->sess_id);
        if (!s || e->released || e->inflight || !e->stored)
            continue; /* a raise in flight: its own write is the newest */
        if (write_ckpt(f, e, s, tether_dtls_sess_ceiling(s), true) == 0) {
            e->handover_write = true;
            f->handover_left++;
        }
    }
    handover_step(f);
}

bool tetherd_failover_handed_over(tetherd_failover_t *f)
{
    if (!f->lease_released)
        return false;
    size_t left = 0;
    for (tether_lnode_t *l = f->all.head, *next; l; l = next) {
        next = l->next;
        fsess_t *e = container_of(l, fsess_t, ln);
        if (e->released || !e->stored)
            continue;
        const tether_store_rec_t *rec =
            tetherd_redis_find(f->redis, TETHER_STORE_SESSION, e->cid, e->cid_len);
        if (!rec || rec->u.session.node_id != f->conf.self)
            release(f, e, "adopted after our handover");
        else
            left++;
    }
    if (f->released)
        settle(f);
    return left == 0;
}

/* ---- setup ----------------------------------------------------------------------- */

int tetherd_failover_stats(const tetherd_failover_t *f, json_t *stats)
{
    const struct {
        const char *path;
        uint64_t v;
    } rows[] = {
        {"sessions.checkpointed", f->checkpointed},
        {"sessions.adopted", f->adopted},
        {"sessions.released", f->released},
        {"cluster.adoptions", f->adoptions},
        {"cluster.handed_over", f->handed_over},
        {"cluster.checkpoint_conflicts", f->conflicts},
        {"sessions.checkpoint_refreshes", f->refreshed},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (tetherd_admin_stat_set(stats, rows[i].path, (json_int_t)rows[i].v) < 0)
            return TETHER_ENOMEM;
    return 0;
}

int tetherd_failover_create(uv_loop_t *loop, const tetherd_failover_conf_t *conf,
                            tetherd_redis_t *redis, tetherd_lease_t *lease,
                            tetherd_failover_t **out)
{
    tetherd_failover_t *f = calloc(1, sizeof *f);
    if (!f)
        return TETHER_ENOMEM;
    f->loop = loop;
    f->conf = *conf;
    f->redis = redis;
    f->store = tetherd_redis_store(redis);
    f->lease = lease;
    f->generation = tetherd_lease_generation(lease);
    uint64_t seed;
    uv_random(NULL, NULL, &seed, sizeof seed, 0, NULL);
    if (tether_hmap_init(&f->by_cid, 1024, seed) < 0)
        goto fail;
    if (tether_hmap_init(&f->by_id, 1024, seed ^ 0x5bd1e995u) < 0)
        goto fail_cid;
    uv_timer_init(loop, &f->refresh_timer);
    f->refresh_timer.data = f;
    if (conf->refresh_ms)
        uv_timer_start(&f->refresh_timer, on_refresh, conf->refresh_ms, conf->refresh_ms);
    *out = f;
    return 0;
fail_cid:
    tether_hmap_free(&f->by_cid);
fail:
    free(f);
    return TETHER_ENOMEM;
}

/* Every checkpoint the replica sees raises that CID's high-water mark in
 * DTLS, so a record rolled back in Redis later is refused on adoption
 * (lib/dtls/ckseen.h). */
static void on_store_change(void *user, tether_store_kind_t kind, const uint8_t *key,
                            size_t key_len, uint64_t version)
{
    tetherd_failover_t *f = user;
    if (kind != TETHER_STORE_SESSION || !version || !f->dtls)
        return;
    const tether_store_rec_t *rec = tetherd_redis_find(f->redis, kind, key, key_len);
    if (rec)
        tether_dtls_ckpt_seen(f->dtls, key, key_len, version, rec->u.session.seq_ceiling);
}

void tetherd_failover_attach(tetherd_failover_t *f, tether_pipeline_t *pipe)
{
    f->pipe = pipe;
    f->dtls = tether_pipeline_dtls(pipe);
    f->watching = tether_store_watch(f->store, on_store_change, f) == 0;
}

static void freed(uv_handle_t *h)
{
    free(h->data);
}

void tetherd_failover_close(tetherd_failover_t *f)
{
    if (!f)
        return;
    if (f->watching)
        tether_store_unwatch(f->store, on_store_change, f);
    for (int i = 0; i < 256; i++)
        claim_drop(f, (uint8_t)i);
    while (f->all.head)
        untrack(f, container_of(f->all.head, fsess_t, ln));
    tether_hmap_free(&f->by_cid);
    tether_hmap_free(&f->by_id);
    free(f->todo);
    uv_timer_stop(&f->refresh_timer);
    uv_close((uv_handle_t *)&f->refresh_timer, freed);
}
