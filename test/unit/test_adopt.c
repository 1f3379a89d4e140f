/* Unit tests for failover's decisions (server/store/adopt.c): who claims a
 * dead node, what the claim says, who is fenced, where a record of an
 * adopted session goes; and the two compare-and-sets they rely on, run on
 * the in-memory store (same contract as Redis's, tether/store.h): one
 * claim wins, one first write of an adopted session wins. The nonce
 * margin the adopter adds is txceil's (test_txceil.c). And what an
 * adopter checks of a checkpoint beyond its seal (lib/dtls/failover.c):
 * the PSK's key tag, and that it is no older than one it has seen. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../server/store/adopt.h"
#include "creds_fixture.h"
#include "dtls/checkpoint.h"
#include "dtls/txceil.h"
#include "tether/dtls.h"

static tether_addr_t loopback(uint16_t port)
{
    tether_addr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.len = sizeof *in;
    return a;
}

static tetherd_member_t member(bool alive, uint64_t gen, uint8_t by)
{
    tetherd_member_t m;
    memset(&m, 0, sizeof m);
    m.alive = alive;
    m.generation = gen;
    m.adopted_by = by;
    return m;
}

static void test_should_claim(void **state)
{
    (void)state;
    tetherd_member_t dead = member(false, 1000, 0);
    assert_true(tetherd_adopt_should_claim(2, 1, &dead, true));
    /* Not while Redis is unreachable (SPEC S5). */
    assert_false(tetherd_adopt_should_claim(2, 1, &dead, false));
    /* Never ourselves, never node 0. */
    assert_false(tetherd_adopt_should_claim(1, 1, &dead, true));
    assert_false(tetherd_adopt_should_claim(2, 0, &dead, true));
    /* Alive, already claimed, or never seen alive (no generation). */
    tetherd_member_t alive = member(true, 1000, 0), claimed = member(false, 1001, 3),
                     never = member(false, 0, 0);
    assert_false(tetherd_adopt_should_claim(2, 1, &alive, true));
    assert_false(tetherd_adopt_should_claim(2, 1, &claimed, true));
    assert_false(tetherd_adopt_should_claim(2, 1, &never, true));
}

/* A lease that expired while the node's channel still speaks (cut off
 * from Redis only) is no death; a handover marker is, at once. The claim
 * lands only where the death was seen: absent, or over the marker. */
static void test_wait_and_expect(void **state)
{
    (void)state;
    tetherd_member_t expired = member(false, 1000, 0), left = member(false, 1000, 0);
    left.handover = true;
    left.version = 2;
    assert_true(tetherd_adopt_wait(&expired, true));
    assert_false(tetherd_adopt_wait(&expired, false));
    assert_false(tetherd_adopt_wait(&left, true));
    assert_true(tetherd_adopt_expect(&expired) == 0);
    assert_true(tetherd_adopt_expect(&left) == 2);
    assert_true(tetherd_adopt_should_claim(2, 1, &left, true));
}

static void test_claim_record(void **state)
{
    (void)state;
    tether_addr_t a = loopback(7000);
    tether_store_rec_t r;
    tetherd_adopt_claim(2, 1, 1000, &a, &r);
    assert_int_equal(r.kind, TETHER_STORE_NODE);
    assert_int_equal(r.u.node.node_id, 1);
    assert_int_equal(r.u.node.adopted_by, 2);
    assert_true(r.u.node.generation == 1001); /* the dead node's generation, bumped */
    assert_true(tether_addr_equal(&r.u.node.addr, &a));
}

static void test_fenced(void **state)
{
    (void)state;
    /* Node 1, generation 1000: node 2 claimed this very process. */
    tetherd_member_t c = member(false, 1001, 2);
    assert_true(tetherd_adopt_fenced(1, 1000, 1, &c));
    /* A claim on an earlier process of our id: we are its restart. */
    assert_false(tetherd_adopt_fenced(1, 5000, 1, &c));
    /* Another node's claim, our own lease, our own claim. */
    assert_false(tetherd_adopt_fenced(3, 1000, 1, &c));
    tetherd_member_t own = member(true, 1000, 0), self = member(false, 1001, 1);
    assert_false(tetherd_adopt_fenced(1, 1000, 1, &own));
    assert_false(tetherd_adopt_fenced(1, 1000, 1, &self));
}

static void test_route(void **state)
{
    (void)state;
    assert_int_equal(tetherd_adopt_route(1, 0, false), 0); /* no record: by node byte */
    assert_int_equal(tetherd_adopt_route(1, 1, false), 1); /* ours */
    assert_int_equal(tetherd_adopt_route(1, 2, true), 2);  /* the adopter, alive */
    /* A holder without a lease (dead, or handing over): by node byte,
     * which reaches a node handing over until its peer adopted. */
    assert_int_equal(tetherd_adopt_route(1, 2, false), 0);
}

