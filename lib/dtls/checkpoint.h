/* Session checkpoints: what another node needs to continue an established
 * compact DTLS 1.2 session (SPEC S5) so that the peer notices nothing, as
 * bytes sealed for the state store's TETHER_STORE_SESSION record.
 *
 * Contract. tether_ckpt_seal turns a tether_ckpt_t into a blob; the blob
 * opens (tether_ckpt_open) only with the cluster's key and the very same
 * binding: the store key (our CID), the owner node id, the owner's
 * generation, the store record version the blob is written at, and the
 * transmit-sequence ceiling written beside it. So a checkpoint replayed
 * from an older record version, moved to another CID, written under
 * another owner generation, or put next to a lowered ceiling is refused
 * (TETHER_ECRYPTO), and a reader of the store learns no key.
 *
 * Writers must therefore know the version their put creates: put with a
 * compare-and-set on the version last seen (`expect`) and seal with
 * expect + 1 (creation: expect 0, version 1). An unconditional put cannot
 * be sealed correctly.
 *
 * Threat model: the store's readers and replicas, misrouted or replayed
 * records. A writer to the store who also rewrites the store's version
 * counters can roll a record back to an older (version, blob, ceiling)
 * triple; the generation fence of adoption (membership, not here) and the
 * margin an adopter adds to the ceiling (txceil.h) are the defences left.
 *
 * Key: HKDF-SHA256 (RFC 5869), IKM cluster_key, salt "tether-checkpoint",
 * info "session-wrap v1", 32 bytes (like lib/cluster/channel.c's pair
 * keys, with its own label so no key serves two purposes). Every seal
 * derives a one-time AES-256-GCM key HMAC-SHA256(wrap key, "seal" | R16)
 * from 16 fresh random bytes R16 and uses a random 96-bit nonce under it:
 * a single key with random nonces would reach the 2^32-message bound of
 * NIST SP 800-38D §8.3 within days at 10^4 checkpoints a second.
 *
 * Blob, format 2 (all integers big-endian):
 *   0    1  format (TETHER_CKPT_FORMAT = 2)
 *   1   16  R16 (subkey salt)
 *   17  12  GCM nonce
 *   29   n  ciphertext of the body below
 *   29+n 16 GCM tag
 * Additional data (not sent, rebuilt by the reader):
 *   format(1) | owner node(1) | generation(8) | version(8) |
 *   seq_ceiling(8) | cid_len(1) | cid
 * Body, format 2:
 *   alg(1: 1 AES-128-CCM-8, 2 AES-128-GCM) | epoch(2, != 0) |
 *   tx_seq(6) | rx_next(6) | rx_window(8) |
 *   tx_key(16) | rx_key(16) | tx_salt(4) | rx_salt(4) |
 *   tx_cid_len(1, 0..16) | tx_cid |
 *   auth(1: 1 PSK, 2 X.509) | role(1: tether_role_t) |
 *   key_tag(8: tether_creds_key_tag of the PSK the handshake used; 0 for
 *           X.509) |
 *   link_id(8: the session's id at its owner, which names its link in
 *           the owner's observe registry entries) |
 *   identity_len(1, 1..127) | identity (no NUL) |
 *   peer family(1: 4 or 6) | peer port(2) | peer address(4 or 16) |
 *   flags(1: bit 0 the peer address was not validated; others 0)
 * Nothing may follow the body. The link id lets an adopter find the
 * session's observers in the observe registry (their link keys name the
 * owner's session ids). The key tag lets an adopter refuse a
 * session whose PSK was rotated since its handshake, and end it on a
 * later rotation (tether_dtls_set_creds compares it). Format 1 (without
 * the tag) is no longer opened: an adopter cannot tell whether its key
 * changed, so its sessions handshake again, once, across the upgrade. A
 * later format gets a new format byte.
 *
 * Receive window: the body's rx_next/rx_window are those at the time of
 * the seal. Records the owner accepted after its last checkpoint are new
 * again to an adopter: that is the replay exposure of coalesced receive
 * checkpoints (each ceiling raise re-seals, so it spans at most a block of
 * our own records' time); CoAP deduplication of Message IDs (RFC 7252 §4.5)
 * on the adopting node does not cover it, since the dead node's
 * deduplication state is lost: what it bounds is the window, not zero.
 *
 * DTLS 1.3 sessions stay on wolfSSL objects and have no checkpoint: on a
 * failover their peers run a new handshake (or a resumption where the
 * performance work offers one). Out of scope here.
 *
 * Pure: no I/O; the caller passes its random generator. */
