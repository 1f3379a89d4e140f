/* Unit tests for lib/proxy/group.c (draft-ietf-core-groupcomm-proxy):
 * a group request fans out to the members, paced, each response comes back
 * on its own with Reply-From until T', later ones are dropped; the error
 * cases (no Multicast-Timeout, ACL) and the group table's bounds; group
 * observations (every member observed, one device-side observation shared
 * with a direct observer, notifications past T', cancellation at every
 * member). The clock is stepped (node_fixture.h). */
#include "node_fixture.h"

#define MT 2   /* Multicast-Timeout, the default number */
#define RF 248 /* Reply-From */
#define GE 24  /* Group-ETag */

/* The fixture's node again with conf `c`, dev1..dev3 registered on
 * sessions 11..13. */
static void group_node(fx_t *f, const tether_node_conf_t *c)
{
    tether_node_destroy(f->node);
    assert_int_equal(tether_node_create(c, f->creds, &f->node), 0);
    for (int i = 1; i <= 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "dev%d", i);
        assert_int_equal(do_register(f, 10 + (uint64_t)i, name, name, NULL), TETHER_COAP_CREATED);
    }
}

/* The fixture's node again with group pacing of one member per 10 ms. */
static void paced_node(fx_t *f)
{
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.group_pacing_burst = 1;
    c.group_pacing_interval_ms = 10;
    c.group_max_members = 4;
    group_node(f, &c);
    const char *m[] = {"dev1", "dev2", "dev3", "ghost"};
    assert_int_equal(tether_node_group_set(f->node, "Floor", NULL, m, 4), 0);
}

/* A group GET from a plain client with Multicast-Timeout `t` (or none). */
static size_t group_get(fx_t *f, const tether_peer_t *c, int t, uint8_t type)
{
    tether_coap_msg_t m;
    uint8_t v[4];
    tether_coap_msg_init(&m, type, TETHER_COAP_GET, f->mid++);
    tether_coap_msg_set_token(&m, (const uint8_t *)"\xc1\xc2\xc3", 3);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "floor", 5);
    add_path(&m, "temp");
    if (t >= 0)
        tether_coap_msg_add_opt(&m, MT, v, tether_coap_uint_encode((uint32_t)t, v));
    return send_msg(f, c, &m);
}

/* The request the node sent device session `id` in the outbox, into *m. */
static void dev_request(fx_t *f, uint64_t id, tether_coap_msg_t *m)
{
    assert_true(out_find(f, TETHER_LINK_DTLS, id, m) >= 0);
    assert_int_equal(m->type, TETHER_COAP_CON);
    assert_null(tether_coap_msg_find_opt(m, MT)); /* not forwarded */
    assert_null(tether_coap_msg_find_opt(m, TETHER_COAP_OPT_URI_HOST));
}

/* The direct client `c` observes dev1/temp (Observe: 0, token "dd"). */
static size_t client_get_observe(fx_t *f, const tether_peer_t *c)
{
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, f->mid++);
    tether_coap_msg_set_token(&m, (const uint8_t *)"dd", 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, "", 0);
    add_path(&m, "temp");
    return send_msg(f, c, &m);
}

/* Device `name` on session `id` answers `req` piggybacked with `value`. */
static size_t dev_answer(fx_t *f, uint64_t id, const char *name, const tether_coap_msg_t *req,
                         const char *value)
{
    tether_peer_t dev = dtls_peer(id, name, TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t r;
    tether_coap_msg_init(&r, TETHER_COAP_ACK, TETHER_COAP_CONTENT, req->mid);
    tether_coap_msg_set_token(&r, req->token, req->tkl);
    r.payload = (const uint8_t *)value;
    r.payload_len = strlen(value);
    return send_msg(f, &dev, &r);
}

/* The client's copy: a 2.05 of `type` with its token and Reply-From [-1, name]. */
static void check_forwarded_type(fx_t *f, const char *name, const char *value, bool observing,
                                 uint8_t type)
{
    tether_coap_msg_t m;
    size_t i = 0;
    for (; i < tether_node_out_count(f->node); i++) /* past the empty ACK */
        if (tether_node_out_get(f->node, i)->link.kind == TETHER_LINK_PLAIN &&
            out_msg(f, i, &m)->len > 4)
            break;
    assert_true(i < tether_node_out_count(f->node));
    assert_int_equal(m.type, type);
    assert_int_equal(m.code, TETHER_COAP_CONTENT);
    assert_int_equal(m.tkl, 3);
    assert_memory_equal(m.token, "\xc1\xc2\xc3", 3);
    assert_int_equal(m.payload_len, strlen(value));
    assert_memory_equal(m.payload, value, m.payload_len);
    if (observing) /* tether's own Observe sequence */
        assert_non_null(tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_OBSERVE));
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(&m, RF);
    assert_non_null(o);
    size_t nl = strlen(name);
    assert_int_equal(o->len, 3 + nl);
    assert_int_equal(o->val[0], 0x82);
    assert_int_equal(o->val[1], 0x20);
    assert_int_equal(o->val[2], 0x60 | nl);
    assert_memory_equal(o->val + 3, name, nl);
}

