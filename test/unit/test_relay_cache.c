/* Unit tests for lib/proxy/relay_cache.c: the response cache around
 * relayed requests (hits and expiry, ETag revalidation, invalidation,
 * OSCORE and operator bypass, eviction during revalidation, disabled). */
#include "node_fixture.h"

/* The device (session 7) answers the upstream request `up` piggybacked
 * with `code`, `payload`, Max-Age (< 0: none) and ETag (NULL: none);
 * returns the outbox size. */
static size_t dev_answer(fx_t *f, const tether_coap_msg_t *up, uint8_t code, const char *payload,
                         long max_age, const char *etag)
{
    tether_peer_t dev = dtls_peer(7, "dev1", TETHER_ROLE_DEVICE, 40000);
    tether_coap_msg_t ack;
    uint8_t ma[4];
    tether_coap_msg_init(&ack, TETHER_COAP_ACK, code, up->mid);
    tether_coap_msg_set_token(&ack, up->token, up->tkl);
    if (max_age >= 0)
        tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_MAX_AGE, ma,
                                tether_coap_uint_encode((uint32_t)max_age, ma));
    if (etag)
        tether_coap_msg_add_opt(&ack, TETHER_COAP_OPT_ETAG, etag, strlen(etag));
    ack.payload = (const uint8_t *)payload;
    ack.payload_len = strlen(payload);
    return send_msg(f, &dev, &ack);
}

/* A client request with `code` for dev1/`path` from `client`. */
static size_t client_req(fx_t *f, const tether_peer_t *client, uint8_t type, uint8_t code,
                         const char *path, uint16_t mid, const char *etag)
{
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, type, code, mid);
    tether_coap_msg_set_token(&m, (const uint8_t *)"\xc1\xc2\xc3", 3);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    add_path(&m, path);
    if (etag)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_ETAG, etag, strlen(etag));
    return send_msg(f, client, &m);
}

static uint32_t max_age_of(const tether_coap_msg_t *m)
{
    uint32_t v = 0xffffffff;
    assert_int_equal(tether_coap_msg_get_uint(m, TETHER_COAP_OPT_MAX_AGE, &v), 0);
    return v;
}

static void test_cache_hit_then_expiry(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x100), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "21.5", 5, NULL), 1);
    /* within Max-Age: answered piggybacked from the cache, the device is
     * not asked, the Max-Age left is served */
    advance(f, 2000);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x101), 1);
    const tether_out_t *o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.type, TETHER_COAP_ACK);
    assert_int_equal(r.mid, 0x101);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.token, "\xc1\xc2\xc3", 3);
    assert_int_equal(r.payload_len, 4);
    assert_memory_equal(r.payload, "21.5", 4);
    assert_int_equal(max_age_of(&r), 3);
    /* a NON request gets a NON answer; a client using Proxy-Uri shares the entry */
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_GET, 0x102);
    const char *uri = "coap://dev1/temp";
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_PROXY_URI, uri, strlen(uri));
    assert_int_equal(send_msg(f, &client, &m), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.type, TETHER_COAP_NON);
    assert_int_equal(r.payload_len, 4);
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(st->cache_hits, 2);
    assert_int_equal(st->cache_misses, 1);
    assert_int_equal(st->requests_relayed, 1);
    assert_int_equal(st->cache_entries, 1);
    assert_true(st->cache_bytes > 4);
    /* after Max-Age the device is asked again */
    advance(f, 3000);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x103), 1);
    o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "22.0", 0, NULL), 1);
    out_msg(f, 0, &r);
    assert_memory_equal(r.payload, "22.0", 4);
    assert_int_equal(st->cache_misses, 2);
    /* Max-Age 0 is not stored */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 0x104), 1);
    o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(st->cache_entries, 0);
}

