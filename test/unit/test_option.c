/* Unit tests for lib/coap/option.c: registry, block values, observe order. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "tether/coap.h"

static void test_registry(void **state)
{
    (void)state;
    tether_coap_optreg_t r;
    assert_int_equal(tether_coap_optreg_init(&r, 2, 248), 0);
    for (size_t i = 1; i < r.n; i++)
        assert_true(r.defs[i - 1].num < r.defs[i].num);
    assert_string_equal(tether_coap_optreg_find(&r, 2)->name, "Multicast-Timeout");
    assert_string_equal(tether_coap_optreg_find(&r, 248)->name, "Reply-From");
    assert_string_equal(tether_coap_optreg_find(&r, 292)->name, "Request-Tag");
    assert_string_equal(tether_coap_optreg_find(&r, 258)->name, "No-Response");
    assert_string_equal(tether_coap_optreg_find(&r, 252)->name, "Echo");
    assert_null(tether_coap_optreg_find(&r, 25));
    /* Configured numbers may not collide with built-ins or each other. */
    assert_int_equal(tether_coap_optreg_init(&r, 11, 248), TETHER_EINVAL);
    assert_int_equal(tether_coap_optreg_init(&r, 2, 2), TETHER_EINVAL);
    assert_int_equal(tether_coap_optreg_init(&r, 0, 248), TETHER_EINVAL);
    assert_int_equal(tether_coap_optreg_init(&r, 65000, 65002), 0);
    /* one more of the draft's (Group-ETag): sorted in, a taken number refused */
    tether_coap_optdef_t ge = {24, "Group-ETag", TETHER_COAP_FMT_OPAQUE, true, 1, 8};
    assert_int_equal(tether_coap_optreg_add(&r, &ge), 0);
    assert_non_null(tether_coap_optreg_find(&r, 24));
    assert_non_null(tether_coap_optreg_find(&r, 65002));
    assert_int_equal(tether_coap_optreg_add(&r, &ge), TETHER_EINVAL);
    ge.num = TETHER_COAP_OPT_ETAG;
    assert_int_equal(tether_coap_optreg_add(&r, &ge), TETHER_EINVAL);
    assert_non_null(tether_coap_optreg_find(&r, 65002));
}

static void test_number_bits(void **state)
{
    (void)state;
    /* RFC 7252 §5.10 table: C, U, N columns. */
    assert_true(tether_coap_opt_critical(TETHER_COAP_OPT_URI_HOST));
    assert_true(tether_coap_opt_unsafe(TETHER_COAP_OPT_URI_HOST));
    assert_false(tether_coap_opt_critical(TETHER_COAP_OPT_ETAG));
    assert_false(tether_coap_opt_unsafe(TETHER_COAP_OPT_ETAG));
    assert_true(tether_coap_opt_nocachekey(TETHER_COAP_OPT_SIZE1));
    assert_true(tether_coap_opt_nocachekey(TETHER_COAP_OPT_SIZE2));
    assert_false(tether_coap_opt_nocachekey(TETHER_COAP_OPT_ACCEPT));
    assert_true(tether_coap_opt_unsafe(TETHER_COAP_OPT_PROXY_URI));
    assert_true(tether_coap_opt_critical(TETHER_COAP_OPT_PROXY_URI));
    assert_false(tether_coap_opt_critical(TETHER_COAP_OPT_MAX_AGE));
    assert_true(tether_coap_opt_unsafe(TETHER_COAP_OPT_MAX_AGE));
}