static void check_forwarded(fx_t *f, const char *name, const char *value)
{
    check_forwarded_type(f, name, value, false, TETHER_COAP_NON);
}

/* The same, a notification of a group observation. */
static void check_notified(fx_t *f, const char *name, const char *value)
{
    check_forwarded_type(f, name, value, true, TETHER_COAP_NON);
}

static void test_fanout_paced_until_timeout(void **state)
{
    fx_t *f = *state;
    paced_node(f);
    tether_peer_t c = plain_peer(5000);
    tether_coap_msg_t m, r1, r2, r3;
    /* the CON is acknowledged at once; the first member gets the request */
    assert_int_equal(group_get(f, &c, 2, TETHER_COAP_CON), 2);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &m) >= 0);
    assert_int_equal(m.type, TETHER_COAP_ACK);
    assert_int_equal(m.code, TETHER_COAP_EMPTY);
    dev_request(f, 11, &r1); /* its mid and token are copies: they outlive the outbox */
    /* paced: one member per 10 ms */
    advance(f, 9);
    assert_int_equal(tether_node_out_count(f->node), 0);
    advance(f, 1);
    dev_request(f, 12, &r2);
    advance(f, 10);
    dev_request(f, 13, &r3);
    advance(f, 10); /* ghost is not registered: nothing more */
    assert_int_equal(tether_node_out_count(f->node), 0);
    /* each answer goes back on its own */
    assert_true(dev_answer(f, 11, "dev1", &r1, "21.5") >= 1);
    check_forwarded(f, "dev1", "21.5");
    assert_true(dev_answer(f, 12, "dev2", &r2, "22.5") >= 1);
    check_forwarded(f, "dev2", "22.5");
    assert_int_equal(tether_node_stats(f->node)->group_responses, 2);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 1);
    /* T' passes: dev3's request is cancelled, its late answer dropped */
    advance(f, 2000);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 0);
    assert_int_equal(tether_node_stats(f->node)->group_members_unanswered, 1);
    dev_answer(f, 13, "dev3", &r3, "23.5");
    assert_int_equal(out_find(f, TETHER_LINK_PLAIN, 0, &m), -1);
    assert_int_equal(tether_node_stats(f->node)->group_responses, 2);
    assert_int_equal(tether_node_pending(f->node), 0);
}

/* A group GET with Observe `ov` and Multicast-Timeout 2 from `c`. */
static size_t group_observe(fx_t *f, const tether_peer_t *c, int ov)
{
    tether_coap_msg_t m;
    uint8_t v = (uint8_t)ov, t = 2;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, f->mid++);
    tether_coap_msg_set_token(&m, (const uint8_t *)"\xc1\xc2\xc3", 3);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "floor", 5);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, &v, ov ? 1 : 0);
    add_path(&m, "temp");
    tether_coap_msg_add_opt(&m, MT, &t, 1);
    return send_msg(f, c, &m);
}

/* The observe registration the node sent device session `id`: its token
 * into tok (4 bytes). */
static void dev_observe_req(fx_t *f, uint64_t id, uint8_t tok[4], uint16_t *mid)
{
    tether_coap_msg_t m;
    uint32_t ov = 9;
    dev_request(f, id, &m);
    assert_int_equal(tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_OBSERVE, &ov), 0);
    assert_int_equal(ov, 0);
    assert_int_equal(m.tkl, 4);
    memcpy(tok, m.token, 4);
    *mid = m.mid;
}

