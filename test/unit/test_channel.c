/* Unit tests for lib/cluster/channel.c, sans-I/O: channels of nodes 1, 2
 * and 3 exchange their outboxes in memory with a stepped wall clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "tether/channel.h"

static const uint8_t key[] = "cluster-key-for-tests-0123456789";
static tether_time_t now = 1700000000000ull;

static tether_addr_t v4(const char *ip, uint16_t port)
{
    tether_addr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    inet_pton(AF_INET, ip, &s->sin_addr);
    a.len = sizeof *s;
    return a;
}

static size_t bundle_bytes; /* conf.bundle_max of the channels node() makes */

static tether_channel_t *node(uint8_t id)
{
    tether_channel_conf_t c;
    tether_channel_conf_defaults(&c);
    c.bundle_max = bundle_bytes;
    c.self = id;
    c.key = key;
    c.key_len = sizeof key - 1;
    c.via_idle_ms = 60000;
    tether_channel_t *ch;
    assert_int_equal(tether_channel_create(&c, now, &ch), 0);
    for (uint8_t n = 1; n <= 3; n++) {
        char ip[16];
        snprintf(ip, sizeof ip, "10.0.0.%u", n);
        tether_addr_t a = v4(ip, 7000);
        assert_int_equal(tether_channel_add_node(ch, n, &a), n == id ? TETHER_EEXIST : 0);
    }
    return ch;
}

/* The one datagram in `from`'s outbox (asserted), copied out. */
static size_t take(tether_channel_t *from, uint8_t *buf)
{
    assert_int_equal(tether_channel_out_count(from), 1);
    const tether_channel_dgram_t *d = tether_channel_out_get(from, 0);
    memcpy(buf, d->data, d->len);
    size_t n = d->len;
    tether_channel_out_clear(from);
    return n;
}

static const uint8_t rec12[] = {25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, /* CID: node */ 2, 9, 9, 9};

/* A record for node 2's CID reaching node 1 on listener 3 is forwarded;
 * node 2 delivers it with the listener index; its answer goes back as a
 * REPLY to node 1 for that listener. */
static void test_forward_and_reply(void **state)
{
    (void)state;
    tether_channel_t *a = node(1), *b = node(2);
    tether_addr_t client = v4("198.51.100.7", 40000), src = v4("10.0.0.1", 7000);
    assert_true(tether_channel_route_in(a, 3, &client, rec12, sizeof rec12, now));
    uint8_t buf[4096];
    size_t n = take(a, buf);
    tether_channel_rx_t rx;
    assert_int_equal(tether_channel_input(b, &src, buf, n, now, &rx), 0);
    assert_int_equal(rx.kind, TETHER_CHANNEL_RX_DELIVER);
    assert_int_equal(rx.via, 1);
    assert_int_equal(rx.iface, 3);
    assert_true(tether_addr_equal(&rx.client, &client));
    assert_int_equal(rx.len, sizeof rec12);
    assert_memory_equal(rx.payload, rec12, sizeof rec12);

    /* Not yet authenticated: node 2 answers from its own listener. */
    assert_false(tether_channel_route_out(b, 5, &client, 3, (const uint8_t *)"ans", 3, now));
    tether_channel_authenticated(b, 5, 1, now);
    assert_true(tether_channel_route_out(b, 5, &client, 3, (const uint8_t *)"ans", 3, now));
    n = take(b, buf);
    assert_int_equal(tether_channel_input(a, &src, buf, n, now, &rx), 0);
    assert_int_equal(rx.kind, TETHER_CHANNEL_RX_REPLY);
    assert_int_equal(rx.iface, 3);
    assert_true(tether_addr_equal(&rx.client, &client));
    assert_memory_equal(rx.payload, "ans", 3);
    /* A record for ourselves, or without a CID, is not forwarded. */
    uint8_t own[sizeof rec12];
    memcpy(own, rec12, sizeof own);
    own[11] = 1;
    assert_false(tether_channel_route_in(a, 0, &client, own, sizeof own, now));
    own[0] = 23;
    assert_false(tether_channel_route_in(a, 0, &client, own, sizeof own, now));
    /* Straight to node 2 again: its own listener answers. */
    tether_channel_authenticated(b, 5, 0, now);
    assert_false(tether_channel_route_out(b, 5, &client, 3, (const uint8_t *)"ans", 3, now));
    const tether_channel_stats_t *st = tether_channel_stats(b);
    assert_int_equal(st->forwarded_in, 1);
    assert_int_equal(st->replies_out, 1);
    tether_channel_destroy(a);
    tether_channel_destroy(b);
}

