/* Unit tests for lib/proxy/cache.c: keys, freshness and Max-Age, ETag
 * revalidation, invalidation, the byte budget, with a stepped clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/cache.h"

#define T0 ((tether_time_t)5000000)

typedef struct {
    tether_cache_t *c;
    uint8_t scratch[8][4]; /* uint option values of the messages built */
    int nscratch;
} fx_t;

static int setup_budget(void **state, uint64_t bytes)
{
    fx_t *f = calloc(1, sizeof *f);
    tether_cache_conf_t conf = {.max_bytes = bytes, .seed = 42};
    assert_int_equal(tether_cache_create(&conf, &f->c), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_budget(state, 1u << 20);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tether_cache_destroy(f->c);
    free(f);
    return 0;
}

static void add_str(tether_coap_msg_t *m, uint16_t num, const char *v)
{
    assert_int_equal(tether_coap_msg_add_opt(m, num, v, strlen(v)), 0);
}

static void add_uint(fx_t *f, tether_coap_msg_t *m, uint16_t num, uint32_t v)
{
    uint8_t *b = f->scratch[f->nscratch++ % 8];
    size_t n = tether_coap_uint_encode(v, b);
    assert_int_equal(tether_coap_msg_add_opt(m, num, b, n), 0);
}

/* A request for "a/b"-style `path` (segments split on '/'), optional query. */
static void request(tether_coap_msg_t *m, uint8_t code, const char *path, const char *query)
{
    static char segs[256][32]; /* option values outlive the call */
    static unsigned next;
    tether_coap_msg_init(m, TETHER_COAP_CON, code, 1);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *save, *s = strtok_r(tmp, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        char *seg = segs[next++ % 256];
        snprintf(seg, sizeof segs[0], "%s", s);
        add_str(m, TETHER_COAP_OPT_URI_PATH, seg);
    }
    if (query)
        add_str(m, TETHER_COAP_OPT_URI_QUERY, query);
}

/* A 2.05 text response with `payload`; max_age < 0: no Max-Age option. */
static void content(fx_t *f, tether_coap_msg_t *r, const char *payload, long max_age,
                    const char *etag)
{
    tether_coap_msg_init(r, TETHER_COAP_ACK, TETHER_COAP_CONTENT, 7);
    add_uint(f, r, TETHER_COAP_OPT_CONTENT_FORMAT, 0);
    if (max_age >= 0)
        add_uint(f, r, TETHER_COAP_OPT_MAX_AGE, (uint32_t)max_age);
    if (etag)
        add_str(r, TETHER_COAP_OPT_ETAG, etag);
    r->payload = (const uint8_t *)payload;
    r->payload_len = strlen(payload);
}

static void key_of(tether_cache_key_t *k, const char *dev, const tether_coap_msg_t *req)
{
    assert_int_equal(tether_cache_key(k, dev, req), 0);
}

static tether_cache_state_t lookup(fx_t *f, const char *dev, const tether_coap_msg_t *req,
                                   tether_time_t now, tether_cache_entry_t **e)
{
    tether_cache_key_t k;
    key_of(&k, dev, req);
    *e = NULL;
    return tether_cache_lookup(f->c, &k, now, e);
}

static tether_cache_entry_t *store(fx_t *f, const char *dev, const tether_coap_msg_t *req,
                                   const tether_coap_msg_t *resp, tether_time_t now)
{
    tether_cache_key_t k;
    key_of(&k, dev, req);
    return tether_cache_store(f->c, &k, resp, now);
}

/* Serves `e` at `now` as a NON with token "tk" and parses it into *m
 * (pointing into buf). */
static void serve(const tether_cache_entry_t *e, bool valid_only, tether_time_t now, uint8_t *buf,
                  size_t cap, tether_coap_msg_t *m)
{
    size_t len;
    tether_coap_perr_t perr;
    assert_int_equal(tether_cache_encode(e, TETHER_COAP_NON, 0x1234, (const uint8_t *)"tk", 2,
                                         valid_only, now, buf, cap, &len),
                     0);
    assert_int_equal(tether_coap_parse(m, buf, len, &perr), 0);
    assert_int_equal(m->type, TETHER_COAP_NON);
    assert_int_equal(m->mid, 0x1234);
    assert_int_equal(m->tkl, 2);
    assert_memory_equal(m->token, "tk", 2);
}

static uint32_t max_age_of(const tether_coap_msg_t *m)
{
    uint32_t v = 0xffffffff;
    assert_int_equal(tether_coap_msg_get_uint(m, TETHER_COAP_OPT_MAX_AGE, &v), 0);
    return v;
}

static void test_fresh_hit_and_max_age_decrement(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t req, resp, m;
    tether_cache_entry_t *e;
    uint8_t buf[256];
    request(&req, TETHER_COAP_GET, "sensors/temp", NULL);
    assert_int_equal(lookup(f, "dev1", &req, T0, &e), TETHER_CACHE_MISS);
    content(f, &resp, "21.5", 10, NULL);
    add_str(&resp, TETHER_COAP_OPT_LOCATION_QUERY, "q"); /* an option after Max-Age */
    assert_non_null(store(f, "dev1", &req, &resp, T0));
    assert_int_equal(tether_cache_stats(f->c)->entries, 1);

    assert_int_equal(lookup(f, "dev1", &req, T0, &e), TETHER_CACHE_FRESH);
    serve(e, false, T0, buf, sizeof buf, &m);
    assert_int_equal(m.code, TETHER_COAP_CONTENT);
    assert_int_equal(max_age_of(&m), 10);
    uint32_t cf = 99;
    assert_int_equal(tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_CONTENT_FORMAT, &cf), 0);
    assert_int_equal(cf, 0);
    const tether_coap_opt_t *lq = tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_LOCATION_QUERY);
    assert_non_null(lq);
    assert_memory_equal(lq->val, "q", 1);
    assert_int_equal(m.payload_len, 4);
    assert_memory_equal(m.payload, "21.5", 4);

    /* 3.5 s later the served Max-Age is what is left, in whole seconds */
    assert_int_equal(lookup(f, "dev1", &req, T0 + 3500, &e), TETHER_CACHE_FRESH);
    serve(e, false, T0 + 3500, buf, sizeof buf, &m);
    assert_int_equal(max_age_of(&m), 6);
    assert_int_equal(m.payload_len, 4);
    /* another device, method or path is another entry */
    assert_int_equal(lookup(f, "dev2", &req, T0, &e), TETHER_CACHE_MISS);
    tether_coap_msg_t other;
    request(&other, TETHER_COAP_FETCH, "sensors/temp", NULL);
    assert_int_equal(lookup(f, "dev1", &other, T0, &e), TETHER_CACHE_MISS);
    request(&other, TETHER_COAP_GET, "sensors", "temp");
    assert_int_equal(lookup(f, "dev1", &other, T0, &e), TETHER_CACHE_MISS);
    request(&other, TETHER_COAP_GET, "sensorstemp", NULL);
    assert_int_equal(lookup(f, "dev1", &other, T0, &e), TETHER_CACHE_MISS);
}