typedef struct {
    int rc;
    uint64_t version;
} res_t;

static void done(void *user, const tether_store_result_t *res)
{
    res_t *r = user;
    r->rc = res->rc;
    r->version = res->version;
}

/* Two survivors claim the same dead node: one put (expect 0) wins; over
 * a handover marker (version 2) likewise, and never over a lease that
 * came back (version 1). */
static void test_one_claim_wins(void **state)
{
    (void)state;
    tether_store_t *st;
    assert_int_equal(tether_store_mem_create(16, &st), 0);
    tether_addr_t a = loopback(7000);
    tether_store_rec_t c2, c3;
    tetherd_adopt_claim(2, 1, 1000, &a, &c2);
    tetherd_adopt_claim(3, 1, 1000, &a, &c3);
    res_t r2 = {1, 0}, r3 = {1, 0};
    assert_int_equal(tether_store_put(st, &c2, 0, 60000, 0, done, &r2), 0);
    assert_int_equal(tether_store_put(st, &c3, 0, 60000, 0, done, &r3), 0);
    assert_int_equal(r2.rc, 0);
    assert_int_equal(r3.rc, TETHER_ECONFLICT);

    tether_store_rec_t lease = {.kind = TETHER_STORE_NODE};
    lease.u.node.node_id = 4;
    lease.u.node.addr = a;
    lease.u.node.generation = 2000;
    res_t l = {1, 0};
    assert_int_equal(tether_store_put(st, &lease, 0, 3000, 0, done, &l), 0); /* version 1 */
    tetherd_adopt_claim(2, 4, 2000, &a, &c2);
    assert_int_equal(tether_store_put(st, &c2, 2, 60000, 0, done, &r2), 0);
    assert_int_equal(r2.rc, TETHER_ECONFLICT); /* a live lease is never claimed */
    lease.u.node.handover = true;
    assert_int_equal(tether_store_put(st, &lease, 1, 9000, 0, done, &l), 0);
    assert_true(l.rc == 0 && l.version == 2);
    tetherd_adopt_claim(3, 4, 2000, &a, &c3);
    assert_int_equal(tether_store_put(st, &c2, 2, 60000, 0, done, &r2), 0);
    assert_int_equal(tether_store_put(st, &c3, 2, 60000, 0, done, &r3), 0);
    assert_int_equal(r2.rc, 0);
    assert_int_equal(r3.rc, TETHER_ECONFLICT);
    tether_store_destroy(st);
}

/* Two nodes continue the same checkpoint (version 4, ceiling C): each
 * would start at C + margin, the same nonces, so only the first write of
 * an adopted session (expect 4) may let it send; the other conflicts and
 * releases its copy. The dead owner never sent at or beyond C. */
