/* HTTP-to-CoAP on the admin port (RFC 8075, SPEC S4, S11):
 * GET/PUT/POST/DELETE /coap/{device}/{path}?{query}.
 *
 * Who asks: `Authorization: Bearer <token>`, either the operator's
 * admin_token (trusted for every device, like POST /devices/{name}/request)
 * or the HTTP token of a client credential, which makes the request that
 * client's: its ACL applies exactly as over CoAP. No token: 401; a token
 * nobody has: 401 (RFC 6750 §3.1 invalid_token); a client outside its ACL
 * gets the node's 4.03, i.e. 403.
 *
 * The request (coap_bridge.c maps it) enters the node on an HTTP link of
 * its own (TETHER_LINK_HTTP) and takes the path a CoAP client's takes:
 * ACL, cache, block-wise, queue mode. The connection is parked (conn.h)
 * until the answer, which coap_bridge.c maps back to HTTP.
 *
 * Event streams: `Accept: text/event-stream` on a GET registers an
 * observer (Observe: 0, RFC 7641) and answers 200 text/event-stream once
 * the first notification comes; every notification is then one event
 * ("id: <Observe value>", the payload as "data:" lines, or base64 under
 * "event: base64" when it is not UTF-8 text). A response that ends the
 * observation becomes a last event ("event: end") and the stream closes.
 * When the HTTP client disconnects, the link goes down and the observer is
 * deregistered (http_conn.c, admin_conn_unpark). An identity holds at most
 * admin_coap_streams_per_identity streams (429 beyond); a stream whose
 * client reads too slowly for the output bound is closed. A client holds
 * at most admin_coap_waiting_per_identity parked requests, streams
 * included (429 beyond): each keeps one of the admin_max_connections
 * connections the operator and every other client share, for up to the
 * queue TTL (a sleeping device) or for good (a stream), and the node's
 * own per-client bound (proxy.max_pending_per_client) is far larger. A comment line
 * every STREAM_KEEPALIVE_MS keeps proxies from timing the stream out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include "coap_bridge.h"
#include "conn.h"
#include "tether/common.h"
#include "tether/log.h"

#define WAIT_SLACK_MS 1000        /* beyond the node's own timeouts */
#define STREAM_KEEPALIVE_MS 15000 /* an SSE comment this often */

/* The requester: "" for the operator's token, else the client identity.
 * Answers 401/501 and returns false when there is none. */
static bool who(admin_conn_t *c, const tether_http_request_t *r, char *identity, size_t cap)
{
    const tetherd_admin_hooks_t *h = &c->a->hooks;
    const char *tok;
    size_t len;
    if (!h->coap_send_as || !h->http_identity) {
        admin_respond_error(c, 501, NULL, "HTTP-to-CoAP is not available in this process");
        return false;
    }
    if (!admin_bearer(c, r, &tok, &len))
        return false;
    identity[0] = 0;
    if (admin_token_ok(c->a, tok, len))
        return true;
    if (h->http_identity(tok, len, identity, cap, h->user) == 0)
        return true;
    admin_auth_failed(c, "unknown HTTP token");
    admin_respond_error(c, 401,
                        "WWW-Authenticate: Bearer realm=\"tether\", error=\"invalid_token\"\r\n",
                        "the token is neither the admin token nor a client's http_token");
    return false;
}

/* HTTP-to-CoAP requests `identity` has parked, and of them event streams.
 * Bounded by admin_max_connections. */
static size_t waiting_of(const tetherd_admin_t *a, const char *identity, size_t *streams)
{
    size_t n = 0;
    *streams = 0;
    for (const tether_lnode_t *l = a->waiting.head; l; l = l->next) {
        const admin_conn_t *o = container_of(l, admin_conn_t, wln);
        if (o->http_coap && strcmp(o->widentity, identity) == 0) {
            n++;
            *streams += o->streaming;
        }
    }
    return n;
}

/* c stops being an event stream (it never started one). */
static void stream_off(admin_conn_t *c)
{
    if (c->streaming && c->waiting)
        c->a->nstreams--;
    c->streaming = false;
}

static void request_timed_out(admin_conn_t *c)
{
    if (c->streaming && c->stream_started) { /* keep-alive comment; stays parked */
        static const char ka[] = ": keep-alive\n\n";
        if (!admin_conn_push(c, ka, sizeof ka - 1))
            admin_conn_close(c);
        return;
    }
    stream_off(c); /* it never started: an ordinary answer */
    admin_respond_error(c, 504, NULL, "no answer from the device within %u ms", c->wait_ms);
}

