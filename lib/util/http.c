/* Sans-I/O HTTP/1.1 request parsing on http-parser, with tether's limits.
 *
 * http-parser hands data callbacks pieces of the input buffer that may be
 * split across feeds; they are copied into one arena (offsets, since it may
 * move when it grows). The parser is paused after each message so that
 * pipelined requests come out one at a time, and after the head when the
 * client expects "100 Continue". */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tether/http.h"

#define TARGET_MAX 8192  /* request-target; longer is 414 */
#define ARENA_FIRST 2048 /* first allocation */
#define ARENA_KEEP 16384 /* arenas larger than this are freed between requests */

_Static_assert(sizeof(http_parser) <= sizeof(((tether_http_parser_t *)0)->impl),
               "tether_http_parser_t.impl too small for http_parser");

enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE, CB_BODY };

static http_parser *hp(tether_http_parser_t *p)
{
    return (http_parser *)(void *)p->impl;
}

static tether_http_parser_t *owner(http_parser *h)
{
    return h->data;
}

/* Records an error for the caller; returns -1 so callbacks can return it. */
static int set_error(tether_http_parser_t *p, int status, const char *detail)
{
    if (!p->error_status) {
        p->error_status = status;
        p->error_detail = detail;
    }
    return -1;
}

/* Appends len bytes to the arena; grows it by doubling, never beyond what
 * the limits can need. 0 or -1 (error recorded). */
static int arena_put(tether_http_parser_t *p, const char *at, size_t len)
{
    if (p->arena_len + len + 1 > p->arena_cap) {
        size_t cap = p->arena_cap ? p->arena_cap : ARENA_FIRST;
        while (cap < p->arena_len + len + 1)
            cap *= 2;
        char *a = realloc(p->arena, cap);
        if (!a)
            return set_error(p, 500, "out of memory");
        p->arena = a;
        p->arena_cap = cap;
    }
    memcpy(p->arena + p->arena_len, at, len);
    p->arena_len += len;
    return 0;
}

static int on_message_begin(http_parser *h)
{
    tether_http_parser_t *p = owner(h);
    p->started = true;
    return 0;
}

static int on_url(http_parser *h, const char *at, size_t len)
{
    tether_http_parser_t *p = owner(h);
    if (p->last_cb != CB_URL) {
        p->target_off = (uint32_t)p->arena_len;
        p->last_cb = CB_URL;
    }
    p->target_len += (uint32_t)len;
    if (p->target_len > TARGET_MAX)
        return set_error(p, 414, "request-target longer than 8192 bytes");
    p->head_bytes += len;
    return arena_put(p, at, len);
}

/* Counts head bytes against the limit and stores a piece of a field name
 * (is_value false) or value, joining pieces split across feeds. */
static int head_piece(tether_http_parser_t *p, const char *at, size_t len, bool is_value)
{
    p->head_bytes += len;
    if (p->head_bytes > TETHER_HTTP_MAX_HEAD)
        return set_error(p, 413, "request head larger than 65536 bytes");
    if (p->head_done)
        return 0; /* chunked trailer fields: counted, not kept */
    int cb = is_value ? CB_VALUE : CB_FIELD;
    if (p->last_cb != cb) {
        if (!is_value) {
            if (p->nspans == TETHER_HTTP_MAX_HEADERS)
                return set_error(p, 413, "more than 64 header fields");
            p->spans[p->nspans++] = (tether_http_hdr_span_t){(uint32_t)p->arena_len, 0, 0, 0};
        } else {
            if (p->nspans == 0)
                return set_error(p, 400, "header value without a name");
            p->spans[p->nspans - 1].value_off = (uint32_t)p->arena_len;
        }
        p->last_cb = cb;
    }
    tether_http_hdr_span_t *s = &p->spans[p->nspans - 1];
    if (is_value)
        s->value_len += (uint32_t)len;
    else
        s->name_len += (uint32_t)len;
    return arena_put(p, at, len);
}

static int on_header_field(http_parser *h, const char *at, size_t len)
{
    return head_piece(owner(h), at, len, false);
}

static int on_header_value(http_parser *h, const char *at, size_t len)
{
    return head_piece(owner(h), at, len, true);
}