static void test_one_adopter_sends(void **state)
{
    (void)state;
    tether_store_t *st;
    assert_int_equal(tether_store_mem_create(16, &st), 0);
    const uint8_t blob[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tether_store_rec_t rec = {.kind = TETHER_STORE_SESSION};
    rec.u.session.cid_len = 8;
    memcpy(rec.u.session.cid,
           "\x01"
           "abcdefg",
           8);
    rec.u.session.node_id = 1;
    rec.u.session.seq_ceiling = 4096;
    rec.u.session.blob = blob;
    rec.u.session.blob_len = sizeof blob;
    res_t r = {1, 0};
    for (uint64_t v = 0; v < 4; v++) { /* the owner's raises: versions 1..4 */
        assert_int_equal(tether_store_put(st, &rec, v, 0, 0, done, &r), 0);
        assert_int_equal(r.rc, 0);
    }
    assert_true(r.version == 4);
    uint64_t start = tether_txceil_adopt_start(4096, TETHER_TXCEIL_MARGIN);
    assert_true(start >= 4096 + TETHER_TXCEIL_MARGIN); /* beyond anything the owner sent */
    tether_store_rec_t a2 = rec, a3 = rec;
    a2.u.session.node_id = 2;
    a2.u.session.seq_ceiling = start + 1024;
    a3.u.session.node_id = 3;
    a3.u.session.seq_ceiling = start + 1024;
    res_t w2 = {1, 0}, w3 = {1, 0};
    assert_int_equal(tether_store_put(st, &a2, 4, 0, 0, done, &w2), 0);
    assert_int_equal(tether_store_put(st, &a3, 4, 0, 0, done, &w3), 0);
    assert_int_equal(w2.rc, 0);
    assert_int_equal(w3.rc, TETHER_ECONFLICT);
    /* The fenced old owner raising its ceiling from version 4 loses too. */
    res_t w1 = {1, 0};
    rec.u.session.seq_ceiling = 8192;
    assert_int_equal(tether_store_put(st, &rec, 4, 0, 0, done, &w1), 0);
    assert_int_equal(w1.rc, TETHER_ECONFLICT);
    /* No room left for a margin: no adoption (a new handshake instead). */
    assert_true(tether_txceil_adopt_start(TETHER_TXCEIL_SEQ_LIMIT - 10, TETHER_TXCEIL_MARGIN) ==
                TETHER_TXCEIL_SEQ_LIMIT);
    tether_store_destroy(st);
}

/* ---- what an adopter checks of a checkpoint ------------------------------------ */

static const uint8_t ckey[] = "cluster key of the adoption tests";

static tether_creds_t *creds_with(const char *key_hex)
{
    char json[160];
    snprintf(json, sizeof json,
             "{\"psk\": [{\"identity\": \"dev1\", \"key_hex\": \"%s\", \"role\": \"device\"}]}",
             key_hex);
    return creds_from_json(json);
}

static tether_dtls_srv_t *adopter(const tether_creds_t *creds)
{
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    conf.node_id = 6;
    conf.cluster_key = ckey;
    conf.cluster_key_len = sizeof ckey - 1;
    conf.checkpoint = true;
    tether_dtls_srv_t *srv;
    assert_int_equal(tether_dtls_create(&conf, creds, 1000, &srv), 0);
    return srv;
}

/* The checkpoint node 5 (generation 1) would write of a PSK session of
 * dev1 whose handshake used the key with tag `tag`, at (version, ceiling). */
static size_t seal_dev1(const uint8_t cid[8], uint64_t tag, uint64_t version, uint64_t ceiling,
                        uint8_t *blob, tether_dtls_ckpt_bind_t *b)
{
    tether_ckpt_key_t k;
    assert_int_equal(tether_ckpt_key(ckey, sizeof ckey - 1, &k), 0);
    WC_RNG rng;
    assert_int_equal(wc_InitRng(&rng), 0);
    tether_ckpt_t c;
    memset(&c, 0, sizeof c);
    c.rec.alg = TETHER_REC_AES128_GCM;
    c.rec.epoch = 1;
    c.rec.tx_seq = 10;
    c.rec.rx_next = 5;
    memset(c.rec.tx_key, 0x11, sizeof c.rec.tx_key);
    memset(c.rec.rx_key, 0x22, sizeof c.rec.rx_key);
    c.auth = TETHER_CKPT_AUTH_PSK;
    c.role = TETHER_ROLE_DEVICE;
    c.key_tag = tag;
    snprintf(c.identity, sizeof c.identity, "dev1");
    c.peer = loopback(5683);
    *b = (tether_dtls_ckpt_bind_t){
        .owner = 5, .generation = 1, .version = version, .seq_ceiling = ceiling};
    tether_ckpt_bind_t bind = {.cid = cid,
                               .cid_len = 8,
                               .owner = 5,
                               .generation = 1,
                               .version = version,
                               .seq_ceiling = ceiling};
    size_t len;
    assert_int_equal(tether_ckpt_seal(&k, &rng, &bind, &c, blob, TETHER_CKPT_MAX, &len), 0);
    wc_FreeRng(&rng);
    tether_ckpt_key_wipe(&k);
    return len;
}

/* An adopted PSK session keeps the key tag of its handshake: a reload
 * with the same key leaves it alone, a rotation of dev1's key ends it
 * (as it ends any session, tether_dtls_set_creds), and a checkpoint made
 * before a rotation is not adopted at all. */
static void test_adopted_session_keeps_key_tag(void **state)
{
    (void)state;
    tether_creds_t *k1 = creds_with("00112233445566778899aabbccddeeff"),
                   *same = creds_with("00112233445566778899aabbccddeeff"),
                   *k2 = creds_with("ffeeddccbbaa99887766554433221100");
    uint64_t tag1, tag2;
    assert_int_equal(tether_creds_key_tag(k1, "dev1", &tag1), 0);
    assert_int_equal(tether_creds_key_tag(k2, "dev1", &tag2), 0);
    assert_true(tag1 != tag2);
    tether_dtls_srv_t *srv = adopter(k1);
    const tether_dtls_stats_t *st = tether_dtls_stats(srv);
    const uint8_t cid[8] = {5, 1, 2, 3, 4, 5, 6, 7}, cid2[8] = {5, 9, 9, 9, 9, 9, 9, 9};
    uint8_t blob[TETHER_CKPT_MAX];
    tether_dtls_ckpt_bind_t b;
    size_t len = seal_dev1(cid, tag1, 3, 4096, blob, &b);
    tether_dtls_sess_t *s;
    assert_int_equal(tether_dtls_adopt(srv, cid, 8, &b, blob, len, 0, 2000, &s), 0);
    uint64_t id = tether_dtls_sess_id(s);
    tether_dtls_set_creds(srv, same); /* SIGHUP, nothing changed */
    assert_non_null(tether_dtls_sess_find(srv, id));
    assert_int_equal(st->sessions_revoked, 0);
    tether_dtls_set_creds(srv, k2); /* dev1's key rotated after the failover */
    assert_null(tether_dtls_sess_find(srv, id));
    assert_int_equal(st->sessions_revoked, 1);
    /* Rotated while its owner was dead: the old key's session is refused. */
    len = seal_dev1(cid2, tag1, 3, 4096, blob, &b);
    uint64_t refused = st->adoptions_refused;
    assert_int_equal(tether_dtls_adopt(srv, cid2, 8, &b, blob, len, 0, 3000, &s), TETHER_ENOTFOUND);
    assert_int_equal(st->adoptions_refused, refused + 1);
    /* One made under the new key is adopted. */
    len = seal_dev1(cid2, tag2, 3, 4096, blob, &b);
    assert_int_equal(tether_dtls_adopt(srv, cid2, 8, &b, blob, len, 0, 3000, &s), 0);
    tether_dtls_destroy(srv);
    tether_creds_free(k1);
    tether_creds_free(same);
    tether_creds_free(k2);
}

/* A writer to Redis who also rewrites the version counters can put an
 * older (version, blob, ceiling) triple back: its seal opens, but its
 * ceiling may be below what the session sent since. An adopter that saw
 * a newer checkpoint of that CID (the replica's change log, its own
 * adoption or writes) refuses it: lower version, or lower ceiling. */
static void test_adopt_refuses_rolled_back_checkpoint(void **state)
{
    (void)state;
    tether_creds_t *creds = creds_with("00112233445566778899aabbccddeeff");
    uint64_t tag;
    assert_int_equal(tether_creds_key_tag(creds, "dev1", &tag), 0);
    const uint8_t cid[8] = {5, 1, 2, 3, 4, 5, 6, 7};
    uint8_t old[TETHER_CKPT_MAX], cur[TETHER_CKPT_MAX], low[TETHER_CKPT_MAX];
    tether_dtls_ckpt_bind_t bo, bc, bl;
    size_t lo = seal_dev1(cid, tag, 3, 4096, old, &bo);
    size_t lc = seal_dev1(cid, tag, 5, 1u << 20, cur, &bc);
    size_t ll = seal_dev1(cid, tag, 6, 8192, low, &bl); /* newer version, lower ceiling */

    /* The replica saw version 5 go by. */
    tether_dtls_srv_t *srv = adopter(creds);
    const tether_dtls_stats_t *st = tether_dtls_stats(srv);
    tether_dtls_ckpt_seen(srv, cid, 8, 5, 1u << 20);
    tether_dtls_sess_t *s;
    assert_int_equal(tether_dtls_adopt(srv, cid, 8, &bo, old, lo, 0, 2000, &s), TETHER_ECONFLICT);
    assert_int_equal(tether_dtls_adopt(srv, cid, 8, &bl, low, ll, 0, 2000, &s), TETHER_ECONFLICT);
    assert_int_equal(st->adoptions_refused, 2);
    assert_int_equal(st->sessions_adopted, 0);
    assert_int_equal(tether_dtls_adopt(srv, cid, 8, &bc, cur, lc, 0, 2000, &s), 0);
    tether_dtls_destroy(srv);

    /* Without the replica: a node that adopted version 5 itself, then
     * handed the session on, refuses version 3 when it comes back. */
    srv = adopter(creds);
    st = tether_dtls_stats(srv);
    assert_int_equal(tether_dtls_adopt(srv, cid, 8, &bc, cur, lc, 0, 2000, &s), 0);
    assert_int_equal(tether_dtls_sess_release(srv, tether_dtls_sess_id(s)), 0);
    tether_dtls_tick(srv, 2100);
    assert_int_equal(tether_dtls_adopt(srv, cid, 8, &bo, old, lo, 0, 2200, &s), TETHER_ECONFLICT);
    assert_int_equal(st->sessions_adopted, 1);
    tether_dtls_destroy(srv);
    tether_creds_free(creds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_should_claim),
        cmocka_unit_test(test_wait_and_expect),
        cmocka_unit_test(test_claim_record),
        cmocka_unit_test(test_fenced),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_one_claim_wins),
        cmocka_unit_test(test_one_adopter_sends),
        cmocka_unit_test(test_adopted_session_keeps_key_tag),
        cmocka_unit_test(test_adopt_refuses_rolled_back_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