void admin_h_coap(admin_conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    static tetherd_http_coap_req_t req;
    char identity[TETHER_IDENTITY_MAX], err[256];
    if (!who(c, r, identity, sizeof identity))
        return;
    uint64_t id = ++a->next_id;
    if (tetherd_coap_req_from_http(r, id, &req, err, sizeof err) < 0) {
        admin_respond_error(c, req.status, NULL, "%s", err);
        return;
    }
    size_t streams, waiting = waiting_of(a, identity, &streams);
    if (req.stream && streams >= a->cfg->admin_coap_streams) {
        admin_respond_error(c, 429, NULL,
                            "%s holds %u event streams already (admin_coap_streams_per_identity)",
                            identity[0] ? identity : "the operator", a->cfg->admin_coap_streams);
        return;
    }
    if (identity[0] && waiting >= a->cfg->admin_coap_waiting) { /* the operator is trusted */
        admin_respond_error(c, 429, NULL,
                            "%s has %u requests waiting already (admin_coap_waiting_per_identity)",
                            identity, a->cfg->admin_coap_waiting);
        return;
    }
    /* A queued request (queue mode) is answered by the node at its TTL. */
    uint32_t ms = a->cfg->proxy_request_timeout_ms > a->cfg->proxy_queue_ttl_ms
                      ? a->cfg->proxy_request_timeout_ms
                      : a->cfg->proxy_queue_ttl_ms;
    admin_conn_park(c, id, ms + WAIT_SLACK_MS, r, request_timed_out);
    c->http_coap = true;
    c->validating = req.validating;
    c->streaming = req.stream;
    c->stream_started = false;
    a->nstreams += req.stream;
    snprintf(c->widentity, sizeof c->widentity, "%s", identity);
    snprintf(c->wdevice, sizeof c->wdevice, "%s", req.device);
    /* kept to ask for later blocks of a block-wise answer */
    if (!req.stream && (c->creq = malloc(req.len))) {
        memcpy(c->creq, req.buf, req.len);
        c->creq_len = (uint16_t)req.len;
        c->wmid = (uint16_t)id;
    }
    c->in_send = true;
    int rc =
        a->hooks.coap_send_as(id, identity[0] ? identity : NULL, req.buf, req.len, a->hooks.user);
    c->in_send = false;
    if (rc < 0 && c->waiting) {
        admin_conn_unpark(c);
        admin_respond_error(c, 503, NULL, "cannot send the request: %s", tether_strerror(rc));
    }
}

/* The payload as "data:" lines when it is UTF-8 text without NUL or CR,
 * else base64 under "event: base64". */
static bool sse_event(admin_conn_t *c, const tetherd_http_coap_resp_t *h, const char *event)
{
    tetherd_abuf_t ev = {0};
    bool text = true;
    for (size_t i = 0; i < h->payload_len && text; i++)
        text = h->payload[i] != 0 && h->payload[i] != '\r';
    char cs[6];
    int rc = 0;
    if (h->has_observe)
        rc |= tetherd_abuf_printf(&ev, "id: %u\n", (unsigned)h->observe);
    if (event)
        rc |= tetherd_abuf_printf(&ev, "event: %s\ndata: %s\n", event,
                                  tether_coap_code_str(h->code, cs));
    if (!text) {
        word32 bl = (word32)(4 * ((h->payload_len + 2) / 3) + 1);
        char *b = malloc(bl);
        if (!b || Base64_Encode_NoNl(h->payload, (word32)h->payload_len, (byte *)b, &bl) != 0)
            rc = TETHER_ENOMEM;
        else
            rc |= tetherd_abuf_printf(&ev, "%sdata: %.*s\n", event ? "" : "event: base64\n",
                                      (int)bl, b);
        free(b);
    } else {
        const uint8_t *p = h->payload, *end = p + h->payload_len;
        while (p < end) { /* one "data:" line per line of the payload */
            const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
            const uint8_t *q = nl ? nl : end;
            rc |= tetherd_abuf_printf(&ev, "data: %.*s\n", (int)(q - p), (const char *)p);
            p = q + 1;
        }
        if (h->payload_len == 0 && !event)
            rc |= tetherd_abuf_printf(&ev, "data:\n");
    }
    rc |= tetherd_abuf_put(&ev, "\n", 1);
    bool ok = rc == 0 && admin_conn_push(c, ev.p, ev.len);
    tetherd_abuf_free(&ev);
    return ok;
}

