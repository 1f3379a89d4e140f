/* Configuration loading with errors a user can act on: file, line, key. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tether/common.h"
#include "tether/dtls.h"
#include "tether/node.h"
#include "util/hostport.h"
#include "tether/log.h"

#define TETHER_VERSION "0.1.0"

static void set_defaults(tetherd_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->node_id = 1;
    c->udp_recv_buffer = 4u << 20;
    c->udp_send_buffer = 4u << 20;
    c->nlisten = 1;
    snprintf(c->listen[0].host, sizeof c->listen[0].host, "127.0.0.1");
    c->listen[0].port = 5683;
    c->listen[0].proto = TETHERD_PROTO_COAP;
    snprintf(c->admin, sizeof c->admin, "127.0.0.1:8080");
    c->admin_max_connections = 64;
    c->admin_idle_timeout = 30;
    c->drain_timeout = 10;
    snprintf(c->log_level, sizeof c->log_level, "info");
    c->opt_multicast_timeout = 2;
    c->opt_reply_from = 248;
    /* DTLS defaults live in one place: the library's. */
    tether_dtls_conf_t dc;
    tether_dtls_conf_defaults(&dc);
    c->dtls_cid_length = dc.cid_len;
    c->dtls_max_sessions = dc.max_sessions;
    c->dtls_max_handshakes = dc.max_handshakes;
    c->dtls_handshake_timeout = dc.handshake_timeout_ms / 1000;
    c->dtls_idle_timeout = dc.idle_timeout_ms / 1000;
    tether_node_conf_t nc;
    tether_node_conf_defaults(&nc);
    c->proxy_request_timeout_ms = nc.request_timeout_ms;
    c->proxy_ack_delay_ms = nc.ack_delay_ms;
    c->proxy_queue_max = nc.queue_max;
    c->proxy_queue_ttl_ms = nc.queue_ttl_ms;
    c->proxy_queue_awake_ms = nc.queue_awake_ms;
    c->proxy_max_devices = nc.max_devices;
    c->proxy_max_pending = nc.max_pending;
    c->proxy_max_observers = nc.max_observers;
    c->proxy_max_observers_per_resource = nc.max_observers_per_resource;
    c->proxy_cache_bytes = nc.cache_bytes;
    c->dtls_hs_rate = dc.handshake_rate_per_source;
    c->dtls_hs_burst = dc.handshake_burst_per_source;
    c->dtls_hs_per_source = dc.max_handshakes_per_source;
}

bool tetherd_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

int tetherd_parse_listen(const char *s, tetherd_listen_t *out)
{
    int proto = -1;
    if (strncmp(s, "coap://", 7) == 0) {
        proto = TETHERD_PROTO_COAP;
        s += 7;
    } else if (strncmp(s, "coaps://", 8) == 0) {
        proto = TETHERD_PROTO_COAPS;
        s += 8;
    }
    if (tether_hostport_split(s, out->host, sizeof out->host, &out->port) < 0)
        return TETHER_EINVAL;
    out->proto = proto >= 0 ? (tetherd_proto_t)proto
                            : (out->port == 5683 ? TETHERD_PROTO_COAP : TETHERD_PROTO_COAPS);
    return 0;
}

/* Line of the first `"key":` at or after byte `from` in the file text; the
 * JSON parser keeps no positions, so errors about values find the key this
 * way. Returns 0 when not found. */
static int key_line(const char *text, const char *key, size_t from, size_t *at)
{
    size_t klen = strlen(key);
    for (const char *p = text + from; (p = strchr(p, '"')) != NULL; p++) {
        if (strncmp(p + 1, key, klen) == 0 && p[1 + klen] == '"') {
            const char *q = p + 2 + klen;
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
                q++;
            if (*q == ':') {
                int line = 1;
                for (const char *r = text; r < p; r++)
                    line += *r == '\n';
                if (at)
                    *at = (size_t)(p - text);
                return line;
            }
        }
    }
    return 0;
}

typedef struct {
    const char *file;
    const char *text;
    char *err;
    size_t errcap;
} ctx_t;

