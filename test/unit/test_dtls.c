/* Unit tests for lib/dtls/ (dtls.c, session.c, listener.c, handshake.c,
 * rebind.c), driven without sockets: an in-process
 * wolfSSL client exchanges datagrams with the server through memory, so the
 * test chooses every source address and replays or forges records. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "creds_fixture.h"
#include "dtls/record.h"
#include "dtls/wolfrec.h"
#include "tether/dtls.h"
#include "tether/store.h"

#define MAXQ 32
typedef struct {
    size_t n;
    size_t len[MAXQ];
    uint8_t d[MAXQ][TETHER_DTLS_MAX_DGRAM];
} queue_t;

typedef struct {
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl;
    queue_t out; /* client -> server */
    queue_t in;  /* server -> client */
    size_t in_pos;
} client_t;

static const uint8_t dev_key[] = "0123456789abcdef";
static const uint8_t *client_key = dev_key; /* what the client presents */

static int c_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    client_t *c = ctx;
    if (c->out.n < MAXQ) {
        memcpy(c->out.d[c->out.n], buf, (size_t)sz);
        c->out.len[c->out.n++] = (size_t)sz;
    }
    return sz;
}

static int c_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    client_t *c = ctx;
    if (c->in_pos >= c->in.n) {
        c->in.n = c->in_pos = 0;
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    size_t n = c->in.len[c->in_pos];
    if (n > (size_t)sz)
        n = (size_t)sz;
    memcpy(buf, c->in.d[c->in_pos++], n);
    return (int)n;
}

static unsigned int c_psk(WOLFSSL *ssl, const char *hint, char *identity, unsigned int id_max,
                          unsigned char *key, unsigned int key_max)
{
    (void)ssl;
    (void)hint;
    (void)key_max;
    snprintf(identity, id_max, "dev1");
    memcpy(key, client_key, 16);
    return 16;
}

/* DTLS 1.3 PSK: wolfSSL ties a PSK to one suite, named here. */
static const char *c13_suite = "TLS13-AES128-CCM-8-SHA256";
static unsigned int c_psk13(WOLFSSL *ssl, const char *hint, char *identity, unsigned int id_max,
                            unsigned char *key, unsigned int key_max, const char **suite)
{
    *suite = c13_suite;
    return c_psk(ssl, hint, identity, id_max, key, key_max);
}

/* How the in-process client authenticates: PSK (dev1) unless `cert` names
 * a PEM pair in the test PKI, in which case it runs ECDHE-ECDSA. */
typedef struct {
    bool dtls13;
    const char *cert;  /* certs/NAME.pem + NAME.key, "" = ECDHE without a cert */
    const char *suite; /* DTLS 1.2 PSK suite (default PSK-AES128-CCM-8) */
    bool own_cid;      /* with a CID: the client issues one too (4 bytes) */
} client_opts_t;

static char certs_dir[64]; /* the test PKI (test/certs/gen.sh), made once */

