/* Unit tests for what lib/dtls/ does with hellos before a session exists
 * (listener.c, hello.c, ratelimit.c, ident.c, handshake.c): cookies
 * (amplification bound, secret rotation, shared by a cluster), the
 * node-wide hello budget, hellos with too many PSK identities, and the
 * limits that keep attackers from holding the handshake table: per
 * source, per prefix (IPv4-mapped sources included), resent flights, the
 * handshake rate per source, and sessions per identity (SPEC S2, S10).
 * Fixture: dtls_fixture.h. */
#include "dtls_fixture.h"

static void test_spoofed_hellos_allocate_nothing(void **state)
{
    fixture_t *f = *state;
    client_init(&f->c, true);
    assert_int_equal(wolfSSL_connect(f->c.ssl), -1); /* emits the first ClientHello */
    assert_int_equal(f->c.out.n, 1);
    uint8_t ch[TETHER_DTLS_MAX_DGRAM];
    size_t n = f->c.out.len[0];
    memcpy(ch, f->c.out.d[0], n);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    for (int i = 0; i < 10000; i++) {
        tether_addr_t a = addr((uint16_t)(1024 + i));
        tether_dtls_rx_t rx;
        /* 10 a millisecond: within the node-wide hello budget (20,000/s) */
        tether_dtls_input(f->srv, 0, &a, ch, n, now_ms + (tether_time_t)i / 10, &rx);
        /* Amplification bound: the HelloVerifyRequest is smaller than the hello. */
        assert_int_equal(tether_dtls_tx_count(f->srv), 1);
        assert_true(tether_dtls_tx_get(f->srv, 0)->len <= 3 * n);
        tether_dtls_tx_clear(f->srv);
    }
    assert_int_equal(st->hello_verify_sent, 10000);
    assert_int_equal(st->handshakes_inflight, 0);
    assert_int_equal(st->sessions_active, 0);
    /* All at once: a tenth of a second's budget is looked at, the rest is
     * dropped before any cookie work (dtls.hello_rate). */
    tether_time_t t = now_ms + 10000;
    for (int i = 0; i < 5000; i++) {
        tether_addr_t a = addr((uint16_t)(20000 + i));
        tether_dtls_rx_t rx;
        tether_dtls_input(f->srv, 0, &a, ch, n, t, &rx);
        tether_dtls_tx_clear(f->srv);
    }
    assert_int_equal(st->hello_verify_sent, 10000 + 2000);
    assert_int_equal(st->hellos_over_budget, 3000);
}

