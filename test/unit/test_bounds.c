/* Unit tests for lib/proxy/bounds.c and the per-client and per-device
 * bounds it serves (security issue 11 item 5): each bound bites, its
 * /stats counter moves, and other clients are not affected. Driven
 * through the node with a stepped clock (node_fixture.h); the per-peer
 * dedup quota also at the message layer, where the shared FIFO is. */
#include "node_fixture.h"

#include "coap/exchange.h"

/* The node again with the bounds of `c` (defaults but for what is set). */
static void remake(fx_t *f, const tether_node_conf_t *c)
{
    tether_node_destroy(f->node);
    assert_int_equal(tether_node_create(c, f->creds, &f->node), 0);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
}

/* A NON POST from `p` to dev1/path; returns the outbox size. */
static size_t post(fx_t *f, const tether_peer_t *p, const char *path, uint8_t type, uint16_t mid)
{
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, type, TETHER_COAP_POST, mid);
    tether_coap_msg_set_token(&m, (const uint8_t *)&mid, 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    add_path(&m, path);
    m.payload = (const uint8_t *)"x";
    m.payload_len = 1;
    return send_msg(f, p, &m);
}

/* How many outbox entries go to dev1's session (7), the last one in *up. */
static size_t to_device(fx_t *f, tether_coap_msg_t *up)
{
    size_t k = 0;
    tether_coap_msg_t m;
    for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
        const tether_out_t *o = out_msg(f, i, &m);
        if (o->link.kind == TETHER_LINK_DTLS && o->link.id == 7) {
            *up = m;
            k++;
        }
    }
    return k;
}

/* The device answers `up` piggybacked with 2.04. */
static void dev_ack(fx_t *f, const tether_coap_msg_t *up)
{
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CHANGED, up->mid);
    tether_coap_msg_set_token(&ack, up->token, up->tkl);
    send_msg(f, &dev, &ack);
}

/* max_pending_per_client: app1's fourth pending request gets 4.29 with
 * Max-Age, from any of its sessions (the client is its identity); a plain
 * client still gets through; once one of app1's requests is answered it
 * may send again. */
static void test_pending_per_client(void **state)
{
    fx_t *f = *state;
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.max_pending_per_client = 3;
    remake(f, &c);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    tether_peer_t app = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_peer_t app_again = dtls_peer(10, "app1", TETHER_ROLE_CLIENT, 40002);
    tether_peer_t other = plain_peer(50000);
    tether_coap_msg_t up, r;
    assert_int_equal(post(f, &app, "act", TETHER_COAP_NON, 20), 1);
    assert_int_equal(to_device(f, &up), 1);
    assert_int_equal(post(f, &app, "act", TETHER_COAP_NON, 21), 0); /* held for NSTART */
    assert_int_equal(post(f, &app, "act", TETHER_COAP_NON, 22), 0);
    /* The fourth, from another session of the same identity: 4.29. */
    assert_int_equal(post(f, &app_again, "act", TETHER_COAP_NON, 23), 1);
    const tether_out_t *o = out_msg(f, 0, &r);
    assert_int_equal(o->link.id, 10);
    assert_int_equal(r.code, TETHER_COAP_TOO_MANY_REQUESTS);
    uint32_t max_age = 0;
    assert_int_equal(tether_coap_msg_get_uint(&r, TETHER_COAP_OPT_MAX_AGE, &max_age), 0);
    assert_int_equal(max_age, 10); /* the request timeout: its requests have ended by then */
    assert_int_equal(st->bound_pending, 1);
    /* Another client is not affected. */
    assert_int_equal(post(f, &other, "act", TETHER_COAP_NON, 24), 0);
    assert_int_equal(st->bound_pending, 1);
    /* One of app1's requests answered: it has room for one more. */
    dev_ack(f, &up);
    assert_int_equal(to_device(f, &up), 1); /* 21 goes out */
    assert_int_equal(post(f, &app, "act", TETHER_COAP_NON, 25), 0);
    assert_int_equal(st->bound_pending, 1);
    assert_int_equal(tether_node_pending(f->node), 4);
    assert_int_equal(post(f, &app, "act", TETHER_COAP_NON, 26), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_TOO_MANY_REQUESTS);
    assert_int_equal(st->bound_pending, 2);
}

