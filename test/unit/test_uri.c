/* Unit tests for lib/coap/uri.c (RFC 7252 §6.4 / §6.5 URI <-> options). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "tether/coap.h"

typedef struct {
    tether_coap_msg_t msg;
    uint8_t scratch[512];
    bool secure;
} uri_case_t;

static int decompose(uri_case_t *c, const char *uri)
{
    tether_coap_msg_init(&c->msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    c->secure = false;
    return tether_coap_uri_to_opts(uri, strlen(uri), &c->msg, c->scratch, sizeof(c->scratch),
                                   &c->secure);
}

static void decompose_ok(uri_case_t *c, const char *uri)
{
    int rc = decompose(c, uri);
    if (rc != TETHER_OK) {
        print_error("decomposing '%s' failed: %d\n", uri, rc);
    }
    assert_int_equal(rc, TETHER_OK);
}

static void decompose_bad(const char *uri)
{
    uri_case_t c;
    int rc = decompose(&c, uri);
    if (rc != TETHER_EPROTO) {
        print_error("decomposing '%s' gave %d, expected EPROTO\n", uri, rc);
    }
    assert_int_equal(rc, TETHER_EPROTO);
    assert_int_equal(c.msg.nopts, 0);
}

static size_t count_opts(const tether_coap_msg_t *msg, uint16_t num)
{
    size_t n = 0;
    for (size_t k = 0; k < msg->nopts; k++) {
        n += msg->opts[k].num == num;
    }
    return n;
}

/* The instances of option `num` in `msg` equal want[0..n) (strings). */
static void assert_opts(const tether_coap_msg_t *msg, uint16_t num, const char *const *want,
                        size_t n)
{
    size_t seen = 0;
    for (size_t k = 0; k < msg->nopts; k++) {
        const tether_coap_opt_t *o = &msg->opts[k];
        if (o->num != num) {
            continue;
        }
        assert_true(seen < n);
        size_t wl = strlen(want[seen]);
        if (o->len != wl || (wl > 0 && memcmp(o->val, want[seen], wl) != 0)) {
            print_error("option %u #%zu: got '%.*s', want '%s'\n", num, seen, (int)o->len,
                        (const char *)o->val, want[seen]);
            fail();
        }
        seen++;
    }
    assert_int_equal(seen, n);
}

#define ASSERT_OPTS(msg, num, ...)                                                                 \
    do {                                                                                           \
        static const char *const want_[] = { __VA_ARGS__ };                                        \
        assert_opts((msg), (num), want_, sizeof(want_) / sizeof(want_[0]));                        \
    } while (0)

static void assert_sorted(const tether_coap_msg_t *msg)
{
    for (size_t k = 1; k < msg->nopts; k++) {
        assert_true(msg->opts[k - 1].num <= msg->opts[k].num);
    }
}

static bool same_opts(const tether_coap_msg_t *a, const tether_coap_msg_t *b)
{
    if (a->nopts != b->nopts) {
        return false;
    }
    for (size_t k = 0; k < a->nopts; k++) {
        if (a->opts[k].num != b->opts[k].num || a->opts[k].len != b->opts[k].len ||
            (a->opts[k].len > 0 && memcmp(a->opts[k].val, b->opts[k].val, a->opts[k].len) != 0)) {
            return false;
        }
    }
    return true;
}

/* Port option value as an integer; -1 when there is no Uri-Port. */
static long port_of(const tether_coap_msg_t *msg)
{
    for (size_t k = 0; k < msg->nopts; k++) {
        if (msg->opts[k].num == TETHER_COAP_OPT_URI_PORT) {
            long v = 0;
            for (size_t i = 0; i < msg->opts[k].len; i++) {
                v = v << 8 | msg->opts[k].val[i];
            }
            return v;
        }
    }
    return -1;
}

/* ---- decomposition ------------------------------------------------------ */

