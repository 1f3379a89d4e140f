/* Unit tests for lib/dtls/record.c, the compact DTLS 1.2 record layer:
 * round trips between two mirrored states for both AEADs and every CID
 * arrangement, the wire header, the replay window, and refusals that must
 * leave the state untouched. Interoperation with wolfSSL itself is in
 * test_dtls_records (the server moves real sessions onto this layer). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "dtls/record.h"

static Aes aes;
static const uint8_t our_cid[8] = {5, 1, 2, 3, 4, 5, 6, 7};

/* `a` is the server (issued our_cid when cid_ab); `b` the peer, which
 * issued a 4-byte CID when cid_ba. */
static void pair(tether_rec_t *a, tether_rec_t *b, uint8_t alg, bool cid_ab, bool cid_ba)
{
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    a->alg = b->alg = alg;
    a->epoch = b->epoch = 1;
    memcpy(a->tx_key, "server-write-key", 16);
    memcpy(b->rx_key, "server-write-key", 16);
    memcpy(a->rx_key, "client-write-key", 16);
    memcpy(b->tx_key, "client-write-key", 16);
    memcpy(a->tx_salt, "sSLT", 4);
    memcpy(b->rx_salt, "sSLT", 4);
    memcpy(a->rx_salt, "cSLT", 4);
    memcpy(b->tx_salt, "cSLT", 4);
    if (cid_ab) { /* b sends to a with our CID */
        b->tx_cid_len = 8;
        memcpy(b->tx_cid, our_cid, 8);
    }
    if (cid_ba) {
        a->tx_cid_len = 4;
        memcpy(a->tx_cid, "\xc1\x1e\x47\x01", 4);
    }
}

static void test_round_trips(void **state)
{
    (void)state;
    const uint8_t algs[] = {TETHER_REC_AES128_CCM8, TETHER_REC_AES128_GCM};
    for (int ai = 0; ai < 2; ai++)
        for (int cid = 0; cid < 4; cid++) {
            tether_rec_t a, b;
            bool ab = cid & 1, ba = cid & 2;
            pair(&a, &b, algs[ai], ab, ba);
            uint8_t rec[256], out[256];
            for (int i = 0; i < 3; i++) {
                /* peer -> server, received with our CID */
                int n = tether_rec_seal(&b, &aes, TETHER_REC_CT_APP, (const uint8_t *)"ping", 4,
                                        rec, sizeof rec);
                assert_true(n > 0);
                assert_int_equal((size_t)n, 4 + tether_rec_overhead(&b));
                assert_int_equal(rec[0], ab ? TETHER_REC_CT_CID : TETHER_REC_CT_APP);
                assert_int_equal(rec[1], 0xfe);
                assert_int_equal(rec[2], 0xfd);
                assert_int_equal(rec[4], 1);  /* epoch */
                assert_int_equal(rec[10], i); /* sequence */
                size_t used;
                tether_rec_in_t in;
                assert_int_equal(tether_rec_open(&a, &aes, our_cid, ab ? 8 : 0, rec, (size_t)n,
                                                 &used, out, sizeof out, &in),
                                 0);
                assert_int_equal(used, (size_t)n);
                assert_int_equal(in.type, TETHER_REC_CT_APP);
                assert_int_equal(in.len, 4);
                assert_memory_equal(out, "ping", 4);
                assert_int_equal(in.number, (UINT64_C(1) << 48) | (uint64_t)i);
                /* server -> peer */
                n = tether_rec_seal(&a, &aes, TETHER_REC_CT_APP, (const uint8_t *)"pong!", 5, rec,
                                    sizeof rec);
                assert_true(n > 0);
                assert_int_equal(tether_rec_open(&b, &aes, (const uint8_t *)"\xc1\x1e\x47\x01",
                                                 ba ? 4 : 0, rec, (size_t)n, &used, out,
                                                 sizeof out, &in),
                                 0);
                assert_int_equal(in.len, 5);
                assert_memory_equal(out, "pong!", 5);
            }
        }
}

static void test_replay_window(void **state)
{
    (void)state;
    tether_rec_t r;
    memset(&r, 0, sizeof r);
    assert_true(tether_rec_window_fresh(&r, 0));
    tether_rec_window_mark(&r, 0);
    assert_false(tether_rec_window_fresh(&r, 0));
    tether_rec_window_mark(&r, 5); /* 1..4 skipped, still acceptable */
    for (uint64_t s = 1; s < 5; s++)
        assert_true(tether_rec_window_fresh(&r, s));
    tether_rec_window_mark(&r, 3);
    assert_false(tether_rec_window_fresh(&r, 3));
    assert_false(tether_rec_window_fresh(&r, 5));
    assert_true(tether_rec_window_fresh(&r, 4));
    tether_rec_window_mark(&r, 68); /* 5 is now 63 behind: still tracked */
    assert_false(tether_rec_window_fresh(&r, 5));
    assert_true(tether_rec_window_fresh(&r, 6));
    tether_rec_window_mark(&r, 69); /* 5 falls out: too old, refused */
    assert_false(tether_rec_window_fresh(&r, 5));
    tether_rec_window_mark(&r, 1000); /* a jump past the window clears it */
    assert_true(tether_rec_window_fresh(&r, 999));
    assert_false(tether_rec_window_fresh(&r, 1000));
    assert_false(tether_rec_window_fresh(&r, 936));
}

