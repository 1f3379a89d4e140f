/* Unit tests for the lifetime of lib/dtls/ sessions beyond one server
 * (dtls.c, failover.c, checkpoint.c, txceil.c, ticket.c): revocation on a
 * credentials reload (identity gone, role or key changed), the memory of
 * an idle session (SPEC S9), checkpoint and adoption by another node
 * (SPEC S5), and resumption by ticket: DTLS 1.2 and 1.3, refused after a
 * key change or tampering, across a cluster and key periods, and for
 * certificate clients (bound to the CA file). Fixture: dtls_fixture.h. */
#include <malloc.h>

#include "dtls_fixture.h"
#include "tether/store.h"

/* Security review item 9: after a credentials reload, a session whose
 * identity is gone, or listed with another role, ends; others stay. */
static void test_reload_revokes_sessions(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    client_init(&f->c, true);
    assert_int_equal(handshake(f->srv, &f->c, 56000), 0);
    uint64_t id = tether_dtls_sess_id(exchange(f, 56000, "dev1 here"));
    tether_dtls_set_creds(f->srv, f->creds); /* same set: kept */
    assert_non_null(tether_dtls_sess_find(f->srv, id));
    assert_int_equal(st->sessions_revoked, 0);

    char path[] = "/tmp/tether-creds-XXXXXX";
    int fd = mkstemp(path);
    dprintf(fd, "{\"psk\": [{\"identity\": \"dev1\", \"key_hex\": \"00\", \"role\": \"client\"}]}");
    close(fd);
    tether_creds_t *other;
    char err[256];
    assert_int_equal(tether_creds_load(path, &other, err, sizeof err), 0);
    unlink(path);
    tether_dtls_set_creds(f->srv, other); /* dev1 is a client now */
    assert_null(tether_dtls_sess_find(f->srv, id));
    assert_int_equal(st->sessions_revoked, 1);
    const tether_dtls_event_t *ev;
    size_t n = tether_dtls_events(f->srv, &ev);
    assert_true(n >= 1);
    assert_int_equal(ev[n - 1].why, TETHER_DTLS_WHY_REVOKED);
    tether_dtls_set_creds(f->srv, f->creds);
    tether_creds_free(other);
}

/* Security review: rotating a device's key (same identity, same role) ends
 * the sessions made with the old key; reloading the same key keeps them. */
static tether_creds_t *creds_with_dev1_key(uint8_t first)
{
    char json[160];
    int at = snprintf(json, sizeof json, "{\"psk\": [{\"identity\": \"dev1\", \"key_hex\": \"%02x",
                      first);
    for (int i = 1; i < 16; i++)
        at += snprintf(json + at, sizeof json - (size_t)at, "%02x", dev_key[i]);
    snprintf(json + at, sizeof json - (size_t)at, "\", \"role\": \"device\"}]}");
    return creds_from_json(json);
}

static void test_reload_revokes_rotated_keys(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    client_init(&f->c, true);
    assert_int_equal(handshake(f->srv, &f->c, 56000), 0);
    uint64_t id = tether_dtls_sess_id(exchange(f, 56000, "dev1 here"));
    tether_creds_t *same = creds_with_dev1_key(dev_key[0]);
    tether_dtls_set_creds(f->srv, same); /* another file, the same key */
    assert_non_null(tether_dtls_sess_find(f->srv, id));
    assert_int_equal(st->sessions_revoked, 0);
    tether_creds_t *rotated = creds_with_dev1_key((uint8_t)(dev_key[0] ^ 0xff));
    tether_dtls_set_creds(f->srv, rotated);
    assert_null(tether_dtls_sess_find(f->srv, id));
    assert_int_equal(st->sessions_revoked, 1);
    tether_dtls_set_creds(f->srv, f->creds);
    tether_creds_free(same);
    tether_creds_free(rotated);
}

/* SPEC S9: an idle established tunnel costs at most 1 KiB. Live heap per
 * session (glibc's in-use bytes) once 300 DTLS 1.2 PSK+CID sessions moved
 * to the compact layer, the clients freed. */