static void client_init_opts(client_t *c, bool use_cid, const client_opts_t *o)
{
    memset(c, 0, sizeof *c);
    c->ctx =
        wolfSSL_CTX_new(o->dtls13 ? wolfDTLSv1_3_client_method() : wolfDTLSv1_2_client_method());
    if (o->cert) {
        char path[128];
        const char *suite = o->dtls13 ? "TLS13-AES128-GCM-SHA256" : "ECDHE-ECDSA-AES128-CCM-8";
        assert_int_equal(wolfSSL_CTX_set_cipher_list(c->ctx, suite), WOLFSSL_SUCCESS);
        snprintf(path, sizeof path, "%s/ca.pem", certs_dir);
        assert_int_equal(wolfSSL_CTX_load_verify_locations(c->ctx, path, NULL), WOLFSSL_SUCCESS);
        wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_PEER, NULL); /* checks the server too */
        if (*o->cert) {
            snprintf(path, sizeof path, "%s/%s.pem", certs_dir, o->cert);
            assert_int_equal(wolfSSL_CTX_use_certificate_file(c->ctx, path, WOLFSSL_FILETYPE_PEM),
                             WOLFSSL_SUCCESS);
            snprintf(path, sizeof path, "%s/%s.key", certs_dir, o->cert);
            assert_int_equal(wolfSSL_CTX_use_PrivateKey_file(c->ctx, path, WOLFSSL_FILETYPE_PEM),
                             WOLFSSL_SUCCESS);
        }
    } else {
        wolfSSL_CTX_set_psk_client_callback(c->ctx, c_psk);
        if (o->dtls13)
            wolfSSL_CTX_set_psk_client_tls13_callback(c->ctx, c_psk13);
        const char *suite = o->dtls13 ? c13_suite : o->suite ? o->suite : "PSK-AES128-CCM-8";
        assert_int_equal(wolfSSL_CTX_set_cipher_list(c->ctx, suite), WOLFSSL_SUCCESS);
    }
    wolfSSL_CTX_SetIORecv(c->ctx, c_recv);
    wolfSSL_CTX_SetIOSend(c->ctx, c_send);
    c->ssl = wolfSSL_new(c->ctx);
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    wolfSSL_dtls_set_using_nonblock(c->ssl, 1);
    if (use_cid) {
        /* Zephyr style: use the server's CID, ask for none back. */
        static unsigned char mine[4] = {0xc1, 0x1e, 0x47, 0x01};
        assert_int_equal(wolfSSL_dtls_cid_use(c->ssl), WOLFSSL_SUCCESS);
        assert_int_equal(
            wolfSSL_dtls_cid_set(c->ssl, o->own_cid ? mine : NULL, o->own_cid ? sizeof mine : 0),
            WOLFSSL_SUCCESS);
    }
}

static void client_init(client_t *c, bool use_cid)
{
    client_opts_t o = {0};
    client_init_opts(c, use_cid, &o);
}

static void client_free(client_t *c)
{
    wolfSSL_free(c->ssl);
    wolfSSL_CTX_free(c->ctx);
}

static tether_addr_t addr(uint16_t port)
{
    tether_addr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    s->sin_addr.s_addr = htonl(0x0a000001);
    a.len = sizeof *s;
    return a;
}

/* An address of host 10.0.<net>.1. */
static tether_addr_t addr_on(uint8_t net, uint16_t port)
{
    tether_addr_t a = addr(port);
    ((struct sockaddr_in *)&a.ss)->sin_addr.s_addr = htonl(0x0a000001u | (uint32_t)net << 8);
    return a;
}