static int fail(ctx_t *x, const char *key, size_t from, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Formats "FILE:LINE: key 'K': what" into the caller's error buffer. */
static int fail(ctx_t *x, const char *key, size_t from, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int line = key_line(x->text, key, from, NULL);
    snprintf(x->err, x->errcap, "%s:%d: key '%s': %s", x->file, line, key, what);
    return TETHER_ECONFIG;
}

static int get_str(ctx_t *x, const char *key, json_t *v, char *dst, size_t cap)
{
    if (!json_is_string(v))
        return fail(x, key, 0, "must be a string");
    if (json_string_length(v) >= cap)
        return fail(x, key, 0, "longer than %zu bytes", cap - 1);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int get_uint(ctx_t *x, const char *key, json_t *v, long min, long max, long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return fail(x, key, 0, "must be an integer from %ld to %ld", min, max);
    *out = (long)json_integer_value(v);
    return 0;
}

static int apply_listen(ctx_t *x, tetherd_config_t *c, json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > TETHERD_MAX_LISTEN)
        return fail(x, "listen", 0, "must be an array of 1 to %d \"HOST:PORT\" strings",
                    TETHERD_MAX_LISTEN);
    size_t i;
    json_t *e;
    c->nlisten = 0;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || tetherd_parse_listen(json_string_value(e), &c->listen[i]) < 0)
            return fail(x, "listen", 0, "entry %zu is not coap(s)://HOST:PORT", i);
        c->nlisten++;
    }
    return 0;
}

static int apply_coap_options(ctx_t *x, tetherd_config_t *c, json_t *v)
{
    size_t at = 0;
    key_line(x->text, "coap_options", 0, &at);
    if (!json_is_object(v))
        return fail(x, "coap_options", 0, "must be an object");
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        long n;
        if (strcmp(k, "multicast_timeout") == 0) {
            if (get_uint(x, k, e, 1, 65535, &n) < 0)
                return TETHER_ECONFIG;
            c->opt_multicast_timeout = (uint16_t)n;
        } else if (strcmp(k, "reply_from") == 0) {
            if (get_uint(x, k, e, 1, 65535, &n) < 0)
                return TETHER_ECONFIG;
            c->opt_reply_from = (uint16_t)n;
        } else {
            return fail(x, k, at, "unknown key in coap_options");
        }
    }
    return 0;
}

static int apply_dtls(ctx_t *x, tetherd_config_t *c, json_t *v)
{
    size_t at = 0;
    key_line(x->text, "dtls", 0, &at);
    if (!json_is_object(v))
        return fail(x, "dtls", 0, "must be an object");
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        long n;
        if (strcmp(k, "cid_length") == 0) {
            if (get_uint(x, k, e, 2, 16, &n) < 0)
                return TETHER_ECONFIG;
            c->dtls_cid_length = (uint8_t)n;
        } else if (strcmp(k, "max_sessions") == 0) {
            if (get_uint(x, k, e, 1, 100000000, &n) < 0)
                return TETHER_ECONFIG;
            c->dtls_max_sessions = (uint32_t)n;
        } else if (strcmp(k, "max_handshakes") == 0) {
            if (get_uint(x, k, e, 1, 10000000, &n) < 0)
                return TETHER_ECONFIG;
            c->dtls_max_handshakes = (uint32_t)n;
        } else if (strcmp(k, "handshake_timeout") == 0) {
            if (get_uint(x, k, e, 1, 3600, &n) < 0)
                return TETHER_ECONFIG;
            c->dtls_handshake_timeout = (uint32_t)n;
        } else if (strcmp(k, "idle_timeout") == 0) {
            if (get_uint(x, k, e, 1, 4000000, &n) < 0)
                return TETHER_ECONFIG;
            c->dtls_idle_timeout = (uint32_t)n;
        } else if (strcmp(k, "ca_file") == 0) {
            if (get_str(x, k, e, c->dtls_ca_file, sizeof c->dtls_ca_file) < 0)
                return TETHER_ECONFIG;
        } else if (strcmp(k, "cert_file") == 0) {
            if (get_str(x, k, e, c->dtls_cert_file, sizeof c->dtls_cert_file) < 0)
                return TETHER_ECONFIG;
        } else if (strcmp(k, "key_file") == 0) {
            if (get_str(x, k, e, c->dtls_key_file, sizeof c->dtls_key_file) < 0)
                return TETHER_ECONFIG;
        } else if (strcmp(k, "handshake_rate_per_source") == 0) {
            if (get_uint(x, k, e, 0, 1000000, &n) < 0)
                return TETHER_ECONFIG;
            c->dtls_hs_rate = (uint32_t)n;
        } else if (strcmp(k, "handshake_burst_per_source") == 0) {
            if (get_uint(x, k, e, 1, 1000000, &n) < 0)
                return TETHER_ECONFIG;
            c->dtls_hs_burst = (uint32_t)n;
        } else if (strcmp(k, "max_handshakes_per_source") == 0) {
            if (get_uint(x, k, e, 0, 1000000, &n) < 0)
                return TETHER_ECONFIG;
            c->dtls_hs_per_source = (uint32_t)n;
        } else {
            return fail(x, k, at, "unknown key in dtls");
        }
    }
    return 0;
}

