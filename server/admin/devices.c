/* The device routes (SPEC S6): GET /devices (paged, filtered),
 * GET/DELETE /devices/{name}, and POST /devices/{name}/request, an operator
 * CoAP request whose HTTP answer waits (a parked connection, see conn.h)
 * for the node's CoAP answer. The directory and the node are reached only
 * through the process's hooks. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap_bridge.h"
#include "conn.h"
#include "tether/common.h"
#include "tether/log.h"

#define LIST_DEFAULT 100 /* GET /devices page size */
#define LIST_MAX 1000
#define REQ_TIMEOUT_SLACK_MS 1000 /* default wait: the node's request timeout plus this */

/* The {name} of /devices/{name}[/...], decoded into name[cap]. Answers 400
 * and returns false when it cannot be decoded. */
static bool path_device(admin_conn_t *c, const tether_http_request_t *r, char *name, size_t cap)
{
    const size_t pre = sizeof "/devices/" - 1;
    const char *seg = r->path + pre, *end = r->path + r->path_len;
    const char *slash = memchr(seg, '/', (size_t)(end - seg));
    if (admin_pct_decode(seg, (size_t)((slash ? slash : end) - seg), false, name, cap) < 0) {
        admin_respond_error(
            c, 400, NULL, "bad device name in the path (bad %%-escape or over %zu bytes)", cap - 1);
        return false;
    }
    return true;
}

/* A device as JSON, "node" naming the node that holds its tunnel. Times
 * are Unix epoch milliseconds (registered_at_ms, last_seen_ms), converted
 * from the loop's monotonic clock, plus ages. */
static json_t *device_json(const tetherd_admin_t *a, const tether_device_info_t *d)
{
    uint64_t now = uv_now(a->loop);
    uv_timeval64_t tv;
    int64_t wall = uv_gettimeofday(&tv) == 0 ? tv.tv_sec * 1000 + tv.tv_usec / 1000 : 0;
    uint64_t reg_age = now > d->registered_at ? now - d->registered_at : 0;
    uint64_t seen_age = now > d->last_seen ? now - d->last_seen : 0;
    char addr[64];
    tether_addr_str(&d->addr, addr, sizeof addr);
    return json_pack(
        "{s:o, s:s, s:i, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:o, s:I, s:I, s:o}", "name",
        admin_jstr(d->name), "regid", d->regid, "node", (int)d->node_id, "online", (int)d->online,
        "queue_mode", (int)d->queue_mode, "lifetime_s", (json_int_t)d->lifetime_s,
        "registered_at_ms", (json_int_t)(wall - (int64_t)reg_age), "last_seen_ms",
        (json_int_t)(wall - (int64_t)seen_age), "last_seen_ago_ms", (json_int_t)seen_age,
        "expires_in_s", (json_int_t)(d->expires > now ? (d->expires - now) / 1000 : 0), "addr",
        addr, "nat_binding_min_ms", (json_int_t)d->nat_binding_min_ms, "nat_binding_max_ms",
        d->nat_binding_max_ms ? json_integer(d->nat_binding_max_ms) : json_null(), "keepalive_ms",
        (json_int_t)d->keepalive_ms, "queued", (json_int_t)d->queued, "links",
        admin_jstr(d->links));
}

/* Answers 501 and returns false when the process wired no device hooks. */
static bool have_device_hooks(admin_conn_t *c, const tether_http_request_t *r)
{
    const tetherd_admin_hooks_t *h = &c->a->hooks;
    if (h->device && h->device_next && h->device_remove && h->coap_send)
        return true;
    admin_respond_error(c, 501, NULL, "%s %.*s is not available in this process", r->method_name,
                        (int)(r->path_len > 200 ? 200 : r->path_len), r->path);
    return false;
}

typedef struct {
    long limit;
    int online; /* -1: any */
    bool has_cursor, has_glob;
    char cursor[16];
    char glob[2 * TETHER_IDENTITY_MAX];
} list_query_t;

/* Parses ?limit=&cursor=&online=&name= (each at most once, nothing else).
 * Answers 400 and returns false on anything bad. */