/* Device `name` on session `id` notifies (type, mid) with Observe `seq`. */
static void dev_notify(fx_t *f, uint64_t id, const char *name, const uint8_t tok[4], uint8_t type,
                       uint16_t mid, uint8_t seq, const char *value)
{
    tether_peer_t dev = dtls_peer(id, name, TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t r;
    tether_coap_msg_init(&r, type, TETHER_COAP_CONTENT, mid);
    tether_coap_msg_set_token(&r, tok, 4);
    tether_coap_msg_add_opt(&r, TETHER_COAP_OPT_OBSERVE, &seq, 1);
    r.payload = (const uint8_t *)value;
    r.payload_len = strlen(value);
    send_msg(f, &dev, &r);
}

/* Whether the outbox holds a deregistration (GET, Observe: 1) for `id`. */
static bool dev_cancelled(fx_t *f, uint64_t id)
{
    tether_coap_msg_t m;
    uint32_t ov = 0;
    for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
        const tether_out_t *o = out_msg(f, i, &m);
        if (o->link.kind == TETHER_LINK_DTLS && o->link.id == id && m.code == TETHER_COAP_GET &&
            tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_OBSERVE, &ov) == 0 && ov == 1)
            return true;
    }
    return false;
}

static void test_group_observe(void **state)
{
    fx_t *f = *state;
    paced_node(f);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    tether_peer_t c = plain_peer(5000);
    tether_peer_t direct = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_coap_msg_t m;
    uint8_t t1[4], t2[4], t3[4];
    uint16_t m1, m2, m3;
    /* a direct observer of dev1/temp first: dev1 is observed once */
    assert_int_equal(client_get_observe(f, &direct), 2);
    dev_observe_req(f, 11, t1, &m1);
    dev_notify(f, 11, "dev1", t1, TETHER_COAP_ACK, m1, 5, "21.0");
    assert_true(out_find(f, TETHER_LINK_DTLS, 9, &m) >= 0);
    assert_int_equal(st->observe_device_observations, 1);
    /* the group observation: dev1's state comes at once, with Reply-From,
     * and dev1 is not asked again (one device-side observation) */
    assert_int_equal(group_observe(f, &c, 0), 2);
    out_msg(f, 0, &m);
    assert_int_equal(m.type, TETHER_COAP_ACK);
    assert_int_equal(m.code, TETHER_COAP_EMPTY);
    check_notified(f, "dev1", "21.0");
    assert_int_equal(out_find(f, TETHER_LINK_DTLS, 11, &m), -1);
    assert_int_equal(st->observe_device_observations, 1);
    /* paced: dev2 and dev3 are registered with, 10 ms apart */
    advance(f, 10);
    dev_observe_req(f, 12, t2, &m2);
    dev_notify(f, 12, "dev2", t2, TETHER_COAP_ACK, m2, 1, "22.0");
    check_notified(f, "dev2", "22.0");
    advance(f, 10);
    dev_observe_req(f, 13, t3, &m3);
    assert_int_equal(st->observe_device_observations, 3);
    /* T' passes: dev3 never answered and is dropped (its observation
     * cancelled); dev1 and dev2 stay observed past T' */
    advance(f, 2000);
    assert_int_equal(st->observe_device_observations, 2);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 1);
    /* the first notification past T' checks the client (confirmable) */
    dev_notify(f, 12, "dev2", t2, TETHER_COAP_NON, 0x700, 2, "22.5");
    check_forwarded_type(f, "dev2", "22.5", true, TETHER_COAP_CON);
    dev_notify(f, 11, "dev1", t1, TETHER_COAP_NON, 0x701, 6, "21.5");
    check_notified(f, "dev1", "21.5");
    assert_true(out_find(f, TETHER_LINK_DTLS, 9, &m) >= 0); /* the direct observer too */
    /* the client deregisters (Observe: 1, same token): dev2 (the group's
     * alone) is cancelled on the device, dev1 stays for the direct observer */
    group_observe(f, &c, 1);
    assert_true(dev_cancelled(f, 12));
    assert_false(dev_cancelled(f, 11));
    assert_int_equal(st->observe_device_observations, 1);
    advance(f, 3000); /* the Observe: 1 request, a plain one, ends at T' */
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 0);
    dev_notify(f, 11, "dev1", t1, TETHER_COAP_NON, 0x702, 7, "21.7");
    assert_true(out_find(f, TETHER_LINK_DTLS, 9, &m) >= 0);
    assert_int_equal(out_find(f, TETHER_LINK_PLAIN, 0, &m), -1);
}