static void test_idle_session_memory(void **state)
{
    fixture_t *f = *state;
    enum { N = 300 };
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    tether_dtls_tick(f->srv, now_ms);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++) {
        assert_int_equal(handshake_from(f, 0x0a100000 + (uint32_t)i, 5683), 0);
    }
    assert_int_equal(st->sessions_active, N);
    tether_dtls_tick(f->srv, now_ms + 30000);
    assert_int_equal(st->sessions_compact, N);
    struct mallinfo2 after = mallinfo2();
    if (after.uordblks == before.uordblks)
        skip(); /* another allocator (a sanitizer) hides the heap from mallinfo2 */
    size_t per = (after.uordblks - before.uordblks) / N;
    print_message("live heap per idle compact session: %zu bytes\n", per);
    assert_true(per <= 1024);
    client_init(&f->c, false);
}

/* ---- failover: checkpoint on one node, adoption on another (SPEC S5) ---- */

static const uint8_t failover_key[] = "cluster key of the failover tests";

/* The store side of checkpointing, as the layer above would run it: the
 * SESSION record of one CID in the in-memory store. */
typedef struct {
    tether_store_t *store;
    uint8_t owner;
    uint64_t generation;
    uint64_t version; /* of the record, last seen */
    uint64_t ceiling; /* last stored */
} ckstore_t;

typedef struct {
    int rc;
    uint64_t version, ceiling;
    uint8_t owner;
    uint8_t blob[TETHER_DTLS_CHECKPOINT_MAX];
    size_t len;
} ckrec_t;

static void on_ck_done(void *user, const tether_store_result_t *res)
{
    ckrec_t *r = user;
    r->rc = res->rc;
    r->version = res->version;
    if (res->rc == 0 && res->rec) {
        r->ceiling = res->rec->u.session.seq_ceiling;
        r->owner = res->rec->u.session.node_id;
        r->len = res->rec->u.session.blob_len;
        assert_true(r->len <= sizeof r->blob);
        memcpy(r->blob, res->rec->u.session.blob, r->len);
    }
}

/* Writes a checkpoint of `s` bound to `ceiling` (compare-and-set on the
 * version last seen, sealed for the version the put creates). */
static void ck_write(tether_dtls_srv_t *srv, tether_dtls_sess_t *s, ckstore_t *cs, uint64_t ceiling)
{
    tether_dtls_ckpt_bind_t b = {.owner = cs->owner,
                                 .generation = cs->generation,
                                 .version = cs->version + 1,
                                 .seq_ceiling = ceiling};
    uint8_t blob[TETHER_DTLS_CHECKPOINT_MAX];
    size_t len;
    assert_int_equal(tether_dtls_checkpoint(srv, s, &b, blob, sizeof blob, &len), 0);
    tether_store_rec_t rec = {.kind = TETHER_STORE_SESSION};
    rec.u.session.cid_len = (uint8_t)tether_dtls_sess_cid(s, rec.u.session.cid);
    rec.u.session.node_id = cs->owner;
    rec.u.session.seq_ceiling = ceiling;
    rec.u.session.blob = blob;
    rec.u.session.blob_len = len;
    ckrec_t r = {.rc = 1};
    assert_int_equal(tether_store_put(cs->store, &rec, cs->version, 0, now_ms, on_ck_done, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.version, cs->version + 1);
    cs->version = r.version;
    cs->ceiling = ceiling;
}

/* Answers every EV_CEILING queued so far; returns how many. */
static int ck_serve(tether_dtls_srv_t *srv, ckstore_t *cs)
{
    const tether_dtls_event_t *ev;
    size_t n = tether_dtls_events(srv, &ev);
    uint64_t ids[16];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ev[i].kind == TETHER_DTLS_EV_CEILING && k < 16)
            ids[k++] = ev[i].id;
    tether_dtls_events_clear(srv);
    for (size_t i = 0; i < k; i++) {
        tether_dtls_sess_t *s = tether_dtls_sess_find(srv, ids[i]);
        assert_non_null(s);
        uint64_t c = tether_dtls_sess_ceiling_wanted(s);
        assert_true(c > 0);
        ck_write(srv, s, cs, c);
        assert_int_equal(tether_dtls_ceiling_acked(srv, ids[i], c), 0);
    }
    return (int)k;
}

static uint64_t record_seq(const uint8_t *rec)
{
    uint64_t v = 0;
    for (int i = 5; i < 11; i++)
        v = v << 8 | rec[i];
    return v;
}

/* Node 5 runs a session and checkpoints it; node 6 adopts it from the
 * store: the client's next record (same CID) opens there and the answer
 * opens at the client, with no handshake. An older checkpoint is refused,
 * a record node 5 accepted before the checkpoint is dropped as a replay,
 * and node 6 sends nothing until it stored its own ceiling, then starts
 * beyond the stored one plus the margin. */