/* RFC 7252 §6.3: these three URIs are equivalent. */
static void test_rfc7252_equivalence(void **state)
{
    (void)state;
    uri_case_t a, b, c;
    decompose_ok(&a, "coap://example.com:5683/~sensors/temp.xml");
    decompose_ok(&b, "coap://EXAMPLE.com/%7Esensors/temp.xml");
    decompose_ok(&c, "coap://EXAMPLE.com:/%7esensors/temp.xml");
    ASSERT_OPTS(&a.msg, TETHER_COAP_OPT_URI_HOST, "example.com");
    ASSERT_OPTS(&a.msg, TETHER_COAP_OPT_URI_PATH, "~sensors", "temp.xml");
    assert_int_equal(count_opts(&a.msg, TETHER_COAP_OPT_URI_PORT), 0);
    assert_int_equal(a.msg.nopts, 3);
    assert_true(same_opts(&a.msg, &b.msg));
    assert_true(same_opts(&a.msg, &c.msg));
    assert_false(a.secure);
}

static void test_basic(void **state)
{
    (void)state;
    uri_case_t c;
    decompose_ok(&c, "coap://node-7.local/sensors/temp?unit=c&fmt=json");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_HOST, "node-7.local");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_PATH, "sensors", "temp");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_QUERY, "unit=c", "fmt=json");
    assert_int_equal(c.msg.nopts, 5);
    assert_sorted(&c.msg);
    /* option values live in scratch */
    for (size_t k = 0; k < c.msg.nopts; k++) {
        assert_true(c.msg.opts[k].val >= c.scratch &&
                    c.msg.opts[k].val + c.msg.opts[k].len <= c.scratch + sizeof(c.scratch));
    }
}

static void test_scheme_and_ports(void **state)
{
    (void)state;
    uri_case_t c;
    decompose_ok(&c, "coaps://h/x");
    assert_true(c.secure);
    assert_int_equal(port_of(&c.msg), -1);

    decompose_ok(&c, "CoAPS://h:5684");
    assert_true(c.secure);
    assert_int_equal(port_of(&c.msg), -1);

    decompose_ok(&c, "coaps://h:5683/");
    assert_int_equal(port_of(&c.msg), 5683);
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_PORT, "\x16\x33");

    decompose_ok(&c, "COAP://h:5684");
    assert_false(c.secure);
    assert_int_equal(port_of(&c.msg), 5684);

    decompose_ok(&c, "coap://h:61616/a");
    assert_int_equal(port_of(&c.msg), 61616);
    assert_sorted(&c.msg);

    decompose_ok(&c, "coap://h:200");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_PORT, "\xc8");

    decompose_ok(&c, "coap://h:0");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_PORT, "");

    decompose_ok(&c, "coap://h:00005683");
    assert_int_equal(port_of(&c.msg), -1);

    decompose_ok(&c, "coap://h:");
    assert_int_equal(port_of(&c.msg), -1);

    decompose_ok(&c, "coap://h:65535");
    assert_int_equal(port_of(&c.msg), 65535);

    decompose_bad("coap://h:65536");
    decompose_bad("coap://h:99999999999999999999");
    decompose_bad("coap://h:12a");
    decompose_bad("coap://h:-1");
    decompose_bad("coap://h:1:2");
}

static void test_paths(void **state)
{
    (void)state;
    uri_case_t c;
    decompose_ok(&c, "coap://h");
    assert_int_equal(count_opts(&c.msg, TETHER_COAP_OPT_URI_PATH), 0);
    assert_int_equal(c.msg.nopts, 1);

    decompose_ok(&c, "coap://h/");
    assert_int_equal(count_opts(&c.msg, TETHER_COAP_OPT_URI_PATH), 0);

    decompose_ok(&c, "coap://h/a/");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_PATH, "a", "");

    decompose_ok(&c, "coap://h//");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_PATH, "", "");

    decompose_ok(&c, "coap://h/.well-known/core");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_PATH, ".well-known", "core");

    decompose_ok(&c, "coap://h/a:b@c!$&'()*+,;=-._~");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_PATH, "a:b@c!$&'()*+,;=-._~");
}

static void test_queries(void **state)
{
    (void)state;
    uri_case_t c;
    decompose_ok(&c, "coap://h?q");
    assert_int_equal(count_opts(&c.msg, TETHER_COAP_OPT_URI_PATH), 0);
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_QUERY, "q");

    decompose_ok(&c, "coap://h/?");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_QUERY, "");

    decompose_ok(&c, "coap://h/p?a&&b");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_QUERY, "a", "", "b");

    decompose_ok(&c, "coap://h/p?x=/a?b:c@d");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_QUERY, "x=/a?b:c@d");
}

