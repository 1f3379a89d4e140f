/* tether — sans-I/O HTTP/1.1 request parsing for the admin endpoint.
 *
 * A thin, strict wrapper around Debian's http-parser (nodejs/http-parser
 * 2.9): the caller feeds bytes as they arrive and gets back whole requests,
 * one at a time and in order (pipelining), with the request line, header
 * fields and body copied into one per-parser arena that is reused across
 * requests. Limits are enforced here, before any byte is stored past them.
 * No sockets, no clock: timeouts belong to the caller. */
#ifndef TETHER_HTTP_H
#define TETHER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"

#define TETHER_HTTP_MAX_HEAD 65536 /* request-target + header names and values */
#define TETHER_HTTP_MAX_BODY 65536 /* decoded body (Content-Length or chunked) */
#define TETHER_HTTP_MAX_HEADERS 64

typedef enum {
    TETHER_HTTP_M_OTHER = 0, /* any other method http-parser knows (method_name has it) */
    TETHER_HTTP_M_GET,
    TETHER_HTTP_M_HEAD,
    TETHER_HTTP_M_POST,
    TETHER_HTTP_M_PUT,
    TETHER_HTTP_M_DELETE,
    TETHER_HTTP_M_PATCH,
    TETHER_HTTP_M_OPTIONS,
} tether_http_method_t;

typedef struct {
    const char *name; /* not NUL-terminated; compare case-insensitively */
    size_t name_len;
    const char *value; /* leading and trailing blanks removed */
    size_t value_len;
} tether_http_header_t;

/* One complete request. Every pointer points into the parser's arena and is
 * valid until tether_http_next() or tether_http_parser_free(). Strings are
 * not NUL-terminated, except that body[body_len] is always 0 (handy for
 * text parsers). */
typedef struct {
    tether_http_method_t method;
    const char *method_name; /* static, e.g. "GET" */
    const char *target;      /* raw request-target as sent */
    size_t target_len;
    const char *path; /* path component, always starts with '/' */
    size_t path_len;
    const char *query; /* after '?', NULL when absent */
    size_t query_len;
    tether_http_header_t headers[TETHER_HTTP_MAX_HEADERS];
    size_t nheaders;
    const char *body;
    size_t body_len;
    unsigned version_minor; /* HTTP/1.x; major is always 1 */
    bool keep_alive;        /* false: answer with Connection: close, then close */
    bool expect_continue;   /* the client sent Expect: 100-continue */
} tether_http_request_t;

/* What tether_http_feed() found. Negative returns are errors (see below). */
typedef enum {
    TETHER_HTTP_NEED_MORE = 0, /* all input consumed, no complete request yet */
    TETHER_HTTP_REQUEST = 1,   /* a whole request is in parser->req */
    TETHER_HTTP_EXPECT = 2,    /* head accepted, client waits for "100 Continue" */
} tether_http_event_t;

typedef struct {
    uint32_t name_off, name_len, value_off, value_len;
} tether_http_hdr_span_t;

typedef struct {
    /* private: the http_parser state (size checked at compile time) */
    _Alignas(8) unsigned char impl[48];
    char *arena; /* malloc'd lazily; kept across requests up to a modest size */
    size_t arena_len, arena_cap;
    size_t head_bytes, body_bytes;
    uint32_t target_off, target_len, body_off;
    tether_http_hdr_span_t spans[TETHER_HTTP_MAX_HEADERS];
    size_t nspans;
    int last_cb;     /* which data callback ran last (to join split pieces) */
    bool started;    /* a request has begun (first byte seen) */
    bool head_done;  /* header section complete */
    bool complete;   /* a whole request is waiting in req */
    bool expect_due; /* EXPECT must still be reported for this request */
    bool dead;       /* an error was returned; only free() (then init()) now */
    /* set when tether_http_feed() fails */
    int error_status;         /* HTTP status to answer with: 400, 413, 505 */
    const char *error_detail; /* static text for the "detail" member */
    tether_http_request_t req;
} tether_http_parser_t;

/* Prepares *p for a new connection. Allocates nothing. */
TETHER_API void tether_http_parser_init(tether_http_parser_t *p);

/* Releases the arena. *p may be initialised again afterwards. */
TETHER_API void tether_http_parser_free(tether_http_parser_t *p);

/* Feeds data[0..len). Sets *consumed to the bytes used; when the result is
 * TETHER_HTTP_REQUEST or TETHER_HTTP_EXPECT the rest (data + *consumed) must
 * be fed again after handling it (for a REQUEST, after tether_http_next()).
 * Errors, after which the connection must answer error_status and close:
 *   TETHER_EPROTO  malformed HTTP (error_status 400; 417 for an unknown
 *                  expectation, 505 for a version other than 1.x)
 *   TETHER_ELIMIT  head or body over its limit, too many fields (413), a
 *                  request-target over 8 KiB (414)
 *   TETHER_ENOMEM  arena allocation failed (error_status 500) */
TETHER_API int tether_http_feed(tether_http_parser_t *p, const char *data, size_t len,
                                size_t *consumed);

/* Drops the request returned by the last TETHER_HTTP_REQUEST and readies the
 * parser for the next one on the same connection. */
TETHER_API void tether_http_next(tether_http_parser_t *p);

/* True while a request has started but is not complete (a timeout now is
 * a 408 rather than an idle close). */
TETHER_API bool tether_http_in_progress(const tether_http_parser_t *p);

/* First header field called `name` (case-insensitive), or NULL. */
TETHER_API const char *tether_http_header(const tether_http_request_t *r, const char *name,
                                          size_t *value_len);

/* Standard reason phrase for a status code ("Unknown" if none). */
TETHER_API const char *tether_http_reason(int status);

/* Writes a response head: status line, Content-Type (omitted when NULL),
 * Content-Length, Connection: close when `close`, then `extra` verbatim
 * (zero or more complete "Name: value\r\n" lines, may be NULL) and the
 * blank line. TETHER_ENOSPC when buf[cap] is too small. */
TETHER_API int tether_http_format_head(char *buf, size_t cap, int status, const char *ctype,
                                       size_t content_length, bool close, const char *extra,
                                       size_t *out_len);

#endif
