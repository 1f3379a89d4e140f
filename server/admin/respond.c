/* Answers of the admin endpoint: the head (lib/util/http.c formats it),
 * JSON bodies serialised into the shared scratch buffer, and the one error
 * shape {"error": "<reason phrase>", "detail": "..."} of SPEC S6. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "tether/common.h"

/* Queues one answer to the current request: head, then the body unless the
 * request was HEAD. `extra` holds complete header lines or is NULL. */
void admin_respond(admin_conn_t *c, int status, const char *ctype, const char *body, size_t blen,
                   const char *extra)
{
    char hdrs[1024];
    /* admin answers are never cached; a CoAP answer relayed over HTTP
     * brings its own freshness (Max-Age) */
    bool own_cc = extra && strstr(extra, "Cache-Control:");
    snprintf(hdrs, sizeof hdrs, "%s%s%s", own_cc ? "" : "Cache-Control: no-store\r\n",
             c->http10_keep_alive && !c->close_after_flush ? "Connection: keep-alive\r\n" : "",
             extra ? extra : "");
    tetherd_abuf_t *b = &c->out[c->fill];
    size_t hl;
    c->status = status;
    if (tetherd_abuf_reserve(b, 256 + strlen(hdrs) + blen) < 0 ||
        tether_http_format_head(b->p + b->len, b->cap - b->len, status, ctype, blen,
                                c->close_after_flush, hdrs, &hl) < 0) {
        admin_conn_close(c);
        return;
    }
    b->len += hl;
    if (!c->head_only && blen)
        tetherd_abuf_put(b, body, blen); /* room reserved above */
}

/* Serialises j (borrowed) as the body of a JSON answer. */
void admin_respond_json(admin_conn_t *c, int status, const json_t *j, const char *extra)
{
    tetherd_abuf_t *s = &c->a->scratch;
    s->len = 0;
    size_t n = j ? json_dumpb(j, s->p, s->cap, JSON_COMPACT) : 0;
    if (n == 0 || (n + 1 >= s->cap && (tetherd_abuf_reserve(s, n + 1) < 0 ||
                                       json_dumpb(j, s->p, s->cap, JSON_COMPACT) != n))) {
        static const char oom[] = "{\"error\":\"internal server error\",\"detail\":\"out of "
                                  "memory\"}\n";
        admin_respond(c, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    s->p[n] = '\n';
    admin_respond(c, status, "application/json", s->p, n + 1, extra);
}

/* Sends `j` (an object, or NULL for a new one; the reference is taken)
 * with "error": "<reason phrase, lower case>" and "detail": `detail`. */
void admin_respond_error_obj(admin_conn_t *c, int status, const char *extra, json_t *j,
                             const char *detail)
{
    char reason[64];
    snprintf(reason, sizeof reason, "%s", tether_http_reason(status));
    for (char *p = reason; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!j)
        j = json_object();
    json_t *d = json_stringn(detail, strlen(detail));
    if (j) {
        json_object_set_new(j, "error", json_string(reason));
        /* a detail quoting client bytes may not be UTF-8 */
        json_object_set_new(j, "detail", d ? d : json_string("(not UTF-8)"));
    } else {
        json_decref(d);
    }
    admin_respond_json(c, status, j, extra);
    json_decref(j);
}

/* {"error": "<reason phrase, lower case>", "detail": "<fmt...>"}. */
void admin_respond_error(admin_conn_t *c, int status, const char *extra, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    admin_respond_error_obj(c, status, extra, NULL, detail);
}

/* The request body as JSON; NULL after answering 400 with jansson's line,
 * column and reason. */
json_t *admin_parse_body(admin_conn_t *c, const tether_http_request_t *r)
{
    json_error_t err;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        admin_respond_error(c, 400, NULL, "invalid JSON at line %d column %d: %s", err.line,
                            err.column, err.text);
    return j;
}

json_t *admin_jstr(const char *s)
{
    json_t *j = json_string(s);
    return j ? j : json_string("(not UTF-8)");
}