/* A client that rejects a group notification with RST, or whose session
 * ends, ends the group observation at every member. */
static void test_group_observe_reset(void **state)
{
    fx_t *f = *state;
    paced_node(f);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    tether_peer_t c = plain_peer(5000);
    tether_coap_msg_t m;
    uint8_t t1[4], t2[4];
    uint16_t m1, m2;
    group_observe(f, &c, 0);
    dev_observe_req(f, 11, t1, &m1);
    advance(f, 10);
    dev_observe_req(f, 12, t2, &m2);
    dev_notify(f, 11, "dev1", t1, TETHER_COAP_ACK, m1, 1, "1");
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &m) >= 0);
    uint16_t nmid = m.mid;
    assert_int_equal(st->observe_device_observations, 2);
    tether_coap_msg_t rst;
    tether_coap_msg_init(&rst, TETHER_COAP_RST, TETHER_COAP_EMPTY, nmid);
    send_msg(f, &c, &rst);
    assert_true(dev_cancelled(f, 11));
    assert_int_equal(st->observe_device_observations, 0);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 0);
    /* a fresh one, then the client's session ends */
    group_observe(f, &c, 0);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 1);
    tether_node_link_down(f->node, &c.link, f->now);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 0);
    assert_int_equal(st->observe_device_observations, 0);
    assert_int_equal(st->observe_observers, 0);
}

/* A group GET from `c` with token `tok` (1 byte) and T' 2 s. */
static size_t group_get_tok(fx_t *f, const tether_peer_t *c, uint8_t tok)
{
    tether_coap_msg_t m;
    uint8_t t = 2;
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, f->mid++);
    tether_coap_msg_set_token(&m, &tok, 1);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "floor", 5);
    add_path(&m, "temp");
    tether_coap_msg_add_opt(&m, MT, &t, 1);
    return send_msg(f, c, &m);
}

/* Per-client bounds (bounds.h, group.h): one client's fan-outs beyond
 * max_group_requests_per_client get 4.29 with Max-Age, so another client
 * still gets group_max_requests' room; its member requests count as its
 * pending requests (a member beyond waits for the next pacing step, and
 * its own direct requests get 4.29). */
static void test_group_client_bounds(void **state)
{
    fx_t *f = *state;
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.group_max_requests = 3;
    c.max_group_requests_per_client = 2;
    c.max_pending_per_client = 2;
    c.group_pacing_interval_ms = 10;
    group_node(f, &c);
    const char *mem[] = {"dev1", "dev2", "dev3"};
    assert_int_equal(tether_node_group_set(f->node, "floor", NULL, mem, 3), 0);
    tether_peer_t a = plain_peer(5000), b = plain_peer(5001);
    tether_coap_msg_t m;
    /* a's first fan-out: two members at once (its pending share), the
     * third not yet */
    assert_int_equal(group_get_tok(f, &a, 1), 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 11, &m) >= 0);
    assert_true(out_find(f, TETHER_LINK_DTLS, 12, &m) >= 0);
    assert_int_equal(out_find(f, TETHER_LINK_DTLS, 13, &m), -1);
    advance(f, 10);
    assert_int_equal(out_find(f, TETHER_LINK_DTLS, 13, &m), -1);
    assert_int_equal(tether_node_pending(f->node), 2);
    /* its own direct request: 4.29, its share is taken */
    assert_int_equal(client_get(f, &a, "dev3", "x", TETHER_COAP_NON, f->mid++), 1);
    out_msg(f, 0, &m);
    assert_int_equal(m.code, TETHER_COAP_TOO_MANY_REQUESTS);
    /* its second fan-out is accepted (nothing sent yet), the third: 4.29
     * with Max-Age T' */
    group_get_tok(f, &a, 2);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 2);
    assert_int_equal(group_get_tok(f, &a, 3), 1);
    out_msg(f, 0, &m);
    assert_int_equal(m.code, TETHER_COAP_TOO_MANY_REQUESTS);
    uint32_t age = 0;
    assert_int_equal(tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_MAX_AGE, &age), 0);
    assert_int_equal(age, 2);
    assert_int_equal(tether_node_stats(f->node)->bound_groups, 1);
    /* b is not shut out (no 5.03): its fan-out starts, two members out
     * (held for NSTART behind a's) */
    group_get_tok(f, &b, 1);
    assert_int_equal(out_find(f, TETHER_LINK_PLAIN, 0, &m), -1);
    assert_int_equal(tether_node_pending(f->node), 4);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 3);
    /* T' ends them all: every share is back */
    advance(f, 2100);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 0);
    assert_int_equal(tether_node_pending(f->node), 0);
    assert_true(group_get_tok(f, &a, 4) >= 2);
}

