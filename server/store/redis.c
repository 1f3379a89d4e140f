/* The Redis state store (see redis.h): its operations and setup; the
 * connection and commands are in rcmd.c, the replica in rreplica.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"
#include "tether/log.h"

tether_time_t rs_now_of(const tetherd_redis_t *r)
{
    return uv_now(r->loop);
}

void rs_event(tetherd_redis_t *r)
{
    r->event_pending = true;
}

/* After a reply: tell the process, once, that something happened. */
void rs_event_flush(tetherd_redis_t *r)
{
    if (r->event_pending && r->on_event) {
        r->event_pending = false;
        r->on_event(r->on_event_user);
    }
}

void rs_leases_poll(tetherd_redis_t *r)
{
    static char names[NODE_IDS][32];
    static const char *argv[NODE_IDS + 1];
    static size_t lens[NODE_IDS + 1];
    argv[0] = "MGET";
    lens[0] = 4;
    for (int i = 0; i < NODE_IDS; i++) {
        uint8_t id = (uint8_t)(i + 1);
        tetherd_rkey_name(TETHER_STORE_NODE, &id, 1, names[i], sizeof names[i]);
        argv[i + 1] = names[i];
        lens[i + 1] = strlen(names[i]);
    }
    cmd_t *c = rs_cmd_new(r, C_LEASES);
    if (!c || rs_send_argv(r, c, NODE_IDS + 1, argv, lens) < 0) {
        free(c);
        return;
    }
    r->leases_inflight = true;
}

void rs_leases_reply(tetherd_redis_t *r, redisReply *rep)
{
    r->leases_inflight = false;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != NODE_IDS) {
        r->errors++;
        return;
    }
    for (size_t i = 0; i < NODE_IDS; i++) {
        uint8_t id = (uint8_t)(i + 1);
        char rkey[32];
        tetherd_rkey_name(TETHER_STORE_NODE, &id, 1, rkey, sizeof rkey);
        const redisReply *x = rep->element[i];
        rent_t *e = rs_rep_find(r, rkey);
        uint64_t v;
        const char *json;
        size_t jl;
        if (x->type == REDIS_REPLY_STRING &&
            tetherd_rval_split(x->str, x->len, &v, &json, &jl) == 0) {
            tetherd_rrec_t rr;
            if (tetherd_rrec_decode(TETHER_STORE_NODE, json, jl, NULL, rkey, v, &rr) < 0 ||
                rr.rec.u.node.node_id != id) {
                tetherd_rrec_free(&rr);
                r->errors++;
                continue;
            }
            bool fresh = !e || memcmp(&e->rr.rec.u.node, &rr.rec.u.node, sizeof rr.rec.u.node);
            if ((e = rs_rep_set(r, rkey, &rr, v)) && fresh) {
                tether_store_notify(&r->base, TETHER_STORE_NODE, e->key, e->key_len, v);
                rs_event(r);
            }
        } else if (e) {
            rs_rep_drop(r, e); /* the lease expired */
        }
    }
}

static int key_name(tether_store_kind_t kind, const uint8_t *key, size_t kl, char *out)
{
    return tetherd_rkey_name(kind, key, kl, out, TETHERD_RKEY_MAX);
}

static int r_get(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key, size_t kl,
                 tether_time_t now, tether_store_cb cb, void *user)
{
    tetherd_redis_t *r = (tetherd_redis_t *)s;
    char rkey[TETHERD_RKEY_MAX];
    int rc = key_name(kind, key, kl, rkey);
    if (rc < 0)
        return rc;
    rent_t *e = rs_rep_find(r, rkey);
    if (e) {
        rs_complete(cb, user, 0, kind, e->key, e->key_len, e->version, &e->rr.rec, e->seq);
        return 0;
    }
    /* A miss: the replica may lag the log by poll_ms; ask Redis too (the
     * answer comes later). NODE leases are all in the replica. */
    cmd_t *c = kind != TETHER_STORE_NODE && r->synced ? rs_cmd_new(r, C_GET) : NULL;
    if (c) {
        c->cb = cb;
        c->user = user;
        c->skind = kind;
        memcpy(c->key, key, kl);
        c->key_len = kl;
        snprintf(c->rkey, sizeof c->rkey, "%s", rkey);
        const char *argv[] = {"GET", c->rkey};
        if (rs_send_strs(r, c, 2, argv) == 0)
            return 0;
        free(c);
    }
    rs_complete(cb, user, TETHER_ENOTFOUND, kind, key, kl, 0, NULL, 0);
    return 0;
}

