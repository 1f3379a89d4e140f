/* The record number of the record wolfSSL authenticated last. wolfSSL has
 * no public accessor for it, and DTLS 1.3 encrypts record numbers on the
 * wire (RFC 9147 §4.2.3), so this is the one place in tether that reads
 * wolfSSL's internal structures (wolfssl/internal.h, installed into .deps
 * by deploy/deps.sh from the same source tree the library was built from),
 * both for record numbers and for handing a session to record.h. */
#ifndef TETHER_WOLFREC_H
#define TETHER_WOLFREC_H

#include <stdbool.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "dtls/record.h"

/* After a wolfSSL_read() that returned data: (epoch << 48 | sequence) of the
 * record it came from, and whether the session runs DTLS 1.3. False when
 * the numbers do not fit (epoch >= 2^16). */
bool tether_wolf_record_number(const WOLFSSL *ssl, uint64_t *epoch_seq, bool *dtls13);

/* Copies an established DTLS 1.2 session's keys (either side), sequence
 * numbers, replay window and transmit CID into `r` so the compact record
 * layer (record.h) can carry it once the WOLFSSL object is freed. Returns
 * TETHER_EINVAL when the session cannot be carried (DTLS 1.3, a suite
 * other than AES-128-CCM-8 / AES-128-GCM, no handshake yet) and
 * TETHER_EAGAIN while wolfSSL still holds unread input. */
int tether_wolf_export_rec(WOLFSSL *ssl, tether_rec_t *r);

/* What a completed handshake authenticated, read from what wolfSSL
 * negotiated rather than from anything a callback saw on the way (a PSK
 * callback also runs for identities that are then not chosen, and for a
 * stateless hello whose binder is never checked). */
enum tether_wolf_auth {
    TETHER_WOLF_AUTH_NONE = 0,
    TETHER_WOLF_AUTH_PSK,     /* a PSK suite (1.2) or a chosen external PSK (1.3) */
    TETHER_WOLF_AUTH_CERT,    /* the client proved a certificate (CertificateVerify) */
    TETHER_WOLF_AUTH_RESUMED, /* a ticket was resumed: `bind` names its secret (ticket.h) */
};

#define TETHER_WOLF_BIND_LEN 32

/* After wolfSSL_accept() returned success: how the peer authenticated;
 * for PSK the identity the handshake used (NUL-terminated, at most cap - 1
 * bytes; an identity that does not fit is reported as NONE); for RESUMED
 * the binding of the resumed secret (SHA-256 of the DTLS 1.2 master
 * secret or of the DTLS 1.3 resumption PSK), which the peer proved with
 * its Finished. Needs the handshake arrays (wolfSSL_KeepArrays() before
 * the handshake). */
enum tether_wolf_auth tether_wolf_peer_auth(const WOLFSSL *ssl, char *identity, size_t cap,
                                            uint8_t bind[TETHER_WOLF_BIND_LEN]);

/* The same, from wolfSSL's ticket encryption callback while it builds a
 * ticket for the peer: after the client's Finished verified (a full
 * handshake, or DTLS 1.3), or while a DTLS 1.2 resumption re-issues the
 * ticket whose secret it inherits. */
enum tether_wolf_auth tether_wolf_ticket_peer(const WOLFSSL *ssl, char *identity, size_t cap,
                                              uint8_t bind[TETHER_WOLF_BIND_LEN]);

/* The binding (as above) of a decrypted wolfSSL internal ticket of `len`
 * bytes: 0; TETHER_EINVAL when it is not one tether can resume (too
 * short, a DTLS 1.3 suite whose hash is not SHA-256); TETHER_ECRYPTO. */
int tether_wolf_ticket_bind(const uint8_t *it, size_t len, uint8_t bind[TETHER_WOLF_BIND_LEN]);

/* How far the peer's side of a handshake has got: the number of its
 * handshake messages wolfSSL has taken in order (the next message_seq it
 * expects, RFC 6347 §4.2.2, RFC 9147 §5.2). A retransmitted or replayed
 * flight, a message out of order and a datagram that is not a record of
 * this handshake leave it as it was. */
uint32_t tether_wolf_hs_progress(const WOLFSSL *ssl);

#endif