/* Past T' a group observation lives while its members notify (draft
 * §3.5.2), so the client is checked: the first notification after T' is
 * confirmable and, left unacknowledged, ends it at every member. */
static void test_group_observe_silent_client(void **state)
{
    fx_t *f = *state;
    paced_node(f);
    tether_peer_t c = plain_peer(5000);
    uint8_t t1[4];
    uint16_t m1;
    group_observe(f, &c, 0);
    dev_observe_req(f, 11, t1, &m1);
    dev_notify(f, 11, "dev1", t1, TETHER_COAP_ACK, m1, 1, "1");
    check_notified(f, "dev1", "1"); /* within T': non-confirmable */
    advance(f, 2100);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 1);
    dev_notify(f, 11, "dev1", t1, TETHER_COAP_NON, 0x800, 2, "2");
    check_forwarded_type(f, "dev1", "2", true, TETHER_COAP_CON);
    /* the client is gone: no ACK through the retransmissions */
    for (int i = 0; i < 30 && tether_node_stats(f->node)->group_requests_active; i++)
        advance(f, 10000);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 0);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
}

/* draft §3.1.3, §3.2.3: an Early Stop Request (GET, the fan-out's token,
 * Multicast-Timeout 0, no Uri-Host) ends a fan-out at once (a late
 * answer is dropped) and a group observation at every member. */
static void test_early_stop(void **state)
{
    fx_t *f = *state;
    paced_node(f);
    tether_peer_t c = plain_peer(5000);
    tether_coap_msg_t m, r1, stop;
    group_get(f, &c, 2, TETHER_COAP_NON);
    dev_request(f, 11, &r1);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 1);
    tether_coap_msg_init(&stop, TETHER_COAP_CON, TETHER_COAP_GET, f->mid++);
    tether_coap_msg_set_token(&stop, (const uint8_t *)"\xc1\xc2\xc3", 3);
    tether_coap_msg_add_opt(&stop, MT, NULL, 0);
    assert_int_equal(send_msg(f, &c, &stop), 1);
    out_msg(f, 0, &m);
    assert_int_equal(m.type, TETHER_COAP_ACK);
    assert_int_equal(m.code, TETHER_COAP_EMPTY);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 0);
    dev_answer(f, 11, "dev1", &r1, "1");
    assert_int_equal(out_find(f, TETHER_LINK_PLAIN, 0, &m), -1);
    advance(f, 30); /* no more members asked */
    assert_int_equal(tether_node_out_count(f->node), 0);
    /* a group observation */
    uint8_t t1[4];
    uint16_t m1;
    group_observe(f, &c, 0);
    dev_observe_req(f, 11, t1, &m1);
    dev_notify(f, 11, "dev1", t1, TETHER_COAP_ACK, m1, 1, "1");
    stop.mid = f->mid++;
    send_msg(f, &c, &stop);
    assert_true(dev_cancelled(f, 11));
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 0);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
}

static void test_missing_timeout_and_zero(void **state)
{
    fx_t *f = *state;
    paced_node(f);
    tether_peer_t c = plain_peer(5000);
    tether_coap_msg_t m;
    /* draft §3.2 step 3: 4.00 with a Multicast-Timeout of value 0 */
    assert_int_equal(group_get(f, &c, -1, TETHER_COAP_CON), 1);
    out_msg(f, 0, &m);
    assert_int_equal(m.type, TETHER_COAP_ACK);
    assert_int_equal(m.code, TETHER_COAP_BAD_REQUEST);
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(&m, MT);
    assert_non_null(o);
    assert_int_equal(o->len, 0);
    assert_true(m.payload_len > 0);
    assert_int_equal(tether_node_stats(f->node)->group_rejected, 1);
    /* T' = 0: sent, but nothing comes back */
    assert_int_equal(group_get(f, &c, 0, TETHER_COAP_NON), 1);
    dev_request(f, 11, &m);
    tether_coap_msg_t r = m;
    dev_answer(f, 11, "dev1", &r, "1");
    assert_int_equal(out_find(f, TETHER_LINK_PLAIN, 0, &m), -1);
}