static void test_percent_decoding(void **state)
{
    (void)state;
    uri_case_t c;
    decompose_ok(&c, "coap://%41B%63.example/a%2Fb/%41%c3%A9?%26=%3d&x%20y");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_HOST, "abc.example");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_PATH, "a/b", "A\xc3\xa9");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_QUERY, "&==", "x y");

    decompose_ok(&c, "coap://h/%00");
    assert_int_equal(count_opts(&c.msg, TETHER_COAP_OPT_URI_PATH), 1);
    const tether_coap_opt_t *p = tether_coap_msg_find_opt(&c.msg, TETHER_COAP_OPT_URI_PATH);
    assert_non_null(p);
    assert_int_equal(p->len, 1);
    assert_int_equal(p->val[0], 0);

    decompose_bad("coap://h/%");
    decompose_bad("coap://h/%4");
    decompose_bad("coap://h/%4g");
    decompose_bad("coap://h/%zz/b");
    decompose_bad("coap://h?a=%");
    decompose_bad("coap://h%2/");
}

static void test_hosts(void **state)
{
    (void)state;
    uri_case_t c;
    decompose_ok(&c, "coap://[2001:DB8::1]:61616/x");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_HOST, "2001:DB8::1");
    assert_int_equal(port_of(&c.msg), 61616);

    decompose_ok(&c, "coap://[::1]");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_HOST, "::1");
    assert_int_equal(port_of(&c.msg), -1);

    decompose_ok(&c, "coap://[fe80::1%25eth0]/");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_HOST, "fe80::1%eth0");

    decompose_ok(&c, "coap://192.0.2.1:5683/");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_HOST, "192.0.2.1");
    assert_int_equal(c.msg.nopts, 1);

    decompose_ok(&c, "coap://Sensor-A.Example.COM");
    ASSERT_OPTS(&c.msg, TETHER_COAP_OPT_URI_HOST, "sensor-a.example.com");

    decompose_bad("coap://[]/");
    decompose_bad("coap://[::1/");
    decompose_bad("coap://[::1]x/");
    decompose_bad("coap://[::1]:x");
    decompose_bad("coap://[::1 ]/");
    decompose_bad("coap:///a");
    decompose_bad("coap://");
    decompose_bad("coap://:5683/a");
    decompose_bad("coap://user@h/");
    decompose_bad("coap://h h/");
}

static void test_rejects(void **state)
{
    (void)state;
    /* relative references */
    decompose_bad("");
    decompose_bad("/a/b");
    decompose_bad("//h/a");
    decompose_bad("a/b");
    /* other schemes, or no authority */
    decompose_bad("http://h/");
    decompose_bad("coap+tcp://h/");
    decompose_bad("coapx://h/");
    decompose_bad("coap");
    decompose_bad("coap:");
    decompose_bad("coap:/h/a");
    decompose_bad("coap:h/a");
    /* fragments, even empty ones */
    decompose_bad("coap://h/a#frag");
    decompose_bad("coap://h#");
    decompose_bad("coap://h/a?b#c");
    /* characters outside their component */
    decompose_bad("coap://h/a b");
    decompose_bad("coap://h/a\"b");
    decompose_bad("coap://h/<a>");
    decompose_bad("coap://h/a?b c");
    decompose_bad("coap://h/a[1]");
    decompose_bad("coap://h/\xc3\xa9");

    /* an embedded NUL is a character too */
    uri_case_t c;
    tether_coap_msg_init(&c.msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    assert_int_equal(
        tether_coap_uri_to_opts("coap://h/a\0b", 12, &c.msg, c.scratch, sizeof(c.scratch), NULL),
        TETHER_EPROTO);
}

static void test_value_length_limit(void **state)
{
    (void)state;
    char uri[400];
    uri_case_t c;
    strcpy(uri, "coap://h/");
    memset(uri + 9, 'a', 255);
    uri[9 + 255] = '\0';
    decompose_ok(&c, uri);
    assert_int_equal(tether_coap_msg_find_opt(&c.msg, TETHER_COAP_OPT_URI_PATH)->len, 255);
    strcat(uri, "a");
    decompose_bad(uri);
    /* the limit is on the decoded value */
    strcpy(uri, "coap://h/");
    for (int i = 0; i < 100; i++) {
        strcat(uri, "%41");
    }
    decompose_ok(&c, uri);
    assert_int_equal(tether_coap_msg_find_opt(&c.msg, TETHER_COAP_OPT_URI_PATH)->len, 100);
}

static void test_appends_sorted(void **state)
{
    (void)state;
    tether_coap_msg_t msg;
    uint8_t scratch[64];
    uint8_t cf = 40;
    uint8_t etag[2] = { 1, 2 };
    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 7);
    assert_int_equal(tether_coap_msg_add_opt(&msg, TETHER_COAP_OPT_ACCEPT, &cf, 1), TETHER_OK);
    assert_int_equal(tether_coap_msg_add_opt(&msg, TETHER_COAP_OPT_ETAG, etag, 2), TETHER_OK);
    const char *uri = "coap://h:1/a/b?q";
    assert_int_equal(
        tether_coap_uri_to_opts(uri, strlen(uri), &msg, scratch, sizeof(scratch), NULL), TETHER_OK);
    assert_int_equal(msg.nopts, 7);
    assert_sorted(&msg);
    ASSERT_OPTS(&msg, TETHER_COAP_OPT_URI_PATH, "a", "b");
    assert_int_equal(count_opts(&msg, TETHER_COAP_OPT_ACCEPT), 1);
}

