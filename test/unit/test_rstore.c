/* Unit tests for the pure parts of tetherd's Redis store (server/store/):
 * key layout and records (rkey.c), sealed credential keys (wrap.c), the
 * coalescing write backlog (backlog.c) and the connection state machine
 * with the clock stepped (rconn.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../../server/store/backlog.h"
#include "../../server/store/rconn.h"
#include "../../server/store/rkey.h"
#include "../../server/store/wrap.h"

static void test_key_layout(void **state)
{
    (void)state;
    char name[TETHERD_RKEY_MAX];
    assert_int_equal(
        tetherd_rkey_name(TETHER_STORE_DEVICE, (const uint8_t *)"dev7", 4, name, sizeof name), 0);
    assert_string_equal(name, "tether:dev:{dev7}");
    /* A brace in a name cannot move the hash tag; it parses back. */
    assert_int_equal(
        tetherd_rkey_name(TETHER_STORE_DEVICE, (const uint8_t *)"a}b{", 4, name, sizeof name), 0);
    assert_string_equal(name, "tether:dev:{a%7Db%7B}");
    tether_store_kind_t kind;
    uint8_t key[64];
    size_t kl;
    assert_int_equal(tetherd_rkey_parse(name, strlen(name), &kind, key, sizeof key, &kl), 0);
    assert_int_equal(kind, TETHER_STORE_DEVICE);
    assert_memory_equal(key, "a}b{", 4);
    uint8_t cid[3] = {0xab, 0x00, 0x01}, id = 7;
    assert_int_equal(tetherd_rkey_name(TETHER_STORE_SESSION, cid, 3, name, sizeof name), 0);
    assert_string_equal(name, "tether:sess:{ab0001}");
    assert_int_equal(tetherd_rkey_name(TETHER_STORE_NODE, &id, 1, name, sizeof name), 0);
    assert_string_equal(name, "tether:{nodes}:node:7"); /* one tag: one MGET */
    assert_int_equal(tetherd_rkey_parse(name, strlen(name), &kind, key, sizeof key, &kl), 0);
    assert_true(kind == TETHER_STORE_NODE && kl == 1 && key[0] == 7);
    /* An observed resource: the device's name is the hash tag (the slot of
     * its directory entry), then the whole record key in hex. */
    const uint8_t obs[] = {4, 'd', 'e', 'v', '7', 1, 0, 4, 't', 'e', 'm', 'p', 3};
    assert_int_equal(tetherd_rkey_name(TETHER_STORE_OBSERVE, obs, sizeof obs, name, sizeof name),
                     0);
    assert_string_equal(name, "tether:obs:{dev7}046465763701000474656d7003");
    assert_int_equal(tetherd_rkey_parse(name, strlen(name), &kind, key, sizeof key, &kl), 0);
    assert_true(kind == TETHER_STORE_OBSERVE && kl == sizeof obs);
    assert_memory_equal(key, obs, sizeof obs);
    const uint8_t noname[] = {9, 'a'};
    assert_int_equal(
        tetherd_rkey_name(TETHER_STORE_OBSERVE, noname, sizeof noname, name, sizeof name),
        TETHER_EINVAL);
    /* Foreign keys, the log, two spellings of one key, bad escapes. */
    const char *bad[] = {"tether:{log}", "other:dev:{x}", "tether:dev:{x", "tether:dev:{%61}",
                         "tether:dev:{%6}", "tether:dev:{}", "tether:{nodes}:node:0",
                         "tether:{nodes}:node:256", "tether:sess:{abc}", "tether:dev:{a%7db}",
                         "tether:sess:{AB0001}", /* case: one spelling */
                         /* a tag that is not the key's own device, odd hex, no tag end,
                          * upper-case hex */
                         "tether:obs:{dev8}0464657637010004", "tether:obs:{dev7}046465763",
                         "tether:obs:{dev70464657637010004", "tether:obs:{dev7}0464657637010004AB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tetherd_rkey_parse(bad[i], strlen(bad[i]), &kind, key, sizeof key, &kl),
                         TETHER_EINVAL);
    uint64_t v;
    const char *json;
    size_t jl;
    assert_int_equal(tetherd_rval_split("12 {}", 5, &v, &json, &jl), 0);
    assert_true(v == 12 && jl == 2);
    assert_int_equal(tetherd_rval_split("x {}", 4, &v, &json, &jl), TETHER_EPROTO);
    assert_int_equal(tetherd_rval_split("0 {}", 4, &v, &json, &jl), TETHER_EPROTO);
}

