/* The Redis store's connection, commands and replies (redis_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"
#include "tether/log.h"

/* Compare-and-set of one key (KEYS[1]); ARGV: expected version ("any" or
 * decimal), the JSON, ttl in ms ("0": none). Returns {1, new version} or
 * {0, current version}. The version is the value's decimal prefix
 * (rkey.h). */
const char rs_lua_put[] =
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
const char rs_lua_del[] = "local cur = redis.call('GET', KEYS[1]) "
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
const char rs_lua_tomb[] = "local cur = redis.call('GET', KEYS[1]) "
                           "local v = 0 "
                           "if cur then v = tonumber(string.match(cur, '^(%d+) ')) or 0 end "
                           "if ARGV[1] ~= 'any' and tonumber(ARGV[1]) ~= v then return {0, v} end "
                           "v = v + 1 "
                           "redis.call('SET', KEYS[1], v .. ' -') "
                           "return {1, v}";

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);
static void dispatch(tetherd_redis_t *r, cmd_t *c, redisReply *rep);

cmd_t *rs_cmd_new(tetherd_redis_t *r, cmd_kind_t kind)
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
int rs_send_argv(tetherd_redis_t *r, cmd_t *c, int argc, const char **argv, const size_t *lens)
{
    if (!r->ac || !tetherd_rconn_can_send(&r->conn) ||
        redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, lens) != REDIS_OK) {
        return TETHER_EIO;
    }
    tetherd_rconn_sent(&r->conn, rs_now_of(r));
    return 0;
}

/* Sends argv (NUL-terminated strings). */
int rs_send_strs(tetherd_redis_t *r, cmd_t *c, int argc, const char **argv)
{
    size_t lens[16];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return rs_send_argv(r, c, argc, argv, lens);
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
    cmd_t *c = rs_cmd_new(r, C_LOG);
    if (!c || rs_send_strs(r, c, json ? 14 : 12, argv) < 0)
        free(c);
}

void rs_fmt_expect(uint64_t expect, char out[24])
{
    if (expect == TETHER_STORE_ANY)
        strcpy(out, "any");
    else
        snprintf(out, 24, "%llu", (unsigned long long)expect);
}

