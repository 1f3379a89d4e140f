/* The group routes (SPEC S6, S11): GET /groups (every group), GET, PUT and
 * DELETE /groups/{name}. PUT takes {"members": ["dev1", ...]} or
 * {"pattern": "GLOB"} and answers 200 with the group; 400 for a bad body,
 * 409 beyond proxy.max_groups or proxy.group_max_members; DELETE answers
 * 200 {"name", "removed": true} or 404. PUT and DELETE go through the
 * state store, so with Redis every node has the group (503 while the
 * store cannot take it). The node is reached only through the process's
 * hooks. */
#include <stdio.h>
#include <string.h>

#include "coap_bridge.h"
#include "conn.h"
#include "tether/common.h"
#include "tether/log.h"

void admin_h_groups(admin_conn_t *c, const tether_http_request_t *r)
{
    const tetherd_admin_hooks_t *h = &c->a->hooks;
    if (!h->groups || !h->group_put || !h->group_delete) {
        admin_respond_error(c, 501, NULL, "/groups is not available in this process");
        return;
    }
    const size_t pre = sizeof "/groups/" - 1;
    char name[TETHER_IDENTITY_MAX];
    bool one = r->path_len > pre;
    if (one && admin_pct_decode(r->path + pre, r->path_len - pre, false, name, sizeof name) < 0) {
        admin_respond_error(c, 400, NULL,
                            "bad group name in the path (bad %%-escape or over %zu "
                            "bytes)",
                            sizeof name - 1);
        return;
    }
    json_t *j = NULL;
    if (r->method == TETHER_HTTP_M_PUT) {
        json_t *body = admin_parse_body(c, r);
        if (!body)
            return;
        char err[256];
        int rc = h->group_put(name, body, err, sizeof err, h->user);
        json_decref(body);
        if (rc < 0) {
            admin_respond_error(c,
                                rc == TETHER_EINVAL   ? 400
                                : rc == TETHER_ELIMIT ? 409
                                : rc == TETHER_EIO    ? 503
                                                      : 500,
                                NULL, "%s", err);
            return;
        }
        tether_log_kv(TETHER_LOG_INFO, "admin", "group defined", "group", name, "peer", c->peer,
                      NULL);
    } else if (r->method == TETHER_HTTP_M_DELETE) {
        if (h->group_delete(name, h->user) < 0) {
            admin_respond_error(c, 404, NULL, "no group named '%s'", name);
            return;
        }
        tether_log_kv(TETHER_LOG_INFO, "admin", "group removed", "group", name, "peer", c->peer,
                      NULL);
        j = json_pack("{s:o, s:b}", "name", admin_jstr(name), "removed", 1);
        admin_respond_json(c, 200, j, NULL);
        json_decref(j);
        return;
    }
    j = h->groups(one ? name : NULL, h->user);
    if (!j) {
        admin_respond_error(c, one ? 404 : 500, NULL, one ? "no group named '%s'" : "%s",
                            one ? name : "listing the groups failed");
        return;
    }
    admin_respond_json(c, 200, j, NULL);
    json_decref(j);
}