static void test_check_opts(void **state)
{
    (void)state;
    tether_coap_optreg_t r;
    tether_coap_optreg_init(&r, 2, 248);
    tether_coap_msg_t m;
    uint16_t bad = 0;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, "x", 1);
    tether_coap_msg_add_opt(&m, 1000, "e", 1); /* unknown elective: ignored */
    assert_int_equal(tether_coap_check_opts(&r, &m, &bad), 0);
    tether_coap_opt_t unknown = {1000, 1, (const uint8_t *)"e"};
    assert_false(tether_coap_opt_usable(&r, &unknown));

    tether_coap_msg_add_opt(&m, 25, "c", 1); /* unknown critical */
    assert_int_equal(tether_coap_check_opts(&r, &m, &bad), TETHER_EPROTO);
    assert_int_equal(bad, 25);

    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "", 0); /* too short */
    assert_int_equal(tether_coap_check_opts(&r, &m, &bad), TETHER_EPROTO);
    assert_int_equal(bad, TETHER_COAP_OPT_URI_HOST);

    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "a", 1);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "b", 1); /* not repeatable */
    assert_int_equal(tether_coap_check_opts(&r, &m, &bad), TETHER_EPROTO);

    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_ETAG, "123456789", 9); /* elective too long */
    assert_int_equal(tether_coap_check_opts(&r, &m, &bad), 0);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_BLOCK2, "\x01\x02\x03\x04", 4);
    assert_int_equal(tether_coap_check_opts(&r, &m, &bad), TETHER_EPROTO);
    assert_int_equal(bad, TETHER_COAP_OPT_BLOCK2);
}

static void test_block(void **state)
{
    (void)state;
    tether_coap_block_t b = {0}, d;
    uint8_t v[3];
    size_t n;
    /* RFC 7959 §2.2: num=0, M=0, SZX=0 encodes as a zero-length value. */
    assert_int_equal(tether_coap_block_encode(&b, v, &n), 0);
    assert_int_equal(n, 0);
    b = (tether_coap_block_t){.num = 1, .more = true, .szx = 6};
    assert_int_equal(tether_coap_block_encode(&b, v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0], 0x1e);
    b = (tether_coap_block_t){.num = (1u << 20) - 1, .more = false, .szx = 2};
    assert_int_equal(tether_coap_block_encode(&b, v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(tether_coap_block_decode(v, n, &d), 0);
    assert_int_equal(d.num, (1u << 20) - 1);
    assert_false(d.more);
    assert_int_equal(d.szx, 2);
    b.num = 1u << 20;
    assert_int_equal(tether_coap_block_encode(&b, v, &n), TETHER_EINVAL);
    assert_int_equal(tether_coap_block_decode((const uint8_t[]){0x07}, 1, &d), TETHER_EPROTO);
    assert_int_equal(tether_coap_block_decode((const uint8_t[]){1, 2, 3, 4}, 4, &d),
                     TETHER_EPROTO);
    assert_int_equal(tether_coap_block_size(6), 1024);
    assert_int_equal(tether_coap_block_szx_for(1024), 6);
    assert_int_equal(tether_coap_block_szx_for(4096), 6);
    assert_int_equal(tether_coap_block_szx_for(100), 2);
    assert_int_equal(tether_coap_block_szx_for(3), 0);
}

static void test_observe_order(void **state)
{
    (void)state;
    assert_true(tether_coap_observe_newer(1, 0, 2, 0));
    assert_false(tether_coap_observe_newer(2, 0, 1, 0));
    assert_false(tether_coap_observe_newer(5, 0, 5, 0));
    /* Wrap-around: 0xffffff -> 0 is newer; a jump of 2^23 or more is not. */
    assert_true(tether_coap_observe_newer(0xffffff, 0, 0, 0));
    assert_false(tether_coap_observe_newer(0, 0, 1u << 23, 0));
    assert_true(tether_coap_observe_newer(0, 0, (1u << 23) - 1, 0));
    /* More than 128 s later, any value is newer. */
    assert_true(tether_coap_observe_newer(10, 1000, 3, 1000 + 128001));
    assert_false(tether_coap_observe_newer(10, 1000, 3, 1000 + 128000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry), cmocka_unit_test(test_number_bits),
        cmocka_unit_test(test_check_opts), cmocka_unit_test(test_block),
        cmocka_unit_test(test_observe_order),
    };
    return cmocka_run_group_tests_name("option", tests, NULL, NULL);
}
