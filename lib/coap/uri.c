/* tether — CoAP URI <-> Uri-* options (RFC 7252 §6.4 decomposition, §6.5
 * composition) and Uri-Path matching. No allocation: decoded option values
 * live in a caller-provided scratch buffer. */
#include "tether/coap.h"

#include <string.h>

#define COAP_DEFAULT_PORT 5683
#define COAPS_DEFAULT_PORT 5684
/* RFC 7252 §5.10: Uri-Host 1..255, Uri-Path and Uri-Query 0..255 bytes. */
#define URI_OPT_MAX_LEN 255

/* ---- character classes (RFC 3986 §2) ------------------------------------ */

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_unreserved(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(unsigned char c)
{
    return c != 0 && strchr("!$&'()*+,;=", c) != NULL;
}

/* reg-name characters, apart from pct-encoded. */
static bool is_host_char(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c);
}

/* Characters inside "[...]": IPv6address, IPvFuture and an RFC 6874 zone
 * identifier are all made of these (pct-encoded handled separately). */
static bool is_ip_literal_char(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':';
}

/* pchar, apart from pct-encoded. */
static bool is_pchar(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@';
}

/* query characters, apart from pct-encoded. */
static bool is_query_char(unsigned char c)
{
    return is_pchar(c) || c == '/' || c == '?';
}

/* The value of hex digit c into *v; false when c is not one. */
static bool hex_val(unsigned char c, int *v)
{
    if (is_digit(c)) {
        *v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
        *v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
        *v = c - 'A' + 10;
    } else {
        return false;
    }
    return true;
}

static unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* ---- decomposition ------------------------------------------------------ */

/* Options collected before any is added to the message, so that a failure
 * leaves the message untouched. */
typedef struct {
    uint8_t *scratch;
    size_t cap;
    size_t used;
    size_t max_opts; /* room left in the message */
    size_t n;
    struct {
        uint16_t num;
        size_t off;
        size_t len;
    } opts[TETHER_COAP_MAX_OPTS];
} uri_build_t;

static int build_push(uri_build_t *b, uint16_t num, size_t off, size_t len)
{
    if (b->n >= b->max_opts) {
        return TETHER_ENOSPC;
    }
    b->opts[b->n].num = num;
    b->opts[b->n].off = off;
    b->opts[b->n].len = len;
    b->n++;
    return TETHER_OK;
}

/* Percent-decode s[0..len) into scratch and record it as option `num`.
 * Every literal byte must satisfy `allowed`; `lower` folds ASCII letters to
 * lowercase after decoding. TETHER_EPROTO for a disallowed byte, a bad
 * escape or a value over 255 bytes; TETHER_ENOSPC when scratch or the
 * option table is full. */
static int build_decoded(uri_build_t *b, uint16_t num, const char *s, size_t len,
                         bool (*allowed)(unsigned char), bool lower)
{
    size_t start = b->used;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3) {
                return TETHER_EPROTO;
            }
            int hi, lo;
            if (!hex_val((unsigned char)s[i + 1], &hi) || !hex_val((unsigned char)s[i + 2], &lo)) {
                return TETHER_EPROTO;
            }
            c = (unsigned char)(hi << 4 | lo);
            i += 3;
        } else if (allowed(c)) {
            i++;
        } else {
            return TETHER_EPROTO;
        }
        if (b->used - start >= URI_OPT_MAX_LEN) {
            return TETHER_EPROTO;
        }
        if (b->used >= b->cap) {
            return TETHER_ENOSPC;
        }
        b->scratch[b->used++] = lower ? to_lower(c) : c;
    }
    return build_push(b, num, start, b->used - start);
}

/* Split s[0..len) at every `sep` and record each piece as option `num`. */
static int build_split(uri_build_t *b, uint16_t num, const char *s, size_t len, char sep,
                       bool (*allowed)(unsigned char))
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == sep) {
            int rc = build_decoded(b, num, s + start, i - start, allowed, false);
            if (rc != TETHER_OK) {
                return rc;
            }
            start = i + 1;
        }
    }
    return TETHER_OK;
}

static bool ci_prefix(const char *s, size_t len, const char *prefix)
{
    size_t plen = strlen(prefix);
    if (len < plen) {
        return false;
    }
    for (size_t i = 0; i < plen; i++) {
        if (to_lower((unsigned char)s[i]) != (unsigned char)prefix[i]) {
            return false;
        }
    }
    return true;
}

/* Parse the authority uri[0..len) ("host[:port]" or "[literal][:port]")
 * into Uri-Host and, when not the default, Uri-Port. */
