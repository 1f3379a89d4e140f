/* The config key table: one row per knob (see config.h), and the typed
 * access to the fields the rows name. conf/README.md explains each key at
 * length; test_config_doc.sh checks that it lists exactly these keys. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "tether/dtls.h"
#include "tether/node.h"

#define FIELD(f) .off = offsetof(tetherd_config_t, f), .size = sizeof(((tetherd_config_t *)0)->f)
#define LIB(kind, T, f, scale)                                                                     \
    .lib = kind, .lib_off = offsetof(T, f), .lib_size = sizeof(((T *)0)->f), .lib_scale = scale
#define NODE(f) LIB(TETHERD_LIB_NODE, tether_node_conf_t, f, 1)
#define DTLS(f) LIB(TETHERD_LIB_DTLS, tether_dtls_conf_t, f, 1)
#define DTLS_S(f) LIB(TETHERD_LIB_DTLS, tether_dtls_conf_t, f, 1000) /* ours s, theirs ms */
#define UINT(lo, hi) .type = TETHERD_KEY_UINT, .min = (lo), .max = (hi)

/* Grouped by JSON object, in the order GET /config shows them; kept one
 * row per key (clang-format would give every member a line of its own). */
/* clang-format off */
const tetherd_key_t tetherd_config_keys[] = {
    {.key = "node_id", .env = "TETHER_NODE_ID", .flag = "node-id", UINT(1, 255), FIELD(node_id),
     .def = "1", .doc = "this node's id; the first byte of every CID it issues"},
    {.key = "listen", .flag = "listen", .type = TETHERD_KEY_LISTEN, FIELD(listen),
     .def = "coap://127.0.0.1:5683", .arg = "[coap(s)://]HOST:PORT",
     .doc = "UDP listeners (array in the file; the flag repeats and replaces the list)"},
    {.key = "admin", .flag = "admin", .type = TETHERD_KEY_HOSTPORT, FIELD(admin),
     .def = "127.0.0.1:8080", .doc = "admin HTTP endpoint"},
    {.key = "admin_token", .env = "TETHER_ADMIN_TOKEN", .type = TETHERD_KEY_SECRET,
     FIELD(admin_token), .def = "", .doc = "bearer token of the admin endpoint (never logged)"},
    {.key = "admin_max_connections", UINT(1, 4096), FIELD(admin_max_connections), .def = "64",
     .doc = "open admin connections at most"},
    {.key = "admin_max_connections_per_address", UINT(0, 4096),
     FIELD(admin_max_connections_per_address), .def = "16",
     .doc = "open admin connections from one IP address at most, 0 = no cap"},
    {.key = "admin_idle_timeout", UINT(1, 3600), FIELD(admin_idle_timeout), .def = "30",
     .doc = "seconds an admin connection may go without completing a request"},
    {.key = "admin_coap_streams_per_identity", UINT(0, 4096), FIELD(admin_coap_streams),
     .def = "4", .doc = "HTTP-to-CoAP event streams (Observe) one identity may hold open"},
    {.key = "admin_coap_waiting_per_identity", UINT(1, 4096), FIELD(admin_coap_waiting),
     .def = "16", .doc = "HTTP-to-CoAP requests one client may have waiting (streams included)"},
    {.key = "drain_timeout", UINT(0, 3600), FIELD(drain_timeout), .def = "10",
     .doc = "seconds a SIGTERM waits for pending requests before stopping"},
    {.key = "redis_url", .env = "TETHER_REDIS_URL", .flag = "redis", .type = TETHERD_KEY_URL,
     FIELD(redis_url), .def = "", .arg = "URL",
     .doc = "redis://HOST:PORT/DB of the shared state store; \"\" = embedded store, static "
            "cluster.nodes"},
    {.key = "redis_backlog_max", UINT(16, 10000000), FIELD(redis_backlog_max), .def = "100000",
     .doc = "writes (one per dirty record) held for Redis while it is unreachable"},
    {.key = "cluster_key", .env = "TETHER_CLUSTER_KEY", .type = TETHERD_KEY_SECRET,
     FIELD(cluster_key), .def = "",
     .doc = "key of the cluster channel's MAC, the DTLS cookies and the seal of credentials in "
            "Redis (never logged)"},
    {.key = "log_level", .env = "TETHER_LOG_LEVEL", .flag = "log-level",
     .type = TETHERD_KEY_LOG_LEVEL, FIELD(log_level), .def = "info",
     .doc = "JSON-lines log level on stderr"},
    {.key = "groups_file", .type = TETHERD_KEY_STRING, FIELD(groups_file), .def = "", .arg = "PATH",
     .doc = "groups ({\"groups\": {NAME: {\"members\": [...]} | {\"pattern\": GLOB}}}), read at start "
            "and on SIGHUP"},
    {.key = "credentials_file", .type = TETHERD_KEY_STRING, FIELD(credentials_file), .def = "",
     .arg = "PATH", .doc = "PSK identities, derived fleet keys and ACLs (SPEC S11)"},
    {.key = "plain_coap_public", .type = TETHERD_KEY_BOOL, FIELD(plain_coap_public),
     .def = "false", .doc = "allow plain CoAP (unauthenticated) on non-loopback addresses"},

    {.key = "coap_options.multicast_timeout", UINT(1, 65535), FIELD(opt_multicast_timeout),
     NODE(opt_multicast_timeout), .doc = "option number of Multicast-Timeout (not yet assigned)"},
    {.key = "coap_options.reply_from", UINT(1, 65535), FIELD(opt_reply_from), NODE(opt_reply_from),
     .doc = "option number of Reply-From (not yet assigned)"},
    {.key = "coap_options.group_etag", UINT(1, 65535), FIELD(opt_group_etag), NODE(opt_group_etag),
     .doc = "option number of Group-ETag (not yet assigned)"},

    {.key = "dtls.cid_length", UINT(2, 16), FIELD(dtls_cid_length), DTLS(cid_len),
     .doc = "length of the Connection IDs this node issues"},
    {.key = "dtls.max_sessions", UINT(1, 100000000), FIELD(dtls_max_sessions), DTLS(max_sessions),
     .doc = "established plus handshaking sessions at most"},
    {.key = "dtls.max_handshakes", UINT(1, 10000000), FIELD(dtls_max_handshakes),
     DTLS(max_handshakes), .doc = "handshakes in flight at most"},
    {.key = "dtls.handshake_timeout", UINT(1, 3600), FIELD(dtls_handshake_timeout),
     DTLS_S(handshake_timeout_ms), .doc = "seconds a handshake may take"},
    {.key = "dtls.idle_timeout", UINT(1, 4000000), FIELD(dtls_idle_timeout),
     DTLS_S(idle_timeout_ms), .doc = "seconds an established session may stay silent"},
    {.key = "dtls.ca_file", .type = TETHERD_KEY_STRING, FIELD(dtls_ca_file), .def = "",
     DTLS(ca_file), .arg = "PATH", .doc = "PEM CA certificate(s) of client certificates"},
    {.key = "dtls.cert_file", .type = TETHERD_KEY_STRING, FIELD(dtls_cert_file), .def = "",
     DTLS(cert_file), .arg = "PATH", .doc = "this server's ECDSA P-256 certificate chain (PEM)"},
    {.key = "dtls.key_file", .type = TETHERD_KEY_STRING, FIELD(dtls_key_file), .def = "",
     DTLS(key_file), .arg = "PATH", .doc = "the private key of cert_file (PEM)"},
    {.key = "dtls.handshake_rate_per_source", UINT(0, 1000000), FIELD(dtls_hs_rate),
     DTLS(handshake_rate_per_source), .doc = "handshakes per second from one IP address, 0 = off"},
    {.key = "dtls.handshake_burst_per_source", UINT(1, 1000000), FIELD(dtls_hs_burst),
     DTLS(handshake_burst_per_source), .doc = "handshakes one IP address may start at once"},
    {.key = "dtls.max_handshakes_per_source", UINT(0, 1000000), FIELD(dtls_hs_inflight),
     DTLS(max_handshakes_per_source), .doc = "handshakes in flight from one IP address, 0 = no cap"},
    {.key = "dtls.max_handshakes_per_prefix", UINT(0, 1000000), FIELD(dtls_hs_prefix),
     DTLS(max_handshakes_per_prefix),
     .doc = "handshakes in flight from one IPv4 /24 or IPv6 /48, 0 = no cap"},
    {.key = "dtls.max_sessions_per_identity", UINT(0, 1000000), FIELD(dtls_sessions_per_id),
     DTLS(max_sessions_per_identity),
     .doc = "established sessions of one identity; beyond, its oldest closes (0 = no cap)"},
    {.key = "dtls.hello_rate", UINT(0, 100000000), FIELD(dtls_hello_rate), DTLS(hello_rate),
     .doc = "ClientHellos looked at per second node-wide (cookie work), 0 = no budget"},
    {.key = "dtls.ticket_rotation_s", UINT(60, 604800), FIELD(dtls_ticket_rotation_s),
     DTLS_S(ticket_rotation_ms),
     .doc = "session ticket keys change this often; a ticket opens for one to two periods"},
    {.key = "dtls.handshake_flight_timeout_ms", UINT(100, 3600000), FIELD(dtls_hs_flight_ms),
     DTLS(handshake_flight_timeout_ms),
     .doc = "a handshake whose peer sends nothing this long is dropped"},

    {.key = "proxy.request_timeout_ms", UINT(100, 3600000), FIELD(proxy_request_timeout_ms),
     NODE(request_timeout_ms), .doc = "a relayed request unanswered this long gets 5.04"},
    {.key = "proxy.ack_delay_ms", UINT(0, 60000), FIELD(proxy_ack_delay_ms), NODE(ack_delay_ms),
     .doc = "wait this long for a piggybacked answer before an empty ACK"},
    {.key = "proxy.queue_max", UINT(0, 100000), FIELD(proxy_queue_max), NODE(queue_max),
     .doc = "requests held per unreachable or sleeping device"},
    {.key = "proxy.queue_ttl_ms", UINT(100, 86400000), FIELD(proxy_queue_ttl_ms),
     NODE(queue_ttl_ms), .doc = "a held request gets 5.04 after this"},
    {.key = "proxy.queue_awake_ms", UINT(0, 3600000), FIELD(proxy_queue_awake_ms),
     NODE(queue_awake_ms), .doc = "a queue-mode device listens this long after it spoke"},
    {.key = "proxy.max_devices", UINT(1, 100000000), FIELD(proxy_max_devices), NODE(max_devices),
     .doc = "registrations this node holds at most"},
    {.key = "proxy.max_pending", UINT(1, 100000000), FIELD(proxy_max_pending), NODE(max_pending),
     .doc = "relayed requests in flight or queued, node-wide"},
    {.key = "proxy.cache_bytes", UINT(0, 1LL << 40), FIELD(proxy_cache_bytes), NODE(cache_bytes),
     .doc = "response cache budget in bytes, 0 = no caching"},
    {.key = "proxy.max_observers", UINT(0, 100000000), FIELD(proxy_max_observers),
     NODE(max_observers), .doc = "client observers this node holds at most"},
    {.key = "proxy.max_observers_per_resource", UINT(1, 100000000),
     FIELD(proxy_max_observers_per_resource), NODE(max_observers_per_resource),
     .doc = "observers sharing one device-side observation"},
    {.key = "proxy.block_max_bytes", UINT(16, 1LL << 30), FIELD(proxy_block_max_bytes),
     NODE(block_max_bytes), .doc = "largest device representation reassembled from Block2 blocks"},
    {.key = "proxy.block_size", UINT(16, 1024), FIELD(proxy_block_size), NODE(block_size),
     .doc = "Block2 size asked of devices and served to clients that name none"},
    {.key = "proxy.block_max_transfers", UINT(1, 1000000), FIELD(proxy_block_max_transfers),
     NODE(block_max_transfers), .doc = "Block2 transfers plus Block1 uploads at once, node-wide"},
    {.key = "proxy.block_timeout_ms", UINT(100, 3600000), FIELD(proxy_block_timeout_ms),
     NODE(block_timeout_ms), .doc = "a whole Block2 transfer from a device takes at most this"},
    {.key = "proxy.block_idle_ms", UINT(100, 3600000), FIELD(proxy_block_idle_ms),
     NODE(block_idle_ms), .doc = "an upload or a kept representation not continued is forgotten"},
    {.key = "proxy.upload_max_bytes", UINT(16, 1LL << 31), FIELD(proxy_upload_max_bytes),
     NODE(upload_max_bytes), .doc = "a Block1 upload beyond this gets 4.13 with Size1"},
    {.key = "proxy.uploads_per_device", UINT(1, 10000), FIELD(proxy_uploads_per_device),
     NODE(uploads_per_device), .doc = "Block1 uploads to one device at once (5.03 beyond)"},
    {.key = "proxy.max_pending_per_client", UINT(0, 100000000), FIELD(proxy_max_pending_per_client),
     NODE(max_pending_per_client),
     .doc = "relayed requests one client may have pending (4.29 beyond), 0 = no bound"},
    {.key = "proxy.max_observers_per_client", UINT(0, 100000000),
     FIELD(proxy_max_observers_per_client), NODE(max_observers_per_client),
     .doc = "observers one client may hold (5.03 beyond), 0 = no bound"},
    {.key = "proxy.max_group_requests_per_client", UINT(0, 100000),
     FIELD(proxy_max_group_requests_per_client), NODE(max_group_requests_per_client),
     .doc = "group requests one client may have fanning out at once (4.29 beyond), 0 = no bound"},
    {.key = "proxy.max_observations_per_device", UINT(0, 100000000),
     FIELD(proxy_max_observations_per_device), NODE(max_observations_per_device),
     .doc = "device-side observations of one device (5.03 beyond), 0 = no bound"},
    {.key = "proxy.nstart", UINT(0, 1000), FIELD(proxy_nstart), NODE(nstart),
     .doc = "CONs outstanding to one device at once (RFC 7252 NSTART), 0 = no bound"},
    {.key = "proxy.nstart_queue_max", UINT(0, 1000000), FIELD(proxy_nstart_queue_max),
     NODE(nstart_queue_max), .doc = "requests waiting for an NSTART slot per device (5.03 beyond)"},
    {.key = "proxy.dedup_max", UINT(16, 100000000), FIELD(proxy_dedup_max), NODE(dedup_max),
     .doc = "received MIDs remembered for duplicate detection, node-wide"},
    {.key = "proxy.dedup_per_peer", UINT(0, 100000000), FIELD(proxy_dedup_per_peer),
     NODE(dedup_per_peer), .doc = "received MIDs remembered per peer for dedup, 0 = no quota"},
    {.key = "proxy.max_groups", UINT(0, 1000000), FIELD(proxy_max_groups), NODE(max_groups),
     .doc = "groups defined at most (groups_file and PUT /groups)"},
    {.key = "proxy.group_max_members", UINT(1, 1000000), FIELD(proxy_group_max_members),
     NODE(group_max_members), .doc = "members of one group (a pattern's first matches)"},
    {.key = "proxy.group_max_requests", UINT(1, 100000), FIELD(proxy_group_max_requests),
     NODE(group_max_requests), .doc = "group requests fanning out at once (5.03 beyond)"},
    {.key = "proxy.group_pacing_burst", UINT(1, 100000), FIELD(proxy_group_pacing_burst),
     NODE(group_pacing_burst), .doc = "members a group request goes to at once"},
    {.key = "proxy.group_pacing_interval_ms", UINT(0, 60000),
     FIELD(proxy_group_pacing_interval_ms), NODE(group_pacing_interval_ms),
     .doc = "pause between two batches of members"},
    {.key = "proxy.group_timeout_max_ms", UINT(0, 3600000), FIELD(proxy_group_timeout_max_ms),
     NODE(group_timeout_max_ms), .doc = "a client's Multicast-Timeout is clamped to this"},

    {.key = "cluster.listen", .env = "TETHER_CLUSTER_LISTEN", .flag = "cluster-listen",
     .type = TETHERD_KEY_HOSTPORT, FIELD(cluster_listen), .def = "",
     .doc = "where this node receives internal messages (UDP); \"\" = no cluster"},
    {.key = "cluster.advertise", .env = "TETHER_CLUSTER_ADVERTISE", .type = TETHERD_KEY_HOSTPORT,
     FIELD(cluster_advertise), .def = "",
     .doc = "where other nodes reach this one, put in its Redis lease (\"\" = cluster.listen)"},
    {.key = "cluster.failover", .env = "TETHER_CLUSTER_FAILOVER", .flag = "failover",
     .type = TETHERD_KEY_BOOL, FIELD(cluster_failover), .def = "false",
     .doc = "checkpoint DTLS 1.2 CID sessions to Redis; adopt a dead node's, hand ours over on SIGTERM"},
    {.key = "cluster.checkpoint_interval_ms", UINT(0, 3600000), FIELD(cluster_ckpt_interval_ms),
     .def = "2000", .doc = "failover: rewrite a checkpoint whose receive window moved this often, 0 = off"},
    {.key = "cluster.bundle_bytes", UINT(0, 2106), FIELD(cluster_bundle_bytes), .def = "1400",
     .doc = "internal messages for one node share a datagram up to this size, 0 = one each (keep it under the internal MTU)"},
    {.key = "cluster.nodes", .type = TETHERD_KEY_NODES, FIELD(cluster_nodes),
     .arg = "{\"ID\": \"HOST:PORT\"}", .doc = "every node's internal address by node id"},

    {.key = "workers", .env = "TETHER_WORKERS", .flag = "workers", UINT(0, 64), FIELD(workers),
     .def = "1", .doc = "processes serving the same ports, each a node (node_id + k); 0 = one per core"},

    {.key = "udp.recv_buffer", UINT(0, 1LL << 30), FIELD(udp_recv_buffer), .def = "4194304",
     .doc = "SO_RCVBUF of each listener in bytes, 0 = the kernel's default"},
    {.key = "udp.send_buffer", UINT(0, 1LL << 30), FIELD(udp_send_buffer), .def = "4194304",
     .doc = "SO_SNDBUF of each listener in bytes, 0 = the kernel's default"},
};
/* clang-format on */