/* The security review: the route table was keyed by client address, so a
 * credential holder whose own CID session followed a spoofed address A
 * through node 1 (one authenticated record) sent the answers of A's real
 * session, straight to node 2, out of node 1, where A's NAT drops them.
 * Routes are per session now: only the session whose record came through
 * node 1 answers through it, and a closed session's route goes. */
static void test_route_is_per_session(void **state)
{
    (void)state;
    tether_channel_t *b = node(2);
    tether_addr_t a = v4("198.51.100.7", 40000);
    const uint64_t victim = 5, spoofer = 6;
    tether_channel_authenticated(b, victim, 0, now);  /* straight to node 2 */
    tether_channel_authenticated(b, spoofer, 1, now); /* at A too, through node 1 */
    assert_false(tether_channel_route_out(b, victim, &a, 0, (const uint8_t *)"v", 1, now));
    assert_true(tether_channel_route_out(b, spoofer, &a, 0, (const uint8_t *)"s", 1, now));
    /* No session (a cookie exchange) is never routed. */
    assert_false(tether_channel_route_out(b, 0, &a, 0, (const uint8_t *)"h", 1, now));
    tether_channel_forget(b, spoofer);
    assert_false(tether_channel_route_out(b, spoofer, &a, 0, (const uint8_t *)"s", 1, now));
    assert_int_equal(tether_channel_stats(b)->replies_out, 1);
    tether_channel_destroy(b);
}

/* A captured message is refused on replay, within the timestamp window;
 * reordered ones are accepted once; one older than the window is refused. */
static void test_replay_window(void **state)
{
    (void)state;
    tether_channel_t *a = node(1), *b = node(2);
    tether_addr_t client = v4("198.51.100.7", 40000), src = v4("10.0.0.1", 7000);
    enum { N = 70 };
    static uint8_t msg[N][256];
    size_t len[N];
    for (int i = 0; i < N; i++) {
        assert_true(tether_channel_route_in(a, 0, &client, rec12, sizeof rec12, now));
        len[i] = take(a, msg[i]);
    }
    tether_channel_rx_t rx;
    const tether_channel_stats_t *st = tether_channel_stats(b);
    assert_int_equal(tether_channel_input(b, &src, msg[5], len[5], now, &rx), 0);
    assert_int_equal(tether_channel_input(b, &src, msg[5], len[5], now, &rx), TETHER_EEXIST);
    assert_int_equal(rx.kind, TETHER_CHANNEL_RX_NONE);
    assert_int_equal(tether_channel_input(b, &src, msg[3], len[3], now, &rx), 0);
    assert_int_equal(tether_channel_input(b, &src, msg[4], len[4], now, &rx), 0);
    assert_int_equal(tether_channel_input(b, &src, msg[3], len[3], now, &rx), TETHER_EEXIST);
    assert_int_equal(tether_channel_input(b, &src, msg[69], len[69], now, &rx), 0);
    /* 69 - 64 = 5 is the oldest the window still holds; 4 is out of it. */
    assert_int_equal(tether_channel_input(b, &src, msg[6], len[6], now, &rx), 0);
    assert_int_equal(tether_channel_input(b, &src, msg[2], len[2], now, &rx), TETHER_EEXIST);
    assert_int_equal(tether_channel_input(b, &src, msg[69], len[69], now, &rx), TETHER_EEXIST);
    assert_int_equal(st->replayed, 4);
    assert_int_equal(st->forwarded_in, 5);
    /* A node that restarts later continues above its old counters. */
    now += 10;
    tether_channel_t *a2 = node(1);
    assert_true(tether_channel_route_in(a2, 0, &client, rec12, sizeof rec12, now));
    len[0] = take(a2, msg[0]);
    assert_int_equal(tether_channel_input(b, &src, msg[0], len[0], now, &rx), 0);
    /* A receiver that restarts has empty windows: a message captured before
     * the restart, replayed within the skew, is still refused; what the
     * sender sends after it is accepted. */
    now += 1000;
    tether_channel_t *b2 = node(2);
    const tether_channel_stats_t *st2 = tether_channel_stats(b2);
    assert_int_equal(tether_channel_input(b2, &src, msg[0], len[0], now, &rx), TETHER_EEXIST);
    assert_int_equal(tether_channel_input(b2, &src, msg[60], len[60], now, &rx), TETHER_EEXIST);
    assert_int_equal(st2->replayed, 2);
    assert_true(tether_channel_route_in(a2, 0, &client, rec12, sizeof rec12, now));
    len[1] = take(a2, msg[1]);
    assert_int_equal(tether_channel_input(b2, &src, msg[1], len[1], now, &rx), 0);
    assert_int_equal(rx.kind, TETHER_CHANNEL_RX_DELIVER);
    tether_channel_destroy(b2);
    tether_channel_destroy(a);
    tether_channel_destroy(a2);
    tether_channel_destroy(b);
}