static void test_cache_etag_revalidation(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, r;
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 1, NULL), 1);
    out_msg(f, 0, &up);
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_ETAG));
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "20.0", 1, "e1"), 1);
    advance(f, 1500);
    /* stale: relayed with the entry's ETag; the 2.03 refreshes the entry
     * and the client, which sent no ETag, gets the representation */
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 2, NULL), 1);
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_ETAG);
    assert_non_null(et);
    assert_memory_equal(et->val, "e1", 2);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_VALID, "", 30, "e1"), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_int_equal(r.mid, 2);
    assert_int_equal(r.payload_len, 4);
    assert_memory_equal(r.payload, "20.0", 4);
    assert_int_equal(max_age_of(&r), 30);
    assert_int_equal(tether_node_stats(f->node)->cache_revalidated, 1);
    /* fresh again: a client holding e1 gets 2.03 from the cache */
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 3, "e1"), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.code, TETHER_COAP_VALID);
    assert_int_equal(r.payload_len, 0);
    et = tether_coap_msg_find_opt(&r, TETHER_COAP_OPT_ETAG);
    assert_non_null(et);
    assert_memory_equal(et->val, "e1", 2);
    /* stale again, the client holding e1 itself: the device's 2.03 is
     * passed on as a 2.03 */
    advance(f, 31000);
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 4, "e1"), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_VALID, "", 10, "e1"), 1);
    out_msg(f, 0, &r);
    assert_int_equal(r.code, TETHER_COAP_VALID);
    assert_int_equal(max_age_of(&r), 10);
    /* a new representation replaces the entry */
    advance(f, 11000);
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 5, NULL), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "25.0", 10, "e2"), 1);
    out_msg(f, 0, &r);
    assert_memory_equal(r.payload, "25.0", 4);
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "temp", 6, NULL), 1);
    out_msg(f, 0, &r);
    assert_memory_equal(r.payload, "25.0", 4);
    assert_int_equal(tether_node_stats(f->node)->cache_hits, 2);
}

/* Sends a GET for dev1/`path`: true when the cache answered it (the
 * device was not asked); otherwise the device's request is in *up. */
static bool get_cached(fx_t *f, const tether_peer_t *client, const char *path, uint16_t mid,
                       tether_coap_msg_t *up)
{
    assert_int_equal(client_req(f, client, TETHER_COAP_CON, TETHER_COAP_GET, path, mid, NULL), 1);
    const tether_out_t *o = out_msg(f, 0, up);
    return o->link.kind == TETHER_LINK_PLAIN;
}

static void test_cache_invalidated_by_unsafe_requests(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up;
    uint16_t mid = 10;
    const uint8_t methods[] = {TETHER_COAP_POST, TETHER_COAP_PUT, TETHER_COAP_DELETE};
    const char *paths[] = {"l0", "l1", "l2"};
    for (size_t i = 0; i < sizeof methods; i++) {
        assert_false(get_cached(f, &client, paths[i], mid++, &up));
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "off", 60, NULL), 1);
        assert_true(get_cached(f, &client, paths[i], mid++, &up));
        /* the unsafe request is relayed and the entry is gone at once */
        assert_int_equal(
            client_req(f, &client, TETHER_COAP_CON, methods[i], paths[i], mid++, NULL), 1);
        const tether_out_t *o = out_msg(f, 0, &up);
        assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
        assert_int_equal(up.code, methods[i]);
        assert_int_equal(tether_node_stats(f->node)->cache_entries, i);
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CHANGED, "", -1, NULL), 1);
        assert_false(get_cached(f, &client, paths[i], mid++, &up));
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "on", -1, NULL), 1);
        assert_true(get_cached(f, &client, paths[i], mid++, &up));
    }
    assert_int_equal(tether_node_stats(f->node)->cache_invalidations, 3);
    /* a GET cached while a POST is in flight is dropped by the POST's 2.04 */
    assert_int_equal(
        client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_POST, "l0", mid++, NULL), 1);
    tether_coap_msg_t post;
    out_msg(f, 0, &post);
    uint8_t ptok[8], ptkl = post.tkl;
    uint16_t pmid = post.mid;
    memcpy(ptok, post.token, ptkl);
    tether_coap_msg_init(&post, TETHER_COAP_CON, TETHER_COAP_POST, pmid);
    tether_coap_msg_set_token(&post, ptok, ptkl);
    assert_false(get_cached(f, &client, "l0", mid++, &up));
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "dim", 60, NULL), 1);
    assert_true(get_cached(f, &client, "l0", mid++, &up));
    assert_int_equal(dev_answer(f, &post, TETHER_COAP_CHANGED, "", -1, NULL), 1);
    assert_false(get_cached(f, &client, "l0", mid++, &up));
    /* other paths were not touched */
    assert_true(get_cached(f, &client, "l1", mid++, &up));
}