/* A write that completes when Redis answered (a compare-and-set sent now,
 * not through the backlog): credentials (sealed for the version they
 * get), session checkpoints (sealed by DTLS for the version `expect` + 1:
 * the version written must be that one, and the transmit ceiling they
 * carry counts only once Redis holds it, SPEC S5) and adoption claims
 * (NODE records put only if absent, with ttl_ms). */
static int sync_write(tetherd_redis_t *r, const tether_store_rec_t *rec, tether_store_kind_t kind,
                      const uint8_t *key, size_t kl, const char *rkey, uint64_t expect,
                      uint32_t ttl_ms, tether_store_cb cb, void *user)
{
    if (r->conn.state != TETHERD_RCONN_UP || !r->synced) {
        rs_complete(cb, user, TETHER_EIO, kind, key, kl, 0, NULL, 0);
        return 0;
    }
    rent_t *e = rs_rep_find(r, rkey);
    uint64_t have = e ? e->rversion : rs_tomb_version(r, rkey);
    if (expect == TETHER_STORE_ANY || (expect == 0 && !e))
        expect = have; /* the version the seal names must be the one written */
    cmd_t *c = rs_cmd_new(r, C_CRED);
    if (!c)
        return TETHER_ENOMEM;
    c->cb = cb;
    c->user = user;
    c->skind = kind;
    c->del = !rec;
    memcpy(c->key, key, kl);
    c->key_len = kl;
    snprintf(c->rkey, sizeof c->rkey, "%s", rkey);
    char ex[24];
    rs_fmt_expect(expect, ex);
    int rc;
    if (rec) {
        if ((rc = tetherd_rrec_encode(rec, &r->wrap, rkey, expect + 1, &c->value)) < 0 ||
            (rc = tetherd_rrec_decode(kind, c->value, strlen(c->value), &r->wrap, rkey, expect + 1,
                                      &c->rec)) < 0) {
            free(c->value);
            tetherd_rrec_free(&c->rec);
            free(c);
            return rc;
        }
        char ttl[16];
        snprintf(ttl, sizeof ttl, "%u", ttl_ms);
        const char *argv[] = {"EVAL", rs_lua_put, "1", c->rkey, ex, c->value, ttl};
        rc = rs_send_strs(r, c, 7, argv);
    } else {
        /* A checkpoint's CID is never issued again: no tombstone for it. */
        const char *argv[] = {"EVAL", kind == TETHER_STORE_CRED ? rs_lua_tomb : rs_lua_del, "1",
                              c->rkey, ex};
        rc = rs_send_strs(r, c, 5, argv);
    }
    if (rc < 0) {
        free(c->value);
        tetherd_rrec_free(&c->rec);
        free(c);
        rs_complete(cb, user, TETHER_EIO, kind, key, kl, 0, NULL, 0);
    }
    return 0;
}

static int lease_write(tetherd_redis_t *r, const tether_store_rec_t *rec, const char *rkey,
                       uint32_t ttl_ms, tether_store_cb cb, void *user)
{
    const uint8_t *key = &rec->u.node.node_id;
    char *json = NULL, val[512], px[16];
    cmd_t *c = NULL;
    int rc = tetherd_rrec_encode(rec, NULL, rkey, 1, &json);
    if (rc < 0)
        return rc;
    snprintf(val, sizeof val, "1 %s", json);
    snprintf(px, sizeof px, "%u", ttl_ms ? ttl_ms : 3000);
    const char *argv[] = {"SET", rkey, val, "PX", px};
    if (!(c = rs_cmd_new(r, C_LEASE)) ||
        (c->cb = cb, c->user = user, c->skind = TETHER_STORE_NODE, c->key[0] = *key, c->key_len = 1,
         rs_send_strs(r, c, 5, argv) < 0)) {
        free(c);
        rs_complete(cb, user, TETHER_EIO, TETHER_STORE_NODE, key, 1, 0, NULL, 0);
    }
    free(json);
    return 0;
}

