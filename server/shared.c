/* The cluster's shared state for tetherd (see shared.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "shared.h"
#include "store/lease.h"
#include "store/redis.h"
#include "store/rkey.h"
#include "tether/hostport.h"
#include "tether/log.h"

#define LEASE_RENEW_MS 1000
#define LEASE_TTL_MS 3000 /* a node missing three renewals is gone */

struct tetherd_shared {
    uv_loop_t *loop;
    const tetherd_config_t *cfg;
    tetherd_redis_t *redis;
    tetherd_lease_t *lease;
    const tether_creds_t *file;
    tetherd_shared_ops_t ops;
    void *user;
    uv_timer_t rebuild; /* coalesces credential changes into one rebuild */
    bool rebuild_armed;
    /* device listing: where the last answer was (admin pages resume there) */
    char cursor_regid[TETHER_STORE_REGID_MAX];
    uint64_t cursor_seq;
};

/* One credential write in flight: the admin request it answers. */
typedef struct {
    tetherd_shared_t *s;
    uint64_t id;
    char identity[TETHER_IDENTITY_MAX]; /* a DELETE waiting for Redis's read */
} cred_op_t;

/* ---- credentials ---------------------------------------------------------------- */

static void rebuild_now(uv_timer_t *t)
{
    tetherd_shared_t *s = t->data;
    s->rebuild_armed = false;
    size_t n = 0, cap = 0;
    tether_creds_entry_t *e = NULL;
    char(*ids)[TETHER_IDENTITY_MAX] = NULL;
    uint64_t cur = 0;
    const tether_store_rec_t *rec;
    int rc = TETHER_ENOMEM;
    while ((rec = tetherd_redis_next(s->redis, TETHER_STORE_CRED, &cur))) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            tether_creds_entry_t *ne = realloc(e, nc * sizeof *e);
            if (ne)
                e = ne;
            void *ni = ne ? realloc(ids, nc * sizeof *ids) : NULL;
            if (!ni)
                goto fail;
            ids = ni;
            cap = nc;
        }
        const tether_store_cred_t *c = &rec->u.cred;
        size_t il = strlen(c->identity);
        memcpy(ids[n], c->identity, il + 1);
        if (c->derived && il && ids[n][il - 1] == '*')
            ids[n][il - 1] = 0; /* "dev*": the prefix "dev" */
        e[n] = (tether_creds_entry_t){.identity = ids[n],
                                      .derived = c->derived,
                                      .role = c->role,
                                      .key = c->key,
                                      .key_len = c->key_len,
                                      .rules = c->allow,
                                      .nrules = c->nallow};
        n++;
    }
    tether_creds_t *active;
    if ((rc = tether_creds_overlay(s->file, e, n, &active)) < 0)
        goto fail;
    free(e);
    free(ids);
    char cnt[24];
    snprintf(cnt, sizeof cnt, "%zu", n);
    tether_log_kv(TETHER_LOG_INFO, "creds", "applied credentials from the shared store",
                  "shared_entries", cnt, NULL);
    s->ops.apply_creds(s->user, active);
    s->ops.pump(s->user);
    return;
fail:
    free(e);
    free(ids);
    tether_log_kv(TETHER_LOG_WARN, "creds", "cannot apply the shared credentials; keeping the set",
                  "error", tether_strerror(rc), NULL);
}

static void schedule_rebuild(tetherd_shared_t *s)
{
    if (!s->rebuild_armed) {
        s->rebuild_armed = true;
        uv_timer_start(&s->rebuild, rebuild_now, 0, 0);
    }
}

static void on_change(void *user, tether_store_kind_t kind, const uint8_t *key, size_t key_len,
                      uint64_t version)
{
    if (kind == TETHER_STORE_CRED)
        schedule_rebuild(user);
}

void tetherd_shared_file_creds(tetherd_shared_t *s, const tether_creds_t *file)
{
    s->file = file;
    rebuild_now(&s->rebuild); /* at once: the caller frees the previous file set */
}

static void cred_written(void *user, const tether_store_result_t *res)
{
    cred_op_t *op = user;
    op->s->ops.cred_done(op->s->user, op->id, res->rc, res->version);
    free(op);
}

