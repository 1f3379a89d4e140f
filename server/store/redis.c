/* The Redis state store (see redis.h). */
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "backlog.h"
#include "redis.h"
#include "rkey.h"
#include "tether/container.h"
#include "tether/log.h"
#include "wrap.h"

#define DIGEST 16
#define XREAD_COUNT "512"
#define SCAN_COUNT "1000"
#define NODE_IDS 255
#define FLUSH_HEADROOM 64

/* Compare-and-set of one key (KEYS[1]); ARGV: expected version ("any" or
 * decimal), the JSON, ttl in ms ("0": none). Returns {1, new version} or
 * {0, current version}. The version is the value's decimal prefix
 * (rkey.h). */
static const char LUA_PUT[] =
    "local cur = redis.call('GET', KEYS[1]) "
    "local v = 0 "
    "if cur then v = tonumber(string.match(cur, '^(%d+) ')) or 0 end "
    "if ARGV[1] ~= 'any' and tonumber(ARGV[1]) ~= v then return {0, v} end "
    "v = v + 1 "
    "if ARGV[3] ~= '0' then redis.call('SET', KEYS[1], v .. ' ' .. ARGV[2], 'PX', ARGV[3]) "
    "else redis.call('SET', KEYS[1], v .. ' ' .. ARGV[2]) end "
    "return {1, v}";
/* Delete when the version is the expected one; deleting an absent key
 * that was expected absent (or any) succeeds, so a replayed delete is
 * idempotent. Returns {1, 0} or {0, current version}. */
static const char LUA_DEL[] =
    "local cur = redis.call('GET', KEYS[1]) "
    "if not cur then "
    "  if ARGV[1] == 'any' or ARGV[1] == '0' then return {1, 0} end "
    "  return {0, 0} end "
    "local v = tonumber(string.match(cur, '^(%d+) ')) or 0 "
    "if ARGV[1] ~= 'any' and tonumber(ARGV[1]) ~= v then return {0, v} end "
    "redis.call('DEL', KEYS[1]) "
    "return {1, 0}";

/* Deleting a credential leaves a tombstone "VERSION -" instead of the
 * key, so the key's versions never start again at 1: a sealed credential
 * is bound to its version (rkey.c), and a node refuses a version of a
 * credential at or below one it has seen (cred_newer), so neither an old
 * value replayed into Redis or its change log nor a put and a delete
 * reordered between two nodes bring back a revoked key. Returns
 * {1, tombstone version} or {0, current version}. */
static const char LUA_TOMB[] =
    "local cur = redis.call('GET', KEYS[1]) "
    "local v = 0 "
    "if cur then v = tonumber(string.match(cur, '^(%d+) ')) or 0 end "
    "if ARGV[1] ~= 'any' and tonumber(ARGV[1]) ~= v then return {0, v} end "
    "v = v + 1 "
    "redis.call('SET', KEYS[1], v .. ' -') "
    "return {1, v}";
#define TOMBSTONE "-"

/* The highest version of a deleted credential this node has seen. */
typedef struct {
    tether_hnode_t hn; /* key: digest of rkey */
    uint64_t version;
} tomb_t;

/* One record of the replica. */
typedef struct {
    tether_hnode_t hn;    /* key: digest of rkey */
    tether_lnode_t order; /* in r->order[kind], creation order (scan) */
    uint64_t seq;         /* scan cursor */
    uint64_t version;     /* as this node sees it */
    uint64_t rversion;    /* last version seen in Redis (0: not there yet) */
    uint64_t epoch;       /* resync that last saw it */
    tetherd_rrec_t rr;
    const uint8_t *key;
    size_t key_len;
    uint8_t keybuf[1]; /* NODE key */
    char rkey[];
} rent_t;

typedef enum {
    C_FLUSH,
    C_LOG,
    C_CRED,
    C_GET,
    C_XREAD,
    C_XLAST,
    C_SCAN,
    C_RGET,
    C_LEASES,
    C_LEASE,
    C_AUTH
} cmd_kind_t;

/* What a command's reply is for (one per command, freed by its callback). */
typedef struct {
    struct tetherd_redis *r;
    cmd_kind_t kind;
    bool resync; /* counted in r->scan_outstanding of resync `epoch` */
    uint64_t epoch;
    uint64_t conn_gen;      /* the connection it was sent on */
    tetherd_dirty_t *dirty; /* C_FLUSH */
    tether_store_kind_t skind;
    uint64_t expect;
    bool del;
    tether_store_cb cb; /* C_CRED, C_GET */
    void *user;
    char *value;        /* C_FLUSH, C_CRED: the JSON sent */
    tetherd_rrec_t rec; /* C_CRED put: the record written */
    size_t key_len;
    uint8_t key[TETHER_STORE_KEY_MAX]; /* C_CRED, C_GET, C_RGET */
    char rkey[TETHERD_RKEY_MAX];
} cmd_t;

struct tetherd_redis {
    tether_store_t base;
    tetherd_redis_conf_t conf;
    uv_loop_t *loop;
    uv_timer_t timer;
    bool closing;
    char host[256], password[128];
    int port, db;
    redisAsyncContext *ac;
    uint64_t conn_gen; /* +1 per connection */
    tetherd_rconn_t conn;
    tetherd_wrap_t wrap;
    tetherd_backlog_t backlog;
    tether_hmap_t map;
    tether_hmap_t tombs; /* tomb_t: deleted credentials' last versions */
    tether_list_t order[TETHER_STORE_KINDS];
    tether_store_scan_pos_t scan[TETHER_STORE_KINDS];
    size_t count;
    uint64_t next_seq, epoch;
    /* change log */
    char last_id[48];
    bool xread_inflight;
    tether_time_t next_poll, next_lease_poll;
    bool leases_inflight;
    /* resync */
    bool synced, resyncing;
    tether_time_t next_resync; /* after a failed one: back off */
    uint32_t resync_backoff_ms;
    tether_time_t flush_after; /* after an error reply to a write: back off */
    uint32_t flush_backoff_ms;
    unsigned scan_outstanding; /* SCAN and GET replies still to come */
    bool scan_done;
    void (*on_event)(void *);
    void *on_event_user;
    bool event_pending;
    uint64_t errors, conflicts, log_applied, resyncs, stale_refused;
};

