/* tetherd — sealing secrets that go to Redis (SPEC S5): a device or client
 * key in a credential record is stored as AES-256-GCM ciphertext under a
 * key derived from cluster_key, so a reader of Redis (a backup, a MONITOR,
 * an operator's redis-cli) learns no PSK.
 *
 * Key: HKDF-SHA256 (RFC 5869) with salt "tether redis wrap", IKM the
 * cluster key, info "v1", 32 bytes. Every node of a cluster derives the
 * same key; changing cluster_key makes stored credentials unreadable
 * (write them again).
 *
 * Sealed form (bytes): format 0x01 | nonce (12, random) | ciphertext |
 * tag (16). Additional data: the format byte, then the caller's AAD (the
 * Redis key name and the record version, see rkey.h), so a sealed key
 * moved to another record or replayed at another version does not open.
 * With 96-bit random nonces a key may seal about 2^32 values before the
 * nonce-collision bound of NIST SP 800-38D section 8.3 matters: credential
 * writes are operator actions, far below that.
 *
 * Pure: no I/O beyond the random generator. */
#ifndef TETHERD_STORE_WRAP_H
#define TETHERD_STORE_WRAP_H

#include <stddef.h>
#include <stdint.h>

#define TETHERD_WRAP_OVERHEAD (1 + 12 + 16)

typedef struct {
    uint8_t key[32];
    int ready; /* 0 until tetherd_wrap_init succeeded */
} tetherd_wrap_t;

/* Derives the wrapping key from the cluster key (ck_len > 0). 0 or
 * TETHER_ECRYPTO. */
int tetherd_wrap_init(tetherd_wrap_t *w, const uint8_t *ck, size_t ck_len);
/* Seals pt[pt_len] into out[cap] (cap >= pt_len + TETHERD_WRAP_OVERHEAD).
 * 0, TETHER_ENOSPC or TETHER_ECRYPTO. */
int tetherd_wrap_seal(const tetherd_wrap_t *w, const uint8_t *aad, size_t aad_len,
                      const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap,
                      size_t *out_len);
/* Opens what tetherd_wrap_seal made with the same AAD. 0, TETHER_EPROTO
 * (not a sealed value, or a wrong key, AAD or tampered bytes: the tag does
 * not verify) or TETHER_ENOSPC. */
int tetherd_wrap_open(const tetherd_wrap_t *w, const uint8_t *aad, size_t aad_len,
                      const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                      size_t *out_len);
/* Forgets the key. */
void tetherd_wrap_clear(tetherd_wrap_t *w);

#endif
