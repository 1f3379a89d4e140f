/* CoAP <-> JSON for operator requests; see coap_bridge.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include "coap_bridge.h"
#include "tether/common.h"

#define SEG_MAX 255 /* Uri-Host, Uri-Path and Uri-Query values (RFC 7252 §5.10) */
#define MAX_SEGS 32

static int bad(char *err, size_t errcap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes the message and returns rc (a TETHER_E* code). */
static int bad(char *err, size_t errcap, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
    return rc;
}

static const struct {
    const char *name;
    uint8_t code;
} methods[] = {
    {"GET", TETHER_COAP_GET},       {"POST", TETHER_COAP_POST},   {"PUT", TETHER_COAP_PUT},
    {"DELETE", TETHER_COAP_DELETE}, {"FETCH", TETHER_COAP_FETCH}, {"PATCH", TETHER_COAP_PATCH},
    {"iPATCH", TETHER_COAP_IPATCH},
};

/* Adds `len` bytes at `s` as option `num`, bounded by SEG_MAX. */
static int add_seg(tether_coap_msg_t *m, uint16_t num, const char *s, size_t len, const char *what,
                   char *err, size_t errcap)
{
    if (len > SEG_MAX)
        return bad(err, errcap, TETHER_EINVAL, "%s: a segment is longer than %d bytes", what,
                   SEG_MAX);
    if (m->nopts >= MAX_SEGS * 2 || tether_coap_msg_add_opt(m, num, s, len) < 0)
        return bad(err, errcap, TETHER_EINVAL, "%s: too many segments", what);
    return 0;
}

/* Adds each non-empty `sep`-separated piece of s[0..n) as option `num`. */
static int add_split(tether_coap_msg_t *m, uint16_t num, const char *s, size_t n, char sep,
                     const char *what, char *err, size_t errcap)
{
    const char *p = s, *end = s + n;
    while (p < end) {
        const char *at = memchr(p, sep, (size_t)(end - p));
        const char *q = at ? at : end;
        if (q > p) {
            int rc = add_seg(m, num, p, (size_t)(q - p), what, err, errcap);
            if (rc < 0)
                return rc;
        }
        p = q + 1;
    }
    return 0;
}

/* ["a=1", "b"] or "a=1&b" -> Uri-Query items. */
static int add_query(tether_coap_msg_t *m, const json_t *v, char *err, size_t errcap)
{
    if (json_is_string(v))
        return add_split(m, TETHER_COAP_OPT_URI_QUERY, json_string_value(v), json_string_length(v),
                         '&', "\"query\"", err, errcap);
    if (!json_is_array(v))
        return bad(err, errcap, TETHER_EINVAL,
                   "\"query\" must be an array of strings or a string \"a=1&b=2\"");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return bad(err, errcap, TETHER_EINVAL, "\"query\" item %zu is not a string", i);
        int rc = add_seg(m, TETHER_COAP_OPT_URI_QUERY, json_string_value(e), json_string_length(e),
                         "\"query\"", err, errcap);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* An integer member in [min, max] into *out. */
static int get_int(const json_t *v, const char *key, long min, long max, long *out, char *err,
                   size_t errcap)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return bad(err, errcap, TETHER_EINVAL, "\"%s\" must be an integer from %ld to %ld", key,
                   min, max);
    *out = (long)json_integer_value(v);
    return 0;
}

/* Decodes base64 text into buf[cap]; TETHER_EINVAL when it is not base64
 * or decodes to more than cap bytes. */
static int b64_decode(const char *s, size_t n, uint8_t *buf, size_t cap, size_t *out_len)
{
    if (n % 4 != 0 || n / 4 * 3 > cap + 2)
        return TETHER_EINVAL;
    word32 ol = (word32)cap;
    if (n == 0) {
        *out_len = 0;
        return 0;
    }
    if (Base64_Decode((const byte *)s, (word32)n, buf, &ol) != 0)
        return TETHER_EINVAL;
    *out_len = ol;
    return 0;
}

int tetherd_coap_req_from_json(const json_t *body, const char *device, uint64_t id,
                               uint32_t default_timeout_ms, tetherd_coap_req_t *out, char *err,
                               size_t errcap)
{
    static tether_coap_msg_t m; /* large (option array); the server is single-threaded */
    uint8_t payload[TETHER_MSG_MAX], u[4][4];
    size_t plen = 0;
    bool has_payload = false;
    const char *k;
    json_t *v;
    long n;
    int rc;
    if (!json_is_object(body))
        return bad(err, errcap, TETHER_EINVAL, "the body must be a JSON object");
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_GET, (uint16_t)id);
    uint8_t tok[8];
    for (int i = 0; i < 8; i++)
        tok[i] = (uint8_t)(id >> (56 - 8 * i));
    tether_coap_msg_set_token(&m, tok, sizeof tok);
    if ((rc = add_seg(&m, TETHER_COAP_OPT_URI_HOST, device, strlen(device), "device name", err,
                      errcap)) < 0)
        return rc;
    out->timeout_ms = default_timeout_ms;
    json_object_foreach((json_t *)body, k, v)
    {
        if (strcmp(k, "method") == 0) {
            size_t i = 0;
            while (i < sizeof methods / sizeof methods[0] &&
                   !(json_is_string(v) && strcasecmp(json_string_value(v), methods[i].name) == 0))
                i++;
            if (i == sizeof methods / sizeof methods[0])
                return bad(err, errcap, TETHER_EINVAL,
                           "\"method\" must be GET, POST, PUT, DELETE, FETCH, PATCH or iPATCH");
            m.code = methods[i].code;
        } else if (strcmp(k, "path") == 0) {
            /* "/a/b" -> Uri-Path a, b (empty segments are skipped) */
            if (!json_is_string(v))
                return bad(err, errcap, TETHER_EINVAL, "\"path\" must be a string");
            if ((rc = add_split(&m, TETHER_COAP_OPT_URI_PATH, json_string_value(v),
                                json_string_length(v), '/', "\"path\"", err, errcap)) < 0)
                return rc;
        } else if (strcmp(k, "query") == 0) {
            if ((rc = add_query(&m, v, err, errcap)) < 0)
                return rc;
        } else if (strcmp(k, "payload") == 0 || strcmp(k, "payload_base64") == 0) {
            if (has_payload)
                return bad(err, errcap, TETHER_EINVAL,
                           "give \"payload\" or \"payload_base64\", not both");
            if (!json_is_string(v))
                return bad(err, errcap, TETHER_EINVAL, "\"%s\" must be a string", k);
            has_payload = true;
            size_t sl = json_string_length(v);
            if (strcmp(k, "payload") == 0) {
                if (sl > sizeof payload)
                    return bad(err, errcap, TETHER_ENOSPC,
                               "payload of %zu bytes does not fit one CoAP datagram", sl);
                memcpy(payload, json_string_value(v), sl);
                plen = sl;
            } else if (b64_decode(json_string_value(v), sl, payload, sizeof payload, &plen) < 0) {
                return bad(err, errcap, TETHER_EINVAL,
                           "\"payload_base64\" is not base64 or longer than %zu bytes",
                           sizeof payload);
            }
        } else if (strcmp(k, "content_format") == 0 || strcmp(k, "accept") == 0) {
            if ((rc = get_int(v, k, 0, 65535, &n, err, errcap)) < 0)
                return rc;
            uint16_t num = k[0] == 'c' ? TETHER_COAP_OPT_CONTENT_FORMAT : TETHER_COAP_OPT_ACCEPT;
            uint8_t *ub = u[k[0] == 'c' ? 0 : 1];
            tether_coap_msg_add_opt(&m, num, ub, tether_coap_uint_encode((uint32_t)n, ub));
        } else if (strcmp(k, "timeout_ms") == 0) {
            if ((rc = get_int(v, k, TETHERD_REQ_TIMEOUT_MIN_MS, TETHERD_REQ_TIMEOUT_MAX_MS, &n, err,
                              errcap)) < 0)
                return rc;
            out->timeout_ms = (uint32_t)n;
        } else {
            return bad(err, errcap, TETHER_EINVAL,
                       "unknown member \"%s\" (known: method, path, query, payload, "
                       "payload_base64, content_format, accept, timeout_ms)",
                       k);
        }
    }
    m.payload = payload;
    m.payload_len = plen;
    if (tether_coap_encode(&m, out->buf, sizeof out->buf, &out->len) < 0)
        return bad(err, errcap, TETHER_ENOSPC,
                   "the request does not fit one CoAP datagram (%d bytes)", TETHER_MSG_MAX);
    return 0;
}