static void test_expiry_and_default_max_age(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t req, resp, m;
    tether_cache_entry_t *e;
    uint8_t buf[256];
    request(&req, TETHER_COAP_GET, "temp", NULL);
    content(f, &resp, "1", 2, NULL);
    assert_non_null(store(f, "dev1", &req, &resp, T0));
    assert_int_equal(lookup(f, "dev1", &req, T0 + 1999, &e), TETHER_CACHE_FRESH);
    serve(e, false, T0 + 1999, buf, sizeof buf, &m);
    assert_int_equal(max_age_of(&m), 0); /* under a second left */
    /* expired without an ETag: dropped */
    assert_int_equal(lookup(f, "dev1", &req, T0 + 2000, &e), TETHER_CACHE_MISS);
    assert_int_equal(tether_cache_stats(f->c)->entries, 0);
    assert_int_equal(tether_cache_stats(f->c)->bytes, 0);
    /* no Max-Age: 60 s (RFC 7252 §5.10.5) */
    content(f, &resp, "2", -1, NULL);
    assert_non_null(store(f, "dev1", &req, &resp, T0));
    assert_int_equal(lookup(f, "dev1", &req, T0 + 59999, &e), TETHER_CACHE_FRESH);
    serve(e, false, T0, buf, sizeof buf, &m);
    assert_int_equal(max_age_of(&m), 60);
    assert_int_equal(lookup(f, "dev1", &req, T0 + 60000, &e), TETHER_CACHE_MISS);
}