static void rearm(tetherd_redis_t *r);
static void flush(tetherd_redis_t *r);
static void resync_start(tetherd_redis_t *r);
static void resync_failed(tetherd_redis_t *r);

static tether_time_t now_of(const tetherd_redis_t *r)
{
    return uv_now(r->loop);
}

static void event(tetherd_redis_t *r)
{
    r->event_pending = true;
}

/* After a reply: tell the process, once, that something happened. */
static void event_flush(tetherd_redis_t *r)
{
    if (r->event_pending && r->on_event) {
        r->event_pending = false;
        r->on_event(r->on_event_user);
    }
}

/* ---- the replica ------------------------------------------------------------- */

static void digest(const char *rkey, uint8_t out[DIGEST])
{
    uint8_t d[WC_SHA256_DIGEST_SIZE];
    wc_Sha256Hash((const byte *)rkey, (word32)strlen(rkey), d);
    memcpy(out, d, DIGEST);
}

static rent_t *rep_find(const tetherd_redis_t *r, const char *rkey)
{
    uint8_t d[DIGEST];
    digest(rkey, d);
    tether_hnode_t *h = tether_hmap_find(&r->map, d, sizeof d);
    rent_t *e = h ? container_of(h, rent_t, hn) : NULL;
    return e && strcmp(e->rkey, rkey) == 0 ? e : NULL;
}

static uint64_t tomb_version(const tetherd_redis_t *r, const char *rkey)
{
    uint8_t d[DIGEST];
    digest(rkey, d);
    tether_hnode_t *h = r->tombs.count ? tether_hmap_find(&r->tombs, d, sizeof d) : NULL;
    return h ? container_of(h, tomb_t, hn)->version : 0;
}

/* Remembers that rkey was deleted at `version`. The map is bounded like
 * the replica; when full the version is not remembered (counted). */
static void tomb_set(tetherd_redis_t *r, const char *rkey, uint64_t version)
{
    uint8_t d[DIGEST];
    digest(rkey, d);
    tether_hnode_t *h = tether_hmap_find(&r->tombs, d, sizeof d);
    tomb_t *t = h ? container_of(h, tomb_t, hn) : NULL;
    if (!t) {
        if (r->tombs.count >= r->conf.max_records || !(t = calloc(1, sizeof *t))) {
            r->errors++;
            return;
        }
        tether_hmap_insert(&r->tombs, &t->hn, d, sizeof d);
    }
    if (version > t->version)
        t->version = version;
}

/* Whether `version` of credential rkey is newer than all this node has
 * seen of it (live or deleted). Credentials only: other records may
 * legitimately start again (a Redis that lost its data, a device that
 * registers anew), and a stale one of those costs a lookup, not a key. */
static bool cred_newer(tetherd_redis_t *r, const char *rkey, uint64_t version)
{
    const rent_t *e = rep_find(r, rkey);
    if (version > tomb_version(r, rkey) && (!e || version > e->rversion))
        return true;
    r->stale_refused++;
    if (tether_log_enabled(TETHER_LOG_WARN)) {
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long)version);
        tether_log_kv(TETHER_LOG_WARN, "redis", "older credential version refused", "key", rkey,
                      "version", v, NULL);
    }
    return false;
}

static void rep_free(tetherd_redis_t *r, rent_t *e)
{
    tether_hmap_remove(&r->map, &e->hn);
    tether_store_scan_forget(&r->scan[e->rr.rec.kind], &e->order);
    tether_list_del(&r->order[e->rr.rec.kind], &e->order);
    r->count--;
    tetherd_rrec_free(&e->rr);
    free(e);
}

/* Removes e and tells the watchers. */
static void rep_drop(tetherd_redis_t *r, rent_t *e)
{
    uint8_t key[TETHER_STORE_KEY_MAX];
    size_t kl = e->key_len;
    tether_store_kind_t kind = e->rr.rec.kind;
    memcpy(key, e->key, kl);
    rep_free(r, e);
    tether_store_notify(&r->base, kind, key, kl, 0);
    event(r);
}

/* Stores `rr` (taken over, also on failure) as the record of rkey: a new
 * entry or the existing one replaced. NULL on TETHER_ELIMIT/ENOMEM. */
static rent_t *rep_set(tetherd_redis_t *r, const char *rkey, tetherd_rrec_t *rr, uint64_t version)
{
    rent_t *e = rep_find(r, rkey);
    if (e && e->rr.rec.kind != rr->rec.kind) {
        rep_free(r, e); /* cannot happen: the key name carries the kind */
        e = NULL;
    }
    if (!e) {
        uint8_t d[DIGEST];
        digest(rkey, d);
        size_t rl = strlen(rkey);
        if (r->count >= r->conf.max_records || tether_hmap_find(&r->map, d, sizeof d) ||
            !(e = calloc(1, sizeof *e + rl + 1))) {
            tetherd_rrec_free(rr);
            return NULL;
        }
        memcpy(e->rkey, rkey, rl + 1);
        e->seq = ++r->next_seq;
        tether_hmap_insert(&r->map, &e->hn, d, sizeof d);
        tether_list_push(&r->order[rr->rec.kind], &e->order);
        r->count++;
    } else {
        tetherd_rrec_free(&e->rr);
    }
    e->rr = *rr;
    e->version = version;
    e->epoch = r->epoch;
    tether_store_rec_key(&e->rr.rec, e->keybuf, &e->key, &e->key_len);
    return e;
}

/* A deep copy of `rec` owned by the replica (through its JSON: one code
 * path for what this node writes and what it reads). */
