/* Admin endpoint internals: what its parts share (see ../admin.h for the
 * contract the process sees).
 *
 *   http_conn.c  one HTTP/1.1 connection on libuv: reading, the sans-I/O
 *                parser (lib/util/http.c), ordered answers, write-side
 *                shutdown and lingering, timers, the listener
 *   respond.c    answers: head + body, JSON bodies, {"error", "detail"}
 *   routes.c     the route table, bearer-token auth, the small routes
 *   metrics.c    /stats and its Prometheus rendering on /metrics
 *   config_dump.c  GET /config from the config key table
 *   devices.c    /devices and operator CoAP requests
 *   shared.c     /cluster and /credentials: the cluster's shared state
 *   coap_bridge.c  CoAP <-> JSON for those requests, CoAP <-> HTTP (RFC 8075)
 *   http_coap.c  /coap/{device}/{path}: HTTP-to-CoAP and event streams
 *   abuf.c       growable output buffers
 *
 * A handler answers the request it is given before it returns, with one
 * of the respond functions, or parks the connection (admin_conn_park) and
 * answers later; nothing after a parked request is parsed meanwhile. */
#ifndef TETHERD_ADMIN_CONN_H
#define TETHERD_ADMIN_CONN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../admin.h"
#include "tether/container.h"
#include "tether/creds.h"
#include "tether/http.h"

#define ADMIN_READ_BUF 16384

typedef struct tetherd_admin_conn admin_conn_t;

struct tetherd_admin_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    tetherd_admin_t *a;
    tether_lnode_t ln; /* in a->conns */
    tether_http_parser_t http;
    tetherd_abuf_t out[2]; /* out[fill] collects answers; the other one is being written */
    int fill;
    size_t rlen, roff; /* unparsed input is rbuf[roff..rlen) */
    int handles;       /* libuv handles not yet closed */
    bool reading, writing, closing, close_after_flush, shutting, lingering, peer_eof;
    /* the request being answered */
    bool head_only, http10_keep_alive;
    int status;
    /* a parked request waiting for its answer (a->waiting list) */
    bool waiting, in_send, resume;
    uint64_t wait_id;
    uint32_t wait_ms;
    void (*wait_timeout)(admin_conn_t *c); /* answers when wait_ms passes */
    tether_lnode_t wln;                    /* in a->waiting while `waiting` */
    /* an HTTP-to-CoAP request (http_coap.c) rather than an operator's */
    bool http_coap;
    bool validating;                     /* the client's If-None-Match became CoAP ETags */
    bool streaming;                      /* Accept: text/event-stream: an Observe stream */
    bool stream_started;                 /* its head went out; answers are events now */
    char widentity[TETHER_IDENTITY_MAX]; /* its client identity ("" the operator) */
    /* a block-wise answer being collected (RFC 7959 §2.4): the request to
     * ask again with the next Block2, and the representation so far */
    uint8_t *creq;
    uint16_t creq_len, wmid;
    uint8_t wetag_len;
    uint8_t wetag[8];
    tetherd_abuf_t wbody;
    char wdevice[TETHER_IDENTITY_MAX];
    char wmethod[8];
    char wpath[128];
    char peer[64];
    char peer_ip[48]; /* its address alone, "" when unknown (admin_max_connections_per_address) */
    char rbuf[ADMIN_READ_BUF];
};

/* --- abuf.c: growable buffers, always NUL-terminated once grown ---------- */

