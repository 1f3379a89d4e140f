/* DTLS client session over wolfSSL with memory I/O callbacks. */
#include <stdio.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "dtls_client.h"
#include "tether/common.h"

/* Plaintext of the last record read: one loop, one record at a time. */
static uint8_t rx_plain[BENCH_DTLS_MAX_DGRAM];

/* Hands wolfSSL the datagram being fed once, then WANT_READ. */
static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    bench_dtls_t *d = ctx;
    if (!d->in)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = d->in_len < (size_t)sz ? d->in_len : (size_t)sz;
    memcpy(buf, d->in, n);
    d->in = NULL;
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    bench_dtls_t *d = ctx;
    d->send(d->user, (const uint8_t *)buf, (size_t)sz);
    return sz;
}

static unsigned int psk_client_cb(WOLFSSL *ssl, const char *hint, char *identity,
                                  unsigned int id_max, unsigned char *key, unsigned int key_max)
{
    (void)hint;
    bench_dtls_t *d = wolfSSL_GetIOReadCtx(ssl);
    if (!d || !d->cred || strlen(d->cred->identity) >= id_max || d->cred->key_len > key_max)
        return 0;
    strcpy(identity, d->cred->identity);
    memcpy(key, d->cred->key, d->cred->key_len);
    return (unsigned int)d->cred->key_len;
}

int bench_dtls_cred_set(bench_dtls_cred_t *c, const char *identity, const uint8_t *key,
                        size_t key_len)
{
    if (!*identity || strlen(identity) >= sizeof c->identity ||
        (key && (key_len == 0 || key_len > sizeof c->key)))
        return TETHER_EINVAL;
    strcpy(c->identity, identity);
    if (key) {
        memcpy(c->key, key, key_len);
        c->key_len = key_len;
    }
    return 0;
}

int bench_dtls_ctx_init(bench_dtls_ctx_t *c, bool dtls13)
{
    static bool wolf_init;
    if (!wolf_init) {
        wolfSSL_Init();
        wolf_init = true;
    }
    c->dtls13 = dtls13;
    WOLFSSL_CTX *ctx =
        wolfSSL_CTX_new(dtls13 ? wolfDTLSv1_3_client_method() : wolfDTLSv1_2_client_method());
    if (!ctx)
        return TETHER_ECRYPTO;
    /* PSK first: wolfSSL drops PSK suites from a list set without it. */
    wolfSSL_CTX_set_psk_client_callback(ctx, psk_client_cb);
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    const char *suites = dtls13 ? "TLS13-AES128-CCM-8-SHA256:TLS13-AES128-GCM-SHA256"
                                : "PSK-AES128-CCM-8:PSK-AES128-GCM-SHA256";
    if (wolfSSL_CTX_set_cipher_list(ctx, suites) != WOLFSSL_SUCCESS) {
        wolfSSL_CTX_free(ctx);
        return TETHER_ECRYPTO;
    }
    c->ctx = ctx;
    return 0;
}