static void test_no_space(void **state)
{
    (void)state;
    tether_coap_msg_t msg;
    uint8_t scratch[64];
    const char *uri = "coap://host/abc/def?ghi";
    bool secure = true;

    /* scratch too small: "host" + "abc" + "def" + "ghi" = 13 bytes */
    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    assert_int_equal(tether_coap_uri_to_opts(uri, strlen(uri), &msg, scratch, 12, &secure),
                     TETHER_ENOSPC);
    assert_int_equal(msg.nopts, 0);
    assert_true(secure); /* untouched on failure */
    assert_int_equal(tether_coap_uri_to_opts(uri, strlen(uri), &msg, scratch, 13, &secure),
                     TETHER_OK);
    assert_int_equal(msg.nopts, 4);
    assert_false(secure);
    assert_int_equal(tether_coap_uri_to_opts(uri, strlen(uri), &msg, NULL, 0, NULL), TETHER_ENOSPC);

    /* option table: room for 3 of the 4 options leaves the message as it was */
    uint8_t one = 1;
    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    for (int i = 0; i < TETHER_COAP_MAX_OPTS - 3; i++) {
        assert_int_equal(tether_coap_msg_add_opt(&msg, TETHER_COAP_OPT_ETAG, &one, 1), TETHER_OK);
    }
    assert_int_equal(
        tether_coap_uri_to_opts(uri, strlen(uri), &msg, scratch, sizeof(scratch), NULL),
        TETHER_ENOSPC);
    assert_int_equal(msg.nopts, TETHER_COAP_MAX_OPTS - 3);
    assert_int_equal(count_opts(&msg, TETHER_COAP_OPT_URI_HOST), 0);
    assert_int_equal(tether_coap_msg_del_opt(&msg, TETHER_COAP_OPT_ETAG), TETHER_COAP_MAX_OPTS - 3);
    assert_int_equal(msg.nopts, 0);

    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    assert_int_equal(tether_coap_uri_to_opts(NULL, 3, &msg, scratch, sizeof(scratch), NULL),
                     TETHER_EINVAL);
    assert_int_equal(
        tether_coap_uri_to_opts(uri, strlen(uri), NULL, scratch, sizeof(scratch), NULL),
        TETHER_EINVAL);
}

/* ---- composition -------------------------------------------------------- */

static void compose_expect(const tether_coap_msg_t *msg, const char *want)
{
    char buf[256];
    size_t len = 999;
    assert_int_equal(tether_coap_opts_to_path(msg, buf, sizeof(buf), &len), TETHER_OK);
    assert_string_equal(buf, want);
    assert_int_equal(len, strlen(want));
}