/* The "proxy" object: unsigned keys, each with its range (cache_bytes is
 * the one wider than 32 bits). */
static int apply_proxy(ctx_t *x, tetherd_config_t *c, json_t *v)
{
    const struct {
        const char *key;
        long min, max;
        uint32_t *dst;
    } keys[] = {
        {"request_timeout_ms", 100, 3600000, &c->proxy_request_timeout_ms},
        {"ack_delay_ms", 0, 60000, &c->proxy_ack_delay_ms},
        {"queue_max", 0, 100000, &c->proxy_queue_max},
        {"queue_ttl_ms", 100, 86400000, &c->proxy_queue_ttl_ms},
        {"queue_awake_ms", 0, 3600000, &c->proxy_queue_awake_ms},
        {"max_devices", 1, 100000000, &c->proxy_max_devices},
        {"max_pending", 1, 100000000, &c->proxy_max_pending},
        {"max_observers", 0, 100000000, &c->proxy_max_observers},
        {"max_observers_per_resource", 1, 100000000, &c->proxy_max_observers_per_resource},
    };
    size_t at = 0;
    key_line(x->text, "proxy", 0, &at);
    if (!json_is_object(v))
        return fail(x, "proxy", 0, "must be an object");
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        long n;
        if (strcmp(k, "cache_bytes") == 0) {
            if (get_uint(x, k, e, 0, 1L << 40, &n) < 0)
                return TETHER_ECONFIG;
            c->proxy_cache_bytes = (uint64_t)n;
            continue;
        }
        size_t i = 0;
        while (i < sizeof keys / sizeof keys[0] && strcmp(k, keys[i].key) != 0)
            i++;
        if (i == sizeof keys / sizeof keys[0])
            return fail(x, k, at, "unknown key in proxy");
        if (get_uint(x, k, e, keys[i].min, keys[i].max, &n) < 0)
            return TETHER_ECONFIG;
        *keys[i].dst = (uint32_t)n;
    }
    return 0;
}

/* The "udp" object: listener socket buffer sizes in bytes (0 = leave the
 * kernel's default). */
static int apply_udp(ctx_t *x, tetherd_config_t *c, json_t *v)
{
    size_t at = 0;
    key_line(x->text, "udp", 0, &at);
    if (!json_is_object(v))
        return fail(x, "udp", 0, "must be an object");
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        uint32_t *dst;
        if (strcmp(k, "recv_buffer") == 0)
            dst = &c->udp_recv_buffer;
        else if (strcmp(k, "send_buffer") == 0)
            dst = &c->udp_send_buffer;
        else
            return fail(x, k, at, "unknown key in udp");
        long n;
        if (get_uint(x, k, e, 0, 1L << 30, &n) < 0)
            return TETHER_ECONFIG;
        *dst = (uint32_t)n;
    }
    return 0;
}

/* The "cluster" object: {"listen": "HOST:PORT", "nodes": {"2": "HOST:PORT",
 * ...}}; node ids 1..255, hosts may be names (resolved at start). */