static void test_adopt_checkpointed_session(void **state)
{
    (void)state;
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    conf.cluster_key = failover_key;
    conf.cluster_key_len = sizeof failover_key - 1;
    conf.checkpoint = true;
    fixture_t *f = make_fixture(false, &conf); /* node 5 */
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    ckstore_t cs = {.owner = 5, .generation = 1};
    assert_int_equal(tether_store_mem_create(16, &cs.store), 0);
    const uint16_t port = 52000;
    tether_addr_t a = addr(port);

    for (int su = 0; su < 2; su++) {
        const char *suites[] = {"PSK-AES128-GCM-SHA256", "PSK-AES128-CCM-8"};
        client_opts_t o = {.suite = suites[su], .own_cid = su == 1};
        client_init_opts(&f->c, true, &o);
        assert_int_equal(handshake(f->srv, &f->c, port), 0);
        tether_dtls_sess_t *s = exchange(f, port, "first"); /* still on wolfSSL */
        uint64_t id = tether_dtls_sess_id(s);
        tether_dtls_tick(f->srv, now_ms); /* settles: compact, under a ceiling */
        s = tether_dtls_sess_find(f->srv, id);
        uint8_t blob[TETHER_DTLS_CHECKPOINT_MAX];
        size_t len;
        tether_dtls_ckpt_bind_t b0 = {
            .owner = 5, .generation = 1, .version = 1, .seq_ceiling = 1 << 20};
        assert_int_equal(tether_dtls_checkpoint(f->srv, s, &b0, blob, sizeof blob, &len), 0);
        assert_int_equal(ck_serve(f->srv, &cs), 1);
        exchange(f, port, "on node 5");
        ckrec_t old = {0};
        uint8_t cid[TETHER_CID_MAX];
        size_t cl = tether_dtls_sess_cid(s, cid);
        assert_int_equal(cl, 8);
        assert_int_equal(cid[0], 5);
        assert_int_equal(
            tether_store_get(cs.store, TETHER_STORE_SESSION, cid, cl, now_ms, on_ck_done, &old), 0);

        /* A record node 5 accepts, then the (coalesced) receive checkpoint. */
        uint8_t seen[TETHER_DTLS_MAX_DGRAM];
        size_t nseen = client_record(&f->c, "seen by node 5", seen);
        tether_dtls_rx_t rx;
        tether_dtls_input(f->srv, 0, &a, seen, nseen, now_ms, &rx);
        assert_int_equal(rx.len, strlen("seen by node 5"));
        ck_write(f->srv, s, &cs, cs.ceiling);

        /* Node 5 is gone; node 6 serves its id from the store. */
        tether_dtls_conf_t c6 = conf;
        c6.node_id = 6;
        tether_dtls_srv_t *b;
        assert_int_equal(tether_dtls_create(&c6, f->creds, now_ms, &b), 0);
        const tether_dtls_stats_t *bst = tether_dtls_stats(b);
        ckrec_t cur = {0};
        assert_int_equal(
            tether_store_get(cs.store, TETHER_STORE_SESSION, cid, cl, now_ms, on_ck_done, &cur), 0);
        assert_int_equal(cur.rc, 0);
        tether_dtls_ckpt_bind_t bind = {.owner = cur.owner,
                                        .generation = 1,
                                        .version = cur.version,
                                        .seq_ceiling = cur.ceiling};
        tether_dtls_sess_t *t = NULL;
        /* The older checkpoint, replayed into the current record, does not open. */
        assert_int_equal(tether_dtls_adopt(b, cid, cl, &bind, old.blob, old.len, 0, now_ms, &t),
                         TETHER_ECRYPTO);
        /* Nor under another generation or CID. */
        bind.generation = 2;
        assert_int_equal(tether_dtls_adopt(b, cid, cl, &bind, cur.blob, cur.len, 0, now_ms, &t),
                         TETHER_ECRYPTO);
        bind.generation = 1;
        cid[7] ^= 1;
        assert_int_equal(tether_dtls_adopt(b, cid, cl, &bind, cur.blob, cur.len, 0, now_ms, &t),
                         TETHER_ECRYPTO);
        cid[7] ^= 1;
        assert_int_equal(bst->adoptions_refused, 3);
        assert_int_equal(tether_dtls_adopt(b, cid, cl, &bind, cur.blob, cur.len, 0, now_ms, &t), 0);
        assert_int_equal(tether_dtls_adopt(b, cid, cl, &bind, cur.blob, cur.len, 0, now_ms, &t),
                         TETHER_EEXIST);
        assert_int_equal(bst->sessions_adopted, 1);
        assert_string_equal(tether_dtls_sess_identity(t), "dev1");
        assert_int_equal(tether_dtls_sess_role(t), TETHER_ROLE_DEVICE);

        /* The client's next record, with node 5's CID, opens on node 6. */
        uint8_t rec[TETHER_DTLS_MAX_DGRAM];
        size_t n = client_record(&f->c, "after the failover", rec);
        tether_dtls_input(b, 0, &a, rec, n, now_ms, &rx);
        assert_int_equal(rx.len, strlen("after the failover"));
        assert_memory_equal(rx.data, "after the failover", rx.len);
        assert_ptr_equal(rx.sess, t);
        /* Node 6 answers only once its own ceiling is stored. */
        assert_int_equal(tether_dtls_send(b, rx.sess, (const uint8_t *)"from node 6", 11), 0);
        assert_int_equal(tether_dtls_tx_count(b), 0);
        assert_int_equal(bst->records_held, 1);
        uint64_t stored = cs.ceiling;
        ckstore_t cs6 = cs; /* the adopter writes back under its own generation */
        cs6.generation = 2;
        assert_int_equal(ck_serve(b, &cs6), 1);
        assert_true(cs6.ceiling > stored + (UINT64_C(1) << 24));
        assert_int_equal(tether_dtls_tx_count(b), 1);
        uint64_t seq = record_seq(tether_dtls_tx_get(b, 0)->data);
        assert_true(seq >= stored + (UINT64_C(1) << 24));
        assert_true(seq < cs6.ceiling);
        pump_to_client(b, &f->c);
        char buf[32];
        assert_int_equal(wolfSSL_read(f->c.ssl, buf, sizeof buf), 11);
        assert_memory_equal(buf, "from node 6", 11);

        /* What node 5 accepted before the checkpoint is a replay here. */
        uint64_t rejected = bst->records_rejected;
        tether_dtls_input(b, 0, &a, seen, nseen, now_ms, &rx);
        assert_int_equal(rx.len, 0);
        assert_int_equal(bst->records_rejected, rejected + 1);
        /* And the session goes on, with no handshake anywhere. */
        n = client_record(&f->c, "again", rec);
        tether_dtls_input(b, 0, &a, rec, n, now_ms, &rx);
        assert_int_equal(rx.len, 5);
        assert_int_equal(tether_dtls_send(b, rx.sess, (const uint8_t *)"ok", 2), 0);
        pump_to_client(b, &f->c);
        assert_int_equal(wolfSSL_read(f->c.ssl, buf, sizeof buf), 2);
        assert_int_equal(bst->handshakes_full, 0);
        assert_int_equal(bst->hello_verify_sent, 0);
        assert_int_equal(st->handshakes_full, (uint64_t)su + 1);
        tether_dtls_destroy(b);

        /* Next suite: the client starts over with node 5 (a new session). */
        ckrec_t gone;
        tether_store_del(cs.store, TETHER_STORE_SESSION, cid, cl, TETHER_STORE_ANY, now_ms,
                         on_ck_done, &gone);
        cs.version = 0;
        client_free(&f->c);
        memset(&f->c, 0, sizeof f->c);
        tether_dtls_tick(f->srv, now_ms);
    }
    client_init(&f->c, false);
    tether_store_destroy(cs.store);
    fixture_t *state_f = f;
    teardown((void **)&state_f);
}

