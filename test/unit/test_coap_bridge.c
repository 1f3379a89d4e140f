/* Unit tests for server/admin/coap_bridge.c, the HTTP-to-CoAP part (RFC
 * 8075): status codes (§7), Content-Format <-> Content-Type (§6), and an
 * HTTP request mapped to CoAP and a CoAP answer mapped back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "../../server/admin/coap_bridge.h"
#include <stdlib.h>

static void test_status(void **state)
{
    (void)state;
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_CONTENT, true, false), 200);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_CREATED, false, false), 201);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_CHANGED, false, false), 204);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_CHANGED, true, false), 200);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_DELETED, false, false), 204);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_VALID, false, true), 304);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_VALID, false, false), 200);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_UNAUTHORIZED, false, false), 403);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_FORBIDDEN, false, false), 403);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_NOT_FOUND, false, false), 404);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_METHOD_NOT_ALLOWED, false, false), 400);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_PRECONDITION_FAILED, false, false), 412);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_REQUEST_TOO_LARGE, false, false), 413);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_UNSUPPORTED_FORMAT, false, false), 415);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_BAD_GATEWAY, false, false), 502);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_SERVICE_UNAVAILABLE, false, false), 503);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_GATEWAY_TIMEOUT, false, false), 504);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_PROXYING_NOT_SUPPORTED, false, false),
                     502);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_CODE(4, 20), false, false), 400);
    assert_int_equal(tetherd_coap_http_status(TETHER_COAP_CODE(5, 9), false, false), 500);
}

static void test_content_format(void **state)
{
    (void)state;
    char b[96];
    uint16_t cf = 999;
    tetherd_cf_to_ctype(0, b, sizeof b);
    assert_string_equal(b, "text/plain; charset=utf-8");
    tetherd_cf_to_ctype(50, b, sizeof b);
    assert_string_equal(b, "application/json");
    tetherd_cf_to_ctype(65000, b, sizeof b);
    assert_string_equal(b, "application/coap-payload; cf=65000");
#define CT(s) tetherd_ctype_to_cf(s, strlen(s), &cf)
    assert_int_equal(CT("text/plain"), 0);
    assert_int_equal(cf, 0);
    assert_int_equal(CT(" Text/Plain ; charset=\"UTF-8\""), 0);
    assert_int_equal(cf, 0);
    assert_int_equal(CT("text/plain; charset=iso-8859-1"), TETHER_ENOTFOUND);
    assert_int_equal(CT("application/cbor"), 0);
    assert_int_equal(cf, 60);
    assert_int_equal(CT("application/coap-payload; cf=11050"), 0);
    assert_int_equal(cf, 11050);
    assert_int_equal(CT("application/coap-payload; cf=70000"), TETHER_ENOTFOUND);
    assert_int_equal(CT("application/coap-payload"), TETHER_ENOTFOUND);
    assert_int_equal(CT("application/jsonx"), TETHER_ENOTFOUND);
    assert_int_equal(CT(""), TETHER_ENOTFOUND);
#undef CT
}

/* A request with the fields the mapping reads. */
static tether_http_request_t http_req(tether_http_method_t m, const char *name, const char *path,
                                      const char *query)
{
    tether_http_request_t r;
    memset(&r, 0, sizeof r);
    r.method = m;
    r.method_name = name;
    r.path = path;
    r.path_len = strlen(path);
    r.query = query;
    r.query_len = query ? strlen(query) : 0;
    r.body = "";
    return r;
}

static void add_header(tether_http_request_t *r, const char *n, const char *v)
{
    r->headers[r->nheaders++] = (tether_http_header_t){n, strlen(n), v, strlen(v)};
}

