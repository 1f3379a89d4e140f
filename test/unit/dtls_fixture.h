/* The fixture of the lib/dtls/ unit tests (test_dtls_handshake.c,
 * test_dtls_hello.c, test_dtls_records.c, test_dtls_sessions.c), driven
 * without sockets: an in-process wolfSSL client exchanges datagrams with
 * the server through memory, so the test chooses every source address and
 * replays or forges records. Here: the client (PSK or a certificate of the
 * test PKI, DTLS 1.2 or 1.3, with or without a CID) and its handshake
 * drivers, source addresses, the stepped clock `now_ms`, the server
 * fixture (cmocka setup/teardown) and the test PKI (group setup). Each
 * test binary has its own copy of the mutable state below. */
#ifndef TETHER_TEST_DTLS_FIXTURE_H
#define TETHER_TEST_DTLS_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "creds_fixture.h"
#include "tether/dtls.h"

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

static inline int c_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    client_t *c = ctx;
    if (c->out.n < MAXQ) {
        memcpy(c->out.d[c->out.n], buf, (size_t)sz);
        c->out.len[c->out.n++] = (size_t)sz;
    }
    return sz;
}

static inline int c_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
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

static inline unsigned int c_psk(WOLFSSL *ssl, const char *hint, char *identity,
                                 unsigned int id_max, unsigned char *key, unsigned int key_max)
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
static inline unsigned int c_psk13(WOLFSSL *ssl, const char *hint, char *identity,
                                   unsigned int id_max, unsigned char *key, unsigned int key_max,
                                   const char **suite)
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

static inline void client_init_opts(client_t *c, bool use_cid, const client_opts_t *o)
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

static inline void client_init(client_t *c, bool use_cid)
{
    client_opts_t o = {0};
    client_init_opts(c, use_cid, &o);
}

static inline void client_free(client_t *c)
{
    wolfSSL_free(c->ssl);
    wolfSSL_CTX_free(c->ctx);
}

static inline tether_addr_t addr(uint16_t port)
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
static inline tether_addr_t addr_on(uint8_t net, uint16_t port)
{
    tether_addr_t a = addr(port);
    ((struct sockaddr_in *)&a.ss)->sin_addr.s_addr = htonl(0x0a000001u | (uint32_t)net << 8);
    return a;
}

static inline uint16_t port_of(const tether_addr_t *a)
{
    return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

/* Moves the server's queued output into the client's input. */
static inline void pump_to_client(tether_dtls_srv_t *srv, client_t *c)
{
    for (size_t i = 0; i < tether_dtls_tx_count(srv); i++) {
        const tether_dgram_t *g = tether_dtls_tx_get(srv, i);
        memcpy(c->in.d[c->in.n], g->data, g->len);
        c->in.len[c->in.n++] = g->len;
    }
    tether_dtls_tx_clear(srv);
}

static tether_time_t now_ms = 1000;

static inline void feed(tether_dtls_srv_t *srv, client_t *c, uint16_t port, tether_dtls_rx_t *rx)
{
    tether_addr_t a = addr(port);
    for (size_t i = 0; i < c->out.n; i++)
        tether_dtls_input(srv, 0, &a, c->out.d[i], c->out.len[i], now_ms, rx);
    c->out.n = 0;
    pump_to_client(srv, c);
}

static inline int handshake(tether_dtls_srv_t *srv, client_t *c, uint16_t port)
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

static inline fixture_t *make_fixture(bool x509, const tether_dtls_conf_t *base)
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

static inline int setup(void **state)
{
    *state = make_fixture(false, NULL);
    return 0;
}

static inline int setup_x509(void **state)
{
    *state = make_fixture(true, NULL);
    return 0;
}

static inline int setup_cert_without_ca(void **state)
{
    fixture_without_ca = true;
    *state = make_fixture(true, NULL);
    fixture_without_ca = false;
    return 0;
}

static inline int teardown(void **state)
{
    fixture_t *f = *state;
    client_free(&f->c);
    tether_dtls_destroy(f->srv);
    tether_creds_free(f->creds);
    free(f);
    return 0;
}

/* Encrypts `msg` on the client and returns the record datagram. */
static inline size_t client_record(client_t *c, const char *msg, uint8_t *out)
{
    assert_int_equal(wolfSSL_write(c->ssl, msg, (int)strlen(msg)), (int)strlen(msg));
    assert_int_equal(c->out.n, 1);
    size_t n = c->out.len[0];
    memcpy(out, c->out.d[0], n);
    c->out.n = 0;
    return n;
}

/* One request/response over an established session of client `c` of f's
 * server; returns the server's view of it. exchange: the same for f's
 * own client. */
static inline tether_dtls_sess_t *exchange_as(fixture_t *f, client_t *c, uint16_t port,
                                              const char *msg)
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

static inline tether_dtls_sess_t *exchange(fixture_t *f, uint16_t port, const char *msg)
{
    return exchange_as(f, &f->c, port, msg);
}

/* Defaults, as a node of a cluster with a fixed cluster key. */
static inline void cluster_conf(tether_dtls_conf_t *conf)
{
    static const uint8_t key[] = "cluster-key-0123456789";
    tether_dtls_conf_defaults(conf);
    conf->cluster_key = key;
    conf->cluster_key_len = sizeof key - 1;
}

static inline tether_addr_t addr_ip(uint32_t ip, uint16_t port)
{
    tether_addr_t a = addr(port);
    ((struct sockaddr_in *)&a.ss)->sin_addr.s_addr = htonl(ip);
    return a;
}

/* An IPv4-mapped IPv6 address ::ffff:ip (a dual-stack "[::]" listener's
 * IPv4 peer, RFC 4291 §2.5.5.2). */
static inline tether_addr_t addr_mapped(uint32_t ip, uint16_t port)
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

/* Full handshake of f's client from `at`; the client is freed afterwards. */
static inline int handshake_at(fixture_t *f, const tether_addr_t *at)
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

/* The same from the IPv4 address ip:port. */
static inline int handshake_from(fixture_t *f, uint32_t ip, uint16_t port)
{
    tether_addr_t a = addr_ip(ip, port);
    return handshake_at(f, &a);
}

/* The test PKI comes from the same script the integration test uses. */
static inline int group_setup(void **state)
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

static inline int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certs_dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