#define NKEYS (sizeof tetherd_config_keys / sizeof tetherd_config_keys[0])
_Static_assert(NKEYS <= TETHERD_CONFIG_MAX_KEYS, "raise TETHERD_CONFIG_MAX_KEYS");
const size_t tetherd_config_nkeys = NKEYS;

const tetherd_key_t *tetherd_config_key(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(tetherd_config_keys[i].key, key) == 0)
            return &tetherd_config_keys[i];
    return NULL;
}

/* Unsigned fields are 1, 2, 4 or 8 bytes wide (the table's sizeof). */
static uint64_t load_uint(const void *p, size_t size)
{
    switch (size) {
    case 1: return *(const uint8_t *)p;
    case 2: return *(const uint16_t *)p;
    case 4: return *(const uint32_t *)p;
    default: return *(const uint64_t *)p;
    }
}

static void store_uint(void *p, size_t size, uint64_t v)
{
    switch (size) {
    case 1: *(uint8_t *)p = (uint8_t)v; break;
    case 2: *(uint16_t *)p = (uint16_t)v; break;
    case 4: *(uint32_t *)p = (uint32_t)v; break;
    default: *(uint64_t *)p = v; break;
    }
}

uint64_t tetherd_config_uint(const tetherd_config_t *c, const tetherd_key_t *k)
{
    return load_uint((const char *)c + k->off, k->size);
}