static void test_request(void **state)
{
    (void)state;
    static tetherd_http_coap_req_t q;
    static tether_coap_msg_t m;
    char err[256];
    tether_coap_perr_t perr;
    static const char body[] = {0, 1, (char)0xff, 'x'};
    tether_http_request_t r =
        http_req(TETHER_HTTP_M_PUT, "PUT", "/coap/dev%377/a/%2Fb/", "x=1&&y=%20");
    r.body = body;
    r.body_len = sizeof body;
    add_header(&r, "Content-Type", "application/octet-stream");
    add_header(&r, "Accept", "text/html, application/json;q=0, application/cbor");
    add_header(&r, "If-Match", "\"0a0b\", \"not hex\"");
    assert_int_equal(tetherd_coap_req_from_http(&r, 0x0102030405060708ull, &q, err, sizeof err), 0);
    assert_string_equal(q.device, "dev77");
    assert_false(q.stream);
    assert_int_equal(tether_coap_parse(&m, q.buf, q.len, &perr), 0);
    assert_int_equal(m.code, TETHER_COAP_PUT);
    assert_int_equal(m.type, TETHER_COAP_CON);
    assert_int_equal(m.tkl, 8);
    assert_int_equal(m.token[7], 8);
    const char *want[][2] = {{"1", "\x0a\x0b"}, {"3", "dev77"}, {"11", "a"},
                             {"11", "/b"},      {"15", "x=1"},  {"15", "y= "}};
    size_t k = 0;
    uint32_t v;
    for (size_t i = 0; i < m.nopts; i++) {
        if (m.opts[i].num == 12 || m.opts[i].num == 17)
            continue;
        assert_true(k < 6);
        assert_int_equal(m.opts[i].num, atoi(want[k][0]));
        assert_int_equal(m.opts[i].len, strlen(want[k][1]));
        assert_memory_equal(m.opts[i].val, want[k][1], m.opts[i].len);
        k++;
    }
    assert_int_equal(k, 6);
    assert_int_equal(tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_CONTENT_FORMAT, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_ACCEPT, &v), 0);
    assert_int_equal(v, 60); /* json was refused (q=0), html has no number */
    assert_int_equal(m.payload_len, sizeof body);
    assert_memory_equal(m.payload, body, sizeof body);

    /* an event stream: GET + Observe 0; If-None-Match tags are ETags */
    r = http_req(TETHER_HTTP_M_GET, "GET", "/coap/d/temp", NULL);
    add_header(&r, "Accept", "text/event-stream");
    add_header(&r, "If-None-Match", "W/\"7331\"");
    assert_int_equal(tetherd_coap_req_from_http(&r, 1, &q, err, sizeof err), 0);
    assert_true(q.stream);
    assert_true(q.validating);
    assert_int_equal(tether_coap_parse(&m, q.buf, q.len, &perr), 0);
    assert_int_equal(tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_OBSERVE, &v), 0);
    assert_int_equal(v, 0);
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_ETAG);
    assert_non_null(et);
    assert_memory_equal(et->val, "s1", 2);
    assert_null(tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_ACCEPT));

    /* If-None-Match: * on a PUT is CoAP's empty If-None-Match */
    r = http_req(TETHER_HTTP_M_PUT, "PUT", "/coap/d/x", NULL);
    add_header(&r, "If-None-Match", "*");
    assert_int_equal(tetherd_coap_req_from_http(&r, 1, &q, err, sizeof err), 0);
    assert_int_equal(tether_coap_parse(&m, q.buf, q.len, &perr), 0);
    et = tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_IF_NONE_MATCH);
    assert_non_null(et);
    assert_int_equal(et->len, 0);

    /* errors */
    r = http_req(TETHER_HTTP_M_POST, "POST", "/coap/d/x", NULL);
    r.body = "x";
    r.body_len = 1;
    add_header(&r, "Content-Type", "image/x-unknown");
    assert_int_equal(tetherd_coap_req_from_http(&r, 1, &q, err, sizeof err), TETHER_EINVAL);
    assert_int_equal(q.status, 415);
    r = http_req(TETHER_HTTP_M_GET, "GET", "/coap/d%00/x", NULL);
    assert_int_equal(tetherd_coap_req_from_http(&r, 1, &q, err, sizeof err), TETHER_EINVAL);
    assert_int_equal(q.status, 400);
    static char big[2000];
    memset(big, 'a', sizeof big);
    r = http_req(TETHER_HTTP_M_POST, "POST", "/coap/d/x", NULL);
    r.body = big;
    r.body_len = sizeof big;
    assert_int_equal(tetherd_coap_req_from_http(&r, 1, &q, err, sizeof err), TETHER_EINVAL);
    assert_int_equal(q.status, 413);
    r = http_req(TETHER_HTTP_M_OPTIONS, "OPTIONS", "/coap/d/x", NULL);
    assert_int_equal(tetherd_coap_req_from_http(&r, 1, &q, err, sizeof err), TETHER_EINVAL);
}