static int apply_cluster(ctx_t *x, tetherd_config_t *c, json_t *v)
{
    if (!json_is_object(v))
        return fail(x, "cluster", 0, "must be an object");
    size_t at = 0;
    key_line(x->text, "cluster", 0, &at);
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        if (strcmp(k, "listen") == 0) {
            if (get_str(x, k, e, c->cluster_listen, sizeof c->cluster_listen) < 0)
                return TETHER_ECONFIG;
        } else if (strcmp(k, "nodes") == 0) {
            if (!json_is_object(e))
                return fail(x, k, at, "must be an object of \"NODE_ID\": \"HOST:PORT\"");
            const char *id;
            json_t *hp;
            c->ncluster_nodes = 0;
            json_object_foreach(e, id, hp)
            {
                char *end;
                long n = strtol(id, &end, 10);
                if (!*id || *end || n < 1 || n > 255)
                    return fail(x, "nodes", at, "node id '%s' is not 1..255", id);
                if (c->ncluster_nodes == sizeof c->cluster_nodes / sizeof c->cluster_nodes[0])
                    return fail(x, "nodes", at, "more than %zu nodes",
                                sizeof c->cluster_nodes / sizeof c->cluster_nodes[0]);
                char *dst = c->cluster_nodes[c->ncluster_nodes].addr;
                if (get_str(x, "nodes", hp, dst, sizeof c->cluster_nodes[0].addr) < 0)
                    return TETHER_ECONFIG;
                char host[160];
                uint16_t port;
                if (tether_hostport_split(dst, host, sizeof host, &port) < 0)
                    return fail(x, "nodes", at, "node %ld: '%s' is not HOST:PORT", n, dst);
                c->cluster_nodes[c->ncluster_nodes++].id = (uint8_t)n;
            }
        } else {
            return fail(x, k, at, "unknown key in cluster");
        }
    }
    return 0;
}

/* Reads the config file; every key is known or the load fails. */
static int load_file(tetherd_config_t *c, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return TETHER_ECONFIG;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(f);
                return TETHER_ENOMEM;
            }
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    text[len] = 0;

    int rc = 0;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    ctx_t x = {path, text, err, errcap};
    if (!root) {
        /* Without jansson's " near '<token>'": the token may be a secret
         * (admin_token, cluster_key) cut short. */
        const char *near = strstr(jerr.text, " near ");
        snprintf(err, errcap, "%s:%d: invalid JSON (column %d): %.*s", path, jerr.line, jerr.column,
                 near ? (int)(near - jerr.text) : (int)strlen(jerr.text), jerr.text);
        rc = TETHER_ECONFIG;
        goto out;
    }
    if (!json_is_object(root)) {
        snprintf(err, errcap, "%s:1: the top level must be a JSON object", path);
        rc = TETHER_ECONFIG;
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        long n;
        if (strcmp(k, "node_id") == 0) {
            if ((rc = get_uint(&x, k, v, 1, 255, &n)) < 0)
                goto out;
            c->node_id = (unsigned)n;
        } else if (strcmp(k, "listen") == 0) {
            if ((rc = apply_listen(&x, c, v)) < 0)
                goto out;
        } else if (strcmp(k, "admin") == 0) {
            if ((rc = get_str(&x, k, v, c->admin, sizeof c->admin)) < 0)
                goto out;
        } else if (strcmp(k, "admin_token") == 0) {
            if ((rc = get_str(&x, k, v, c->admin_token, sizeof c->admin_token)) < 0)
                goto out;
        } else if (strcmp(k, "admin_max_connections") == 0) {
            if ((rc = get_uint(&x, k, v, 1, 4096, &n)) < 0)
                goto out;
            c->admin_max_connections = (uint32_t)n;
        } else if (strcmp(k, "admin_idle_timeout") == 0) {
            if ((rc = get_uint(&x, k, v, 1, 3600, &n)) < 0)
                goto out;
            c->admin_idle_timeout = (uint32_t)n;
        } else if (strcmp(k, "drain_timeout") == 0) {
            if ((rc = get_uint(&x, k, v, 0, 3600, &n)) < 0)
                goto out;
            c->drain_timeout = (uint32_t)n;
        } else if (strcmp(k, "redis_url") == 0) {
            if ((rc = get_str(&x, k, v, c->redis_url, sizeof c->redis_url)) < 0)
                goto out;
        } else if (strcmp(k, "cluster_key") == 0) {
            if ((rc = get_str(&x, k, v, c->cluster_key, sizeof c->cluster_key)) < 0)
                goto out;
        } else if (strcmp(k, "log_level") == 0) {
            tether_log_level_t l;
            if ((rc = get_str(&x, k, v, c->log_level, sizeof c->log_level)) < 0)
                goto out;
            if (tether_log_level_parse(c->log_level, &l) < 0) {
                rc = fail(&x, k, 0, "must be one of error, warn, info, debug");
                goto out;
            }
        } else if (strcmp(k, "credentials_file") == 0) {
            if ((rc = get_str(&x, k, v, c->credentials_file, sizeof c->credentials_file)) < 0)
                goto out;
        } else if (strcmp(k, "plain_coap_public") == 0) {
            if (!json_is_boolean(v)) {
                rc = fail(&x, k, 0, "must be true or false");
                goto out;
            }
            c->plain_coap_public = json_is_true(v);
        } else if (strcmp(k, "dtls") == 0) {
            if ((rc = apply_dtls(&x, c, v)) < 0)
                goto out;
        } else if (strcmp(k, "coap_options") == 0) {
            if ((rc = apply_coap_options(&x, c, v)) < 0)
                goto out;
        } else if (strcmp(k, "proxy") == 0) {
            if ((rc = apply_proxy(&x, c, v)) < 0)
                goto out;
        } else if (strcmp(k, "cluster") == 0) {
            if ((rc = apply_cluster(&x, c, v)) < 0)
                goto out;
        } else if (strcmp(k, "udp") == 0) {
            if ((rc = apply_udp(&x, c, v)) < 0)
                goto out;
        } else {
            rc = fail(&x, k, 0, "unknown key");
            goto out;
        }
    }
