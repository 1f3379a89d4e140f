/* Unit tests for lib/dtls/ established sessions on the wire (session.c,
 * rebind.c, record.c, wolfrec.c, dtls.c): CID sessions that follow
 * their peer's address (DTLS 1.2 and 1.3) while old, replayed and forged
 * records move nothing, the move to the compact record layer (at once, or
 * later for an idle session), empty records, a move onto another
 * session's address (3x output until validated), a returning device, and a
 * replayed hello that must not strand a session. Fixture: dtls_fixture.h. */
#include "dtls_fixture.h"
#include "dtls/record.h"
#include "dtls/wolfrec.h"

/* A CID session whose client changes source port on each of 25 exchanges
 * follows it with no new handshake, and replies leave for the new port.
 * DTLS 1.2 record numbers are read from the header; DTLS 1.3 ones are
 * encrypted, so they come from wolfSSL after authentication. */
static void check_port_changes(fixture_t *f, bool dtls13, uint16_t base)
{
    client_opts_t o = {.dtls13 = dtls13};
    client_init_opts(&f->c, true, &o);
    assert_int_equal(handshake(f->srv, &f->c, base), 0);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    assert_int_equal(st->handshakes_full, 1);
    assert_int_equal(st->sessions_active, 1);

    uint8_t rec[TETHER_DTLS_MAX_DGRAM];
    for (int i = 1; i <= 25; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "exchange %d", i);
        size_t n = client_record(&f->c, msg, rec);
        if (dtls13) {
            assert_int_equal(rec[0] & 0xf0, 0x30); /* unified header, C bit */
            assert_int_equal(rec[1], 5);           /* CID byte 0 = node id */
        } else {
            assert_int_equal(rec[0], 25); /* tls12_cid record */
            assert_int_equal(rec[11], 5);
        }
        tether_addr_t a = addr((uint16_t)(base + i));
        tether_dtls_rx_t rx;
        tether_dtls_input(f->srv, 0, &a, rec, n, now_ms, &rx);
        assert_int_equal(rx.len, strlen(msg));
        assert_memory_equal(rx.data, msg, rx.len);
        assert_string_equal(tether_dtls_sess_identity(rx.sess), "dev1");
        assert_int_equal(port_of(tether_dtls_sess_peer(rx.sess)), base + i);
        /* The reply leaves for the new address and the client accepts it. */
        assert_int_equal(tether_dtls_send(f->srv, rx.sess, (const uint8_t *)"ack", 3), 0);
        assert_int_equal(tether_dtls_tx_count(f->srv), 1);
        assert_int_equal(port_of(&tether_dtls_tx_get(f->srv, 0)->to), base + i);
        pump_to_client(f->srv, &f->c);
        char buf[16];
        assert_int_equal(wolfSSL_read(f->c.ssl, buf, sizeof buf), 3);
    }
    assert_int_equal(st->handshakes_full, 1);
    assert_int_equal(st->address_changes, 25);
    /* DTLS 1.2 ran on the compact record layer after the first exchange. */
    assert_int_equal(st->sessions_compact, dtls13 ? 0 : 1);
}

static void test_cid_session_survives_port_changes(void **state)
{
    check_port_changes(*state, false, 40000);
}

static void test_dtls13_cid_survives_port_changes(void **state)
{
    check_port_changes(*state, true, 47000);
}

/* Newest authentic record moves; an older-but-unseen authentic record, a
 * replay and a forged record (right CID), each from a new address, do not;
 * an unknown CID is dropped without an alert. */