/* Each refusal leaves the state as it was. */
static void test_refusals(void **state)
{
    (void)state;
    tether_rec_t a, b;
    pair(&a, &b, TETHER_REC_AES128_CCM8, true, false);
    uint8_t rec[256], bad[256], out[256];
    int n = tether_rec_seal(&b, &aes, TETHER_REC_CT_APP, (const uint8_t *)"data", 4, rec,
                            sizeof rec);
    assert_true(n > 0);
    tether_rec_t before = a;
    size_t used;
    tether_rec_in_t in;
    struct {
        size_t at;
        uint8_t x;
        int want;
    } cases[] = {
        {4, 2, TETHER_ENOTFOUND},   /* epoch 3 */
        {12, 1, TETHER_ENOTFOUND},  /* CID byte */
        {1, 0xff, TETHER_ENOTFOUND}, /* version */
        {10, 1, TETHER_ECRYPTO},    /* sequence: authenticated data */
        {30, 0x40, TETHER_ECRYPTO}, /* ciphertext */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(bad, rec, (size_t)n);
        bad[cases[i].at] ^= cases[i].x;
        assert_int_equal(tether_rec_open(&a, &aes, our_cid, 8, bad, (size_t)n, &used, out,
                                         sizeof out, &in),
                         cases[i].want);
        assert_memory_equal(&a, &before, sizeof a);
    }
    /* Truncated: the length field overruns the datagram. */
    assert_int_equal(tether_rec_open(&a, &aes, our_cid, 8, rec, (size_t)n - 1, &used, out,
                                     sizeof out, &in),
                     TETHER_EPROTO);
    /* A CID record where none was issued: its header cannot be parsed. */
    assert_int_equal(tether_rec_open(&a, &aes, our_cid, 0, rec, (size_t)n, &used, out, sizeof out,
                                     &in),
                     TETHER_EPROTO);
    assert_memory_equal(&a, &before, sizeof a);
    /* Good once, then a replay. */
    assert_int_equal(tether_rec_open(&a, &aes, our_cid, 8, rec, (size_t)n, &used, out, sizeof out,
                                     &in),
                     0);
    assert_int_equal(tether_rec_open(&a, &aes, our_cid, 8, rec, (size_t)n, &used, out, sizeof out,
                                     &in),
                     TETHER_EEXIST);
}

static void test_seal_limits(void **state)
{
    (void)state;
    tether_rec_t a, b;
    pair(&a, &b, TETHER_REC_AES128_GCM, false, true);
    uint8_t rec[64];
    uint8_t big[100] = {0};
    assert_int_equal(tether_rec_seal(&a, &aes, TETHER_REC_CT_APP, big, sizeof big, rec, sizeof rec),
                     TETHER_ENOSPC);
    a.tx_seq = (UINT64_C(1) << 48) - 1; /* the last sequence number is usable */
    assert_true(tether_rec_seal(&a, &aes, TETHER_REC_CT_APP, big, 4, rec, sizeof rec) > 0);
    assert_int_equal(tether_rec_seal(&a, &aes, TETHER_REC_CT_APP, big, 4, rec, sizeof rec),
                     TETHER_ELIMIT);
}

/* Two records in one datagram are walked one by one. */
static void test_two_records_in_a_datagram(void **state)
{
    (void)state;
    tether_rec_t a, b;
    pair(&a, &b, TETHER_REC_AES128_CCM8, true, true);
    uint8_t dg[512], out[256];
    int n1 = tether_rec_seal(&b, &aes, TETHER_REC_CT_APP, (const uint8_t *)"one", 3, dg, sizeof dg);
    int n2 = tether_rec_seal(&b, &aes, TETHER_REC_CT_APP, (const uint8_t *)"two!", 4, dg + n1,
                             sizeof dg - (size_t)n1);
    size_t used, len = (size_t)(n1 + n2);
    tether_rec_in_t in;
    assert_int_equal(tether_rec_open(&a, &aes, our_cid, 8, dg, len, &used, out, sizeof out, &in), 0);
    assert_int_equal(used, (size_t)n1);
    assert_memory_equal(out, "one", 3);
    assert_int_equal(tether_rec_open(&a, &aes, our_cid, 8, dg + used, len - used, &used, out,
                                     sizeof out, &in),
                     0);
    assert_int_equal(in.len, 4);
    assert_memory_equal(out, "two!", 4);
}

static int setup(void **state)
{
    (void)state;
    return wc_AesInit(&aes, NULL, INVALID_DEVID);
}

static int teardown(void **state)
{
    (void)state;
    wc_AesFree(&aes);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_replay_window),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_seal_limits),
        cmocka_unit_test(test_two_records_in_a_datagram),
    };
    return cmocka_run_group_tests_name("record", tests, setup, teardown);
}
