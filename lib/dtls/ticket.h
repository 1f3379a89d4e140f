/* Stateless session resumption (internal to lib/dtls): DTLS 1.2 session
 * tickets (RFC 5077) and DTLS 1.3 resumption PSKs (NewSessionTicket,
 * RFC 8446 §4.6.1 / RFC 9147), in tether's own ticket format, through
 * wolfSSL's ticket encryption callback (SPEC S2, S9).
 *
 * Keys: one AES-256-GCM key per epoch of conf.ticket_rotation_ms on the
 * wall clock (tether_dtls_set_wall_clock; `now` until there is one),
 *   key(e) = HKDF-SHA256(ikm = cluster_key, salt = "tether-ticket-v1",
 *                        info = "key" || e as 8 bytes big-endian),
 * so every node of a cluster opens every other node's tickets. Tickets of
 * the current and the previous epoch open; one of the previous epoch is
 * replaced by a new one under the current key (WOLFSSL_TICKET_RET_CREATE).
 * Without cluster_key the ikm is 32 random bytes of this process: its
 * tickets open nowhere else and not after a restart.
 *
 * Wire format (the fields wolfSSL's ExternalTicket gives the callback):
 *   key_name[16] = "TQt1" | epoch (8, big-endian) | key check (4: HKDF of
 *                  the ikm, info "name"; tells another cluster's ticket
 *                  apart without an AEAD attempt)
 *   iv[16]       = random; the GCM nonce is its first 12 bytes
 *   enc_len[2]   = length of the ciphertext (wolfSSL writes it)
 *   ciphertext   = AES-256-GCM(wolfSSL's InternalTicket || trailer),
 *                  AAD = key_name || iv || enc_len
 *   mac[32]      = GCM tag (16) || 16 zero bytes (checked)
 * Trailer, read from the end (its identity is the one variable field):
 *   identity (n bytes) | n (1) | auth (1: enum auth_kind) | role (1) |
 *   key tag (8, big-endian: tether_creds_key_tag at issue; X.509: the
 *            client CA tag, below) |
 *   version (1) = 1
 *
 * Identity (SPEC S2, "a session's identity is the one its handshake
 * negotiated"): a resumed session takes identity, role and auth kind from
 * the trailer of the ticket it resumed, and nothing else. wolfSSL may
 * decrypt several tickets while reading one ClientHello (DTLS 1.3 offers
 * a list, and a stateless pass precedes the stateful one), so each one
 * that opens is remembered with a binding to its secret: SHA-256 of the
 * DTLS 1.2 master secret, or of the DTLS 1.3 resumption PSK derived from
 * it. A completed resumed handshake then takes the trailer whose binding
 * matches the secret it actually resumed (tether_wolf_peer_auth), which
 * the peer proved by its Finished (and binder).
 *
 * Credentials: a ticket whose identity is no longer listed, is listed
 * with another role, or (PSK) whose key tag changed (key rotated or
 * revoked) does not open: the client gets a full handshake. An X.509
 * ticket names a CN, which the certificate's CA vouched for at issue: its
 * tag is the first 8 bytes of SHA-256 of the dtls.ca_file bytes, so after
 * the client CA changes (a compromised CA or device key is revoked by
 * re-issuing under a new one) no ticket of the old CA resumes, on any
 * node, while the certificate behind it could no longer complete a full
 * handshake. So resumption never outlives a credential. Completion checks
 * again (a reload may come in between).
 */
#ifndef TETHER_DTLS_TICKET_H
#define TETHER_DTLS_TICKET_H

#include <stdbool.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "tether/creds.h"
#include "tether/dtls.h"

#define TETHER_TICKET_BIND_LEN 32
/* Trailer: identity (at most TETHER_IDENTITY_MAX - 1 bytes) and 12 more. */
#define TETHER_TICKET_TRAILER_MAX (TETHER_IDENTITY_MAX - 1 + 12)
/* Tickets remembered per ClientHello (see above): the identities a hello
 * may offer, each seen in the stateless and the stateful pass. */
#define TETHER_TICKET_SEEN_MAX (TETHER_DTLS_MAX_PSK_IDENTITIES * 2)

/* What a ticket that opened says, bound to its secret. */
typedef struct {
    uint8_t bind[TETHER_TICKET_BIND_LEN];
    char identity[TETHER_IDENTITY_MAX];
    tether_role_t role;
    uint8_t auth; /* enum auth_kind */
    uint64_t key_tag;
} tether_ticket_claim_t;

/* The tickets one handshake's ClientHello(s) carried that opened; owned
 * by the handshake's io_t, freed when the handshake ends. */
typedef struct {
    uint8_t n, next;
    tether_ticket_claim_t c[TETHER_TICKET_SEEN_MAX];
} tether_ticket_seen_t;

/* The keys of the current and the previous epoch. */
typedef struct {
    uint8_t ikm[64];
    size_t ikm_len;
    uint8_t check[4];
    uint64_t epoch; /* current; UINT64_MAX before the first derivation */
    uint64_t ca_tag; /* X.509 tickets' key tag (above); 0 without a ca_file */
    Aes aes[2];     /* [0] epoch, [1] epoch - 1 */
    bool ready;
} tether_ticket_keys_t;

struct tether_dtls_srv;

/* Installs the callback on the server's context, derives the keys of the
 * epoch of `clock` and tags the client CA file `ca_file` (conf.ca_file;
 * NULL or "": none): 0, TETHER_ECRYPTO, TETHER_ECONFIG (unreadable). */
int dtls_ticket_setup(struct tether_dtls_srv *srv, const char *ca_file, tether_time_t clock);
/* Moves to the epoch of `clock` if it changed (tick, first wall clock);
 * returns the clock time of the next epoch. */
tether_time_t dtls_ticket_rotate(struct tether_dtls_srv *srv, tether_time_t clock);
/* Wipes the keys (destroy). */
void dtls_ticket_wipe(struct tether_dtls_srv *srv);

/* wolfSSL's SessionTicketEncCb (installed by dtls_ticket_setup; named for
 * test/fuzz/fuzz_ticket.c). `ctx` is the server, the read context of
 * `ssl` the handshake's io_t. enc = 0 opens the ticket a client offered:
 * name, iv and mac are its fixed fields, buf[len] the ciphertext, wolfSSL
 * having checked only that len fits the ticket; *out_len gets the
 * length of wolfSSL's internal ticket. Returns a WOLFSSL_TICKET_RET_*. */
int dtls_ticket_cb(WOLFSSL *ssl, unsigned char name[WOLFSSL_TICKET_NAME_SZ],
                   unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
                   int enc, unsigned char *buf, int len, int *out_len, void *ctx);

/* The claim of the remembered ticket with binding `bind`, or NULL. */
const tether_ticket_claim_t *dtls_ticket_find(const tether_ticket_seen_t *seen,
                                              const uint8_t bind[TETHER_TICKET_BIND_LEN]);
/* Whether the server's credentials still list the claim's identity as it
 * was at issue (and, X.509, under the same client CA). */
bool dtls_ticket_claim_current(const struct tether_dtls_srv *srv, const tether_ticket_claim_t *c);
/* Frees a handshake's remembered tickets (wiped). */
void dtls_ticket_seen_free(tether_ticket_seen_t **seen);

#endif