/* Printable UTF-8 (tabs and line breaks allowed) becomes a JSON string;
 * NULL otherwise. */
static json_t *printable(const uint8_t *p, size_t n)
{
    if (n == 0)
        return json_string("");
    for (size_t i = 0; i < n; i++)
        if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') || p[i] == 0x7f)
            return NULL;
    return json_stringn((const char *)p, n);
}

static json_t *hex(const uint8_t *p, size_t n)
{
    char buf[2 * 1100 + 1];
    if (n > 1100)
        n = 1100;
    for (size_t i = 0; i < n; i++)
        snprintf(buf + 2 * i, 3, "%02x", p[i]);
    buf[2 * n] = 0;
    return json_string(buf);
}

/* One option as {"number", "name", "value" | "value_hex"}. */
static json_t *option_json(const tether_coap_optreg_t *reg, const tether_coap_opt_t *o)
{
    const tether_coap_optdef_t *def = tether_coap_optreg_find(reg, o->num);
    json_t *j = json_pack("{s:i}", "number", (int)o->num);
    if (!j)
        return NULL;
    if (def)
        json_object_set_new(j, "name", json_string(def->name));
    uint32_t u;
    json_t *s = NULL;
    if (def && def->fmt == TETHER_COAP_FMT_UINT && tether_coap_uint_decode(o->val, o->len, &u) == 0)
        json_object_set_new(j, "value", json_integer(u));
    else if (def && def->fmt == TETHER_COAP_FMT_EMPTY && o->len == 0)
        json_object_set_new(j, "value", json_null());
    else if (def && def->fmt == TETHER_COAP_FMT_STRING && (s = printable(o->val, o->len)))
        json_object_set_new(j, "value", s);
    else
        json_object_set_new(j, "value_hex", hex(o->val, o->len));
    return j;
}

