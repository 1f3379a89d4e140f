/* tether — credentials: PSK identities, HMAC-derived fleet keys and client
 * ACLs (SPEC S11 format). Immutable once loaded: a reload builds a new set
 * and swaps it, so lookups never see a half-loaded file. */
#ifndef TETHER_CREDS_H
#define TETHER_CREDS_H

#include <stdbool.h>

#include "tether/common.h"

#define TETHER_PSK_MAX 64
#define TETHER_IDENTITY_MAX 128

typedef enum { TETHER_ROLE_DEVICE = 0, TETHER_ROLE_CLIENT = 1 } tether_role_t;

typedef struct tether_creds tether_creds_t;

/* One ACL rule (SPEC S4, S11): devices (a "devices" rule) or groups (a
 * "groups" rule, `group` set) whose name matches `pattern` (fnmatch glob)
 * may be sent the methods in `methods` (bit n: CoAP method code n). */
typedef struct {
    char pattern[TETHER_IDENTITY_MAX];
    uint8_t methods;
    bool group;
} tether_creds_rule_t;

#define TETHER_HTTP_TOKEN_HASH_LEN 32 /* SHA-256 */

/* A credential given as values rather than read from a file (tetherd's
 * credentials in Redis). Borrowed by tether_creds_overlay, which copies. */
typedef struct {
    const char *identity; /* the identity, or the prefix of derived ones */
    bool derived;         /* key is the fleet master of the prefix */
    tether_role_t role;
    const uint8_t *key;
    size_t key_len; /* 1..TETHER_PSK_MAX */
    const tether_creds_rule_t *rules;
    size_t nrules;
    /* SHA-256 of the entry's HTTP bearer token (HTTP-to-CoAP on the admin
     * port), NULL for none; an explicit identity replacing a file entry
     * without one keeps the file's. */
    const uint8_t *http_token_sha256;
} tether_creds_entry_t;

/* Loads a credentials file. On failure returns TETHER_ECONFIG with a
 * message naming the file and entry in err[errcap]. */
TETHER_API int tether_creds_load(const char *path, tether_creds_t **out, char *err, size_t errcap);
/* A new set: every entry of `base` (which is left alone) except those
 * `extra` names again, plus `extra`: an identity (or derived prefix) in
 * both takes extra's key, role and rules; x509 entries come from base.
 * 0, TETHER_EINVAL (an empty or too long identity, a bad key length, two
 * identities whose digests collide) or TETHER_ENOMEM. */
TETHER_API int tether_creds_overlay(const tether_creds_t *base, const tether_creds_entry_t *extra,
                                    size_t n, tether_creds_t **out);

/* An empty set (no identity is known). */
TETHER_API int tether_creds_empty(tether_creds_t **out);
TETHER_API void tether_creds_free(tether_creds_t *c);

/* Looks up the PSK for `identity`: an explicit entry first, then the
 * longest matching derived prefix (key = HMAC-SHA256(master, identity)).
 * Writes at most `cap` key bytes; TETHER_ENOTFOUND when unknown. */
TETHER_API int tether_creds_psk(const tether_creds_t *c, const char *identity, uint8_t *key,
                                size_t cap, size_t *key_len, tether_role_t *role);

/* The role `identity` has as a PSK peer (explicit entry, else the longest
 * derived prefix), without deriving its key. TETHER_ENOTFOUND when unknown. */
TETHER_API int tether_creds_role(const tether_creds_t *c, const char *identity,
                                 tether_role_t *role);

/* A 64-bit tag of the key material `identity`'s PSK comes from (its
 * explicit key, or the master and prefix of the derived entry that
 * matches), without deriving it: equal tags before and after a reload mean
 * the key did not change. TETHER_ENOTFOUND when unknown. */
TETHER_API int tether_creds_key_tag(const tether_creds_t *c, const char *identity, uint64_t *tag);

/* Access control (SPEC S4, S11): may `identity` send a request with CoAP
 * method code `method` to the device or group named `target`? Only the
 * "allow" rules of the identity's entry grant anything; an identity without
 * rules (every device, by default) may not act as a client. */
TETHER_API bool tether_creds_allowed(const tether_creds_t *c, const char *identity,
                                     const char *target, uint8_t method);
/* The same for a group request (draft-ietf-core-groupcomm-proxy): only
 * "groups" rules grant it. */
TETHER_API bool tether_creds_allowed_group(const tether_creds_t *c, const char *identity,
                                           const char *group, uint8_t method);

/* HTTP-to-CoAP (SPEC S11): the client identity whose entry carries the
 * bearer token tok[0..len) ("http_token" or "http_token_sha256" in the
 * file; only the SHA-256 is kept). Every entry with a token is compared,
 * each in constant time, so the time taken does not depend on which entry
 * (if any) matched or where the token first differs. Copies the identity
 * into identity[cap]. TETHER_ENOTFOUND when no entry has that token. */
TETHER_API int tether_creds_http_identity(const tether_creds_t *c, const char *tok, size_t len,
                                          char *identity, size_t cap);

/* The CoAP method code of an ACL method name ("GET" 1 .. "iPATCH" 7, as
 * the credentials file writes them); TETHER_ENOTFOUND for anything else. */
TETHER_API int tether_creds_method_code(const char *name);

#define TETHER_DERIVED_PSK_LEN 32

/* The fleet key of `identity`: HMAC-SHA256(master, identity) (SPEC S11).
 * Used by tether_creds_psk and by anything that plays a derived device. */
TETHER_API int tether_creds_derive_psk(const uint8_t *master, size_t master_len,
                                       const char *identity, uint8_t key[TETHER_DERIVED_PSK_LEN]);

/* Decodes a key written in hex as the credentials file does (even length,
 * 1..cap bytes); TETHER_EINVAL otherwise. */
TETHER_API int tether_creds_key_from_hex(const char *hex, uint8_t *out, size_t cap, size_t *len);

/* Number of explicit identities plus derived prefixes (for /stats). */
TETHER_API size_t tether_creds_count(const tether_creds_t *c);

/* Role of an X.509 peer whose verified certificate has subject CN `cn`
 * ("x509" entries: an exact identity first, then the longest matching
 * identity_prefix). TETHER_ENOTFOUND when the CN is not listed. */
TETHER_API int tether_creds_x509(const tether_creds_t *c, const char *cn, tether_role_t *role);

#endif
