/* Unit tests for lib/proxy/observe.c: Observe through the proxy (one
 * shared device observation fanned out, late joiners, device relink,
 * clients gone, limits), driven through the node. */
#include "node_fixture.h"
#include "proxy/node_int.h"

/* A client GET with Observe `ov` for dev/path with token tok; returns the
 * outbox size. */
static size_t obs_get(fx_t *f, const tether_peer_t *client, const char *dev, const char *path,
                      uint8_t type, uint16_t mid, const char *tok, int ov)
{
    tether_coap_msg_t m;
    uint8_t v = (uint8_t)ov;
    tether_coap_msg_init(&m, type, TETHER_COAP_GET, mid);
    tether_coap_msg_set_token(&m, (const uint8_t *)tok, strlen(tok));
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, dev, strlen(dev));
    if (ov >= 0)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, &v, ov ? 1 : 0);
    add_path(&m, path);
    return send_msg(f, client, &m);
}

static uint32_t observe_of(const tether_coap_msg_t *m)
{
    uint32_t v = 0xffffffff;
    tether_coap_msg_get_uint(m, TETHER_COAP_OPT_OBSERVE, &v);
    return v;
}

/* The device on session `link_id` sends a notification (or any response)
 * with token tok of type `type`; Observe `ov` < 0: none. Returns the
 * outbox size. */
static size_t dev_notify(fx_t *f, uint64_t link_id, const uint8_t *tok, uint8_t type,
                         uint16_t mid, uint8_t code, int ov, const char *payload)
{
    tether_peer_t dev = dtls_peer(link_id, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t m;
    uint8_t v = (uint8_t)ov;
    tether_coap_msg_init(&m, type, code, mid);
    tether_coap_msg_set_token(&m, tok, 4);
    if (ov >= 0)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, &v, 1);
    m.payload = (const uint8_t *)payload;
    m.payload_len = strlen(payload);
    return send_msg(f, &dev, &m);
}

static void test_observe_shared_fanout(void **state)
{
    fx_t *f = *state;
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = plain_peer(50000);
    tether_peer_t b = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_coap_msg_t up, r;
    /* the first observer: one registration upstream, an empty ACK */
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_CON, 0x10, "aa", 0), 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 7, &up) >= 0);
    assert_int_equal(up.type, TETHER_COAP_CON);
    assert_int_equal(observe_of(&up), 0);
    assert_int_equal(up.tkl, 4);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.code, 0);
    /* the second observer (NON) shares it: nothing goes to the device */
    assert_int_equal(obs_get(f, &b, "dev1", "temp", TETHER_COAP_NON, 0x20, "bbb", 0), 0);
    assert_int_equal(st->observe_device_observations, 1);
    assert_int_equal(st->observe_observers, 2);
    /* the device's first notification (piggybacked) reaches both, each with
     * its token and tether's Observe value */
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    uint8_t two = 2; /* the device's own Observe values grow: 2, 3, 4, 6, 7 (RFC 7641 §3.4) */
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up.mid);
    tether_coap_msg_set_token(&ack, utok, 4);
    tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_OBSERVE, &two, 1);
    ack.payload = (const uint8_t *)"20";
    ack.payload_len = 2;
    assert_int_equal(send_msg(f, &dev, &ack), 2);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_NON);
    assert_memory_equal(r.token, "aa", 2);
    uint32_t seq_a = observe_of(&r);
    assert_true(out_find(f, TETHER_LINK_DTLS, 9, &r) >= 0);
    assert_memory_equal(r.token, "bbb", 3);
    assert_int_equal(observe_of(&r), seq_a);
    assert_memory_equal(r.payload, "20", 2);
    /* NON notifications fan out as NON with increasing Observe values */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x500, TETHER_COAP_CONTENT, 3, "21"),
                     2);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_NON);
    assert_int_equal(observe_of(&r), seq_a + 1);
    assert_memory_equal(r.payload, "21", 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 9, &r) >= 0);
    uint16_t b_mid = r.mid;
    assert_int_equal(observe_of(&r), seq_a + 1);
    /* a CON notification: ACKed to the device, CON to the clients */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_CON, 0x501, TETHER_COAP_CONTENT, 4, "22"),
                     3);
    assert_true(out_find(f, TETHER_LINK_DTLS, 7, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x501);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_CON);
    assert_int_equal(observe_of(&r), seq_a + 2);
    uint16_t a_mid = r.mid;
    assert_true(out_find(f, TETHER_LINK_DTLS, 9, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_CON);
    b_mid = r.mid;
    tether_coap_msg_t ca;
    tether_coap_msg_init(&ca, TETHER_COAP_ACK, 0, a_mid);
    assert_int_equal(send_msg(f, &a, &ca), 0);
    assert_int_equal(st->observe_notifications_sent, 6);
    /* notifications keep the cache fresh: a plain GET is a hit */
    tether_peer_t c = plain_peer(50002);
    assert_int_equal(obs_get(f, &c, "dev1", "temp", TETHER_COAP_CON, 0x30, "c", -1), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.payload, "22", 2);
    assert_int_equal(st->cache_hits, 1);
    /* b rejects its CON notification with RST: b is gone, a stays */
    tether_coap_msg_t rst;
    tether_coap_msg_init(&rst, TETHER_COAP_RST, 0, b_mid);
    assert_int_equal(send_msg(f, &b, &rst), 0);
    assert_int_equal(st->observe_observers, 1);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x502, TETHER_COAP_CONTENT, 6, "23"),
                     1);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(observe_of(&r), seq_a + 3);
    /* a deregisters (Observe: 1, same token): the device-side observation
     * is cancelled with the upstream token, a gets a plain answer */
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_CON, 0x11, "aa", 1), 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 7, &up) >= 0);
    assert_int_equal(observe_of(&up), 1);
    assert_memory_equal(up.token, utok, 4);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_int_equal(observe_of(&r), 0xffffffff);
    assert_int_equal(st->observe_device_observations, 0);
    assert_int_equal(st->observe_observers, 0);
    /* a late notification is rejected */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x503, TETHER_COAP_CONTENT, 7, "24"),
                     1);
    out_msg(f, 0, &r);
    assert_int_equal(r.type, TETHER_COAP_RST);
}