static uint16_t port_of(const tether_addr_t *a)
{
    return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

/* Moves the server's queued output into the client's input. */
static void pump_to_client(tether_dtls_srv_t *srv, client_t *c)
{
    for (size_t i = 0; i < tether_dtls_tx_count(srv); i++) {
        const tether_dgram_t *g = tether_dtls_tx_get(srv, i);
        memcpy(c->in.d[c->in.n], g->data, g->len);
        c->in.len[c->in.n++] = g->len;
    }
    tether_dtls_tx_clear(srv);
}

static tether_time_t now_ms = 1000;

static void feed(tether_dtls_srv_t *srv, client_t *c, uint16_t port, tether_dtls_rx_t *rx)
{
    tether_addr_t a = addr(port);
    for (size_t i = 0; i < c->out.n; i++)
        tether_dtls_input(srv, 0, &a, c->out.d[i], c->out.len[i], now_ms, rx);
    c->out.n = 0;
    pump_to_client(srv, c);
}

static int handshake(tether_dtls_srv_t *srv, client_t *c, uint16_t port)
{
    tether_dtls_rx_t rx;
    for (int i = 0; i < 20; i++) {
        int r = wolfSSL_connect(c->ssl);
        feed(srv, c, port, &rx);
        if (r == WOLFSSL_SUCCESS) {
            /* DTLS 1.3: the server's NewSessionTicket follows the
             * handshake; the client takes it and acknowledges it. */
            if (c->in_pos < c->in.n) {
                char b[16];
                assert_true(wolfSSL_read(c->ssl, b, sizeof b) < 0);
                feed(srv, c, port, &rx);
            }
            return 0;
        }
    }
    return -1;
}

typedef struct {
    tether_creds_t *creds;
    tether_dtls_srv_t *srv;
    client_t c;
} fixture_t;

/* Server fixture: dev1 by PSK; with `x509`, also the test PKI (our
 * certificate, the client CA) and "x509" entries for dev7 and the dev9
 * prefix (dev9's certificate is expired). */
static bool fixture_without_ca; /* x509 fixture: our certificate, but no client CA */
static const char *fixture_ca;  /* x509 fixture: this client CA file instead of the test one */

static fixture_t *make_fixture(bool x509, const tether_dtls_conf_t *base)
{
    fixture_t *f = calloc(1, sizeof *f);
    char path[] = "/tmp/tether-creds-XXXXXX";
    int fd = mkstemp(path);
    dprintf(fd, "{\"psk\": [{\"identity\": \"dev1\", \"key_hex\": \"");
    for (int i = 0; i < 16; i++)
        dprintf(fd, "%02x", dev_key[i]);
    dprintf(fd, "\", \"role\": \"device\"}],\n \"x509\": [{\"identity\": \"dev7\", "
                "\"role\": \"device\"}, {\"identity_prefix\": \"dev9\", \"role\": \"client\"}]}");
    close(fd);
    char err[256];
    assert_int_equal(tether_creds_load(path, &f->creds, err, sizeof err), 0);
    unlink(path);
    tether_dtls_conf_t conf;
    if (base)
        conf = *base;
    else
        tether_dtls_conf_defaults(&conf);
    conf.node_id = 5;
    char ca[128], crt[128], key[128];
    if (x509) {
        snprintf(ca, sizeof ca, "%s/ca.pem", certs_dir);
        snprintf(crt, sizeof crt, "%s/server.pem", certs_dir);
        snprintf(key, sizeof key, "%s/server.key", certs_dir);
        conf.ca_file = fixture_without_ca ? NULL : fixture_ca ? fixture_ca : ca;
        conf.cert_file = crt;
        conf.key_file = key;
    }
    assert_int_equal(tether_dtls_create(&conf, f->creds, now_ms, &f->srv), 0);
    return f;
}

static int setup(void **state)
{
    *state = make_fixture(false, NULL);
    return 0;
}

static int setup_x509(void **state)
{
    *state = make_fixture(true, NULL);
    return 0;
}

static int setup_cert_without_ca(void **state)
{
    fixture_without_ca = true;
    *state = make_fixture(true, NULL);
    fixture_without_ca = false;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    client_free(&f->c);
    tether_dtls_destroy(f->srv);
    tether_creds_free(f->creds);
    free(f);
    return 0;
}

/* Encrypts `msg` on the client and returns the record datagram. */
static size_t client_record(client_t *c, const char *msg, uint8_t *out)
{
    assert_int_equal(wolfSSL_write(c->ssl, msg, (int)strlen(msg)), (int)strlen(msg));
    assert_int_equal(c->out.n, 1);
    size_t n = c->out.len[0];
    memcpy(out, c->out.d[0], n);
    c->out.n = 0;
    return n;
}

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

/* One request/response over an established session; returns the server's
 * view of it. */
/* The same for client `c` of f's server. */
static tether_dtls_sess_t *exchange_as(fixture_t *f, client_t *c, uint16_t port, const char *msg)
{
    uint8_t rec[TETHER_DTLS_MAX_DGRAM];
    size_t n = client_record(c, msg, rec);
    tether_addr_t a = addr(port);
    tether_dtls_rx_t rx;
    tether_dtls_input(f->srv, 0, &a, rec, n, now_ms, &rx);
    assert_int_equal(rx.len, strlen(msg));
    assert_memory_equal(rx.data, msg, rx.len);
    assert_int_equal(tether_dtls_send(f->srv, rx.sess, (const uint8_t *)"ack", 3), 0);
    pump_to_client(f->srv, c);
    char buf[16];
    assert_int_equal(wolfSSL_read(c->ssl, buf, sizeof buf), 3);
    return rx.sess;
}

static tether_dtls_sess_t *exchange(fixture_t *f, uint16_t port, const char *msg)
{
    return exchange_as(f, &f->c, port, msg);
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

static int handshake_from(fixture_t *f, uint32_t ip, uint16_t port);
static tether_addr_t addr_ip(uint32_t ip, uint16_t port);
static tether_addr_t addr_mapped(uint32_t ip, uint16_t port);
static int handshake_at(fixture_t *f, const tether_addr_t *a);

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
/* Defaults, as a node of a cluster with a fixed cluster key. */
static void cluster_conf(tether_dtls_conf_t *conf)
{
    static const uint8_t key[] = "cluster-key-0123456789";
    tether_dtls_conf_defaults(conf);
    conf->cluster_key = key;
    conf->cluster_key_len = sizeof key - 1;
}

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

static tether_addr_t addr_ip(uint32_t ip, uint16_t port)
{
    tether_addr_t a = addr(port);
    ((struct sockaddr_in *)&a.ss)->sin_addr.s_addr = htonl(ip);
    return a;
}

/* An IPv4-mapped IPv6 address ::ffff:ip (a dual-stack "[::]" listener's
 * IPv4 peer, RFC 4291 §2.5.5.2). */
static tether_addr_t addr_mapped(uint32_t ip, uint16_t port)
{
    tether_addr_t a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a.ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    s->sin6_addr.s6_addr[10] = s->sin6_addr.s6_addr[11] = 0xff;
    uint32_t n = htonl(ip);
    memcpy(&s->sin6_addr.s6_addr[12], &n, 4);
    a.len = sizeof *s;
    return a;
}

/* Full handshake from ip:port; the client is freed afterwards. */
static int handshake_from(fixture_t *f, uint32_t ip, uint16_t port)
{
    tether_addr_t a = addr_ip(ip, port);
    return handshake_at(f, &a);
}

static int handshake_at(fixture_t *f, const tether_addr_t *at)
{
    const tether_addr_t a = *at;
    tether_dtls_rx_t rx;
    client_init(&f->c, true);
    int rc = -1;
    for (int i = 0; i < 20 && rc < 0; i++) {
        int r = wolfSSL_connect(f->c.ssl);
        for (size_t k = 0; k < f->c.out.n; k++)
            tether_dtls_input(f->srv, 0, &a, f->c.out.d[k], f->c.out.len[k], now_ms, &rx);
        f->c.out.n = 0;
        pump_to_client(f->srv, &f->c);
        if (r == WOLFSSL_SUCCESS)
            rc = 0;
    }
    client_free(&f->c);
    memset(&f->c, 0, sizeof f->c);
    return rc;
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

/* A device that starts a new handshake from the address of its established
 * session (same NAT binding, device rebooted) gets a new session. */
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

/* The test PKI comes from the same script the integration test uses. */

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

static int group_setup(void **state)
{
    (void)state;
    const char *top = getenv("TETHER_TOP");
    char cmd[512];
    snprintf(certs_dir, sizeof certs_dir, "/tmp/tether-pki-XXXXXX");
    if (!mkdtemp(certs_dir))
        return -1;
    snprintf(cmd, sizeof cmd, "%s/test/certs/gen.sh %s", top ? top : ".", certs_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certs_dir);
    return system(cmd) == 0 ? 0 : -1;
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
        cmocka_unit_test_setup_teardown(test_cid_session_survives_port_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_replayed_and_old_records_do_not_move, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_spoofed_hellos_allocate_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_credentials_fail_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout_frees_the_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x509_client_certificate, setup_x509, teardown),
        cmocka_unit_test_setup_teardown(test_x509_refused, setup_x509, teardown),
        cmocka_unit_test_setup_teardown(test_psk_identity_does_not_outlive_its_hello,
                                        setup_cert_without_ca, teardown),
        cmocka_unit_test_setup_teardown(test_poisoned_hello_leaves_x509_clients_alone, setup_x509,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hello_with_many_psk_identities_refused, setup,
                                        teardown),
        cmocka_unit_test(test_handshake_rate_per_source),
        cmocka_unit_test(test_two_sources_cannot_starve_a_third),
        cmocka_unit_test(test_resent_flights_do_not_hold_the_table),
        cmocka_unit_test(test_handshakes_per_prefix),
        cmocka_unit_test(test_v4_mapped_sources_are_ipv4),
        cmocka_unit_test(test_sessions_per_identity),
        cmocka_unit_test(test_cookie_shared_by_cluster),
        cmocka_unit_test_setup_teardown(test_dtls13_psk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie_survives_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dtls13_cid_survives_port_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dtls13_old_replayed_forged_do_not_move, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_compact_record_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_session_compacts_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_returning_device_handshakes_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_record_keeps_the_datagram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_keeps_others_address_and_limits_output, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reload_revokes_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_revokes_rotated_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replayed_hello_does_not_strand_a_session, setup,
                                        teardown),
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
    return cmocka_run_group_tests_name("dtls", tests, group_setup, group_teardown);
}
