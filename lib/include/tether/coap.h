/* tether — sans-I/O CoAP message codec (RFC 7252, 7641, 7959, 7967, 9175).
 *
 * A parsed message points into the caller's datagram (zero copy): the
 * datagram must outlive the message. A message built for sending points to
 * option values owned by the caller. Nothing here allocates.
 */
#ifndef TETHER_COAP_H
#define TETHER_COAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"

#define TETHER_COAP_VERSION 1
#define TETHER_COAP_MAX_TOKEN 8
/* More options than this in one message is refused (4.02 / RST): a bound on
 * per-message work, well above what real requests carry. */
#define TETHER_COAP_MAX_OPTS 64
#define TETHER_COAP_HDR_SIZE 4

typedef enum {
    TETHER_COAP_CON = 0,
    TETHER_COAP_NON = 1,
    TETHER_COAP_ACK = 2,
    TETHER_COAP_RST = 3,
} tether_coap_type_t;

/* Code = class << 5 | detail. */
#define TETHER_COAP_CODE(c, d) ((uint8_t)(((c) << 5) | (d)))
#define TETHER_COAP_CLASS(code) ((code) >> 5)
#define TETHER_COAP_DETAIL(code) ((code)&0x1f)

enum {
    TETHER_COAP_EMPTY = 0,
    TETHER_COAP_GET = 1,
    TETHER_COAP_POST = 2,
    TETHER_COAP_PUT = 3,
    TETHER_COAP_DELETE = 4,
    TETHER_COAP_FETCH = 5,
    TETHER_COAP_PATCH = 6,
    TETHER_COAP_IPATCH = 7,

    TETHER_COAP_CREATED = TETHER_COAP_CODE(2, 1),
    TETHER_COAP_DELETED = TETHER_COAP_CODE(2, 2),
    TETHER_COAP_VALID = TETHER_COAP_CODE(2, 3),
    TETHER_COAP_CHANGED = TETHER_COAP_CODE(2, 4),
    TETHER_COAP_CONTENT = TETHER_COAP_CODE(2, 5),
    TETHER_COAP_CONTINUE = TETHER_COAP_CODE(2, 31),
    TETHER_COAP_BAD_REQUEST = TETHER_COAP_CODE(4, 0),
    TETHER_COAP_UNAUTHORIZED = TETHER_COAP_CODE(4, 1),
    TETHER_COAP_BAD_OPTION = TETHER_COAP_CODE(4, 2),
    TETHER_COAP_FORBIDDEN = TETHER_COAP_CODE(4, 3),
    TETHER_COAP_NOT_FOUND = TETHER_COAP_CODE(4, 4),
    TETHER_COAP_METHOD_NOT_ALLOWED = TETHER_COAP_CODE(4, 5),
    TETHER_COAP_NOT_ACCEPTABLE = TETHER_COAP_CODE(4, 6),
    TETHER_COAP_REQUEST_INCOMPLETE = TETHER_COAP_CODE(4, 8),
    TETHER_COAP_PRECONDITION_FAILED = TETHER_COAP_CODE(4, 12),
    TETHER_COAP_REQUEST_TOO_LARGE = TETHER_COAP_CODE(4, 13),
    TETHER_COAP_UNSUPPORTED_FORMAT = TETHER_COAP_CODE(4, 15),
    TETHER_COAP_TOO_MANY_REQUESTS = TETHER_COAP_CODE(4, 29), /* RFC 8516 */
    TETHER_COAP_INTERNAL_ERROR = TETHER_COAP_CODE(5, 0),
    TETHER_COAP_NOT_IMPLEMENTED = TETHER_COAP_CODE(5, 1),
    TETHER_COAP_BAD_GATEWAY = TETHER_COAP_CODE(5, 2),
    TETHER_COAP_SERVICE_UNAVAILABLE = TETHER_COAP_CODE(5, 3),
    TETHER_COAP_GATEWAY_TIMEOUT = TETHER_COAP_CODE(5, 4),
    TETHER_COAP_PROXYING_NOT_SUPPORTED = TETHER_COAP_CODE(5, 5),
};