/* A DELETE's read of Redis: delete what is there, or answer 404. */
static void cred_read(void *user, const tether_store_result_t *res)
{
    cred_op_t *op = user;
    tetherd_shared_t *s = op->s;
    int rc = res->rc;
    if (rc == 0)
        rc = tether_store_del(tetherd_redis_store(s->redis), TETHER_STORE_CRED,
                              (const uint8_t *)op->identity, strlen(op->identity), TETHER_STORE_ANY,
                              uv_now(s->loop), cred_written, op);
    if (rc < 0) {
        s->ops.cred_done(s->user, op->id, rc, 0);
        free(op);
    }
}

int tetherd_shared_cred(tetherd_shared_t *s, const tether_creds_entry_t *entry,
                        const char *identity, uint64_t id)
{
    size_t il = strlen(identity);
    bool derived = il && identity[il - 1] == '*';
    tether_time_t now = uv_now(s->loop);
    if (il >= TETHER_IDENTITY_MAX || (derived && il < 2))
        return TETHER_EINVAL;
    cred_op_t *op = malloc(sizeof *op);
    if (!op)
        return TETHER_ENOMEM;
    *op = (cred_op_t){.s = s, .id = id};
    int rc;
    if (!entry && !tetherd_redis_find(s->redis, TETHER_STORE_CRED, (const uint8_t *)identity, il)) {
        /* Not in our replica, which lags Redis by up to a change-log read
         * (a PUT on another node just now): Redis itself says whether
         * there is something to delete (404 when not). */
        memcpy(op->identity, identity, il + 1);
        rc = tether_store_get(tetherd_redis_store(s->redis), TETHER_STORE_CRED,
                              (const uint8_t *)identity, il, now, cred_read, op);
        if (rc < 0)
            free(op);
        return rc;
    }
    if (entry) {
        tether_store_rec_t rec = {.kind = TETHER_STORE_CRED};
        tether_store_cred_t *c = &rec.u.cred;
        if (entry->key_len > sizeof c->key || !entry->key_len) {
            free(op);
            return TETHER_EINVAL;
        }
        memcpy(c->identity, identity, il + 1);
        c->derived = derived;
        c->role = entry->role;
        memcpy(c->key, entry->key, entry->key_len);
        c->key_len = (uint8_t)entry->key_len;
        c->allow = entry->rules;
        c->nallow = entry->nrules;
        rc = tether_store_put(tetherd_redis_store(s->redis), &rec, TETHER_STORE_ANY, 0, now,
                              cred_written, op);
        memset(c->key, 0, sizeof c->key);
    } else {
        rc = tether_store_del(tetherd_redis_store(s->redis), TETHER_STORE_CRED,
                              (const uint8_t *)identity, il, TETHER_STORE_ANY, now, cred_written,
                              op);
    }
    if (rc < 0)
        free(op);
    return rc;
}

/* ---- devices -------------------------------------------------------------------- */

static void from_record(const tetherd_shared_t *s, const tether_store_device_t *d,
                        tether_device_info_t *info)
{
    memset(info, 0, sizeof *info);
    info->name = d->name;
    info->regid = d->regid;
    info->node_id = d->node_id;
    /* Another node's device is online while that node holds its lease (its
     * tunnel's own state is that node's to tell); one of ours that the
     * registry does not know is not. */
    info->online = d->node_id != s->cfg->node_id && s->lease &&
                   tetherd_lease_member(s->lease, d->node_id)->alive;
    info->queue_mode = d->queue_mode;
    info->lifetime_s = d->lifetime_s;
    /* The writer's clock (monotonic: exact between nodes of one host). */
    info->registered_at = info->last_seen = d->last_seen_s * 1000;
    info->expires = info->last_seen + (tether_time_t)d->lifetime_s * 1000;
    info->addr = d->addr;
    info->links = d->links ? d->links : "";
}

int tetherd_shared_device(tetherd_shared_t *s, const tether_node_t *node, const char *name,
                          tether_device_info_t *info)
{
    if (tether_node_device(node, name, info) == 0)
        return 0;
    const tether_store_rec_t *rec =
        tetherd_redis_find(s->redis, TETHER_STORE_DEVICE, (const uint8_t *)name, strlen(name));
    if (!rec)
        return TETHER_ENOTFOUND;
    from_record(s, &rec->u.device, info);
    return 0;
}

