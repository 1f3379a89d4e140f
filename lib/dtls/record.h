/* Compact DTLS 1.2 record protection for established sessions.
 *
 * wolfSSL runs the handshake; afterwards the keys, sequence numbers, replay
 * window and connection IDs are copied into a tether_rec_t (about 90 bytes)
 * and the WOLFSSL object is freed. This module then seals and opens the
 * session's records itself on wolfCrypt's AES: RFC 6347 §4.1 records, AEAD
 * nonces per RFC 5288 / RFC 6655 (4-byte salt || 8-byte explicit nonce),
 * RFC 9146 tls12_cid records with their additional data and inner content
 * type. Sans-I/O: bytes in, bytes out, no clock.
 *
 * The same state is what a cluster would checkpoint to move a session to
 * another node (SPEC S5).
 */
#ifndef TETHER_DTLS_RECORD_H
#define TETHER_DTLS_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "tether/common.h"
#include "tether/dtls.h"

#define TETHER_REC_HDR 13        /* DTLS 1.2 record header without CID */
#define TETHER_REC_EXPLICIT 8    /* explicit nonce carried in each record */
#define TETHER_REC_CT_ALERT 21
#define TETHER_REC_CT_HANDSHAKE 22
#define TETHER_REC_CT_APP 23
#define TETHER_REC_CT_CID 25

enum tether_rec_alg { TETHER_REC_AES128_CCM8 = 1, TETHER_REC_AES128_GCM = 2 };

typedef struct {
    uint64_t tx_seq;    /* next sequence number we send (48 bits) */
    uint64_t rx_next;   /* one past the highest authenticated sequence */
    uint64_t rx_window; /* bit k set: sequence rx_next - 1 - k was received */
    uint16_t epoch;     /* both directions: renegotiation is not supported */
    uint8_t alg;        /* enum tether_rec_alg */
    uint8_t tx_cid_len; /* CID the peer asked us to send (0: plain records) */
    uint8_t tx_key[16], rx_key[16];
    uint8_t tx_salt[4], rx_salt[4];
    uint8_t tx_cid[TETHER_CID_MAX];
} tether_rec_t;

/* One opened record. */
typedef struct {
    uint8_t type;    /* inner content type (23 application data, 21 alert, ...) */
    size_t len;      /* plaintext length, in the caller's output buffer */
    uint64_t number; /* epoch << 48 | sequence, authenticated */
} tether_rec_in_t;

/* Opens the record at the start of buf[0..len): header, epoch, replay
 * window, authentication, decryption into out (cap bytes). `rx_cid` is the
 * CID we issued (records to us must carry it when rx_cid_len > 0). *used
 * is set to the record's size on the wire whenever its header parsed, so a
 * datagram with several records can be walked. Returns 0 (record marked as
 * received), TETHER_EPROTO (malformed: stop walking the datagram),
 * TETHER_ENOTFOUND (not ours: other epoch, content type or CID),
 * TETHER_EEXIST (replayed or older than the window) or TETHER_ECRYPTO
 * (failed authentication). Only a 0 return may change any state. */
int tether_rec_open(tether_rec_t *r, Aes *aes, const uint8_t *rx_cid, size_t rx_cid_len,
                    const uint8_t *buf, size_t len, size_t *used, uint8_t *out, size_t cap,
                    tether_rec_in_t *in);

/* Seals `len` bytes of content `type` as one record into out (cap bytes),
 * taking the next sequence number. Returns the record size, or
 * TETHER_ENOSPC / TETHER_ELIMIT (sequence space exhausted) / TETHER_ECRYPTO. */
int tether_rec_seal(tether_rec_t *r, Aes *aes, uint8_t type, const uint8_t *data, size_t len,
                    uint8_t *out, size_t cap);

/* Bytes a record adds around `len` bytes of content. */
size_t tether_rec_overhead(const tether_rec_t *r);

/* Replay window (RFC 6347 §4.1.2.6): whether `seq` is new, and marking it. */
bool tether_rec_window_fresh(const tether_rec_t *r, uint64_t seq);
void tether_rec_window_mark(tether_rec_t *r, uint64_t seq);

/* Overwrites the keys (before the state is freed). */
void tether_rec_wipe(tether_rec_t *r);

#endif