/* Option numbers (IANA CoAP Option Numbers registry). */
enum {
    TETHER_COAP_OPT_IF_MATCH = 1,
    TETHER_COAP_OPT_URI_HOST = 3,
    TETHER_COAP_OPT_ETAG = 4,
    TETHER_COAP_OPT_IF_NONE_MATCH = 5,
    TETHER_COAP_OPT_OBSERVE = 6,
    TETHER_COAP_OPT_URI_PORT = 7,
    TETHER_COAP_OPT_LOCATION_PATH = 8,
    TETHER_COAP_OPT_OSCORE = 9,
    TETHER_COAP_OPT_URI_PATH = 11,
    TETHER_COAP_OPT_CONTENT_FORMAT = 12,
    TETHER_COAP_OPT_MAX_AGE = 14,
    TETHER_COAP_OPT_URI_QUERY = 15,
    TETHER_COAP_OPT_ACCEPT = 17,
    TETHER_COAP_OPT_LOCATION_QUERY = 20,
    TETHER_COAP_OPT_BLOCK2 = 23,
    TETHER_COAP_OPT_BLOCK1 = 27,
    TETHER_COAP_OPT_SIZE2 = 28,
    TETHER_COAP_OPT_PROXY_URI = 35,
    TETHER_COAP_OPT_PROXY_SCHEME = 39,
    TETHER_COAP_OPT_SIZE1 = 60,
    TETHER_COAP_OPT_ECHO = 252,
    TETHER_COAP_OPT_NO_RESPONSE = 258,
    TETHER_COAP_OPT_REQUEST_TAG = 292,
    /* draft-ietf-core-groupcomm-proxy: numbers not yet assigned by IANA, so
     * they are configurable (tether_coap_optreg_init); these are defaults. */
    TETHER_COAP_OPT_MULTICAST_TIMEOUT_DEFAULT = 2,
    TETHER_COAP_OPT_REPLY_FROM_DEFAULT = 248,
    TETHER_COAP_OPT_GROUP_ETAG_DEFAULT = 24, /* tether_coap_optreg_add */
};

/* Content-Format numbers used by tether itself. */
enum {
    TETHER_COAP_CF_TEXT = 0,
    TETHER_COAP_CF_LINK_FORMAT = 40,
    TETHER_COAP_CF_OCTET_STREAM = 42,
    TETHER_COAP_CF_JSON = 50,
    TETHER_COAP_CF_CBOR = 60,
};

/* Properties encoded in the option number itself (RFC 7252 §5.4.6). */
static inline bool tether_coap_opt_critical(uint16_t num) { return (num & 1) != 0; }
static inline bool tether_coap_opt_unsafe(uint16_t num) { return (num & 2) != 0; }
static inline bool tether_coap_opt_nocachekey(uint16_t num) { return (num & 0x1e) == 0x1c; }

typedef struct {
    uint16_t num;
    uint16_t len;
    const uint8_t *val;
} tether_coap_opt_t;

/* A message. Options are kept sorted by number (stable for repeats). */
typedef struct {
    uint8_t type; /* tether_coap_type_t */
    uint8_t code;
    uint16_t mid;
    uint8_t tkl;
    uint8_t token[TETHER_COAP_MAX_TOKEN];
    uint16_t nopts;
    tether_coap_opt_t opts[TETHER_COAP_MAX_OPTS];
    const uint8_t *payload;
    size_t payload_len;
} tether_coap_msg_t;

/* Why a datagram was rejected by the parser or the option check. */
typedef enum {
    TETHER_COAP_PERR_NONE = 0,
    TETHER_COAP_PERR_TRUNCATED,       /* shorter than header + token, or option runs past end */
    TETHER_COAP_PERR_VERSION,         /* version != 1 */
    TETHER_COAP_PERR_TKL,             /* token length 9..15 */
    TETHER_COAP_PERR_CODE_CLASS,      /* reserved class 1, 6 or 7 */
    TETHER_COAP_PERR_EMPTY_NOT_EMPTY, /* code 0.00 with token, options or payload */
    TETHER_COAP_PERR_OPT_DELTA,       /* option delta nibble 15 without payload marker */
    TETHER_COAP_PERR_OPT_LENGTH,      /* option length nibble 15 */
    TETHER_COAP_PERR_OPT_NUMBER,      /* option number beyond 65535 */
    TETHER_COAP_PERR_PAYLOAD_MARKER,  /* 0xFF followed by zero-length payload */
    TETHER_COAP_PERR_TOO_MANY_OPTS,   /* more than TETHER_COAP_MAX_OPTS */
    TETHER_COAP_PERR_BAD_OPTION,      /* unrecognised critical option or bad value length */
} tether_coap_perr_t;

/* What the receiver does with a rejected message (RFC 7252 §4.2, 4.3, 5.4.1). */
typedef enum {
    TETHER_COAP_REJECT_DROP = 0,    /* silently ignore */
    TETHER_COAP_REJECT_RST,         /* answer with an RST carrying the MID */
    TETHER_COAP_REJECT_BAD_OPTION,  /* answer 4.02 Bad Option (piggybacked for CON) */
    TETHER_COAP_REJECT_BAD_REQUEST, /* answer 4.00 Bad Request */
} tether_coap_reject_t;

