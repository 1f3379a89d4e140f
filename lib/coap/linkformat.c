/* tether — RFC 6690 CoRE Link Format parse and serialise.
 *
 * Grammar accepted (RFC 6690 §2, RFC 8288 §3, quoted-string per RFC 7230):
 *
 *   document  = [ link *( "," link ) ]
 *   link      = "<" target ">" *( ";" attr )
 *   target    = *uri-char            (RFC 3986 URI-Reference characters)
 *   attr      = name [ "=" ( ptoken / quoted-string ) ]
 *   name      = 1*parmname-char [ "*" ]
 *
 * No whitespace is accepted anywhere outside a quoted-string: the RFC 6690
 * ABNF has none, and the line breaks in the RFC's examples are for display.
 *
 * The struct semantics are the same in both directions: when `quoted` is
 * set, `val` is the content of a quoted-string as it appears on the wire
 * (backslash escapes included); when it is clear, `val` is plain text. So a
 * parsed document serialises back byte for byte.
 */
#include "tether/linkformat.h"

#include <string.h>

/* RFC 6690 ptokenchar: printable ASCII except '"', ',', ';' and '\'. */
static bool is_ptoken_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 8187 attr-char, the characters of a parmname. */
static bool is_parmname_char(unsigned char c)
{
    return is_alnum(c) || (c != 0 && strchr("!#$&+-.^_`|~", c) != NULL);
}

/* Characters that may appear in an RFC 3986 URI-Reference. */
static bool is_uri_char(unsigned char c)
{
    return is_alnum(c) || (c != 0 && strchr("-._~:/?#[]@!$&'()*+,;=%", c) != NULL);
}

/* RFC 7230 qdtext (without the escape character). */
static bool is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

/* RFC 7230: the character after a backslash in a quoted-pair. */
static bool is_qpair_char(unsigned char c)
{
    return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Length of a valid attribute name starting at s[0..len), or 0 if there is
 * none. A trailing '*' (RFC 8288 ext-name-star) belongs to the name. */
static size_t scan_name(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_parmname_char((unsigned char)s[i])) {
        i++;
    }
    if (i > 0 && i < len && s[i] == '*') {
        i++;
    }
    return i;
}

/* Scan the content of a quoted-string; s[0] is just past the opening quote.
 * Returns the content length (the closing quote is at s[ret]), or sets
 * *bad to the offset of the first invalid byte, or to len when the string
 * is unterminated, and returns (size_t)-1. */
static size_t scan_quoted(const char *s, size_t len, size_t *bad)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') {
            return i;
        }
        if (c == '\\') {
            if (i + 1 >= len) {
                break;
            }
            if (!is_qpair_char((unsigned char)s[i + 1])) {
                *bad = i + 1;
                return (size_t)-1;
            }
            i += 2;
            continue;
        }
        if (!is_qdtext(c)) {
            *bad = i;
            return (size_t)-1;
        }
        i++;
    }
    *bad = len;
    return (size_t)-1;
}

static int proto_error(size_t *err_off, size_t off)
{
    if (err_off != NULL) {
        *err_off = off;
    }
    return TETHER_EPROTO;
}

/* Parse buf[0..len) into links[0..cap). On any error *n holds the number
 * of links completely parsed before it. For an unterminated '<' or quote
 * the error offset is that of the opening character; otherwise it is the
 * offset of the first byte that does not fit the grammar (len when the
 * document ends too early, e.g. after a trailing ',' or '='). */