static void test_device_record(void **state)
{
    (void)state;
    tether_store_rec_t rec = {.kind = TETHER_STORE_DEVICE};
    tether_store_device_t *d = &rec.u.device;
    strcpy(d->name, "dev1");
    strcpy(d->regid, "1a");
    d->node_id = 3;
    d->cid_len = 2;
    d->cid[0] = 1;
    d->lifetime_s = 300;
    d->queue_mode = true;
    d->last_seen_s = 99;
    d->links = "</temp>;obs";
    d->links_len = strlen(d->links);
    char *json;
    assert_int_equal(tetherd_rrec_encode(&rec, NULL, "k", 1, &json), 0);
    tetherd_rrec_t out;
    assert_int_equal(
        tetherd_rrec_decode(TETHER_STORE_DEVICE, json, strlen(json), NULL, "k", 1, &out), 0);
    assert_string_equal(out.rec.u.device.name, "dev1");
    assert_int_equal(out.rec.u.device.node_id, 3);
    assert_true(out.rec.u.device.queue_mode);
    assert_string_equal(out.rec.u.device.links, "</temp>;obs");
    tetherd_rrec_free(&out);
    free(json);
    /* Bad records are refused whole. */
    const char *bad[] = {"{}", "[]", "{\"name\":\"d\"}", "not json",
                         "{\"name\":\"d\",\"regid\":\"1\",\"node\":300,\"cid\":\"\",\"addr\":\"\","
                         "\"lt\":1,\"q\":false,\"seen\":1,\"links\":\"\",\"groups\":\"\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            tetherd_rrec_decode(TETHER_STORE_DEVICE, bad[i], strlen(bad[i]), NULL, "k", 1, &out),
            TETHER_EPROTO);
        tetherd_rrec_free(&out);
    }
}

/* A group (admin API, shared by every node): members or a pattern, key
 * tether:grp:{NAME}; a record with both, neither or a bad member is
 * refused. */
static void test_group_record(void **state)
{
    (void)state;
    char name[TETHERD_RKEY_MAX];
    assert_int_equal(
        tetherd_rkey_name(TETHER_STORE_GROUP, (const uint8_t *)"floor1", 6, name, sizeof name), 0);
    assert_string_equal(name, "tether:grp:{floor1}");
    tether_store_kind_t kind;
    uint8_t key[64];
    size_t kl;
    assert_int_equal(tetherd_rkey_parse(name, strlen(name), &kind, key, sizeof key, &kl), 0);
    assert_int_equal(kind, TETHER_STORE_GROUP);
    tether_store_rec_t rec = {.kind = TETHER_STORE_GROUP};
    tether_store_group_t *g = &rec.u.group;
    strcpy(g->name, "floor1");
    static const char m[] = "dev1\0dev22\0dev3";
    g->members = m;
    g->members_len = sizeof m;
    g->nmembers = 3;
    char *json;
    assert_int_equal(tetherd_rrec_encode(&rec, NULL, name, 1, &json), 0);
    tetherd_rrec_t out;
    assert_int_equal(
        tetherd_rrec_decode(TETHER_STORE_GROUP, json, strlen(json), NULL, name, 1, &out), 0);
    const tether_store_group_t *o = &out.rec.u.group;
    assert_string_equal(o->name, "floor1");
    assert_string_equal(o->pattern, "");
    assert_int_equal(o->nmembers, 3);
    assert_int_equal(o->members_len, sizeof m);
    assert_memory_equal(o->members, m, sizeof m);
    tetherd_rrec_free(&out);
    free(json);
    const char *bad[] = {"{\"name\":\"g\",\"pattern\":\"\",\"members\":[]}",
                         "{\"name\":\"g\",\"pattern\":\"d*\",\"members\":[\"d1\"]}",
                         "{\"name\":\"g\",\"pattern\":\"\",\"members\":[\"\"]}",
                         "{\"name\":\"g\",\"pattern\":\"\",\"members\":[7]}",
                         "{\"name\":\"\",\"pattern\":\"d*\",\"members\":[]}",
                         "{\"name\":\"g\",\"pattern\":\"\",\"members\":[\"a\\u0000b\"]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            tetherd_rrec_decode(TETHER_STORE_GROUP, bad[i], strlen(bad[i]), NULL, "k", 1, &out),
            TETHER_EPROTO);
        tetherd_rrec_free(&out);
    }
}