static int rec_copy(tetherd_redis_t *r, const tether_store_rec_t *rec, const char *rkey,
                    char **json, tetherd_rrec_t *out)
{
    int rc = tetherd_rrec_encode(rec, &r->wrap, rkey, 1, json);
    if (rc < 0)
        return rc;
    if ((rc = tetherd_rrec_decode(rec->kind, *json, strlen(*json), &r->wrap, rkey, 1, out)) < 0) {
        tetherd_rrec_free(out);
        free(*json);
        *json = NULL;
    }
    return rc;
}

/* Whether a record names the key it was read from: a value copied to
 * another key name (by a writer to Redis) is not taken for that key. */
static bool rec_is_at(const tether_store_rec_t *rec, const char *rkey)
{
    uint8_t kb[1], want[TETHER_STORE_KEY_MAX];
    const uint8_t *key;
    size_t kl, wl;
    tether_store_kind_t kind;
    return tether_store_rec_key(rec, kb, &key, &kl) == 0 &&
           tetherd_rkey_parse(rkey, strlen(rkey), &kind, want, sizeof want, &wl) == 0 &&
           kind == rec->kind && wl == kl && memcmp(want, key, kl) == 0;
}

/* A deleted record seen in Redis (a NIL, a tombstone or a delete in the
 * change log): the replica's copy goes unless this node has a write of
 * its own pending; a credential's tombstone must be newer than what this
 * node has seen (cred_newer). */
static void rep_gone(tetherd_redis_t *r, const char *rkey, tether_store_kind_t kind, uint64_t tomb)
{
    if (kind == TETHER_STORE_CRED && tomb) {
        if (!cred_newer(r, rkey, tomb))
            return;
        tomb_set(r, rkey, tomb);
    }
    rent_t *e = rep_find(r, rkey);
    if (e && !tetherd_backlog_find(&r->backlog, rkey))
        rep_drop(r, e);
}

/* Applies a record read from Redis (resync, change log, get): replaces the
 * replica's unless this node has a write of its own pending for that key
 * (its flush settles the conflict). Tells the watchers when it changed. */
static void rep_apply(tetherd_redis_t *r, const char *rkey, tether_store_kind_t kind,
                      const char *json, size_t jlen, uint64_t version)
{
    rent_t *e = rep_find(r, rkey);
    if (tetherd_backlog_find(&r->backlog, rkey))
        return;
    if (e && e->rversion == version) {
        e->epoch = r->epoch;
        return;
    }
    if (kind == TETHER_STORE_CRED && !cred_newer(r, rkey, version))
        return;
    tetherd_rrec_t rr;
    if (tetherd_rrec_decode(kind, json, jlen, &r->wrap, rkey, version, &rr) < 0 ||
        !rec_is_at(&rr.rec, rkey)) {
        tetherd_rrec_free(&rr);
        r->errors++;
        if (tether_log_enabled(TETHER_LOG_WARN))
            tether_log_kv(TETHER_LOG_WARN, "redis", "undecodable record ignored", "key", rkey,
                          NULL);
        return;
    }
    if (!(e = rep_set(r, rkey, &rr, version))) {
        r->errors++;
        return;
    }
    e->rversion = version;
    tether_store_notify(&r->base, kind, e->key, e->key_len, version);
    event(r);
}

/* ---- commands ---------------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

static cmd_t *cmd_new(tetherd_redis_t *r, cmd_kind_t kind)
{
    cmd_t *c = calloc(1, sizeof *c);
    if (c) {
        c->r = r;
        c->kind = kind;
        c->conn_gen = r->conn_gen;
    }
    return c;
}

/* Sends argv with `c` as its reply context (freed by on_reply, or here on
 * failure). 0 or TETHER_EIO. */
static int send_argv(tetherd_redis_t *r, cmd_t *c, int argc, const char **argv, const size_t *lens)
{
    if (!r->ac || !tetherd_rconn_can_send(&r->conn) ||
        redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, lens) != REDIS_OK) {
        return TETHER_EIO;
    }
    tetherd_rconn_sent(&r->conn, now_of(r));
    return 0;
}

/* Sends argv (NUL-terminated strings). */
static int send_strs(tetherd_redis_t *r, cmd_t *c, int argc, const char **argv)
{
    size_t lens[16];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return send_argv(r, c, argc, argv, lens);
}

static void log_append(tetherd_redis_t *r, const char *rkey, uint64_t version, const char *json)
{
    char v[24], n[8], maxlen[16];
    snprintf(v, sizeof v, "%llu", (unsigned long long)version);
    snprintf(n, sizeof n, "%u", r->conf.node_id);
    snprintf(maxlen, sizeof maxlen, "%u", r->conf.log_maxlen);
    const char *argv[] = {
        "XADD", TETHERD_RKEY_LOG, "MAXLEN", "~", maxlen, "*", "k", rkey, "v", v, "n", n,
        "d",    json ? json : ""};
    cmd_t *c = cmd_new(r, C_LOG);
    if (!c || send_strs(r, c, json ? 14 : 12, argv) < 0)
        free(c);
}

static void fmt_expect(uint64_t expect, char out[24])
{
    if (expect == TETHER_STORE_ANY)
        strcpy(out, "any");
    else
        snprintf(out, 24, "%llu", (unsigned long long)expect);
}

/* Sends the backlog's writes while the pipeline has room. */
static void flush(tetherd_redis_t *r)
{
    tetherd_dirty_t *e;
    if (now_of(r) < r->flush_after)
        return;
    /* Headroom is left for the change-log reads and lease polls. */
    while (r->synced &&
           tetherd_rconn_pending(&r->conn) + FLUSH_HEADROOM < r->conn.conf.inflight_max && r->ac &&
           (e = tetherd_backlog_next(&r->backlog))) {
        cmd_t *c = cmd_new(r, C_FLUSH);
        char expect[24], ttl[16];
        if (!c || (!e->del && !(c->value = strdup(e->value)))) {
            free(c);
            return;
        }
        c->dirty = e;
        c->del = e->del;
        fmt_expect(e->base, expect);
        snprintf(ttl, sizeof ttl, "%u", e->ttl_ms);
        const char *put[] = {"EVAL", LUA_PUT, "1", e->rkey, expect, e->value, ttl};
        const char *del[] = {"EVAL", LUA_DEL, "1", e->rkey, expect};
        int rc = e->del ? send_strs(r, c, 5, del) : send_strs(r, c, 7, put);
        if (rc < 0) {
            free(c->value);
            free(c);
            return;
        }
        tetherd_backlog_sent(&r->backlog, e);
    }
}

