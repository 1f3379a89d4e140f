/* libFuzzer target for lib/util/http.c (admin request parsing).
 *
 * The first input byte chooses split points; the rest is an HTTP stream fed
 * twice: at once, and in pieces. Both runs must report the same sequence of
 * requests (method, target, path, query, fields, body, keep-alive) and end
 * the same way (an error in both, or the same event); every span of a
 * request must lie inside the parser's arena and respect the limits, and the
 * request-target must be printable ASCII. Any violation traps. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tether/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_EVENTS 64

typedef struct {
    uint64_t h[MAX_EVENTS];
    size_t n;
    int end; /* final return code */
    int status;
} trace_t;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return (h ^ n) * 0x100000001b3ull;
}

static void check_span(const tether_http_parser_t *p, const char *s, size_t len)
{
    if (len == 0)
        return;
    if (!s || s < p->arena || s + len > p->arena + p->arena_len)
        __builtin_trap();
}

/* Checks a returned request and folds it into a hash. */
static uint64_t digest(const tether_http_parser_t *p)
{
    const tether_http_request_t *r = &p->req;
    if (!r->method_name || !r->path || r->path_len == 0 || r->path[0] != '/')
        __builtin_trap();
    check_span(p, r->target, r->target_len);
    for (size_t i = 0; i < r->target_len; i++)
        if ((unsigned char)r->target[i] <= 0x20 || (unsigned char)r->target[i] >= 0x7f)
            __builtin_trap();
    if (r->path < r->target || r->path + r->path_len > r->target + r->target_len)
        __builtin_trap();
    if (r->query && (r->query < r->target || r->query + r->query_len > r->target + r->target_len))
        __builtin_trap();
    if (r->nheaders > TETHER_HTTP_MAX_HEADERS || r->body_len > TETHER_HTTP_MAX_BODY ||
        r->body[r->body_len] != 0)
        __builtin_trap();
    check_span(p, r->body, r->body_len);
    uint64_t h = 0xcbf29ce484222325ull;
    h = mix(h, r->method_name, strlen(r->method_name));
    h = mix(h, r->target, r->target_len);
    h = mix(h, r->path, r->path_len);
    if (r->query)
        h = mix(h, r->query, r->query_len);
    for (size_t i = 0; i < r->nheaders; i++) {
        const tether_http_header_t *f = &r->headers[i];
        check_span(p, f->name, f->name_len);
        check_span(p, f->value, f->value_len);
        if (f->name_len == 0)
            __builtin_trap();
        h = mix(h, f->name, f->name_len);
        h = mix(h, f->value, f->value_len);
        /* lookup must find a field of that name */
        char name[64];
        if (f->name_len < sizeof name) {
            memcpy(name, f->name, f->name_len);
            name[f->name_len] = 0;
            if (!tether_http_header(r, name, NULL))
                __builtin_trap();
        }
    }
    h = mix(h, r->body, r->body_len);
    uint8_t flags[3] = {(uint8_t)r->method, r->keep_alive, r->expect_continue};
    return mix(h, flags, sizeof flags);
}

/* Runs the stream through one parser in pieces of at most `step` bytes
 * (0: all at once), the way the admin connection loop does. */
static void run(const char *s, size_t len, const uint8_t *splits, size_t nsplits, trace_t *t)
{
    tether_http_parser_t p;
    tether_http_parser_init(&p);
    memset(t, 0, sizeof *t);
    size_t off = 0, k = 0;
    int rc = TETHER_HTTP_NEED_MORE;
    while (off < len) {
        size_t chunk = len - off;
        if (nsplits) {
            size_t want = 1 + splits[k++ % nsplits];
            if (want < chunk)
                chunk = want;
        }
        size_t pos = 0;
        while (pos < chunk) {
            size_t used = 0;
            rc = tether_http_feed(&p, s + off + pos, chunk - pos, &used);
            if (used > chunk - pos)
                __builtin_trap();
            pos += used;
            if (rc < 0)
                goto out;
            if (rc == TETHER_HTTP_EXPECT) {
                if (t->n < MAX_EVENTS)
                    t->h[t->n++] = 0xE;
                continue;
            }
            if (rc == TETHER_HTTP_REQUEST) {
                if (tether_http_in_progress(&p))
                    __builtin_trap();
                if (t->n < MAX_EVENTS)
                    t->h[t->n++] = digest(&p);
                bool keep = p.req.keep_alive;
                tether_http_next(&p);
                if (!keep) /* the server closes here */
                    goto out;
                continue;
            }
            if (pos != chunk) /* NEED_MORE consumes everything */
                __builtin_trap();
        }
        off += chunk;
    }
out:
    t->end = rc;
    t->status = rc < 0 ? p.error_status : 0;
    if (rc < 0 && (!p.error_detail || p.error_status < 400 || p.error_status > 599))
        __builtin_trap();
    tether_http_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t nsplits = 1 + data[0] % 8;
    if (size < 1 + nsplits)
        return 0;
    const uint8_t *splits = data + 1;
    const char *s = (const char *)data + 1 + nsplits;
    size_t len = size - 1 - nsplits;
    static trace_t whole, pieces;
    run(s, len, NULL, 0, &whole);
    run(s, len, splits, nsplits, &pieces);
    /* Which error comes first may depend on the split (a limit can trip on
     * a partial token before http-parser sees a bad byte later in it), but
     * not whether the stream fails, nor anything before the failure. */
    bool same_end = whole.end == pieces.end || (whole.end < 0 && pieces.end < 0);
    if (whole.n != pieces.n || !same_end ||
        memcmp(whole.h, pieces.h, whole.n * sizeof whole.h[0]) != 0)
        __builtin_trap();
    return 0;
}