/* Sends the backlog's writes while the pipeline has room. */
void rs_flush(tetherd_redis_t *r)
{
    tetherd_dirty_t *e;
    if (rs_now_of(r) < r->flush_after)
        return;
    /* Headroom is left for the change-log reads and lease polls. */
    while (r->synced &&
           tetherd_rconn_pending(&r->conn) + FLUSH_HEADROOM < r->conn.conf.inflight_max && r->ac &&
           (e = tetherd_backlog_next(&r->backlog))) {
        cmd_t *c = rs_cmd_new(r, C_FLUSH);
        char expect[24], ttl[16];
        if (!c || (!e->del && !(c->value = strdup(e->value)))) {
            free(c);
            return;
        }
        c->dirty = e;
        c->del = e->del;
        rs_fmt_expect(e->base, expect);
        snprintf(ttl, sizeof ttl, "%u", e->ttl_ms);
        const char *put[] = {"EVAL", rs_lua_put, "1", e->rkey, expect, e->value, ttl};
        const char *del[] = {"EVAL", rs_lua_del, "1", e->rkey, expect};
        int rc = e->del ? rs_send_strs(r, c, 5, del) : rs_send_strs(r, c, 7, put);
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
    rent_t *re = rs_rep_find(r, e->rkey);
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
    cmd_t *g = rs_cmd_new(r, C_RGET);
    if (g) {
        snprintf(g->rkey, sizeof g->rkey, "%s", rkey);
        const char *argv[] = {"GET", g->rkey};
        if (rs_send_strs(r, g, 2, argv) < 0)
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
            rs_rep_gone(r, c->rkey, kind, v);
        else
            rs_rep_apply(r, c->rkey, kind, json, jl, v);
    } else if (rep->type == REDIS_REPLY_NIL) {
        rs_rep_gone(r, c->rkey, kind, 0);
    }
}

void rs_complete(tether_store_cb cb, void *user, int rc, tether_store_kind_t kind,
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
        rs_complete(c->cb, c->user, TETHER_EIO, c->skind, c->key, c->key_len, 0, NULL, 0);
        return;
    }
    uint64_t v = (uint64_t)rep->element[1]->integer;
    if (rep->element[0]->integer != 1) {
        /* Redis has a version this node has not seen yet: read it, so the
         * operator's next try names it (the replica lagged, or the key's
         * change-log entry never came). */
        cmd_t *g = rs_cmd_new(r, C_RGET);
        if (g) {
            snprintf(g->rkey, sizeof g->rkey, "%s", c->rkey);
            const char *argv[] = {"GET", g->rkey};
            if (rs_send_strs(r, g, 2, argv) < 0)
                free(g);
        }
        rs_complete(c->cb, c->user, TETHER_ECONFLICT, c->skind, c->key, c->key_len, v, NULL, 0);
        return;
    }
    log_append(r, c->rkey, v, c->del ? NULL : c->value);
    rent_t *e = rs_rep_find(r, c->rkey);
    if (c->del) {
        if (c->skind == TETHER_STORE_CRED)
            rs_tomb_set(r, c->rkey, v);
        rs_complete(c->cb, c->user, 0, c->skind, c->key, c->key_len, 0, NULL, 0);
        if (e)
            rs_rep_drop(r, e);
        else
            tether_store_notify(&r->base, c->skind, c->key, c->key_len, 0);
        return;
    }
    tetherd_rrec_t rr = c->rec;
    memset(&c->rec, 0, sizeof c->rec);
    if ((e = rs_rep_set(r, c->rkey, &rr, v)))
        e->rversion = v;
    rs_complete(c->cb, c->user, 0, c->skind, c->key, c->key_len, v, NULL, 0);
    tether_store_notify(&r->base, c->skind, c->key, c->key_len, v);
}

/* Lost commands (NULL reply: the connection went): writes stay in the
 * backlog, callers waiting get TETHER_EIO. */
static void reply_lost(tetherd_redis_t *r, cmd_t *c)
{
    switch (c->kind) {
    case C_FLUSH: tetherd_backlog_failed(&r->backlog, c->dirty); break;
    case C_CRED: cred_reply(r, c, NULL); break;
    case C_GET:
        rs_complete(c->cb, c->user, TETHER_EIO, c->skind, c->key, c->key_len, 0, NULL, 0);
        break;
    case C_XREAD: r->xread_inflight = false; break;
    case C_LEASES: r->leases_inflight = false; break;
    case C_LEASE:
        rs_complete(c->cb, c->user, TETHER_EIO, c->skind, c->key, c->key_len, 0, NULL, 0);
        break;
    default: break;
    }
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
        rs_event(r);
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
            r->flush_after = rs_now_of(r) + r->flush_backoff_ms;
            goto done;
        }
        if (c->kind == C_RGET) {
            /* One key that cannot be read (a foreign value of another type
             * under our prefix): skip it, not the whole resync. */
        } else if (c->resync && c->epoch == r->epoch && r->resyncing) {
            rs_resync_failed(r); /* the timer starts another, after a pause */
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
        rs_resync_end(r);
    rs_flush(r);
done:
    free(c->value);
    tetherd_rrec_free(&c->rec);
    free(c);
    rs_event_flush(r);
    rs_rearm(r);
}

