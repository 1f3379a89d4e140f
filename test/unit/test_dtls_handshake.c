/* Unit tests for lib/dtls/ handshakes and authentication (handshake.c,
 * listener.c, dtls.c): PSK over DTLS 1.2 and 1.3, client certificates
 * (accepted and refused), bad credentials, the handshake timeout, and the
 * poisoned-hello authentication bypass of the security review (SPEC S2).
 * Fixture: dtls_fixture.h. */
#include "dtls_fixture.h"

/* A wrong key and an unknown identity both end in a counted failure that
 * leaves no session behind. With a wrong key the client's Finished does not
 * decrypt and DTLS drops it silently, so that attempt ends at the handshake
 * timeout. */
static void test_bad_credentials_fail_cleanly(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    client_key = (const uint8_t *)"not-the-real-key";
    client_init(&f->c, true);
    assert_int_equal(handshake(f->srv, &f->c, 42000), -1);
    client_key = dev_key;
    tether_dtls_tick(f->srv, now_ms + 31000);
    assert_int_equal(st->handshakes_failed, 1);

    client_free(&f->c);
    client_init(&f->c, true);
    tether_creds_t *empty;
    assert_int_equal(tether_creds_empty(&empty), 0);
    tether_dtls_set_creds(f->srv, empty);
    assert_int_equal(handshake(f->srv, &f->c, 42001), -1);
    tether_dtls_set_creds(f->srv, f->creds);
    tether_creds_free(empty);
    assert_int_equal(st->handshakes_failed, 2);
    assert_int_equal(st->handshakes_full, 0);
    assert_int_equal(st->handshakes_inflight, 0);
    assert_int_equal(st->sessions_active, 0);
}

/* The handshake message types of the DTLS 1.2 plaintext handshake records
 * in one datagram (RFC 6347 §4.1: 13-byte record header, then the 12-byte
 * handshake header); -1 when a record overruns the datagram. */
static int handshake_types(const uint8_t *p, size_t len, uint8_t *types, size_t cap)
{
    size_t n = 0;
    while (len >= 13) {
        size_t rl = (size_t)p[11] << 8 | p[12];
        if (13 + rl > len)
            return -1;
        if (p[0] == 22 && rl >= 12 && n < cap)
            types[n++] = p[13];
        p += 13 + rl;
        len -= 13 + rl;
    }
    return len ? -1 : (int)n;
}

static void test_handshake_timeout_frees_the_attempt(void **state)
{
    fixture_t *f = *state;
    client_init(&f->c, false);
    tether_dtls_rx_t rx;
    /* Hello, HelloVerifyRequest, hello with cookie, then the client vanishes. */
    wolfSSL_connect(f->c.ssl);
    feed(f->srv, &f->c, 43000, &rx);
    wolfSSL_connect(f->c.ssl);
    feed(f->srv, &f->c, 43000, &rx);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    assert_int_equal(st->handshakes_inflight, 1);
    tether_dtls_tick(f->srv, now_ms + 1500); /* retransmits the server flight */
    /* The whole flight again, ServerHello and ServerHelloDone (PSK: no
     * certificate), both in one datagram (wolfSSL groups a flight's
     * messages: one send and one receive instead of two). */
    assert_int_equal(tether_dtls_tx_count(f->srv), 1);
    const tether_dgram_t *d = tether_dtls_tx_get(f->srv, 0);
    uint8_t types[4];
    assert_int_equal(handshake_types(d->data, d->len, types, sizeof types), 2);
    assert_int_equal(types[0], 2);  /* server_hello */
    assert_int_equal(types[1], 14); /* server_hello_done */
    tether_dtls_tx_clear(f->srv);
    tether_dtls_tick(f->srv, now_ms + 31000);
    assert_int_equal(st->handshakes_inflight, 0);
    assert_int_equal(st->handshakes_failed, 1);
}