static void test_acl(void **state)
{
    fx_t *f = *state;
    paced_node(f);
    /* app1 has "devices" rules only: a group is not a device */
    tether_peer_t app1 = dtls_peer(99, "app1", TETHER_ROLE_CLIENT, 6000);
    tether_coap_msg_t m;
    assert_int_equal(group_get(f, &app1, 2, TETHER_COAP_CON), 1);
    out_msg(f, 0, &m);
    assert_int_equal(m.code, TETHER_COAP_FORBIDDEN);
    /* a plain client where plain CoAP is not trusted: 4.01 */
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.plain_trusted = false;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    const char *mem[] = {"dev1"};
    assert_int_equal(tether_node_group_set(f->node, "floor", NULL, mem, 1), 0);
    tether_peer_t p = plain_peer(5000);
    assert_int_equal(group_get(f, &p, 2, TETHER_COAP_CON), 1);
    out_msg(f, 0, &m);
    assert_int_equal(m.code, TETHER_COAP_UNAUTHORIZED);
}

/* A group GET "trio" (dev1..dev3) with T' 2 s and Group-ETags tags[n]. */
static size_t trio_get(fx_t *f, const tether_peer_t *c, const uint8_t (*tags)[8], size_t ntags)
{
    tether_coap_msg_t m;
    uint8_t t = 2;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, f->mid++);
    tether_coap_msg_set_token(&m, (const uint8_t *)"\xc1\xc2\xc3", 3);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "trio", 4);
    add_path(&m, "temp");
    for (size_t i = 0; i < ntags; i++)
        tether_coap_msg_add_opt(&m, GE, tags[i], 8);
    tether_coap_msg_add_opt(&m, MT, &t, 1);
    return send_msg(f, c, &m);
}

/* draft §5.2-5.3: once every member's response is fresh in the cache, a
 * group GET is answered from it alone with one Group-ETag naming the set;
 * that Group-ETag back gets a single 2.03; a stale member fans out again. */
static void test_group_etag(void **state)
{
    fx_t *f = *state;
    paced_node(f);
    const char *m3[] = {"dev1", "dev2", "dev3"};
    assert_int_equal(tether_node_group_set(f->node, "trio", NULL, m3, 3), 0);
    tether_peer_t c = plain_peer(5000);
    tether_coap_msg_t m, r[3];
    trio_get(f, &c, NULL, 0); /* the first time: a fan-out */
    dev_request(f, 11, &r[0]);
    assert_int_equal(dev_answer(f, 11, "dev1", &r[0], "1"), 1);
    advance(f, 10);
    dev_request(f, 12, &r[1]);
    dev_answer(f, 12, "dev2", &r[1], "2");
    out_msg(f, 0, &m);
    assert_null(tether_coap_msg_find_opt(&m, GE)); /* J was not complete */
    advance(f, 10);
    dev_request(f, 13, &r[2]);
    dev_answer(f, 13, "dev3", &r[2], "3");
    advance(f, 2000);
    /* J complete: an ACK and three responses, no device asked, paced like
     * a fan-out (one member per 10 ms here), not in one burst */
    assert_int_equal(trio_get(f, &c, NULL, 0), 2);
    assert_int_equal(out_find(f, TETHER_LINK_DTLS, 11, &m), -1);
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 1);
    uint8_t tag[1][8];
    for (size_t i = 1; i < 4; i++) {
        if (i > 1) {
            advance(f, 9);
            assert_int_equal(tether_node_out_count(f->node), 0);
            advance(f, 1);
            assert_int_equal(tether_node_out_count(f->node), 1);
        }
        out_msg(f, i == 1 ? 1 : 0, &m);
        assert_int_equal(m.type, TETHER_COAP_NON);
        assert_non_null(tether_coap_msg_find_opt(&m, RF));
        const tether_coap_opt_t *o = tether_coap_msg_find_opt(&m, GE);
        assert_non_null(o);
        assert_int_equal(o->len, 8);
        if (i > 1)
            assert_memory_equal(o->val, tag[0], 8); /* one tag for the set */
        memcpy(tag[0], o->val, 8);
        assert_null(tether_coap_msg_next_opt(&m, o)); /* exactly one */
    }
    /* served whole: the fan-out is over before T' */
    assert_int_equal(tether_node_stats(f->node)->group_requests_active, 0);
    assert_int_equal(tether_node_stats(f->node)->group_from_cache, 1);
    /* the client's Group-ETag is current: one 2.03 Valid, piggybacked */
    uint8_t two[2][8];
    memset(two[0], 0x5a, 8);
    memcpy(two[1], tag[0], 8);
    assert_int_equal(trio_get(f, &c, two, 2), 1);
    out_msg(f, 0, &m);
    assert_int_equal(m.type, TETHER_COAP_ACK);
    assert_int_equal(m.code, TETHER_COAP_VALID);
    assert_int_equal(m.payload_len, 0);
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(&m, GE);
    assert_non_null(o);
    assert_memory_equal(o->val, tag[0], 8);
    /* an old tag: the whole set again */
    assert_int_equal(trio_get(f, &c, two, 1), 2);
    advance(f, 20);
    /* a PUT to dev2/temp invalidates its entry: J is not complete, the
     * members are asked again, and the Group-ETag is not forwarded */
    tether_coap_msg_t put;
    tether_coap_msg_init(&put, TETHER_COAP_NON, TETHER_COAP_PUT, f->mid++);
    tether_coap_msg_set_token(&put, (const uint8_t *)"pp", 2);
    tether_coap_msg_add_opt(&put, TETHER_COAP_OPT_URI_HOST, "dev2", 4);
    add_path(&put, "temp");
    send_msg(f, &c, &put);
    trio_get(f, &c, tag, 1);
    dev_request(f, 11, &m);
    assert_null(tether_coap_msg_find_opt(&m, GE));
    assert_int_equal(tether_node_stats(f->node)->group_from_cache, 3); /* not this one */
}