/* The owner a record names, 0 when its kind has none. */
static uint8_t rec_owner(const tether_store_rec_t *rec)
{
    return rec->kind == TETHER_STORE_DEVICE    ? rec->u.device.node_id
           : rec->kind == TETHER_STORE_SESSION ? rec->u.session.node_id
                                               : 0;
}

static void flush_reply(tetherd_redis_t *r, cmd_t *c, redisReply *rep)
{
    tetherd_dirty_t *e = c->dirty;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
        r->errors++;
        tetherd_backlog_failed(&r->backlog, e);
        return;
    }
    uint64_t v = (uint64_t)rep->element[1]->integer;
    rent_t *re = rep_find(r, e->rkey);
    r->flush_backoff_ms = 0;
    if (rep->element[0]->integer == 1) {
        log_append(r, e->rkey, v, c->del ? NULL : c->value);
        bool gone = tetherd_backlog_acked(&r->backlog, e, v);
        if (re) {
            re->rversion = v;
            if (gone)
                re->version = v;
        }
        return;
    }
    /* Another version is there (SPEC S5 outage replay). */
    r->conflicts++;
    if (re && rec_owner(&re->rr.rec) == r->conf.node_id) {
        e->base = v; /* ours: this node holds the tunnel; write again over it */
        tetherd_backlog_failed(&r->backlog, e);
        return;
    }
    if (tether_log_enabled(TETHER_LOG_INFO))
        tether_log_kv(TETHER_LOG_INFO, "redis", "another node's newer record wins", "key", e->rkey,
                      NULL);
    char rkey[TETHERD_RKEY_MAX];
    snprintf(rkey, sizeof rkey, "%s", e->rkey);
    tetherd_backlog_drop(&r->backlog, e);
    cmd_t *g = cmd_new(r, C_RGET);
    if (g) {
        snprintf(g->rkey, sizeof g->rkey, "%s", rkey);
        const char *argv[] = {"GET", g->rkey};
        if (send_strs(r, g, 2, argv) < 0)
            free(g);
    }
}

/* A GET's reply: a value or nil. */
static void get_value(tetherd_redis_t *r, cmd_t *c, redisReply *rep)
{
    tether_store_kind_t kind;
    uint8_t key[TETHER_STORE_KEY_MAX];
    size_t kl;
    if (tetherd_rkey_parse(c->rkey, strlen(c->rkey), &kind, key, sizeof key, &kl) < 0)
        return;
    if (rep->type == REDIS_REPLY_STRING) {
        uint64_t v;
        const char *json;
        size_t jl;
        if (tetherd_rval_split(rep->str, rep->len, &v, &json, &jl) < 0) {
            r->errors++;
            return;
        }
        if (jl == 1 && json[0] == TOMBSTONE[0])
            rep_gone(r, c->rkey, kind, v);
        else
            rep_apply(r, c->rkey, kind, json, jl, v);
    } else if (rep->type == REDIS_REPLY_NIL) {
        rep_gone(r, c->rkey, kind, 0);
    }
}

static void complete(tether_store_cb cb, void *user, int rc, tether_store_kind_t kind,
                     const uint8_t *key, size_t kl, uint64_t version, const tether_store_rec_t *rec,
                     uint64_t cursor)
{
    if (!cb)
        return;
    tether_store_result_t res = {.rc = rc,
                                 .kind = kind,
                                 .key = key,
                                 .key_len = kl,
                                 .version = version,
                                 .rec = rec,
                                 .cursor = cursor};
    cb(user, &res);
}

/* The reply to an operator's credential write (sent at once, not through
 * the backlog: it must reach every node or fail). */
static void cred_reply(tetherd_redis_t *r, cmd_t *c, redisReply *rep)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
        if (rep)
            r->errors++;
        complete(c->cb, c->user, TETHER_EIO, c->skind, c->key, c->key_len, 0, NULL, 0);
        return;
    }
    uint64_t v = (uint64_t)rep->element[1]->integer;
    if (rep->element[0]->integer != 1) {
        /* Redis has a version this node has not seen yet: read it, so the
         * operator's next try names it (the replica lagged, or the key's
         * change-log entry never came). */
        cmd_t *g = cmd_new(r, C_RGET);
        if (g) {
            snprintf(g->rkey, sizeof g->rkey, "%s", c->rkey);
            const char *argv[] = {"GET", g->rkey};
            if (send_strs(r, g, 2, argv) < 0)
                free(g);
        }
        complete(c->cb, c->user, TETHER_ECONFLICT, c->skind, c->key, c->key_len, v, NULL, 0);
        return;
    }
    log_append(r, c->rkey, v, c->del ? NULL : c->value);
    rent_t *e = rep_find(r, c->rkey);
    if (c->del) {
        if (c->skind == TETHER_STORE_CRED)
            tomb_set(r, c->rkey, v);
        complete(c->cb, c->user, 0, c->skind, c->key, c->key_len, 0, NULL, 0);
        if (e)
            rep_drop(r, e);
        else
            tether_store_notify(&r->base, c->skind, c->key, c->key_len, 0);
        return;
    }
    tetherd_rrec_t rr = c->rec;
    memset(&c->rec, 0, sizeof c->rec);
    if ((e = rep_set(r, c->rkey, &rr, v)))
        e->rversion = v;
    complete(c->cb, c->user, 0, c->skind, c->key, c->key_len, v, NULL, 0);
    tether_store_notify(&r->base, c->skind, c->key, c->key_len, v);
}