int tether_lf_parse(const char *buf, size_t len, tether_lf_link_t *links, size_t cap, size_t *n,
                    size_t *err_off)
{
    if (n == NULL || (buf == NULL && len > 0) || (links == NULL && cap > 0)) {
        return TETHER_EINVAL;
    }
    *n = 0;
    if (len == 0) {
        return TETHER_OK;
    }

    size_t i = 0;
    size_t count = 0;
    for (;;) {
        /* link = "<" target ">" */
        if (i >= len || buf[i] != '<') {
            return proto_error(err_off, i);
        }
        size_t open = i++;
        size_t tstart = i;
        while (i < len && buf[i] != '>') {
            if (!is_uri_char((unsigned char)buf[i])) {
                return proto_error(err_off, i);
            }
            i++;
        }
        if (i >= len) {
            return proto_error(err_off, open);
        }
        if (count >= cap) {
            return TETHER_ENOSPC;
        }
        tether_lf_link_t *link = &links[count];
        link->target = buf + tstart;
        link->target_len = i - tstart;
        link->nattrs = 0;
        i++; /* '>' */

        /* *( ";" attr ) */
        while (i < len && buf[i] == ';') {
            i++;
            size_t nlen = scan_name(buf + i, len - i);
            if (nlen == 0) {
                return proto_error(err_off, i);
            }
            if (link->nattrs >= TETHER_LF_MAX_ATTRS) {
                return TETHER_ENOSPC;
            }
            tether_lf_attr_t *a = &link->attrs[link->nattrs];
            a->name = buf + i;
            a->name_len = nlen;
            a->val = NULL;
            a->val_len = 0;
            a->quoted = false;
            i += nlen;
            if (i < len && buf[i] == '=') {
                i++;
                if (i < len && buf[i] == '"') {
                    size_t q = i++;
                    size_t bad = 0;
                    size_t vlen = scan_quoted(buf + i, len - i, &bad);
                    if (vlen == (size_t)-1) {
                        return proto_error(err_off, i + bad == len ? q : i + bad);
                    }
                    a->val = buf + i;
                    a->val_len = vlen;
                    a->quoted = true;
                    i += vlen + 1;
                } else {
                    size_t vstart = i;
                    while (i < len && is_ptoken_char((unsigned char)buf[i])) {
                        i++;
                    }
                    if (i == vstart) {
                        return proto_error(err_off, i);
                    }
                    a->val = buf + vstart;
                    a->val_len = i - vstart;
                }
            }
            link->nattrs++;
        }
        count++;
        *n = count;

        if (i == len) {
            return TETHER_OK;
        }
        if (buf[i] != ',') {
            return proto_error(err_off, i);
        }
        i++;
    }
}

/* First attribute of `link` whose name equals `name`, compared
 * case-insensitively (RFC 8288 §3: parameter names are case-insensitive);
 * NULL when there is none or an argument is NULL. */
const tether_lf_attr_t *tether_lf_find_attr(const tether_lf_link_t *link, const char *name)
{
    if (link == NULL || name == NULL) {
        return NULL;
    }
    size_t nlen = strlen(name);
    size_t nattrs = link->nattrs < TETHER_LF_MAX_ATTRS ? link->nattrs : TETHER_LF_MAX_ATTRS;
    for (size_t k = 0; k < nattrs; k++) {
        const tether_lf_attr_t *a = &link->attrs[k];
        if (a->name_len != nlen) {
            continue;
        }
        size_t j = 0;
        while (j < nlen && lower((unsigned char)a->name[j]) == lower((unsigned char)name[j])) {
            j++;
        }
        if (j == nlen) {
            return a;
        }
    }
    return NULL;
}

/* Copy the value of `attr` into out[cap] with backslash escapes resolved
 * (an unquoted value is copied as is; no value yields length 0). A NUL is
 * written after the value when there is room. TETHER_ENOSPC when the value
 * does not fit, TETHER_EINVAL for NULL arguments. */
int tether_lf_unquote(const tether_lf_attr_t *attr, char *out, size_t cap, size_t *out_len)
{
    if (attr == NULL || out_len == NULL || (out == NULL && cap > 0)) {
        return TETHER_EINVAL;
    }
    size_t o = 0;
    if (attr->val != NULL) {
        for (size_t i = 0; i < attr->val_len; i++) {
            char c = attr->val[i];
            if (attr->quoted && c == '\\' && i + 1 < attr->val_len) {
                c = attr->val[++i];
            }
            if (o >= cap) {
                return TETHER_ENOSPC;
            }
            out[o++] = c;
        }
    }
    if (o < cap) {
        out[o] = '\0';
    }
    *out_len = o;
    return TETHER_OK;
}

/* Output cursor: counts every byte, stores those that fit. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
} lf_out_t;

static void out_bytes(lf_out_t *o, const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (o->len < o->cap) {
            o->buf[o->len] = s[k];
        }
        o->len++;
    }
}

static void out_char(lf_out_t *o, char c)
{
    out_bytes(o, &c, 1);
}

/* True when val[0..len) is valid quoted-string content: qdtext and
 * complete quoted-pairs only. */
