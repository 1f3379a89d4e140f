/* Unit tests for lib/pipeline/pipeline.c: the whole stack in process,
 * datagrams in, the outbox out, the clock stepped by the test. Two
 * pipelines (nodes 1 and 2) exchange their cluster datagrams through
 * memory, as their internal sockets would. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "tether/channel.h"
#include "tether/creds.h"
#include "tether/log.h"
#include "tether/pipeline.h"

enum { IF_PLAIN = 0, IF_DTLS = 1, IF_CLUSTER = 2 };

static const char key[] = "0123456789abcdef0123456789abcdef";

typedef struct {
    tether_creds_t *creds;
    tether_pipeline_t *p[3]; /* [1], [2]: nodes 1 and 2 */
    tether_addr_t internal[3];
    tether_time_t now, wall;
} fx_t;

static tether_addr_t v4(uint16_t port)
{
    tether_addr_t a = {.len = sizeof(struct sockaddr_in)};
    struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(0x7f000001);
    return a;
}

static int setup(void **state)
{
    static fx_t f;
    memset(&f, 0, sizeof f);
    tether_log_set_level(TETHER_LOG_WARN);
    assert_int_equal(tether_creds_empty(&f.creds), 0);
    f.now = 5000;
    f.wall = 1700000000000ull;
    for (uint8_t id = 1; id <= 2; id++)
        f.internal[id] = v4((uint16_t)(7000 + id));
    for (uint8_t id = 1; id <= 2; id++) {
        tether_pipeline_conf_t c;
        tether_pipeline_conf_defaults(&c);
        c.node.node_id = id;
        c.dtls.node_id = id;
        c.channel.self = id;
        c.channel.key = (const uint8_t *)key;
        c.channel.key_len = sizeof key - 1;
        c.niface = 3;
        c.iface[IF_PLAIN] = TETHER_IFACE_PLAIN;
        c.iface[IF_DTLS] = TETHER_IFACE_DTLS;
        c.iface[IF_CLUSTER] = TETHER_IFACE_CLUSTER;
        assert_int_equal(tether_pipeline_create(&c, f.creds, f.now, f.wall, &f.p[id]), 0);
        uint8_t other = id == 1 ? 2 : 1;
        assert_int_equal(
            tether_channel_add_node(tether_pipeline_channel(f.p[id]), other, &f.internal[other]),
            0);
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    for (int id = 1; id <= 2; id++)
        tether_pipeline_destroy(f->p[id]);
    tether_creds_free(f->creds);
    return 0;
}

/* Steps the clock, wall clock alongside, and ticks both pipelines. */
static void step(fx_t *f, tether_time_t ms)
{
    f->now += ms;
    f->wall += ms;
    for (int id = 1; id <= 2; id++) {
        tether_pipeline_set_wall_clock(f->p[id], f->wall);
        tether_pipeline_tick(f->p[id], f->now);
    }
}

/* Hands node `from`'s cluster datagrams to the other node's cluster
 * interface; returns how many went. */
static size_t deliver_cluster(fx_t *f, int from)
{
    int to = from == 1 ? 2 : 1;
    tether_pipeline_t *p = f->p[from];
    /* Copies: feeding the other node never touches this outbox, but keep
     * the test independent of that. */
    size_t n = tether_pipeline_out_count(p), sent = 0;
    tether_dgram_t *copy = malloc((n ? n : 1) * sizeof *copy);
    assert_non_null(copy);
    for (size_t i = 0; i < n; i++)
        copy[i] = *tether_pipeline_out_get(p, i);
    tether_pipeline_out_clear(p);
    for (size_t i = 0; i < n; i++) {
        if (copy[i].iface != IF_CLUSTER)
            continue;
        assert_true(tether_addr_equal(&copy[i].to, &f->internal[to]));
        tether_pipeline_set_wall_clock(f->p[to], f->wall);
        assert_int_equal(tether_pipeline_input(f->p[to], IF_CLUSTER, &f->internal[from],
                                               copy[i].data, copy[i].len, f->now),
                         0);
        sent++;
    }
    free(copy);
    return sent;
}

/* CON GET /.well-known/core, MID 0x1234, no token (RFC 7252 §3). */
static const uint8_t get_core[] = {0x40, 0x01, 0x12, 0x34, 0xbb, '.',  'w', 'e', 'l', 'l', '-',
                                   'k',  'n',  'o',  'w',  'n',  0x04, 'c', 'o', 'r', 'e'};

static void assert_ack_205(const uint8_t *d, size_t len)
{
    assert_true(len >= 4);
    assert_int_equal(d[0] >> 6, 1);     /* version */
    assert_int_equal(d[0] >> 4 & 3, 2); /* ACK: piggybacked */
    assert_int_equal(d[1], 0x45);       /* 2.05 Content */
    assert_int_equal(d[2], 0x12);
    assert_int_equal(d[3], 0x34);
}

/* A plain CoAP request comes back in the outbox, from the interface it
 * arrived on, to its sender. */
static void test_plain_request_answered(void **state)
{
    fx_t *f = *state;
    tether_pipeline_t *p = f->p[1];
    tether_pipeline_out_clear(p);
    tether_addr_t client = v4(40000);
    assert_int_equal(tether_pipeline_input(p, IF_PLAIN, &client, get_core, sizeof get_core, f->now),
                     0);
    size_t n = tether_pipeline_out_count(p), answers = 0;
    for (size_t i = 0; i < n; i++) {
        const tether_dgram_t *d = tether_pipeline_out_get(p, i);
        if (d->iface != IF_PLAIN)
            continue;
        assert_true(tether_addr_equal(&d->to, &client));
        assert_ack_205(d->data, d->len);
        answers++;
    }
    assert_int_equal(answers, 1);
    assert_int_equal(tether_node_stats(tether_pipeline_node(p))->requests_local, 1);
    tether_pipeline_out_clear(p);
    assert_int_equal(tether_pipeline_input(p, 9, &client, get_core, sizeof get_core, f->now),
                     TETHER_EINVAL);
}

/* An operator request (internal link) is answered through internal_take,
 * never through the datagram outbox. */
static void test_internal_request(void **state)
{
    fx_t *f = *state;
    tether_pipeline_t *p = f->p[1];
    tether_pipeline_out_clear(p);
    tether_pipeline_internal_input(p, 77, get_core, sizeof get_core, f->now);
    tether_out_t o;
    assert_true(tether_pipeline_internal_take(p, &o));
    assert_int_equal(o.link.kind, TETHER_LINK_INTERNAL);
    assert_int_equal(o.link.id, 77);
    assert_ack_205(o.data, o.len);
    assert_false(tether_pipeline_internal_take(p, &o));
    for (size_t i = 0; i < tether_pipeline_out_count(p); i++)
        assert_int_equal(tether_pipeline_out_get(p, i)->iface, IF_CLUSTER);
}

/* Heartbeats follow the one next deadline: each node's tick sends one to
 * the other on the cluster interface, which then counts it alive; without
 * heartbeats it is dead again after alive_ms. */
static void test_heartbeats_and_liveness(void **state)
{
    fx_t *f = *state;
    tether_channel_t *ch2 = tether_pipeline_channel(f->p[2]);
    assert_false(tether_channel_node_alive(ch2, 1, f->wall));
    tether_time_t due = tether_pipeline_next_deadline(f->p[1]);
    assert_true(due <= f->now); /* the first heartbeats are due at once */
    step(f, 0);
    assert_true(deliver_cluster(f, 1) >= 1);
    assert_true(tether_channel_node_alive(ch2, 1, f->wall));
    deliver_cluster(f, 2);
    /* The next heartbeat is a deadline in the future, on the `now` clock. */
    due = tether_pipeline_next_deadline(f->p[1]);
    assert_true(due > f->now && due < UINT64_MAX);
    step(f, due - f->now);
    assert_true(deliver_cluster(f, 1) >= 1);
    /* Node 1 goes quiet: node 2 sees it dead once alive_ms (5 s) passed. */
    for (int i = 0; i < 7; i++) {
        step(f, 1000);
        tether_pipeline_out_clear(f->p[1]);
        deliver_cluster(f, 2);
    }
    assert_false(tether_channel_node_alive(ch2, 1, f->wall));
}

/* A DTLS record whose CID names node 2, arriving at node 1's DTLS
 * listener, leaves node 1 on the cluster interface and enters node 2's
 * DTLS layer (which drops it: no such session there), without touching
 * node 1's DTLS layer. */
static void test_cid_forwarded_to_owner(void **state)
{
    fx_t *f = *state;
    step(f, 0);
    deliver_cluster(f, 1);
    deliver_cluster(f, 2);
    uint8_t rec[13 + 8 + 2 + 24] = {25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7};
    rec[11] = 2; /* CID byte 0: the node that issued it */
    for (int i = 12; i < 19; i++)
        rec[i] = (uint8_t)i;
    rec[19] = 0;
    rec[20] = 0;
    rec[21] = 24;
    tether_addr_t client = v4(41000);
    tether_pipeline_out_clear(f->p[1]);
    assert_int_equal(tether_pipeline_input(f->p[1], IF_DTLS, &client, rec, sizeof rec, f->now), 0);
    const tether_dtls_stats_t *d1 = tether_dtls_stats(tether_pipeline_dtls(f->p[1]));
    const tether_dtls_stats_t *d2 = tether_dtls_stats(tether_pipeline_dtls(f->p[2]));
    assert_int_equal(d1->unknown_cid_dropped, 0);
    assert_int_equal(tether_channel_stats(tether_pipeline_channel(f->p[1]))->forwarded_records, 1);
    assert_int_equal(deliver_cluster(f, 1), 1);
    assert_int_equal(tether_channel_stats(tether_pipeline_channel(f->p[2]))->forwarded_in, 1);
    assert_int_equal(d2->unknown_cid_dropped, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_request_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_internal_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeats_and_liveness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cid_forwarded_to_owner, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
