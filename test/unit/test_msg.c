/* Unit tests for lib/coap/msg.c: RFC 7252 message codec. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "tether/coap.h"

static int parse(const uint8_t *b, size_t n, tether_coap_msg_t *m, tether_coap_perr_t *e)
{
    return tether_coap_parse(m, b, n, e);
}

/* RFC 7252 Appendix A, figure 16: CON GET /temperature, then a piggybacked
 * 2.05 "22.3 C". */
static void test_rfc_get_temperature(void **state)
{
    (void)state;
    const uint8_t req[] = {0x40, 0x01, 0x7d, 0x34, 0xbb, 't', 'e', 'm', 'p', 'e',
                           'r',  'a',  't',  'u',  'r',  'e'};
    tether_coap_msg_t m;
    tether_coap_perr_t e;
    assert_int_equal(parse(req, sizeof req, &m, &e), 0);
    assert_int_equal(m.type, TETHER_COAP_CON);
    assert_int_equal(m.code, TETHER_COAP_GET);
    assert_int_equal(m.mid, 0x7d34);
    assert_int_equal(m.tkl, 0);
    assert_int_equal(m.nopts, 1);
    assert_int_equal(m.opts[0].num, TETHER_COAP_OPT_URI_PATH);
    assert_memory_equal(m.opts[0].val, "temperature", 11);
    assert_true(tether_coap_path_equals(&m, "temperature"));
    assert_null(m.payload);

    tether_coap_msg_t r;
    tether_coap_msg_init(&r, TETHER_COAP_ACK, TETHER_COAP_CONTENT, 0x7d34);
    r.payload = (const uint8_t *)"22.3 C";
    r.payload_len = 6;
    uint8_t out[64];
    size_t n;
    assert_int_equal(tether_coap_encode(&r, out, sizeof out, &n), 0);
    const uint8_t want[] = {0x60, 0x45, 0x7d, 0x34, 0xff, '2', '2', '.', '3', ' ', 'C'};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(out, want, n);
}

/* Deltas and lengths in every encoding: 4-bit, 13+1 byte, 14+2 bytes. */
static void test_extended_option_forms(void **state)
{
    (void)state;
    static uint8_t big[1000];
    memset(big, 'x', sizeof big);
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_POST, 7);
    const uint8_t tok[] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(tether_coap_msg_set_token(&m, tok, 8), 0);
    assert_int_equal(tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_REQUEST_TAG, "t", 1), 0);
    assert_int_equal(tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, big, 12), 0);
    assert_int_equal(tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, big, 13), 0);
    assert_int_equal(tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_NO_RESPONSE, "", 0), 0);
    assert_int_equal(tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_PROXY_URI, big, 268), 0);
    assert_int_equal(tether_coap_msg_add_opt(&m, 2000, big, 269), 0);
    assert_int_equal(tether_coap_msg_add_opt(&m, 65535, big, 1000), 0);
    uint8_t buf[4096];
    size_t n;
    assert_int_equal(tether_coap_encode(&m, buf, sizeof buf, &n), 0);
    assert_int_equal(n, tether_coap_encoded_size(&m));

    tether_coap_msg_t p;
    assert_int_equal(parse(buf, n, &p, NULL), 0);
    assert_int_equal(p.nopts, 7);
    const uint16_t nums[] = {11, 11, 35, 258, 292, 2000, 65535};
    const uint16_t lens[] = {12, 13, 268, 0, 1, 269, 1000};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(p.opts[i].num, nums[i]);
        assert_int_equal(p.opts[i].len, lens[i]);
    }
    assert_int_equal(p.tkl, 8);
    assert_memory_equal(p.token, tok, 8);
    /* Delta 258 from 0 uses form 13? no: 258 < 269 -> 13 + 245. */
    assert_int_equal(buf[12] >> 4, 11); /* first option: delta 11 */
    assert_int_equal(tether_coap_encode(&m, buf, n - 1, &n), TETHER_ENOSPC);
}