static int r_put(tether_store_t *s, const tether_store_rec_t *rec, uint64_t expect, uint32_t ttl_ms,
                 tether_time_t now, tether_store_cb cb, void *user)
{
    tetherd_redis_t *r = (tetherd_redis_t *)s;
    uint8_t kb[1];
    const uint8_t *key;
    size_t kl;
    char rkey[TETHERD_RKEY_MAX];
    int rc;
    if ((rc = tether_store_rec_key(rec, kb, &key, &kl)) < 0 ||
        (rc = key_name(rec->kind, key, kl, rkey)) < 0)
        return rc;
    if (rec->kind == TETHER_STORE_CRED || rec->kind == TETHER_STORE_SESSION ||
        (rec->kind == TETHER_STORE_NODE && expect != TETHER_STORE_ANY))
        return sync_write(r, rec, rec->kind, key, kl, rkey, expect,
                          rec->kind == TETHER_STORE_NODE ? ttl_ms : 0, cb, user);
    if (rec->kind == TETHER_STORE_NODE)
        return lease_write(r, rec, rkey, ttl_ms, cb, user);
    rent_t *e = rs_rep_find(r, rkey);
    uint64_t have = e ? e->version : 0;
    if (expect != TETHER_STORE_ANY && expect != have) {
        rs_complete(cb, user, TETHER_ECONFLICT, rec->kind, key, kl, have, NULL, 0);
        return 0;
    }
    if (!e && r->count >= r->conf.max_records) {
        rs_complete(cb, user, TETHER_ELIMIT, rec->kind, key, kl, 0, NULL, 0);
        return 0;
    }
    char *json;
    tetherd_rrec_t rr;
    if ((rc = rs_rec_copy(r, rec, rkey, &json, &rr)) < 0)
        return rc;
    /* The backlog first: when it refuses, the replica stays as it was. */
    if ((rc = tetherd_backlog_mark(&r->backlog, rkey, e ? e->rversion : 0, json, ttl_ms)) < 0) {
        tetherd_rrec_free(&rr);
        rs_complete(cb, user, rc, rec->kind, key, kl, have, NULL, 0);
        return 0;
    }
    uint64_t rv = e ? e->rversion : 0;
    if (!(e = rs_rep_set(r, rkey, &rr, have + 1))) {
        rs_complete(cb, user, TETHER_ELIMIT, rec->kind, key, kl, have, NULL, 0);
        rs_flush(r); /* the backlog entry still goes to Redis */
        return 0;
    }
    e->rversion = rv;
    uint64_t v = e->version;
    rs_complete(cb, user, 0, rec->kind, e->key, e->key_len, v, NULL, 0);
    if ((e = rs_rep_find(r, rkey)))
        tether_store_notify(s, rec->kind, e->key, e->key_len, v);
    rs_flush(r);
    return 0;
}

static int r_del(tether_store_t *s, tether_store_kind_t kind, const uint8_t *key, size_t kl,
                 uint64_t expect, tether_time_t now, tether_store_cb cb, void *user)
{
    tetherd_redis_t *r = (tetherd_redis_t *)s;
    char rkey[TETHERD_RKEY_MAX];
    int rc;
    if ((rc = key_name(kind, key, kl, rkey)) < 0)
        return rc;
    if (kind == TETHER_STORE_CRED || kind == TETHER_STORE_SESSION)
        return sync_write(r, NULL, kind, key, kl, rkey, expect, 0, cb, user);
    rent_t *e = rs_rep_find(r, rkey);
    if (!e) {
        rs_complete(cb, user, TETHER_ENOTFOUND, kind, key, kl, 0, NULL, 0);
        return 0;
    }
    if (expect != TETHER_STORE_ANY && expect != e->version) {
        rs_complete(cb, user, TETHER_ECONFLICT, kind, key, kl, e->version, NULL, 0);
        return 0;
    }
    if (kind == TETHER_STORE_NODE) { /* our lease, released (a handover): gone at once */
        cmd_t *c = r->ac ? rs_cmd_new(r, C_LEASE) : NULL;
        if (c) {
            c->skind = kind;
            const char *argv[] = {"DEL", rkey};
            if (rs_send_strs(r, c, 2, argv) < 0)
                free(c);
        }
        rs_rep_free(r, e);
        rs_complete(cb, user, 0, kind, key, kl, 0, NULL, 0);
        tether_store_notify(s, kind, key, kl, 0);
        return 0;
    }
    if ((rc = tetherd_backlog_mark(&r->backlog, rkey, e->rversion, NULL, 0)) < 0) {
        rs_complete(cb, user, rc, kind, key, kl, e->version, NULL, 0);
        return 0;
    }
    rs_rep_free(r, e);
    rs_complete(cb, user, 0, kind, key, kl, 0, NULL, 0);
    tether_store_notify(s, kind, key, kl, 0);
    rs_flush(r);
    return 0;
}