int tetherd_shared_device_next(tetherd_shared_t *s, const tether_node_t *node, const char *cursor,
                               tether_device_info_t *info)
{
    uint64_t at = 0;
    const tether_store_rec_t *rec;
    if (cursor && strcmp(cursor, s->cursor_regid) == 0) {
        at = s->cursor_seq;
    } else if (cursor) { /* not where the last page ended: find it */
        uint64_t c = 0;
        while ((rec = tetherd_redis_next(s->redis, TETHER_STORE_DEVICE, &c)) &&
               strcmp(rec->u.device.regid, cursor) != 0)
            ;
        if (!rec)
            return TETHER_ENOTFOUND;
        at = c;
    }
    if (!(rec = tetherd_redis_next(s->redis, TETHER_STORE_DEVICE, &at)))
        return TETHER_ENOTFOUND;
    snprintf(s->cursor_regid, sizeof s->cursor_regid, "%s", rec->u.device.regid);
    s->cursor_seq = at;
    const tether_store_device_t *d = &rec->u.device;
    if (d->node_id == s->cfg->node_id && tether_node_device(node, d->name, info) == 0 &&
        strcmp(info->regid, d->regid) == 0)
        return 0;
    from_record(s, d, info);
    return 0;
}

/* ---- views ---------------------------------------------------------------------- */

const char *tetherd_shared_redis_state(const tetherd_shared_t *s)
{
    tetherd_redis_stats_t st;
    tetherd_redis_stats(s->redis, &st);
    return st.state;
}