static int build_authority(uri_build_t *b, const char *a, size_t len, uint16_t default_port)
{
    const char *port = NULL;
    size_t port_len = 0;
    int rc;

    if (len > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (close == NULL || close == a + 1) {
            return TETHER_EPROTO;
        }
        size_t hlen = (size_t)(close - a) - 1;
        size_t rest = len - hlen - 2;
        if (rest > 0) {
            if (close[1] != ':') {
                return TETHER_EPROTO;
            }
            port = close + 2;
            port_len = rest - 1;
        }
        rc = build_decoded(b, TETHER_COAP_OPT_URI_HOST, a + 1, hlen, is_ip_literal_char, false);
    } else {
        const char *colon = memchr(a, ':', len);
        size_t hlen = colon != NULL ? (size_t)(colon - a) : len;
        if (colon != NULL) {
            port = colon + 1;
            port_len = len - hlen - 1;
        }
        if (hlen == 0) {
            return TETHER_EPROTO;
        }
        /* RFC 7252 §6.3: the host is case-insensitive; lowercase is canonical. */
        rc = build_decoded(b, TETHER_COAP_OPT_URI_HOST, a, hlen, is_host_char, true);
    }
    if (rc != TETHER_OK) {
        return rc;
    }
    /* port = *DIGIT; an empty port means the default (RFC 3986 §3.2.3). */
    uint32_t pv = default_port;
    if (port_len > 0) {
        pv = 0;
        for (size_t i = 0; i < port_len; i++) {
            if (!is_digit((unsigned char)port[i])) {
                return TETHER_EPROTO;
            }
            pv = pv * 10 + (uint32_t)(port[i] - '0');
            if (pv > 65535) {
                return TETHER_EPROTO;
            }
        }
    }
    if (pv == default_port) {
        return TETHER_OK;
    }
    /* Minimal big-endian uint (RFC 7252 §3.2); port 0 is the empty value. */
    size_t vlen = pv > 255 ? 2 : (pv > 0 ? 1 : 0);
    if (b->cap - b->used < vlen) {
        return TETHER_ENOSPC;
    }
    size_t off = b->used;
    if (vlen == 2) {
        b->scratch[b->used++] = (uint8_t)(pv >> 8);
    }
    if (vlen >= 1) {
        b->scratch[b->used++] = (uint8_t)pv;
    }
    return build_push(b, TETHER_COAP_OPT_URI_PORT, off, vlen);
}

/* RFC 7252 §6.4. The URI is validated completely and every option value is
 * decoded into scratch before anything is added, so on error `msg` is
 * unchanged. Beyond the header's contract: a URI with userinfo, an empty
 * host, a port over 65535, a character RFC 3986 does not allow in its
 * component, or an option value over 255 bytes is TETHER_EPROTO; "?"
 * followed by nothing yields one empty Uri-Query (step 9 applied as
 * written). `is_secure` may be NULL. */
int tether_coap_uri_to_opts(const char *uri, size_t uri_len, tether_coap_msg_t *msg,
                            uint8_t *scratch, size_t cap, bool *is_secure)
{
    if (uri == NULL || msg == NULL || (scratch == NULL && cap > 0)) {
        return TETHER_EINVAL;
    }

    bool secure;
    size_t i;
    if (ci_prefix(uri, uri_len, "coaps:")) {
        secure = true;
        i = 6;
    } else if (ci_prefix(uri, uri_len, "coap:")) {
        secure = false;
        i = 5;
    } else {
        return TETHER_EPROTO; /* relative reference or another scheme */
    }
    if (memchr(uri, '#', uri_len) != NULL) {
        return TETHER_EPROTO;
    }
    if (uri_len - i < 2 || uri[i] != '/' || uri[i + 1] != '/') {
        return TETHER_EPROTO;
    }
    i += 2;

    uri_build_t b = {
        .scratch = scratch,
        .cap = cap,
        .max_opts = msg->nopts < TETHER_COAP_MAX_OPTS ? TETHER_COAP_MAX_OPTS - msg->nopts : 0,
    };

    size_t auth = i;
    while (i < uri_len && uri[i] != '/' && uri[i] != '?') {
        i++;
    }
    int rc =
        build_authority(&b, uri + auth, i - auth, secure ? COAPS_DEFAULT_PORT : COAP_DEFAULT_PORT);
    if (rc != TETHER_OK) {
        return rc;
    }

    size_t path = i;
    while (i < uri_len && uri[i] != '?') {
        i++;
    }
    size_t path_len = i - path;
    /* A path of "" or "/" carries no Uri-Path; otherwise every segment
     * after the leading '/' is one option, empty ones included. */
    if (path_len > 1) {
        rc = build_split(&b, TETHER_COAP_OPT_URI_PATH, uri + path + 1, path_len - 1, '/', is_pchar);
        if (rc != TETHER_OK) {
            return rc;
        }
    }
    if (i < uri_len) {
        i++; /* '?' */
        rc = build_split(&b, TETHER_COAP_OPT_URI_QUERY, uri + i, uri_len - i, '&', is_query_char);
        if (rc != TETHER_OK) {
            return rc;
        }
    }

    for (size_t k = 0; k < b.n; k++) {
        rc = tether_coap_msg_add_opt(msg, b.opts[k].num, scratch + b.opts[k].off, b.opts[k].len);
        if (rc != TETHER_OK) {
            return rc;
        }
    }
    if (is_secure != NULL) {
        *is_secure = secure;
    }
    return TETHER_OK;
}

