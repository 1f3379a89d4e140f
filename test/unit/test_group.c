/* Unit tests for lib/proxy/group.c (draft-ietf-core-groupcomm-proxy):
 * a group request fans out to the members, paced, each response comes back
 * on its own with Reply-From until T', later ones are dropped; the error
 * cases (no Multicast-Timeout, ACL) and the group table's bounds. The clock
 * is stepped (node_fixture.h). */
#include "node_fixture.h"

#define MT 2   /* Multicast-Timeout, the default number */
#define RF 248 /* Reply-From */

/* The fixture's node again with group pacing of one member per 10 ms. */
static void paced_node(fx_t *f)
{
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.group_pacing_burst = 1;
    c.group_pacing_interval_ms = 10;
    c.group_max_members = 4;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    for (int i = 1; i <= 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "dev%d", i);
        assert_int_equal(do_register(f, 10 + (uint64_t)i, name, name, NULL), TETHER_COAP_CREATED);
    }
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

/* The client's copy: a NON 2.05 with its token and Reply-From [-1, name]. */
static void check_forwarded(fx_t *f, const char *name, const char *value)
{
    tether_coap_msg_t m;
    assert_true(out_find(f, TETHER_LINK_PLAIN, 0, &m) >= 0);
    assert_int_equal(m.type, TETHER_COAP_NON);
    assert_int_equal(m.code, TETHER_COAP_CONTENT);
    assert_int_equal(m.tkl, 3);
    assert_memory_equal(m.token, "\xc1\xc2\xc3", 3);
    assert_int_equal(m.payload_len, strlen(value));
    assert_memory_equal(m.payload, value, m.payload_len);
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(&m, RF);
    assert_non_null(o);
    size_t nl = strlen(name);
    assert_int_equal(o->len, 3 + nl);
    assert_int_equal(o->val[0], 0x82);
    assert_int_equal(o->val[1], 0x20);
    assert_int_equal(o->val[2], 0x60 | nl);
    assert_memory_equal(o->val + 3, name, nl);
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
        cmocka_unit_test_setup_teardown(test_acl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