/* Groups through the state store (group_store.c): the node's own put and
 * delete, and another writer's records (another node's, through Redis),
 * reach the table; a groups_file group (set directly) is deleted locally. */
static void test_group_store(void **state)
{
    fx_t *f = *state;
    tether_store_t *store;
    assert_int_equal(tether_store_mem_create(64, &store), 0);
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.store = store;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    tether_group_info_t info;
    const char *m[] = {"dev1", "dev2"};
    assert_int_equal(tether_node_group_put(f->node, "Floor", NULL, m, 2, f->now), 0);
    assert_int_equal(tether_node_group(f->node, "floor", &info), 0);
    assert_int_equal(info.nmembers, 2);
    assert_string_equal(info.member[1], "dev2");
    assert_int_equal(tether_node_group_put(f->node, "bad", "x*", m, 2, f->now), TETHER_EINVAL);
    /* redefined in another case: the same record, the first spelling */
    assert_int_equal(tether_node_group_put(f->node, "FLOOR", "dev*", NULL, 0, f->now), 0);
    assert_int_equal(tether_node_group(f->node, "floor", &info), 0);
    assert_string_equal(info.name, "Floor");
    assert_string_equal(info.pattern, "dev*");
    /* another writer's record */
    tether_store_rec_t rec = {.kind = TETHER_STORE_GROUP};
    strcpy(rec.u.group.name, "hall");
    rec.u.group.members = "dev9";
    rec.u.group.members_len = 5;
    rec.u.group.nmembers = 1;
    assert_int_equal(tether_store_put(store, &rec, TETHER_STORE_ANY, 0, f->now, NULL, NULL), 0);
    assert_int_equal(tether_node_group(f->node, "hall", &info), 0);
    assert_string_equal(info.member[0], "dev9");
    assert_int_equal(tether_store_del(store, TETHER_STORE_GROUP, (const uint8_t *)"hall", 4,
                                      TETHER_STORE_ANY, f->now, NULL, NULL),
                     0);
    assert_int_equal(tether_node_group(f->node, "hall", &info), TETHER_ENOTFOUND);
    assert_int_equal(tether_node_group_del(f->node, "floor", f->now), 0);
    assert_int_equal(tether_node_group(f->node, "Floor", &info), TETHER_ENOTFOUND);
    /* a local group is not in the store: removed here */
    assert_int_equal(tether_node_group_set(f->node, "local", "d*", NULL, 0), 0);
    assert_int_equal(tether_node_group_del(f->node, "local", f->now), 0);
    assert_int_equal(tether_node_group_del(f->node, "local", f->now), TETHER_ENOTFOUND);
    tether_node_destroy(f->node);
    f->node = NULL;
    tether_store_destroy(store);
}