/* Without conf.checkpoint nothing changes: no ceiling, no checkpoint, no
 * adoption; with it but no cluster key the server is refused. */
static void test_checkpoint_off(void **state)
{
    fixture_t *f = *state;
    client_init(&f->c, true);
    assert_int_equal(handshake(f->srv, &f->c, 52100), 0);
    tether_dtls_sess_t *s = exchange(f, 52100, "one");
    tether_dtls_tick(f->srv, now_ms);
    s = exchange(f, 52100, "two"); /* compact, sent at once */
    assert_int_equal(tether_dtls_sess_ceiling_wanted(s), 0);
    tether_dtls_ckpt_bind_t b = {.owner = 5, .generation = 1, .version = 1, .seq_ceiling = 100};
    uint8_t blob[TETHER_DTLS_CHECKPOINT_MAX];
    size_t len;
    assert_int_equal(tether_dtls_checkpoint(f->srv, s, &b, blob, sizeof blob, &len), TETHER_EINVAL);
    tether_dtls_sess_t *t;
    uint8_t cid[TETHER_CID_MAX] = {5};
    assert_int_equal(tether_dtls_adopt(f->srv, cid, 8, &b, blob, 0, 0, now_ms, &t), TETHER_EINVAL);
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    conf.checkpoint = true;
    tether_dtls_srv_t *srv;
    assert_int_equal(tether_dtls_create(&conf, f->creds, now_ms, &srv), TETHER_ECONFIG);
}