static bool parse_list_query(admin_conn_t *c, const tether_http_request_t *r, list_query_t *q)
{
    *q = (list_query_t){.limit = LIST_DEFAULT, .online = -1};
    unsigned seen = 0;
    const char *p = r->query, *end = r->query + r->query_len;
    for (; p && p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        char key[16], val[sizeof q->glob];
        if (item_end == p) {
            p = item_end + 1;
            continue;
        }
        if (!eq || admin_pct_decode(p, (size_t)(eq - p), true, key, sizeof key) < 0 ||
            admin_pct_decode(eq + 1, (size_t)(item_end - eq - 1), true, val, sizeof val) < 0) {
            admin_respond_error(c, 400, NULL, "bad query parameter '%.*s' (expected key=value)",
                                (int)(item_end - p > 100 ? 100 : item_end - p), p);
            return false;
        }
        static const char *const keys[] = {"limit", "cursor", "online", "name"};
        unsigned k = 0;
        while (k < 4 && strcmp(key, keys[k]) != 0)
            k++;
        if (k == 4 || (seen & (1u << k))) {
            admin_respond_error(c, 400, NULL,
                                "%s query parameter '%s' (known: limit, cursor, "
                                "online, name; each once)",
                                k == 4 ? "unknown" : "repeated", key);
            return false;
        }
        seen |= 1u << k;
        char *e = NULL;
        if (k == 0) {
            q->limit = strtol(val, &e, 10);
            if (!*val || *e || q->limit < 1 || q->limit > LIST_MAX) {
                admin_respond_error(c, 400, NULL, "limit must be an integer from 1 to %d",
                                    LIST_MAX);
                return false;
            }
        } else if (k == 1) {
            size_t n = strlen(val);
            if (n == 0 || n >= sizeof q->cursor || strspn(val, "0123456789abcdef") != n) {
                admin_respond_error(c, 400, NULL,
                                    "cursor must be a next_cursor value from a listing");
                return false;
            }
            memcpy(q->cursor, val, n + 1);
            q->has_cursor = true;
        } else if (k == 2) {
            if (strcmp(val, "true") != 0 && strcmp(val, "false") != 0) {
                admin_respond_error(c, 400, NULL, "online must be true or false");
                return false;
            }
            q->online = val[0] == 't';
        } else {
            memcpy(q->glob, val, strlen(val) + 1);
            q->has_glob = true;
        }
        p = item_end + 1;
    }
    return true;
}

/* GET /devices: registration order, filtered while paging, so a page
 * holds fewer than `limit` devices only at the end of the listing. */
void admin_h_devices(admin_conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    list_query_t q;
    if (!have_device_hooks(c, r) || !parse_list_query(c, r, &q))
        return;
    json_t *list = json_array();
    tether_device_info_t info;
    long n = 0;
    bool has = q.has_cursor;
    while (list && n < q.limit &&
           a->hooks.device_next(has ? q.cursor : NULL, &info, a->hooks.user) == 0) {
        snprintf(q.cursor, sizeof q.cursor, "%s", info.regid);
        has = true;
        if ((q.online >= 0 && info.online != (q.online == 1)) ||
            (q.has_glob && fnmatch(q.glob, info.name, 0) != 0))
            continue;
        json_array_append_new(list, device_json(a, &info));
        n++;
    }
    bool more = n == q.limit && a->hooks.device_next(q.cursor, &info, a->hooks.user) == 0;
    json_t *j = json_pack("{s:o, s:o}", "devices", list, "next_cursor",
                          more ? json_string(q.cursor) : json_null());
    if (!j) {
        admin_respond_error(c, 500, NULL, "building the listing failed");
        return;
    }
    admin_respond_json(c, 200, j, NULL);
    json_decref(j);
}

/* GET /devices/{name}: the device; DELETE: removes its registration (its
 * pending requests get 5.02). */
void admin_h_device(admin_conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    char name[TETHER_IDENTITY_MAX];
    tether_device_info_t info;
    if (!have_device_hooks(c, r) || !path_device(c, r, name, sizeof name))
        return;
    if (r->method == TETHER_HTTP_M_DELETE) {
        if (a->hooks.device_remove(name, a->hooks.user) < 0) {
            admin_respond_error(c, 404, NULL, "no device named '%s'", name);
            return;
        }
        tether_log_kv(TETHER_LOG_INFO, "admin", "device removed", "ep", name, "peer", c->peer,
                      NULL);
        json_t *j = json_pack("{s:o, s:b}", "name", admin_jstr(name), "removed", 1);
        admin_respond_json(c, 200, j, NULL);
        json_decref(j);
        return;
    }
    if (a->hooks.device(name, &info, a->hooks.user) < 0) {
        admin_respond_error(c, 404, NULL, "no device named '%s'", name);
        return;
    }
    json_t *j = device_json(a, &info);
    if (!j) {
        admin_respond_error(c, 500, NULL, "building the device failed");
        return;
    }
    admin_respond_json(c, 200, j, NULL);
    json_decref(j);
}