/* ---- change log -------------------------------------------------------------- */

static const char *field(const redisReply *fields, const char *name, size_t *len)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            k->len == strlen(name) && memcmp(k->str, name, k->len) == 0) {
            *len = v->len;
            return v->str;
        }
    }
    return NULL;
}

/* One change-log entry [id, [k, .., v, .., n, .., d, ..]]. */
static void log_entry(tetherd_redis_t *r, const redisReply *ent)
{
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
        ent->element[0]->type != REDIS_REPLY_STRING || ent->element[1]->type != REDIS_REPLY_ARRAY ||
        ent->element[0]->len >= sizeof r->last_id)
        return;
    memcpy(r->last_id, ent->element[0]->str, ent->element[0]->len);
    r->last_id[ent->element[0]->len] = 0;
    const redisReply *f = ent->element[1];
    size_t kl, vl, nl, dl = 0;
    const char *k = field(f, "k", &kl), *v = field(f, "v", &vl), *n = field(f, "n", &nl);
    const char *d = field(f, "d", &dl);
    char rkey[TETHERD_RKEY_MAX], num[24];
    if (!k || !v || !n || kl >= sizeof rkey || vl >= sizeof num || nl >= sizeof num)
        return;
    memcpy(num, n, nl);
    num[nl] = 0;
    if (strtoul(num, NULL, 10) == r->conf.node_id)
        return; /* our own write: the replica has it */
    memcpy(rkey, k, kl);
    rkey[kl] = 0;
    memcpy(num, v, vl);
    num[vl] = 0;
    uint64_t version = strtoull(num, NULL, 10);
    tether_store_kind_t kind;
    uint8_t key[TETHER_STORE_KEY_MAX];
    size_t klen;
    if (tetherd_rkey_parse(rkey, kl, &kind, key, sizeof key, &klen) < 0)
        return;
    r->log_applied++;
    if (!d) /* a delete; a credential's names its tombstone's version */
        rep_gone(r, rkey, kind, version);
    else if (version)
        rep_apply(r, rkey, kind, d, dl, version);
}

static void xread_reply(tetherd_redis_t *r, redisReply *rep)
{
    r->xread_inflight = false;
    if (rep->type == REDIS_REPLY_NIL)
        return;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 ||
        rep->element[0]->type != REDIS_REPLY_ARRAY || rep->element[0]->elements != 2 ||
        rep->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        r->errors++;
        return;
    }
    const redisReply *ents = rep->element[0]->element[1];
    for (size_t i = 0; i < ents->elements; i++)
        log_entry(r, ents->element[i]);
    if (ents->elements >= (size_t)atoi(XREAD_COUNT))
        r->next_poll = 0; /* more waiting: read again at once */
}

static void xread(tetherd_redis_t *r)
{
    const char *argv[] = {"XREAD", "COUNT", XREAD_COUNT, "STREAMS", TETHERD_RKEY_LOG, r->last_id};
    cmd_t *c = cmd_new(r, C_XREAD);
    if (!c || send_strs(r, c, 6, argv) < 0) {
        free(c);
        return;
    }
    r->xread_inflight = true;
}

/* ---- node leases ------------------------------------------------------------- */

static void leases_poll(tetherd_redis_t *r)
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
    cmd_t *c = cmd_new(r, C_LEASES);
    if (!c || send_argv(r, c, NODE_IDS + 1, argv, lens) < 0) {
        free(c);
        return;
    }
    r->leases_inflight = true;
}

static void leases_reply(tetherd_redis_t *r, redisReply *rep)
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
        rent_t *e = rep_find(r, rkey);
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
            if ((e = rep_set(r, rkey, &rr, v)) && fresh) {
                tether_store_notify(&r->base, TETHER_STORE_NODE, e->key, e->key_len, v);
                event(r);
            }
        } else if (e) {
            rep_drop(r, e); /* the lease expired */
        }
    }
}

/* ---- resync ------------------------------------------------------------------ */

static void resync_scan(tetherd_redis_t *r, const char *cursor)
{
    const char *argv[] = {"SCAN", cursor, "MATCH", TETHERD_RKEY_MATCH, "COUNT", SCAN_COUNT};
    cmd_t *c = cmd_new(r, C_SCAN);
    if (c) {
        c->resync = true;
        c->epoch = r->epoch;
    }
    if (!c || send_strs(r, c, 6, argv) < 0) {
        free(c);
        r->resyncing = false;
        return;
    }
    r->scan_outstanding++;
}

/* The resync is complete: what it did not see is gone from Redis. */
static void resync_end(tetherd_redis_t *r)
{
    for (int k = TETHER_STORE_DEVICE; k < TETHER_STORE_KINDS; k++) {
        if (k == TETHER_STORE_NODE)
            continue;
        for (tether_lnode_t *l = r->order[k].head, *next; l; l = next) {
            next = l->next;
            rent_t *e = container_of(l, rent_t, order);
            if (e->epoch != r->epoch && !tetherd_backlog_find(&r->backlog, e->rkey))
                rep_drop(r, e);
        }
    }
    r->resyncing = false;
    r->synced = true;
    r->resyncs++;
    r->resync_backoff_ms = 0;
    r->next_poll = 0;
    char n[24];
    snprintf(n, sizeof n, "%zu", r->count);
    tether_log_kv(TETHER_LOG_INFO, "redis", "replica loaded", "records", n, "from_log", r->last_id,
                  NULL);
    flush(r);
}