out:
    json_decref(root);
    free(text);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tetherd [--config FILE] [--node-id N] [--listen [coap(s)://]HOST:PORT]...\n"
               "               [--admin HOST:PORT] [--redis URL] [--log-level LEVEL]\n"
               "               [--check-config] [--version]\n"
               "env: TETHER_NODE_ID TETHER_REDIS_URL TETHER_ADMIN_TOKEN TETHER_CLUSTER_KEY\n"
               "     TETHER_LOG_LEVEL\n");
}

/* Final checks that apply whatever the source of a value was. */
static int validate(tetherd_config_t *c, char *err, size_t errcap)
{
    const char *src = c->file[0] ? c->file : "(defaults)";
    tether_log_level_t l;
    if (tether_log_level_parse(c->log_level, &l) < 0) {
        snprintf(err, errcap, "%s: log level '%s' is not error, warn, info or debug", src,
                 c->log_level);
        return TETHER_ECONFIG;
    }
    tetherd_listen_t admin;
    if (strstr(c->admin, "://") || tetherd_parse_listen(c->admin, &admin) < 0) {
        snprintf(err, errcap, "%s: key 'admin': '%s' is not HOST:PORT", src, c->admin);
        return TETHER_ECONFIG;
    }
    for (size_t i = 0; i < c->nlisten; i++)
        if (c->listen[i].proto == TETHERD_PROTO_COAP && !c->plain_coap_public &&
            !tetherd_is_loopback(c->listen[i].host)) {
            snprintf(err, errcap,
                     "%s: key 'listen': plain CoAP on non-loopback %s needs "
                     "\"plain_coap_public\": true",
                     src, c->listen[i].host);
            return TETHER_ECONFIG;
        }
    if (!c->dtls_cert_file[0] != !c->dtls_key_file[0]) {
        snprintf(err, errcap, "%s: key 'dtls': cert_file and key_file go together", src);
        return TETHER_ECONFIG;
    }
    const char *files[][2] = {{"dtls.ca_file", c->dtls_ca_file},
                              {"dtls.cert_file", c->dtls_cert_file},
                              {"dtls.key_file", c->dtls_key_file}};
    for (size_t i = 0; i < 3; i++)
        if (files[i][1][0] && access(files[i][1], R_OK) != 0) {
            snprintf(err, errcap, "%s: key '%s': cannot read %s: %s", src, files[i][0],
                     files[i][1], strerror(errno));
            return TETHER_ECONFIG;
        }
    if (strlen(c->cluster_key) > 64) { /* the DTLS cookie secrets take at most 64 bytes */
        snprintf(err, errcap, "%s: key 'cluster_key': longer than 64 characters", src);
        return TETHER_ECONFIG;
    }
    if (c->cluster_listen[0]) {
        char host[160];
        uint16_t port;
        if (tether_hostport_split(c->cluster_listen, host, sizeof host, &port) < 0) {
            snprintf(err, errcap, "%s: key 'cluster.listen': '%s' is not HOST:PORT", src,
                     c->cluster_listen);
            return TETHER_ECONFIG;
        }
        /* Forwarded records name client addresses: only MACed ones count. */
        if (strlen(c->cluster_key) < 16) {
            snprintf(err, errcap,
                     "%s: key 'cluster': the internal channel needs a cluster_key "
                     "(TETHER_CLUSTER_KEY) of at least 16 characters",
                     src);
            return TETHER_ECONFIG;
        }
    }
    if (c->opt_multicast_timeout == c->opt_reply_from) {
        snprintf(err, errcap, "%s: key 'coap_options': the two option numbers must differ", src);
        return TETHER_ECONFIG;
    }
    return 0;
}