static void test_x509_client_certificate(void **state)
{
    fixture_t *f = *state;
    client_opts_t o = {.cert = "dev7"};
    client_init_opts(&f->c, true, &o);
    assert_int_equal(handshake(f->srv, &f->c, 44000), 0);
    assert_string_equal(wolfSSL_get_cipher_name(f->c.ssl), "ECDHE-ECDSA-AES128-CCM-8");
    tether_dtls_sess_t *s = exchange(f, 44000, "hello from dev7");
    assert_string_equal(tether_dtls_sess_identity(s), "dev7");
    assert_int_equal(tether_dtls_sess_role(s), TETHER_ROLE_DEVICE);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    assert_int_equal(st->handshakes_full, 1);
    assert_int_equal(st->handshakes_x509, 1);
    assert_int_equal(st->handshakes_failed, 0);

    /* A PSK device still gets in on the same server (no certificate asked). */
    client_free(&f->c);
    client_init(&f->c, true);
    assert_int_equal(handshake(f->srv, &f->c, 44001), 0);
    s = exchange(f, 44001, "hello from dev1");
    assert_string_equal(tether_dtls_sess_identity(s), "dev1");
    assert_int_equal(st->handshakes_full, 2);
    assert_int_equal(st->handshakes_x509, 1);

    /* DTLS 1.3 with a certificate; and without one, which DTLS 1.3 lets the
     * handshake finish but tether refuses (no identity). */
    client_free(&f->c);
    o.dtls13 = true;
    client_init_opts(&f->c, true, &o);
    assert_int_equal(handshake(f->srv, &f->c, 44002), 0);
    assert_string_equal(wolfSSL_get_version(f->c.ssl), "DTLSv1.3");
    s = exchange(f, 44002, "dev7 over dtls 1.3");
    assert_string_equal(tether_dtls_sess_identity(s), "dev7");
    assert_int_equal(st->handshakes_x509, 2);
    client_free(&f->c);
    o.cert = "";
    client_init_opts(&f->c, true, &o);
    handshake(f->srv, &f->c, 44003);
    assert_int_equal(st->handshakes_failed, 1);
    assert_int_equal(st->handshakes_full, 3);
    assert_int_equal(st->sessions_active, 3);
}

/* Expired, signed by an unknown CA, a CN not in the credentials, and no
 * certificate at all on a certificate suite: each is refused during the
 * handshake, counted, and leaves nothing behind. */
static void test_x509_refused(void **state)
{
    fixture_t *f = *state;
    const char *bad[] = {"expired", "rogue", "stranger", ""};
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        client_opts_t o = {.cert = bad[i]};
        client_init_opts(&f->c, true, &o);
        assert_int_equal(handshake(f->srv, &f->c, (uint16_t)(45000 + i)), -1);
        assert_int_equal(st->handshakes_failed, i + 1);
        assert_int_equal(st->handshakes_inflight, 0);
        assert_int_equal(st->x509_rejected, i + 1);
        client_free(&f->c);
        memset(&f->c, 0, sizeof f->c);
    }
    assert_int_equal(st->handshakes_full, 0);
    assert_int_equal(st->sessions_active, 0);
    client_init(&f->c, false); /* for teardown */
}

/* An attacker's first flight: a cookieless DTLS 1.3 ClientHello offering
 * the PSK identity dev1 with a wrong key, sent once and abandoned. The
 * stateless listener answers it with a HelloRetryRequest; its PSK callback
 * saw "dev1" but no binder was ever checked. */
static void poison_listener(fixture_t *f, uint16_t port)
{
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    uint64_t hrr = st->hello_verify_sent;
    client_t atk;
    client_opts_t o = {.dtls13 = true};
    client_key = (const uint8_t *)"not-the-real-key";
    client_init_opts(&atk, true, &o);
    wolfSSL_connect(atk.ssl);
    assert_int_equal(atk.out.n, 1);
    /* test/integration/data/dtls13-psk-hello-dev1.bin was written here. */
    const char *dump = getenv("TETHER_DUMP_POISON_HELLO");
    if (dump) {
        FILE *fp = fopen(dump, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(atk.out.d[0], 1, atk.out.len[0], fp), atk.out.len[0]);
        fclose(fp);
    }
    tether_dtls_rx_t rx;
    feed(f->srv, &atk, port, &rx);
    client_key = dev_key;
    assert_int_equal(st->hello_verify_sent, hrr + 1); /* it reached the listener */
    client_free(&atk);
}

/* SPEC S2, the authentication bypass of the security review: nothing a
 * ClientHello names reaches another peer's handshake. On a server with a
 * certificate but no client CA, an ECDHE client without a certificate
 * after the poisoned hello completes wolfSSL's handshake but gets no
 * session, over DTLS 1.2 and 1.3 (it used to become dev1). */
static void test_psk_identity_does_not_outlive_its_hello(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    for (int v13 = 0; v13 < 2; v13++) {
        poison_listener(f, (uint16_t)(48000 + 2 * v13));
        client_opts_t o = {.dtls13 = v13, .cert = ""};
        client_init_opts(&f->c, true, &o);
        handshake(f->srv, &f->c, (uint16_t)(48001 + 2 * v13));
        assert_int_equal(st->handshakes_full, 0);
        assert_int_equal(st->sessions_active, 0);
        assert_int_equal(st->handshakes_failed, v13 + 1);
        assert_int_equal(st->handshakes_unauthenticated, v13 + 1);
        assert_int_equal(st->handshakes_inflight, 0);
        client_free(&f->c);
        memset(&f->c, 0, sizeof f->c);
    }
    /* A real PSK device still gets in, as itself, after another poisoned hello. */
    poison_listener(f, 48010);
    client_init(&f->c, true);
    assert_int_equal(handshake(f->srv, &f->c, 48011), 0);
    tether_dtls_sess_t *s = exchange(f, 48011, "dev1 after the attacker");
    assert_string_equal(tether_dtls_sess_identity(s), "dev1");
    assert_int_equal(st->handshakes_full, 1);
}

