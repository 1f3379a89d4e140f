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
