/* Unit tests for lib/util/http.c (HTTP/1.1 request parsing, response heads). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether/http.h"

/* Feeds the whole string; expects one complete request using every byte. */
static void parse_one(tether_http_parser_t *p, const char *wire)
{
    size_t used = 0;
    tether_http_parser_init(p);
    int rc = tether_http_feed(p, wire, strlen(wire), &used);
    if (rc != TETHER_HTTP_REQUEST)
        print_error("feed gave %d (%d %s)\n", rc, p->error_status,
                    p->error_detail ? p->error_detail : "");
    assert_int_equal(rc, TETHER_HTTP_REQUEST);
    assert_int_equal(used, strlen(wire));
}

/* Feeds the whole string; expects error rc with HTTP status `status`. */
static void parse_bad(const char *wire, size_t len, int rc_want, int status)
{
    tether_http_parser_t p;
    size_t used = 0;
    tether_http_parser_init(&p);
    int rc = tether_http_feed(&p, wire, len, &used);
    if (rc != rc_want || p.error_status != status)
        print_error("'%.40s...' gave rc %d status %d (%s)\n", wire, rc, p.error_status,
                    p.error_detail ? p.error_detail : "");
    assert_int_equal(rc, rc_want);
    assert_int_equal(p.error_status, status);
    assert_non_null(p.error_detail);
    /* a dead parser refuses more input */
    assert_int_equal(tether_http_feed(&p, "GET", 3, &used), TETHER_EINVAL);
    tether_http_parser_free(&p);
}