/* With a client CA, the same poisoned hello used to make the next
 * certificate client's handshake fail; dev7 now gets in as dev7. And a
 * DTLS 1.3 PSK client with the wrong key fails its binder. */
static void test_poisoned_hello_leaves_x509_clients_alone(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    poison_listener(f, 48100);
    client_opts_t o = {.cert = "dev7"};
    client_init_opts(&f->c, true, &o);
    assert_int_equal(handshake(f->srv, &f->c, 48101), 0);
    tether_dtls_sess_t *s = exchange(f, 48101, "hello from dev7");
    assert_string_equal(tether_dtls_sess_identity(s), "dev7");
    assert_int_equal(tether_dtls_sess_role(s), TETHER_ROLE_DEVICE);
    assert_int_equal(st->handshakes_x509, 1);
    assert_int_equal(st->handshakes_failed, 0);
    client_free(&f->c);

    client_key = (const uint8_t *)"not-the-real-key";
    client_opts_t o13 = {.dtls13 = true};
    client_init_opts(&f->c, true, &o13);
    assert_int_equal(handshake(f->srv, &f->c, 48102), -1);
    client_key = dev_key;
    tether_dtls_tick(f->srv, now_ms + 31000);
    assert_int_equal(st->handshakes_failed, 1); /* the binder, not "unauthenticated" */
    assert_int_equal(st->handshakes_unauthenticated, 0);
    assert_int_equal(st->handshakes_full, 1);
    assert_int_equal(st->sessions_active, 1);
    assert_int_equal(st->handshakes_inflight, 0);
}

/* DTLS 1.3 with PSK, without a CID (AES-128-CCM-8) and with one
 * (AES-128-GCM): handshake, then data both ways; the records carry the
 * unified header (and our CID when used). */
static void test_dtls13_psk(void **state)
{
    fixture_t *f = *state;
    const char *suites[] = {"TLS13-AES128-CCM-8-SHA256", "TLS13-AES128-GCM-SHA256"};
    for (int cid = 0; cid < 2; cid++) {
        client_opts_t o = {.dtls13 = true};
        c13_suite = suites[cid];
        client_init_opts(&f->c, cid, &o);
        uint16_t port = (uint16_t)(46000 + cid);
        assert_int_equal(handshake(f->srv, &f->c, port), 0);
        assert_string_equal(wolfSSL_get_version(f->c.ssl), "DTLSv1.3");
        assert_string_equal(wolfSSL_get_cipher_name(f->c.ssl), suites[cid]);
        uint8_t rec[TETHER_DTLS_MAX_DGRAM];
        size_t n = client_record(&f->c, "probe", rec);
        assert_int_equal(rec[0] & 0xe0, 0x20);    /* unified header */
        assert_int_equal(!!(rec[0] & 0x10), cid); /* C bit */
        assert_true(!cid || rec[1] == 5);         /* CID byte 0 = node id */
        tether_addr_t a = addr(port);
        tether_dtls_rx_t rx;
        tether_dtls_input(f->srv, 0, &a, rec, n, now_ms, &rx);
        assert_int_equal(rx.len, 5);
        for (int i = 0; i < 5; i++) {
            tether_dtls_sess_t *s = exchange(f, port, "dtls13 exchange");
            assert_string_equal(tether_dtls_sess_identity(s), "dev1");
            uint8_t c[TETHER_CID_MAX];
            assert_int_equal(tether_dtls_sess_cid(s, c), cid ? 8 : 0);
        }
        client_free(&f->c);
        memset(&f->c, 0, sizeof f->c);
    }
    c13_suite = suites[0];
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    assert_int_equal(st->handshakes_full, 2);
    assert_int_equal(st->sessions_active, 2);
    assert_int_equal(st->handshakes_failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_credentials_fail_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout_frees_the_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_client_certificate, setup_x509, teardown),
        cmocka_unit_test_setup_teardown(test_x509_refused, setup_x509, teardown),
        cmocka_unit_test_setup_teardown(test_psk_identity_does_not_outlive_its_hello,
                                        setup_cert_without_ca, teardown),
        cmocka_unit_test_setup_teardown(test_poisoned_hello_leaves_x509_clients_alone, setup_x509,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dtls13_psk, setup, teardown),
    };
    return cmocka_run_group_tests_name("dtls_handshake", tests, group_setup, group_teardown);
}