static void scan_reply(tetherd_redis_t *r, redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY) {
        r->errors++;
        resync_failed(r);
        return;
    }
    const redisReply *keys = rep->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        tether_store_kind_t kind;
        uint8_t key[TETHER_STORE_KEY_MAX];
        size_t kl;
        if (k->type != REDIS_REPLY_STRING || k->len >= TETHERD_RKEY_MAX ||
            tetherd_rkey_parse(k->str, k->len, &kind, key, sizeof key, &kl) < 0 ||
            kind == TETHER_STORE_NODE)
            continue;
        cmd_t *c = cmd_new(r, C_RGET);
        if (!c)
            continue;
        memcpy(c->rkey, k->str, k->len);
        c->rkey[k->len] = 0;
        c->resync = true;
        c->epoch = r->epoch;
        const char *argv[] = {"GET", c->rkey};
        if (send_strs(r, c, 2, argv) < 0) {
            free(c);
            continue;
        }
        r->scan_outstanding++;
    }
    if (strcmp(rep->element[0]->str, "0") == 0)
        r->scan_done = true;
    else
        resync_scan(r, rep->element[0]->str);
}

/* After a connect: the log position first (so nothing written during the
 * scan is missed: it is read again from there), then every record. */
static void resync_start(tetherd_redis_t *r)
{
    r->resyncing = true;
    r->synced = false;
    r->scan_done = false;
    r->scan_outstanding = 0;
    r->epoch++;
    const char *argv[] = {"XREVRANGE", TETHERD_RKEY_LOG, "+", "-", "COUNT", "1"};
    cmd_t *c = cmd_new(r, C_XLAST);
    if (c) {
        c->resync = true;
        c->epoch = r->epoch;
    }
    if (!c || send_strs(r, c, 6, argv) < 0) {
        free(c);
        r->resyncing = false;
        return;
    }
    r->scan_outstanding++;
    resync_scan(r, "0");
}

static void xlast_reply(tetherd_redis_t *r, redisReply *rep)
{
    strcpy(r->last_id, "0-0");
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
        rep->element[0]->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[0]->element[0]->len < sizeof r->last_id) {
        memcpy(r->last_id, rep->element[0]->element[0]->str, rep->element[0]->element[0]->len);
        r->last_id[rep->element[0]->element[0]->len] = 0;
    }
}

/* ---- replies ----------------------------------------------------------------- */

/* Lost commands (NULL reply: the connection went): writes stay in the
 * backlog, callers waiting get TETHER_EIO. */
static void reply_lost(tetherd_redis_t *r, cmd_t *c)
{
    switch (c->kind) {
    case C_FLUSH: tetherd_backlog_failed(&r->backlog, c->dirty); break;
    case C_CRED: cred_reply(r, c, NULL); break;
    case C_GET:
        complete(c->cb, c->user, TETHER_EIO, c->skind, c->key, c->key_len, 0, NULL, 0);
        break;
    case C_XREAD: r->xread_inflight = false; break;
    case C_LEASES: r->leases_inflight = false; break;
    case C_LEASE:
        complete(c->cb, c->user, TETHER_EIO, c->skind, c->key, c->key_len, 0, NULL, 0);
        break;
    default: break;
    }
}

static void dispatch(tetherd_redis_t *r, cmd_t *c, redisReply *rep);

/* A resync that failed part way: the next one starts after a pause that
 * doubles up to 30 s, so a key Redis cannot serve does not make every
 * node scan it in a loop. */
static void resync_failed(tetherd_redis_t *r)
{
    r->resyncing = false;
    r->resync_backoff_ms = r->resync_backoff_ms ? r->resync_backoff_ms * 2 : 100;
    if (r->resync_backoff_ms > 30000)
        r->resync_backoff_ms = 30000;
    r->next_resync = now_of(r) + r->resync_backoff_ms;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    cmd_t *c = priv;
    tetherd_redis_t *r = c->r;
    redisReply *rep = reply;
    /* A caller's callback runs now, outside any call into the pipeline:
     * whatever it made the node emit must be settled and sent (the
     * process's pump, through on_event). */
    if (c->cb)
        event(r);
    if (!rep || c->conn_gen != r->conn_gen) {
        reply_lost(r, c);
        goto done;
    }
    tetherd_rconn_replied(&r->conn);
    if (rep->type == REDIS_REPLY_ERROR) {
        r->errors++;
        if (tether_log_enabled(TETHER_LOG_WARN))
            tether_log_kv(TETHER_LOG_WARN, "redis", "error reply", "error", rep->str, NULL);
        reply_lost(r, c);
        if (c->kind == C_FLUSH) {
            /* Redis refuses writes (out of memory, a read-only replica):
             * the backlog keeps them; send again after a pause that
             * doubles up to 5 s instead of at once on every reply. */
            r->flush_backoff_ms = r->flush_backoff_ms ? r->flush_backoff_ms * 2 : 100;
            if (r->flush_backoff_ms > 5000)
                r->flush_backoff_ms = 5000;
            r->flush_after = now_of(r) + r->flush_backoff_ms;
            goto done;
        }
        if (c->kind == C_RGET) {
            /* One key that cannot be read (a foreign value of another type
             * under our prefix): skip it, not the whole resync. */
        } else if (c->resync && c->epoch == r->epoch && r->resyncing) {
            resync_failed(r); /* the timer starts another, after a pause */
            goto done;
        } else {
            goto done;
        }
    } else {
        dispatch(r, c, rep);
    }
    /* A reply of an earlier, abandoned resync does not count in this one. */
    if (c->resync && c->epoch == r->epoch && r->resyncing && --r->scan_outstanding == 0 &&
        r->scan_done)
        resync_end(r);
    flush(r);
done:
    free(c->value);
    tetherd_rrec_free(&c->rec);
    free(c);
    event_flush(r);
    rearm(r);
}

/* The reply's work, by what the command was for. */
static void dispatch(tetherd_redis_t *r, cmd_t *c, redisReply *rep)
{
    switch (c->kind) {
    case C_FLUSH: flush_reply(r, c, rep); break;
    case C_CRED: cred_reply(r, c, rep); break;
    case C_GET: {
        get_value(r, c, rep);
        rent_t *e = rep_find(r, c->rkey);
        if (e)
            complete(c->cb, c->user, 0, c->skind, e->key, e->key_len, e->version, &e->rr.rec,
                     e->seq);
        else
            complete(c->cb, c->user, TETHER_ENOTFOUND, c->skind, c->key, c->key_len, 0, NULL, 0);
        break;
    }
    case C_XREAD: xread_reply(r, rep); break;
    case C_XLAST: xlast_reply(r, rep); break;
    case C_SCAN: scan_reply(r, rep); break;
    case C_RGET: get_value(r, c, rep); break;
    case C_LEASES: leases_reply(r, rep); break;
    case C_LEASE: {
        bool ok = rep->type == REDIS_REPLY_STATUS;
        complete(c->cb, c->user, ok ? 0 : TETHER_EIO, c->skind, c->key, c->key_len, ok, NULL, 0);
        break;
    }
    default: break;
    }
}