/* ---- session resumption (lib/dtls/ticket.h) ------------------------------ */

/* A client that resumes `sess` (the ticket in it), from a fresh object as
 * a device does after a reboot or a lost session. */
static void client_resume(client_t *c, bool dtls13, WOLFSSL_SESSION *sess)
{
    client_opts_t o = {.dtls13 = dtls13};
    client_init_opts(c, true, &o);
    if (!dtls13)
        assert_int_equal(wolfSSL_UseSessionTicket(c->ssl), WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_set_session(c->ssl, sess), WOLFSSL_SUCCESS);
}

/* A full handshake that leaves a ticket with the client: its session. */
static WOLFSSL_SESSION *full_with_ticket(fixture_t *f, bool dtls13, uint16_t port)
{
    client_opts_t o = {.dtls13 = dtls13};
    client_init_opts(&f->c, true, &o);
    if (!dtls13)
        assert_int_equal(wolfSSL_UseSessionTicket(f->c.ssl), WOLFSSL_SUCCESS);
    assert_int_equal(handshake(f->srv, &f->c, port), 0);
    exchange(f, port, "first session");
    WOLFSSL_SESSION *sess = wolfSSL_get1_session(f->c.ssl);
    assert_non_null(sess);
    uint8_t t[2048];
    word32 tl = sizeof t;
    assert_int_equal(wolfSSL_get_SessionTicket(f->c.ssl, t, &tl), WOLFSSL_SUCCESS);
    assert_true(tl > 0); /* the server issued a ticket */
    client_free(&f->c);
    memset(&f->c, 0, sizeof f->c);
    return sess;
}

/* SPEC S2/S9: a device resumes with its ticket (no key exchange): the
 * session is dev1's, as a device, counted as resumed; a DTLS 1.2 one
 * moves to the compact record layer and keeps working there. */
static void check_resume(fixture_t *f, bool dtls13, uint16_t port)
{
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    WOLFSSL_SESSION *sess = full_with_ticket(f, dtls13, port);
    uint64_t compact = 0;
    client_resume(&f->c, dtls13, sess);
    assert_int_equal(handshake(f->srv, &f->c, (uint16_t)(port + 1)), 0);
    assert_int_equal(wolfSSL_session_reused(f->c.ssl), 1);
    assert_int_equal(st->handshakes_resumed, 1);
    assert_int_equal(st->handshakes_full, 1);
    assert_int_equal(st->tickets_refused, 0);
    for (int i = 0; i < 3; i++) {
        tether_dtls_sess_t *s = exchange(f, (uint16_t)(port + 1), "resumed");
        assert_string_equal(tether_dtls_sess_identity(s), "dev1");
        assert_int_equal(tether_dtls_sess_role(s), TETHER_ROLE_DEVICE);
        uint8_t cid[TETHER_CID_MAX];
        assert_int_equal(tether_dtls_sess_cid(s, cid), 8);
    }
    assert_int_equal(st->sessions_compact, compact + (dtls13 ? 0 : 2)); /* full, resumed */
    /* The resumed session's key tag is the ticket's: a key rotation
     * revokes it like a full one. */
    tether_creds_t *rotated = creds_with_dev1_key((uint8_t)(dev_key[0] ^ 0xff));
    tether_dtls_set_creds(f->srv, rotated);
    assert_int_equal(st->sessions_revoked, 2);
    tether_dtls_set_creds(f->srv, f->creds);
    tether_creds_free(rotated);
    wolfSSL_SESSION_free(sess);
}

static void test_resume_dtls12(void **state)
{
    check_resume(*state, false, 57000);
}

static void test_resume_dtls13(void **state)
{
    check_resume(*state, true, 57100);
}