#ifndef TETHER_DTLS_CHECKPOINT_H
#define TETHER_DTLS_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/random.h>

#include "dtls/record.h"
#include "tether/addr.h"
#include "tether/creds.h"

#define TETHER_CKPT_FORMAT 2
#define TETHER_CKPT_OVERHEAD (1 + 16 + 12 + 16)
/* Largest body: fixed part, both CIDs' room, identity, IPv6 peer. */
#define TETHER_CKPT_BODY_MAX (63 + 1 + TETHER_CID_MAX + 3 + 16 + TETHER_IDENTITY_MAX + 19 + 1)
#define TETHER_CKPT_MAX (TETHER_CKPT_OVERHEAD + TETHER_CKPT_BODY_MAX)

enum tether_ckpt_auth { TETHER_CKPT_AUTH_PSK = 1, TETHER_CKPT_AUTH_X509 = 2 };

/* The session state a checkpoint carries. */
typedef struct {
    tether_rec_t rec; /* keys, salts, epoch, sequence numbers, window, tx CID */
    uint8_t auth;     /* enum tether_ckpt_auth */
    tether_role_t role;
    uint64_t key_tag; /* PSK: tether_creds_key_tag at the handshake; X.509: 0 */
    uint64_t link_id; /* the session's id at its owner */
    char identity[TETHER_IDENTITY_MAX];
    tether_addr_t peer;
    bool unvalidated; /* peer address not yet shown to be the peer's */
} tether_ckpt_t;

/* What a blob is bound to (the additional data). */
typedef struct {
    const uint8_t *cid; /* the store key: the CID we issued, 1..TETHER_CID_MAX bytes */
    size_t cid_len;
    uint8_t owner;        /* node id owning the session */
    uint64_t generation;  /* the owner's generation */
    uint64_t version;     /* store record version the blob is written at */
    uint64_t seq_ceiling; /* transmit-sequence ceiling written with it */
} tether_ckpt_bind_t;

typedef struct {
    uint8_t key[32];
} tether_ckpt_key_t;

/* Derives the wrap key from cluster_key (len > 0). 0, TETHER_EINVAL or
 * TETHER_ECRYPTO. */
int tether_ckpt_key(const uint8_t *cluster_key, size_t len, tether_ckpt_key_t *out);
void tether_ckpt_key_wipe(tether_ckpt_key_t *k);

/* Seals `c` bound to `b` into out[cap] (TETHER_CKPT_MAX always suffices);
 * *out_len its size. 0, TETHER_EINVAL (bad binding or state),
 * TETHER_ENOSPC or TETHER_ECRYPTO. */
int tether_ckpt_seal(const tether_ckpt_key_t *k, WC_RNG *rng, const tether_ckpt_bind_t *b,
                     const tether_ckpt_t *c, uint8_t *out, size_t cap, size_t *out_len);

/* Seals arbitrary body bytes (n <= TETHER_CKPT_BODY_MAX): the part of
 * tether_ckpt_seal after the body is written, open to the unit tests and
 * the fuzz target so they reach the body parser behind the tag. */
int tether_ckpt_seal_body(const tether_ckpt_key_t *k, WC_RNG *rng, const tether_ckpt_bind_t *b,
                          const uint8_t *body, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/* Opens a blob under binding `b` into *c. 0; TETHER_EPROTO (not a blob of
 * a known format, or a body that does not parse); TETHER_ECRYPTO (wrong
 * key or binding, or altered bytes); TETHER_EINVAL (bad binding). *c is
 * wiped on every failure. */
int tether_ckpt_open(const tether_ckpt_key_t *k, const tether_ckpt_bind_t *b, const uint8_t *in,
                     size_t len, tether_ckpt_t *c);

void tether_ckpt_wipe(tether_ckpt_t *c);

#endif