/* Node 3 holds the cluster key but cannot pass a message off as node 1's
 * with its own pair key; a message for 1 -> 2 is refused by node 3 and,
 * reflected, by node 1; a message past the clock skew is refused. */
static void test_pair_keys(void **state)
{
    (void)state;
    tether_channel_t *a = node(1), *b = node(2), *c = node(3);
    tether_addr_t client = v4("198.51.100.7", 40000), src = v4("10.0.0.3", 7000);
    assert_true(tether_channel_route_in(c, 0, &client, rec12, sizeof rec12, now));
    uint8_t buf[4096];
    size_t n = take(c, buf);
    buf[4] = 1; /* claim to be node 1 */
    tether_channel_rx_t rx;
    assert_int_equal(tether_channel_input(b, &src, buf, n, now, &rx), TETHER_ECRYPTO);
    assert_true(tether_channel_route_in(a, 0, &client, rec12, sizeof rec12, now));
    n = take(a, buf);
    assert_int_equal(tether_channel_input(c, &src, buf, n, now, &rx), TETHER_ECRYPTO);
    uint8_t refl[4096];
    memcpy(refl, buf, n);
    refl[4] = 2, refl[5] = 1;
    assert_int_equal(tether_channel_input(a, &src, refl, n, now, &rx), TETHER_ECRYPTO);
    assert_int_equal(
        tether_channel_input(b, &src, buf, n, now + TETHER_CLUSTER_MAX_SKEW_MS + 1, &rx),
        TETHER_ETIMEDOUT);
    assert_int_equal(tether_channel_input(b, &src, buf, n, now, &rx), 0);
    assert_int_equal(tether_channel_stats(b)->rejected, 2);
    tether_channel_destroy(a);
    tether_channel_destroy(b);
    tether_channel_destroy(c);
}

/* Heartbeats at once and every heartbeat_ms; a node is alive while heard
 * from within alive_ms; routed clients expire after via_idle_ms. */
static void test_liveness_and_expiry(void **state)
{
    (void)state;
    tether_channel_t *a = node(1), *b = node(2);
    tether_addr_t src = v4("10.0.0.1", 7000), client = v4("198.51.100.8", 1);
    assert_int_equal(tether_channel_next_deadline(a), now);
    tether_channel_tick(a, now);
    assert_int_equal(tether_channel_out_count(a), 2); /* to nodes 2 and 3 */
    const tether_channel_dgram_t *hb = tether_channel_out_get(a, 0);
    assert_true(tether_addr_equal(
        &hb->to, &(tether_addr_t){v4("10.0.0.2", 7000).ss, sizeof(struct sockaddr_in)}));
    tether_channel_rx_t rx;
    assert_int_equal(tether_channel_input(b, &src, hb->data, hb->len, now, &rx), 0);
    assert_int_equal(rx.kind, TETHER_CHANNEL_RX_NONE);
    tether_channel_out_clear(a);
    assert_int_equal(tether_channel_next_deadline(a), now + 1000);
    assert_true(tether_channel_node_alive(b, 1, now + 5000));
    assert_false(tether_channel_node_alive(b, 1, now + 5001));
    assert_false(tether_channel_node_alive(b, 3, now));
    tether_channel_tick(b, now);
    assert_int_equal(tether_channel_stats(b)->nodes_alive, 2);
    assert_int_equal(tether_channel_stats(b)->nodes_configured, 3);
    tether_channel_tick(b, now + 5001);
    assert_int_equal(tether_channel_stats(b)->nodes_alive, 1);
    tether_channel_out_clear(b);

    tether_channel_authenticated(b, 5, 1, now);
    assert_true(tether_channel_next_deadline(b) <= now + 60000);
    tether_channel_tick(b, now + 60000);
    tether_channel_out_clear(b);
    assert_false(tether_channel_route_out(b, 5, &client, 0, (const uint8_t *)"x", 1, now + 60000));
    tether_channel_destroy(a);
    tether_channel_destroy(b);
}