static void test_max_age_zero_and_uncacheable(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t req, resp;
    tether_cache_entry_t *e;
    request(&req, TETHER_COAP_GET, "temp", NULL);
    content(f, &resp, "1", 30, NULL);
    assert_non_null(store(f, "dev1", &req, &resp, T0));
    /* Max-Age 0: not stored, and the older answer goes too */
    content(f, &resp, "2", 0, NULL);
    assert_null(store(f, "dev1", &req, &resp, T0 + 10));
    assert_int_equal(lookup(f, "dev1", &req, T0 + 20, &e), TETHER_CACHE_MISS);
    assert_int_equal(tether_cache_stats(f->c)->entries, 0);
    /* 2.04 is not cacheable; 4.04 only with an explicit Max-Age */
    content(f, &resp, "x", 30, NULL);
    resp.code = TETHER_COAP_CHANGED;
    assert_null(store(f, "dev1", &req, &resp, T0));
    content(f, &resp, "", -1, NULL);
    resp.code = TETHER_COAP_NOT_FOUND;
    assert_null(store(f, "dev1", &req, &resp, T0));
    content(f, &resp, "", 5, NULL);
    resp.code = TETHER_COAP_NOT_FOUND;
    assert_non_null(store(f, "dev1", &req, &resp, T0));
    assert_int_equal(lookup(f, "dev1", &req, T0, &e), TETHER_CACHE_FRESH);
    /* block-wise responses are not cached */
    content(f, &resp, "abcdefghijklmnop", 30, NULL);
    uint8_t blk = 0x08; /* num 0, more, szx 0 */
    tether_coap_msg_add_opt(&resp, TETHER_COAP_OPT_BLOCK2, &blk, 1);
    assert_null(store(f, "dev1", &req, &resp, T0));
    /* requests: only GET/FETCH without OSCORE or Block options */
    assert_true(tether_cache_request_cacheable(&req));
    request(&req, TETHER_COAP_FETCH, "temp", NULL);
    assert_true(tether_cache_request_cacheable(&req));
    request(&req, TETHER_COAP_POST, "temp", NULL);
    assert_false(tether_cache_request_cacheable(&req));
    request(&req, TETHER_COAP_GET, "temp", NULL);
    tether_coap_msg_add_opt(&req, TETHER_COAP_OPT_BLOCK2, &blk, 1);
    assert_false(tether_cache_request_cacheable(&req));
    request(&req, TETHER_COAP_GET, "", NULL);
    tether_coap_msg_add_opt(&req, TETHER_COAP_OPT_OSCORE, "\x09", 1);
    assert_false(tether_cache_request_cacheable(&req));
    /* an OSCORE-protected response is not stored either */
    request(&req, TETHER_COAP_GET, "temp", NULL);
    content(f, &resp, "sealed", 30, NULL);
    tether_coap_msg_add_opt(&resp, TETHER_COAP_OPT_OSCORE, "", 0);
    assert_null(store(f, "dev1", &req, &resp, T0));
}