/* A device named twice (any case, as names match) is one member: the
 * table, the store and the fan-out have it once. */
static void test_duplicate_members(void **state)
{
    fx_t *f = *state;
    tether_store_t *store;
    assert_int_equal(tether_store_mem_create(64, &store), 0);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.store = store;
    group_node(f, &c);
    const char *m[] = {"dev1", "DEV1", "dev2", "dev1", "Dev2"};
    tether_group_info_t info;
    assert_int_equal(tether_node_group_set(f->node, "twice", NULL, m, 5), 0);
    assert_int_equal(tether_node_group(f->node, "twice", &info), 0);
    assert_int_equal(info.nmembers, 2);
    assert_string_equal(info.member[0], "dev1");
    assert_string_equal(info.member[1], "dev2");
    assert_int_equal(tether_node_group_put(f->node, "floor", NULL, m, 5, f->now), 0);
    assert_int_equal(tether_node_group(f->node, "floor", &info), 0);
    assert_int_equal(info.nmembers, 2);
    tether_peer_t p = plain_peer(5000);
    group_get(f, &p, 2, TETHER_COAP_NON);
    assert_int_equal(tether_node_stats(f->node)->group_members_sent, 2);
    tether_coap_msg_t r;
    size_t to_dev1 = 0;
    for (size_t i = 0; i < tether_node_out_count(f->node); i++)
        to_dev1 += out_msg(f, i, &r)->link.id == 11;
    assert_int_equal(to_dev1, 1);
    tether_node_destroy(f->node);
    f->node = NULL;
    tether_store_destroy(store);
}

static void test_table(void **state)
{
    fx_t *f = *state;
    paced_node(f);
    const char *two[] = {"a", "b"}, *five[] = {"a", "b", "c", "d", "e"}, *empty[] = {""};
    tether_group_info_t g;
    assert_int_equal(tether_node_group_set(f->node, "x", "dev*", two, 2), TETHER_EINVAL);
    assert_int_equal(tether_node_group_set(f->node, "x", NULL, NULL, 0), TETHER_EINVAL);
    assert_int_equal(tether_node_group_set(f->node, "", "dev*", NULL, 0), TETHER_EINVAL);
    assert_int_equal(tether_node_group_set(f->node, "x", NULL, empty, 1), TETHER_EINVAL);
    assert_int_equal(tether_node_group_set(f->node, "x", NULL, five, 5), TETHER_ELIMIT);
    assert_int_equal(tether_node_group_set(f->node, "all", "dev*", NULL, 0), 0);
    assert_int_equal(tether_node_group(f->node, "ALL", &g), 0);
    assert_string_equal(g.pattern, "dev*");
    /* redefined in place; listed in definition order */
    assert_int_equal(tether_node_group_set(f->node, "floor", NULL, two, 2), 0);
    assert_int_equal(tether_node_group_next(f->node, NULL, &g), 0);
    assert_string_equal(g.name, "all");
    assert_int_equal(tether_node_group_next(f->node, "all", &g), 0);
    assert_string_equal(g.name, "floor");
    assert_int_equal(g.nmembers, 2);
    assert_string_equal(g.member[1], "b");
    assert_int_equal(tether_node_group_next(f->node, "floor", &g), TETHER_ENOTFOUND);
    assert_int_equal(tether_node_group_remove(f->node, "floor"), 0);
    assert_int_equal(tether_node_group_remove(f->node, "floor"), TETHER_ENOTFOUND);
    assert_int_equal(tether_node_stats(f->node)->groups_defined, 1);
    /* a pattern group fans out to the registered devices that match */
    tether_peer_t c = plain_peer(5000);
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, 9);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "all", 3);
    uint8_t one = 1;
    tether_coap_msg_add_opt(&m, MT, &one, 1);
    send_msg(f, &c, &m);
    advance(f, 30);
    assert_int_equal(tether_node_stats(f->node)->group_members_sent, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fanout_paced_until_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_timeout_and_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_observe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_observe_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_etag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_client_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_observe_silent_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