static bool token_eq(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* RFC 9110 tchar: the characters of a method or field name. */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Trims blanks around a value span (http-parser keeps trailing ones). */
static void trim_span(const char *arena, uint32_t *off, uint32_t *len)
{
    while (*len && (arena[*off] == ' ' || arena[*off] == '\t')) {
        (*off)++;
        (*len)--;
    }
    while (*len && (arena[*off + *len - 1] == ' ' || arena[*off + *len - 1] == '\t'))
        (*len)--;
}

/* Head complete: version, Host, Expect and the declared body size are
 * checked before any body byte is read. */
static int on_headers_complete(http_parser *h)
{
    tether_http_parser_t *p = owner(h);
    p->head_done = true;
    if (h->http_major != 1)
        return set_error(p, 505, "only HTTP/1.x is supported");
    size_t hosts = 0;
    bool expect = false;
    for (size_t i = 0; i < p->nspans; i++) {
        tether_http_hdr_span_t *s = &p->spans[i];
        trim_span(p->arena, &s->value_off, &s->value_len);
        const char *name = p->arena + s->name_off;
        const char *val = p->arena + s->value_off;
        /* Debian builds http-parser non-strict, which lets spaces into names. */
        for (uint32_t k = 0; k < s->name_len; k++)
            if (!is_tchar((unsigned char)name[k]))
                return set_error(p, 400, "invalid character in a header field name");
        if (token_eq(name, s->name_len, "host")) {
            hosts++;
        } else if (token_eq(name, s->name_len, "expect")) {
            if (!token_eq(val, s->value_len, "100-continue"))
                return set_error(p, 417, "only \"Expect: 100-continue\" is supported");
            expect = h->http_minor >= 1;
        }
    }
    if (h->http_minor >= 1 && hosts != 1)
        return set_error(p, 400, "an HTTP/1.1 request needs exactly one Host field");
    if (h->content_length != UINT64_MAX && h->content_length > TETHER_HTTP_MAX_BODY)
        return set_error(p, 413, "request body larger than 65536 bytes");
    p->req.expect_continue = expect;
    /* Expecting no body (Content-Length absent or 0) makes the promise moot. */
    if (expect &&
        ((h->flags & F_CHUNKED) || (h->content_length != UINT64_MAX && h->content_length > 0))) {
        p->expect_due = true;
        http_parser_pause(h, 1);
    }
    p->body_off = (uint32_t)p->arena_len;
    return 0;
}

static int on_body(http_parser *h, const char *at, size_t len)
{
    tether_http_parser_t *p = owner(h);
    p->last_cb = CB_BODY;
    p->body_bytes += len;
    if (p->body_bytes > TETHER_HTTP_MAX_BODY)
        return set_error(p, 413, "request body larger than 65536 bytes");
    return arena_put(p, at, len);
}

static tether_http_method_t method_of(unsigned m)
{
    switch (m) {
    case HTTP_GET: return TETHER_HTTP_M_GET;
    case HTTP_HEAD: return TETHER_HTTP_M_HEAD;
    case HTTP_POST: return TETHER_HTTP_M_POST;
    case HTTP_PUT: return TETHER_HTTP_M_PUT;
    case HTTP_DELETE: return TETHER_HTTP_M_DELETE;
    case HTTP_PATCH: return TETHER_HTTP_M_PATCH;
    case HTTP_OPTIONS: return TETHER_HTTP_M_OPTIONS;
    default: return TETHER_HTTP_M_OTHER;
    }
}

/* Message complete: resolve offsets into pointers, split the target. */
static int on_message_complete(http_parser *h)
{
    tether_http_parser_t *p = owner(h);
    tether_http_request_t *r = &p->req;
    /* NUL after the body so text parsers can use it directly. */
    if (arena_put(p, "", 1) < 0)
        return -1;
    p->arena_len--;
    const char *a = p->arena;
    r->method = method_of(h->method);
    r->method_name = http_method_str((enum http_method)h->method);
    r->target = a + p->target_off;
    r->target_len = p->target_len;
    /* Non-strict http-parser lets raw 8-bit bytes into the target; RFC 3986
     * wants them percent-encoded, and logs want printable ASCII. */
    for (size_t i = 0; i < r->target_len; i++)
        if ((unsigned char)r->target[i] <= 0x20 || (unsigned char)r->target[i] >= 0x7f)
            return set_error(p, 400, "request-target must be printable ASCII");
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (h->method == HTTP_CONNECT || http_parser_parse_url(r->target, r->target_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)) || r->target[u.field_data[UF_PATH].off] != '/')
        return set_error(p, 400, "request-target must be a path or an absolute URI");
    r->path = r->target + u.field_data[UF_PATH].off;
    r->path_len = u.field_data[UF_PATH].len;
    if (u.field_set & (1 << UF_QUERY)) {
        r->query = r->target + u.field_data[UF_QUERY].off;
        r->query_len = u.field_data[UF_QUERY].len;
    }
    for (size_t i = 0; i < p->nspans; i++) {
        const tether_http_hdr_span_t *s = &p->spans[i];
        r->headers[i] =
            (tether_http_header_t){a + s->name_off, s->name_len, a + s->value_off, s->value_len};
    }
    r->nheaders = p->nspans;
    r->body = a + p->body_off;
    r->body_len = p->body_bytes;
    r->version_minor = h->http_minor;
    /* After an upgrade or CONNECT the rest of the stream is not HTTP. */
    r->keep_alive = http_should_keep_alive(h) && !h->upgrade;
    p->complete = true;
    http_parser_pause(h, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Resets per-request state, keeping (or trimming) the arena. */
static void clear_request(tether_http_parser_t *p)
{
    if (p->arena_cap > ARENA_KEEP) {
        free(p->arena);
        p->arena = NULL;
        p->arena_cap = 0;
    }
    p->arena_len = 0;
    p->head_bytes = p->body_bytes = 0;
    p->target_off = p->target_len = p->body_off = 0;
    p->nspans = 0;
    p->last_cb = CB_NONE;
    p->started = p->head_done = p->complete = p->expect_due = false;
    memset(&p->req, 0, sizeof p->req);
}

void tether_http_parser_init(tether_http_parser_t *p)
{
    memset(p, 0, sizeof *p);
    http_parser_init(hp(p), HTTP_REQUEST);
    hp(p)->data = p;
}

void tether_http_parser_free(tether_http_parser_t *p)
{
    free(p->arena);
    p->arena = NULL;
    p->arena_cap = p->arena_len = 0;
}

int tether_http_feed(tether_http_parser_t *p, const char *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (p->dead)
        return TETHER_EINVAL;
    if (p->complete)
        return TETHER_HTTP_REQUEST; /* the caller has not called next() yet */
    if (len == 0)
        return TETHER_HTTP_NEED_MORE;
    http_parser *h = hp(p);
    size_t n = http_parser_execute(h, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(h);
    *consumed = n;
    if (e == HPE_PAUSED) {
        http_parser_pause(h, 0);
        if (p->complete)
            return TETHER_HTTP_REQUEST;
        if (p->expect_due) {
            p->expect_due = false;
            return TETHER_HTTP_EXPECT;
        }
        e = HPE_UNKNOWN; /* cannot happen: only we pause */
    }
    if (e == HPE_OK) {
        /* http-parser stops early only after an upgrade or CONNECT message,
         * which on_message_complete has already turned into a request. */
        if (n != len && !p->complete) {
            p->dead = true;
            set_error(p, 400, "unexpected data after the message");
            return TETHER_EPROTO;
        }
        return p->complete ? TETHER_HTTP_REQUEST : TETHER_HTTP_NEED_MORE;
    }
    p->dead = true;
    if (p->error_status == 500) /* one of our callbacks refused */
        return TETHER_ENOMEM;
    if (p->error_status == 413 || p->error_status == 414)
        return TETHER_ELIMIT;
    if (p->error_status)
        return TETHER_EPROTO;
    if (e == HPE_HEADER_OVERFLOW) {
        set_error(p, 413, "request head larger than 65536 bytes");
        return TETHER_ELIMIT;
    }
    set_error(p, 400, http_errno_description(e));
    return TETHER_EPROTO;
}

void tether_http_next(tether_http_parser_t *p)
{
    if (p->dead)
        return;
    clear_request(p);
}

bool tether_http_in_progress(const tether_http_parser_t *p)
{
    return p->started && !p->complete;
}

const char *tether_http_header(const tether_http_request_t *r, const char *name, size_t *value_len)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (token_eq(r->headers[i].name, r->headers[i].name_len, name)) {
            if (value_len)
                *value_len = r->headers[i].value_len;
            return r->headers[i].value;
        }
    return NULL;
}

const char *tether_http_reason(int status)
{
    const char *s =
        status >= 100 && status <= 599 ? http_status_str((enum http_status)status) : "<unknown>";
    return strcmp(s, "<unknown>") == 0 ? "Unknown" : s;
}

int tether_http_format_head(char *buf, size_t cap, int status, const char *ctype,
                            size_t content_length, bool close, const char *extra, size_t *out_len)
{
    if (status < 100 || status > 599)
        return TETHER_EINVAL;
    int n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n%s%s\r\n", status,
                     tether_http_reason(status), ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", content_length, close ? "Connection: close\r\n" : "",
                     extra ? extra : "");
    if (n < 0 || (size_t)n >= cap)
        return TETHER_ENOSPC;
    *out_len = (size_t)n;
    return 0;
}