static void test_etag_revalidation(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t req, resp, m;
    tether_cache_entry_t *e;
    tether_cache_key_t k;
    uint8_t buf[256];
    const uint8_t *et;
    request(&req, TETHER_COAP_GET, "temp", NULL);
    content(f, &resp, "20.0", 1, "v1");
    assert_non_null(store(f, "dev1", &req, &resp, T0));
    /* stale with an ETag: kept for revalidation */
    assert_int_equal(lookup(f, "dev1", &req, T0 + 1500, &e), TETHER_CACHE_STALE);
    assert_int_equal(tether_cache_etag(e, &et), 2);
    assert_memory_equal(et, "v1", 2);
    key_of(&k, "dev1", &req);
    /* a 2.03 naming another ETag refreshes nothing */
    tether_coap_msg_init(&m, TETHER_COAP_ACK, TETHER_COAP_VALID, 9);
    add_str(&m, TETHER_COAP_OPT_ETAG, "v2");
    assert_null(tether_cache_validate(f->c, &k, &m, T0 + 1600));
    /* 2.03 with our ETag and Max-Age 30: fresh again for 30 s */
    tether_coap_msg_init(&m, TETHER_COAP_ACK, TETHER_COAP_VALID, 10);
    add_str(&m, TETHER_COAP_OPT_ETAG, "v1");
    add_uint(f, &m, TETHER_COAP_OPT_MAX_AGE, 30);
    assert_ptr_equal(tether_cache_validate(f->c, &k, &m, T0 + 1600), e);
    assert_int_equal(tether_cache_stats(f->c)->refreshed, 1);
    assert_int_equal(lookup(f, "dev1", &req, T0 + 2600, &e), TETHER_CACHE_FRESH);
    serve(e, false, T0 + 2600, buf, sizeof buf, &m);
    assert_int_equal(m.code, TETHER_COAP_CONTENT);
    assert_int_equal(max_age_of(&m), 29);
    assert_int_equal(m.payload_len, 4);
    assert_memory_equal(m.payload, "20.0", 4);
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_ETAG);
    assert_non_null(o);
    assert_memory_equal(o->val, "v1", 2);
    /* a client that holds v1 itself gets 2.03 with ETag and Max-Age only */
    serve(e, true, T0 + 2600, buf, sizeof buf, &m);
    assert_int_equal(m.code, TETHER_COAP_VALID);
    assert_int_equal(m.payload_len, 0);
    assert_int_equal(max_age_of(&m), 29);
    assert_int_equal(m.nopts, 2);
    assert_null(tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_CONTENT_FORMAT));
    /* 2.03 without Max-Age: 60 s */
    assert_int_equal(lookup(f, "dev1", &req, T0 + 40000, &e), TETHER_CACHE_STALE);
    tether_coap_msg_init(&m, TETHER_COAP_ACK, TETHER_COAP_VALID, 11);
    add_str(&m, TETHER_COAP_OPT_ETAG, "v1");
    assert_non_null(tether_cache_validate(f->c, &k, &m, T0 + 40000));
    assert_int_equal(lookup(f, "dev1", &req, T0 + 99999, &e), TETHER_CACHE_FRESH);
    /* a client's ETag is not part of the key */
    add_str(&req, TETHER_COAP_OPT_ETAG, "v1");
    assert_int_equal(lookup(f, "dev1", &req, T0 + 99999, &e), TETHER_CACHE_FRESH);
}