/* A node that comes back at another address (a rescheduled pod) is
 * reached there once its lease names the address and an authenticated
 * message comes from it; a lease alone (forgeable by a writer to Redis)
 * or a message from elsewhere does not move it. */
static void test_node_moves_by_lease_and_message(void **state)
{
    (void)state;
    tether_channel_t *a = node(1), *b = node(2);
    tether_addr_t moved = v4("10.0.0.9", 7000), other = v4("10.0.0.66", 7000);
    assert_int_equal(tether_channel_node_lease(b, 1, &moved), 0);
    tether_channel_tick(b, now);
    const tether_channel_dgram_t *hb = tether_channel_out_get(b, 0);
    assert_true(tether_addr_equal(
        &hb->to, &(tether_addr_t){v4("10.0.0.1", 7000).ss, sizeof(struct sockaddr_in)}));
    tether_channel_out_clear(b);
    uint8_t buf[256];
    tether_channel_rx_t rx;
    tether_channel_tick(a, now);
    tether_channel_out_clear(a);
    tether_channel_tick(a, now + 1000); /* a heartbeat to node 2 (and 3) */
    size_t n = tether_channel_out_get(a, 0)->len;
    memcpy(buf, tether_channel_out_get(a, 0)->data, n);
    tether_channel_out_clear(a);
    assert_int_equal(tether_channel_input(b, &other, buf, n, now + 1000, &rx), 0);
    assert_int_equal(tether_channel_stats(b)->node_moves, 0); /* not from the lease's address */
    tether_channel_tick(a, now + 2000);
    n = tether_channel_out_get(a, 0)->len;
    memcpy(buf, tether_channel_out_get(a, 0)->data, n);
    tether_channel_out_clear(a);
    assert_int_equal(tether_channel_input(b, &moved, buf, n, now + 2000, &rx), 0);
    assert_int_equal(tether_channel_stats(b)->node_moves, 1);
    tether_channel_tick(b, now + 2000);
    hb = tether_channel_out_get(b, 0);
    assert_true(tether_addr_equal(&hb->to, &moved));
    tether_channel_destroy(a);
    tether_channel_destroy(b);
}

/* Bundling: records forwarded to node 2 in one batch share datagrams of
 * at most bundle_max bytes; node 2 takes every one out, in order, with its
 * own client and listener; a lone message goes plain; a bundle with one
 * damaged frame (re-MACed, so only the frame is wrong) is refused whole. */
