/* The admin endpoint's routes (SPEC S6): the table, bearer-token auth,
 * 404/405/501 for what no handler serves, and the small routes (/health,
 * /ready, /log-level). The other handlers live with their subject:
 * metrics.c, config_dump.c, devices.c. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "tether/common.h"
#include "tether/log.h"

typedef struct {
    const char *pattern; /* '*' one path segment, '**' the (non-empty) rest */
    unsigned methods;    /* bits of tether_http_method_t; GET implies HEAD */
    bool auth;
    admin_handler_fn fn; /* NULL: 501 for now */
} route_t;

#define M(m) (1u << (m))

static void h_health(admin_conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    static const char ok[] = "{\"status\":\"ok\"}\n";
    admin_respond(c, 200, "application/json", ok, sizeof ok - 1, NULL);
}

static void h_ready(admin_conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    tetherd_admin_t *a = c->a;
    json_t *j = json_object();
    if (!j) {
        admin_respond_json(c, 500, NULL, NULL);
        return;
    }
    json_object_set_new(j, "ready", json_false());
    bool ready = !a->draining;
    if (!ready)
        json_object_set_new(j, "detail", json_string("draining"));
    else if (a->hooks.ready)
        ready = a->hooks.ready(j, a->hooks.user);
    json_object_set_new(j, "ready", json_boolean(ready));
    if (!ready) {
        json_object_set_new(j, "error", json_string("not ready"));
        if (!json_is_string(json_object_get(j, "detail")))
            json_object_set_new(j, "detail", json_string("not ready"));
    }
    admin_respond_json(c, ready ? 200 : 503, j, NULL);
    json_decref(j);
}

static void reply_level(admin_conn_t *c, tether_log_level_t lvl, const char *previous)
{
    json_t *j = previous ? json_pack("{s:s, s:s}", "level", tether_log_level_name(lvl), "previous",
                                     previous)
                         : json_pack("{s:s}", "level", tether_log_level_name(lvl));
    admin_respond_json(c, 200, j, NULL);
    json_decref(j);
}

/* GET: the current level. PUT {"level": "debug"}: changes it at runtime. */
static void h_log_level(admin_conn_t *c, const tether_http_request_t *r)
{
    tether_log_level_t old = tether_log_get_level();
    if (r->method != TETHER_HTTP_M_PUT) {
        reply_level(c, old, NULL);
        return;
    }
    json_t *j = admin_parse_body(c, r);
    if (!j)
        return;
    json_t *lv = json_object_get(j, "level");
    tether_log_level_t lvl;
    if (!json_is_object(j) || json_object_size(j) != 1 || !json_is_string(lv)) {
        admin_respond_error(c, 400, NULL, "expected {\"level\": \"error|warn|info|debug\"}");
    } else if (tether_log_level_parse(json_string_value(lv), &lvl) < 0) {
        admin_respond_error(c, 400, NULL, "level must be one of error, warn, info, debug");
    } else {
        /* Log the change at info, on whichever side of it info is enabled. */
        if (lvl >= TETHER_LOG_INFO)
            tether_log_set_level(lvl);
        tether_log_kv(TETHER_LOG_INFO, "admin", "log level changed", "from",
                      tether_log_level_name(old), "to", tether_log_level_name(lvl), NULL);
        tether_log_set_level(lvl);
        reply_level(c, lvl, tether_log_level_name(old));
    }
    json_decref(j);
}

static const route_t routes[] = {
    {"/health", M(TETHER_HTTP_M_GET), false, h_health},
    {"/ready", M(TETHER_HTTP_M_GET), false, h_ready},
    {"/stats", M(TETHER_HTTP_M_GET), true, admin_h_stats},
    {"/metrics", M(TETHER_HTTP_M_GET), true, admin_h_metrics},
    {"/config", M(TETHER_HTTP_M_GET), true, admin_h_config},
    {"/log-level", M(TETHER_HTTP_M_GET) | M(TETHER_HTTP_M_PUT), true, h_log_level},
    {"/devices", M(TETHER_HTTP_M_GET), true, admin_h_devices},
    {"/devices/*", M(TETHER_HTTP_M_GET) | M(TETHER_HTTP_M_DELETE), true, admin_h_device},
    {"/devices/*/request", M(TETHER_HTTP_M_POST), true, admin_h_device_request},
    {"/observations", M(TETHER_HTTP_M_GET), true, admin_h_observations},
    {"/cluster", M(TETHER_HTTP_M_GET), true, admin_h_cluster},
    {"/credentials/*", M(TETHER_HTTP_M_PUT) | M(TETHER_HTTP_M_DELETE), true, admin_h_credential},
    {"/groups", M(TETHER_HTTP_M_GET), true, admin_h_groups},
    {"/groups/*", M(TETHER_HTTP_M_GET) | M(TETHER_HTTP_M_PUT) | M(TETHER_HTTP_M_DELETE), true,
     admin_h_groups},
    /* authenticates itself: the admin token or a client's HTTP token */
    {"/coap/**",
     M(TETHER_HTTP_M_GET) | M(TETHER_HTTP_M_POST) | M(TETHER_HTTP_M_PUT) | M(TETHER_HTTP_M_DELETE),
     false, admin_h_coap},
};