static void test_invalidation(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t req, resp, post;
    tether_cache_entry_t *e;
    tether_cache_key_t k;
    tether_coap_msg_t a, aq, fa, b, dev2a;
    request(&a, TETHER_COAP_GET, "light/1", NULL);
    request(&aq, TETHER_COAP_GET, "light/1", "fmt=long");
    request(&fa, TETHER_COAP_FETCH, "light/1", NULL);
    fa.payload = (const uint8_t *)"q";
    fa.payload_len = 1;
    request(&b, TETHER_COAP_GET, "light/2", NULL);
    request(&dev2a, TETHER_COAP_GET, "light/1", NULL);
    content(f, &resp, "on", 60, NULL);
    assert_non_null(store(f, "dev1", &a, &resp, T0));
    assert_non_null(store(f, "dev1", &aq, &resp, T0));
    assert_non_null(store(f, "dev1", &fa, &resp, T0));
    assert_non_null(store(f, "dev1", &b, &resp, T0));
    assert_non_null(store(f, "dev2", &dev2a, &resp, T0));
    content(f, &resp, "on", 60, "e7"); /* one with an ETag */
    request(&req, TETHER_COAP_GET, "light/1", "fmt=short");
    assert_non_null(store(f, "dev1", &req, &resp, T0));
    assert_int_equal(tether_cache_stats(f->c)->entries, 6);
    /* POST dev1/light/1: every entry of that path, whatever the method
     * or query, stops being fresh; the one with an ETag stays, stale */
    request(&post, TETHER_COAP_POST, "light/1", "ignored=1");
    assert_int_equal(tether_cache_key_path(&k, "dev1", &post, TETHER_COAP_OPT_URI_PATH), 0);
    assert_int_equal(tether_cache_invalidate(f->c, &k), 4);
    assert_int_equal(lookup(f, "dev1", &a, T0 + 1, &e), TETHER_CACHE_MISS);
    assert_int_equal(lookup(f, "dev1", &aq, T0 + 1, &e), TETHER_CACHE_MISS);
    assert_int_equal(lookup(f, "dev1", &fa, T0 + 1, &e), TETHER_CACHE_MISS);
    assert_int_equal(lookup(f, "dev1", &req, T0 + 1, &e), TETHER_CACHE_STALE);
    assert_int_equal(lookup(f, "dev1", &b, T0 + 1, &e), TETHER_CACHE_FRESH);
    assert_int_equal(lookup(f, "dev2", &dev2a, T0 + 1, &e), TETHER_CACHE_FRESH);
    assert_int_equal(tether_cache_stats(f->c)->entries, 3);
    assert_int_equal(tether_cache_stats(f->c)->invalidations, 4);
    /* again: the stale one is not counted twice; a path with no entries
     * is a no-op; a 2.01's Location-Path names the path the same way */
    assert_int_equal(tether_cache_invalidate(f->c, &k), 0);
    tether_coap_msg_t created;
    tether_coap_msg_init(&created, TETHER_COAP_ACK, TETHER_COAP_CREATED, 3);
    add_str(&created, TETHER_COAP_OPT_LOCATION_PATH, "light");
    add_str(&created, TETHER_COAP_OPT_LOCATION_PATH, "2");
    assert_int_equal(tether_cache_key_path(&k, "dev1", &created, TETHER_COAP_OPT_LOCATION_PATH), 0);
    assert_int_equal(tether_cache_invalidate(f->c, &k), 1);
    assert_int_equal(lookup(f, "dev1", &b, T0 + 1, &e), TETHER_CACHE_MISS);
    assert_true(tether_cache_method_unsafe(TETHER_COAP_PUT));
    assert_true(tether_cache_method_unsafe(TETHER_COAP_DELETE));
    assert_true(tether_cache_method_unsafe(TETHER_COAP_IPATCH));
    assert_false(tether_cache_method_unsafe(TETHER_COAP_FETCH));
}