/* ---- connection ---------------------------------------------------------------- */

static void on_connect(const redisAsyncContext *ac, int status)
{
    tetherd_redis_t *r = ac->data;
    if (ac != r->ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        r->ac = NULL;
        tetherd_rconn_failed(&r->conn, now_of(r));
        rearm(r);
        return;
    }
    tetherd_rconn_connected(&r->conn, now_of(r));
    char n[24];
    snprintf(n, sizeof n, "%llu", (unsigned long long)r->conn.reconnects);
    tether_log_kv(TETHER_LOG_INFO, "redis", "connected", "host", r->host, "reconnects", n, NULL);
    if (r->password[0]) {
        const char *argv[] = {"AUTH", r->password};
        cmd_t *c = cmd_new(r, C_AUTH);
        if (!c || send_strs(r, c, 2, argv) < 0)
            free(c);
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        const char *argv[] = {"SELECT", db};
        cmd_t *c = cmd_new(r, C_AUTH);
        if (!c || send_strs(r, c, 2, argv) < 0)
            free(c);
    }
    tetherd_backlog_fail_all(&r->backlog);
    resync_start(r);
    r->next_lease_poll = 0;
    rearm(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    tetherd_redis_t *r = ac->data;
    if (ac != r->ac)
        return; /* our own redisAsyncFree: already accounted */
    /* hiredis frees the context after this callback */
    r->ac = NULL;
    r->conn_gen++;
    r->synced = r->resyncing = false;
    r->xread_inflight = r->leases_inflight = false;
    tetherd_backlog_fail_all(&r->backlog);
    tetherd_rconn_failed(&r->conn, now_of(r));
    tether_log_kv(TETHER_LOG_WARN, "redis", "disconnected", "host", r->host, NULL);
    if (!r->closing)
        rearm(r);
}

/* Drops the connection from our side (a timeout), outside any hiredis
 * callback: the pending callbacks run with NULL replies. */
static void drop_conn(tetherd_redis_t *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->conn_gen++;
    r->synced = r->resyncing = false;
    r->xread_inflight = r->leases_inflight = false;
    tetherd_rconn_failed(&r->conn, now_of(r));
    r->errors++;
    if (why)
        tether_log_kv(TETHER_LOG_WARN, "redis", why, "host", r->host, NULL);
    if (ac)
        redisAsyncFree(ac);
    tetherd_backlog_fail_all(&r->backlog);
}

static void connect_now(tetherd_redis_t *r)
{
    tetherd_rconn_connecting(&r->conn, now_of(r));
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        tetherd_rconn_failed(&r->conn, now_of(r));
        return;
    }
    ac->data = r;
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        tetherd_rconn_failed(&r->conn, now_of(r));
        return;
    }
    r->ac = ac;
    r->conn_gen++;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

/* The one timer: connect when due, time out what is overdue, poll the
 * change log and the leases, flush. */
static void on_timer(uv_timer_t *t)
{
    tetherd_redis_t *r = t->data;
    tether_time_t now = now_of(r);
    if (tetherd_rconn_timed_out(&r->conn, now))
        drop_conn(r, r->conn.state == TETHERD_RCONN_CONNECTING ? "connect timed out"
                                                               : "command timed out");
    if (tetherd_rconn_connect_due(&r->conn, now))
        connect_now(r);
    if (r->conn.state == TETHERD_RCONN_UP) {
        if (!r->synced && !r->resyncing && now >= r->next_resync)
            resync_start(r); /* the last one failed */
        if (r->synced && !r->xread_inflight && now >= r->next_poll) {
            r->next_poll = now + r->conf.poll_ms;
            xread(r);
        }
        if (!r->leases_inflight && now >= r->next_lease_poll) {
            r->next_lease_poll = now + r->conf.lease_poll_ms;
            leases_poll(r);
        }
        flush(r);
    }
    event_flush(r);
    rearm(r);
}

static void rearm(tetherd_redis_t *r)
{
    if (r->closing)
        return;
    tether_time_t now = now_of(r), at = tetherd_rconn_deadline(&r->conn);
    if (r->conn.state == TETHERD_RCONN_UP) {
        tether_time_t p = r->next_poll < r->next_lease_poll ? r->next_poll : r->next_lease_poll;
        if (p < at)
            at = p;
        if (!r->synced && !r->resyncing && r->next_resync < at)
            at = r->next_resync;
        if (r->backlog.count && r->flush_after > now && r->flush_after < at)
            at = r->flush_after;
    }
    if (at == UINT64_MAX)
        at = now + 1000;
    /* At least 1 ms: libuv runs a timer re-armed at 0 from its own
     * callback again before it polls, and the replies would never be read. */
    uv_timer_start(&r->timer, on_timer, at > now ? at - now : 1, 0);
}