void tetherd_config_set_uint(tetherd_config_t *c, const tetherd_key_t *k, uint64_t v)
{
    store_uint((char *)c + k->off, k->size, v);
}

bool tetherd_config_bool(const tetherd_config_t *c, const tetherd_key_t *k)
{
    return *(const bool *)((const char *)c + k->off);
}

void tetherd_config_set_bool(tetherd_config_t *c, const tetherd_key_t *k, bool v)
{
    *(bool *)((char *)c + k->off) = v;
}

const char *tetherd_config_str(const tetherd_config_t *c, const tetherd_key_t *k)
{
    return (const char *)c + k->off;
}

char *tetherd_config_str_field(tetherd_config_t *c, const tetherd_key_t *k)
{
    return (char *)c + k->off;
}

/* The library's conf struct a key feeds, NULL for the other library. */
static char *lib_base(const tetherd_key_t *k, tether_node_conf_t *nc, tether_dtls_conf_t *dc)
{
    if (k->lib == TETHERD_LIB_NODE && nc)
        return (char *)nc;
    if (k->lib == TETHERD_LIB_DTLS && dc)
        return (char *)dc;
    return NULL;
}

void tetherd_config_lib_defaults(tetherd_config_t *c)
{
    tether_node_conf_t nc;
    tether_dtls_conf_t dc;
    tether_node_conf_defaults(&nc);
    tether_dtls_conf_defaults(&dc);
    for (size_t i = 0; i < NKEYS; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        char *lib = lib_base(k, &nc, &dc);
        if (!k->def && lib && k->type == TETHERD_KEY_UINT)
            tetherd_config_set_uint(c, k, load_uint(lib + k->lib_off, k->lib_size) / k->lib_scale);
    }
}