static void check_old_replayed_forged(fixture_t *f, bool dtls13, uint16_t base)
{
    client_opts_t o = {.dtls13 = dtls13};
    client_init_opts(&f->c, true, &o);
    assert_int_equal(handshake(f->srv, &f->c, base), 0);
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    uint8_t r1[TETHER_DTLS_MAX_DGRAM], r2[TETHER_DTLS_MAX_DGRAM], bad[TETHER_DTLS_MAX_DGRAM];
    size_t n1 = client_record(&f->c, "one", r1);
    size_t n2 = client_record(&f->c, "two", r2);
    tether_dtls_rx_t rx;

    /* r2 (newest) from a new address moves the session there. */
    tether_addr_t home = addr((uint16_t)(base + 1));
    tether_dtls_input(f->srv, 0, &home, r2, n2, now_ms, &rx);
    assert_int_equal(rx.len, 3);
    tether_dtls_sess_t *s = rx.sess;
    assert_int_equal(port_of(tether_dtls_sess_peer(s)), base + 1);
    uint64_t moves = st->address_changes;

    /* Older but never-seen r1 from elsewhere: authentic, delivered, no move. */
    tether_addr_t other = addr((uint16_t)(base + 2));
    tether_dtls_input(f->srv, 0, &other, r1, n1, now_ms, &rx);
    assert_int_equal(rx.len, 3);
    assert_int_equal(port_of(tether_dtls_sess_peer(s)), base + 1);

    /* Replay of r2 from another address: dropped, no move. */
    tether_addr_t replay = addr((uint16_t)(base + 3));
    tether_dtls_input(f->srv, 0, &replay, r2, n2, now_ms, &rx);
    assert_int_equal(rx.len, 0);
    assert_int_equal(port_of(tether_dtls_sess_peer(s)), base + 1);

    /* Right CID, forged ciphertext: fails authentication, no move. */
    size_t n3 = client_record(&f->c, "three", bad);
    bad[n3 - 1] ^= 0x55;
    tether_addr_t forger = addr((uint16_t)(base + 4));
    tether_dtls_input(f->srv, 0, &forger, bad, n3, now_ms, &rx);
    assert_int_equal(rx.len, 0);
    assert_int_equal(port_of(tether_dtls_sess_peer(s)), base + 1);

    /* Unknown CID: dropped silently, no alert goes out. */
    memcpy(bad, r2, n2);
    bad[dtls13 ? 2 : 12] ^= 0xff;
    tether_dtls_input(f->srv, 0, &forger, bad, n2, now_ms, &rx);
    assert_int_equal(rx.len, 0);
    assert_int_equal(tether_dtls_tx_count(f->srv), 0);
    assert_int_equal(st->unknown_cid_dropped, 1);
    assert_int_equal(st->address_changes, moves);
    assert_int_equal(st->sessions_active, 1);

    /* The genuine next record from there moves it. */
    size_t n4 = client_record(&f->c, "four", bad);
    tether_dtls_input(f->srv, 0, &forger, bad, n4, now_ms, &rx);
    assert_int_equal(rx.len, 4);
    assert_int_equal(port_of(tether_dtls_sess_peer(s)), base + 4);
    assert_int_equal(st->handshakes_full, 1);
}

static void test_forged_replayed_and_old_records_do_not_move(void **state)
{
    check_old_replayed_forged(*state, false, 41000);
}

static void test_dtls13_old_replayed_forged_do_not_move(void **state)
{
    check_old_replayed_forged(*state, true, 48000);
}

/* The compact record layer against a real wolfSSL client, for both DTLS 1.2
 * suites and the three CID arrangements (none; ours only, Zephyr style;
 * both ways): after the first application record the session leaves
 * wolfSSL, and data still flows both ways; a replayed and a tampered
 * record are refused without effect; close_notify ends the session. */