static int env_uint(const char *name, long min, long max, unsigned *out, char *err,
                    size_t errcap)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < min || n > max) {
        snprintf(err, errcap, "environment %s='%s': must be an integer from %ld to %ld", name, v,
                 min, max);
        return TETHER_ECONFIG;
    }
    *out = (unsigned)n;
    return 0;
}

static void env_str(const char *name, char *dst, size_t cap)
{
    const char *v = getenv(name);
    if (v && *v)
        snprintf(dst, cap, "%s", v);
}

int tetherd_config_load(tetherd_config_t *c, int argc, char **argv, char *err, size_t errcap)
{
    enum { O_CONFIG = 256, O_NODE, O_LISTEN, O_ADMIN, O_REDIS, O_LOG, O_CHECK, O_VERSION };
    static const struct option opts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"node-id", required_argument, NULL, O_NODE},
        {"listen", required_argument, NULL, O_LISTEN},
        {"admin", required_argument, NULL, O_ADMIN},
        {"redis", required_argument, NULL, O_REDIS},
        {"log-level", required_argument, NULL, O_LOG},
        {"check-config", no_argument, NULL, O_CHECK},
        {"version", no_argument, NULL, O_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    set_defaults(c);
    /* Pass 1: only --config, so the file is applied before other flags. */
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1)
        if (o == O_CONFIG)
            snprintf(c->file, sizeof c->file, "%s", optarg);
    if (c->file[0]) {
        int rc = load_file(c, c->file, err, errcap);
        if (rc < 0)
            return rc;
    }
    if (env_uint("TETHER_NODE_ID", 1, 255, &c->node_id, err, errcap) < 0)
        return TETHER_ECONFIG;
    env_str("TETHER_REDIS_URL", c->redis_url, sizeof c->redis_url);
    env_str("TETHER_ADMIN_TOKEN", c->admin_token, sizeof c->admin_token);
    env_str("TETHER_CLUSTER_KEY", c->cluster_key, sizeof c->cluster_key);
    env_str("TETHER_LOG_LEVEL", c->log_level, sizeof c->log_level);

    /* Pass 2: every other flag overrides file and env. */
    optind = 1;
    opterr = 1;
    bool listen_given = false;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case O_CONFIG: break;
        case O_NODE: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 255) {
                snprintf(err, errcap, "--node-id '%s': must be an integer from 1 to 255", optarg);
                return TETHER_ECONFIG;
            }
            c->node_id = (unsigned)n;
            break;
        }
        case O_LISTEN:
            if (!listen_given) {
                c->nlisten = 0;
                listen_given = true;
            }
            if (c->nlisten == TETHERD_MAX_LISTEN ||
                tetherd_parse_listen(optarg, &c->listen[c->nlisten]) < 0) {
                snprintf(err, errcap, "--listen '%s': expected [coap(s)://]HOST:PORT (at most %d)",
                         optarg, TETHERD_MAX_LISTEN);
                return TETHER_ECONFIG;
            }
            c->nlisten++;
            break;
        case O_ADMIN: snprintf(c->admin, sizeof c->admin, "%s", optarg); break;
        case O_REDIS: snprintf(c->redis_url, sizeof c->redis_url, "%s", optarg); break;
        case O_LOG: snprintf(c->log_level, sizeof c->log_level, "%s", optarg); break;
        case O_CHECK: c->check_only = true; break;
        case O_VERSION: printf("tetherd %s\n", TETHER_VERSION); return 1;
        case 'h': usage(stdout); return 1;
        default:
            usage(stderr);
            snprintf(err, errcap, "bad command line");
            return TETHER_ECONFIG;
        }
    }
    if (optind < argc) {
        snprintf(err, errcap, "unexpected argument '%s'", argv[optind]);
        return TETHER_ECONFIG;
    }
    return validate(c, err, errcap);
}