json_t *tetherd_coap_resp_to_json(const tether_coap_optreg_t *reg, const uint8_t *msg, size_t len,
                                  uint8_t *code)
{
    static tether_coap_msg_t m;
    tether_coap_perr_t perr;
    if (tether_coap_parse(&m, msg, len, &perr) < 0)
        return NULL;
    char cs[6];
    *code = m.code;
    json_t *opts = json_array();
    json_t *j = json_pack("{s:s, s:o}", "code", tether_coap_code_str(m.code, cs), "options", opts);
    if (!j)
        return NULL;
    for (size_t i = 0; i < m.nopts; i++)
        json_array_append_new(opts, option_json(reg, &m.opts[i]));
    json_t *text = printable(m.payload, m.payload_len);
    if (text) {
        json_object_set_new(j, "payload", text);
        return j;
    }
    word32 b64len = (word32)(4 * ((m.payload_len + 2) / 3) + 1);
    char *b64 = malloc(b64len);
    if (!b64 || Base64_Encode_NoNl(m.payload, (word32)m.payload_len, (byte *)b64, &b64len) != 0) {
        free(b64);
        json_decref(j);
        return NULL;
    }
    json_object_set_new(j, "payload_base64", json_stringn(b64, b64len));
    free(b64);
    return j;
}

int admin_pct_decode(const char *s, size_t n, bool plus_space, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            unsigned v;
            char hx[3] = {i + 1 < n ? s[i + 1] : 0, i + 2 < n ? s[i + 2] : 0, 0};
            if (strspn(hx, "0123456789abcdefABCDEF") != 2 || sscanf(hx, "%x", &v) != 1 || !v)
                return TETHER_EINVAL;
            ch = (char)v;
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return TETHER_EINVAL;
        out[o++] = ch;
    }
    out[o] = 0;
    return 0;
}

/* --- HTTP-to-CoAP (RFC 8075) ------------------------------------------- */

