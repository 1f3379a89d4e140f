/* Unit tests for lib/dtls/checkpoint.c: a sealed session checkpoint opens
 * to the same state under the same cluster key and binding, and is refused
 * when any part of the binding (CID, owner, generation, record version,
 * ceiling), the key or a byte of it differs; bodies a seal would not write
 * are refused behind a valid tag too. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <string.h>

#include "dtls/checkpoint.h"

static const uint8_t cluster_key[] = "a cluster key of some length....";
static const uint8_t cid[8] = {5, 1, 2, 3, 4, 5, 6, 7};

static tether_ckpt_t sample(bool v6)
{
    tether_ckpt_t c;
    memset(&c, 0, sizeof c);
    c.rec.alg = TETHER_REC_AES128_GCM;
    c.rec.epoch = 1;
    c.rec.tx_seq = 0x123456789aULL;
    c.rec.rx_next = 1000;
    c.rec.rx_window = 0xf0f0f0f0f0f0f0f1ULL;
    memcpy(c.rec.tx_key, "0123456789abcdef", 16);
    memcpy(c.rec.rx_key, "fedcba9876543210", 16);
    memcpy(c.rec.tx_salt, "salt", 4);
    memcpy(c.rec.rx_salt, "SALT", 4);
    c.rec.tx_cid_len = 4;
    memcpy(c.rec.tx_cid, "\xc1\x1e\x47\x01", 4);
    c.auth = TETHER_CKPT_AUTH_PSK;
    c.role = TETHER_ROLE_CLIENT;
    c.key_tag = 0x0102030405060708ull;
    c.link_id = 42;
    strcpy(c.identity, "dev1");
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&c.peer.ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(5684);
        a->sin6_addr.s6_addr[15] = 1;
        c.peer.len = sizeof *a;
        c.unvalidated = true;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&c.peer.ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(40000);
        a->sin_addr.s_addr = htonl(0x0a000001);
        c.peer.len = sizeof *a;
    }
    return c;
}

static tether_ckpt_bind_t bind_of(void)
{
    return (tether_ckpt_bind_t){.cid = cid,
                                .cid_len = sizeof cid,
                                .owner = 5,
                                .generation = 3,
                                .version = 7,
                                .seq_ceiling = 0x123456789aULL + 1024};
}

typedef struct {
    tether_ckpt_key_t key;
    WC_RNG rng;
} fx_t;

static int setup(void **state)
{
    static fx_t f;
    assert_int_equal(tether_ckpt_key(cluster_key, sizeof cluster_key - 1, &f.key), 0);
    assert_int_equal(wc_InitRng(&f.rng), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    wc_FreeRng(&f->rng);
    tether_ckpt_key_wipe(&f->key);
    return 0;
}

static void same_state(const tether_ckpt_t *a, const tether_ckpt_t *b)
{
    assert_memory_equal(&a->rec, &b->rec, sizeof a->rec);
    assert_int_equal(a->auth, b->auth);
    assert_int_equal(a->role, b->role);
    assert_true(a->key_tag == b->key_tag);
    assert_true(a->link_id == b->link_id);
    assert_string_equal(a->identity, b->identity);
    assert_int_equal(a->peer.len, b->peer.len);
    assert_memory_equal(&a->peer.ss, &b->peer.ss, a->peer.len);
    assert_int_equal(a->unvalidated, b->unvalidated);
}

static void test_round_trip(void **state)
{
    fx_t *f = *state;
    for (int v6 = 0; v6 < 2; v6++) {
        tether_ckpt_t c = sample(v6), back;
        tether_ckpt_bind_t b = bind_of();
        uint8_t blob[TETHER_CKPT_MAX], blob2[TETHER_CKPT_MAX];
        size_t n, n2;
        assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, blob, sizeof blob, &n), 0);
        assert_true(n <= TETHER_CKPT_MAX);
        assert_null(memmem(blob, n, c.rec.tx_key, 16)); /* no key in the clear */
        assert_null(memmem(blob, n, "dev1", 4));
        assert_int_equal(tether_ckpt_open(&f->key, &b, blob, n, &back), 0);
        same_state(&c, &back);
        /* A second seal of the same state differs (fresh subkey and nonce). */
        assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, blob2, sizeof blob2, &n2), 0);
        assert_int_equal(n, n2);
        assert_memory_not_equal(blob, blob2, n);
        /* Every node derives the same key from the cluster key. */
        tether_ckpt_key_t other;
        assert_int_equal(tether_ckpt_key(cluster_key, sizeof cluster_key - 1, &other), 0);
        assert_int_equal(tether_ckpt_open(&other, &b, blob2, n2, &back), 0);
        same_state(&c, &back);
        assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, blob2, n - 1, &n2),
                         TETHER_ENOSPC);
    }
}