int tetherd_shared_stats(const tetherd_shared_t *s, json_t *stats)
{
    tetherd_redis_stats_t st;
    tetherd_redis_stats(s->redis, &st);
    const struct {
        const char *path;
        uint64_t v;
    } rows[] = {
        {"redis.backlog", st.backlog},
        {"redis.backlog_max", st.backlog_max},
        {"redis.reconnects", st.reconnects},
        {"redis.errors", st.errors},
        {"redis.conflicts", st.conflicts},
        {"redis.stale_refused", st.stale_refused},
        {"redis.records", st.records},
        {"redis.log_applied", st.log_applied},
        {"redis.resyncs", st.resyncs},
        {"redis.coalesced", st.coalesced},
        {"redis.lease_renewals_failed", tetherd_lease_renewals_failed(s->lease)},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (tetherd_admin_stat_set(stats, rows[i].path, (json_int_t)rows[i].v) < 0)
            return TETHER_ENOMEM;
    json_t *r = json_object_get(stats, "redis");
    if (!r || json_object_set_new(r, "state", json_string(st.state)) < 0)
        return TETHER_ENOMEM;
    uint32_t alive = tetherd_lease_alive(s->lease);
    /* Before the first lease poll, this node at least. */
    return tetherd_admin_stat_set(stats, "cluster.nodes_alive", alive ? alive : 1);
}

json_t *tetherd_shared_cluster_json(const tetherd_shared_t *s, const tetherd_config_t *cfg,
                                    const tether_channel_t *channel)
{
    json_t *nodes = json_array();
    for (unsigned id = 1; nodes && id <= 255; id++) {
        const tetherd_member_t *m = s ? tetherd_lease_member(s->lease, (uint8_t)id) : NULL;
        const char *static_addr = NULL;
        for (size_t i = 0; i < cfg->ncluster_nodes; i++)
            if (cfg->cluster_nodes[i].id == id)
                static_addr = cfg->cluster_nodes[i].addr;
        bool self = id == cfg->node_id;
        if (!self && !static_addr && !(m && (m->alive || m->adopted_by)))
            continue;
        char addr[168] = "";
        if (m && m->alive && m->addr.len)
            tether_addr_str(&m->addr, addr, sizeof addr);
        else if (static_addr)
            snprintf(addr, sizeof addr, "%s", static_addr);
        else if (self)
            snprintf(addr, sizeof addr, "%s",
                     cfg->cluster_advertise[0] ? cfg->cluster_advertise : cfg->cluster_listen);
        bool heard =
            self || (channel && tether_channel_node_alive(channel, (uint8_t)id, tetherd_wall_ms()));
        json_t *n = json_pack("{s:i, s:s, s:b, s:b}", "id", (int)id, "addr", addr, "self",
                              (int)self, "heartbeat", (int)heard);
        if (!n)
            break;
        if (s) {
            json_object_set_new(n, "lease", json_boolean(m && m->alive));
            if (m && m->alive)
                json_object_set_new(n, "generation", json_integer((json_int_t)m->generation));
            /* Dead, its sessions adopted (cluster.failover, store/adopt.h). */
            if (m && !m->alive && m->adopted_by)
                json_object_set_new(n, "adopted_by", json_integer(m->adopted_by));
        }
        /* Alive: a live lease with Redis (SPEC S5), heartbeats without. */
        bool alive = s ? (m && m->alive) || (self && !tetherd_lease_alive(s->lease)) : heard;
        json_object_set_new(n, "state", json_string(alive ? "alive" : "dead"));
        json_array_append_new(nodes, n);
    }
    if (!nodes)
        return NULL;
    return json_pack("{s:i, s:s, s:s, s:o}", "node_id", (int)cfg->node_id, "membership",
                     s ? "redis" : "static", "redis", s ? tetherd_shared_redis_state(s) : "off",
                     "nodes", nodes);
}

/* ---- setup ---------------------------------------------------------------------- */

static void on_store_event(void *user)
{
    tetherd_shared_t *s = user;
    s->ops.pump(s->user);
}

static void on_member(void *user, uint8_t id, const tetherd_member_t *m)
{
    tetherd_shared_t *s = user;
    if (m->alive && m->addr.len && id != s->cfg->node_id && s->ops.node_live)
        s->ops.node_live(s->user, id, &m->addr);
    if (s->ops.member)
        s->ops.member(s->user, id, m);
}

int tetherd_shared_open(uv_loop_t *loop, const tetherd_config_t *cfg, const tether_creds_t *file,
                        const tetherd_shared_ops_t *ops, void *user, tetherd_shared_t **out,
                        char *err, size_t errcap)
{
    tetherd_shared_t *s = calloc(1, sizeof *s);
    int rc = TETHER_ENOMEM;
    if (!s)
        goto fail;
    s->loop = loop;
    s->cfg = cfg;
    s->file = file;
    s->ops = *ops;
    s->user = user;
    const char *adv = cfg->cluster_advertise[0] ? cfg->cluster_advertise : cfg->cluster_listen;
    tether_addr_t advertise;
    if ((rc = tetherd_addr_parse(adv, &advertise)) < 0) {
        snprintf(err, errcap,
                 "cluster.advertise %s: other nodes need a numeric address (set "
                 "cluster.advertise)",
                 adv);
        goto fail_free;
    }
    tetherd_redis_conf_t rc_conf;
    tetherd_redis_conf_defaults(&rc_conf);
    rc_conf.url = cfg->redis_url;
    rc_conf.node_id = (uint8_t)cfg->node_id;
    rc_conf.cluster_key = (const uint8_t *)cfg->cluster_key;
    rc_conf.cluster_key_len = strlen(cfg->cluster_key);
    rc_conf.backlog_max = cfg->redis_backlog_max;
    if ((rc = tetherd_redis_create(loop, &rc_conf, &s->redis)) < 0) {
        snprintf(err, errcap, "redis_url: %s (expected redis://HOST:PORT[/DB])",
                 tether_strerror(rc));
        goto fail_free;
    }
    tetherd_redis_on_event(s->redis, on_store_event, s);
    tether_store_t *st = tetherd_redis_store(s->redis);
    if ((rc = tether_store_watch(st, on_change, s)) < 0)
        goto fail_redis;
    if ((rc = tetherd_lease_start(loop, st, (uint8_t)cfg->node_id, &advertise, tetherd_wall_ms(),
                                  LEASE_RENEW_MS, LEASE_TTL_MS, on_member, s, &s->lease)) < 0) {
        snprintf(err, errcap, "redis: cannot start the node lease: %s", tether_strerror(rc));
        goto fail_redis;
    }
    uv_timer_init(loop, &s->rebuild);
    s->rebuild.data = s;
    *out = s;
    return 0;
fail_redis:
    tetherd_redis_close(s->redis);
fail_free:
    free(s);
fail:
    if (rc == TETHER_ENOMEM)
        snprintf(err, errcap, "redis: out of memory");
    return rc;
}

tether_store_t *tetherd_shared_store(tetherd_shared_t *s)
{
    return tetherd_redis_store(s->redis);
}
tetherd_redis_t *tetherd_shared_redis(tetherd_shared_t *s)
{
    return s->redis;
}
tetherd_lease_t *tetherd_shared_lease(tetherd_shared_t *s)
{
    return s->lease;
}

static void closed(uv_handle_t *h)
{
    free(h->data);
}

void tetherd_shared_close(tetherd_shared_t *s)
{
    if (!s)
        return;
    tetherd_lease_close(s->lease);
    tether_store_unwatch(tetherd_redis_store(s->redis), on_change, s);
    /* Pending credential writes complete (TETHER_EIO) inside the close. */
    tetherd_redis_close(s->redis);
    uv_close((uv_handle_t *)&s->rebuild, closed);
}