/* Literal characters match themselves; '*' one non-empty segment; '**' at
 * the end the non-empty rest of the path. */
static bool route_match(const char *pat, const char *path, size_t len)
{
    size_t i = 0;
    for (const char *p = pat; *p;) {
        if (p[0] == '*' && p[1] == '*')
            return i < len;
        if (*p == '*') {
            size_t j = i;
            while (j < len && path[j] != '/')
                j++;
            if (j == i)
                return false;
            i = j;
            p++;
            continue;
        }
        if (i >= len || path[i] != *p)
            return false;
        i++;
        p++;
    }
    return i == len;
}

static unsigned allowed(const route_t *rt)
{
    unsigned m = rt->methods;
    return m & M(TETHER_HTTP_M_GET) ? m | M(TETHER_HTTP_M_HEAD) : m;
}

/* "Allow: GET, HEAD, PUT\r\n" for a route. */
static void allow_header(const route_t *rt, char *buf, size_t cap)
{
    static const struct {
        tether_http_method_t m;
        const char *name;
    } names[] = {{TETHER_HTTP_M_GET, "GET"},       {TETHER_HTTP_M_HEAD, "HEAD"},
                 {TETHER_HTTP_M_POST, "POST"},     {TETHER_HTTP_M_PUT, "PUT"},
                 {TETHER_HTTP_M_DELETE, "DELETE"}, {TETHER_HTTP_M_PATCH, "PATCH"}};
    unsigned m = allowed(rt);
    size_t n = (size_t)snprintf(buf, cap, "Allow:");
    const char *sep = " ";
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < cap; i++)
        if (m & M(names[i].m)) {
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", sep, names[i].name);
            sep = ", ";
        }
    if (n < cap)
        snprintf(buf + n, cap - n, "\r\n");
}

/* Constant-time in the configured token's length. */
static bool token_equal(const char *given, size_t glen, const char *want)
{
    size_t wlen = strlen(want);
    unsigned char diff = glen != wlen;
    for (size_t i = 0; i < wlen; i++)
        diff |= (unsigned char)(want[i] ^ (i < glen ? given[i] : 0));
    return diff == 0;
}

bool admin_token_ok(const tetherd_admin_t *a, const char *tok, size_t len)
{
    return a->cfg->admin_token[0] && token_equal(tok, len, a->cfg->admin_token);
}

bool admin_bearer(admin_conn_t *c, const tether_http_request_t *r, const char **tok, size_t *len)
{
    const char *h = tether_http_header(r, "authorization", len);
    if (!h || *len <= 7 || strncasecmp(h, "bearer ", 7) != 0) {
        admin_respond_error(c, 401, "WWW-Authenticate: Bearer realm=\"tether\"\r\n",
                            "missing or malformed \"Authorization: Bearer <token>\" header");
        return false;
    }
    h += 7;
    *len -= 7;
    while (*len && (*h == ' ' || *h == '\t')) {
        h++;
        (*len)--;
    }
    if (*len == 0) {
        admin_respond_error(c, 401, "WWW-Authenticate: Bearer realm=\"tether\"\r\n",
                            "empty bearer token");
        return false;
    }
    *tok = h;
    return true;
}

void admin_auth_failed(admin_conn_t *c, const char *msg)
{
    uint64_t left_out;
    if (admin_authlog_failure(&c->a->authlog, uv_now(c->a->loop), &left_out)) {
        char n[24];
        snprintf(n, sizeof n, "%llu", (unsigned long long)left_out);
        tether_log_kv(TETHER_LOG_INFO, "admin", msg, "peer", c->peer, "not_logged_before", n, NULL);
    }
}

/* Answers 401/403 and returns false unless the request carries the token. */
static bool authorized(admin_conn_t *c, const tether_http_request_t *r)
{
    if (!c->a->cfg->admin_token[0]) {
        admin_respond_error(c, 403, NULL, "admin_token not configured");
        return false;
    }
    const char *tok;
    size_t len;
    if (!admin_bearer(c, r, &tok, &len))
        return false;
    if (!admin_token_ok(c->a, tok, len)) {
        admin_auth_failed(c, "wrong token");
        admin_respond_error(c, 403, NULL, "invalid token");
        return false;
    }
    return true;
}

void admin_route(admin_conn_t *c, const tether_http_request_t *r)
{
    int plen = r->path_len > 200 ? 200 : (int)r->path_len;
    const route_t *rt = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !rt; i++)
        if (route_match(routes[i].pattern, r->path, r->path_len))
            rt = &routes[i];
    if (!rt) {
        admin_respond_error(c, 404, NULL, "no route for %.*s", plen, r->path);
    } else if (rt->auth && !authorized(c, r)) {
        /* answered */
    } else if (!(allowed(rt) & M(r->method))) {
        char allow[96];
        allow_header(rt, allow, sizeof allow);
        admin_respond_error(c, 405, allow, "%s is not allowed on %.*s", r->method_name, plen,
                            r->path);
    } else if (!rt->fn) {
        admin_respond_error(c, 501, NULL, "%s %.*s is not implemented yet", r->method_name, plen,
                            r->path);
    } else {
        rt->fn(c, r);
    }
}