/* Content-Formats with a media type (IANA CoAP Content-Formats registry),
 * the ones an HTTP client is likely to meet. */
static const struct {
    uint16_t cf;
    const char *type;
} media[] = {
    {0, "text/plain; charset=utf-8"},
    {40, "application/link-format"},
    {41, "application/xml"},
    {42, "application/octet-stream"},
    {47, "application/exi"},
    {50, "application/json"},
    {51, "application/json-patch+json"},
    {52, "application/merge-patch+json"},
    {60, "application/cbor"},
    {61, "application/cwt"},
    {62, "application/multipart-core"},
    {63, "application/cbor-seq"},
    {110, "application/senml+json"},
    {111, "application/sensml+json"},
    {112, "application/senml+cbor"},
    {113, "application/sensml+cbor"},
    {310, "application/senml+xml"},
    {11542, "application/vnd.oma.lwm2m+tlv"},
    {11543, "application/vnd.oma.lwm2m+json"},
};
#define NMEDIA (sizeof media / sizeof media[0])
#define COAP_PAYLOAD_TYPE "application/coap-payload" /* RFC 8075 §6.3 */

void tetherd_cf_to_ctype(uint16_t cf, char *buf, size_t cap)
{
    for (size_t i = 0; i < NMEDIA; i++)
        if (media[i].cf == cf) {
            snprintf(buf, cap, "%s", media[i].type);
            return;
        }
    snprintf(buf, cap, COAP_PAYLOAD_TYPE "; cf=%u", (unsigned)cf);
}

/* s[0..n) without blanks at either end. */
static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* The next `sep`-separated item of the list at *p (up to `end`), blanks
 * trimmed, into *it, *il; false at the end of the list. */
static bool next_item(const char **p, const char *end, char sep, const char **it, size_t *il)
{
    if (*p >= end)
        return false;
    const char *at = memchr(*p, sep, (size_t)(end - *p));
    const char *q = at ? at : end;
    *it = *p;
    *il = (size_t)(q - *p);
    trim(it, il);
    *p = q + 1;
    return true;
}

/* The value of parameter `name` among the ";"-separated parameters in
 * s[0..n) into out[cap] (quotes removed); false when absent. */
static bool media_param(const char *s, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name), il;
    const char *p = s, *it;
    while (next_item(&p, s + n, ';', &it, &il)) {
        if (il > nl && strncasecmp(it, name, nl) == 0 && it[nl] == '=') {
            const char *v = it + nl + 1;
            size_t vl = il - nl - 1;
            if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
                v++;
                vl -= 2;
            }
            snprintf(out, cap, "%.*s", (int)(vl < cap ? vl : cap - 1), v);
            return true;
        }
    }
    return false;
}

int tetherd_ctype_to_cf(const char *s, size_t n, uint16_t *cf)
{
    const char *semi = memchr(s, ';', n);
    const char *type = s, *params = semi ? semi + 1 : s + n;
    size_t tl = (size_t)((semi ? semi : s + n) - s), pl = (size_t)(s + n - params);
    char v[16];
    trim(&type, &tl);
    if (tl == strlen(COAP_PAYLOAD_TYPE) && strncasecmp(type, COAP_PAYLOAD_TYPE, tl) == 0) {
        char *e;
        if (!media_param(params, pl, "cf", v, sizeof v) || !v[0])
            return TETHER_ENOTFOUND;
        unsigned long x = strtoul(v, &e, 10);
        if (*e || x > 65535)
            return TETHER_ENOTFOUND;
        *cf = (uint16_t)x;
        return 0;
    }
    for (size_t i = 0; i < NMEDIA; i++) {
        const char *mt = media[i].type, *ms = strchr(mt, ';');
        size_t ml = ms ? (size_t)(ms - mt) : strlen(mt);
        if (ml != tl || strncasecmp(type, mt, tl) != 0)
            continue;
        /* text/plain is UTF-8 in CoAP (RFC 7252 §12.3); no charset means
         * US-ASCII in HTTP, which is a subset. */
        if (media[i].cf == 0 && media_param(params, pl, "charset", v, sizeof v) &&
            strcasecmp(v, "utf-8") != 0 && strcasecmp(v, "us-ascii") != 0)
            return TETHER_ENOTFOUND;
        *cf = media[i].cf;
        return 0;
    }
    return TETHER_ENOTFOUND;
}