static void expect_perr(const uint8_t *b, size_t n, tether_coap_perr_t want)
{
    tether_coap_msg_t m;
    tether_coap_perr_t e = TETHER_COAP_PERR_NONE;
    assert_int_equal(parse(b, n, &m, &e), TETHER_EPROTO);
    assert_int_equal(e, want);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_perr((const uint8_t[]){0x40, 0x01}, 2, TETHER_COAP_PERR_TRUNCATED);
    expect_perr((const uint8_t[]){0x80, 0x01, 0, 1}, 4, TETHER_COAP_PERR_VERSION);
    expect_perr((const uint8_t[]){0x49, 0x01, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 13,
                TETHER_COAP_PERR_TKL);
    expect_perr((const uint8_t[]){0x44, 0x01, 0, 1, 1, 2}, 6, TETHER_COAP_PERR_TRUNCATED);
    expect_perr((const uint8_t[]){0x40, 0x00, 0, 1, 0xff}, 5, TETHER_COAP_PERR_EMPTY_NOT_EMPTY);
    expect_perr((const uint8_t[]){0x41, 0x00, 0, 1, 9}, 5, TETHER_COAP_PERR_EMPTY_NOT_EMPTY);
    expect_perr((const uint8_t[]){0x40, 0x20, 0, 1}, 4, TETHER_COAP_PERR_CODE_CLASS);
    expect_perr((const uint8_t[]){0x40, 0xe0, 0, 1}, 4, TETHER_COAP_PERR_CODE_CLASS);
    expect_perr((const uint8_t[]){0x40, 0x01, 0, 1, 0xf1, 0}, 6, TETHER_COAP_PERR_OPT_DELTA);
    expect_perr((const uint8_t[]){0x40, 0x01, 0, 1, 0x1f}, 5, TETHER_COAP_PERR_OPT_LENGTH);
    expect_perr((const uint8_t[]){0x40, 0x01, 0, 1, 0xff}, 5, TETHER_COAP_PERR_PAYLOAD_MARKER);
    expect_perr((const uint8_t[]){0x40, 0x01, 0, 1, 0xb5, 'a'}, 6, TETHER_COAP_PERR_TRUNCATED);
    expect_perr((const uint8_t[]){0x40, 0x01, 0, 1, 0xd0}, 5, TETHER_COAP_PERR_TRUNCATED);
    expect_perr((const uint8_t[]){0x40, 0x01, 0, 1, 0xe0, 0xff}, 6, TETHER_COAP_PERR_TRUNCATED);
    /* 65535 via 14-form, then another delta 1 overflows the number space. */
    expect_perr((const uint8_t[]){0x40, 0x01, 0, 1, 0xe0, 0xfe, 0xf2, 0x10}, 8,
                TETHER_COAP_PERR_OPT_NUMBER);
    /* 65 empty options overflow the per-message bound. */
    uint8_t many[4 + 65];
    memcpy(many, (const uint8_t[]){0x40, 0x01, 0, 1}, 4);
    memset(many + 4, 0x00, 65);
    many[4] = 0x10;
    expect_perr(many, sizeof many, TETHER_COAP_PERR_TOO_MANY_OPTS);
    /* A valid empty message (ping). */
    tether_coap_msg_t m;
    assert_int_equal(parse((const uint8_t[]){0x40, 0x00, 0x12, 0x34}, 4, &m, NULL), 0);
    assert_int_equal(m.mid, 0x1234);
}

static void test_reject_actions(void **state)
{
    (void)state;
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    assert_int_equal(tether_coap_reject_action(&m, TETHER_COAP_PERR_BAD_OPTION),
                     TETHER_COAP_REJECT_BAD_OPTION);
    assert_int_equal(tether_coap_reject_action(&m, TETHER_COAP_PERR_OPT_DELTA),
                     TETHER_COAP_REJECT_RST);
    assert_int_equal(tether_coap_reject_action(&m, TETHER_COAP_PERR_VERSION),
                     TETHER_COAP_REJECT_DROP);
    assert_int_equal(tether_coap_reject_action(&m, TETHER_COAP_PERR_TOO_MANY_OPTS),
                     TETHER_COAP_REJECT_BAD_REQUEST);
    m.type = TETHER_COAP_ACK;
    assert_int_equal(tether_coap_reject_action(&m, TETHER_COAP_PERR_BAD_OPTION),
                     TETHER_COAP_REJECT_DROP);
    m.type = TETHER_COAP_CON;
    m.code = TETHER_COAP_CONTENT; /* a response with a bad critical option: RST */
    assert_int_equal(tether_coap_reject_action(&m, TETHER_COAP_PERR_BAD_OPTION),
                     TETHER_COAP_REJECT_RST);
    tether_coap_perr_t e;
    assert_int_equal(parse((const uint8_t[]){0x40}, 1, &m, &e), TETHER_EPROTO);
    assert_int_equal(tether_coap_reject_action(&m, e), TETHER_COAP_REJECT_DROP);
}

static void test_option_array(void **state)
{
    (void)state;
    tether_coap_msg_t m;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    tether_coap_msg_add_opt(&m, 15, "q1", 2);
    tether_coap_msg_add_opt(&m, 11, "a", 1);
    tether_coap_msg_add_opt(&m, 3, "h", 1);
    tether_coap_msg_add_opt(&m, 11, "b", 1);
    tether_coap_msg_add_opt(&m, 15, "q2", 2);
    assert_int_equal(m.opts[0].num, 3);
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(&m, 11);
    assert_memory_equal(o->val, "a", 1);
    o = tether_coap_msg_next_opt(&m, o);
    assert_memory_equal(o->val, "b", 1);
    assert_null(tether_coap_msg_next_opt(&m, o));
    assert_true(tether_coap_path_equals(&m, "a/b"));
    assert_false(tether_coap_path_equals(&m, "a"));
    assert_int_equal(tether_coap_msg_del_opt(&m, 15), 2);
    assert_int_equal(m.nopts, 3);
    assert_null(tether_coap_msg_find_opt(&m, 15));
    for (int i = 3; i < TETHER_COAP_MAX_OPTS; i++)
        assert_int_equal(tether_coap_msg_add_opt(&m, 60, "", 0), 0);
    assert_int_equal(tether_coap_msg_add_opt(&m, 60, "", 0), TETHER_ENOSPC);
}

static void test_uint_values(void **state)
{
    (void)state;
    uint8_t b[4];
    uint32_t v;
    const uint32_t cases[] = {0, 1, 255, 256, 65535, 65536, 0xffffff, 0x1000000, 0xffffffff};
    const size_t lens[] = {0, 1, 1, 2, 2, 3, 3, 4, 4};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = tether_coap_uint_encode(cases[i], b);
        assert_int_equal(n, lens[i]);
        assert_int_equal(tether_coap_uint_decode(b, n, &v), 0);
        assert_int_equal(v, cases[i]);
    }
    assert_int_equal(tether_coap_uint_decode(b, 5, &v), TETHER_EPROTO);
    char cs[6];
    assert_string_equal(tether_coap_code_str(TETHER_COAP_GATEWAY_TIMEOUT, cs), "5.04");
}

