/* GET /config: the effective configuration, secrets "***" when set. */
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "tether/log.h"

static json_t *jsecret(const char *s)
{
    return json_string(*s ? "***" : "");
}

/* Replaces the userinfo of a URL (user:password before the @) with three stars. */
static json_t *jurl_redacted(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    if (!at)
        return admin_jstr(url);
    char buf[300];
    snprintf(buf, sizeof buf, "%.*s***%s", (int)(scheme + 3 - url), url, at);
    return admin_jstr(buf);
}

/* The effective configuration; secrets are "***" when set, "" when not. */
void admin_h_config(admin_conn_t *c, const tether_http_request_t *r)
{
    (void)r;
    const tetherd_config_t *cfg = c->a->cfg;
    json_t *listen = json_array();
    for (size_t i = 0; listen && i < cfg->nlisten; i++) {
        const tetherd_listen_t *l = &cfg->listen[i];
        char buf[100];
        bool v6 = strchr(l->host, ':') != NULL;
        snprintf(buf, sizeof buf, "%s://%s%s%s:%u",
                 l->proto == TETHERD_PROTO_COAP ? "coap" : "coaps", v6 ? "[" : "", l->host,
                 v6 ? "]" : "", l->port);
        json_array_append_new(listen, admin_jstr(buf));
    }
    json_t *j = json_pack(
        "{s:o, s:I, s:o, s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:s, s:o, s:b,"
        " s:{s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I}}",
        "file", admin_jstr(cfg->file), "node_id", (json_int_t)cfg->node_id, "listen", listen,
        "admin", admin_jstr(cfg->admin), "admin_token", jsecret(cfg->admin_token),
        "admin_max_connections", (json_int_t)cfg->admin_max_connections, "admin_idle_timeout",
        (json_int_t)cfg->admin_idle_timeout, "drain_timeout", (json_int_t)cfg->drain_timeout,
        "redis_url", jurl_redacted(cfg->redis_url), "cluster_key", jsecret(cfg->cluster_key),
        "log_level", tether_log_level_name(tether_log_get_level()), "credentials_file",
        admin_jstr(cfg->credentials_file), "plain_coap_public", (int)cfg->plain_coap_public,
        "coap_options", "multicast_timeout", (json_int_t)cfg->opt_multicast_timeout, "reply_from",
        (json_int_t)cfg->opt_reply_from, "dtls", "cid_length", (json_int_t)cfg->dtls_cid_length,
        "max_sessions", (json_int_t)cfg->dtls_max_sessions, "max_handshakes",
        (json_int_t)cfg->dtls_max_handshakes, "handshake_timeout",
        (json_int_t)cfg->dtls_handshake_timeout, "idle_timeout",
        (json_int_t)cfg->dtls_idle_timeout);
    json_t *dtls = j ? json_object_get(j, "dtls") : NULL;
    if (dtls) { /* paths are not secrets; the key file's contents never leave it */
        json_object_set_new(dtls, "ca_file", admin_jstr(cfg->dtls_ca_file));
        json_object_set_new(dtls, "cert_file", admin_jstr(cfg->dtls_cert_file));
        json_object_set_new(dtls, "key_file", admin_jstr(cfg->dtls_key_file));
        json_object_set_new(dtls, "handshake_rate_per_source", json_integer(cfg->dtls_hs_rate));
        json_object_set_new(dtls, "handshake_burst_per_source", json_integer(cfg->dtls_hs_burst));
    }
    json_t *proxy = j ? json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "request_timeout_ms",
                                  (json_int_t)cfg->proxy_request_timeout_ms, "ack_delay_ms",
                                  (json_int_t)cfg->proxy_ack_delay_ms, "queue_max",
                                  (json_int_t)cfg->proxy_queue_max, "queue_ttl_ms",
                                  (json_int_t)cfg->proxy_queue_ttl_ms, "queue_awake_ms",
                                  (json_int_t)cfg->proxy_queue_awake_ms, "max_devices",
                                  (json_int_t)cfg->proxy_max_devices, "max_pending",
                                  (json_int_t)cfg->proxy_max_pending, "cache_bytes",
                                  (json_int_t)cfg->proxy_cache_bytes)
                      : NULL;
    if (proxy) {
        json_object_set_new(proxy, "max_observers", json_integer(cfg->proxy_max_observers));
        json_object_set_new(proxy, "max_observers_per_resource",
                            json_integer(cfg->proxy_max_observers_per_resource));
        json_object_set_new(j, "proxy", proxy);
    }
    if (j) {
        json_t *nodes = json_object();
        for (size_t i = 0; i < cfg->ncluster_nodes; i++) {
            char id[8];
            snprintf(id, sizeof id, "%u", cfg->cluster_nodes[i].id);
            json_object_set_new(nodes, id, json_string(cfg->cluster_nodes[i].addr));
        }
        json_object_set_new(j, "cluster",
                            json_pack("{s:s, s:o}", "listen", cfg->cluster_listen, "nodes", nodes));
    }
    if (j)
        json_object_set_new(j, "udp",
                            json_pack("{s:I, s:I}", "recv_buffer", (json_int_t)cfg->udp_recv_buffer,
                                      "send_buffer", (json_int_t)cfg->udp_send_buffer));
    if (!j) {
        admin_respond_error(c, 500, NULL, "building the configuration failed");
        return;
    }
    admin_respond_json(c, 200, j, NULL);
    json_decref(j);
}
