/* libFuzzer target: the DTLS server of lib/dtls/dtls.c behind the cookie
 * exchange: record demux (by address and by CID, RFC 9146), hello parsing
 * (cookie detection, DTLS 1.3 PSK suite choice), the per-source rate limit,
 * promotion of a cookie-verified hello to a handshake, the PSK handshake
 * itself, established sessions on wolfSSL and on the compact record layer,
 * address changes and sends.
 *
 * The input is a sequence of datagrams, each [source selector][length: 2
 * bytes, big endian][bytes]. Length bit 15 set: 30 s of silence pass first
 * (idle sessions move to the compact record layer). A fresh server sees
 * the datagrams in order with its clock advancing 300 ms per datagram and
 * echoes every application record back (tether_dtls_send).
 *
 * Reaching past the cookie needs a server whose answers depend only on the
 * input: the cookie secret derives from a fixed cluster key and a fixed
 * wall clock, dev1 has a PSK, and wolfSSL's random generator is seeded
 * from getrandom(2), which this file replaces with a fixed pattern (every
 * DRBG instance then draws the same stream, whichever order they are
 * created in). A recorded handshake therefore replays byte for byte.
 *
 * Seeds: `FUZZ_DTLS_RECORD=DIR build/fuzz/fuzz_dtls` runs an in-process
 * wolfSSL client against the same server through the same step() and
 * writes DIR/psk12_cid_handshake, psk13_cid_handshake, psk12_nocid and
 * ecdhe_no_cert (test/fuzz/corpus/fuzz_dtls holds the result).
 *
 * Nothing may crash or leak, no datagram may exceed TETHER_DTLS_MAX_DGRAM,
 * and the limits must hold. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "tether/dtls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define STEP_MS 300
#define IDLE_FLAG 0x8000u
#define IDLE_MS 30000
#define PSK_IDENTITY "dev1"
#define PSK_KEY "0123456789abcdef"

/* wolfSSL's seed source (wc_GenerateSeed calls getrandom): a fixed,
 * position-dependent pattern, so its health test (no repeated blocks)
 * passes and every run draws the same numbers. */
ssize_t getrandom(void *buf, size_t len, unsigned int flags);
ssize_t getrandom(void *buf, size_t len, unsigned int flags)
{
    (void)flags;
    uint8_t *b = buf;
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(i * 151u + (i >> 8) * 7u + 0x5au);
    return (ssize_t)len;
}

static tether_creds_t *creds;

static tether_addr_t source(uint8_t sel)
{
    tether_addr_t a;
    memset(&a, 0, sizeof a);
    if (sel & 0x10) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a.ss;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons((uint16_t)(5000 + (sel & 0x0f)));
        s->sin6_addr.s6_addr[15] = (uint8_t)(sel >> 5);
        a.len = sizeof *s;
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)(5000 + (sel & 0x0f)));
        s->sin_addr.s_addr = htonl(0x0a000000u | (uint32_t)(sel >> 5));
        a.len = sizeof *s;
    }
    return a;
}

static int server_new(tether_dtls_srv_t **srv, tether_dtls_conf_t *conf)
{
    static const uint8_t cluster_key[] = "fuzz-cluster-key-0123456789";
    tether_dtls_conf_defaults(conf);
    conf->max_handshakes = 4;
    conf->max_sessions = 8;
    conf->handshake_rate_per_source = 2;
    conf->handshake_burst_per_source = 3;
    conf->cluster_key = cluster_key;
    conf->cluster_key_len = sizeof cluster_key - 1;
    if (tether_dtls_create(conf, creds, 1000, srv) < 0)
        return -1;
    tether_dtls_set_wall_clock(*srv, 1700000000000ull);
    return 0;
}

/* What the server sent after one step (the recorder hands it to its client). */
typedef void (*sink_fn)(void *ctx, const tether_dgram_t *g);

/* One datagram: in, every record read and echoed, the clock moved on, the
 * output checked (and given to `sink`) and cleared. */