static void test_compact_record_layer(void **state)
{
    fixture_t *f = *state;
    const char *suites[] = {"PSK-AES128-CCM-8", "PSK-AES128-GCM-SHA256"};
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    uint16_t port = 50000;
    for (int su = 0; su < 2; su++) {
        for (int cid = 0; cid < 3; cid++, port++) {
            client_opts_t o = {.suite = suites[su], .own_cid = cid == 2};
            client_init_opts(&f->c, cid > 0, &o);
            assert_int_equal(handshake(f->srv, &f->c, port), 0);
            assert_string_equal(wolfSSL_get_cipher_name(f->c.ssl), suites[su]);
            uint64_t compact0 = st->sessions_compact;
            tether_dtls_sess_t *s = exchange(f, port, "first");
            for (int i = 0; i < 20; i++) {
                char msg[32];
                snprintf(msg, sizeof msg, "compact %d/%d #%d", su, cid, i);
                s = exchange(f, port, msg);
            }
            assert_int_equal(st->sessions_compact, compact0 + 1);
            uint8_t c[TETHER_CID_MAX];
            assert_int_equal(tether_dtls_sess_cid(s, c), cid ? 8 : 0);

            /* Records the server sends carry the client's CID only when it
             * asked for one (RFC 9146: tls12_cid, content type 25). */
            assert_int_equal(tether_dtls_send(f->srv, s, (const uint8_t *)"x", 1), 0);
            assert_int_equal(tether_dtls_tx_get(f->srv, 0)->data[0], cid == 2 ? 25 : 23);
            pump_to_client(f->srv, &f->c);
            char buf[8];
            assert_int_equal(wolfSSL_read(f->c.ssl, buf, sizeof buf), 1);

            uint8_t rec[TETHER_DTLS_MAX_DGRAM];
            size_t n = client_record(&f->c, "once", rec);
            tether_addr_t a = addr(port);
            tether_dtls_rx_t rx;
            tether_dtls_input(f->srv, 0, &a, rec, n, now_ms, &rx);
            assert_int_equal(rx.len, 4);
            uint64_t rejected = st->records_rejected;
            tether_dtls_input(f->srv, 0, &a, rec, n, now_ms, &rx); /* replay */
            assert_int_equal(rx.len, 0);
            n = client_record(&f->c, "tampered", rec);
            rec[n - 3] ^= 1;
            tether_dtls_input(f->srv, 0, &a, rec, n, now_ms, &rx);
            assert_int_equal(rx.len, 0);
            assert_int_equal(st->records_rejected, rejected + 2);
            s = exchange(f, port, "still fine");

            uint64_t closed = st->sessions_closed;
            assert_int_equal(wolfSSL_shutdown(f->c.ssl), WOLFSSL_SHUTDOWN_NOT_DONE);
            feed(f->srv, &f->c, port, &rx);
            assert_int_equal(st->sessions_closed, closed + 1);
            client_free(&f->c);
            memset(&f->c, 0, sizeof f->c);
        }
    }
    assert_int_equal(st->sessions_active, 0);
    assert_int_equal(st->sessions_compact, 0);
    assert_int_equal(st->handshakes_full, 6);
    client_init(&f->c, false);
}

/* A session that sends nothing after its handshake stays on wolfSSL for
 * handshake_timeout_ms (its Finished might still be retransmitted), then
 * moves; the client notices nothing. */
static void test_idle_session_compacts_later(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    client_init(&f->c, true);
    assert_int_equal(handshake(f->srv, &f->c, 51000), 0);
    tether_dtls_tick(f->srv, now_ms + 29000);
    assert_int_equal(st->sessions_compact, 0);
    tether_dtls_tick(f->srv, now_ms + 30000);
    assert_int_equal(st->sessions_compact, 1);
    exchange(f, 51000, "after the move");
    assert_int_equal(st->sessions_active, 1);
}

/* Security review item 10: an empty application record (RFC 6347 §4.1
 * allows one) in front of a real one must not drop the rest of the
 * datagram. The client's compact state is read out of its wolfSSL object
 * to seal records wolfSSL would not send (it sends nothing for len 0). */