/* Each part of the binding is in the additional data. */
static void test_binding_refused(void **state)
{
    fx_t *f = *state;
    tether_ckpt_t c = sample(false), back;
    tether_ckpt_bind_t b = bind_of();
    uint8_t blob[TETHER_CKPT_MAX];
    size_t n;
    assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, blob, sizeof blob, &n), 0);
    uint8_t other_cid[8];
    memcpy(other_cid, cid, 8);
    other_cid[7] ^= 1;
    tether_ckpt_bind_t v[7];
    for (int i = 0; i < 7; i++)
        v[i] = b;
    v[0].cid = other_cid; /* moved to another CID */
    v[1].cid_len = 7;     /* a prefix of it */
    v[2].owner = 6;       /* another owner */
    v[3].generation = 4;  /* written under an older generation */
    v[4].version = 8;     /* replayed into a later record version */
    v[5].version = 6;
    v[6].seq_ceiling = 1024; /* next to a lowered ceiling */
    for (int i = 0; i < 7; i++) {
        assert_int_equal(tether_ckpt_open(&f->key, &v[i], blob, n, &back), TETHER_ECRYPTO);
        assert_int_equal(back.rec.epoch, 0); /* wiped */
    }
    tether_ckpt_key_t wrong;
    assert_int_equal(tether_ckpt_key((const uint8_t *)"another key", 11, &wrong), 0);
    assert_int_equal(tether_ckpt_open(&wrong, &b, blob, n, &back), TETHER_ECRYPTO);
    tether_ckpt_bind_t empty = b;
    empty.cid_len = 0;
    assert_int_equal(tether_ckpt_open(&f->key, &empty, blob, n, &back), TETHER_EINVAL);
    assert_int_equal(tether_ckpt_open(&f->key, &b, blob, n, &back), 0);
}

/* Any altered byte, and any truncation or extension, is refused. */
static void test_tampering_refused(void **state)
{
    fx_t *f = *state;
    tether_ckpt_t c = sample(true), back;
    tether_ckpt_bind_t b = bind_of();
    uint8_t blob[TETHER_CKPT_MAX + 1];
    size_t n;
    assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, blob, sizeof blob, &n), 0);
    for (size_t i = 0; i < n; i++) {
        blob[i] ^= 0x40;
        int rc = tether_ckpt_open(&f->key, &b, blob, n, &back);
        assert_true(rc == (i == 0 ? TETHER_EPROTO : TETHER_ECRYPTO));
        blob[i] ^= 0x40;
    }
    for (size_t len = 0; len < n; len++)
        assert_true(tether_ckpt_open(&f->key, &b, blob, len, &back) < 0);
    blob[n] = 0;
    assert_true(tether_ckpt_open(&f->key, &b, blob, n + 1, &back) < 0);
    assert_int_equal(tether_ckpt_open(&f->key, &b, blob, n, &back), 0);
}

/* A correctly sealed body that a seal would not have written (written by
 * a buggy or future node) is refused: unknown algorithm, epoch 0, bad
 * identity, unknown family, trailing bytes, unknown flags. */