static void step(tether_dtls_srv_t *srv, const tether_dtls_conf_t *conf, uint8_t sel, bool idle,
                 const uint8_t *buf, size_t n, tether_time_t *now, sink_fn sink, void *ctx)
{
    const tether_dtls_stats_t *st = tether_dtls_stats(srv);
    if (idle) {
        *now += IDLE_MS;
        tether_dtls_tick(srv, *now);
    }
    tether_addr_t from = source(sel);
    tether_dtls_rx_t rx;
    tether_dtls_input(srv, 0, &from, buf, n, *now, &rx);
    while (rx.len > 0) {
        tether_dtls_send(srv, rx.sess, rx.data, rx.len);
        if (!tether_dtls_input_more(srv, &rx))
            break;
    }
    *now += STEP_MS;
    tether_dtls_tick(srv, *now);
    for (size_t i = 0; i < tether_dtls_tx_count(srv); i++) {
        const tether_dgram_t *g = tether_dtls_tx_get(srv, i);
        if (g->len > TETHER_DTLS_MAX_DGRAM)
            __builtin_trap();
        if (sink)
            sink(ctx, g);
    }
    tether_dtls_tx_clear(srv);
    tether_dtls_events_clear(srv); /* tetherd hands them to the node after each event */
    if (st->handshakes_inflight > conf->max_handshakes ||
        st->handshakes_inflight + st->sessions_active > conf->max_sessions)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tether_dtls_srv_t *srv;
    tether_dtls_conf_t conf;
    tether_time_t now = 1000;
    if (!creds || server_new(&srv, &conf) < 0)
        return 0;
    size_t p = 0;
    while (p + 3 <= size) {
        uint8_t sel = data[p];
        unsigned word = (unsigned)data[p + 1] << 8 | data[p + 2];
        size_t n = word & ~IDLE_FLAG;
        p += 3;
        if (n > size - p)
            n = size - p;
        step(srv, &conf, sel, (word & IDLE_FLAG) != 0, data + p, n, &now, NULL, NULL);
        p += n;
    }
    tether_dtls_destroy(srv);
    return 0;
}

/* ---- seed recorder (FUZZ_DTLS_RECORD=DIR) ------------------------------------------ */

#define RQ 32
typedef struct {
    size_t n, pos;
    size_t len[RQ];
    uint8_t d[RQ][TETHER_DTLS_MAX_DGRAM];
} rq_t;

typedef struct {
    rq_t out, in; /* client -> server, server -> client */
} rclient_t;

static int rc_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    rclient_t *c = ctx;
    if (c->out.n < RQ && sz <= TETHER_DTLS_MAX_DGRAM) {
        memcpy(c->out.d[c->out.n], buf, (size_t)sz);
        c->out.len[c->out.n++] = (size_t)sz;
    }
    return sz;
}

static int rc_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    rclient_t *c = ctx;
    if (c->in.pos >= c->in.n) {
        c->in.n = c->in.pos = 0;
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    size_t n = c->in.len[c->in.pos];
    if (n > (size_t)sz)
        n = (size_t)sz;
    memcpy(buf, c->in.d[c->in.pos++], n);
    return (int)n;
}

static void rc_sink(void *ctx, const tether_dgram_t *g)
{
    rclient_t *c = ctx;
    if (c->in.n < RQ) {
        memcpy(c->in.d[c->in.n], g->data, g->len);
        c->in.len[c->in.n++] = g->len;
    }
}

static unsigned int rc_psk(WOLFSSL *ssl, const char *hint, char *identity, unsigned int id_max,
                           unsigned char *key, unsigned int key_max)
{
    (void)ssl, (void)hint;
    snprintf(identity, id_max, "%s", PSK_IDENTITY);
    if (key_max < sizeof PSK_KEY - 1)
        return 0;
    memcpy(key, PSK_KEY, sizeof PSK_KEY - 1);
    return sizeof PSK_KEY - 1;
}

static unsigned int rc_psk13(WOLFSSL *ssl, const char *hint, char *identity, unsigned int id_max,
                             unsigned char *key, unsigned int key_max, const char **suite)
{
    *suite = "TLS13-AES128-CCM-8-SHA256";
    return rc_psk(ssl, hint, identity, id_max, key, key_max);
}

typedef struct {
    tether_dtls_srv_t *srv;
    tether_dtls_conf_t conf;
    tether_time_t now;
    rclient_t c;
    FILE *f;
} rec_t;

/* Sends what the client queued from `sel`, appending it to the seed. */
static void rec_flush(rec_t *R, uint8_t sel, bool idle)
{
    for (size_t i = 0; i < R->c.out.n; i++) {
        size_t n = R->c.out.len[i];
        unsigned word = (unsigned)n | (idle && i == 0 ? IDLE_FLAG : 0);
        uint8_t hdr[3] = {sel, (uint8_t)(word >> 8), (uint8_t)word};
        fwrite(hdr, 1, 3, R->f);
        fwrite(R->c.out.d[i], 1, n, R->f);
        step(R->srv, &R->conf, sel, idle && i == 0, R->c.out.d[i], n, &R->now, rc_sink, &R->c);
    }
    R->c.out.n = 0;
}

