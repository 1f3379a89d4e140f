/* Unit tests for lib/proxy/relay.c: relaying client requests to device
 * tunnels (piggybacked and separate answers, errors and ACLs, Proxy-Uri,
 * timeouts, queue mode), driven through the node with a stepped clock. */
#include "node_fixture.h"
#include "proxy/node_int.h"

static void test_relay_piggybacked(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    /* an idle device carries no request state (SPEC S9); a relayed request
     * makes it, and it goes with the last request */
    tether_device_t *d = tether_registry_find(&f->node->reg, "dev1");
    assert_null(d->work);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x1111), 1);
    assert_non_null(d->work);
    tether_coap_msg_t up, r;
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(o->link.id, 7);
    assert_int_equal(up.type, TETHER_COAP_CON);
    assert_int_equal(up.code, TETHER_COAP_GET);
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_URI_HOST));
    assert_true(tether_coap_path_equals(&up, "temp"));
    /* the device answers piggybacked */
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up.mid);
    tether_coap_msg_set_token(&ack, up.token, up.tkl);
    uint8_t cf = 0;
    tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_CONTENT_FORMAT, &cf, 0);
    ack.payload = (const uint8_t *)"21.5";
    ack.payload_len = 4;
    assert_int_equal(send_msg(f, &dev, &ack), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x1111);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_int_equal(r.tkl, 3);
    assert_memory_equal(r.token, "\xc1\xc2\xc3", 3);
    assert_int_equal(r.payload_len, 4);
    assert_memory_equal(r.payload, "21.5", 4);
    assert_null(d->work);
    /* a retransmission of the client's request gets the same answer, and
     * nothing goes to the device again */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x1111), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.payload_len, 4);
    /* nothing is left waiting */
    advance(f, 20000);
    assert_int_equal(tether_node_stats(f->node)->relay_timeouts, 0);
}

/* A device's MID budget (65535 CONs per EXCHANGE_LIFETIME, RFC 7252 §4.4)
 * spent: the next request is answered 5.03 at once with a Max-Age saying
 * when to retry, not held until it times out. */
static void test_mid_budget_spent_answers_503(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 50000);
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t m, up, r, ack;
    tether_time_t start = f->now;
    for (uint32_t i = 0; i < 65535; i++) {
        tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, (uint16_t)i);
        tether_coap_msg_set_token(&m, (const uint8_t *)"tk", 2);
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
        add_path(&m, "count");
        assert_int_equal(send_msg(f, &client, &m), 1);
        out_msg(f, 0, &up);
        assert_int_equal(up.type, TETHER_COAP_CON);
        tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CHANGED, up.mid);
        tether_coap_msg_set_token(&ack, up.token, up.tkl);
        assert_int_equal(send_msg(f, &dev, &ack), 1);
        f->now += 2;
    }
    assert_int_equal(tether_node_stats(f->node)->relay_ok, 65535);
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, 65535);
    tether_coap_msg_set_token(&m, (const uint8_t *)"tk", 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    add_path(&m, "count");
    assert_int_equal(send_msg(f, &client, &m), 1);
    const tether_out_t *o = out_msg(f, 0, &r);
    assert_int_equal(o->link.id, 9); /* to the client, nothing to the device */
    assert_int_equal(r.code, TETHER_COAP_SERVICE_UNAVAILABLE);
    assert_int_equal(r.mid, 65535);
    uint32_t max_age = 0;
    assert_int_equal(tether_coap_msg_get_uint(&r, TETHER_COAP_OPT_MAX_AGE, &max_age), 0);
    /* the first MIDs age out a lifetime (247 s) after they were taken,
     * 131 s ago: within one budget slot (247/32 s) of that */
    tether_time_t expect_s = (start + 247000 - f->now) / 1000;
    assert_true(max_age >= expect_s && max_age <= expect_s + 9);
    assert_int_equal(tether_node_stats(f->node)->relay_mid_exhausted, 1);
    assert_int_equal(tether_node_stats(f->node)->relay_timeouts, 0);
    /* after Max-Age the device can be reached again (from another client:
     * this one's MIDs are all still remembered for deduplication) */
    f->now += (tether_time_t)max_age * 1000;
    tether_peer_t client2 = dtls_peer(10, "app1", TETHER_ROLE_CLIENT, 50001);
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, 1);
    tether_coap_msg_set_token(&m, (const uint8_t *)"tl", 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    add_path(&m, "count");
    assert_int_equal(send_msg(f, &client2, &m), 1);
    o = out_msg(f, 0, &up);
    assert_int_equal(o->link.id, 7);
}