/* Property: for random valid messages, parse(encode(m)) == m; and since the
 * wire encoding is canonical, encode(parse(b)) == b for any parsable b. */
static void test_roundtrip_random(void **state)
{
    (void)state;
    static uint8_t vals[TETHER_COAP_MAX_OPTS][600];
    static uint8_t pay[1500];
    static uint8_t wire[65536], wire2[65536];
    srand(7252);
    for (int iter = 0; iter < 3000; iter++) {
        tether_coap_msg_t m;
        static const uint8_t codes[] = {1, 2, 3, 4, 5, 0x41, 0x45, 0x84, 0x80, 0xa4, 0xbf};
        tether_coap_msg_init(&m, (uint8_t)(rand() % 4), codes[rand() % sizeof codes],
                             (uint16_t)rand());
        uint8_t tok[8];
        size_t tkl = (size_t)(rand() % 9);
        for (size_t i = 0; i < tkl; i++)
            tok[i] = (uint8_t)rand();
        tether_coap_msg_set_token(&m, tok, tkl);
        int nopt = rand() % 20;
        for (int i = 0; i < nopt; i++) {
            uint16_t num = (uint16_t)(rand() % 4 == 0 ? rand() % 65536 : rand() % 300);
            size_t len = (size_t)(rand() % 8 == 0 ? rand() % 600 : rand() % 14);
            for (size_t k = 0; k < len; k++)
                vals[i][k] = (uint8_t)rand();
            assert_int_equal(tether_coap_msg_add_opt(&m, num, vals[i], len), 0);
        }
        if (rand() % 2) {
            m.payload_len = 1 + (size_t)(rand() % (int)sizeof pay);
            for (size_t k = 0; k < m.payload_len; k++)
                pay[k] = (uint8_t)rand();
            m.payload = pay;
        }
        size_t n, n2;
        assert_int_equal(tether_coap_encode(&m, wire, sizeof wire, &n), 0);
        tether_coap_msg_t p;
        assert_int_equal(parse(wire, n, &p, NULL), 0);
        assert_int_equal(p.type, m.type);
        assert_int_equal(p.code, m.code);
        assert_int_equal(p.mid, m.mid);
        assert_int_equal(p.tkl, m.tkl);
        assert_memory_equal(p.token, m.token, m.tkl);
        assert_int_equal(p.nopts, m.nopts);
        for (int i = 0; i < m.nopts; i++) {
            assert_int_equal(p.opts[i].num, m.opts[i].num);
            assert_int_equal(p.opts[i].len, m.opts[i].len);
            if (m.opts[i].len)
                assert_memory_equal(p.opts[i].val, m.opts[i].val, m.opts[i].len);
        }
        assert_int_equal(p.payload_len, m.payload_len);
        if (m.payload_len)
            assert_memory_equal(p.payload, m.payload, m.payload_len);
        assert_int_equal(tether_coap_encode(&p, wire2, sizeof wire2, &n2), 0);
        assert_int_equal(n2, n);
        assert_memory_equal(wire2, wire, n);
    }
    /* Random bytes: never crash; when they parse, they re-encode identically. */
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rand() % 64), n2;
        for (size_t k = 0; k < n; k++)
            wire[k] = (uint8_t)rand();
        if (n)
            wire[0] = (uint8_t)(0x40 | (wire[0] & 0x3f));
        tether_coap_msg_t p;
        if (parse(wire, n, &p, NULL) == 0) {
            assert_int_equal(tether_coap_encode(&p, wire2, sizeof wire2, &n2), 0);
            assert_int_equal(n2, n);
            assert_memory_equal(wire2, wire, n);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_get_temperature), cmocka_unit_test(test_extended_option_forms),
        cmocka_unit_test(test_malformed),           cmocka_unit_test(test_reject_actions),
        cmocka_unit_test(test_option_array),        cmocka_unit_test(test_uint_values),
        cmocka_unit_test(test_roundtrip_random),
    };
    return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
