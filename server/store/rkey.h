/* tetherd — how the store's records look in Redis (SPEC S5): key names,
 * values and the change-log entry. Pure (no I/O), so it is unit-tested on
 * its own (test/unit/test_rkey.c).
 *
 * Key names. Every record is one Redis string under one key, and every
 * command the store sends names one key (or keys of one hash tag), so the
 * layout runs unchanged on Redis Cluster and Valkey cluster mode: the
 * part in braces is the hash tag that picks the slot.
 *   tether:dev:{NAME}          device directory entry (DEVICE)
 *   tether:cred:{IDENTITY}     credential and ACL (CRED); key sealed
 *   tether:obs:{NAME}HEX       observe registry entry (OBSERVE): NAME the
 *                              observed device (its hash tag, like its
 *                              directory entry), HEX the record key (the
 *                              cache key, which starts with the device's
 *                              name, then the observers' node id)
 *   tether:sess:{HEX}          session checkpoint (SESSION), HEX of the CID
 *   tether:{nodes}:node:ID     node lease (NODE); one tag for all, so one
 *                              MGET reads the membership
 *   tether:grp:{NAME}          group of devices (GROUP): name, pattern,
 *                              members (a JSON list of device names)
 *   tether:{log}               the change log, a Stream (XADD/XREAD)
 * NAME and IDENTITY are written with bytes outside [A-Za-z0-9._-]
 * percent-encoded ("%7B" for '{'), so a name can neither move the hash
 * tag nor be confused with another key, and a key name parses back to
 * exactly one (kind, key).
 *
 * Value: "VERSION JSON" — the record version in decimal, one space, the
 * record as a JSON object (members below, see tetherd_rrec_encode). The
 * version lives in the value so that one GET or MGET returns both and a
 * Lua compare-and-set (rcmd.c) reads it without a second key.
 *
 * Change-log entry: fields k (key name), v (new version, 0: deleted),
 * n (writer's node id), and d (the JSON) unless deleted: a reader applies
 * it without reading the record again. */
#ifndef TETHERD_STORE_RKEY_H
#define TETHERD_STORE_RKEY_H

#include <stddef.h>
#include <stdint.h>

#include "tether/store.h"
#include "wrap.h"

/* Longest key name: percent-encoding triples a name; hex doubles a key. */
#define TETHERD_RKEY_MAX (3 * TETHER_STORE_KEY_MAX + 32)
#define TETHERD_RKEY_LOG "tether:{log}"
#define TETHERD_RKEY_MATCH "tether:*" /* SCAN pattern of every record (and the log) */

/* The key name of (kind, key), NUL-terminated in out[cap]. 0, TETHER_EINVAL
 * (unknown kind, empty key, a node key that is not one byte 1..255) or
 * TETHER_ENOSPC. */
/* "HOST:PORT" with a numeric host (IPv4 or IPv6) into `a`; "" leaves `a`
 * empty. 0 or TETHER_EPROTO. */
int tetherd_addr_parse(const char *s, tether_addr_t *a);

int tetherd_rkey_name(tether_store_kind_t kind, const uint8_t *key, size_t len, char *out,
                      size_t cap);
/* The (kind, key) a key name stands for; TETHER_EINVAL when it is not one
 * of ours (the log, a foreign key, a malformed escape). */
int tetherd_rkey_parse(const char *name, size_t len, tether_store_kind_t *kind, uint8_t *key,
                       size_t cap, size_t *key_len);

/* Splits a value "VERSION JSON"; TETHER_EPROTO when malformed. */
int tetherd_rval_split(const char *val, size_t len, uint64_t *version, const char **json,
                       size_t *json_len);

/* A decoded record owning its variable parts. */
typedef struct {
    tether_store_rec_t rec;
    void *arena; /* the variable parts (links, rules, observers, blob) */
} tetherd_rrec_t;

/* The record as a JSON object (malloc'd, NUL-terminated, into *out). A
 * credential's key is sealed with `w` under AAD "RKEY\nVERSION\nDIGEST" (the
 * key name it is written to, the version it gets there, and a SHA-256 of
 * its identity, derived flag, role and ACL rules, so neither the key nor
 * what it may do can be moved or changed in Redis): TETHER_ECRYPTO
 * without a wrapping key. 0, TETHER_EINVAL or TETHER_ENOMEM. */
int tetherd_rrec_encode(const tether_store_rec_t *rec, const tetherd_wrap_t *w, const char *rkey,
                        uint64_t version, char **out);
/* Parses what tetherd_rrec_encode made. Anything else (another node's
 * bug, an attacker with write access to Redis) is refused with
 * TETHER_EPROTO, never half-read: types, lengths and ranges are checked;
 * a credential whose key does not open under (rkey, version) is refused.
 * Free with tetherd_rrec_free (also after a failure). */
int tetherd_rrec_decode(tether_store_kind_t kind, const char *json, size_t len,
                        const tetherd_wrap_t *w, const char *rkey, uint64_t version,
                        tetherd_rrec_t *out);
void tetherd_rrec_free(tetherd_rrec_t *r);

/* Hex of n bytes into out[2n + 1]. */
void tetherd_hex(const uint8_t *p, size_t n, char *out);

#endif