/* A ticket whose credential changed does not open: the client gets a full
 * handshake (with its new key), never a session on the old one. */
static void test_ticket_refused_after_key_change(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    for (int v13 = 0; v13 < 2; v13++) {
        tether_dtls_set_creds(f->srv, f->creds);
        WOLFSSL_SESSION *sess = full_with_ticket(f, v13, (uint16_t)(57200 + 10 * v13));
        static uint8_t new_key[16];
        memcpy(new_key, dev_key, sizeof new_key);
        new_key[0] ^= 0xff;
        tether_creds_t *rotated = creds_with_dev1_key(new_key[0]);
        tether_dtls_set_creds(f->srv, rotated);
        client_key = new_key;
        client_resume(&f->c, v13, sess);
        assert_int_equal(handshake(f->srv, &f->c, (uint16_t)(57201 + 10 * v13)), 0);
        client_key = dev_key;
        /* (A DTLS 1.3 wolfSSL client that offered a ticket reports its
         * session reused even when the server chose its external PSK.) */
        assert_true(v13 || wolfSSL_session_reused(f->c.ssl) == 0);
        assert_int_equal(st->handshakes_resumed, 0);
        assert_int_equal(st->handshakes_full, 2 * (v13 + 1));
        assert_true(st->tickets_refused >= (uint64_t)v13 + 1);
        exchange(f, (uint16_t)(57201 + 10 * v13), "full again");
        client_free(&f->c);
        memset(&f->c, 0, sizeof f->c);
        tether_dtls_set_creds(f->srv, f->creds);
        tether_creds_free(rotated);
        wolfSSL_SESSION_free(sess);
    }
    /* An identity that is gone: likewise (and its full handshake fails). */
    WOLFSSL_SESSION *sess = full_with_ticket(f, false, 57300);
    tether_creds_t *none;
    assert_int_equal(tether_creds_empty(&none), 0);
    tether_dtls_set_creds(f->srv, none);
    uint64_t refused = st->tickets_refused;
    client_resume(&f->c, false, sess);
    assert_int_not_equal(handshake(f->srv, &f->c, 57301), 0);
    assert_int_equal(st->tickets_refused, refused + 1);
    assert_int_equal(st->handshakes_resumed, 0);
    tether_dtls_set_creds(f->srv, f->creds);
    tether_creds_free(none);
    wolfSSL_SESSION_free(sess);
}

/* An altered ticket does not open, whichever byte: key name, IV, length,
 * ciphertext (identity trailer included) or tag. */
static void test_tampered_ticket_refused(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    WOLFSSL_SESSION *sess = full_with_ticket(f, false, 57400);
    client_resume(&f->c, false, sess);
    uint8_t t[2048];
    word32 tl = sizeof t;
    assert_int_equal(wolfSSL_get_SessionTicket(f->c.ssl, t, &tl), WOLFSSL_SUCCESS);
    assert_true(tl > 100);
    client_free(&f->c);
    size_t where[] = {2, 20, 33, 40, tl - 60, tl - 40, tl - 20, tl - 1};
    for (size_t i = 0; i < sizeof where / sizeof *where; i++) {
        client_resume(&f->c, false, sess);
        t[where[i]] ^= 0x01;
        assert_int_equal(wolfSSL_set_SessionTicket(f->c.ssl, t, tl), WOLFSSL_SUCCESS);
        t[where[i]] ^= 0x01;
        uint16_t port = (uint16_t)(57401 + i);
        assert_int_equal(handshake(f->srv, &f->c, port), 0);
        assert_int_equal(wolfSSL_session_reused(f->c.ssl), 0);
        assert_int_equal(st->handshakes_resumed, 0);
        assert_string_equal(tether_dtls_sess_identity(exchange(f, port, "full")), "dev1");
        client_free(&f->c);
    }
    /* The length (byte 33) is wolfSSL's to refuse; we refuse the rest. */
    assert_int_equal(st->tickets_refused, sizeof where / sizeof *where - 1);
    /* The untouched ticket still resumes. */
    client_resume(&f->c, false, sess);
    assert_int_equal(wolfSSL_set_SessionTicket(f->c.ssl, t, tl), WOLFSSL_SUCCESS);
    assert_int_equal(handshake(f->srv, &f->c, 57420), 0);
    assert_int_equal(wolfSSL_session_reused(f->c.ssl), 1);
    assert_int_equal(st->handshakes_resumed, 1);
    wolfSSL_SESSION_free(sess);
}