/* Library defaults, then every key that feeds the library given. String
 * keys become pointers into `c`. */
static void to_lib(const tetherd_config_t *c, tether_node_conf_t *nc, tether_dtls_conf_t *dc)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        char *lib = lib_base(k, nc, dc);
        if (!lib)
            continue;
        if (k->type == TETHERD_KEY_UINT)
            store_uint(lib + k->lib_off, k->lib_size, tetherd_config_uint(c, k) * k->lib_scale);
        else if (k->type == TETHERD_KEY_STRING && k->lib_size == sizeof(const char *))
            *(const char **)(lib + k->lib_off) = tetherd_config_str(c, k);
    }
}

void tetherd_config_node_conf(const tetherd_config_t *c, tether_node_conf_t *out)
{
    tether_node_conf_defaults(out);
    to_lib(c, out, NULL);
}

void tetherd_config_dtls_conf(const tetherd_config_t *c, tether_dtls_conf_t *out)
{
    tether_dtls_conf_defaults(out);
    to_lib(c, NULL, out);
}

void tetherd_listen_str(const tetherd_listen_t *l, char *buf, size_t cap)
{
    bool v6 = strchr(l->host, ':') != NULL;
    snprintf(buf, cap, "%s://%s%s%s:%u", l->proto == TETHERD_PROTO_COAP ? "coap" : "coaps",
             v6 ? "[" : "", l->host, v6 ? "]" : "", l->port);
}

void tetherd_url_redacted(const char *url, char *buf, size_t cap)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    if (at)
        snprintf(buf, cap, "%.*s***%s", (int)(scheme + 3 - url), url, at);
    else
        snprintf(buf, cap, "%s", url);
}