TETHER_API const char *tether_coap_perr_str(tether_coap_perr_t e);

/* Parse one datagram into `msg`. Returns 0, or TETHER_EPROTO with *perr set.
 * On failure the header fields that could be read (type, mid) are still
 * filled in so the caller can build an RST. */
TETHER_API int tether_coap_parse(tether_coap_msg_t *msg, const uint8_t *buf, size_t len,
                                 tether_coap_perr_t *perr);

/* Serialise `msg` into buf[cap]; *out_len receives the size.
 * TETHER_ENOSPC if it does not fit, TETHER_EINVAL for an impossible message
 * (tkl > 8, option value > 65535+269 bytes). */
TETHER_API int tether_coap_encode(const tether_coap_msg_t *msg, uint8_t *buf, size_t cap,
                                  size_t *out_len);

/* Exact serialised size of `msg` (cannot fail: a length, not an error code). */
TETHER_API size_t tether_coap_encoded_size(const tether_coap_msg_t *msg);

/* Decide the reaction to a parse or option-check failure for a message of
 * the given type and code, per RFC 7252. */
TETHER_API tether_coap_reject_t tether_coap_reject_action(const tether_coap_msg_t *msg,
                                                          tether_coap_perr_t perr);

/* Reset `msg` to an empty message of the given type/code/mid with no token. */
TETHER_API void tether_coap_msg_init(tether_coap_msg_t *msg, uint8_t type, uint8_t code,
                                     uint16_t mid);
TETHER_API int tether_coap_msg_set_token(tether_coap_msg_t *msg, const uint8_t *tok, size_t len);

/* Insert an option keeping the array sorted; repeats keep insertion order.
 * `val` is referenced, not copied. TETHER_ENOSPC when the array is full. */
TETHER_API int tether_coap_msg_add_opt(tether_coap_msg_t *msg, uint16_t num, const void *val,
                                       size_t len);
/* Remove every instance of option `num`; returns how many were removed. */
TETHER_API int tether_coap_msg_del_opt(tether_coap_msg_t *msg, uint16_t num);
/* First instance of option `num`, or NULL. */
TETHER_API const tether_coap_opt_t *tether_coap_msg_find_opt(const tether_coap_msg_t *msg,
                                                             uint16_t num);
/* Next instance of the same number after `prev` (which must point into msg->opts). */
TETHER_API const tether_coap_opt_t *tether_coap_msg_next_opt(const tether_coap_msg_t *msg,
                                                             const tether_coap_opt_t *prev);

/* Unsigned-integer option values (RFC 7252 §3.2: minimal big-endian, 0 is empty). */
/* Writes v into out and returns its length, 0..4 (cannot fail). */
TETHER_API size_t tether_coap_uint_encode(uint32_t v, uint8_t out[4]);
/* TETHER_EPROTO when longer than 4 bytes. */
TETHER_API int tether_coap_uint_decode(const uint8_t *val, size_t len, uint32_t *out);
/* Convenience: decode option `num` of `msg`; TETHER_ENOTFOUND when absent. */
TETHER_API int tether_coap_msg_get_uint(const tether_coap_msg_t *msg, uint16_t num,
                                        uint32_t *out);

/* ---- Option registry ---------------------------------------------------- */

typedef enum {
    TETHER_COAP_FMT_EMPTY,
    TETHER_COAP_FMT_OPAQUE,
    TETHER_COAP_FMT_UINT,
    TETHER_COAP_FMT_STRING,
} tether_coap_fmt_t;

typedef struct {
    uint16_t num;
    const char *name;
    uint8_t fmt; /* tether_coap_fmt_t */
    bool repeatable;
    uint16_t min_len;
    uint16_t max_len;
} tether_coap_optdef_t;

#define TETHER_COAP_OPTREG_MAX 40

/* The set of options this endpoint recognises. Two numbers are
 * configurable because their IANA assignment is pending. */
typedef struct {
    size_t n;
    tether_coap_optdef_t defs[TETHER_COAP_OPTREG_MAX]; /* sorted by num */
    uint16_t multicast_timeout;
    uint16_t reply_from;
} tether_coap_optreg_t;

/* Fill `reg` with the built-in options plus Multicast-Timeout and
 * Reply-From at the given numbers. TETHER_EINVAL when a configurable number
 * collides with a built-in one or is 0. */