static void test_relay_errors_and_acl(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t r;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    assert_int_equal(client_get(f, &client, "nosuch", "temp", TETHER_COAP_CON, 1), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_NOT_FOUND);
    tether_peer_t app1 = dtls_peer(20, "app1", TETHER_ROLE_CLIENT, 40020);
    tether_peer_t app2 = dtls_peer(21, "app2", TETHER_ROLE_CLIENT, 40021);
    tether_peer_t dev2 = dtls_peer(22, "dev2", TETHER_ROLE_DEVICE, 40022);
    assert_int_equal(client_get(f, &app1, "dev1", "temp", TETHER_COAP_CON, 2), 1);
    const tether_out_t *o = out_msg(f, 0, &r);
    assert_int_equal(o->link.id, 7); /* allowed: relayed */
    assert_int_equal(client_get(f, &app2, "dev1", "temp", TETHER_COAP_CON, 3), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_FORBIDDEN);
    assert_int_equal(client_get(f, &dev2, "dev1", "temp", TETHER_COAP_CON, 4), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_FORBIDDEN);
    /* app1 may GET and POST, not DELETE */
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_DELETE, 5);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    assert_int_equal(send_msg(f, &app1, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_FORBIDDEN);
    /* an unrecognised unsafe elective option cannot be forwarded: 5.02 */
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 6);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    tether_coap_msg_add_opt(&m, 2050, "x", 1); /* elective, unsafe, unknown */
    assert_int_equal(send_msg(f, &app1, &m), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
}

/* A credentials reload that revokes app1's grant applies to the next
 * request: the node's memo of decisions (acl_memo.h) is the old set's and
 * must not answer for the new one. */
static void test_acl_follows_reload(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t r;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t app1 = dtls_peer(20, "app1", TETHER_ROLE_CLIENT, 40020);
    assert_int_equal(client_get(f, &app1, "dev1", "temp", TETHER_COAP_CON, 2), 1);
    const tether_out_t *o = out_msg(f, 0, &r);
    assert_int_equal(o->link.id, 7); /* allowed: relayed */
    char path[] = "/tmp/tether-test-creds-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    dprintf(fd, "{\"psk\": [{\"identity\": \"app1\", \"key_hex\": \"00\", \"role\": "
                "\"client\", \"allow\": [{\"devices\": \"other*\", \"methods\": [\"GET\"]}]}],"
                " \"psk_derived\": [{\"identity_prefix\": \"dev\", \"role\": \"device\","
                " \"master_hex\": \"00\"}]}");
    close(fd);
    tether_creds_t *revoked;
    char err[256];
    assert_int_equal(tether_creds_load(path, &revoked, err, sizeof err), 0);
    unlink(path);
    tether_node_set_creds(f->node, revoked);
    assert_int_equal(client_get(f, &app1, "dev1", "temp", TETHER_COAP_CON, 3), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_FORBIDDEN);
    tether_node_set_creds(f->node, f->creds);
    assert_int_equal(client_get(f, &app1, "dev1", "temp", TETHER_COAP_CON, 4), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.id, 7);
    tether_creds_free(revoked);
}

