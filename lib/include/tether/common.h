/* tether — common definitions shared by every public header. */
#ifndef TETHER_COMMON_H
#define TETHER_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define TETHER_API __attribute__((visibility("default")))
#else
#define TETHER_API
#endif

/* One error convention across the library: 0 is success, negative values
 * are TETHER_E* codes. Functions that return a length return it through an
 * out parameter so the return value stays an error code. The exceptions
 * are functions that cannot fail and say so in their comment: they return
 * a length, count or key size directly (tether_coap_encoded_size,
 * tether_coap_uint_encode, tether_link_key, tether_cache_etag,
 * tether_cache_invalidate, the *_out_count accessors); lookups return a
 * pointer (NULL: absent) and predicates a bool. */
enum {
    TETHER_OK = 0,
    TETHER_EINVAL = -1,    /* bad argument from the caller */
    TETHER_ENOMEM = -2,    /* allocation failed */
    TETHER_ENOSPC = -3,    /* output buffer or table too small */
    TETHER_EPROTO = -4,    /* malformed input from the network */
    TETHER_ENOTFOUND = -5, /* lookup missed */
    TETHER_EEXIST = -6,    /* already present */
    TETHER_ELIMIT = -7,    /* a configured bound was reached */
    TETHER_EIO = -8,       /* I/O or system call failure */
    TETHER_ECONFIG = -9,   /* configuration rejected */
    TETHER_ETIMEDOUT = -10,
    TETHER_EAGAIN = -11, /* no progress possible now; try later */
    TETHER_ECRYPTO = -12, /* TLS / crypto failure */
    TETHER_ECONFLICT = -13, /* compare-and-set lost: the version was not the expected one */
};

/* Human-readable name of a TETHER_E* code (never NULL). */
TETHER_API const char *tether_strerror(int err);

/* Monotonic time in milliseconds. The library never reads a clock itself:
 * every time-dependent function takes `now` from the caller. */
typedef uint64_t tether_time_t;

#endif