static void test_key_options(void **state)
{
    (void)state;
    tether_coap_msg_t a, b;
    tether_cache_key_t ka, kb;
    request(&a, TETHER_COAP_GET, "temp", NULL);
    request(&b, TETHER_COAP_GET, "temp", NULL);
    /* NoCacheKey options (Size1 60, Echo 252, an unknown 284), ETag and
     * the target-naming options do not change the key */
    uint8_t sz = 10;
    tether_coap_msg_add_opt(&b, TETHER_COAP_OPT_SIZE1, &sz, 1);
    tether_coap_msg_add_opt(&b, TETHER_COAP_OPT_ECHO, "echo", 4);
    tether_coap_msg_add_opt(&b, 284, "x", 1);
    tether_coap_msg_add_opt(&b, TETHER_COAP_OPT_ETAG, "t", 1);
    tether_coap_msg_add_opt(&b, TETHER_COAP_OPT_URI_HOST, "dev1", 4);
    key_of(&ka, "dev1", &a);
    key_of(&kb, "dev1", &b);
    assert_int_equal(ka.len, kb.len);
    assert_memory_equal(ka.buf, kb.buf, ka.len);
    /* Accept (17) and an unknown option that is not NoCacheKey do */
    uint8_t acc = 50;
    tether_coap_msg_add_opt(&b, TETHER_COAP_OPT_ACCEPT, &acc, 1);
    key_of(&kb, "dev1", &b);
    assert_false(ka.len == kb.len && memcmp(ka.buf, kb.buf, ka.len) == 0);
    request(&b, TETHER_COAP_GET, "temp", NULL);
    tether_coap_msg_add_opt(&b, 2048, "x", 1);
    key_of(&kb, "dev1", &b);
    assert_false(ka.len == kb.len && memcmp(ka.buf, kb.buf, ka.len) == 0);
    /* FETCH keys include the payload */
    request(&a, TETHER_COAP_FETCH, "temp", NULL);
    request(&b, TETHER_COAP_FETCH, "temp", NULL);
    a.payload = (const uint8_t *)"q1";
    b.payload = (const uint8_t *)"q2";
    a.payload_len = b.payload_len = 2;
    key_of(&ka, "dev1", &a);
    key_of(&kb, "dev1", &b);
    assert_int_equal(ka.len, kb.len);
    assert_memory_not_equal(ka.buf, kb.buf, ka.len);
    /* segment boundaries count: a/bc is not ab/c */
    request(&a, TETHER_COAP_GET, "a/bc", NULL);
    request(&b, TETHER_COAP_GET, "ab/c", NULL);
    key_of(&ka, "dev1", &a);
    key_of(&kb, "dev1", &b);
    assert_memory_not_equal(ka.buf, kb.buf, ka.len);
    /* the path part is a prefix of the key */
    assert_true(ka.path_len < ka.len);
    tether_cache_key_t kp;
    assert_int_equal(tether_cache_key_path(&kp, "dev1", &a, TETHER_COAP_OPT_URI_PATH), 0);
    assert_int_equal(kp.path_len, ka.path_len);
    assert_memory_equal(kp.buf, ka.buf, ka.path_len);
}

static void test_lru_eviction_under_budget(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t r1, r2, r3, r4, resp;
    tether_cache_entry_t *e;
    char body[200];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = 0;
    request(&r1, TETHER_COAP_GET, "r1", NULL);
    request(&r2, TETHER_COAP_GET, "r2", NULL);
    request(&r3, TETHER_COAP_GET, "r3", NULL);
    request(&r4, TETHER_COAP_GET, "r4", NULL);
    content(f, &resp, body, 60, NULL);
    /* what one such entry costs (with its path group), then a budget
     * of three and a half of them */
    assert_non_null(store(f, "dev1", &r1, &resp, T0));
    uint64_t one = tether_cache_stats(f->c)->bytes;
    assert_true(one > sizeof body);
    tether_cache_destroy(f->c);
    tether_cache_conf_t conf = {.max_bytes = one * 7 / 2, .seed = 7};
    assert_int_equal(tether_cache_create(&conf, &f->c), 0);
    assert_non_null(store(f, "dev1", &r1, &resp, T0));
    assert_non_null(store(f, "dev1", &r2, &resp, T0));
    assert_non_null(store(f, "dev1", &r3, &resp, T0));
    const tether_cache_stats_t *st = tether_cache_stats(f->c);
    assert_int_equal(st->entries, 3);
    assert_int_equal(st->evictions, 0);
    /* r1 used recently, so r2 is the least recently used one */
    assert_int_equal(lookup(f, "dev1", &r1, T0 + 1, &e), TETHER_CACHE_FRESH);
    assert_non_null(store(f, "dev1", &r4, &resp, T0 + 2));
    assert_int_equal(st->evictions, 1);
    assert_true(st->bytes <= conf.max_bytes);
    assert_int_equal(lookup(f, "dev1", &r2, T0 + 3, &e), TETHER_CACHE_MISS);
    assert_int_equal(lookup(f, "dev1", &r1, T0 + 3, &e), TETHER_CACHE_FRESH);
    assert_int_equal(lookup(f, "dev1", &r3, T0 + 3, &e), TETHER_CACHE_FRESH);
    assert_int_equal(lookup(f, "dev1", &r4, T0 + 3, &e), TETHER_CACHE_FRESH);
    /* a response larger than the whole budget is not stored, and evicts nothing */
    char big[1500];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = 0;
    content(f, &resp, big, 60, NULL);
    assert_null(store(f, "dev1", &r2, &resp, T0 + 4));
    assert_int_equal(st->entries, 3);
    /* replacing an entry does not count as an eviction */
    content(f, &resp, "small", 60, NULL);
    assert_non_null(store(f, "dev1", &r1, &resp, T0 + 5));
    assert_int_equal(st->evictions, 1);
    assert_int_equal(st->entries, 3);
}