/* Any node of the cluster (same cluster_key) resumes a ticket another one
 * issued, across a key period; a node of another cluster, or one two
 * periods on, does not, and its full handshake gives the client a ticket
 * of its own. */
static void test_ticket_cluster_and_rotation(void **state)
{
    (void)state;
    tether_dtls_conf_t conf;
    tether_dtls_conf_defaults(&conf);
    static const uint8_t key[] = "cluster-key-0123456789", other[] = "cluster-key-9876543210";
    conf.cluster_key = key;
    conf.cluster_key_len = sizeof key - 1;
    conf.ticket_rotation_ms = 3600000;
    fixture_t *a = make_fixture(false, &conf);
    fixture_t *b = make_fixture(false, &conf);
    conf.cluster_key = other;
    fixture_t *x = make_fixture(false, &conf);
    tether_time_t wall = 1795000000000ull;
    tether_dtls_set_wall_clock(a->srv, wall);
    tether_dtls_set_wall_clock(b->srv, wall + 3600000); /* the next period */
    tether_dtls_set_wall_clock(x->srv, wall);
    WOLFSSL_SESSION *sess = full_with_ticket(a, false, 57500);

    client_resume(&x->c, false, sess);
    assert_int_equal(handshake(x->srv, &x->c, 57501), 0);
    assert_int_equal(wolfSSL_session_reused(x->c.ssl), 0);
    assert_int_equal(tether_dtls_stats(x->srv)->tickets_refused, 1);
    assert_int_equal(tether_dtls_stats(x->srv)->handshakes_full, 1);
    /* The full handshake gave it a ticket of x's own, which x resumes. */
    WOLFSSL_SESSION *own = wolfSSL_get1_session(x->c.ssl);
    client_free(&x->c);
    client_resume(&x->c, false, own);
    assert_int_equal(handshake(x->srv, &x->c, 57505), 0);
    assert_int_equal(wolfSSL_session_reused(x->c.ssl), 1);
    assert_int_equal(tether_dtls_stats(x->srv)->handshakes_resumed, 1);
    wolfSSL_SESSION_free(own);

    client_resume(&b->c, false, sess);
    assert_int_equal(handshake(b->srv, &b->c, 57502), 0);
    assert_int_equal(wolfSSL_session_reused(b->c.ssl), 1);
    assert_int_equal(tether_dtls_stats(b->srv)->handshakes_resumed, 1);
    assert_string_equal(tether_dtls_sess_identity(exchange(b, 57502, "at node b")), "dev1");
    /* A ticket of the previous period is replaced by one of this period. */
    WOLFSSL_SESSION *renewed = wolfSSL_get1_session(b->c.ssl);
    client_free(&b->c);

    /* Two periods on, the first ticket's key is gone; the renewed one opens. */
    tether_dtls_set_wall_clock(b->srv, wall + 2 * 3600000 + 1);
    tether_dtls_tick(b->srv, now_ms);
    client_resume(&b->c, false, sess);
    assert_int_equal(handshake(b->srv, &b->c, 57503), 0);
    assert_int_equal(wolfSSL_session_reused(b->c.ssl), 0);
    assert_int_equal(tether_dtls_stats(b->srv)->tickets_refused, 1);
    client_free(&b->c);
    client_resume(&b->c, false, renewed);
    assert_int_equal(handshake(b->srv, &b->c, 57504), 0);
    assert_int_equal(wolfSSL_session_reused(b->c.ssl), 1);
    assert_int_equal(tether_dtls_stats(b->srv)->handshakes_resumed, 2);
    wolfSSL_SESSION_free(renewed);
    wolfSSL_SESSION_free(sess);
    client_init(&a->c, false);
    teardown((void **)&a);
    teardown((void **)&b);
    teardown((void **)&x);
}

/* A certificate client resumes as its CN and role, not re-counted as an
 * X.509 handshake; its ticket dies with its "x509" entry. */