static void test_proxy_uri(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t m, up;
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, 9);
    const char *uri = "coap://dev1/big?x=1";
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_PROXY_URI, uri, strlen(uri));
    assert_int_equal(send_msg(f, &client, &m), 1);
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.id, 7);
    assert_true(tether_coap_path_equals(&up, "big"));
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_PROXY_URI));
    const tether_coap_opt_t *q = tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_URI_QUERY);
    assert_non_null(q);
    assert_memory_equal(q->val, "x=1", 3);
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, 10);
    uri = "http://dev1/big";
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_PROXY_URI, uri, strlen(uri));
    assert_int_equal(send_msg(f, &client, &m), 1);
    out_msg(f, 0, &up);
    assert_int_equal(up.code, TETHER_COAP_PROXYING_NOT_SUPPORTED);
}

/* Security review item 10: a device name is a URI host, case-insensitive
 * (RFC 3986 §3.2.2): Uri-Host "DEV1" and Proxy-Uri coap://DEV1/ reach
 * dev1 alike, the ACL sees the device's own name, and a second identity
 * differing only in case cannot register over it. */
static void test_device_names_ignore_case(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t app = dtls_peer(9, "app1", TETHER_ROLE_CLIENT, 40001);
    tether_coap_msg_t m, up;
    assert_int_equal(client_get(f, &app, "DEV1", "temp", TETHER_COAP_NON, 20), 1);
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.id, 7);
    assert_int_equal(up.code, TETHER_COAP_GET);
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, 21);
    const char *uri = "coap://DeV1/temp";
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_PROXY_URI, uri, strlen(uri));
    assert_int_equal(send_msg(f, &app, &m), 1);
    o = out_msg(f, 0, &up);
    assert_int_equal(o->link.id, 7);
    assert_int_equal(do_register(f, 8, "DEV1", "DEV1", NULL), TETHER_COAP_FORBIDDEN);
    assert_int_equal(tether_node_stats(f->node)->devices_registered, 1);
}

static void test_timeout_gives_504_separately(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x2222), 1);
    /* after the ACK delay the client gets an empty ACK */
    advance(f, 1000);
    tether_coap_msg_t r;
    size_t acks = 0, retrans = 0;
    for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
        const tether_out_t *o = out_msg(f, i, &r);
        if (o->link.kind == TETHER_LINK_PLAIN && r.type == TETHER_COAP_ACK && r.code == 0 &&
            r.mid == 0x2222)
            acks++;
    }
    assert_int_equal(acks, 1);
    /* the device stays silent: CON retransmissions, then 5.04 at the
     * request timeout (10 s by default), as a CON separate response */
    tether_time_t start = f->now;
    bool got = false;
    while (!got && f->now < start + 20000) {
        advance(f, 100);
        for (size_t i = 0; i < tether_node_out_count(f->node); i++) {
            const tether_out_t *o = out_msg(f, i, &r);
            if (o->link.kind == TETHER_LINK_DTLS)
                retrans++;
            else if (r.code == TETHER_COAP_GATEWAY_TIMEOUT) {
                assert_int_equal(r.type, TETHER_COAP_CON);
                assert_memory_equal(r.token, "\xc1\xc2\xc3", 3);
                got = true;
            }
        }
    }
    assert_true(got);
    assert_true(retrans >= 2);
    assert_true(f->now <= start + 9000 + 100);
}

