/* A look at a ClientHello before wolfSSL sees it (sans-I/O, no state).
 *
 * The stateless listener has to decide a few things about a hello that
 * wolfSSL does not expose: whether it returns a cookie (only then is the
 * previous cookie secret worth a second try), which TLS 1.3 PSK suite it
 * offers (wolfSSL ties a PSK to one suite, chosen by our callback), and how
 * many PSK identities it offers (each one costs a credentials lookup, and a
 * key derivation for derived fleets, before any binder is checked: SPEC
 * S10 bounds that work for a sender that has proved nothing).
 *
 * Wire format (RFC 6347 §4.2.2 / RFC 9147 §5.3, RFC 8446 §4.1.2):
 *   record header (13) | handshake header (12) | client_version (2) |
 *   random (32) | session_id <0..32> | cookie <0..2^8-1> |
 *   cipher_suites <2..2^16-2> | compression_methods <1..2^8-1> |
 *   extensions <0..2^16-1>
 * with the cookie extension (44, RFC 8446 §4.2.2) and pre_shared_key (41,
 * §4.2.11: identities <7..2^16-1> of {identity <1..2^16-1>, uint32 age},
 * then binders).
 */
#ifndef TETHER_DTLS_HELLO_H
#define TETHER_DTLS_HELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    bool has_cookie;         /* legacy cookie field or DTLS 1.3 cookie extension */
    const char *psk13_suite; /* wolfSSL name of the TLS 1.3 PSK suite to use, NULL = default */
    unsigned psk_identities; /* identities in pre_shared_key (0 without one) */
    bool fragment;           /* only the first fragment of a larger hello was seen */
} tether_hello_t;

/* Scans one datagram that starts with a plaintext handshake record holding
 * a ClientHello, whole or its first fragment (a first fragment is scanned
 * as far as it goes: pre_shared_key, always the last extension, is then
 * usually not in it, and wolfSSL's per-handshake PSK lookups are capped
 * separately). Returns 0 and fills `out`, or TETHER_EPROTO when the
 * datagram is not such a hello, is a later fragment (which cannot start a
 * handshake), or is malformed; `out` is then zeroed. */
int tether_hello_scan(const uint8_t *buf, size_t len, tether_hello_t *out);

#endif