static void test_empty_record_keeps_the_datagram(void **state)
{
    fixture_t *f = *state;
    client_init(&f->c, true);
    assert_int_equal(handshake(f->srv, &f->c, 54000), 0);
    exchange(f, 54000, "compact now");
    tether_rec_t r;
    assert_int_equal(tether_wolf_export_rec(f->c.ssl, &r), 0);
    Aes aes;
    assert_int_equal(wc_AesInit(&aes, NULL, INVALID_DEVID), 0);
    uint8_t dg[TETHER_DTLS_MAX_DGRAM];
    int a = tether_rec_seal(&r, &aes, TETHER_REC_CT_APP, (const uint8_t *)"", 0, dg, sizeof dg);
    assert_true(a > 0);
    int b = tether_rec_seal(&r, &aes, TETHER_REC_CT_APP, (const uint8_t *)"after empty", 11, dg + a,
                            sizeof dg - (size_t)a);
    assert_true(b > 0);
    wc_AesFree(&aes);
    tether_addr_t from = addr(54000);
    tether_dtls_rx_t rx;
    tether_dtls_input(f->srv, 0, &from, dg, (size_t)(a + b), now_ms, &rx);
    assert_int_equal(rx.len, 11);
    assert_memory_equal(rx.data, "after empty", 11);
    assert_int_equal(tether_dtls_stats(f->srv)->records_empty, 1);
}

/* Security review item 3: a CID session that follows its peer onto the
 * address of another live session leaves that session its address (its
 * records without a CID keep working), and until the new address is
 * validated at most 3x what came from it goes there. */
static void test_move_keeps_others_address_and_limits_output(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    client_t plain;
    client_init(&plain, false); /* no CID: found by address only */
    assert_int_equal(handshake(f->srv, &plain, 55001), 0);
    client_init(&f->c, true);
    assert_int_equal(handshake(f->srv, &f->c, 55000), 0);
    exchange(f, 55000, "cid session");

    uint8_t rec[TETHER_DTLS_MAX_DGRAM];
    size_t n = client_record(&f->c, "from the other one's address", rec);
    tether_addr_t there = addr(55001);
    tether_dtls_rx_t rx;
    tether_dtls_input(f->srv, 0, &there, rec, n, now_ms, &rx);
    assert_int_equal(rx.len, strlen("from the other one's address"));
    tether_dtls_sess_t *moved = rx.sess;
    uint64_t moved_id = tether_dtls_sess_id(moved);
    assert_int_equal(port_of(tether_dtls_sess_peer(moved)), 55001);
    assert_false(tether_dtls_sess_validated(moved));
    const tether_dtls_event_t *ev;
    size_t nev = tether_dtls_events(f->srv, &ev);
    assert_true(nev >= 1);
    assert_int_equal(ev[nev - 1].kind, TETHER_DTLS_EV_MOVED);
    assert_int_equal(ev[nev - 1].id, moved_id);
    tether_dtls_events_clear(f->srv);

    /* The session without a CID still owns port 55001. */
    uint8_t prec[TETHER_DTLS_MAX_DGRAM];
    assert_int_equal(wolfSSL_write(plain.ssl, "still mine", 10), 10);
    memcpy(prec, plain.out.d[0], plain.out.len[0]);
    size_t pn = plain.out.len[0];
    plain.out.n = 0;
    tether_dtls_input(f->srv, 0, &there, prec, pn, now_ms, &rx);
    assert_int_equal(rx.len, 10);
    assert_true(tether_dtls_sess_id(rx.sess) != moved_id);

    /* Unvalidated: sends stop at 3x the bytes that came from 55001. */
    moved = tether_dtls_sess_find(f->srv, moved_id);
    uint8_t big[400];
    memset(big, 'x', sizeof big);
    size_t sent = 0;
    int rc;
    tether_dtls_tx_clear(f->srv);
    while ((rc = tether_dtls_send(f->srv, moved, big, sizeof big)) == 0) {
        sent += tether_dtls_tx_get(f->srv, 0)->len;
        tether_dtls_tx_clear(f->srv);
    }
    assert_int_equal(rc, TETHER_ELIMIT);
    assert_true(sent <= 3 * n);
    assert_true(sent + sizeof big + 64 > 3 * n);
    assert_int_equal(st->tx_unvalidated_dropped, 1);
    /* Proof from the layer above lifts the limit. */
    tether_dtls_sess_validate(moved);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tether_dtls_send(f->srv, moved, big, sizeof big), 0);
    tether_dtls_tx_clear(f->srv);
    client_free(&plain);
}

