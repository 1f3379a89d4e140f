/* tether — device/client-facing DTLS termination (sans-I/O over wolfSSL).
 *
 * The caller feeds datagrams with `now` and drains the transmit queue;
 * nothing here touches a socket or a clock. DTLS 1.2 (RFC 6347) with
 * Connection ID (RFC 9146) and DTLS 1.3 (RFC 9147); PSK and ECDSA P-256
 * X.509 client certificates (identity = subject CN, role from creds).
 *
 * Lifetimes: a session pointer handed out in tether_dtls_rx_t stays valid
 * until the next call to tether_dtls_input() or tether_dtls_tick(); closed
 * sessions are freed at the start of those calls, never inside them.
 */
#ifndef TETHER_DTLS_H
#define TETHER_DTLS_H

#include <stdbool.h>
#include <sys/socket.h>

#include "tether/addr.h"
#include "tether/common.h"
#include "tether/creds.h"

#define TETHER_DTLS_MAX_DGRAM 2048
#define TETHER_DTLS_TXQ 256
#define TETHER_CID_MAX 16
/* PSK identities a ClientHello may offer; more are refused before wolfSSL
 * looks any up (a device offers one; two leaves room for a rotation). */
#define TETHER_DTLS_MAX_PSK_IDENTITIES 2

typedef struct {
    uint8_t node_id;          /* first byte of every CID we issue */
    uint8_t cid_len;          /* server-issued CID length, 2..16 (default 8) */
    uint32_t max_sessions;    /* established + handshaking */
    uint32_t max_handshakes;  /* handshakes in flight */
    /* Handshakes in flight per source (IPv4 address or IPv6 /64): a source
     * at its cap that proves a new address gives up its own oldest one. */
    uint32_t max_handshakes_per_source;
    /* A handshake whose peer sends nothing for this long is dropped, long
     * before handshake_timeout: a stalled slot costs the attacker nothing. */
    uint32_t handshake_flight_timeout_ms;
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms; /* established session without traffic */
    uint32_t cookie_rotate_ms;
    const uint8_t *cluster_key; /* cookie secrets derive from it when set */
    size_t cluster_key_len;
    /* X.509 (all optional, PEM paths read at create time): the CA that signs
     * client certificates, and our own ECDSA P-256 certificate and key for
     * the ECDHE-ECDSA suites. Without ca_file no client certificate is asked
     * for; without cert_file/key_file only PSK suites can complete. */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    /* Handshakes admitted per source IP address (token bucket): `rate` per
     * second, up to `burst` at once. 0 = unlimited. */
    uint32_t handshake_rate_per_source;
    uint32_t handshake_burst_per_source;
} tether_dtls_conf_t;

typedef struct {
    uint64_t sessions_active;
    uint64_t handshakes_inflight;
    uint64_t handshakes_full;
    uint64_t handshakes_failed;
    uint64_t hello_verify_sent;
    uint64_t address_changes;
    uint64_t unknown_cid_dropped;
    uint64_t dropped_limit;
    uint64_t sessions_closed;
    uint64_t tx_dropped;
    uint64_t dropped_rate;    /* cookie-verified hellos over the per-source rate */
    uint64_t handshakes_x509; /* completed with a client certificate */
    uint64_t x509_rejected;   /* client certificate missing or refused (chain, dates, CN) */
    uint64_t sessions_compact; /* established sessions on the compact record layer */
    uint64_t records_rejected; /* compact layer: records not ours, replayed or forged */
    uint64_t handshakes_unauthenticated; /* completed, but authenticated nobody (refused) */
    uint64_t hellos_refused; /* malformed or fragmented, or over the PSK identity cap */
    uint64_t handshakes_stalled; /* dropped: no flight from the peer within the flight timeout */
    uint64_t handshakes_evicted; /* dropped for a newer one: source at its cap, or table full */
} tether_dtls_stats_t;

typedef struct tether_dtls_srv tether_dtls_srv_t;
typedef struct tether_dtls_sess tether_dtls_sess_t;