static void test_observe_late_joiner_and_nonnotification(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = plain_peer(50000), b = plain_peer(50001);
    tether_coap_msg_t up, r;
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_NON, 0x10, "aa", 0), 1);
    out_msg(f, 0, &up);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x500, TETHER_COAP_CONTENT, 9, "20"),
                     1);
    out_msg(f, 0, &r);
    uint32_t seq = observe_of(&r);
    /* a later observer is answered at once with the latest notification */
    assert_int_equal(obs_get(f, &b, "dev1", "temp", TETHER_COAP_CON, 0x20, "bb", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x20);
    assert_memory_equal(r.token, "bb", 2);
    assert_int_equal(observe_of(&r), seq);
    assert_memory_equal(r.payload, "20", 2);
    /* an error from the device ends the observation for everyone */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x501, TETHER_COAP_NOT_FOUND, -1, ""),
                     2);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_NOT_FOUND);
    assert_int_equal(observe_of(&r), 0xffffffff);
    out_msg(f, 1, &r);
    assert_int_equal(r.code, TETHER_COAP_NOT_FOUND);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 0);
    /* a response without Observe (resource not observable) ends it too */
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_NON, 0x12, "aa", 0), 1);
    out_msg(f, 0, &up);
    memcpy(utok, up.token, 4);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x502, TETHER_COAP_CONTENT, -1, "x"),
                     1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_int_equal(observe_of(&r), 0xffffffff);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
}

static void test_observe_device_relink(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = plain_peer(50000);
    tether_coap_msg_t up, r;
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_NON, 0x10, "aa", 0), 1);
    out_msg(f, 0, &up);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x500, TETHER_COAP_CONTENT, 40, "1"),
                     1);
    out_msg(f, 0, &r);
    uint32_t seq = observe_of(&r);
    /* the device's session ends and it comes back on a new one
     * (re-handshake): tether registers the observation there by itself */
    tether_peer_t old = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_node_link_down(f->node, &old.link, f->now);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 1);
    assert_int_equal(do_register(f, 8, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    assert_int_equal(tether_node_out_count(f->node), 2);
    /* the 2.01, then the registration of the observation */
    assert_int_equal(out_msg(f, 1, &up)->link.id, 8);
    assert_int_equal(up.code, TETHER_COAP_GET);
    assert_int_equal(observe_of(&up), 0);
    assert_memory_equal(up.token, utok, 4);
    /* the device restarted its own counter: the client's keeps growing */
    assert_int_equal(dev_notify(f, 8, utok, TETHER_COAP_NON, 0x10, TETHER_COAP_CONTENT, 2, "2"), 1);
    out_msg(f, 0, &r);
    assert_int_equal(observe_of(&r), seq + 1);
    assert_memory_equal(r.payload, "2", 1);
    /* the device going away ends it with 5.02 */
    tether_node_out_clear(f->node);
    assert_int_equal(tether_node_device_remove(f->node, "dev1", f->now), 0);
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &r) >= 0);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 0);
}

static void test_observe_client_gone(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_peer_t b = dtls_peer(10, "app1", TETHER_ROLE_CLIENT, 40002);
    tether_coap_msg_t up, r;
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_NON, 0x10, "aa", 0), 1);
    out_msg(f, 0, &up);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    assert_int_equal(obs_get(f, &b, "dev1", "temp", TETHER_COAP_NON, 0x10, "bb", 0), 0);
    /* a's DTLS session ends: a stops observing, the observation stays */
    tether_node_link_down(f->node, &a.link, f->now);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 1);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 1);
    /* b never acknowledges a CON notification: removed at the CON timeout,
     * the last observer leaving cancels the device side */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_CON, 0x500, TETHER_COAP_CONTENT, 2, "1"), 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 10, &r) >= 0);
    assert_int_equal(r.type, TETHER_COAP_CON);
    advance(f, 120000);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 0);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 0);
}