/* A device that starts a new handshake from the address of its established
 * session (same NAT binding, device rebooted) gets a new session. */

static void test_returning_device_handshakes_again(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    client_init(&f->c, false);
    assert_int_equal(handshake(f->srv, &f->c, 52000), 0);
    tether_dtls_sess_t *old = exchange(f, 52000, "before reboot");
    uint64_t old_id = tether_dtls_sess_id(old);
    exchange(f, 52000, "compact now");
    client_free(&f->c);
    client_init(&f->c, false);
    assert_int_equal(handshake(f->srv, &f->c, 52000), 0);
    tether_dtls_sess_t *s = exchange(f, 52000, "after reboot");
    assert_true(tether_dtls_sess_id(s) != old_id);
    assert_int_equal(st->handshakes_full, 2);
    /* The old session is abandoned, and the layers above are told. */
    assert_int_equal(st->sessions_active, 1);
    assert_null(tether_dtls_sess_find(f->srv, old_id));
    const tether_dtls_event_t *ev;
    size_t n = tether_dtls_events(f->srv, &ev), closed = 0;
    for (size_t i = 0; i < n; i++)
        closed += ev[i].kind == TETHER_DTLS_EV_CLOSED;
    assert_int_equal(closed, 1); /* the old session, once */
    assert_int_equal(ev[n - 1].kind, TETHER_DTLS_EV_CLOSED);
    assert_int_equal(ev[n - 1].why, TETHER_DTLS_WHY_REPLACED);
    assert_int_equal(ev[n - 1].id, old_id);
}

/* A replayed ClientHello with a valid cookie, from an established
 * session's address, starts a handshake that never completes: once it
 * times out, the session has its address back and works again. */
static void test_replayed_hello_does_not_strand_a_session(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    client_init(&f->c, false);
    tether_addr_t a = addr(53000);
    tether_dtls_rx_t rx;
    uint8_t ch2[TETHER_DTLS_MAX_DGRAM];
    size_t ch2_len = 0;
    for (int round = 0; round < 20;
         round++) { /* the handshake, keeping the hello with the cookie */
        int r = wolfSSL_connect(f->c.ssl);
        if (round == 1 && f->c.out.n) {
            ch2_len = f->c.out.len[0];
            memcpy(ch2, f->c.out.d[0], ch2_len);
        }
        feed(f->srv, &f->c, 53000, &rx);
        if (r == WOLFSSL_SUCCESS)
            break;
    }
    assert_true(ch2_len > 0);
    exchange(f, 53000, "established");
    exchange(f, 53000, "compact");
    tether_dtls_input(f->srv, 0, &a, ch2, ch2_len, now_ms, &rx); /* the replay */
    tether_dtls_tx_clear(f->srv);
    assert_int_equal(st->handshakes_inflight, 1);
    tether_dtls_tick(f->srv, now_ms + 31000); /* past handshake_timeout */
    assert_int_equal(st->handshakes_inflight, 0);
    assert_int_equal(st->sessions_active, 1);
    exchange(f, 53000, "reachable again");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cid_session_survives_port_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_replayed_and_old_records_do_not_move, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dtls13_cid_survives_port_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dtls13_old_replayed_forged_do_not_move, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_compact_record_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_session_compacts_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_returning_device_handshakes_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_record_keeps_the_datagram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_keeps_others_address_and_limits_output, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replayed_hello_does_not_strand_a_session, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("dtls_records", tests, group_setup, group_teardown);
}