/* Failover's fields: a checkpoint's holder generation, a claim's adopter;
 * records written before them still read (generation 0, no adopter). */
static void test_failover_records(void **state)
{
    (void)state;
    const uint8_t blob[3] = {9, 8, 7};
    tether_store_rec_t rec = {.kind = TETHER_STORE_SESSION};
    tether_store_session_t *s = &rec.u.session;
    s->cid_len = 2;
    s->cid[0] = 1;
    s->cid[1] = 2;
    s->node_id = 2;
    s->generation = 1796205153663ull;
    s->seq_ceiling = 16778240;
    s->blob = blob;
    s->blob_len = sizeof blob;
    char *json;
    tetherd_rrec_t out;
    assert_int_equal(tetherd_rrec_encode(&rec, NULL, "k", 1, &json), 0);
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_SESSION, json, strlen(json), NULL, "k", 1, &out), 0);
    assert_int_equal(out.rec.u.session.node_id, 2);
    assert_true(out.rec.u.session.generation == 1796205153663ull);
    assert_true(out.rec.u.session.seq_ceiling == 16778240);
    assert_memory_equal(out.rec.u.session.blob, blob, sizeof blob);
    tetherd_rrec_free(&out);
    free(json);
    const char *old = "{\"cid\":\"0102\",\"node\":1,\"ceil\":5,\"blob\":\"09\"}";
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_SESSION, old, strlen(old), NULL, "k", 1, &out), 0);
    assert_true(out.rec.u.session.generation == 0);
    tetherd_rrec_free(&out);

    tether_store_rec_t n = {.kind = TETHER_STORE_NODE};
    n.u.node.node_id = 1;
    n.u.node.generation = 1001;
    n.u.node.adopted_by = 3;
    n.u.node.handover = true;
    assert_int_equal(tetherd_addr_parse("127.0.0.1:7000", &n.u.node.addr), 0);
    assert_int_equal(tetherd_rrec_encode(&n, NULL, "k", 1, &json), 0);
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_NODE, json, strlen(json), NULL, "k", 1, &out), 0);
    assert_int_equal(out.rec.u.node.adopted_by, 3);
    assert_true(out.rec.u.node.handover);
    assert_true(out.rec.u.node.generation == 1001);
    tetherd_rrec_free(&out);
    free(json);
    const char *lease = "{\"node\":1,\"addr\":\"127.0.0.1:7000\",\"gen\":5}";
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_NODE, lease, strlen(lease), NULL, "k", 1, &out), 0);
    assert_int_equal(out.rec.u.node.adopted_by, 0);
    assert_false(out.rec.u.node.handover);
    tetherd_rrec_free(&out);
    const char *bad = "{\"node\":1,\"addr\":\"127.0.0.1:7000\",\"gen\":5,\"by\":256}";
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_NODE, bad, strlen(bad), NULL, "k", 1, &out),
                     TETHER_EPROTO);
    tetherd_rrec_free(&out);
}