/* NSTART = 1 (RFC 7252 §4.7): one CON outstanding to the device; the next
 * request goes out when the device acknowledges the first (empty ACK,
 * separate response to come), the one after when that is answered; a full
 * hold gets 5.03; a held request times out with 5.04. */
static void test_nstart(void **state)
{
    fx_t *f = *state;
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.nstart_queue_max = 2;
    remake(f, &c);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    tether_peer_t app = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_coap_msg_t up, r;
    assert_int_equal(post(f, &app, "a", TETHER_COAP_NON, 30), 1);
    assert_int_equal(to_device(f, &up), 1);
    tether_coap_msg_t first = up;
    assert_int_equal(post(f, &app, "b", TETHER_COAP_NON, 31), 0); /* held */
    assert_int_equal(post(f, &app, "c", TETHER_COAP_NON, 32), 0); /* held */
    assert_int_equal(st->nstart_held, 2);
    assert_int_equal(post(f, &app, "d", TETHER_COAP_NON, 33), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_SERVICE_UNAVAILABLE);
    assert_int_equal(st->bound_nstart, 1);
    /* An empty ACK ends the first CON: "b" goes out, "c" still waits. */
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, 0, first.mid);
    send_msg(f, &dev, &ack);
    assert_int_equal(to_device(f, &up), 1);
    assert_true(tether_coap_path_equals(&up, "b"));
    /* "b" answered piggybacked: "c" goes out. */
    dev_ack(f, &up);
    assert_int_equal(to_device(f, &up), 1);
    assert_true(tether_coap_path_equals(&up, "c"));
    /* Another device is not affected by dev1's NSTART. */
    assert_int_equal(do_register(f, 8, "dev2", "dev2", NULL), TETHER_COAP_CREATED);
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_POST, 34);
    tether_coap_msg_set_token(&m, (const uint8_t *)"t2", 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev2", 4);
    add_path(&m, "a");
    assert_int_equal(send_msg(f, &app, &m), 1);
    assert_int_equal(out_find(f, TETHER_LINK_DTLS, 8, &m), 0);
    /* A held request that never gets a slot times out (5.04). */
    assert_int_equal(post(f, &app, "e", TETHER_COAP_NON, 35), 0);
    uint64_t timeouts = st->relay_timeouts;
    advance(f, c.request_timeout_ms + 1);
    assert_true(st->relay_timeouts >= timeouts + 2); /* "c" on the wire and "e" held */
    assert_int_equal(tether_node_pending(f->node), 0);
}

/* A GET with Observe: 0 for dev1/temp?q from `p` (token tok). */
static size_t observe(fx_t *f, const tether_peer_t *p, const char *q, const char *tok)
{
    tether_coap_msg_t m;
    uint8_t zero = 0;
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, f->mid++);
    tether_coap_msg_set_token(&m, (const uint8_t *)tok, strlen(tok));
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, &zero, 0);
    add_path(&m, "temp");
    add_query(&m, q);
    return send_msg(f, p, &m);
}

/* The code of the answer to the client on `p`'s link, 0 when none. */
static uint8_t answer_to(fx_t *f, const tether_peer_t *p)
{
    tether_coap_msg_t m;
    for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
        const tether_out_t *o = out_msg(f, i, &m);
        if (o->link.kind == p->link.kind && o->link.id == p->link.id)
            return m.code;
    }
    return 0;
}

/* max_observers_per_client and max_observations_per_device: varying
 * Uri-Query no longer makes device-side observations without end, one
 * client cannot take every observer, and joining an existing observation
 * is not affected by the device's bound. */