static int r_scan(tether_store_t *s, tether_store_kind_t kind, uint64_t cursor, tether_time_t now,
                  tether_store_cb cb, void *user)
{
    tetherd_redis_t *r = (tetherd_redis_t *)s;
    if (kind < TETHER_STORE_DEVICE || kind >= TETHER_STORE_KINDS)
        return TETHER_EINVAL;
    for (tether_lnode_t *l = tether_store_scan_start(&r->order[kind], &r->scan[kind], cursor); l;
         l = l->next) {
        rent_t *e = container_of(l, rent_t, order);
        if (e->seq <= cursor)
            continue;
        r->scan[kind] = (tether_store_scan_pos_t){.at = l, .seq = e->seq};
        rs_complete(cb, user, 0, kind, e->key, e->key_len, e->version, &e->rr.rec, e->seq);
        return 0;
    }
    rs_complete(cb, user, TETHER_ENOTFOUND, kind, NULL, 0, 0, NULL, 0);
    return 0;
}

/* Time is the loop's here: the store runs its own timer. */
static void r_tick(tether_store_t *s, tether_time_t now)
{
    (void)s;
}

static tether_time_t r_next_deadline(const tether_store_t *s)
{
    return UINT64_MAX;
}

static void on_closed(uv_handle_t *h)
{
    tetherd_redis_t *r = h->data;
    for (int k = 0; k < TETHER_STORE_KINDS; k++)
        while (r->order[k].head)
            rs_rep_free(r, container_of(r->order[k].head, rent_t, order));
    tether_hmap_free(&r->map);
    rs_tombs_free(r);
    tetherd_backlog_free(&r->backlog);
    tetherd_rconn_free(&r->conn);
    tetherd_wrap_clear(&r->wrap);
    free(r);
}

void tetherd_redis_close(tetherd_redis_t *r)
{
    if (!r || r->closing)
        return;
    r->closing = true;
    if (r->backlog.count) {
        char n[24];
        snprintf(n, sizeof n, "%zu", r->backlog.count);
        tether_log_kv(TETHER_LOG_WARN, "redis", "stopping with writes not yet in Redis", "backlog",
                      n, NULL);
    }
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->conn_gen++;
    r->conn.state = TETHERD_RCONN_DOWN;
    if (ac)
        redisAsyncFree(ac);
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_closed);
}

/* The store's destroy: lib/ calls it only for stores it owns (never this
 * one); the process closes it with tetherd_redis_close. */
static void r_destroy(tether_store_t *s)
{
    tetherd_redis_close((tetherd_redis_t *)s);
}

static const tether_store_ops_t redis_ops = {
    .get = r_get,
    .put = r_put,
    .del = r_del,
    .scan = r_scan,
    .tick = r_tick,
    .next_deadline = r_next_deadline,
    .destroy = r_destroy,
};

/* ---- setup --------------------------------------------------------------------- */

void tetherd_redis_conf_defaults(tetherd_redis_conf_t *c)
{
    memset(c, 0, sizeof *c);
    c->max_records = 2000000;
    c->backlog_max = 100000;
    c->poll_ms = 100;
    c->lease_poll_ms = 1000;
    c->log_maxlen = 1000000;
    tetherd_rconn_conf_defaults(&c->conn);
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] */
static int parse_url(tetherd_redis_t *r, const char *url)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return TETHER_ECONFIG;
    p += 8;
    const char *at = strchr(p, '@'), *slash;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if ((size_t)(at - pw) >= sizeof r->password)
            return TETHER_ECONFIG;
        memcpy(r->password, pw, (size_t)(at - pw));
        r->password[at - pw] = 0;
        p = at + 1;
    }
    slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    char hp[300];
    if (!hl || hl >= sizeof hp)
        return TETHER_ECONFIG;
    memcpy(hp, p, hl);
    hp[hl] = 0;
    r->port = 6379;
    char *colon = strrchr(hp, ':');
    if (colon && !strchr(colon, ']')) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port < 1 || port > 65535)
            return TETHER_ECONFIG;
        r->port = (int)port;
        *colon = 0;
    }
    char *h = hp;
    if (*h == '[') {
        h++;
        h[strcspn(h, "]")] = 0;
    }
    if (!*h || strlen(h) >= sizeof r->host)
        return TETHER_ECONFIG;
    strcpy(r->host, h);
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 65535)
            return TETHER_ECONFIG;
        r->db = (int)db;
    }
    return 0;
}