/* One seed: a handshake as `method` with `suite` (and a CID when asked),
 * then application records from source 0, from source 1 (a new port: the
 * CID moves the session) and, after 30 s of silence, from source 2 (on
 * the compact record layer). */
static int record(const char *dir, const char *name, bool dtls13, bool cid, const char *suite)
{
    rec_t R = {.now = 1000};
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (server_new(&R.srv, &R.conf) < 0 || !(R.f = fopen(path, "wb")))
        return -1;
    WOLFSSL_CTX *ctx =
        wolfSSL_CTX_new(dtls13 ? wolfDTLSv1_3_client_method() : wolfDTLSv1_2_client_method());
    wolfSSL_CTX_set_psk_client_callback(ctx, rc_psk);
    if (dtls13)
        wolfSSL_CTX_set_psk_client_tls13_callback(ctx, rc_psk13);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    if (wolfSSL_CTX_set_cipher_list(ctx, suite) != WOLFSSL_SUCCESS)
        return -1;
    wolfSSL_CTX_SetIORecv(ctx, rc_recv);
    wolfSSL_CTX_SetIOSend(ctx, rc_send);
    WOLFSSL *ssl = wolfSSL_new(ctx);
    wolfSSL_SetIOReadCtx(ssl, &R.c);
    wolfSSL_SetIOWriteCtx(ssl, &R.c);
    wolfSSL_dtls_set_using_nonblock(ssl, 1);
    if (cid && (wolfSSL_dtls_cid_use(ssl) != WOLFSSL_SUCCESS ||
                wolfSSL_dtls_cid_set(ssl, NULL, 0) != WOLFSSL_SUCCESS))
        return -1;
    int ok = 0;
    for (int i = 0; i < 12 && !ok; i++) {
        ok = wolfSSL_connect(ssl) == WOLFSSL_SUCCESS;
        rec_flush(&R, 0, false);
    }
    const tether_dtls_stats_t *st = tether_dtls_stats(R.srv);
    fprintf(stderr, "fuzz_dtls: %s: handshake %s (server: %llu full, %llu HVR)\n", name,
            ok ? "done" : "failed", (unsigned long long)st->handshakes_full,
            (unsigned long long)st->hello_verify_sent);
    if (ok) {
        /* A CoAP ping (RFC 7252 §4.3) in each application record. */
        static const uint8_t ping[] = {0x40, 0x00, 0x12, 0x34};
        const uint8_t sels[3] = {0, 1, 2};
        for (int k = 0; k < (cid ? 3 : 1); k++) {
            wolfSSL_write(ssl, ping, sizeof ping);
            rec_flush(&R, sels[k], k == 2);
            uint8_t back[64];
            int r = wolfSSL_read(ssl, back, sizeof back);
            fprintf(stderr, "fuzz_dtls: %s: record from source %u echoed: %s\n", name, sels[k],
                    r == (int)sizeof ping ? "yes" : "no");
        }
        fprintf(stderr, "fuzz_dtls: %s: address changes %llu, compact sessions %llu\n", name,
                (unsigned long long)st->address_changes, (unsigned long long)st->sessions_compact);
        wolfSSL_shutdown(ssl);
        rec_flush(&R, cid ? 2 : 0, false);
    }
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    fclose(R.f);
    tether_dtls_destroy(R.srv);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char path[] = "/tmp/fuzz_dtls_creds.XXXXXX";
    int fd = mkstemp(path);
    static const char text[] = "{\"psk\": [{\"identity\": \"" PSK_IDENTITY "\", \"key_hex\": "
                               "\"30313233343536373839616263646566\", \"role\": \"device\"}]}\n";
    char err[256];
    if (fd < 0 || write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1) ||
        tether_creds_load(path, &creds, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_dtls: cannot load credentials\n");
        abort();
    }
    close(fd);
    unlink(path);
    const char *dir = getenv("FUZZ_DTLS_RECORD");
    if (dir) {
        int rc = record(dir, "psk12_cid_handshake", false, true, "PSK-AES128-CCM-8") |
                 record(dir, "psk13_cid_handshake", true, true, "TLS13-AES128-CCM-8-SHA256") |
                 record(dir, "psk12_nocid", false, false, "PSK-AES128-GCM-SHA256") |
                 record(dir, "ecdhe_no_cert", false, false, "ECDHE-ECDSA-AES128-CCM-8");
        exit(rc ? 1 : 0);
    }
    return 0;
}
