/* Unit tests for lib/proxy/obsreg.c: the observation table's indexes and
 * the Observe values and encoding of fanned-out notifications. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/obsreg.h"

static tether_link_t dlink(uint64_t id)
{
    tether_link_t l;
    memset(&l, 0, sizeof l);
    l.kind = TETHER_LINK_DTLS;
    l.id = id;
    return l;
}

static void make_key(tether_cache_key_t *k, const char *path)
{
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 0);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, path, strlen(path));
    assert_int_equal(tether_cache_key(k, "dev1", &m), 0);
}

static void test_table_indexes(void **state)
{
    (void)state;
    tether_obs_table_t t;
    tether_list_t devlist = {0};
    tether_cache_key_t k1, k2;
    tether_observation_t *o1, *o2;
    tether_observer_t *a, *b, *c;
    assert_int_equal(tether_obs_init(&t, 42), 0);
    make_key(&k1, "temp");
    make_key(&k2, "hum");
    uint8_t req[8] = {0x44, 1, 0, 0, 1, 2, 3, 4};
    assert_int_equal(tether_obs_create(&t, &k1, (const uint8_t *)"\1\2\3\4", req, 8, &devlist, &o1), 0);
    assert_int_equal(tether_obs_create(&t, &k2, (const uint8_t *)"\1\2\3\4", req, 8, &devlist, &o2),
                     TETHER_EEXIST);
    assert_int_equal(tether_obs_create(&t, &k2, (const uint8_t *)"\1\2\3\5", req, 8, &devlist, &o2), 0);
    assert_ptr_equal(tether_obs_find(&t, &k1), o1);
    assert_ptr_equal(tether_obs_find(&t, &k2), o2);
    assert_ptr_equal(tether_obs_find_token(&t, (const uint8_t *)"\1\2\3\5", 4), o2);
    assert_null(tether_obs_find_token(&t, (const uint8_t *)"\1\2\3", 3));
    tether_link_t l1 = dlink(1), l2 = dlink(2);
    assert_int_equal(tether_obs_add_observer(&t, o1, &l1, (const uint8_t *)"x", 1, 0, &a), 0);
    assert_int_equal(tether_obs_add_observer(&t, o2, &l1, (const uint8_t *)"y", 1, 0, &b), 0);
    assert_int_equal(tether_obs_add_observer(&t, o1, &l2, (const uint8_t *)"x", 1, 0, &c), 0);
    assert_int_equal(t.nobservers, 3);
    assert_int_equal(o1->nobservers, 2);
    assert_ptr_equal(tether_obs_observer_find(&t, &l1, (const uint8_t *)"y", 1), b);
    assert_ptr_equal(tether_obs_observer_find(&t, &l2, (const uint8_t *)"x", 1), c);
    assert_null(tether_obs_observer_find(&t, &l2, (const uint8_t *)"y", 1));
    assert_ptr_equal(tether_obs_observer_by_id(&t, b->id), b);
    b->notified = true;
    b->last_mid = 77;
    assert_ptr_equal(tether_obs_observer_by_mid(&t, &l1, 77), b);
    assert_null(tether_obs_observer_by_mid(&t, &l2, 77));
    /* link down: every observer of the link, one by one */
    tether_observer_t *ob;
    while ((ob = tether_obs_link_first(&t, &l1)))
        tether_obs_remove_observer(&t, ob);
    assert_int_equal(t.nobservers, 1);
    assert_int_equal(o2->nobservers, 0);
    tether_obs_destroy(&t, o2);
    assert_null(tether_obs_find(&t, &k2));
    assert_int_equal(t.nobservations, 1);
    tether_obs_free(&t); /* frees o1 and c */
    assert_null(devlist.head);
}

static void test_latest_and_encode(void **state)
{
    (void)state;
    tether_obs_table_t t;
    tether_list_t devlist = {0};
    tether_cache_key_t k;
    tether_observation_t *o;
    tether_observer_t *a;
    uint8_t req[4] = {0x40, 1, 0, 0};
    assert_int_equal(tether_obs_init(&t, 7), 0);
    make_key(&k, "temp");
    assert_int_equal(tether_obs_create(&t, &k, (const uint8_t *)"abcd", req, 4, &devlist, &o), 0);
    tether_link_t l = dlink(3);
    assert_int_equal(tether_obs_add_observer(&t, o, &l, (const uint8_t *)"tok12", 5, 0, &a), 0);
    uint8_t buf[256];
    size_t len;
    assert_int_equal(tether_obs_encode(o, a, TETHER_COAP_NON, 1, buf, sizeof buf, &len),
                     TETHER_ENOTFOUND);
    /* the device's own Observe value is replaced by the observation's */
    tether_coap_msg_t n, m;
    uint8_t dev_ov = 200, cf = 0, ma = 30;
    tether_coap_msg_init(&n, TETHER_COAP_CON, TETHER_COAP_CONTENT, 9);
    tether_coap_msg_add_opt(&n, TETHER_COAP_OPT_OBSERVE, &dev_ov, 1);
    tether_coap_msg_add_opt(&n, TETHER_COAP_OPT_CONTENT_FORMAT, &cf, 0);
    tether_coap_msg_add_opt(&n, TETHER_COAP_OPT_MAX_AGE, &ma, 1);
    n.payload = (const uint8_t *)"21.5";
    n.payload_len = 4;
    tether_coap_perr_t perr;
    uint32_t v, prev = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tether_obs_set_latest(o, &n), 0);
        assert_int_equal(tether_obs_encode(o, a, TETHER_COAP_NON, 0x1234, buf, sizeof buf, &len), 0);
        assert_int_equal(tether_coap_parse(&m, buf, len, &perr), 0);
        assert_int_equal(m.type, TETHER_COAP_NON);
        assert_int_equal(m.mid, 0x1234);
        assert_int_equal(m.tkl, 5);
        assert_memory_equal(m.token, "tok12", 5);
        assert_int_equal(m.code, TETHER_COAP_CONTENT);
        assert_int_equal(tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_MAX_AGE, &v), 0);
        assert_int_equal(v, 30);
        assert_int_equal(tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_OBSERVE, &v), 0);
        if (i)
            assert_int_equal(v, prev + 1);
        prev = v;
        assert_int_equal(m.payload_len, 4);
    }
    /* 24-bit wrap: still newer per RFC 7641 §3.4 */
    o->seq = 0xffffff;
    assert_int_equal(tether_obs_set_latest(o, &n), 0);
    assert_int_equal(tether_obs_encode(o, a, TETHER_COAP_CON, 1, buf, sizeof buf, &len), 0);
    assert_int_equal(tether_coap_parse(&m, buf, len, &perr), 0);
    assert_int_equal(tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_OBSERVE, &v), 0);
    assert_int_equal(v, 0);
    assert_true(tether_coap_observe_newer(0xffffff, 0, v, 0));
    tether_obs_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_indexes),
        cmocka_unit_test(test_latest_and_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