/* The first notification: the stream's head. */
static bool sse_start(admin_conn_t *c)
{
    static const char head[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Cache-Control: no-store\r\n"
                               "X-Accel-Buffering: no\r\n"
                               "Connection: close\r\n\r\n";
    c->status = 200;
    c->stream_started = true;
    c->close_after_flush = false;
    c->wait_ms = STREAM_KEEPALIVE_MS;
    admin_conn_rearm(c);
    return admin_conn_push(c, head, sizeof head - 1);
}

/* One block of a block-wise answer (RFC 7959 §2.4): appended to c->wbody;
 * while more follow, the next one is asked for (tether serves them from
 * the whole representation it reassembled). Returns 1 when it was, 0 at
 * the last block (c->wbody is the representation), -1 after answering an
 * error: a block out of order, another version (ETag) than the first
 * block's, more than proxy.block_max_bytes, or a request that cannot be
 * sent. Never a part passed off as the whole. */
static int collect_block(admin_conn_t *c, const tetherd_http_coap_resp_t *h)
{
    tetherd_admin_t *a = c->a;
    size_t bsize = (size_t)16 << h->block_szx;
    if (c->wbody.len == 0 && h->block_num == 0) {
        c->wetag_len = h->etag_len;
        memcpy(c->wetag, h->etag, h->etag_len);
    }
    const char *bad = NULL;
    if (!c->creq)
        bad = "block-wise answer to a request that cannot be repeated";
    else if ((size_t)h->block_num * bsize != c->wbody.len)
        bad = "a block out of order";
    else if (h->etag_len != c->wetag_len || memcmp(h->etag, c->wetag, h->etag_len) != 0)
        bad = "the representation changed during the transfer (ETag)";
    else if (c->wbody.len + h->payload_len > a->cfg->proxy_block_max_bytes)
        bad = "the representation is larger than proxy.block_max_bytes";
    else if (tetherd_abuf_put(&c->wbody, h->payload, h->payload_len) < 0)
        bad = "out of memory";
    if (!bad && !h->more_blocks)
        return 0;
    uint8_t next[TETHER_MSG_MAX];
    size_t nl = 0;
    if (!bad && tetherd_coap_req_block(c->creq, c->creq_len, ++c->wmid, h->block_num + 1,
                                       h->block_szx, next, sizeof next, &nl) < 0)
        bad = "cannot ask for the next block";
    if (!bad && a->hooks.coap_send_as(c->wait_id, c->widentity[0] ? c->widentity : NULL, next, nl,
                                      a->hooks.user) < 0)
        bad = "cannot ask for the next block";
    if (!bad)
        return 1;
    admin_respond_error(c, 502, NULL, "block-wise answer from %s: %s", c->wdevice, bad);
    return -1;
}

void admin_coap_http_answer(admin_conn_t *c, const uint8_t *msg, size_t len)
{
    if (len >= 2 && msg[1] == TETHER_COAP_EMPTY)
        return; /* an empty ACK: the (separate) response comes later */
    tetherd_http_coap_resp_t h;
    if (tetherd_coap_resp_to_http(msg, len, c->wdevice, c->validating, &h) < 0) {
        if (c->stream_started) {
            admin_conn_close(c);
            return;
        }
        stream_off(c);
        admin_respond_error(c, 502, NULL, "the CoAP answer could not be parsed");
        admin_conn_answered(c);
        return;
    }
    if (c->streaming) {
        bool notification = h.code == TETHER_COAP_CONTENT && h.has_observe;
        if (!c->stream_started && notification && !sse_start(c)) {
            admin_conn_close(c);
            return;
        }
        if (c->stream_started) {
            if (!sse_event(c, &h, notification ? NULL : "end")) {
                admin_conn_close(c);
                return;
            }
            if (notification)
                return; /* parked for the next one */
            /* the observation ended: so does the stream */
            c->close_after_flush = true;
            admin_conn_answered(c);
            return;
        }
        /* Refused or not observable before any event: a plain answer. */
        stream_off(c);
    }
    if (h.has_block2 && h.code == TETHER_COAP_CONTENT) {
        int more = collect_block(c, &h);
        if (more > 0)
            return; /* the next block was asked for */
        if (more < 0) {
            admin_conn_answered(c);
            return;
        }
        h.payload = (const uint8_t *)c->wbody.p; /* the whole representation */
        h.payload_len = c->wbody.len;
    }
    const char *ctype = h.ctype[0] ? h.ctype : NULL;
    if (!ctype && h.payload_len && h.status >= 400)
        ctype = "text/plain; charset=utf-8"; /* a diagnostic payload (RFC 7252 §5.5.2) */
    bool bodyless = h.status == 204 || h.status == 304;
    admin_respond(c, h.status, ctype, (const char *)h.payload, bodyless ? 0 : h.payload_len,
                  h.headers[0] ? h.headers : NULL);
    admin_conn_answered(c);
}