TETHER_API int tether_coap_optreg_init(tether_coap_optreg_t *reg, uint16_t multicast_timeout,
                                       uint16_t reply_from);
/* Adds option `def` (one more of the draft's, e.g. Group-ETag) to an
 * initialised `reg`. TETHER_EINVAL when its number is 0 or taken;
 * TETHER_ENOSPC when the registry is full. */
TETHER_API int tether_coap_optreg_add(tether_coap_optreg_t *reg, const tether_coap_optdef_t *def);
TETHER_API const tether_coap_optdef_t *tether_coap_optreg_find(const tether_coap_optreg_t *reg,
                                                               uint16_t num);

/* Check options against the registry (RFC 7252 §5.4.1, 5.4.3, 5.4.5):
 * an unrecognised critical option, a recognised critical option with a bad
 * length, or a repeated non-repeatable critical option fails with
 * TETHER_EPROTO and *bad_opt set. Elective problems are not errors: the
 * caller ignores those options (tether_coap_opt_usable). */
TETHER_API int tether_coap_check_opts(const tether_coap_optreg_t *reg,
                                      const tether_coap_msg_t *msg, uint16_t *bad_opt);
/* True when the option is recognised and its value length is in range. */
TETHER_API bool tether_coap_opt_usable(const tether_coap_optreg_t *reg,
                                       const tether_coap_opt_t *opt);

/* ---- Block-wise (RFC 7959) ------------------------------------------------ */

typedef struct {
    uint32_t num; /* block number, < 2^20 */
    bool more;
    uint8_t szx; /* size exponent 0..6; block size = 16 << szx */
} tether_coap_block_t;

static inline size_t tether_coap_block_size(uint8_t szx) { return (size_t)16 << szx; }
/* TETHER_EPROTO for a value over 3 bytes or SZX 7 (reserved on UDP). */
TETHER_API int tether_coap_block_decode(const uint8_t *val, size_t len, tether_coap_block_t *out);
/* Encodes minimal; returns the length (0..3) in *out_len. */
TETHER_API int tether_coap_block_encode(const tether_coap_block_t *b, uint8_t out[3],
                                        size_t *out_len);
/* szx for a byte size: the largest block size <= size, clamped to 16..1024. */
TETHER_API uint8_t tether_coap_block_szx_for(size_t size);

/* ---- Observe (RFC 7641) --------------------------------------------------- */

/* True when a notification (v2 received at t2) is newer than (v1 at t1)
 * per RFC 7641 §3.4; t in milliseconds. Sequence numbers are 24-bit. */
TETHER_API bool tether_coap_observe_newer(uint32_t v1, tether_time_t t1, uint32_t v2,
                                          tether_time_t t2);

/* ---- URI <-> options (RFC 7252 §6.4, §6.5) ------------------------------- */

/* Decompose an absolute coap/coaps URI into Uri-Host, Uri-Port, Uri-Path and
 * Uri-Query options appended to `msg`. Percent-decoded values are written
 * into scratch[cap] (the options point there). Uri-Port is added only when
 * it differs from the scheme default. TETHER_EPROTO for a relative URI, a
 * fragment, an unknown scheme or bad percent-encoding; TETHER_ENOSPC when
 * scratch or the option array is too small. *is_secure tells coaps. */
TETHER_API int tether_coap_uri_to_opts(const char *uri, size_t uri_len, tether_coap_msg_t *msg,
                                       uint8_t *scratch, size_t cap, bool *is_secure);

/* Compose the path-and-query part ("/a/b?x=1") of `msg` into buf[cap]
 * (NUL-terminated), percent-encoding as §6.5 requires. An empty path is
 * "/". *out_len excludes the NUL. */
TETHER_API int tether_coap_opts_to_path(const tether_coap_msg_t *msg, char *buf, size_t cap,
                                        size_t *out_len);

/* True when the Uri-Path options of `msg` equal the '/'-separated `path`
 * (e.g. ".well-known/core"; "" matches no Uri-Path). */
TETHER_API bool tether_coap_path_equals(const tether_coap_msg_t *msg, const char *path);

/* ---- Helpers -------------------------------------------------------------- */

/* "2.05"-style text for a code into buf (at least 5 bytes). */
TETHER_API const char *tether_coap_code_str(uint8_t code, char buf[6]);
static inline bool tether_coap_is_request(uint8_t code)
{
    return TETHER_COAP_CLASS(code) == 0 && code != 0;
}
static inline bool tether_coap_is_response(uint8_t code)
{
    return TETHER_COAP_CLASS(code) >= 2 && TETHER_COAP_CLASS(code) <= 5;
}

#endif