/* ---- store operations ---------------------------------------------------------- */

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
    rent_t *e = rep_find(r, rkey);
    if (e) {
        complete(cb, user, 0, kind, e->key, e->key_len, e->version, &e->rr.rec, e->seq);
        return 0;
    }
    /* A miss: the replica may lag the log by poll_ms; ask Redis too (the
     * answer comes later). NODE leases are all in the replica. */
    cmd_t *c = kind != TETHER_STORE_NODE && r->synced ? cmd_new(r, C_GET) : NULL;
    if (c) {
        c->cb = cb;
        c->user = user;
        c->skind = kind;
        memcpy(c->key, key, kl);
        c->key_len = kl;
        snprintf(c->rkey, sizeof c->rkey, "%s", rkey);
        const char *argv[] = {"GET", c->rkey};
        if (send_strs(r, c, 2, argv) == 0)
            return 0;
        free(c);
    }
    complete(cb, user, TETHER_ENOTFOUND, kind, key, kl, 0, NULL, 0);
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
        complete(cb, user, TETHER_EIO, kind, key, kl, 0, NULL, 0);
        return 0;
    }
    rent_t *e = rep_find(r, rkey);
    uint64_t have = e ? e->rversion : tomb_version(r, rkey);
    if (expect == TETHER_STORE_ANY || (expect == 0 && !e))
        expect = have; /* the version the seal names must be the one written */
    cmd_t *c = cmd_new(r, C_CRED);
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
    fmt_expect(expect, ex);
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
        const char *argv[] = {"EVAL", LUA_PUT, "1", c->rkey, ex, c->value, ttl};
        rc = send_strs(r, c, 7, argv);
    } else {
        /* A checkpoint's CID is never issued again: no tombstone for it. */
        const char *argv[] = {"EVAL", kind == TETHER_STORE_CRED ? LUA_TOMB : LUA_DEL, "1", c->rkey,
                              ex};
        rc = send_strs(r, c, 5, argv);
    }
    if (rc < 0) {
        free(c->value);
        tetherd_rrec_free(&c->rec);
        free(c);
        complete(cb, user, TETHER_EIO, kind, key, kl, 0, NULL, 0);
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
    if (!(c = cmd_new(r, C_LEASE)) ||
        (c->cb = cb, c->user = user, c->skind = TETHER_STORE_NODE, c->key[0] = *key, c->key_len = 1,
         send_strs(r, c, 5, argv) < 0)) {
        free(c);
        complete(cb, user, TETHER_EIO, TETHER_STORE_NODE, key, 1, 0, NULL, 0);
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
    rent_t *e = rep_find(r, rkey);
    uint64_t have = e ? e->version : 0;
    if (expect != TETHER_STORE_ANY && expect != have) {
        complete(cb, user, TETHER_ECONFLICT, rec->kind, key, kl, have, NULL, 0);
        return 0;
    }
    if (!e && r->count >= r->conf.max_records) {
        complete(cb, user, TETHER_ELIMIT, rec->kind, key, kl, 0, NULL, 0);
        return 0;
    }
    char *json;
    tetherd_rrec_t rr;
    if ((rc = rec_copy(r, rec, rkey, &json, &rr)) < 0)
        return rc;
    /* The backlog first: when it refuses, the replica stays as it was. */
    if ((rc = tetherd_backlog_mark(&r->backlog, rkey, e ? e->rversion : 0, json, ttl_ms)) < 0) {
        tetherd_rrec_free(&rr);
        complete(cb, user, rc, rec->kind, key, kl, have, NULL, 0);
        return 0;
    }
    uint64_t rv = e ? e->rversion : 0;
    if (!(e = rep_set(r, rkey, &rr, have + 1))) {
        complete(cb, user, TETHER_ELIMIT, rec->kind, key, kl, have, NULL, 0);
        flush(r); /* the backlog entry still goes to Redis */
        return 0;
    }
    e->rversion = rv;
    uint64_t v = e->version;
    complete(cb, user, 0, rec->kind, e->key, e->key_len, v, NULL, 0);
    if ((e = rep_find(r, rkey)))
        tether_store_notify(s, rec->kind, e->key, e->key_len, v);
    flush(r);
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
    rent_t *e = rep_find(r, rkey);
    if (!e) {
        complete(cb, user, TETHER_ENOTFOUND, kind, key, kl, 0, NULL, 0);
        return 0;
    }
    if (expect != TETHER_STORE_ANY && expect != e->version) {
        complete(cb, user, TETHER_ECONFLICT, kind, key, kl, e->version, NULL, 0);
        return 0;
    }
    if (kind == TETHER_STORE_NODE) { /* our lease, released (a handover): gone at once */
        cmd_t *c = r->ac ? cmd_new(r, C_LEASE) : NULL;
        if (c) {
            c->skind = kind;
            const char *argv[] = {"DEL", rkey};
            if (send_strs(r, c, 2, argv) < 0)
                free(c);
        }
        rep_free(r, e);
        complete(cb, user, 0, kind, key, kl, 0, NULL, 0);
        tether_store_notify(s, kind, key, kl, 0);
        return 0;
    }
    if ((rc = tetherd_backlog_mark(&r->backlog, rkey, e->rversion, NULL, 0)) < 0) {
        complete(cb, user, rc, kind, key, kl, e->version, NULL, 0);
        return 0;
    }
    rep_free(r, e);
    complete(cb, user, 0, kind, key, kl, 0, NULL, 0);
    tether_store_notify(s, kind, key, kl, 0);
    flush(r);
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
        complete(cb, user, 0, kind, e->key, e->key_len, e->version, &e->rr.rec, e->seq);
        return 0;
    }
    complete(cb, user, TETHER_ENOTFOUND, kind, NULL, 0, 0, NULL, 0);
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

static void tombs_free(tetherd_redis_t *r)
{
    for (size_t b = 0; b < r->tombs.nbuckets; b++)
        while (r->tombs.buckets[b]) {
            tether_hnode_t *h = r->tombs.buckets[b];
            tether_hmap_remove(&r->tombs, h);
            free(container_of(h, tomb_t, hn));
        }
    tether_hmap_free(&r->tombs);
}

static void on_closed(uv_handle_t *h)
{
    tetherd_redis_t *r = h->data;
    for (int k = 0; k < TETHER_STORE_KINDS; k++)
        while (r->order[k].head)
            rep_free(r, container_of(r->order[k].head, rent_t, order));
    tether_hmap_free(&r->map);
    tombs_free(r);
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
    rearm(r);
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
    const rent_t *e = rep_find(r, rkey);
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