static void test_encode_limits(void **state)
{
    fx_t *f = *state;
    tether_coap_msg_t req, resp;
    tether_cache_entry_t *e;
    uint8_t buf[64];
    size_t len;
    request(&req, TETHER_COAP_GET, "t", NULL);
    content(f, &resp, "0123456789012345678901234567890123456789", 60, NULL);
    e = store(f, "dev1", &req, &resp, T0);
    assert_non_null(e);
    assert_int_equal(tether_cache_encode(e, TETHER_COAP_ACK, 1, (const uint8_t *)"12345678", 8,
                                         false, T0, buf, 50, &len),
                     TETHER_ENOSPC);
    assert_int_equal(tether_cache_encode(e, TETHER_COAP_ACK, 1, (const uint8_t *)"12345678", 8,
                                         false, T0, buf, sizeof buf, &len),
                     0);
    assert_int_equal(tether_cache_encode(e, TETHER_COAP_ACK, 1, (const uint8_t *)"123456789", 9,
                                         false, T0, buf, sizeof buf, &len),
                     TETHER_EINVAL);
    /* a target name longer than a key allows is refused */
    char name[300];
    memset(name, 'd', sizeof name - 1);
    name[sizeof name - 1] = 0;
    tether_cache_key_t k;
    assert_true(tether_cache_key(&k, name, &req) < 0);
    tether_cache_conf_t zero = {0};
    tether_cache_t *c;
    assert_int_equal(tether_cache_create(&zero, &c), TETHER_EINVAL);
}

/* A key gives back its request (the observe registry keeps only keys;
 * an adopter registers observers again from them, SPEC S5): the same
 * target, path, method and options, so the same key again; truncated or
 * padded keys from the store are refused. */
static void test_key_back_to_request(void **state)
{
    (void)state;
    tether_coap_msg_t a, back;
    tether_cache_key_t ka, kb;
    request(&a, TETHER_COAP_GET, "sensors/temp", "unit=c");
    uint8_t accept = 50;
    tether_coap_msg_add_opt(&a, TETHER_COAP_OPT_ACCEPT, &accept, 1);
    key_of(&ka, "dev1", &a);
    assert_int_equal(tether_cache_key_request(ka.buf, ka.len, &back), 0);
    assert_int_equal(back.code, TETHER_COAP_GET);
    const tether_coap_opt_t *h = tether_coap_msg_find_opt(&back, TETHER_COAP_OPT_URI_HOST);
    assert_non_null(h);
    assert_int_equal(h->len, 4);
    assert_memory_equal(h->val, "dev1", 4);
    assert_true(tether_coap_path_equals(&back, "sensors/temp"));
    tether_coap_msg_del_opt(&back, TETHER_COAP_OPT_URI_HOST);
    key_of(&kb, "dev1", &back);
    assert_int_equal(ka.len, kb.len);
    assert_memory_equal(ka.buf, kb.buf, ka.len);
    for (size_t cut = 0; cut < ka.len; cut++)
        assert_int_equal(tether_cache_key_request(ka.buf, cut, &back), TETHER_EPROTO);
    ka.buf[ka.len] = 0;
    assert_int_equal(tether_cache_key_request(ka.buf, ka.len + 1u, &back), TETHER_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_hit_and_max_age_decrement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_and_default_max_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_age_zero_and_uncacheable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etag_revalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_eviction_under_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_back_to_request, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