int tetherd_coap_http_status(uint8_t code, bool has_payload, bool validating)
{
    static const struct {
        uint8_t code;
        int status;
    } table[] = {
        {TETHER_COAP_CREATED, 201},
        {TETHER_COAP_CONTENT, 200},
        {TETHER_COAP_BAD_REQUEST, 400},
        {TETHER_COAP_UNAUTHORIZED, 403}, /* RFC 8075 §7 (*5): not HTTP auth */
        {TETHER_COAP_BAD_OPTION, 400},
        {TETHER_COAP_FORBIDDEN, 403},
        {TETHER_COAP_NOT_FOUND, 404},
        {TETHER_COAP_METHOD_NOT_ALLOWED, 400},
        {TETHER_COAP_NOT_ACCEPTABLE, 406},
        {TETHER_COAP_REQUEST_INCOMPLETE, 400},
        {TETHER_COAP_PRECONDITION_FAILED, 412},
        {TETHER_COAP_REQUEST_TOO_LARGE, 413},
        {TETHER_COAP_UNSUPPORTED_FORMAT, 415},
        {TETHER_COAP_CODE(4, 29), 429}, /* Too Many Requests, RFC 8516 */
        {TETHER_COAP_INTERNAL_ERROR, 500},
        {TETHER_COAP_NOT_IMPLEMENTED, 501},
        {TETHER_COAP_BAD_GATEWAY, 502},
        {TETHER_COAP_SERVICE_UNAVAILABLE, 503},
        {TETHER_COAP_GATEWAY_TIMEOUT, 504},
        {TETHER_COAP_PROXYING_NOT_SUPPORTED, 502},
    };
    if (code == TETHER_COAP_DELETED || code == TETHER_COAP_CHANGED)
        return has_payload ? 200 : 204;
    if (code == TETHER_COAP_VALID)
        return validating ? 304 : 200;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].code == code)
            return table[i].status;
    switch (TETHER_COAP_CLASS(code)) {
    case 2: return 200;
    case 4: return 400;
    default: return 500;
    }
}

/* Entity tags of an If-Match / If-None-Match value: `*` sets *any; each
 * "hex" (or W/"hex") tag of 1..8 bytes becomes option `num`. Tags that
 * are not tether's hex rendering cannot name a CoAP ETag: skipped. */
static int add_etags(tether_coap_msg_t *m, uint16_t num, const char *s, size_t n, bool *any,
                     uint8_t (*store)[8], size_t *nstore, size_t cap, bool *added)
{
    const char *p = s, *t;
    size_t tl;
    while (next_item(&p, s + n, ',', &t, &tl)) {
        if (tl == 1 && t[0] == '*') {
            *any = true;
            continue;
        }
        if (tl >= 2 && t[0] == 'W' && t[1] == '/') {
            t += 2;
            tl -= 2;
        }
        if (tl < 4 || tl > 18 || t[0] != '"' || t[tl - 1] != '"' || (tl - 2) % 2)
            continue;
        if (*nstore >= cap)
            return TETHER_EINVAL;
        uint8_t *v = store[*nstore];
        size_t vl = (tl - 2) / 2;
        bool ok = true;
        for (size_t i = 0; i < vl && ok; i++) {
            unsigned x;
            char hx[3] = {t[1 + 2 * i], t[2 + 2 * i], 0};
            ok = strspn(hx, "0123456789abcdefABCDEF") == 2 && sscanf(hx, "%x", &x) == 1;
            v[i] = (uint8_t)x;
        }
        if (!ok)
            continue;
        (*nstore)++;
        if (tether_coap_msg_add_opt(m, num, v, vl) < 0)
            return TETHER_EINVAL;
        *added = true;
    }
    return 0;
}

/* The HTTP Accept value s[0..n): *stream for text/event-stream, *cf the
 * first media range with a Content-Format (q=0 ranges are refusals). */