static void add_str(tether_coap_msg_t *msg, uint16_t num, const char *s)
{
    assert_int_equal(tether_coap_msg_add_opt(msg, num, s, strlen(s)), TETHER_OK);
}

static void test_compose_basic(void **state)
{
    (void)state;
    tether_coap_msg_t msg;
    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    compose_expect(&msg, "/");

    add_str(&msg, TETHER_COAP_OPT_URI_HOST, "ignored.example");
    add_str(&msg, TETHER_COAP_OPT_URI_QUERY, "x=1");
    add_str(&msg, TETHER_COAP_OPT_URI_PATH, "sensors");
    add_str(&msg, TETHER_COAP_OPT_URI_PATH, "temp");
    add_str(&msg, TETHER_COAP_OPT_URI_QUERY, "y=2");
    compose_expect(&msg, "/sensors/temp?x=1&y=2");

    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    add_str(&msg, TETHER_COAP_OPT_URI_QUERY, "q");
    compose_expect(&msg, "/?q");

    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    add_str(&msg, TETHER_COAP_OPT_URI_PATH, "");
    compose_expect(&msg, "/");
    add_str(&msg, TETHER_COAP_OPT_URI_PATH, "");
    compose_expect(&msg, "//");
    add_str(&msg, TETHER_COAP_OPT_URI_QUERY, "");
    compose_expect(&msg, "//?");
}

static void test_compose_encoding(void **state)
{
    (void)state;
    tether_coap_msg_t msg;
    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    add_str(&msg, TETHER_COAP_OPT_URI_PATH, "a/b c%");
    add_str(&msg, TETHER_COAP_OPT_URI_PATH, "k&v=1:x@y!$'()*+,;-._~");
    add_str(&msg, TETHER_COAP_OPT_URI_PATH, "?#[]\"\xc3\xa9");
    add_str(&msg, TETHER_COAP_OPT_URI_QUERY, "a&b=c");
    add_str(&msg, TETHER_COAP_OPT_URI_QUERY, "p=/x?y:z@w");
    add_str(&msg, TETHER_COAP_OPT_URI_QUERY, "s p#");
    compose_expect(&msg, "/a%2Fb%20c%25/k&v=1:x@y!$'()*+,;-._~/%3F%23%5B%5D%22%C3%A9"
                         "?a%26b=c&p=/x?y:z@w&s%20p%23");

    const uint8_t bin[] = { 0x00, 0x7f, 0xff };
    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    assert_int_equal(tether_coap_msg_add_opt(&msg, TETHER_COAP_OPT_URI_PATH, bin, 3), TETHER_OK);
    compose_expect(&msg, "/%00%7F%FF");
}