static void test_wrap(void **state)
{
    (void)state;
    tetherd_wrap_t w, other;
    assert_int_equal(tetherd_wrap_init(&w, (const uint8_t *)"cluster-key-0123", 16), 0);
    assert_int_equal(tetherd_wrap_init(&other, (const uint8_t *)"cluster-key-0124", 16), 0);
    tether_store_rec_t rec = {.kind = TETHER_STORE_CRED};
    tether_store_cred_t *c = &rec.u.cred;
    strcpy(c->identity, "app9");
    c->role = TETHER_ROLE_CLIENT;
    memcpy(c->key, "secret-psk-bytes", 16);
    c->key_len = 16;
    tether_store_allow_t rule = {.pattern = "dev*", .methods = 2};
    c->allow = &rule;
    c->nallow = 1;
    char *json;
    assert_int_equal(tetherd_rrec_encode(&rec, &w, "tether:cred:{app9}", 4, &json), 0);
    assert_null(strstr(json, "secret")); /* the key is not in the clear */
    assert_null(strstr(json, "7365637265"));
    tetherd_rrec_t out;
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_CRED, json, strlen(json), &w,
                                         "tether:cred:{app9}", 4, &out),
                     0);
    assert_memory_equal(out.rec.u.cred.key, "secret-psk-bytes", 16);
    assert_int_equal(out.rec.u.cred.nallow, 1);
    assert_string_equal(out.rec.u.cred.allow[0].pattern, "dev*");
    tetherd_rrec_free(&out);
    /* Another key name, version or cluster key: it does not open. */
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_CRED, json, strlen(json), &w,
                                         "tether:cred:{app8}", 4, &out),
                     TETHER_EPROTO);
    tetherd_rrec_free(&out);
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_CRED, json, strlen(json), &w,
                                         "tether:cred:{app9}", 5, &out),
                     TETHER_EPROTO);
    tetherd_rrec_free(&out);
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_CRED, json, strlen(json), &other,
                                         "tether:cred:{app9}", 4, &out),
                     TETHER_EPROTO);
    tetherd_rrec_free(&out);
    /* A writer to Redis without the cluster key changes what the record
     * says about the key's use, keeping the sealed key: refused. */
    const char *edits[][2] = {
        {"\"role\":1", "\"role\":0"},              /* client -> device */
        {"\"dev*\"", "\"*\""},                     /* a wider ACL */
        {"\"derived\":false", "\"derived\":true"}, /* a fleet master */
        {"\"id\":\"app9\"", "\"id\":\"app1\""},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(json, edits[i][0]);
        assert_non_null(at);
        char edited[1024];
        snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - json), json, edits[i][1],
                 at + strlen(edits[i][0]));
        assert_int_equal(tetherd_rrec_decode(TETHER_STORE_CRED, edited, strlen(edited), &w,
                                             "tether:cred:{app9}", 4, &out),
                         TETHER_EPROTO);
        tetherd_rrec_free(&out);
    }
    free(json);
    /* A "groups" rule keeps its kind, and the kind is sealed too. */
    tether_store_allow_t grule = {.pattern = "floor*", .methods = 2, .group = true};
    c->allow = &grule;
    assert_int_equal(tetherd_rrec_encode(&rec, &w, "tether:cred:{app9}", 4, &json), 0);
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_CRED, json, strlen(json), &w,
                                         "tether:cred:{app9}", 4, &out),
                     0);
    assert_true(out.rec.u.cred.allow[0].group);
    tetherd_rrec_free(&out);
    const char *at = strstr(json, ",true]");
    assert_non_null(at);
    char edited[1024];
    snprintf(edited, sizeof edited, "%.*s]%s", (int)(at - json), json, at + strlen(",true]"));
    assert_int_equal(tetherd_rrec_decode(TETHER_STORE_CRED, edited, strlen(edited), &w,
                                         "tether:cred:{app9}", 4, &out),
                     TETHER_EPROTO); /* a group rule turned into a device rule */
    tetherd_rrec_free(&out);
    free(json);
    /* A version that does not fit 64 bits is not a version. */
    uint64_t ver;
    const char *js;
    size_t jl;
    assert_int_equal(tetherd_rval_split("18446744073709551617 {}", 23, &ver, &js, &jl),
                     TETHER_EPROTO);
    assert_int_equal(tetherd_rval_split("9223372036854775807 {}", 22, &ver, &js, &jl), 0);
    assert_int_equal(ver, 9223372036854775807ull);
    /* A flipped byte of the sealed form is refused. */
    uint8_t sealed[64], opened[64];
    size_t sl, ol;
    assert_int_equal(tetherd_wrap_seal(&w, (const uint8_t *)"a", 1, (const uint8_t *)"k", 1, sealed,
                                       sizeof sealed, &sl),
                     0);
    assert_int_equal(sl, 1 + TETHERD_WRAP_OVERHEAD);
    sealed[14] ^= 1;
    assert_int_equal(
        tetherd_wrap_open(&w, (const uint8_t *)"a", 1, sealed, sl, opened, sizeof opened, &ol),
        TETHER_EPROTO);
    tetherd_wrap_clear(&w);
    tetherd_wrap_clear(&other);
}

