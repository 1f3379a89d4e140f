/* The routes of the cluster's shared state (SPEC S5, S6): GET /cluster,
 * and PUT/DELETE /credentials/{identity}, whose answer waits (a parked
 * connection, see conn.h) until the shared store took the write or
 * refused it.
 *
 * PUT body: {"key_hex": "...", "role": "device"|"client",
 * "allow": [{"devices": GLOB, "methods": ["GET", ...]}]} — the credentials
 * file's entry (SPEC S11) for one identity. An identity ending in '*'
 * ("dev*") is a prefix and key_hex its fleet master
 * (the file's psk_derived). Answers: 200 {"identity", "version"}; 400 for
 * a bad body; 404 (DELETE of an identity the store does not hold; file
 * entries are changed in the file); 409 when another write came between;
 * 503 while the store is unreachable (nothing changed). */
#include <stdio.h>
#include <string.h>

#include "coap_bridge.h"
#include "conn.h"
#include "tether/common.h"
#include "tether/log.h"

#define CRED_WAIT_MS 5000
#define RULES_MAX 64

void admin_h_cluster(admin_conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    if (!a->hooks.cluster) {
        admin_respond_error(c, 501, NULL, "GET /cluster is not available in this process");
        return;
    }
    json_t *j = a->hooks.cluster(a->hooks.user);
    admin_respond_json(c, j ? 200 : 500, j, NULL);
    json_decref(j);
}

static void cred_timed_out(admin_conn_t *c)
{
    admin_respond_error(c, 504, NULL, "the shared store did not answer within %u ms", c->wait_ms);
}

/* Parses the PUT body into e (rules into rules[RULES_MAX]). Answers 400
 * and returns false when it is bad. */
static bool parse_cred(admin_conn_t *c, json_t *body, tether_creds_entry_t *e, uint8_t *key,
                       size_t key_cap, tether_creds_rule_t *rules)
{
    const char *hex = json_string_value(json_object_get(body, "key_hex"));
    const char *role = json_string_value(json_object_get(body, "role"));
    json_t *allow = json_object_get(body, "allow");
    if (!json_is_object(body)) {
        admin_respond_error(c, 400, NULL, "expected a JSON object");
        return false;
    }
    if (!hex || tether_creds_key_from_hex(hex, key, key_cap, &e->key_len) < 0) {
        admin_respond_error(c, 400, NULL, "\"key_hex\" must be 1..%zu bytes of hex", key_cap);
        return false;
    }
    e->key = key;
    if (!role || (strcmp(role, "device") != 0 && strcmp(role, "client") != 0)) {
        admin_respond_error(c, 400, NULL, "\"role\" must be \"device\" or \"client\"");
        return false;
    }
    e->role = strcmp(role, "client") == 0 ? TETHER_ROLE_CLIENT : TETHER_ROLE_DEVICE;
    if (allow && (!json_is_array(allow) || json_array_size(allow) > RULES_MAX)) {
        admin_respond_error(c, 400, NULL, "\"allow\" must be an array of at most %d rules",
                            RULES_MAX);
        return false;
    }
    size_t i;
    json_t *rule;
    json_array_foreach(allow, i, rule)
    {
        const char *dev = json_string_value(json_object_get(rule, "devices"));
        const char *grp = json_string_value(json_object_get(rule, "groups"));
        const char *pat = dev ? dev : grp;
        json_t *ms = json_object_get(rule, "methods");
        if (!pat || !*pat || (dev && grp) || strlen(pat) >= sizeof rules[i].pattern ||
            (ms && !json_is_array(ms))) {
            admin_respond_error(c, 400, NULL,
                                "allow[%zu]: needs one \"devices\" or \"groups\" pattern and a "
                                "\"methods\" array",
                                i);
            return false;
        }
        strcpy(rules[i].pattern, pat);
        rules[i].group = grp != NULL;
        rules[i].methods = ms ? 0 : 0xfe; /* no list: every method, as in the file */
        size_t k;
        json_t *m;
        json_array_foreach(ms, k, m)
        {
            int code = tether_creds_method_code(json_string_value(m));
            if (code < 0) {
                admin_respond_error(c, 400, NULL,
                                    "allow[%zu]: unknown method (GET, POST, PUT, DELETE, FETCH, "
                                    "PATCH, iPATCH)",
                                    i);
                return false;
            }
            rules[i].methods |= (uint8_t)(1u << code);
        }
    }
    e->rules = rules;
    e->nrules = allow ? json_array_size(allow) : 0;
    return true;
}

