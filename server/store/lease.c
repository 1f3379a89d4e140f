/* Node leases (see lease.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "tether/log.h"

struct tetherd_lease {
    uv_timer_t timer;
    tether_store_t *store;
    uint8_t self;
    tether_addr_t advertise;
    uint64_t generation;
    uint32_t renew_ms, ttl_ms;
    tetherd_member_fn on_change;
    void *user;
    tetherd_member_t members[256];
    uint32_t alive;
    uint64_t failed;
};

static void renewed(void *user, const tether_store_result_t *res)
{
    tetherd_lease_t *l = user;
    if (res->rc < 0)
        l->failed++;
}

static void renew(tetherd_lease_t *l)
{
    tether_store_rec_t rec = {.kind = TETHER_STORE_NODE,
                              .u.node = {.node_id = l->self,
                                         .addr = l->advertise,
                                         .generation = l->generation}};
    if (tether_store_put(l->store, &rec, TETHER_STORE_ANY, l->ttl_ms, uv_now(l->timer.loop),
                         renewed, l) < 0)
        l->failed++;
}

static void on_timer(uv_timer_t *t) { renew(t->data); }

static void set_member(tetherd_lease_t *l, uint8_t id, bool alive, const tether_store_node_t *n,
                       uint64_t version)
{
    tetherd_member_t *m = &l->members[id];
    bool was = m->alive;
    m->version = alive ? version : 0;
    /* An adoption claim or a handover marker is no lease: the node is
     * gone; a claim's generation is its id's from now on. */
    if (alive && (n->adopted_by || n->handover)) {
        bool news = m->adopted_by != n->adopted_by || m->generation != n->generation ||
                    m->handover != n->handover;
        m->adopted_by = n->adopted_by;
        m->handover = n->handover && !n->adopted_by;
        m->generation = n->generation;
        alive = false;
        if (!was) {
            if (news && l->on_change)
                l->on_change(l->user, id, m);
            return;
        }
    } else {
        m->adopted_by = 0;
        m->handover = false;
    }
    if (alive) {
        bool moved = was && (!tether_addr_equal(&m->addr, &n->addr) ||
                             m->generation != n->generation);
        m->addr = n->addr;
        m->generation = n->generation;
        if (!was)
            m->since_ms = uv_now(l->timer.loop);
        m->alive = true;
        if (was && !moved)
            return;
        if (!was)
            l->alive++;
    } else {
        if (!was)
            return;
        m->alive = false;
        l->alive--;
    }
    char id_s[8];
    snprintf(id_s, sizeof id_s, "%u", id);
    tether_log_kv(TETHER_LOG_INFO, "cluster", alive ? "node lease live" : "node lease gone",
                  "node", id_s, NULL);
    if (l->on_change)
        l->on_change(l->user, id, m);
}

static void got(void *user, const tether_store_result_t *res)
{
    tetherd_lease_t *l = user;
    if (res->key_len != 1 || !res->key[0])
        return;
    if (res->rc == 0 && res->rec && res->rec->kind == TETHER_STORE_NODE)
        set_member(l, res->key[0], true, &res->rec->u.node, res->version);
    else if (res->rc == TETHER_ENOTFOUND)
        set_member(l, res->key[0], false, NULL, 0);
}

static void on_store_change(void *user, tether_store_kind_t kind, const uint8_t *key,
                            size_t key_len, uint64_t version)
{
    tetherd_lease_t *l = user;
    if (kind != TETHER_STORE_NODE || key_len != 1 || !key[0])
        return;
    if (!version) {
        set_member(l, key[0], false, NULL, 0);
        return;
    }
    tether_store_get(l->store, TETHER_STORE_NODE, key, 1, uv_now(l->timer.loop), got, l);
}

int tetherd_lease_start(uv_loop_t *loop, tether_store_t *store, uint8_t self,
                        const tether_addr_t *advertise, uint64_t generation, uint32_t renew_ms,
                        uint32_t ttl_ms, tetherd_member_fn on_change, void *user,
                        tetherd_lease_t **out)
{
    tetherd_lease_t *l = calloc(1, sizeof *l);
    int rc;
    if (!l)
        return TETHER_ENOMEM;
    l->store = store;
    l->self = self;
    l->advertise = *advertise;
    l->generation = generation;
    l->renew_ms = renew_ms;
    l->ttl_ms = ttl_ms;
    l->on_change = on_change;
    l->user = user;
    if ((rc = tether_store_watch(store, on_store_change, l)) < 0) {
        free(l);
        return rc;
    }
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_timer, 0, renew_ms);
    *out = l;
    return 0;
}

const tetherd_member_t *tetherd_lease_member(const tetherd_lease_t *l, uint8_t id)
{
    return &l->members[id];
}

uint32_t tetherd_lease_alive(const tetherd_lease_t *l) { return l->alive; }

uint64_t tetherd_lease_renewals_failed(const tetherd_lease_t *l) { return l->failed; }

static void closed(uv_handle_t *h) { free(h->data); }

static void released(void *user, const tether_store_result_t *res)
{
    tetherd_lease_t *l = user;
    if (res->rc < 0) /* no lease of ours to replace: make sure none stays */
        tether_store_del(l->store, TETHER_STORE_NODE, &l->self, 1, TETHER_STORE_ANY,
                         uv_now(l->timer.loop), NULL, NULL);
}

void tetherd_lease_release(tetherd_lease_t *l)
{
    uv_timer_stop(&l->timer);
    tether_store_rec_t rec = {.kind = TETHER_STORE_NODE,
                              .u.node = {.node_id = l->self,
                                         .addr = l->advertise,
                                         .generation = l->generation,
                                         .handover = true}};
    /* Over our lease as renewals write it (version 1): never over a claim
     * or another process's lease. Lives a few ttls, so every peer sees it. */
    if (tether_store_put(l->store, &rec, 1, 3 * l->ttl_ms, uv_now(l->timer.loop), released, l) <
        0)
        tether_store_del(l->store, TETHER_STORE_NODE, &l->self, 1, TETHER_STORE_ANY,
                         uv_now(l->timer.loop), NULL, NULL);
}

uint64_t tetherd_lease_generation(const tetherd_lease_t *l) { return l->generation; }

void tetherd_lease_close(tetherd_lease_t *l)
{
    if (!l)
        return;
    tether_store_unwatch(l->store, on_store_change, l);
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, closed);
}