static void test_backlog(void **state)
{
    (void)state;
    tetherd_backlog_t b;
    assert_int_equal(tetherd_backlog_init(&b, 2), 0);
    assert_int_equal(tetherd_backlog_mark(&b, "k1", 4, strdup("a"), 0), 0);
    assert_int_equal(tetherd_backlog_mark(&b, "k1", 9, strdup("b"), 0), 0); /* coalesced */
    assert_int_equal(b.count, 1);
    assert_int_equal(b.coalesced, 1);
    tetherd_dirty_t *e = tetherd_backlog_next(&b);
    assert_string_equal(e->value, "b");
    assert_int_equal(e->base, 4); /* the version first seen is what the write expects */
    assert_int_equal(tetherd_backlog_mark(&b, "k2", 0, NULL, 0), 0);
    assert_int_equal(tetherd_backlog_mark(&b, "k3", 0, strdup("c"), 0), TETHER_ELIMIT);
    tetherd_backlog_sent(&b, e);
    assert_string_equal(tetherd_backlog_next(&b)->rkey, "k2"); /* k1 is in flight */
    /* A write coming while k1 is in flight keeps it after the ack. */
    assert_int_equal(tetherd_backlog_mark(&b, "k1", 0, strdup("c"), 0), 0);
    assert_false(tetherd_backlog_acked(&b, e, 5));
    assert_int_equal(e->base, 5);
    tetherd_backlog_sent(&b, e);
    tetherd_backlog_failed(&b, e); /* lost: retried */
    tetherd_backlog_sent(&b, e);
    assert_true(tetherd_backlog_acked(&b, e, 6));
    assert_int_equal(b.count, 1);
    assert_null(tetherd_backlog_find(&b, "k1"));
    assert_true(tetherd_backlog_find(&b, "k2")->del);
    tetherd_backlog_free(&b);
}

static void test_rconn(void **state)
{
    (void)state;
    tetherd_rconn_conf_t conf;
    tetherd_rconn_conf_defaults(&conf);
    conf.inflight_max = 2;
    tetherd_rconn_t c;
    tether_time_t now = 1000;
    assert_int_equal(tetherd_rconn_init(&c, &conf, 42, now), 0);
    assert_true(tetherd_rconn_connect_due(&c, now));
    tetherd_rconn_connecting(&c, now);
    assert_false(tetherd_rconn_can_send(&c));
    assert_int_equal(tetherd_rconn_deadline(&c), now + conf.connect_timeout_ms);
    assert_false(tetherd_rconn_timed_out(&c, now + conf.connect_timeout_ms - 1));
    assert_true(tetherd_rconn_timed_out(&c, now + conf.connect_timeout_ms));
    now += conf.connect_timeout_ms;
    tetherd_rconn_failed(&c, now);
    /* Jittered back-off: in [min/2, min], then doubling up to the max. */
    tether_time_t at = tetherd_rconn_deadline(&c);
    assert_true(at >= now + conf.backoff_min_ms / 2 && at <= now + conf.backoff_min_ms);
    assert_false(tetherd_rconn_connect_due(&c, at - 1));
    for (int i = 0; i < 10; i++) {
        now = tetherd_rconn_deadline(&c);
        tetherd_rconn_connecting(&c, now);
        tetherd_rconn_failed(&c, now);
    }
    at = tetherd_rconn_deadline(&c);
    assert_true(at >= now + conf.backoff_max_ms / 2 && at <= now + conf.backoff_max_ms);
    now = at;
    tetherd_rconn_connecting(&c, now);
    tetherd_rconn_connected(&c, now);
    assert_string_equal(tetherd_rconn_state_str(&c), "up");
    assert_int_equal(c.reconnects, 0);                        /* the first connect */
    assert_int_equal(tetherd_rconn_deadline(&c), UINT64_MAX); /* nothing pending */
    tetherd_rconn_sent(&c, now);
    tetherd_rconn_sent(&c, now + 50);
    assert_false(tetherd_rconn_can_send(&c)); /* the pipeline bound */
    /* The timer is on the oldest command; replies are FIFO. */
    assert_int_equal(tetherd_rconn_deadline(&c), now + conf.command_timeout_ms);
    tetherd_rconn_replied(&c);
    assert_int_equal(tetherd_rconn_deadline(&c), now + 50 + conf.command_timeout_ms);
    assert_true(tetherd_rconn_timed_out(&c, now + 50 + conf.command_timeout_ms));
    tetherd_rconn_failed(&c, now + 50 + conf.command_timeout_ms);
    assert_string_equal(tetherd_rconn_state_str(&c), "down");
    assert_int_equal(tetherd_rconn_pending(&c), 0);
    now = tetherd_rconn_deadline(&c);
    tetherd_rconn_connecting(&c, now);
    tetherd_rconn_connected(&c, now);
    assert_int_equal(c.reconnects, 1);
    tetherd_rconn_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_layout), cmocka_unit_test(test_device_record),
        cmocka_unit_test(test_group_record),
        cmocka_unit_test(test_wrap),       cmocka_unit_test(test_backlog),
        cmocka_unit_test(test_rconn),      cmocka_unit_test(test_failover_records),
    };
    return cmocka_run_group_tests_name("rstore", tests, NULL, NULL);
}