static void test_bad_bodies_refused(void **state)
{
    fx_t *f = *state;
    tether_ckpt_t c = sample(false), back;
    tether_ckpt_bind_t b = bind_of();
    uint8_t good[TETHER_CKPT_MAX], body[TETHER_CKPT_BODY_MAX + 1], blob[TETHER_CKPT_MAX + 1];
    size_t n, bn, len;
    assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, good, sizeof good, &n), 0);
    assert_int_equal(tether_ckpt_open(&f->key, &b, good, n, &back), 0);
    /* Rebuild the body by hand (checkpoint.h's layout) and check it seals
     * to something that opens: the layout in the header is the real one. */
    bn = 0;
    body[bn++] = TETHER_REC_AES128_GCM;
    body[bn++] = 0;
    body[bn++] = 1;
    for (int i = 5; i >= 0; i--)
        body[bn++] = (uint8_t)(c.rec.tx_seq >> (8 * i));
    for (int i = 5; i >= 0; i--)
        body[bn++] = (uint8_t)(c.rec.rx_next >> (8 * i));
    for (int i = 7; i >= 0; i--)
        body[bn++] = (uint8_t)(c.rec.rx_window >> (8 * i));
    memcpy(body + bn, c.rec.tx_key, 16), bn += 16;
    memcpy(body + bn, c.rec.rx_key, 16), bn += 16;
    memcpy(body + bn, c.rec.tx_salt, 4), bn += 4;
    memcpy(body + bn, c.rec.rx_salt, 4), bn += 4;
    body[bn++] = 4;
    memcpy(body + bn, c.rec.tx_cid, 4), bn += 4;
    body[bn++] = TETHER_CKPT_AUTH_PSK;
    body[bn++] = TETHER_ROLE_CLIENT;
    for (int i = 7; i >= 0; i--)
        body[bn++] = (uint8_t)(c.key_tag >> (8 * i));
    for (int i = 7; i >= 0; i--)
        body[bn++] = (uint8_t)(c.link_id >> (8 * i));
    body[bn++] = 4;
    memcpy(body + bn, "dev1", 4), bn += 4;
    body[bn++] = 4;
    body[bn++] = 40000 >> 8;
    body[bn++] = 40000 & 0xff;
    memcpy(body + bn, "\x0a\x00\x00\x01", 4), bn += 4;
    size_t flags_at = bn;
    body[bn++] = 0;
    assert_int_equal(tether_ckpt_seal_body(&f->key, &f->rng, &b, body, bn, blob, sizeof blob, &len),
                     0);
    assert_int_equal(tether_ckpt_open(&f->key, &b, blob, len, &back), 0);
    same_state(&c, &back);

    struct {
        size_t at;
        uint8_t val;
    } bad[] = {
        {0, 3},        /* algorithm */
        {2, 0},        /* epoch 0 */
        {63, 17},      /* tx CID longer than any */
        {68, 0},       /* no authentication */
        {68, 2},       /* X.509 with a PSK's key tag */
        {69, 2},       /* unknown role */
        {86, 0},       /* empty identity */
        {87, 0},       /* NUL in the identity */
        {91, 5},       /* address family */
        {flags_at, 2}, /* unknown flag */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t keep = body[bad[i].at];
        body[bad[i].at] = bad[i].val;
        assert_int_equal(
            tether_ckpt_seal_body(&f->key, &f->rng, &b, body, bn, blob, sizeof blob, &len), 0);
        assert_int_equal(tether_ckpt_open(&f->key, &b, blob, len, &back), TETHER_EPROTO);
        body[bad[i].at] = keep;
    }
    /* Trailing byte; one byte short. */
    body[bn] = 0;
    assert_int_equal(
        tether_ckpt_seal_body(&f->key, &f->rng, &b, body, bn + 1, blob, sizeof blob, &len), 0);
    assert_int_equal(tether_ckpt_open(&f->key, &b, blob, len, &back), TETHER_EPROTO);
    assert_int_equal(
        tether_ckpt_seal_body(&f->key, &f->rng, &b, body, bn - 1, blob, sizeof blob, &len), 0);
    assert_int_equal(tether_ckpt_open(&f->key, &b, blob, len, &back), TETHER_EPROTO);
    /* A window claiming sequence numbers below zero. */
    tether_ckpt_t w = c;
    w.rec.rx_next = 3;
    w.rec.rx_window = 0x10;
    assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &w, blob, sizeof blob, &len), 0);
    assert_int_equal(tether_ckpt_open(&f->key, &b, blob, len, &back), TETHER_EPROTO);
}

/* Seal refuses state it could not open again. */
static void test_seal_refuses_bad_state(void **state)
{
    fx_t *f = *state;
    tether_ckpt_bind_t b = bind_of();
    uint8_t blob[TETHER_CKPT_MAX];
    size_t n;
    tether_ckpt_t c = sample(false);
    c.rec.epoch = 0;
    assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, blob, sizeof blob, &n),
                     TETHER_EINVAL);
    c = sample(false);
    c.identity[0] = 0;
    assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, blob, sizeof blob, &n),
                     TETHER_EINVAL);
    c = sample(false);
    c.peer.ss.ss_family = AF_UNIX;
    assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, blob, sizeof blob, &n),
                     TETHER_EINVAL);
    c = sample(false);
    b.cid_len = TETHER_CID_MAX + 1;
    assert_int_equal(tether_ckpt_seal(&f->key, &f->rng, &b, &c, blob, sizeof blob, &n),
                     TETHER_EINVAL);
    assert_int_equal(tether_ckpt_key(cluster_key, 0, &f->key), TETHER_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binding_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampering_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bodies_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_refuses_bad_state, setup, teardown),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, NULL, NULL);
}