static bool parse_accept(const char *s, size_t n, bool *stream, uint16_t *cf)
{
    bool have = false;
    const char *p = s, *t;
    size_t tl;
    while (next_item(&p, s + n, ',', &t, &tl)) {
        const char *semi = memchr(t, ';', tl);
        size_t bl = semi ? (size_t)(semi - t) : tl;
        char qv[8];
        if (semi && media_param(semi + 1, tl - bl - 1, "q", qv, sizeof qv) && strtod(qv, NULL) <= 0)
            continue;
        const char *b = t;
        trim(&b, &bl);
        if (bl == 17 && strncasecmp(b, "text/event-stream", 17) == 0) {
            *stream = true;
            continue;
        }
        uint16_t x;
        if (!have && tetherd_ctype_to_cf(t, tl, &x) == 0) {
            *cf = x;
            have = true;
        }
    }
    return have;
}

#define HTTP_SEG_CAP (SEG_MAX + 1)

int tetherd_coap_req_from_http(const tether_http_request_t *r, uint64_t id,
                               tetherd_http_coap_req_t *out, char *err, size_t errcap)
{
    static tether_coap_msg_t m;
    /* decoded option values live here until the message is encoded */
    static char segs[MAX_SEGS * 2][HTTP_SEG_CAP];
    static uint8_t tags[16][8];
    size_t nseg = 0, ntags = 0;
    uint8_t ub[3][4];
    const size_t pre = sizeof "/coap/" - 1;
    out->status = 400;
    out->stream = out->validating = false;
    uint8_t code;
    switch (r->method) {
    case TETHER_HTTP_M_GET:
    case TETHER_HTTP_M_HEAD: code = TETHER_COAP_GET; break;
    case TETHER_HTTP_M_POST: code = TETHER_COAP_POST; break;
    case TETHER_HTTP_M_PUT: code = TETHER_COAP_PUT; break;
    case TETHER_HTTP_M_DELETE: code = TETHER_COAP_DELETE; break;
    default: return bad(err, errcap, TETHER_EINVAL, "%s has no CoAP method", r->method_name);
    }
    if (r->path_len <= pre || strncmp(r->path, "/coap/", pre) != 0)
        return bad(err, errcap, TETHER_EINVAL, "expected /coap/{device}/{path}");
    tether_coap_msg_init(&m, TETHER_COAP_CON, code, (uint16_t)id);
    uint8_t tok[8];
    for (int i = 0; i < 8; i++)
        tok[i] = (uint8_t)(id >> (56 - 8 * i));
    tether_coap_msg_set_token(&m, tok, sizeof tok);
    /* the device, then the path segments (empty ones skipped, as a CoAP
     * URI's "//" would not be meant) */
    const char *p = r->path + pre, *end = r->path + r->path_len;
    bool first = true;
    while (p <= end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *q = slash ? slash : end;
        if (q > p || first) {
            char *dst = first ? out->device : segs[nseg];
            size_t cap = first ? sizeof out->device : HTTP_SEG_CAP;
            if (admin_pct_decode(p, (size_t)(q - p), false, dst, cap) < 0 || !dst[0])
                return bad(err, errcap, TETHER_EINVAL,
                           first ? "bad device name in the path"
                                 : "bad path segment (bad %%-escape or over 255 bytes)");
            if (!first) {
                if (nseg >= MAX_SEGS)
                    return bad(err, errcap, TETHER_EINVAL, "too many path segments");
                if (tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, dst, strlen(dst)) < 0)
                    return bad(err, errcap, TETHER_EINVAL, "too many options");
                nseg++;
            }
            first = false;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    if (tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, out->device, strlen(out->device)) < 0)
        return bad(err, errcap, TETHER_EINVAL, "too many options");
    /* the query: each '&'-separated item, percent-decoded (RFC 8075 §5.4) */
    for (p = r->query, end = r->query + r->query_len; r->query && p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *q = amp ? amp : end;
        if (q > p) {
            if (nseg >= MAX_SEGS * 2)
                return bad(err, errcap, TETHER_EINVAL, "too many query items");
            if (admin_pct_decode(p, (size_t)(q - p), false, segs[nseg], HTTP_SEG_CAP) < 0)
                return bad(err, errcap, TETHER_EINVAL,
                           "bad query item (bad %%-escape or over 255 bytes)");
            if (tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_QUERY, segs[nseg],
                                        strlen(segs[nseg])) < 0)
                return bad(err, errcap, TETHER_EINVAL, "too many options");
            nseg++;
        }
        p = q + 1;
    }
    size_t hl;
    const char *h;
    uint16_t cf;
    if (r->body_len && (h = tether_http_header(r, "content-type", &hl))) {
        if (tetherd_ctype_to_cf(h, hl, &cf) < 0) {
            out->status = 415;
            return bad(err, errcap, TETHER_EINVAL,
                       "Content-Type %.*s has no CoAP Content-Format (use " COAP_PAYLOAD_TYPE
                       "; cf=N)",
                       (int)(hl > 80 ? 80 : hl), h);
        }
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_CONTENT_FORMAT, ub[0],
                                tether_coap_uint_encode(cf, ub[0]));
    }
    if ((h = tether_http_header(r, "accept", &hl)) && parse_accept(h, hl, &out->stream, &cf))
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_ACCEPT, ub[1],
                                tether_coap_uint_encode(cf, ub[1]));
    if (out->stream && r->method != TETHER_HTTP_M_GET)
        out->stream = false; /* only a GET observes (a HEAD has no body to stream) */
    if (out->stream)
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, ub[2], 0);
    bool any = false, added = false;
    if ((h = tether_http_header(r, "if-match", &hl))) {
        if (add_etags(&m, TETHER_COAP_OPT_IF_MATCH, h, hl, &any, tags, &ntags, 16, &added) < 0)
            return bad(err, errcap, TETHER_EINVAL, "too many entity tags");
        if (any)
            tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_IF_MATCH, "", 0);
    }
    any = false;
    if ((h = tether_http_header(r, "if-none-match", &hl))) {
        /* On a GET, tags ask to validate (RFC 8075 §5.4: ETag options, a
         * 2.03 is 304); `*` is CoAP's If-None-Match ("only if absent"). */
        if (add_etags(&m, TETHER_COAP_OPT_ETAG, h, hl, &any, tags, &ntags, 16, &out->validating) <
            0)
            return bad(err, errcap, TETHER_EINVAL, "too many entity tags");
        if (any)
            tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_IF_NONE_MATCH, "", 0);
    }
    m.payload = (const uint8_t *)r->body;
    m.payload_len = r->body_len;
    if (tether_coap_encode(&m, out->buf, sizeof out->buf, &out->len) < 0) {
        out->status = 413;
        return bad(err, errcap, TETHER_EINVAL,
                   "the request does not fit one CoAP datagram (%d bytes)", TETHER_MSG_MAX);
    }
    return 0;
}