static void request_timed_out(admin_conn_t *c)
{
    admin_respond_error(c, 504, NULL, "no answer from the device within %u ms", c->wait_ms);
}

/* POST /devices/{name}/request: a CoAP request down the device's tunnel.
 * The answer is deferred until tetherd_admin_coap_answer() or the
 * timeout (504). */
void admin_h_device_request(admin_conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    static tetherd_coap_req_t req;
    char name[TETHER_IDENTITY_MAX], err[256];
    tether_device_info_t info;
    if (!have_device_hooks(c, r) || !path_device(c, r, name, sizeof name))
        return;
    json_t *body = admin_parse_body(c, r);
    if (!body)
        return;
    uint64_t id = ++a->next_id;
    int rc = tetherd_coap_req_from_json(body, name, id,
                                        a->cfg->proxy_request_timeout_ms + REQ_TIMEOUT_SLACK_MS,
                                        &req, err, sizeof err);
    json_decref(body);
    if (rc < 0) {
        admin_respond_error(c, rc == TETHER_ENOSPC ? 413 : 400, NULL, "%s", err);
        return;
    }
    if (a->hooks.device(name, &info, a->hooks.user) < 0) {
        admin_respond_error(c, 404, NULL, "no device named '%s'", name);
        return;
    }
    admin_conn_park(c, id, req.timeout_ms, r, request_timed_out);
    c->in_send = true;
    rc = a->hooks.coap_send(id, req.buf, req.len, a->hooks.user);
    c->in_send = false;
    if (rc < 0 && c->waiting) {
        admin_conn_unpark(c);
        admin_respond_error(c, 503, NULL, "cannot send the request: %s", tether_strerror(rc));
    }
}

int tetherd_admin_coap_answer(tetherd_admin_t *a, uint64_t id, const uint8_t *msg, size_t len)
{
    admin_conn_t *c = admin_conn_parked(a, id);
    if (!c)
        return TETHER_ENOTFOUND;
    if (c->http_coap) { /* an HTTP-to-CoAP request (http_coap.c) */
        admin_coap_http_answer(c, msg, len);
        return 0;
    }
    if (len >= 2 && msg[1] == TETHER_COAP_EMPTY)
        return 0; /* an empty ACK: the separate response comes later */
    uint8_t code = 0;
    json_t *j = tetherd_coap_resp_to_json(&a->optreg, msg, len, &code);
    char detail[160] = "";
    int status = 200;
    if (!j) {
        status = 502;
        snprintf(detail, sizeof detail, "the CoAP answer could not be parsed");
    } else if (c->in_send) {
        /* Answered before the request left the node: tether's own verdict. */
        if (code == TETHER_COAP_NOT_FOUND)
            status = 404;
        else if (code == TETHER_COAP_SERVICE_UNAVAILABLE)
            status = 503;
        else if (TETHER_COAP_CLASS(code) >= 4)
            status = 502;
    } else if (code == TETHER_COAP_GATEWAY_TIMEOUT) {
        status = 504;
    } else if (code == TETHER_COAP_BAD_GATEWAY) {
        status = 502;
    }
    if (status == 200) {
        admin_respond_json(c, 200, j, NULL);
        json_decref(j);
    } else {
        json_t *p = json_object_get(j, "payload");
        char cs[6];
        const char *why = c->in_send           ? "tether refused the request"
                          : status == 504      ? "no response from the device in time"
                          : status == 502 && j ? "the device went away"
                                               : "bad answer";
        if (!detail[0])
            snprintf(detail, sizeof detail, "%s (CoAP %s%s%s)", why, tether_coap_code_str(code, cs),
                     json_string_length(p) ? ": " : "",
                     json_string_length(p) ? json_string_value(p) : "");
        admin_respond_error_obj(c, status, NULL, j, detail);
    }
    admin_conn_answered(c);
    return 0;
}