/* Makes room for `more` bytes plus a NUL. 0 or TETHER_ENOMEM. */
int tetherd_abuf_reserve(tetherd_abuf_t *b, size_t more);
/* Appends n bytes. 0 or TETHER_ENOMEM. */
int tetherd_abuf_put(tetherd_abuf_t *b, const void *data, size_t n);
/* Appends formatted text. 0, TETHER_EINVAL or TETHER_ENOMEM. */
int tetherd_abuf_printf(tetherd_abuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void tetherd_abuf_free(tetherd_abuf_t *b);

/* --- http_conn.c: the connection engine --------------------------------- */

/* Starts closing the connection (memory goes when libuv has closed its
 * handles); safe to call more than once. A parked request is dropped. */
void admin_conn_close(admin_conn_t *c);
/* Parks c waiting for the answer numbered `id`: the answer must come from
 * admin_conn_answered() after a respond call, or from `on_timeout` (which
 * responds) after `ms`. `r` names the request in the log. */
void admin_conn_park(admin_conn_t *c, uint64_t id, uint32_t ms, const tether_http_request_t *r,
                     void (*on_timeout)(admin_conn_t *c));
/* Appends n bytes of a parked request's streamed answer and writes them
 * out; false (nothing queued) when more than the output bound waits: a
 * client that does not read is not buffered for without end. */
bool admin_conn_push(admin_conn_t *c, const void *data, size_t n);
/* Re-arms a parked request's timer at c->wait_ms from now. A stream's
 * on_timeout that leaves it parked is called again after wait_ms. */
void admin_conn_rearm(admin_conn_t *c);
/* The parked connection waiting for `id`, NULL when none. */
admin_conn_t *admin_conn_parked(tetherd_admin_t *a, uint64_t id);
/* Unparks c without an answer (the caller responds itself). */
void admin_conn_unpark(admin_conn_t *c);
/* c's parked request was answered: log it and go on with the connection
 * from a fresh loop iteration (unless still inside the handler, c->in_send:
 * then the engine goes on as after any handler). */
void admin_conn_answered(admin_conn_t *c);

/* --- respond.c ----------------------------------------------------------- */

/* Queues one answer to the current request: head, then the body unless
 * the request was HEAD. `extra` holds complete header lines or is NULL. */
void admin_respond(admin_conn_t *c, int status, const char *ctype, const char *body, size_t blen,
                   const char *extra);
/* Serialises j (borrowed; NULL answers 500) as the body of a JSON answer. */
void admin_respond_json(admin_conn_t *c, int status, const json_t *j, const char *extra);
/* Sends `j` (an object, or NULL for a new one; the reference is taken)
 * with "error": "<reason phrase, lower case>" and "detail": `detail`. */
void admin_respond_error_obj(admin_conn_t *c, int status, const char *extra, json_t *j,
                             const char *detail);
/* {"error": "<reason phrase, lower case>", "detail": "<fmt...>"}. */
void admin_respond_error(admin_conn_t *c, int status, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The request body as JSON; NULL after answering 400 with jansson's line,
 * column and reason. */
json_t *admin_parse_body(admin_conn_t *c, const tether_http_request_t *r);
/* A JSON string, or a marker when the bytes are not UTF-8 (argv, env,
 * device names). */
json_t *admin_jstr(const char *s);

/* --- routes.c ------------------------------------------------------------ */

/* Routes one complete request (auth, method) to its handler. */
void admin_route(admin_conn_t *c, const tether_http_request_t *r);

/* --- handlers in the other parts ---------------------------------------- */

typedef void (*admin_handler_fn)(admin_conn_t *c, const tether_http_request_t *r);

void admin_h_stats(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_metrics(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_config(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_devices(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_device(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_device_request(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_cluster(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_observations(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_credential(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_coap(admin_conn_t *c, const tether_http_request_t *r);
void admin_h_groups(admin_conn_t *c, const tether_http_request_t *r);

/* http_coap.c: delivers a CoAP answer to c, parked by admin_h_coap. */
void admin_coap_http_answer(admin_conn_t *c, const uint8_t *msg, size_t len);

/* routes.c: the bearer token of r (blanks skipped) into *tok, *len; false
 * after answering 401 when there is none. */
bool admin_bearer(admin_conn_t *c, const tether_http_request_t *r, const char **tok, size_t *len);
/* True when tok[0..len) is the configured admin token (constant time in
 * its length); false too when none is configured. */
bool admin_token_ok(const tetherd_admin_t *a, const char *tok, size_t len);
/* A request refused for its token: counted (admin.auth_failures) and
 * logged as `msg`, at most ADMIN_AUTHLOG_BURST lines per window
 * (authlog.h). */
void admin_auth_failed(admin_conn_t *c, const char *msg);

#endif