/* The reply's work, by what the command was for. */
static void dispatch(tetherd_redis_t *r, cmd_t *c, redisReply *rep)
{
    switch (c->kind) {
    case C_FLUSH: flush_reply(r, c, rep); break;
    case C_CRED: cred_reply(r, c, rep); break;
    case C_GET: {
        get_value(r, c, rep);
        rent_t *e = rs_rep_find(r, c->rkey);
        if (e)
            rs_complete(c->cb, c->user, 0, c->skind, e->key, e->key_len, e->version, &e->rr.rec,
                        e->seq);
        else
            rs_complete(c->cb, c->user, TETHER_ENOTFOUND, c->skind, c->key, c->key_len, 0, NULL, 0);
        break;
    }
    case C_XREAD: rs_xread_reply(r, rep); break;
    case C_XLAST: rs_xlast_reply(r, rep); break;
    case C_SCAN: rs_scan_reply(r, rep); break;
    case C_RGET: get_value(r, c, rep); break;
    case C_LEASES: rs_leases_reply(r, rep); break;
    case C_LEASE: {
        bool ok = rep->type == REDIS_REPLY_STATUS;
        rs_complete(c->cb, c->user, ok ? 0 : TETHER_EIO, c->skind, c->key, c->key_len, ok, NULL, 0);
        break;
    }
    default: break;
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    tetherd_redis_t *r = ac->data;
    if (ac != r->ac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        r->ac = NULL;
        tetherd_rconn_failed(&r->conn, rs_now_of(r));
        rs_rearm(r);
        return;
    }
    tetherd_rconn_connected(&r->conn, rs_now_of(r));
    char n[24];
    snprintf(n, sizeof n, "%llu", (unsigned long long)r->conn.reconnects);
    tether_log_kv(TETHER_LOG_INFO, "redis", "connected", "host", r->host, "reconnects", n, NULL);
    if (r->password[0]) {
        const char *argv[] = {"AUTH", r->password};
        cmd_t *c = rs_cmd_new(r, C_AUTH);
        if (!c || rs_send_strs(r, c, 2, argv) < 0)
            free(c);
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        const char *argv[] = {"SELECT", db};
        cmd_t *c = rs_cmd_new(r, C_AUTH);
        if (!c || rs_send_strs(r, c, 2, argv) < 0)
            free(c);
    }
    tetherd_backlog_fail_all(&r->backlog);
    rs_resync_start(r);
    r->next_lease_poll = 0;
    rs_rearm(r);
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
    tetherd_rconn_failed(&r->conn, rs_now_of(r));
    tether_log_kv(TETHER_LOG_WARN, "redis", "disconnected", "host", r->host, NULL);
    if (!r->closing)
        rs_rearm(r);
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
    tetherd_rconn_failed(&r->conn, rs_now_of(r));
    r->errors++;
    if (why)
        tether_log_kv(TETHER_LOG_WARN, "redis", why, "host", r->host, NULL);
    if (ac)
        redisAsyncFree(ac);
    tetherd_backlog_fail_all(&r->backlog);
}

static void connect_now(tetherd_redis_t *r)
{
    tetherd_rconn_connecting(&r->conn, rs_now_of(r));
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        tetherd_rconn_failed(&r->conn, rs_now_of(r));
        return;
    }
    ac->data = r;
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        tetherd_rconn_failed(&r->conn, rs_now_of(r));
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
    tether_time_t now = rs_now_of(r);
    if (tetherd_rconn_timed_out(&r->conn, now))
        drop_conn(r, r->conn.state == TETHERD_RCONN_CONNECTING ? "connect timed out"
                                                               : "command timed out");
    if (tetherd_rconn_connect_due(&r->conn, now))
        connect_now(r);
    if (r->conn.state == TETHERD_RCONN_UP) {
        if (!r->synced && !r->resyncing && now >= r->next_resync)
            rs_resync_start(r); /* the last one failed */
        if (r->synced && !r->xread_inflight && now >= r->next_poll) {
            r->next_poll = now + r->conf.poll_ms;
            rs_xread(r);
        }
        if (!r->leases_inflight && now >= r->next_lease_poll) {
            r->next_lease_poll = now + r->conf.lease_poll_ms;
            rs_leases_poll(r);
        }
        rs_flush(r);
    }
    rs_event_flush(r);
    rs_rearm(r);
}

void rs_rearm(tetherd_redis_t *r)
{
    if (r->closing)
        return;
    tether_time_t now = rs_now_of(r), at = tetherd_rconn_deadline(&r->conn);
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