static void test_cache_oscore_and_operator_bypass(void **state)
{
    fx_t *f = *state;
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t m, up, r;
    for (uint16_t mid = 1; mid <= 2; mid++) {
        tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, mid);
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OSCORE, "\x09", 1);
        assert_int_equal(send_msg(f, &client, &m), 1);
        const tether_out_t *o = out_msg(f, 0, &up);
        assert_int_equal(o->link.kind, TETHER_LINK_DTLS); /* relayed both times */
        assert_non_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_OSCORE));
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "sealed", 60, NULL), 1);
        out_msg(f, 0, &r);
        assert_int_equal(r.payload_len, 6);
    }
    const tether_node_stats_t *st = tether_node_stats(f->node);
    assert_int_equal(st->cache_entries, 0);
    assert_int_equal(st->cache_hits + st->cache_misses, 0);
    /* an operator request (internal link) reaches the device even when a
     * fresh entry exists, and refreshes it */
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 3), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "1.0", 60, NULL), 1);
    tether_peer_t op = {.link = {.kind = TETHER_LINK_INTERNAL, .id = 99}};
    assert_int_equal(client_get(f, &op, "dev1", "temp", TETHER_COAP_CON, 4), 1);
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "2.0", 60, NULL), 1);
    assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, 5), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_memory_equal(r.payload, "2.0", 3);
}

/* A node whose cache holds one small entry: the entry a revalidation is
 * for may be evicted before the device's 2.03 arrives. */
static void test_cache_entry_evicted_during_revalidation(void **state)
{
    fx_t *f = *state;
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.nstart = 0; /* two requests outstanding to dev1 (see node_fixture.h) */
    c.cache_bytes = 300; /* one entry of ~200 bytes with its path group */
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up, upb, r;
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "a", 1, NULL), 1);
    out_msg(f, 0, &up);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "A1", 1, "ea"), 1);
    assert_int_equal(tether_node_stats(f->node)->cache_entries, 1);
    advance(f, 1500);
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "a", 2, NULL), 1);
    out_msg(f, 0, &up);
    assert_non_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_ETAG));
    uint8_t atok[8], atkl = up.tkl;
    memcpy(atok, up.token, atkl);
    uint16_t amid = up.mid;
    /* meanwhile /b is stored and pushes /a out */
    assert_int_equal(client_req(f, &client, TETHER_COAP_CON, TETHER_COAP_GET, "b", 3, NULL), 1);
    out_msg(f, 0, &upb);
    assert_int_equal(dev_answer(f, &upb, TETHER_COAP_CONTENT, "B1", 60, NULL), 1);
    assert_int_equal(tether_node_stats(f->node)->cache_entries, 1);
    assert_int_equal(tether_node_stats(f->node)->cache_evictions, 1);
    /* the 2.03 for /a finds nothing to serve: the request goes again,
     * without the ETag, and the client gets the device's representation */
    tether_coap_msg_init(&up, TETHER_COAP_CON, TETHER_COAP_GET, amid);
    tether_coap_msg_set_token(&up, atok, atkl);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_VALID, "", 60, "ea"), 1);
    const tether_out_t *o = out_msg(f, 0, &up);
    assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
    assert_int_equal(up.code, TETHER_COAP_GET);
    assert_true(tether_coap_path_equals(&up, "a"));
    assert_null(tether_coap_msg_find_opt(&up, TETHER_COAP_OPT_ETAG));
    assert_int_not_equal(up.mid, amid);
    assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "A2", 60, "ea2"), 1);
    o = out_msg(f, 0, &r);
    assert_int_equal(o->link.kind, TETHER_LINK_PLAIN);
    assert_int_equal(r.mid, 2);
    assert_int_equal(r.code, TETHER_COAP_CONTENT);
    assert_memory_equal(r.payload, "A2", 2);
    assert_int_equal(tether_node_pending(f->node), 0);
}

static void test_cache_disabled(void **state)
{
    fx_t *f = *state;
    tether_node_destroy(f->node);
    tether_node_conf_t c;
    tether_node_conf_defaults(&c);
    c.cache_bytes = 0;
    assert_int_equal(tether_node_create(&c, f->creds, &f->node), 0);
    assert_int_equal(do_register(f, 7, "dev1", "dev1", NULL), TETHER_COAP_CREATED);
    tether_peer_t client = plain_peer(50000);
    tether_coap_msg_t up;
    for (uint16_t mid = 1; mid <= 2; mid++) {
        assert_int_equal(client_get(f, &client, "dev1", "temp", TETHER_COAP_CON, mid), 1);
        const tether_out_t *o = out_msg(f, 0, &up);
        assert_int_equal(o->link.kind, TETHER_LINK_DTLS);
        assert_int_equal(dev_answer(f, &up, TETHER_COAP_CONTENT, "1", 60, NULL), 1);
    }
    assert_int_equal(tether_node_stats(f->node)->cache_hits, 0);
    assert_int_equal(tether_node_stats(f->node)->cache_misses, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_hit_then_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_etag_revalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_invalidated_by_unsafe_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_oscore_and_operator_bypass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_entry_evicted_during_revalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_disabled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