static void test_compose_space(void **state)
{
    (void)state;
    tether_coap_msg_t msg;
    char buf[16];
    size_t len = 0;
    tether_coap_msg_init(&msg, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    add_str(&msg, TETHER_COAP_OPT_URI_PATH, "abc");
    add_str(&msg, TETHER_COAP_OPT_URI_QUERY, "d");
    /* "/abc?d" is 6 bytes + NUL */
    assert_int_equal(tether_coap_opts_to_path(&msg, buf, 7, &len), TETHER_OK);
    assert_string_equal(buf, "/abc?d");
    assert_int_equal(tether_coap_opts_to_path(&msg, buf, 6, &len), TETHER_ENOSPC);
    assert_int_equal(len, 6);
    assert_int_equal(tether_coap_opts_to_path(&msg, NULL, 0, &len), TETHER_ENOSPC);
    assert_int_equal(len, 6);
    assert_int_equal(tether_coap_opts_to_path(NULL, buf, sizeof(buf), &len), TETHER_EINVAL);
    assert_int_equal(tether_coap_opts_to_path(&msg, buf, sizeof(buf), NULL), TETHER_EINVAL);
}

/* URI -> options -> path, and path back through a URI -> same options. */
static void test_round_trips(void **state)
{
    (void)state;
    static const struct {
        const char *uri;
        const char *path;
    } cases[] = {
        { "coap://h", "/" },
        { "coap://h/", "/" },
        { "coap://h/a/", "/a/" },
        { "coap://h//", "//" },
        { "coap://h/~sensors/temp.xml", "/~sensors/temp.xml" },
        { "coap://h/%7esensors/temp.xml", "/~sensors/temp.xml" },
        { "coap://h/a%2fb/c%20d?x%26y=1&z", "/a%2Fb/c%20d?x%26y=1&z" },
        { "coap://h/p?a&&b", "/p?a&&b" },
        { "coap://h/?", "/?" },
        { "coap://h/k&v=1:x@y?p=/x?y:z@w", "/k&v=1:x@y?p=/x?y:z@w" },
        { "coap://h/%C3%A9%00", "/%C3%A9%00" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uri_case_t a, b;
        char path[256];
        char uri2[300];
        size_t len = 0;
        decompose_ok(&a, cases[i].uri);
        assert_int_equal(tether_coap_opts_to_path(&a.msg, path, sizeof(path), &len), TETHER_OK);
        assert_string_equal(path, cases[i].path);
        /* "/" must come back as no Uri-Path, which it does */
        strcpy(uri2, "coap://h");
        strcat(uri2, path);
        decompose_ok(&b, uri2);
        if (!same_opts(&a.msg, &b.msg)) {
            print_error("round trip of '%s' via '%s' changed the options\n", cases[i].uri, uri2);
            fail();
        }
    }
}

/* ---- path matching ------------------------------------------------------ */

static void test_path_equals(void **state)
{
    (void)state;
    uri_case_t c;
    decompose_ok(&c, "coap://h/.well-known/core?rt=x");
    assert_true(tether_coap_path_equals(&c.msg, ".well-known/core"));
    assert_true(tether_coap_path_equals(&c.msg, "/.well-known/core"));
    assert_false(tether_coap_path_equals(&c.msg, ".well-known"));
    assert_false(tether_coap_path_equals(&c.msg, ".well-known/core/"));
    assert_false(tether_coap_path_equals(&c.msg, ".well-known/cor"));
    assert_false(tether_coap_path_equals(&c.msg, ".well-known/coreX"));
    assert_false(tether_coap_path_equals(&c.msg, ".well-known/core/x"));
    assert_false(tether_coap_path_equals(&c.msg, "core"));
    assert_false(tether_coap_path_equals(&c.msg, ""));
    assert_false(tether_coap_path_equals(&c.msg, "rt=x"));

    decompose_ok(&c, "coap://h");
    assert_true(tether_coap_path_equals(&c.msg, ""));
    assert_true(tether_coap_path_equals(&c.msg, "/"));
    assert_true(tether_coap_path_equals(&c.msg, NULL));
    assert_false(tether_coap_path_equals(&c.msg, "a"));
    assert_false(tether_coap_path_equals(&c.msg, "//"));

    decompose_ok(&c, "coap://h/a/");
    assert_true(tether_coap_path_equals(&c.msg, "a/"));
    assert_true(tether_coap_path_equals(&c.msg, "/a/"));
    assert_false(tether_coap_path_equals(&c.msg, "a"));

    decompose_ok(&c, "coap://h//");
    assert_true(tether_coap_path_equals(&c.msg, "//"));
    assert_false(tether_coap_path_equals(&c.msg, "/"));

    /* compared as text: no percent-decoding of `path` */
    decompose_ok(&c, "coap://h/a%2Fb");
    assert_true(tether_coap_path_equals(&c.msg, "a/b") == false);
    decompose_ok(&c, "coap://h/%7Ex");
    assert_true(tether_coap_path_equals(&c.msg, "~x"));
    assert_false(tether_coap_path_equals(&c.msg, "%7Ex"));

    assert_false(tether_coap_path_equals(NULL, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7252_equivalence),
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_scheme_and_ports),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_queries),
        cmocka_unit_test(test_percent_decoding),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_value_length_limit),
        cmocka_unit_test(test_appends_sorted),
        cmocka_unit_test(test_no_space),
        cmocka_unit_test(test_compose_basic),
        cmocka_unit_test(test_compose_encoding),
        cmocka_unit_test(test_compose_space),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_path_equals),
    };
    return cmocka_run_group_tests_name("uri", tests, NULL, NULL);
}