/* Appends s[0..n) percent-encoded (RFC 3986 pchar; in a query item '&'
 * is encoded too) to buf[cap] at *o. */
static void pct_encode(char *buf, size_t cap, size_t *o, const uint8_t *s, size_t n, bool query)
{
    static const char keep[] = "-._~!$&'()*+,;=:@";
    for (size_t i = 0; i < n && *o + 4 < cap; i++) {
        uint8_t ch = s[i];
        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch && strchr(keep, ch) && !(query && ch == '&')))
            buf[(*o)++] = (char)ch;
        else
            *o += (size_t)snprintf(buf + *o, cap - *o, "%%%02X", ch);
    }
    buf[*o] = 0;
}

int tetherd_coap_resp_to_http(const uint8_t *msg, size_t len, const char *device, bool validating,
                              tetherd_http_coap_resp_t *out)
{
    static tether_coap_msg_t m;
    tether_coap_perr_t perr;
    if (tether_coap_parse(&m, msg, len, &perr) < 0)
        return TETHER_EPROTO;
    out->code = m.code;
    out->payload = m.payload;
    out->payload_len = m.payload_len;
    out->status = tetherd_coap_http_status(m.code, m.payload_len > 0, validating);
    out->ctype[0] = out->headers[0] = 0;
    uint32_t v;
    out->has_observe = tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_OBSERVE, &v) == 0;
    out->observe = out->has_observe ? v : 0;
    const tether_coap_opt_t *b2 = tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_BLOCK2);
    tether_coap_block_t blk;
    out->has_block2 = b2 && tether_coap_block_decode(b2->val, b2->len, &blk) == 0;
    out->more_blocks = out->has_block2 && blk.more;
    out->block_num = out->has_block2 ? blk.num : 0;
    out->block_szx = out->has_block2 ? blk.szx : 0;
    if (tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_CONTENT_FORMAT, &v) == 0 && v <= 65535)
        tetherd_cf_to_ctype((uint16_t)v, out->ctype, sizeof out->ctype);
    size_t o = 0, cap = sizeof out->headers;
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_ETAG);
    out->etag_len = et && et->len <= 8 ? (uint8_t)et->len : 0;
    if (out->etag_len)
        memcpy(out->etag, et->val, et->len);
    if (et && et->len <= 8) {
        o += (size_t)snprintf(out->headers + o, cap - o, "ETag: \"");
        for (size_t i = 0; i < et->len; i++)
            o += (size_t)snprintf(out->headers + o, cap - o, "%02x", et->val[i]);
        o += (size_t)snprintf(out->headers + o, cap - o, "\"\r\n");
    }
    if (tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_MAX_AGE, &v) == 0)
        o += (size_t)snprintf(out->headers + o, cap - o,
                              m.code == TETHER_COAP_SERVICE_UNAVAILABLE
                                  ? "Retry-After: %u\r\n"
                                  : "Cache-Control: max-age=%u\r\n",
                              (unsigned)v);
    if (m.code == TETHER_COAP_CREATED &&
        (tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_LOCATION_PATH) ||
         tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_LOCATION_QUERY))) {
        char loc[600];
        size_t lo = (size_t)snprintf(loc, sizeof loc, "/coap/");
        pct_encode(loc, sizeof loc, &lo, (const uint8_t *)device, strlen(device), false);
        char sep = '?';
        for (size_t i = 0; i < m.nopts; i++) {
            const tether_coap_opt_t *op = &m.opts[i];
            if (op->num == TETHER_COAP_OPT_LOCATION_PATH && lo + 1 < sizeof loc) {
                loc[lo++] = '/';
                pct_encode(loc, sizeof loc, &lo, op->val, op->len, false);
            } else if (op->num == TETHER_COAP_OPT_LOCATION_QUERY && lo + 1 < sizeof loc) {
                loc[lo++] = sep;
                sep = '&';
                pct_encode(loc, sizeof loc, &lo, op->val, op->len, true);
            }
        }
        if (o < cap)
            o += (size_t)snprintf(out->headers + o, cap - o, "Location: %s\r\n", loc);
    }
    if (o >= cap)
        out->headers[0] = 0; /* cannot happen with these bounds; never a torn header */
    return 0;
}