typedef struct {
    tether_dtls_sess_t *sess;
    const uint8_t *data; /* plaintext, valid until the next call */
    size_t len;
} tether_dtls_rx_t;

typedef struct {
    tether_addr_t to;
    uint16_t len;
    uint8_t data[TETHER_DTLS_MAX_DGRAM];
} tether_dgram_t;

/* Fills defaults (node 1, CID 8 bytes, generous limits). */
TETHER_API void tether_dtls_conf_defaults(tether_dtls_conf_t *conf);

/* Creates a server; `creds` is borrowed (see tether_dtls_set_creds). */
TETHER_API int tether_dtls_create(const tether_dtls_conf_t *conf, const tether_creds_t *creds,
                                  tether_time_t now, tether_dtls_srv_t **out);
TETHER_API void tether_dtls_destroy(tether_dtls_srv_t *srv);

/* Swaps the credential set used by new handshakes; established sessions are
 * kept. The caller frees the old set after this returns. */
TETHER_API void tether_dtls_set_creds(tether_dtls_srv_t *srv, const tether_creds_t *creds);

/* Feeds one datagram. When it carried application data, rx->len > 0 and
 * tether_dtls_input_more() returns further records of the same datagram. */
TETHER_API int tether_dtls_input(tether_dtls_srv_t *srv, const tether_addr_t *from,
                                 const uint8_t *buf, size_t len, tether_time_t now,
                                 tether_dtls_rx_t *rx);
TETHER_API bool tether_dtls_input_more(tether_dtls_srv_t *srv, tether_dtls_rx_t *rx);

/* Encrypts application data for `sess` into the transmit queue. */
TETHER_API int tether_dtls_send(tether_dtls_srv_t *srv, tether_dtls_sess_t *sess,
                                const uint8_t *data, size_t len);

/* Wall-clock milliseconds (Unix epoch). Cookie secrets derived from the
 * cluster key follow wall-clock epochs of cookie_rotate_ms, so every node
 * of a cluster accepts every other node's cookies; without a wall clock
 * they follow `now`. Call it before each tick. */
TETHER_API void tether_dtls_set_wall_clock(tether_dtls_srv_t *srv, tether_time_t wall_ms);

/* Retransmissions, handshake and idle timeouts, cookie-secret rotation. */
TETHER_API void tether_dtls_tick(tether_dtls_srv_t *srv, tether_time_t now);

/* Transmit queue: datagrams to send, in order; the caller clears it. */
TETHER_API size_t tether_dtls_tx_count(const tether_dtls_srv_t *srv);
TETHER_API const tether_dgram_t *tether_dtls_tx_get(const tether_dtls_srv_t *srv, size_t i);
TETHER_API void tether_dtls_tx_clear(tether_dtls_srv_t *srv);

TETHER_API const tether_dtls_stats_t *tether_dtls_stats(const tether_dtls_srv_t *srv);

/* Authenticated identity (PSK identity) of an established session. */
TETHER_API const char *tether_dtls_sess_identity(const tether_dtls_sess_t *sess);
TETHER_API tether_role_t tether_dtls_sess_role(const tether_dtls_sess_t *sess);
TETHER_API const tether_addr_t *tether_dtls_sess_peer(const tether_dtls_sess_t *sess);
/* Our CID for this session (0 length when none was negotiated). */
TETHER_API size_t tether_dtls_sess_cid(const tether_dtls_sess_t *sess, uint8_t *out);

/* A session's stable id (never reused within the process). Layers above
 * hold ids, not pointers, and look sessions up when they send. */
TETHER_API uint64_t tether_dtls_sess_id(const tether_dtls_sess_t *sess);
/* The established session with this id, or NULL when it has ended. */
TETHER_API tether_dtls_sess_t *tether_dtls_sess_find(const tether_dtls_srv_t *srv, uint64_t id);
/* Ids of established sessions that ended since the last clear (idle timeout,
 * close_notify, fatal alert, limits). */
TETHER_API size_t tether_dtls_closed(const tether_dtls_srv_t *srv, const uint64_t **ids);
TETHER_API void tether_dtls_closed_clear(tether_dtls_srv_t *srv);


#endif