/* ---- composition -------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
} uri_out_t;

static void out_char(uri_out_t *o, char c)
{
    if (o->len < o->cap) {
        o->buf[o->len] = c;
    }
    o->len++;
}

/* Append val[0..len), percent-encoding every byte that `allowed` rejects
 * (and '%' itself). */
static void out_encoded(uri_out_t *o, const uint8_t *val, size_t len,
                        bool (*allowed)(unsigned char))
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t k = 0; k < len; k++) {
        unsigned char c = val[k];
        if (allowed(c)) {
            out_char(o, (char)c);
        } else {
            out_char(o, '%');
            out_char(o, hex[c >> 4]);
            out_char(o, hex[c & 0x0f]);
        }
    }
}

/* A query argument may hold every query character except '&', which
 * separates arguments. */
static bool is_query_arg_char(unsigned char c)
{
    return c != '&' && is_query_char(c);
}

static size_t opt_count(const tether_coap_msg_t *msg)
{
    return msg->nopts < TETHER_COAP_MAX_OPTS ? msg->nopts : TETHER_COAP_MAX_OPTS;
}

/* RFC 7252 §6.5 steps 7-8, path and query only. *out_len receives the
 * length also on TETHER_ENOSPC (then it is the length needed, without the
 * NUL), so a caller can size its buffer. */
int tether_coap_opts_to_path(const tether_coap_msg_t *msg, char *buf, size_t cap, size_t *out_len)
{
    if (msg == NULL || out_len == NULL || (buf == NULL && cap > 0)) {
        return TETHER_EINVAL;
    }
    uri_out_t o = { .buf = buf, .cap = cap, .len = 0 };
    size_t nopts = opt_count(msg);

    size_t npath = 0;
    for (size_t k = 0; k < nopts; k++) {
        const tether_coap_opt_t *opt = &msg->opts[k];
        if (opt->num == TETHER_COAP_OPT_URI_PATH) {
            out_char(&o, '/');
            out_encoded(&o, opt->val, opt->len, is_pchar);
            npath++;
        }
    }
    if (npath == 0) {
        out_char(&o, '/');
    }
    size_t nquery = 0;
    for (size_t k = 0; k < nopts; k++) {
        const tether_coap_opt_t *opt = &msg->opts[k];
        if (opt->num == TETHER_COAP_OPT_URI_QUERY) {
            out_char(&o, nquery == 0 ? '?' : '&');
            out_encoded(&o, opt->val, opt->len, is_query_arg_char);
            nquery++;
        }
    }

    *out_len = o.len;
    if (o.len >= cap) {
        return TETHER_ENOSPC;
    }
    buf[o.len] = '\0';
    return TETHER_OK;
}

/* Index of the first Uri-Path option at or after `k`, or `nopts`. */
static size_t next_path_opt(const tether_coap_msg_t *msg, size_t k, size_t nopts)
{
    while (k < nopts && msg->opts[k].num != TETHER_COAP_OPT_URI_PATH) {
        k++;
    }
    return k;
}

/* Compare the Uri-Path options of `msg`, in order, with the segments of
 * `path` split at '/'. The text is compared as is (no percent-decoding).
 * One leading '/' is ignored, so "/a/b" equals "a/b" and "/" equals "";
 * a trailing '/' means a final empty segment, as in decomposition. A NULL
 * `path` is "". */
bool tether_coap_path_equals(const tether_coap_msg_t *msg, const char *path)
{
    if (msg == NULL) {
        return false;
    }
    if (path == NULL) {
        path = "";
    }
    if (path[0] == '/') {
        path++;
    }
    size_t nopts = opt_count(msg);
    size_t k = next_path_opt(msg, 0, nopts);
    if (path[0] != '\0') {
        const char *p = path;
        for (;;) {
            const char *slash = strchr(p, '/');
            size_t seg_len = slash != NULL ? (size_t)(slash - p) : strlen(p);
            if (k >= nopts) {
                return false;
            }
            const tether_coap_opt_t *opt = &msg->opts[k];
            if (opt->len != seg_len || (seg_len > 0 && memcmp(opt->val, p, seg_len) != 0)) {
                return false;
            }
            k = next_path_opt(msg, k + 1, nopts);
            if (slash == NULL) {
                break;
            }
            p = slash + 1;
        }
    }
    return k >= nopts;
}