static void test_observe_limits(void **state)
{
    fx_t *f = *state;
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.max_observers = 3;
    c.max_observers_per_resource = 2;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_coap_msg_t r;
    tether_peer_t p[4] = {plain_peer(50000), plain_peer(50001), plain_peer(50002),
                          plain_peer(50003)};
    assert_int_equal(obs_get(f, &p[0], "dev1", "temp", TETHER_COAP_CON, 1, "a", 0), 2);
    assert_int_equal(obs_get(f, &p[1], "dev1", "temp", TETHER_COAP_CON, 1, "a", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, 0);
    /* per resource */
    assert_int_equal(obs_get(f, &p[2], "dev1", "temp", TETHER_COAP_CON, 1, "a", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_SERVICE_UNAVAILABLE);
    /* another resource (its own observation), then the node-wide bound */
    assert_int_equal(obs_get(f, &p[2], "dev1", "hum", TETHER_COAP_CON, 2, "a", 0), 2);
    assert_int_equal(obs_get(f, &p[3], "dev1", "hum", TETHER_COAP_CON, 1, "a", 0), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_SERVICE_UNAVAILABLE);
    assert_int_equal(tether_node_stats(f->node)->observe_rejected, 2);
    assert_int_equal(tether_node_stats(f->node)->observe_device_observations, 2);
    assert_int_equal(tether_node_stats(f->node)->observe_observers, 3);
}
/* Security review item 6, RFC 7641 §3.4: a device notification older
 * than the newest one seen (reordered or replayed) is acknowledged but
 * neither fanned out nor cached; after 128 s any value counts as newer. */
static void test_observe_stale_notifications_dropped(void **state)
{
    fx_t *f = *state;
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = plain_peer(50000);
    tether_coap_msg_t up, r;
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_CON, 0x10, "aa", 0), 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 7, &up) >= 0);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x500, TETHER_COAP_CONTENT, 20, "a"),
                     1);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x501, TETHER_COAP_CONTENT, 22, "b"),
                     1);
    uint64_t sent = st->observe_notifications_sent;
    /* 21 arrives late (reordered): dropped; a CON one is still ACKed. */
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x502, TETHER_COAP_CONTENT, 21, "x"),
                     0);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_CON, 0x503, TETHER_COAP_CONTENT, 22, "y"),
                     1);
    out_msg(f, 0, &r);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x503);
    assert_int_equal(st->observe_stale, 2);
    assert_int_equal(st->observe_notifications_sent, sent);
    /* The cache kept the newest: a plain GET is answered with "b". */
    tether_peer_t c = plain_peer(50009);
    assert_int_equal(client_get(f, &c, "dev1", "temp", TETHER_COAP_CON, 0x11), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.payload_len, 1);
    assert_memory_equal(r.payload, "b", 1);
    /* 128 s later a smaller value is newer again (the device restarted its
     * count); the clock jumps without ticks, so nothing else happens. */
    f->now += 129000;
    size_t n = dev_notify(f, 7, utok, TETHER_COAP_NON, 0x504, TETHER_COAP_CONTENT, 3, "z");
    assert_true(n >= 1);
    assert_int_equal(st->observe_stale, 2);
    assert_int_equal(st->observe_notifications_sent, sent + 1);
}

/* Security review item 7: when the token counter comes round to a live
 * observation's token (after 2^32 relays), the next relay skips it; the
 * relay's answer then cannot end the observation. */
static void test_relay_token_never_hits_an_observation(void **state)
{
    fx_t *f = *state;
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t a = plain_peer(50000);
    tether_coap_msg_t up, rel;
    assert_int_equal(obs_get(f, &a, "dev1", "temp", TETHER_COAP_CON, 0x10, "aa", 0), 2);
    assert_true(out_find(f, TETHER_LINK_DTLS, 7, &up) >= 0);
    uint8_t utok[4];
    memcpy(utok, up.token, 4);
    /* The counter wraps onto the observation's token. */
    f->node->next_token = (uint32_t)utok[0] << 24 | (uint32_t)utok[1] << 16 |
                          (uint32_t)utok[2] << 8 | utok[3];
    tether_peer_t b = plain_peer(50001);
    assert_true(client_get(f, &b, "dev1", "hum", TETHER_COAP_CON, 0x11) >= 1);
    assert_true(out_find(f, TETHER_LINK_DTLS, 7, &rel) >= 0);
    assert_int_equal(rel.tkl, 4);
    assert_memory_not_equal(rel.token, utok, 4);
    /* The device answers the relay: the observation lives on. */
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, rel.mid);
    tether_coap_msg_set_token(&ack, rel.token, 4);
    ack.payload = (const uint8_t *)"55";
    ack.payload_len = 2;
    send_msg(f, &dev, &ack);
    assert_int_equal(st->observe_device_observations, 1);
    assert_int_equal(st->observe_observers, 1);
    assert_int_equal(dev_notify(f, 7, utok, TETHER_COAP_NON, 0x600, TETHER_COAP_CONTENT, 9, "t"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_observe_shared_fanout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_late_joiner_and_nonnotification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_device_relink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_stale_notifications_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_token_never_hits_an_observation, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