static void set16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void set24(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 16);
    set16(p + 1, v);
}
static size_t get16(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

/* Repeats the first identity of a whole ClientHello's pre_shared_key
 * extension (the last one, RFC 8446 §4.2.11) `extra` more times and fixes
 * every length (extension, extensions, message, fragment, record). */
static size_t add_psk_identities(uint8_t *b, size_t len, int extra)
{
    size_t p = 13 + 12 + 2 + 32;
    p += 1 + b[p];         /* session id */
    p += 1 + b[p];         /* cookie */
    p += 2 + get16(b + p); /* suites */
    p += 1 + b[p];         /* compression */
    size_t exts_at = p, e = p + 2;
    while (get16(b + e) != 41)
        e += 4 + get16(b + e + 2);
    size_t ids_at = e + 4, id_len = 2 + get16(b + ids_at + 2) + 4;
    uint8_t id[256];
    memcpy(id, b + ids_at + 2, id_len);
    size_t grow = (size_t)extra * id_len, tail = ids_at + 2 + id_len;
    memmove(b + tail + grow, b + tail, len - tail);
    for (int i = 0; i < extra; i++)
        memcpy(b + tail + (size_t)i * id_len, id, id_len);
    set16(b + ids_at, get16(b + ids_at) + grow);
    set16(b + e + 2, get16(b + e + 2) + grow);
    set16(b + exts_at, get16(b + exts_at) + grow);
    size_t mlen = ((size_t)b[14] << 16 | get16(b + 15)) + grow;
    set24(b + 14, mlen);
    set24(b + 22, mlen);
    set16(b + 11, get16(b + 11) + grow);
    return len + grow;
}

/* SPEC S10: a hello offering more than two PSK identities is refused before
 * wolfSSL looks any of them up (no HelloRetryRequest, counted); two are
 * still answered. */
static void test_hello_with_many_psk_identities_refused(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    client_opts_t o = {.dtls13 = true};
    client_init_opts(&f->c, true, &o);
    wolfSSL_connect(f->c.ssl);
    assert_int_equal(f->c.out.n, 1);
    uint8_t orig[TETHER_DTLS_MAX_DGRAM];
    size_t olen = f->c.out.len[0];
    memcpy(orig, f->c.out.d[0], olen);
    f->c.out.n = 0;
    tether_addr_t a = addr(49000);
    tether_dtls_rx_t rx;
    for (int extra = 0; extra <= 29; extra++) {
        uint8_t b[TETHER_DTLS_MAX_DGRAM];
        memcpy(b, orig, olen);
        size_t n = add_psk_identities(b, olen, extra);
        uint64_t hrr = st->hello_verify_sent, refused = st->hellos_refused;
        tether_dtls_input(f->srv, 0, &a, b, n, now_ms, &rx);
        bool allowed = extra + 1 <= TETHER_DTLS_MAX_PSK_IDENTITIES;
        assert_int_equal(st->hello_verify_sent, hrr + allowed);
        assert_int_equal(st->hellos_refused, refused + !allowed);
        assert_int_equal(tether_dtls_tx_count(f->srv), allowed);
        tether_dtls_tx_clear(f->srv);
    }
    assert_int_equal(st->hellos_refused, 29 - 1);
    assert_int_equal(st->handshakes_inflight, 0);
}

/* Runs a client's side until it waits for the server's second flight:
 * hello, cookie, hello with the cookie (the server now holds a slot). */
static void start_and_stall(tether_dtls_srv_t *srv, client_t *c, const tether_addr_t *from)
{
    tether_dtls_rx_t rx;
    for (int i = 0; i < 2; i++) {
        wolfSSL_connect(c->ssl);
        for (size_t k = 0; k < c->out.n; k++)
            tether_dtls_input(srv, 0, from, c->out.d[k], c->out.len[k], now_ms, &rx);
        c->out.n = 0;
        pump_to_client(srv, c);
    }
    tether_dtls_tx_clear(srv);
}

/* SPEC S2 / the security review: two sources that hold valid cookies and
 * open handshakes as fast as they like cannot stop a third from completing
 * one. Each source keeps at most max_handshakes_per_source in flight (its
 * own oldest goes first); stalled ones go after the flight timeout. */
static void test_two_sources_cannot_starve_a_third(void **state)
{
    (void)state;
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    conf.max_handshakes = 16;
    conf.max_handshakes_per_source = 8;
    conf.handshake_rate_per_source = 0;
    fixture_t *f = make_fixture(false, &conf);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    enum { PER = 12 };
    static client_t atk[2][PER];
    for (int src = 0; src < 2; src++)
        for (int i = 0; i < PER; i++) {
            client_init(&atk[src][i], false);
            tether_addr_t a = addr_on((uint8_t)(1 + src), (uint16_t)(50000 + i));
            start_and_stall(f->srv, &atk[src][i], &a);
        }
    /* Each source holds 8: its others wait, none of its live ones is
     * dropped for them. The table (16) is full. */
    assert_int_equal(st->handshakes_inflight, 16);
    assert_int_equal(st->handshakes_evicted, 0);
    assert_int_equal(st->dropped_limit, 2 * (PER - 8));

    /* Once they have stalled, a source at its cap gives its own up. */
    now_ms += conf.handshake_flight_timeout_ms / 2;
    tether_addr_t again = addr_on(1, 50099);
    client_t late;
    client_init(&late, false);
    start_and_stall(f->srv, &late, &again);
    assert_int_equal(st->handshakes_evicted, 1);
    assert_int_equal(st->handshakes_inflight, 16);

    /* A third source completes at once in the full table. */
    client_init(&f->c, true);
    tether_addr_t c3 = addr_on(3, 50100);
    tether_dtls_rx_t rx;
    int done = -1;
    for (int i = 0; i < 20 && done < 0; i++) {
        int r = wolfSSL_connect(f->c.ssl);
        for (size_t k = 0; k < f->c.out.n; k++)
            tether_dtls_input(f->srv, 0, &c3, f->c.out.d[k], f->c.out.len[k], now_ms, &rx);
        f->c.out.n = 0;
        pump_to_client(f->srv, &f->c);
        if (r == WOLFSSL_SUCCESS)
            done = 0;
    }
    assert_int_equal(done, 0);
    assert_int_equal(st->handshakes_full, 1);
    assert_int_equal(st->sessions_active, 1);
    assert_int_equal(st->handshakes_evicted, 2);
    assert_int_equal(st->handshakes_inflight, 15);

    /* Stalled attempts go after the flight timeout, long before the
     * handshake timeout. */
    tether_dtls_tick(f->srv, now_ms + conf.handshake_flight_timeout_ms);
    assert_int_equal(st->handshakes_inflight, 0);
    assert_int_equal(st->handshakes_stalled, 15);
    assert_int_equal(st->sessions_active, 1);
    now_ms -= conf.handshake_flight_timeout_ms / 2;
    client_free(&late);
    for (int src = 0; src < 2; src++)
        for (int i = 0; i < PER; i++)
            client_free(&atk[src][i]);
    teardown((void **)&f);
}

/* The security review: a stalled handshake was kept alive by any datagram
 * from its source, so ~1,250 sources resending their hello held the whole
 * table. Only progress counts now: handshakes whose peers only resend
 * their last flight stall out, the table makes room, and a newcomer from
 * another source completes. */
static void test_resent_flights_do_not_hold_the_table(void **state)
{
    (void)state;
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    conf.max_handshakes = 4;
    conf.max_handshakes_per_source = 0;
    conf.handshake_rate_per_source = 0;
    fixture_t *f = make_fixture(false, &conf);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    enum { N = 4 };
    static client_t atk[N];
    static uint8_t last[N][TETHER_DTLS_MAX_DGRAM];
    size_t last_len[N];
    tether_addr_t from[N];
    tether_dtls_rx_t rx;
    for (int i = 0; i < N; i++) {
        client_init(&atk[i], false);
        from[i] = addr_on(1, (uint16_t)(51000 + i));
        for (int round = 0; round < 2; round++) { /* hello, then hello + cookie */
            wolfSSL_connect(atk[i].ssl);
            assert_int_equal(atk[i].out.n, 1);
            memcpy(last[i], atk[i].out.d[0], atk[i].out.len[0]);
            last_len[i] = atk[i].out.len[0];
            tether_dtls_input(f->srv, 0, &from[i], last[i], last_len[i], now_ms, &rx);
            atk[i].out.n = 0;
            pump_to_client(f->srv, &atk[i]);
        }
    }
    tether_dtls_tx_clear(f->srv);
    assert_int_equal(st->handshakes_inflight, N);
    /* Every quarter flight timeout each attacker resends its hello. */
    tether_time_t start = now_ms;
    while (now_ms < start + 2 * conf.handshake_flight_timeout_ms) {
        now_ms += conf.handshake_flight_timeout_ms / 4;
        for (int i = 0; i < N; i++)
            tether_dtls_input(f->srv, 0, &from[i], last[i], last_len[i], now_ms, &rx);
        tether_dtls_tick(f->srv, now_ms);
        tether_dtls_tx_clear(f->srv);
    }
    assert_int_equal(st->handshakes_stalled, N);
    /* The resent hellos now start handshakes anew; each of them is the
     * newest, so a newcomer still finds a stalled one to replace later. */
    now_ms += conf.handshake_flight_timeout_ms / 2;
    assert_int_equal(handshake_from(f, 0x0a000301, 51100), 0); /* another source */
    assert_int_equal(st->handshakes_full, 1);
    for (int i = 0; i < N; i++)
        client_free(&atk[i]);
    teardown((void **)&f);
}

/* max_handshakes_per_prefix: three addresses of 10.0.1.0/24 hold its
 * three slots; a fourth address there waits (counted), another network
 * completes, and once the three stall out the fourth gets in. Addresses
 * are made by `at` (IPv4, or IPv4-mapped IPv6). */
static void prefix_cap_holds(tether_addr_t (*at)(uint32_t ip, uint16_t port))
{
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    conf.max_handshakes_per_prefix = 3;
    conf.max_handshakes_per_source = 0;
    conf.handshake_rate_per_source = 0;
    fixture_t *f = make_fixture(false, &conf);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    static client_t atk[3];
    for (int i = 0; i < 3; i++) {
        client_init(&atk[i], false);
        tether_addr_t a = at(0x0a000102u + (uint32_t)i, 52000);
        start_and_stall(f->srv, &atk[i], &a);
    }
    assert_int_equal(st->handshakes_inflight, 3);
    tether_addr_t same = at(0x0a000180, 52000), other = at(0x0a000201, 52000);
    assert_int_not_equal(handshake_at(f, &same), 0);
    assert_true(st->handshakes_prefix_limited > 0);
    assert_int_equal(handshake_at(f, &other), 0);
    now_ms += conf.handshake_flight_timeout_ms;
    tether_dtls_tick(f->srv, now_ms);
    assert_int_equal(st->handshakes_inflight, 0);
    assert_int_equal(handshake_at(f, &same), 0);
    assert_int_equal(st->handshakes_full, 2);
    for (int i = 0; i < 3; i++)
        client_free(&atk[i]);
    teardown((void **)&f);
}

static void test_handshakes_per_prefix(void **state)
{
    (void)state;
    prefix_cap_holds(addr_ip);
}

/* The security review: behind a dual-stack listener every IPv4 peer is
 * ::ffff:a.b.c.d, whose first 64 bits are the same for all of them; the
 * per-source and per-prefix keys took those bits, so one IPv4 network
 * held the prefix cap (and the per-source rate) of all IPv4. A mapped
 * address now counts as the IPv4 address it maps. */
static void test_v4_mapped_sources_are_ipv4(void **state)
{
    (void)state;
    prefix_cap_holds(addr_mapped);
}

/* A cookie secret rotation between the cookie round trip and the hello
 * that returns the cookie does not fail the handshake (the previous secret
 * is still accepted), for DTLS 1.2 (HelloVerifyRequest) and DTLS 1.3 (HRR,
 * where a second HRR would be fatal for the client). */
static void test_cookie_survives_rotation(void **state)
{
    fixture_t *f = *state;
    for (int v13 = 0; v13 < 2; v13++) {
        client_opts_t o = {.dtls13 = v13};
        client_init_opts(&f->c, true, &o);
        tether_dtls_rx_t rx;
        uint16_t port = (uint16_t)(49000 + v13);
        assert_int_equal(wolfSSL_connect(f->c.ssl), -1);
        feed(f->srv, &f->c, port, &rx); /* hello -> cookie */
        now_ms += 300001;               /* past cookie_rotate_ms */
        tether_dtls_tick(f->srv, now_ms);
        assert_int_equal(handshake(f->srv, &f->c, port), 0);
        client_free(&f->c);
        memset(&f->c, 0, sizeof f->c);
    }
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    assert_int_equal(st->handshakes_full, 2);
    assert_int_equal(st->hello_verify_sent, 2);
    client_init(&f->c, false);
}

/* Two nodes of a cluster (same cluster key), started at different times on
 * different hosts' monotonic clocks but sharing the wall clock: a cookie
 * one of them issued is accepted by the other (SPEC S2). */

static void test_cookie_shared_by_cluster(void **state)
{
    (void)state;
    tether_dtls_conf_t conf;
    cluster_conf(&conf);
    tether_time_t t0 = now_ms;
    fixture_t *a = make_fixture(false, &conf);
    now_ms = t0 + 987654321; /* the other host has been up much longer */
    fixture_t *b = make_fixture(false, &conf);
    tether_time_t wall = 1795000000000ull;
    tether_dtls_set_wall_clock(a->srv, wall);
    tether_dtls_set_wall_clock(b->srv, wall + 150); /* clocks a little apart */
    client_init(&a->c, true);
    tether_dtls_rx_t rx;
    assert_int_equal(wolfSSL_connect(a->c.ssl), -1);
    feed(a->srv, &a->c, 54000, &rx); /* hello -> node a's cookie */
    assert_int_equal(tether_dtls_stats(a->srv)->hello_verify_sent, 1);
    assert_int_equal(handshake(b->srv, &a->c, 54000), 0); /* the rest at node b */
    assert_int_equal(tether_dtls_stats(b->srv)->hello_verify_sent, 0);
    assert_int_equal(tether_dtls_stats(b->srv)->handshakes_full, 1);
    now_ms = t0;
    client_init(&b->c, false);
    teardown((void **)&a);
    teardown((void **)&b);
}

/* 1 handshake per second per source, burst 2: the third handshake from one
 * address within the second is refused after its cookie exchange (no
 * session), and a second later that address gets one more in. (Separate
 * buckets per address: test_ratelimit, which can fix the hash key.) */
static void test_handshake_rate_per_source(void **state)
{
    (void)state;
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    conf.handshake_rate_per_source = 1;
    conf.handshake_burst_per_source = 2;
    fixture_t *f = make_fixture(false, &conf);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    tether_time_t t0 = now_ms;
    assert_int_equal(handshake_from(f, 0x0a000007, 1000), 0);
    assert_int_equal(handshake_from(f, 0x0a000007, 1001), 0);
    assert_int_equal(handshake_from(f, 0x0a000007, 1002), -1);
    assert_int_equal(st->dropped_rate, 1);
    assert_int_equal(st->handshakes_inflight, 0);
    assert_int_equal(st->sessions_active, 2);
    assert_true(st->hello_verify_sent >= 3); /* the cookie exchange still ran */
    now_ms += 1000;
    assert_int_equal(handshake_from(f, 0x0a000007, 1003), 0);
    assert_int_equal(handshake_from(f, 0x0a000007, 1004), -1);
    assert_int_equal(st->handshakes_full, 3);
    now_ms = t0;
    client_init(&f->c, false);
    teardown((void **)&f);
}

/* The security review: established sessions are never evicted, so one
 * credential could open max_sessions of them from many ports (or resume
 * them cheaply) and keep every other device out until the idle timeout.
 * At max_sessions_per_identity (2 here) the identity's oldest session
 * goes when a new one is established; the newer ones keep working. */
static void test_sessions_per_identity(void **state)
{
    (void)state;
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    conf.max_sessions_per_identity = 2;
    fixture_t *f = make_fixture(false, &conf);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    static client_t c[3];
    uint64_t first = 0;
    for (int i = 0; i < 3; i++) {
        client_init(&c[i], true);
        assert_int_equal(handshake(f->srv, &c[i], (uint16_t)(52600 + i)), 0);
        if (i == 0) {
            first = tether_dtls_sess_id(exchange_as(f, &c[0], 52600, "first"));
            tether_dtls_events_clear(f->srv);
        }
    }
    assert_int_equal(st->handshakes_full, 3);
    assert_int_equal(st->sessions_active, 2);
    assert_int_equal(st->sessions_identity_capped, 1);
    assert_null(tether_dtls_sess_find(f->srv, first));
    const tether_dtls_event_t *ev;
    size_t n = tether_dtls_events(f->srv, &ev);
    assert_true(n >= 1);
    assert_int_equal(ev[n - 1].kind, TETHER_DTLS_EV_CLOSED);
    assert_int_equal(ev[n - 1].why, TETHER_DTLS_WHY_REPLACED);
    assert_int_equal(ev[n - 1].id, first);
    for (int i = 1; i < 3; i++)
        assert_string_equal(
            tether_dtls_sess_identity(exchange_as(f, &c[i], (uint16_t)(52600 + i), "on")), "dev1");
    for (int i = 0; i < 3; i++)
        client_free(&c[i]);
    client_init(&f->c, false);
    teardown((void **)&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spoofed_hellos_allocate_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_with_many_psk_identities_refused, setup,
                                        teardown),
        cmocka_unit_test(test_handshake_rate_per_source),
        cmocka_unit_test(test_two_sources_cannot_starve_a_third),
        cmocka_unit_test(test_resent_flights_do_not_hold_the_table),
        cmocka_unit_test(test_handshakes_per_prefix),
        cmocka_unit_test(test_v4_mapped_sources_are_ipv4),
        cmocka_unit_test(test_sessions_per_identity),
        cmocka_unit_test(test_cookie_shared_by_cluster),
        cmocka_unit_test_setup_teardown(test_cookie_survives_rotation, setup, teardown),
    };
    return cmocka_run_group_tests_name("dtls_hello", tests, group_setup, group_teardown);
}