static void test_bundles(void **state)
{
    (void)state;
    bundle_bytes = 400;
    tether_channel_t *a = node(1), *b = node(2), *c = node(3);
    tether_addr_t src = v4("10.0.0.1", 7000);
    uint8_t rec[40];
    memcpy(rec, rec12, sizeof rec12);
    for (int i = 0; i < 20; i++) {
        tether_addr_t client = v4("198.51.100.7", (uint16_t)(40000 + i));
        rec[20] = (uint8_t)i;
        assert_true(tether_channel_route_in(a, (uint8_t)(i % 3), &client, rec, sizeof rec, now));
    }
    rec[11] = 3; /* one for node 3 in between */
    assert_true(tether_channel_route_in(a, 0, &src, rec, sizeof rec, now));
    assert_int_equal(tether_channel_out_count(a), 0); /* nothing before the flush */
    tether_channel_flush(a, now);
    size_t n = tether_channel_out_count(a);
    /* 20 frames of 7 + 4 + 40 bytes in datagrams of 400 (42 of header, 16
     * of MAC): 6 per bundle, so 4 bundles, and node 3's message. */
    assert_int_equal(n, 5);
    int got = 0;
    for (size_t i = 0; i < n; i++) {
        const tether_channel_dgram_t *d = tether_channel_out_get(a, i);
        assert_true(d->len <= 400);
        tether_channel_rx_t rx;
        tether_channel_t *to = d->data[5] == 2 ? b : c;
        assert_int_equal(tether_channel_input(to, &src, d->data, d->len, now, &rx), 0);
        do {
            assert_int_equal(rx.kind, TETHER_CHANNEL_RX_DELIVER);
            if (to == c) {
                assert_int_equal(d->data[3], TETHER_CLUSTER_FORWARD); /* alone: plain */
                continue;
            }
            assert_int_equal(d->data[3], TETHER_CLUSTER_BUNDLE);
            tether_addr_t want = v4("198.51.100.7", (uint16_t)(40000 + got));
            assert_true(tether_addr_equal(&rx.client, &want));
            assert_int_equal(rx.iface, got % 3);
            assert_int_equal(rx.len, sizeof rec);
            assert_int_equal(rx.payload[20], got);
            got++;
        } while (tether_channel_input_more(to, &rx));
    }
    assert_int_equal(got, 20);
    assert_int_equal(tether_channel_stats(b)->forwarded_in, 20);
    assert_int_equal(tether_channel_stats(b)->bundles_in, 4);
    assert_int_equal(tether_channel_stats(c)->forwarded_in, 1);
    tether_channel_out_clear(a);

    /* A replayed bundle is refused like any message. */
    rec[11] = 2;
    for (int i = 0; i < 2; i++)
        assert_true(tether_channel_route_in(a, 0, &src, rec, sizeof rec, now));
    tether_channel_flush(a, now);
    uint8_t buf[4096];
    n = take(a, buf);
    tether_channel_rx_t rx;
    assert_int_equal(tether_channel_input(b, &src, buf, n, now, &rx), 0);
    assert_int_equal(tether_channel_input(b, &src, buf, n, now, &rx), TETHER_EEXIST);
    assert_false(tether_channel_input_more(b, &rx));

    /* A bundle whose second frame is cut short, MACed under the pair key
     * (channel.h: HKDF of the cluster key), as a node with a bug or a
     * compromised one could send: refused whole, its good first frame
     * not delivered. */
    uint8_t pair[32], frames[512];
    static const uint8_t salt[] = "tether-cluster-v2";
    const uint8_t info[6] = {'p', 'a', 'i', 'r', 1, 2};
    assert_int_equal(wc_HKDF(WC_SHA256, key, sizeof key - 1, salt, sizeof salt - 1, info,
                             sizeof info, pair, sizeof pair),
                     0);
    tether_cluster_msg_t f = {
        .type = TETHER_CLUSTER_FORWARD, .client = src, .payload = rec, .payload_len = sizeof rec};
    int fl = tether_cluster_frame_put(&f, frames, sizeof frames);
    assert_int_equal(fl, 7 + 4 + sizeof rec);
    memcpy(frames + fl, frames, 9); /* a second frame header, no payload */
    tether_cluster_msg_t m = {.type = TETHER_CLUSTER_BUNDLE,
                              .from_node = 1,
                              .to_node = 2,
                              .counter = 1ull << 62,
                              .sent_at = now,
                              .client = src,
                              .payload = frames,
                              .payload_len = (size_t)fl + 9};
    n = (size_t)tether_cluster_encode(&m, pair, sizeof pair, buf, sizeof buf);
    uint64_t before = tether_channel_stats(b)->forwarded_in;
    assert_int_equal(tether_channel_input(b, &src, buf, n, now, &rx), TETHER_EPROTO);
    assert_false(tether_channel_input_more(b, &rx));
    assert_int_equal(tether_channel_stats(b)->forwarded_in, before);
    /* Whole, the same bundle is taken (so the refusal was the frame's). */
    memcpy(frames + fl, frames, (size_t)fl);
    m.payload_len = 2 * (size_t)fl;
    m.counter++;
    n = (size_t)tether_cluster_encode(&m, pair, sizeof pair, buf, sizeof buf);
    assert_int_equal(tether_channel_input(b, &src, buf, n, now, &rx), 0);
    assert_true(tether_channel_input_more(b, &rx));
    assert_false(tether_channel_input_more(b, &rx));
    assert_int_equal(tether_channel_stats(b)->forwarded_in, before + 2);
    /* A frame cannot be a heartbeat or a bundle. */
    f.type = TETHER_CLUSTER_HEARTBEAT;
    assert_int_equal(tether_cluster_frame_put(&f, frames, sizeof frames), TETHER_EINVAL);
    f.type = TETHER_CLUSTER_BUNDLE;
    assert_int_equal(tether_cluster_frame_put(&f, frames, sizeof frames), TETHER_EINVAL);
    tether_channel_destroy(a);
    tether_channel_destroy(b);
    tether_channel_destroy(c);
    bundle_bytes = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_and_reply),
        cmocka_unit_test(test_route_is_per_session),
        cmocka_unit_test(test_replay_window),
        cmocka_unit_test(test_pair_keys),
        cmocka_unit_test(test_liveness_and_expiry),
        cmocka_unit_test(test_node_moves_by_lease_and_message),
        cmocka_unit_test(test_bundles),
    };
    return cmocka_run_group_tests_name("channel", tests, NULL, NULL);
}