int tetherd_redis_create(uv_loop_t *loop, const tetherd_redis_conf_t *conf, tetherd_redis_t **out)
{
    int rc = TETHER_ENOMEM;
    tetherd_redis_t *r = calloc(1, sizeof *r);
    if (!r)
        return rc;
    r->base.ops = &redis_ops;
    r->conf = *conf;
    r->loop = loop;
    strcpy(r->last_id, "0-0");
    if ((rc = parse_url(r, conf->url)) < 0)
        goto fail;
    rc = TETHER_ECONFIG;
    if (tetherd_wrap_init(&r->wrap, conf->cluster_key, conf->cluster_key_len) < 0)
        goto fail;
    uint64_t seed;
    uv_random(NULL, NULL, &seed, sizeof seed, 0, NULL);
    if ((rc = tetherd_rconn_init(&r->conn, &conf->conn, seed ^ conf->node_id, uv_now(loop))) < 0)
        goto fail;
    if ((rc = tetherd_backlog_init(&r->backlog, conf->backlog_max)) < 0)
        goto fail_conn;
    if ((rc = tether_hmap_init(&r->map, 1024, seed * 0x9e3779b97f4a7c15ull)) < 0)
        goto fail_backlog;
    if ((rc = tether_hmap_init(&r->tombs, 16, seed * 0xc2b2ae3d27d4eb4full)) < 0)
        goto fail_map;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    rs_rearm(r);
    *out = r;
    return 0;
fail_map:
    tether_hmap_free(&r->map);
fail_backlog:
    tetherd_backlog_free(&r->backlog);
fail_conn:
    tetherd_rconn_free(&r->conn);
fail:
    tetherd_wrap_clear(&r->wrap);
    free(r);
    return rc;
}

tether_store_t *tetherd_redis_store(tetherd_redis_t *r)
{
    return &r->base;
}

const tether_store_rec_t *tetherd_redis_find(const tetherd_redis_t *r, tether_store_kind_t kind,
                                             const uint8_t *key, size_t key_len)
{
    char rkey[TETHERD_RKEY_MAX];
    if (key_name(kind, key, key_len, rkey) < 0)
        return NULL;
    const rent_t *e = rs_rep_find(r, rkey);
    return e ? &e->rr.rec : NULL;
}

const tether_store_rec_t *tetherd_redis_next(const tetherd_redis_t *r, tether_store_kind_t kind,
                                             uint64_t *cursor)
{
    if (kind < TETHER_STORE_DEVICE || kind >= TETHER_STORE_KINDS)
        return NULL;
    for (tether_lnode_t *l = r->order[kind].head; l; l = l->next) {
        const rent_t *e = (const rent_t *)container_of(l, rent_t, order);
        if (e->seq > *cursor) {
            *cursor = e->seq;
            return &e->rr.rec;
        }
    }
    return NULL;
}

void tetherd_redis_on_event(tetherd_redis_t *r, void (*fn)(void *user), void *user)
{
    r->on_event = fn;
    r->on_event_user = user;
}

void tetherd_redis_stats(const tetherd_redis_t *r, tetherd_redis_stats_t *out)
{
    *out = (tetherd_redis_stats_t){
        .state = tetherd_rconn_state_str(&r->conn),
        .backlog = r->backlog.count,
        .backlog_max = r->backlog.max,
        .reconnects = r->conn.reconnects,
        .errors = r->errors,
        .conflicts = r->conflicts,
        .stale_refused = r->stale_refused,
        .records = r->count,
        .log_applied = r->log_applied,
        .resyncs = r->resyncs,
        .coalesced = r->backlog.coalesced,
        .synced = r->synced,
    };
}
