/* Unit tests for lib/dtls/hello.c: ClientHellos built here field by field
 * (RFC 8446 §4.1.2 in a DTLS record, RFC 9147 §5.3), whole, fragmented,
 * truncated and lying about their lengths. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "dtls/hello.h"
#include "tether/common.h"

typedef struct {
    uint8_t b[4096];
    size_t n;
} buf_t;

static void put(buf_t *o, const void *p, size_t n)
{
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put8(buf_t *o, unsigned v) { o->b[o->n++] = (uint8_t)v; }
static void put16(buf_t *o, unsigned v)
{
    put8(o, v >> 8);
    put8(o, v);
}
static void put24(buf_t *o, size_t v)
{
    put8(o, (unsigned)(v >> 16));
    put16(o, (unsigned)v);
}

typedef struct {
    unsigned psk_ids;      /* identities in pre_shared_key, 0 = no extension */
    bool cookie_ext;       /* DTLS 1.3 cookie extension */
    size_t legacy_cookie;  /* DTLS 1.2 cookie bytes */
    uint16_t suite;        /* the one cipher suite offered */
} spec_t;

/* The ClientHello body (what follows the handshake header). */
static void hello_body(buf_t *o, const spec_t *s)
{
    put16(o, 0xfefd);
    for (int i = 0; i < 32; i++)
        put8(o, (unsigned)i);
    put8(o, 0); /* session id */
    put8(o, (unsigned)s->legacy_cookie);
    for (size_t i = 0; i < s->legacy_cookie; i++)
        put8(o, 0xc0);
    put16(o, 2);
    put16(o, s->suite);
    put8(o, 1);
    put8(o, 0);
    buf_t e = {.n = 0};
    put16(&e, 43); /* supported_versions: DTLS 1.3 */
    put16(&e, 3);
    put8(&e, 2);
    put16(&e, 0xfefc);
    if (s->cookie_ext) {
        put16(&e, 44);
        put16(&e, 6);
        put16(&e, 4);
        put(&e, "abcd", 4);
    }
    if (s->psk_ids) {
        buf_t ids = {.n = 0}, binders = {.n = 0};
        for (unsigned i = 0; i < s->psk_ids; i++) {
            put16(&ids, 4);
            put(&ids, "dev1", 4);
            put(&ids, "\0\0\0\0", 4);
            put8(&binders, 32);
            for (int k = 0; k < 32; k++)
                put8(&binders, 0xb1);
        }
        put16(&e, 41);
        put16(&e, (unsigned)(2 + ids.n + 2 + binders.n));
        put16(&e, (unsigned)ids.n);
        put(&e, ids.b, ids.n);
        put16(&e, (unsigned)binders.n);
        put(&e, binders.b, binders.n);
    }
    put16(o, (unsigned)e.n);
    put(o, e.b, e.n);
}

/* A datagram: record header, handshake header, the bytes [off, off + flen)
 * of the body (flen 0 = all of it). */
static void hello_record(buf_t *o, const spec_t *s, size_t off, size_t flen)
{
    buf_t body = {.n = 0};
    hello_body(&body, s);
    if (!flen)
        flen = body.n - off;
    o->n = 0;
    put8(o, 22);
    put16(o, 0xfefd);
    put16(o, 0);
    put24(o, 0);
    put24(o, 0);
    put16(o, (unsigned)(12 + flen));
    put8(o, 1);
    put24(o, body.n);
    put16(o, 0);
    put24(o, off);
    put24(o, flen);
    put(o, body.b + off, flen);
}

static void test_whole_hellos(void **state)
{
    (void)state;
    buf_t d;
    tether_hello_t h;
    for (unsigned ids = 0; ids <= 30; ids++) {
        spec_t s = {.psk_ids = ids, .suite = 0x1305};
        hello_record(&d, &s, 0, 0);
        assert_int_equal(tether_hello_scan(d.b, d.n, &h), 0);
        assert_int_equal(h.psk_identities, ids);
        assert_false(h.has_cookie);
        assert_false(h.fragment);
        assert_string_equal(h.psk13_suite, "TLS13-AES128-CCM-8-SHA256");
    }
    spec_t gcm = {.psk_ids = 1, .suite = 0x1301, .cookie_ext = true};
    hello_record(&d, &gcm, 0, 0);
    assert_int_equal(tether_hello_scan(d.b, d.n, &h), 0);
    assert_true(h.has_cookie);
    assert_string_equal(h.psk13_suite, "TLS13-AES128-GCM-SHA256");
    spec_t v12 = {.legacy_cookie = 32, .suite = 0xc0a8};
    hello_record(&d, &v12, 0, 0);
    assert_int_equal(tether_hello_scan(d.b, d.n, &h), 0);
    assert_true(h.has_cookie);
    assert_null(h.psk13_suite);
}

/* Every truncation of a whole hello, and every length field made larger
 * by one, is refused without reading past the datagram (ASan run). */
static void test_truncated_and_lying_hellos(void **state)
{
    (void)state;
    buf_t d;
    tether_hello_t h;
    spec_t s = {.psk_ids = 2, .suite = 0x1301, .cookie_ext = true};
    hello_record(&d, &s, 0, 0);
    for (size_t n = 0; n < d.n; n++) {
        uint8_t copy[4096];
        memcpy(copy, d.b, n);
        assert_int_equal(tether_hello_scan(copy, n, &h), TETHER_EPROTO);
        assert_int_equal(h.psk_identities, 0);
    }
    for (size_t i = 13; i < d.n; i++) {
        buf_t m = d;
        m.b[i]++;
        (void)tether_hello_scan(m.b, m.n, &h); /* must not crash or overread */
    }
    /* Not a hello: another handshake type, or not a handshake record. */
    buf_t m = d;
    m.b[13] = 2;
    assert_int_equal(tether_hello_scan(m.b, m.n, &h), TETHER_EPROTO);
    m = d;
    m.b[0] = 23;
    assert_int_equal(tether_hello_scan(m.b, m.n, &h), TETHER_EPROTO);
}

/* The first fragment of a large hello is scanned as far as it goes (its
 * cookie counts); a later fragment cannot start a handshake. */
static void test_fragments(void **state)
{
    (void)state;
    buf_t d;
    tether_hello_t h;
    spec_t s = {.psk_ids = 1, .suite = 0x1301, .cookie_ext = true};
    hello_record(&d, &s, 0, 70);
    assert_int_equal(tether_hello_scan(d.b, d.n, &h), 0);
    assert_true(h.fragment);
    assert_true(h.has_cookie);
    assert_int_equal(h.psk_identities, 0);
    hello_record(&d, &s, 70, 0);
    assert_int_equal(tether_hello_scan(d.b, d.n, &h), TETHER_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_hellos),
        cmocka_unit_test(test_truncated_and_lying_hellos),
        cmocka_unit_test(test_fragments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
