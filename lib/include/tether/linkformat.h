/* tether — RFC 6690 CoRE Link Format parse and serialise (sans-I/O, no
 * allocation). Parsed links point into the caller's buffer. */
#ifndef TETHER_LINKFORMAT_H
#define TETHER_LINKFORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include "tether/common.h"

#define TETHER_LF_MAX_ATTRS 16

/* One attribute: `name` or `name=value` or `name="value"`. For a quoted
 * value, `val` excludes the quotes and may still contain backslash escapes
 * (`quoted` tells); tether_lf_unquote() resolves them. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *val; /* NULL when the attribute has no value */
    size_t val_len;
    bool quoted;
} tether_lf_attr_t;

typedef struct {
    const char *target; /* URI-Reference between '<' and '>' */
    size_t target_len;
    size_t nattrs;
    tether_lf_attr_t attrs[TETHER_LF_MAX_ATTRS];
} tether_lf_link_t;

/* Parse a link-format document into links[cap]. *n receives the count.
 * TETHER_EPROTO on a syntax error (*err_off receives the byte offset when
 * err_off is not NULL); TETHER_ENOSPC when there are more than `cap` links
 * or more than TETHER_LF_MAX_ATTRS attributes on one link. An empty
 * document is valid and has zero links. */
TETHER_API int tether_lf_parse(const char *buf, size_t len, tether_lf_link_t *links, size_t cap,
                               size_t *n, size_t *err_off);

/* Value of attribute `name` on `link`, or NULL (first match). */
TETHER_API const tether_lf_attr_t *tether_lf_find_attr(const tether_lf_link_t *link,
                                                       const char *name);

/* Resolve backslash escapes of a quoted value into out[cap]; *out_len
 * receives the length. TETHER_ENOSPC when it does not fit. */
TETHER_API int tether_lf_unquote(const tether_lf_attr_t *attr, char *out, size_t cap,
                                 size_t *out_len);

/* Serialise links into buf[cap] as "<t>;a=v;b=\"w\",<...>". Quoted values
 * are escaped; an attribute value is quoted when `quoted` is set or when it
 * contains characters that a bare ptoken cannot hold. *out_len receives the
 * length; a NUL is written when there is room. TETHER_ENOSPC if too small. */
TETHER_API int tether_lf_serialize(const tether_lf_link_t *links, size_t n, char *buf, size_t cap,
                                   size_t *out_len);

#endif