static void test_observers_and_observations(void **state)
{
    fx_t *f = *state;
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.max_observers_per_client = 2;
    c.max_observations_per_device = 3;
    remake(f, &c);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    tether_peer_t app = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_peer_t other = plain_peer(50000);
    observe(f, &app, "q=1", "o1");
    observe(f, &app, "q=2", "o2");
    assert_int_equal(st->observe_device_observations, 2);
    observe(f, &app, "q=3", "o3");
    assert_int_equal(answer_to(f, &app), TETHER_COAP_SERVICE_UNAVAILABLE);
    assert_int_equal(st->bound_observers, 1);
    observe(f, &other, "q=3", "p3"); /* another client: its own share */
    assert_int_equal(answer_to(f, &other), 0);
    assert_int_equal(st->observe_device_observations, 3);
    observe(f, &other, "q=4", "p4"); /* a fourth device-side observation */
    assert_int_equal(answer_to(f, &other), TETHER_COAP_SERVICE_UNAVAILABLE);
    assert_int_equal(st->bound_observations, 1);
    observe(f, &other, "q=1", "p1"); /* joining one that exists */
    assert_int_equal(answer_to(f, &other), 0);
    assert_int_equal(st->observe_device_observations, 3);
    assert_int_equal(st->observe_observers, 4);
    /* app1 leaves one observation (session gone): it may observe again. */
    tether_node_link_down(f->node, &app.link, f->now);
    assert_int_equal(st->observe_observers, 2);
    observe(f, &app, "q=2", "o4");
    assert_int_equal(answer_to(f, &app), 0);
    assert_int_equal(st->bound_observers, 1);
}

/* dedup_per_peer at the message layer, with a shared FIFO of 8: peer A
 * sending fresh MIDs fast gives up its own oldest entries, never B's, so
 * B's retransmission is still recognised (its POST does not run twice). */
static void test_dedup_quota_cx(void **state)
{
    (void)state;
    tether_cx_conf_t cc;
    tether_cx_conf_defaults(&cc);
    cc.dedup_max = 8;
    cc.dedup_per_peer = 4;
    tether_cx_t *cx;
    assert_int_equal(tether_cx_create(&cc, &cx), 0);
    tether_peer_t a = plain_peer(50000), b = plain_peer(50001);
    tether_time_t now = 1000;
    assert_false(tether_cx_seen(cx, &b.link, 7, now));
    for (uint16_t mid = 0; mid < 100; mid++)
        assert_false(tether_cx_seen(cx, &a.link, mid, now));
    assert_true(tether_cx_seen(cx, &b.link, 7, now));  /* B's entry survived */
    assert_true(tether_cx_seen(cx, &a.link, 99, now)); /* A keeps its newest 4 */
    assert_false(tether_cx_seen(cx, &a.link, 0, now)); /* and forgot its oldest */
    assert_true(tether_cx_stats(cx)->dedup_quota_dropped >= 96);
    assert_true(tether_cx_stats(cx)->dedup_entries <= 8);
    tether_cx_destroy(cx);
    /* Without the quota the same flood pushes B out of the FIFO. */
    cc.dedup_per_peer = 0;
    assert_int_equal(tether_cx_create(&cc, &cx), 0);
    assert_false(tether_cx_seen(cx, &b.link, 7, now));
    for (uint16_t mid = 0; mid < 100; mid++)
        tether_cx_seen(cx, &a.link, mid, now);
    assert_false(tether_cx_seen(cx, &b.link, 7, now));
    tether_cx_destroy(cx);
}

/* The same through the node: B's POST is relayed once, A floods local
 * requests past its quota (proxy.bound_dedup moves), B's retransmission is
 * answered as a duplicate and the device is not asked again. */
static void test_dedup_quota_node(void **state)
{
    fx_t *f = *state;
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.dedup_per_peer = 16;
    remake(f, &c);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    tether_peer_t a = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_peer_t b = plain_peer(50001);
    tether_coap_msg_t up, m;
    post(f, &b, "act", TETHER_COAP_CON, 900);
    assert_int_equal(to_device(f, &up), 1);
    for (uint16_t mid = 0; mid < 200; mid++) {
        tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, mid);
        add_path(&m, "node");
        send_msg(f, &a, &m);
    }
    tether_node_tick(f->node, f->now);
    assert_int_equal(st->bound_dedup, 200 - 16);
    uint64_t dups = st->duplicates;
    post(f, &b, "act", TETHER_COAP_CON, 900); /* B retransmits */
    assert_int_equal(st->duplicates, dups + 1);
    assert_int_equal(to_device(f, &up), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pending_per_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nstart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observers_and_observations, setup, teardown),
        cmocka_unit_test(test_dedup_quota_cx),
        cmocka_unit_test_setup_teardown(test_dedup_quota_node, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