int bench_dtls_ctx_init_cert(bench_dtls_ctx_t *c, const char *ca_file, const char *cert_file,
                             const char *key_file)
{
    bench_dtls_ctx_t tmp;
    if (bench_dtls_ctx_init(&tmp, false) < 0)
        return TETHER_ECRYPTO;
    WOLFSSL_CTX *ctx = tmp.ctx;
    if (wolfSSL_CTX_set_cipher_list(
            ctx, "ECDHE-ECDSA-AES128-CCM-8:ECDHE-ECDSA-AES128-GCM-SHA256") != WOLFSSL_SUCCESS) {
        wolfSSL_CTX_free(ctx);
        return TETHER_ECRYPTO;
    }
    int rc = 0;
    if (ca_file) {
        if (wolfSSL_CTX_load_verify_locations(ctx, ca_file, NULL) != WOLFSSL_SUCCESS)
            rc = TETHER_EIO;
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    } else {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    if (rc == 0 && cert_file &&
        (wolfSSL_CTX_use_certificate_file(ctx, cert_file, WOLFSSL_FILETYPE_PEM) !=
             WOLFSSL_SUCCESS ||
         wolfSSL_CTX_use_PrivateKey_file(ctx, key_file, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS))
        rc = TETHER_EIO;
    if (rc < 0) {
        wolfSSL_CTX_free(ctx);
        return rc;
    }
    c->ctx = ctx;
    c->dtls13 = false;
    c->cert = true;
    return 0;
}

void *bench_dtls_save_session(const bench_dtls_t *d)
{
    if (!d->ssl || d->state != BENCH_DTLS_ESTABLISHED)
        return NULL;
    return wolfSSL_get1_session(d->ssl);
}

void bench_dtls_free_session(void *sess)
{
    if (sess)
        wolfSSL_SESSION_free(sess);
}

bool bench_dtls_resumed(const bench_dtls_t *d)
{
    return d->ssl && wolfSSL_session_reused(d->ssl) == 1;
}

const char *bench_dtls_last_alert(const bench_dtls_t *d)
{
    return d->alert;
}

void bench_dtls_ctx_free(bench_dtls_ctx_t *c)
{
    if (c->ctx)
        wolfSSL_CTX_free(c->ctx);
    c->ctx = NULL;
}

/* Names of the alerts a failed handshake usually ends with (RFC 5246 §7.2). */
static const char *alert_name(int code)
{
    switch (code) {
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 115: return "unknown_psk_identity";
    default: return "other";
    }
}

/* Drives wolfSSL_connect; 1 when done, 0 in progress, <0 failed. */
static int hs_step(bench_dtls_t *d)
{
    int ret = wolfSSL_connect(d->ssl);
    if (ret == WOLFSSL_SUCCESS) {
        d->state = BENCH_DTLS_ESTABLISHED;
        return 1;
    }
    int err = wolfSSL_get_error(d->ssl, ret);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    d->state = BENCH_DTLS_CLOSED;
    WOLFSSL_ALERT_HISTORY h;
    if (wolfSSL_get_alert_history(d->ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code > 0)
        snprintf(d->alert, sizeof d->alert, "alert %s", alert_name(h.last_rx.code));
    else
        snprintf(d->alert, sizeof d->alert, "error %d", err);
    return TETHER_ECRYPTO;
}

int bench_dtls_start(bench_dtls_t *d, const bench_dtls_ctx_t *c, const bench_dtls_cred_t *cred,
                     bench_dtls_send_fn send, void *user)
{
    return bench_dtls_start_resume(d, c, cred, send, user, NULL);
}

int bench_dtls_start_resume(bench_dtls_t *d, const bench_dtls_ctx_t *c,
                            const bench_dtls_cred_t *cred, bench_dtls_send_fn send, void *user,
                            void *session)
{
    WOLFSSL *ssl = wolfSSL_new(c->ctx);
    if (!ssl)
        return TETHER_ENOMEM;
    d->ssl = ssl;
    d->send = send;
    d->user = user;
    d->in = NULL;
    d->cred = cred;
    d->alert[0] = 0;
    wolfSSL_SetIOReadCtx(ssl, d);
    wolfSSL_SetIOWriteCtx(ssl, d);
    wolfSSL_dtls_set_using_nonblock(ssl, 1);
    /* Use the server's CID, offer an empty one of our own. */
    if (wolfSSL_dtls_cid_use(ssl) != WOLFSSL_SUCCESS ||
        wolfSSL_dtls_cid_set(ssl, NULL, 0) != WOLFSSL_SUCCESS) {
        bench_dtls_end(d, false);
        return TETHER_ECRYPTO;
    }
    if (c->tickets && !c->dtls13 && wolfSSL_UseSessionTicket(ssl) != WOLFSSL_SUCCESS) {
        bench_dtls_end(d, false);
        return TETHER_ECRYPTO;
    }
    if (session && wolfSSL_set_session(ssl, session) != WOLFSSL_SUCCESS) {
        bench_dtls_end(d, false);
        return TETHER_ECRYPTO;
    }
    d->state = BENCH_DTLS_HANDSHAKE;
    int rc = hs_step(d);
    return rc < 0 ? rc : 0;
}

int bench_dtls_input(bench_dtls_t *d, const uint8_t *buf, size_t len)
{
    if (d->state != BENCH_DTLS_HANDSHAKE && d->state != BENCH_DTLS_ESTABLISHED)
        return 0;
    d->in = buf;
    d->in_len = len;
    if (d->state == BENCH_DTLS_HANDSHAKE) {
        int rc = hs_step(d);
        d->in = NULL;
        return rc;
    }
    return 0; /* records are read by bench_dtls_read */
}

bool bench_dtls_read(bench_dtls_t *d, const uint8_t **data, size_t *len)
{
    if (d->state != BENCH_DTLS_ESTABLISHED) {
        d->in = NULL;
        return false;
    }
    int n = wolfSSL_read(d->ssl, rx_plain, sizeof rx_plain);
    if (n > 0) {
        *data = rx_plain;
        *len = (size_t)n;
        return true;
    }
    int err = wolfSSL_get_error(d->ssl, n);
    if (err != WOLFSSL_ERROR_WANT_READ && err != WOLFSSL_ERROR_WANT_WRITE)
        d->state = BENCH_DTLS_CLOSED;
    d->in = NULL;
    return false;
}

int bench_dtls_write(bench_dtls_t *d, const uint8_t *data, size_t len)
{
    if (d->state != BENCH_DTLS_ESTABLISHED)
        return TETHER_EINVAL;
    int n = wolfSSL_write(d->ssl, data, (int)len);
    return n == (int)len ? 0 : TETHER_EIO;
}

int bench_dtls_timeout_ms(const bench_dtls_t *d)
{
    if (d->state == BENCH_DTLS_HANDSHAKE) {
        int s = wolfSSL_dtls_get_current_timeout(d->ssl);
        return (s > 0 ? s : 1) * 1000;
    }
    /* DTLS 1.3: our last flight waits for the server's ACK. */
    if (d->state == BENCH_DTLS_ESTABLISHED && wolfSSL_version(d->ssl) == DTLS1_3_VERSION &&
        wolfSSL_dtls13_has_pending_msg(d->ssl))
        return 1000;
    return -1;
}

int bench_dtls_timeout(bench_dtls_t *d)
{
    if (d->state != BENCH_DTLS_HANDSHAKE && d->state != BENCH_DTLS_ESTABLISHED)
        return 0;
    if (wolfSSL_dtls_got_timeout(d->ssl) == WOLFSSL_SUCCESS)
        return 0;
    if (d->state == BENCH_DTLS_HANDSHAKE) {
        d->state = BENCH_DTLS_CLOSED;
        return TETHER_ETIMEDOUT;
    }
    return 0;
}

void bench_dtls_end(bench_dtls_t *d, bool notify)
{
    if (d->ssl) {
        if (notify && d->state == BENCH_DTLS_ESTABLISHED)
            wolfSSL_shutdown(d->ssl);
        wolfSSL_free(d->ssl);
    }
    d->ssl = NULL;
    d->in = NULL;
    d->state = BENCH_DTLS_IDLE;
}

int bench_dtls_ctx_set_suites(bench_dtls_ctx_t *c, const char *list)
{
    return wolfSSL_CTX_set_cipher_list(c->ctx, list) == WOLFSSL_SUCCESS ? 0 : TETHER_EINVAL;
}

const char *bench_dtls_cipher(const bench_dtls_t *d)
{
    const char *n =
        d->ssl && d->state == BENCH_DTLS_ESTABLISHED ? wolfSSL_get_cipher_name(d->ssl) : NULL;
    return n ? n : "";
}