void admin_h_credential(admin_conn_t *c, const tether_http_request_t *r)
{
    tetherd_admin_t *a = c->a;
    char identity[TETHER_IDENTITY_MAX];
    const size_t pre = sizeof "/credentials/" - 1;
    if (!a->hooks.cred) {
        admin_respond_error(c, 501, NULL,
                            "%s /credentials needs the shared store (--redis): edit the "
                            "credentials file and send SIGHUP instead",
                            r->method_name);
        return;
    }
    if (admin_pct_decode(r->path + pre, r->path_len - pre, false, identity, sizeof identity) < 0 ||
        !identity[0] || strcspn(identity, "*") + 1 < strlen(identity) || !strcmp(identity, "*")) {
        admin_respond_error(c, 400, NULL,
                            "bad identity in the path (bad %%-escape, a '*' not at "
                            "the end, or over %zu bytes)",
                            sizeof identity - 1);
        return;
    }
    tether_creds_entry_t e = {.identity = identity};
    uint8_t key[TETHER_PSK_MAX];
    tether_creds_rule_t rules[RULES_MAX];
    if (r->method == TETHER_HTTP_M_PUT) {
        json_t *body = admin_parse_body(c, r);
        if (!body)
            return;
        bool ok = parse_cred(c, body, &e, key, sizeof key, rules);
        json_decref(body);
        if (!ok)
            return;
    }
    uint64_t id = ++a->next_id;
    admin_conn_park(c, id, CRED_WAIT_MS, r, cred_timed_out);
    c->in_send = true;
    int rc = a->hooks.cred(r->method == TETHER_HTTP_M_PUT ? &e : NULL, identity, id, a->hooks.user);
    c->in_send = false;
    memset(key, 0, sizeof key);
    if (rc < 0 && c->waiting) {
        admin_conn_unpark(c);
        admin_respond_error(c, rc == TETHER_EINVAL ? 400 : 503, NULL,
                            "cannot write the credential: %s", tether_strerror(rc));
    }
}

int tetherd_admin_cred_done(tetherd_admin_t *a, uint64_t id, int rc, uint64_t version)
{
    admin_conn_t *c = admin_conn_parked(a, id);
    if (!c)
        return TETHER_ENOTFOUND;
    const char *ident = c->wpath + sizeof "/credentials/" - 1;
    bool put = strcmp(c->wmethod, "PUT") == 0;
    if (rc == 0) {
        json_t *j = put ? json_pack("{s:o, s:I}", "identity", admin_jstr(ident), "version",
                                    (json_int_t)version)
                        : json_pack("{s:o, s:b}", "identity", admin_jstr(ident), "deleted", 1);
        admin_respond_json(c, 200, j, NULL);
        json_decref(j);
        tether_log_kv(TETHER_LOG_INFO, "admin", put ? "credential written" : "credential deleted",
                      "identity", ident, "peer", c->peer, NULL);
    } else if (rc == TETHER_ENOTFOUND) {
        admin_respond_error(c, 404, NULL,
                            "the shared store holds no credential for this identity (entries of "
                            "the credentials file are changed in the file)");
    } else if (rc == TETHER_ECONFLICT) {
        admin_respond_error(c, 409, NULL, "another write of this credential came first; retry");
    } else {
        admin_respond_error(c, 503, NULL, "the shared store is unreachable (%s): nothing changed",
                            tether_strerror(rc));
    }
    admin_conn_answered(c);
    return 0;
}