int tetherd_coap_req_block(const uint8_t *req, size_t len, uint16_t mid, uint32_t num, uint8_t szx,
                           uint8_t *out, size_t cap, size_t *out_len)
{
    static tether_coap_msg_t m, n;
    tether_coap_perr_t perr;
    uint8_t bv[3];
    if (tether_coap_parse(&m, req, len, &perr) < 0)
        return TETHER_EPROTO;
    tether_coap_msg_init(&n, m.type, m.code, mid);
    tether_coap_msg_set_token(&n, m.token, m.tkl);
    for (size_t i = 0; i < m.nopts; i++)
        if (m.opts[i].num != TETHER_COAP_OPT_BLOCK2 &&
            tether_coap_msg_add_opt(&n, m.opts[i].num, m.opts[i].val, m.opts[i].len) < 0)
            return TETHER_ENOSPC;
    tether_coap_block_t b = {.num = num, .more = false, .szx = szx};
    size_t bl;
    if (tether_coap_block_encode(&b, bv, &bl) < 0 ||
        tether_coap_msg_add_opt(&n, TETHER_COAP_OPT_BLOCK2, bv, bl) < 0)
        return TETHER_ENOSPC;
    n.payload = m.payload;
    n.payload_len = m.payload_len;
    return tether_coap_encode(&n, out, cap, out_len);
}
