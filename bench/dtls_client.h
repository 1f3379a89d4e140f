/* tether-bench — one DTLS client session over wolfSSL, sans-I/O.
 *
 * The owner feeds received datagrams and a timeout signal; ciphertext to
 * send leaves through the `send` callback given at start. PSK only, DTLS 1.2
 * (RFC 6347) or 1.3 (RFC 9147). The client asks the server for a Connection
 * ID and offers a zero-length one itself (RFC 9146: it wants none back), as
 * constrained devices do. */
#ifndef BENCH_DTLS_CLIENT_H
#define BENCH_DTLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_DTLS_IDENTITY_MAX 64
#define BENCH_DTLS_KEY_MAX 64
#define BENCH_DTLS_MAX_DGRAM 2048

/* One wolfSSL context per protocol version, shared by every session. */
typedef struct {
    void *ctx; /* WOLFSSL_CTX */
    bool dtls13;
    bool cert; /* ECDHE-ECDSA with certificates instead of PSK */
    /* DTLS 1.2: ask for a session ticket (RFC 5077) in every handshake, so
     * a saved session resumes statelessly; DTLS 1.3 servers send tickets
     * (NewSessionTicket) unasked. */
    bool tickets;
} bench_dtls_ctx_t;

/* A PSK identity and key; sessions point to it, so it must outlive them. */
typedef struct {
    char identity[BENCH_DTLS_IDENTITY_MAX];
    uint8_t key[BENCH_DTLS_KEY_MAX];
    size_t key_len;
} bench_dtls_cred_t;

/* Sets the identity and, when key is not NULL, the key; TETHER_EINVAL when
 * either does not fit (or the identity is empty). */
int bench_dtls_cred_set(bench_dtls_cred_t *c, const char *identity, const uint8_t *key,
                        size_t key_len);

typedef void (*bench_dtls_send_fn)(void *user, const uint8_t *data, size_t len);

typedef enum {
    BENCH_DTLS_IDLE = 0,
    BENCH_DTLS_HANDSHAKE,
    BENCH_DTLS_ESTABLISHED,
    BENCH_DTLS_CLOSED, /* close_notify, fatal alert or failed handshake */
} bench_dtls_state_t;

typedef struct {
    void *ssl; /* WOLFSSL */
    bench_dtls_send_fn send;
    void *user;
    const uint8_t *in; /* datagram being fed, handed to wolfSSL once */
    size_t in_len;
    uint8_t state; /* bench_dtls_state_t */
    const bench_dtls_cred_t *cred;
    char alert[48]; /* why the handshake failed */
} bench_dtls_t;

/* Session resumption (RFC 5246 §7.3 abbreviated handshake by session id,
 * or by the RFC 5077 ticket the session holds when the context asked for
 * one).
 * bench_dtls_save_session returns the established session's resumable
 * state (NULL when there is none); bench_dtls_start_resume offers it in the
 * ClientHello. bench_dtls_resumed tells whether the server accepted. */
void *bench_dtls_save_session(const bench_dtls_t *d);
void bench_dtls_free_session(void *sess);
bool bench_dtls_resumed(const bench_dtls_t *d);
/* The last alert received from the server ("" when none): why a handshake
 * failed. */
const char *bench_dtls_last_alert(const bench_dtls_t *d);

/* Creates the shared context for DTLS 1.2 or 1.3 with PSK suites. */
int bench_dtls_ctx_init(bench_dtls_ctx_t *c, bool dtls13);
/* Creates a DTLS 1.2 context for ECDHE-ECDSA (P-256) suites only. The
 * server's certificate is verified against `ca_file` when given (else not
 * at all); `cert_file`/`key_file` (PEM, both or neither) are presented when
 * the server asks for a client certificate. TETHER_EIO when a file cannot
 * be loaded, TETHER_ECRYPTO otherwise. */
int bench_dtls_ctx_init_cert(bench_dtls_ctx_t *c, const char *ca_file, const char *cert_file,
                             const char *key_file);
void bench_dtls_ctx_free(bench_dtls_ctx_t *c);
/* Restricts the suites offered (wolfSSL cipher list syntax, e.g.
 * "PSK-AES128-CCM-8"): references compared with each other must run the
 * same suite. TETHER_EINVAL when wolfSSL knows none of them. */
int bench_dtls_ctx_set_suites(bench_dtls_ctx_t *c, const char *list);
/* The negotiated suite of an established session ("" before). */
const char *bench_dtls_cipher(const bench_dtls_t *d);

/* Starts a handshake with `cred`: the first flight goes out through `send`
 * before this returns. Any previous session in `d` must have been ended
 * with bench_dtls_end. */
int bench_dtls_start(bench_dtls_t *d, const bench_dtls_ctx_t *c, const bench_dtls_cred_t *cred,
                     bench_dtls_send_fn send, void *user);
/* Like bench_dtls_start, offering `session` (from bench_dtls_save_session;
 * NULL: a full handshake) for resumption. */
int bench_dtls_start_resume(bench_dtls_t *d, const bench_dtls_ctx_t *c,
                            const bench_dtls_cred_t *cred, bench_dtls_send_fn send, void *user,
                            void *session);

/* Feeds one datagram. Returns 1 when it completed the handshake, 0
 * otherwise, TETHER_ECRYPTO when the handshake failed (state CLOSED). Once
 * established, the application records it carried come from
 * bench_dtls_read. */
int bench_dtls_input(bench_dtls_t *d, const uint8_t *buf, size_t len);

/* Next plaintext record of the datagram just fed; *data stays valid until
 * the next call into this module. False when none is left (the state may
 * then be CLOSED: the peer sent close_notify or a fatal alert). */
bool bench_dtls_read(bench_dtls_t *d, const uint8_t **data, size_t *len);

/* Encrypts and sends one application record. */
int bench_dtls_write(bench_dtls_t *d, const uint8_t *data, size_t len);

/* Milliseconds until bench_dtls_timeout must be called (a flight awaits
 * its answer), or -1 when nothing is pending. */
int bench_dtls_timeout_ms(const bench_dtls_t *d);
/* Retransmits the pending flight; TETHER_ETIMEDOUT when wolfSSL gives up. */
int bench_dtls_timeout(bench_dtls_t *d);

/* Ends the session: close_notify when established and `notify`, then frees
 * the wolfSSL object. The state becomes IDLE. Safe on an idle session. */
void bench_dtls_end(bench_dtls_t *d, bool notify);

#endif