static void test_resume_x509(void **state)
{
    fixture_t *f = *state;
    const tether_dtls_stats_t *st = tether_dtls_stats(f->srv);
    client_opts_t o = {.cert = "dev7"};
    client_init_opts(&f->c, true, &o);
    assert_int_equal(wolfSSL_UseSessionTicket(f->c.ssl), WOLFSSL_SUCCESS);
    assert_int_equal(handshake(f->srv, &f->c, 57600), 0);
    exchange(f, 57600, "dev7 full");
    WOLFSSL_SESSION *sess = wolfSSL_get1_session(f->c.ssl);
    client_free(&f->c);
    client_init_opts(&f->c, true, &o);
    assert_int_equal(wolfSSL_UseSessionTicket(f->c.ssl), WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_set_session(f->c.ssl, sess), WOLFSSL_SUCCESS);
    assert_int_equal(handshake(f->srv, &f->c, 57601), 0);
    assert_int_equal(wolfSSL_session_reused(f->c.ssl), 1);
    tether_dtls_sess_t *s = exchange(f, 57601, "dev7 resumed");
    assert_string_equal(tether_dtls_sess_identity(s), "dev7");
    assert_int_equal(tether_dtls_sess_role(s), TETHER_ROLE_DEVICE);
    assert_int_equal(st->handshakes_resumed, 1);
    assert_int_equal(st->handshakes_x509, 1);
    wolfSSL_SESSION_free(sess);
}

/* The security review: an X.509 ticket was bound to its CN alone, so
 * after the client CA changed (to revoke a compromised CA or device key,
 * every device re-issued under a new one) a ticket of the old one still
 * resumed as that CN, on any node of the cluster, until it expired; the
 * certificate behind it could no longer complete a handshake. The ticket
 * now carries a tag of the CA file: a node with another ca_file refuses
 * it (a full handshake follows), one with the same file resumes it. */
static void test_x509_ticket_bound_to_ca(void **state)
{
    (void)state;
    tether_dtls_conf_t conf;
    cluster_conf(&conf);
    fixture_t *a = make_fixture(true, &conf), *same = make_fixture(true, &conf);
    /* The same CA plus one more line: another CA file (rotated). */
    char path[160], cmd[512];
    snprintf(path, sizeof path, "%s/ca-rotated.pem", certs_dir);
    snprintf(cmd, sizeof cmd, "cp %s/ca.pem %s && echo '# rotated' >> %s", certs_dir, path, path);
    assert_int_equal(system(cmd), 0);
    fixture_ca = path;
    fixture_t *rot = make_fixture(true, &conf);
    fixture_ca = NULL;
    client_opts_t o = {.cert = "dev7"};
    client_init_opts(&a->c, true, &o);
    assert_int_equal(wolfSSL_UseSessionTicket(a->c.ssl), WOLFSSL_SUCCESS);
    assert_int_equal(handshake(a->srv, &a->c, 57700), 0);
    exchange(a, 57700, "dev7 full");
    WOLFSSL_SESSION *sess = wolfSSL_get1_session(a->c.ssl);
    fixture_t *to[2] = {same, rot};
    for (int i = 0; i < 2; i++) {
        client_init_opts(&to[i]->c, true, &o);
        assert_int_equal(wolfSSL_UseSessionTicket(to[i]->c.ssl), WOLFSSL_SUCCESS);
        assert_int_equal(wolfSSL_set_session(to[i]->c.ssl, sess), WOLFSSL_SUCCESS);
        assert_int_equal(handshake(to[i]->srv, &to[i]->c, (uint16_t)(57701 + i)), 0);
        const tether_dtls_stats_t *st = tether_dtls_stats(to[i]->srv);
        assert_int_equal(st->handshakes_resumed, i == 0);
        assert_int_equal(st->tickets_refused, i == 1);
        assert_int_equal(st->handshakes_x509, i == 1); /* the full one proved the certificate */
        assert_string_equal(tether_dtls_sess_identity(exchange(to[i], (uint16_t)(57701 + i), "x")),
                            "dev7");
    }
    wolfSSL_SESSION_free(sess);
    teardown((void **)&a);
    teardown((void **)&same);
    teardown((void **)&rot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reload_revokes_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_revokes_rotated_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_session_memory, setup, teardown),
        cmocka_unit_test(test_adopt_checkpointed_session),
        cmocka_unit_test_setup_teardown(test_checkpoint_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_dtls12, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_dtls13, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticket_refused_after_key_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_ticket_refused, setup, teardown),
        cmocka_unit_test(test_ticket_cluster_and_rotation),
        cmocka_unit_test_setup_teardown(test_resume_x509, setup_x509, teardown),
        cmocka_unit_test(test_x509_ticket_bound_to_ca),
    };
    return cmocka_run_group_tests_name("dtls_sessions", tests, group_setup, group_teardown);
}