static bool span_is(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

static void test_simple_get(void **state)
{
    (void)state;
    tether_http_parser_t p;
    parse_one(&p, "GET /stats?x=1&y HTTP/1.1\r\nHost: localhost\r\n"
                  "Authorization:   Bearer abc  \r\nX-Empty:\r\nAccept: */*\r\n\r\n");
    const tether_http_request_t *r = &p.req;
    assert_int_equal(r->method, TETHER_HTTP_M_GET);
    assert_string_equal(r->method_name, "GET");
    assert_true(span_is(r->target, r->target_len, "/stats?x=1&y"));
    assert_true(span_is(r->path, r->path_len, "/stats"));
    assert_true(span_is(r->query, r->query_len, "x=1&y"));
    assert_int_equal(r->nheaders, 4);
    assert_int_equal(r->version_minor, 1);
    assert_true(r->keep_alive);
    assert_false(r->expect_continue);
    assert_int_equal(r->body_len, 0);
    assert_int_equal(r->body[0], 0);
    size_t vl;
    const char *v = tether_http_header(r, "AUTHORIZATION", &vl);
    assert_non_null(v);
    assert_true(span_is(v, vl, "Bearer abc"));
    v = tether_http_header(r, "x-empty", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 0);
    assert_null(tether_http_header(r, "Cookie", NULL));
    assert_false(tether_http_in_progress(&p));
    tether_http_parser_free(&p);
}

static void test_no_query_and_absolute_form(void **state)
{
    (void)state;
    tether_http_parser_t p;
    parse_one(&p, "DELETE /devices/dev1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(p.req.method, TETHER_HTTP_M_DELETE);
    assert_null(p.req.query);
    assert_true(span_is(p.req.path, p.req.path_len, "/devices/dev1"));
    tether_http_parser_free(&p);

    parse_one(&p, "GET http://example.org:8080/health?a HTTP/1.1\r\nHost: example.org\r\n\r\n");
    assert_true(span_is(p.req.path, p.req.path_len, "/health"));
    assert_true(span_is(p.req.query, p.req.query_len, "a"));
    tether_http_parser_free(&p);

    parse_one(&p, "PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(p.req.method, TETHER_HTTP_M_OTHER);
    assert_string_equal(p.req.method_name, "PROPFIND");
    tether_http_parser_free(&p);
}

static void test_body_content_length(void **state)
{
    (void)state;
    tether_http_parser_t p;
    parse_one(&p, "PUT /log-level HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                  "Content-Length: 17\r\n\r\n{\"level\":\"debug\"}");
    assert_int_equal(p.req.method, TETHER_HTTP_M_PUT);
    assert_int_equal(p.req.body_len, 17);
    assert_string_equal(p.req.body, "{\"level\":\"debug\"}");
    tether_http_parser_free(&p);
}

static void test_chunked_body_and_trailer(void **state)
{
    (void)state;
    tether_http_parser_t p;
    parse_one(&p, "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nX-Trailer:  t \r\n\r\n");
    assert_int_equal(p.req.body_len, 7);
    assert_string_equal(p.req.body, "abcdefg");
    /* trailer fields are read and dropped */
    assert_null(tether_http_header(&p.req, "x-trailer", NULL));
    assert_int_equal(p.req.nheaders, 2);
    tether_http_parser_free(&p);
}

/* The same bytes fed one at a time give the same request. */
static void test_byte_by_byte(void **state)
{
    (void)state;
    const char *wire = "POST /a/b?q HTTP/1.1\r\nHost: h\r\nX-Long-Name: some value here\r\n"
                       "Content-Length: 5\r\n\r\nhello";
    tether_http_parser_t p;
    tether_http_parser_init(&p);
    size_t len = strlen(wire), used;
    int rc = TETHER_HTTP_NEED_MORE;
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(rc, TETHER_HTTP_NEED_MORE);
        rc = tether_http_feed(&p, wire + i, 1, &used);
        assert_int_equal(used, 1);
        if (i == 0)
            assert_true(tether_http_in_progress(&p));
    }
    assert_int_equal(rc, TETHER_HTTP_REQUEST);
    assert_true(span_is(p.req.path, p.req.path_len, "/a/b"));
    size_t vl;
    const char *v = tether_http_header(&p.req, "x-long-name", &vl);
    assert_non_null(v);
    assert_true(span_is(v, vl, "some value here"));
    assert_string_equal(p.req.body, "hello");
    tether_http_parser_free(&p);
}

/* Two requests in one buffer come out one at a time, in order. */
static void test_pipelined(void **state)
{
    (void)state;
    const char *wire = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"
                       "PUT /two HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
                       "GET /thr";
    tether_http_parser_t p;
    tether_http_parser_init(&p);
    size_t len = strlen(wire), off = 0, used;
    assert_int_equal(tether_http_feed(&p, wire, len, &used), TETHER_HTTP_REQUEST);
    assert_true(span_is(p.req.path, p.req.path_len, "/one"));
    off += used;
    /* feeding again before next() does not lose the request */
    assert_int_equal(tether_http_feed(&p, wire + off, len - off, &used), TETHER_HTTP_REQUEST);
    assert_int_equal(used, 0);
    tether_http_next(&p);
    assert_int_equal(tether_http_feed(&p, wire + off, len - off, &used), TETHER_HTTP_REQUEST);
    assert_true(span_is(p.req.path, p.req.path_len, "/two"));
    assert_string_equal(p.req.body, "hi");
    off += used;
    tether_http_next(&p);
    assert_false(tether_http_in_progress(&p));
    assert_int_equal(tether_http_feed(&p, wire + off, len - off, &used), TETHER_HTTP_NEED_MORE);
    assert_int_equal(off + used, len);
    assert_true(tether_http_in_progress(&p));
    const char *rest = "ee HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(tether_http_feed(&p, rest, strlen(rest), &used), TETHER_HTTP_REQUEST);
    assert_true(span_is(p.req.path, p.req.path_len, "/three"));
    tether_http_parser_free(&p);
}

static void test_keep_alive_rules(void **state)
{
    (void)state;
    tether_http_parser_t p;
    parse_one(&p, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_false(p.req.keep_alive);
    tether_http_parser_free(&p);
    parse_one(&p, "GET / HTTP/1.0\r\n\r\n");
    assert_false(p.req.keep_alive);
    assert_int_equal(p.req.version_minor, 0);
    tether_http_parser_free(&p);
    parse_one(&p, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(p.req.keep_alive);
    tether_http_parser_free(&p);
    /* an upgrade request is answered, then the connection ends */
    parse_one(&p, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    assert_false(p.req.keep_alive);
    tether_http_parser_free(&p);
}

static void test_expect_continue(void **state)
{
    (void)state;
    const char *head = "PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                       "Content-Length: 3\r\n\r\n";
    tether_http_parser_t p;
    tether_http_parser_init(&p);
    size_t used;
    assert_int_equal(tether_http_feed(&p, head, strlen(head), &used), TETHER_HTTP_EXPECT);
    assert_true(used <= strlen(head));
    assert_int_equal(tether_http_feed(&p, head + used, strlen(head) - used, &used),
                     TETHER_HTTP_NEED_MORE);
    assert_int_equal(tether_http_feed(&p, "abc", 3, &used), TETHER_HTTP_REQUEST);
    assert_true(p.req.expect_continue);
    assert_string_equal(p.req.body, "abc");
    tether_http_parser_free(&p);

    /* no body: nothing to wait for */
    parse_one(&p, "GET /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n");
    tether_http_parser_free(&p);

    parse_bad("PUT /x HTTP/1.1\r\nHost: h\r\nExpect: magic\r\nContent-Length: 1\r\n\r\n", 64,
              TETHER_EPROTO, 417);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "get / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost h\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\nHost: h\r\n\r\n",
        "GET / HTTX/1.1\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",                       /* no Host */
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", /* two Hosts */
        "GET * HTTP/1.1\r\nHost: h\r\n\r\n",            /* asterisk-form */
        "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",    /* authority-form */
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET / HTTP/1.1\r\nHost: h\x01\r\n\r\n",
        "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", /* raw 8-bit target */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_bad(bad[i], strlen(bad[i]), TETHER_EPROTO, 400);
    parse_bad("GET / HTTP/1.1\r\nHost: h\0\r\n\r\n", 24, TETHER_EPROTO, 400);
    parse_bad("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 27, TETHER_EPROTO, 505);
}

static void test_limits(void **state)
{
    (void)state;
    size_t cap = 200000;
    char *buf = malloc(cap);
    assert_non_null(buf);

    /* declared body too large: refused at the head, before any body byte */
    int n = snprintf(buf, cap, "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 65537\r\n\r\n");
    parse_bad(buf, (size_t)n, TETHER_ELIMIT, 413);

    /* exactly the limit is fine */
    n = snprintf(buf, cap, "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 65536\r\n\r\n");
    memset(buf + n, 'a', 65536);
    tether_http_parser_t p;
    tether_http_parser_init(&p);
    size_t used;
    assert_int_equal(tether_http_feed(&p, buf, (size_t)n + 65536, &used), TETHER_HTTP_REQUEST);
    assert_int_equal(p.req.body_len, 65536);
    tether_http_next(&p);
    assert_null(p.arena); /* a big arena is released between requests */
    tether_http_parser_free(&p);

    /* chunked body growing past the limit */
    n = snprintf(buf, cap, "PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 20; i++) {
        n += snprintf(buf + n, cap - (size_t)n, "1000\r\n");
        memset(buf + n, 'b', 4096);
        n += 4096;
        n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    }
    parse_bad(buf, (size_t)n, TETHER_ELIMIT, 413);

    /* a head over 64 KiB */
    n = snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 40; i++)
        n += snprintf(buf + n, cap - (size_t)n, "X-Pad-%d: %02000d\r\n", i, 0);
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    parse_bad(buf, (size_t)n, TETHER_ELIMIT, 413);

    /* too many fields */
    n = snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < TETHER_HTTP_MAX_HEADERS; i++)
        n += snprintf(buf + n, cap - (size_t)n, "X-%d: v\r\n", i);
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    parse_bad(buf, (size_t)n, TETHER_ELIMIT, 413);

    /* a long request-target */
    n = snprintf(buf, cap, "GET /");
    memset(buf + n, 'u', 9000);
    n += 9000;
    n += snprintf(buf + n, cap - (size_t)n, " HTTP/1.1\r\nHost: h\r\n\r\n");
    parse_bad(buf, (size_t)n, TETHER_ELIMIT, 414);
    free(buf);
}

static void test_format_head(void **state)
{
    (void)state;
    char buf[256];
    size_t n;
    assert_int_equal(
        tether_http_format_head(buf, sizeof buf, 200, "application/json", 15, false, NULL, &n), 0);
    assert_string_equal(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 15\r\n\r\n");
    assert_int_equal(n, strlen(buf));
    assert_int_equal(
        tether_http_format_head(buf, sizeof buf, 405, NULL, 0, true, "Allow: GET, PUT\r\n", &n), 0);
    assert_string_equal(buf, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n"
                             "Connection: close\r\nAllow: GET, PUT\r\n\r\n");
    assert_int_equal(tether_http_format_head(buf, 20, 200, NULL, 0, false, NULL, &n),
                     TETHER_ENOSPC);
    assert_int_equal(tether_http_format_head(buf, sizeof buf, 99, NULL, 0, false, NULL, &n),
                     TETHER_EINVAL);
    assert_string_equal(tether_http_reason(413), "Payload Too Large");
    assert_string_equal(tether_http_reason(599), "Unknown");
}

/* Random splits of a pipelined stream always yield the same requests. */
static void test_random_splits(void **state)
{
    (void)state;
    const char *wire = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                       "PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
                       "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "2\r\nok\r\n0\r\n\r\n";
    static const char *const paths[] = {"/a", "/b", "/c"};
    static const char *const bodies[] = {"", "xyz", "ok"};
    size_t len = strlen(wire);
    srand(7);
    for (int iter = 0; iter < 2000; iter++) {
        tether_http_parser_t p;
        tether_http_parser_init(&p);
        size_t off = 0, got = 0;
        while (off < len) {
            size_t chunk = 1 + (size_t)rand() % 40;
            if (chunk > len - off)
                chunk = len - off;
            size_t pos = 0;
            while (pos < chunk) {
                size_t used;
                int rc = tether_http_feed(&p, wire + off + pos, chunk - pos, &used);
                assert_true(rc >= 0);
                pos += used;
                if (rc == TETHER_HTTP_REQUEST) {
                    assert_true(got < 3);
                    assert_true(span_is(p.req.path, p.req.path_len, paths[got]));
                    assert_string_equal(p.req.body, bodies[got]);
                    got++;
                    tether_http_next(&p);
                }
            }
            off += chunk;
        }
        assert_int_equal(got, 3);
        tether_http_parser_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_no_query_and_absolute_form),
        cmocka_unit_test(test_body_content_length),
        cmocka_unit_test(test_chunked_body_and_trailer),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_keep_alive_rules),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_format_head),
        cmocka_unit_test(test_random_splits),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