static void test_response(void **state)
{
    (void)state;
    static tether_coap_msg_t m;
    uint8_t buf[256], u[4], u2[4];
    size_t len;
    tetherd_http_coap_resp_t h;
    tether_coap_msg_init(&m, TETHER_COAP_ACK, TETHER_COAP_CREATED, 1);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_ETAG, "\x01\xab", 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_LOCATION_PATH, "rd", 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_LOCATION_PATH, "a b", 3);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_CONTENT_FORMAT, u, tether_coap_uint_encode(50, u));
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_MAX_AGE, u2, tether_coap_uint_encode(30, u2));
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_LOCATION_QUERY, "k=v&w", 5);
    m.payload = (const uint8_t *)"{}";
    m.payload_len = 2;
    assert_int_equal(tether_coap_encode(&m, buf, sizeof buf, &len), 0);
    assert_int_equal(tetherd_coap_resp_to_http(buf, len, "dev 1", false, &h), 0);
    assert_int_equal(h.status, 201);
    assert_string_equal(h.ctype, "application/json");
    assert_non_null(strstr(h.headers, "ETag: \"01ab\"\r\n"));
    assert_non_null(strstr(h.headers, "Cache-Control: max-age=30\r\n"));
    assert_non_null(strstr(h.headers, "Location: /coap/dev%201/rd/a%20b?k=v%26w\r\n"));
    assert_int_equal(h.payload_len, 2);

    tether_coap_msg_init(&m, TETHER_COAP_NON, TETHER_COAP_SERVICE_UNAVAILABLE, 1);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_MAX_AGE, u, tether_coap_uint_encode(7, u));
    assert_int_equal(tether_coap_encode(&m, buf, sizeof buf, &len), 0);
    assert_int_equal(tetherd_coap_resp_to_http(buf, len, "d", false, &h), 0);
    assert_int_equal(h.status, 503);
    assert_string_equal(h.headers, "Retry-After: 7\r\n");
    assert_string_equal(h.ctype, "");
    buf[0] = 0x80; /* version 2 */
    assert_int_equal(tetherd_coap_resp_to_http(buf, len, "d", false, &h), TETHER_EPROTO);
}

/* The request for a later block: the same request, a new MID, one Block2. */
static void test_next_block(void **state)
{
    (void)state;
    static tether_coap_msg_t m;
    uint8_t buf[256], out[256], bv[3];
    size_t len, ol, bl;
    tether_coap_perr_t perr;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, 1);
    tether_coap_msg_set_token(&m, (const uint8_t *)"tok", 3);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, "d", 1);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, "big", 3);
    tether_coap_block_t b = {.num = 0, .szx = 6};
    assert_int_equal(tether_coap_block_encode(&b, bv, &bl), 0);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_BLOCK2, bv, bl);
    assert_int_equal(tether_coap_encode(&m, buf, sizeof buf, &len), 0);
    assert_int_equal(tetherd_coap_req_block(buf, len, 77, 3, 4, out, sizeof out, &ol), 0);
    assert_int_equal(tether_coap_parse(&m, out, ol, &perr), 0);
    assert_int_equal(m.mid, 77);
    assert_memory_equal(m.token, "tok", 3);
    size_t n2 = 0;
    for (size_t i = 0; i < m.nopts; i++)
        n2 += m.opts[i].num == TETHER_COAP_OPT_BLOCK2;
    assert_int_equal(n2, 1);
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_BLOCK2);
    assert_int_equal(tether_coap_block_decode(o->val, o->len, &b), 0);
    assert_int_equal(b.num, 3);
    assert_int_equal(b.szx, 4);
    assert_false(b.more);
    assert_non_null(tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_URI_PATH));
    assert_int_equal(tetherd_coap_req_block(buf, 2, 77, 3, 4, out, sizeof out, &ol), TETHER_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_content_format),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_next_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