static bool quoted_content_ok(const char *val, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)val[i];
        if (c == '\\') {
            if (i + 1 >= len || !is_qpair_char((unsigned char)val[i + 1])) {
                return false;
            }
            i += 2;
        } else if (is_qdtext(c)) {
            i++;
        } else {
            return false;
        }
    }
    return true;
}

/* True when val[0..len) can be written as a bare ptoken. */
static bool is_ptoken(const char *val, size_t len)
{
    if (len == 0) {
        return false;
    }
    for (size_t k = 0; k < len; k++) {
        if (!is_ptoken_char((unsigned char)val[k])) {
            return false;
        }
    }
    return true;
}

/* Write one attribute value. A quoted value is emitted verbatim between
 * quotes (it must be valid quoted-string content); a plain value is
 * emitted bare when it is a ptoken, otherwise quoted with '"' and '\'
 * escaped. TETHER_EINVAL for a value that cannot be written. */
static int out_value(lf_out_t *o, const tether_lf_attr_t *a)
{
    if (a->quoted) {
        if (!quoted_content_ok(a->val, a->val_len)) {
            return TETHER_EINVAL;
        }
        out_char(o, '"');
        out_bytes(o, a->val, a->val_len);
        out_char(o, '"');
        return TETHER_OK;
    }
    if (is_ptoken(a->val, a->val_len)) {
        out_bytes(o, a->val, a->val_len);
        return TETHER_OK;
    }
    out_char(o, '"');
    for (size_t k = 0; k < a->val_len; k++) {
        unsigned char c = (unsigned char)a->val[k];
        if (c == '"' || c == '\\') {
            out_char(o, '\\');
        } else if (!is_qdtext(c)) {
            return TETHER_EINVAL; /* control characters cannot be quoted */
        }
        out_char(o, (char)c);
    }
    out_char(o, '"');
    return TETHER_OK;
}

/* Serialise links[0..n) into buf[cap]. *out_len receives the document
 * length, also on TETHER_ENOSPC (then it is the size needed, excluding the
 * NUL). TETHER_EINVAL for a link that cannot be written: a target with a
 * character outside URI-Reference (including '>'), an empty or invalid
 * attribute name, a quoted value that is not valid quoted-string content,
 * or a plain value holding control characters. */
int tether_lf_serialize(const tether_lf_link_t *links, size_t n, char *buf, size_t cap,
                        size_t *out_len)
{
    if (out_len == NULL || (links == NULL && n > 0) || (buf == NULL && cap > 0)) {
        return TETHER_EINVAL;
    }
    lf_out_t o = { .buf = buf, .cap = cap, .len = 0 };
    for (size_t l = 0; l < n; l++) {
        const tether_lf_link_t *link = &links[l];
        if ((link->target == NULL && link->target_len > 0) || link->nattrs > TETHER_LF_MAX_ATTRS) {
            return TETHER_EINVAL;
        }
        for (size_t k = 0; k < link->target_len; k++) {
            if (!is_uri_char((unsigned char)link->target[k])) {
                return TETHER_EINVAL;
            }
        }
        if (l > 0) {
            out_char(&o, ',');
        }
        out_char(&o, '<');
        out_bytes(&o, link->target, link->target_len);
        out_char(&o, '>');
        for (size_t k = 0; k < link->nattrs; k++) {
            const tether_lf_attr_t *a = &link->attrs[k];
            if (a->name == NULL || a->name_len == 0 ||
                scan_name(a->name, a->name_len) != a->name_len) {
                return TETHER_EINVAL;
            }
            out_char(&o, ';');
            out_bytes(&o, a->name, a->name_len);
            if (a->val == NULL) {
                continue;
            }
            out_char(&o, '=');
            int rc = out_value(&o, a);
            if (rc != TETHER_OK) {
                return rc;
            }
        }
    }
    *out_len = o.len;
    if (o.len > cap) {
        return TETHER_ENOSPC;
    }
    if (o.len < cap) {
        buf[o.len] = '\0';
    }
    return TETHER_OK;
}