static void test_separate_response_from_device(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    assert_int_equal(client_get(f, &client, "dev1", "slow", TETHER_COAP_CON, 0x3333), 1);
    tether_coap_msg_t up, m, r;
    out_msg(f, 0, &up);
    uint8_t tok[8];
    memcpy(tok, up.token, up.tkl);
    uint8_t tkl = up.tkl;
    tether_coap_msg_init(&m, TETHER_COAP_ACK, 0, up.mid); /* empty ACK */
    assert_int_equal(send_msg(f, &dev, &m), 0);
    advance(f, 1500); /* client gets its empty ACK meanwhile */
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_CONTENT, 0x5151);
    tether_coap_msg_set_token(&m, tok, tkl);
    m.payload = (const uint8_t *)"slow";
    m.payload_len = 4;
    assert_int_equal(send_msg(f, &dev, &m), 2);
    bool acked_dev = false, answered = false;
    for (size_t i = 0; i < 2; i++) {
        const tether_out_t *o = out_msg(f, i, &r);
        if (o->link.kind == TETHER_LINK_DTLS) {
            acked_dev = r.type == TETHER_COAP_ACK && r.mid == 0x5151 && r.code == 0;
        } else {
            answered =
                r.type == TETHER_COAP_CON && r.code == TETHER_COAP_CONTENT && r.payload_len == 4;
        }
    }
    assert_true(acked_dev);
    assert_true(answered);
    /* the device's retransmission is acknowledged again, not relayed */
    assert_int_equal(send_msg(f, &dev, &m), 1);
    const tether_out_t *o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(r.type, TETHER_COAP_ACK);
}

static void test_queue_mode_delivers_on_wake(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", "b=UQ"), TETHER_COAP_CREATED);
    advance(f, 2000); /* past the awake window: asleep */
    tether_peer_t client = plain_peer(50000);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x4444), 0);
    assert_int_equal(tether_node_stats(f->node)->queue_pending, 1);
    advance(f, 5000); /* still asleep: only the client's empty ACK went out */
    tether_device_info_t info;
    assert_int_equal(tether_node_device(f->node, "dev1", &info), 0);
    assert_int_equal(info.queued, 1);
    /* the device wakes and updates its registration */
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40999);
    tether_coap_msg_t m, r, up;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, 0x0777);
    add_path(&m, "rd");
    add_path(&m, f->regid);
    assert_int_equal(send_msg(f, &dev, &m), 2);
    bool changed = false;
    size_t up_i = 9;
    for (size_t i = 0; i < 2; i++) {
        out_msg(f, i, &r);
        if (r.code == TETHER_COAP_CHANGED)
            changed = true;
        else if (r.code == TETHER_COAP_GET)
            up_i = i;
    }
    assert_true(changed);
    assert_true(up_i < 2);
    out_msg(f, up_i, &up);
    tether_coap_msg_t ack;
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_CONTENT, up.mid);
    tether_coap_msg_set_token(&ack, up.token, up.tkl);
    ack.payload = (const uint8_t *)"19.0";
    ack.payload_len = 4;
    assert_int_equal(send_msg(f, &dev, &ack), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.type, TETHER_COAP_CON); /* separate: the client was ACKed long ago */
    assert_int_equal(r.payload_len, 4);
    assert_int_equal(tether_node_stats(f->node)->queue_pending, 0);
    /* NAT learning: the address changed after a ~7 s gap */
    assert_int_equal(tether_node_device(f->node, "dev1", &info), 0);
    assert_true(info.nat_binding_max_ms > 0 && info.nat_binding_max_ms <= 8000);
}

static void test_queue_ttl_and_link_down(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    /* in flight when the tunnel drops: 5.02 */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_NON, 0x5555), 1);
    tether_link_t l = {.kind = TETHER_LINK_DTLS, .id = 7};
    tether_node_out_clear(f->node);
    tether_node_link_down(f->node, &l, f->now);
    tether_coap_msg_t r;
    assert_int_equal(tether_node_out_count(f->node), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_BAD_GATEWAY);
    /* tunnel down: requests are queued and get 5.04 at the TTL (60 s) */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_NON, 0x5556), 0);
    advance(f, 59000);
    assert_int_equal(tether_node_stats(f->node)->queue_pending, 1);
    advance(f, 1001);
    assert_int_equal(tether_node_out_count(f->node), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_GATEWAY_TIMEOUT);
    assert_int_equal(tether_node_stats(f->node)->queue_pending, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relay_piggybacked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_errors_and_acl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acl_follows_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_names_ignore_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_gives_504_separately, setup, teardown),
        cmocka_unit_test_setup_teardown(test_separate_response_from_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_mode_delivers_on_wake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_ttl_and_link_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mid_budget_spent_answers_503, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
