/* tetherd configuration: embedded defaults < config file < env < CLI.
 *
 * Every knob is one row of the key table (tetherd_config_keys, in
 * config/keys.c): its JSON key, environment variable, command-line flag,
 * type, range, default and doc string. The table drives parsing of the
 * file (config/load.c), the env and flag overrides, --help, GET /config
 * (admin/config_dump.c) and the check that conf/README.md documents every
 * key (test/integration/test_config_doc.sh). A new knob is a field below
 * plus one row. */
#ifndef TETHERD_CONFIG_H
#define TETHERD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/dtls.h"
#include "tether/node.h"

/* tetherd --version, the ready log line and the node's /node resource. */
#define TETHERD_VERSION "0.1.0"
#define TETHERD_MAX_LISTEN 8

typedef enum { TETHERD_PROTO_COAP = 0, TETHERD_PROTO_COAPS = 1 } tetherd_proto_t;

typedef struct {
    char host[64];
    uint16_t port;
    tetherd_proto_t proto;
} tetherd_listen_t;

typedef struct {
    char file[512]; /* "" when running on embedded defaults */
    uint32_t node_id;
    tetherd_listen_t listen[TETHERD_MAX_LISTEN];
    size_t nlisten;
    char admin[80];
    char admin_token[128];
    uint32_t admin_max_connections;
    uint32_t admin_max_connections_per_address; /* 0 = no cap */
    uint32_t admin_idle_timeout;                /* seconds */
    uint32_t admin_coap_streams;                /* SSE streams per identity on /coap/... */
    uint32_t admin_coap_waiting;                /* parked /coap/... requests per client identity */
    char redis_url[256];
    uint32_t redis_backlog_max; /* dirty keys held while Redis is away */
    char cluster_key[128];
    char log_level[16];
    char credentials_file[512];
    bool plain_coap_public;
    uint16_t opt_multicast_timeout;
    uint16_t opt_reply_from;
    uint16_t opt_group_etag;
    uint8_t dtls_cid_length;
    uint32_t dtls_max_sessions;
    uint32_t dtls_max_handshakes;
    uint32_t dtls_handshake_timeout; /* seconds */
    uint32_t dtls_idle_timeout;      /* seconds */
    /* "proxy": relay and queue mode, defaults from tether_node_conf_defaults */
    uint32_t proxy_request_timeout_ms;
    uint32_t proxy_ack_delay_ms;
    uint32_t proxy_queue_max;
    uint32_t proxy_queue_ttl_ms;
    uint32_t proxy_queue_awake_ms;
    uint32_t proxy_max_devices;
    uint32_t proxy_max_pending;
    uint32_t proxy_max_observers;
    uint32_t proxy_max_observers_per_resource;
    uint64_t proxy_cache_bytes; /* response cache budget, 0 = no caching */
    /* "proxy": block-wise (RFC 7959), defaults from tether_node_conf_defaults */
    uint32_t proxy_block_max_bytes;
    uint32_t proxy_block_size;
    uint32_t proxy_block_max_transfers;
    uint32_t proxy_block_timeout_ms;
    uint32_t proxy_block_idle_ms;
    uint32_t proxy_upload_max_bytes;
    uint32_t proxy_uploads_per_device;
    /* "proxy": per-client and per-device bounds (SPEC S10) */
    uint32_t proxy_max_pending_per_client;
    uint32_t proxy_max_observers_per_client;
    uint32_t proxy_max_group_requests_per_client;
    uint32_t proxy_max_observations_per_device;
    uint32_t proxy_nstart;
    uint32_t proxy_nstart_queue_max;
    uint32_t proxy_dedup_max;
    uint32_t proxy_dedup_per_peer;
    /* "proxy": group requests, defaults from tether_node_conf_defaults */
    uint32_t proxy_max_groups;
    uint32_t proxy_group_max_members;
    uint32_t proxy_group_max_requests;
    uint32_t proxy_group_pacing_burst;
    uint32_t proxy_group_pacing_interval_ms;
    uint32_t proxy_group_timeout_max_ms;
    char groups_file[512];    /* groups defined at start and on SIGHUP ("" none) */
    uint32_t drain_timeout;   /* seconds SIGTERM waits for pending requests */
    char dtls_ca_file[512];   /* CA of client certificates ("" = none) */
    char dtls_cert_file[512]; /* our ECDSA certificate (chain), PEM */
    char dtls_key_file[512];  /* its private key, PEM */
    uint32_t dtls_hs_rate;    /* handshakes per second per source IP, 0 = off */
    uint32_t dtls_hs_burst;
    uint32_t dtls_hs_inflight;       /* handshakes in flight per source, 0 = no cap */
    uint32_t dtls_hs_prefix;         /* handshakes in flight per /24 or /48, 0 = no cap */
    uint32_t dtls_sessions_per_id;   /* established sessions per identity, 0 = no cap */
    uint32_t dtls_hello_rate;        /* hellos looked at per second, node-wide, 0 = no budget */
    uint32_t dtls_hs_flight_ms;      /* a handshake silent this long is dropped */
    uint32_t dtls_ticket_rotation_s; /* session ticket key period */
    /* "cluster": the internal channel (SPEC S5). Off while listen is "". */
    char cluster_listen[160];          /* HOST:PORT this node receives forwarded records on */
    bool cluster_failover;             /* checkpoints, adoption, handover (server/failover.h) */
    uint32_t cluster_ckpt_interval_ms; /* receive-window refresh of checkpoints */
    uint32_t cluster_bundle_bytes;     /* internal datagram size for bundles, 0 = off */
    char cluster_advertise[160];       /* HOST:PORT other nodes reach it at ("" = cluster_listen) */
    struct {
        uint8_t id;
        char addr[160]; /* HOST:PORT of that node's internal channel */
    } cluster_nodes[32];
    size_t ncluster_nodes;
    uint32_t workers;         /* worker processes on the same ports, 0 = one per core */
    uint32_t udp_recv_buffer; /* SO_RCVBUF of each listener, bytes, 0 = kernel default */
    uint32_t udp_send_buffer; /* SO_SNDBUF */
    bool check_only;
} tetherd_config_t;

typedef enum {
    TETHERD_KEY_UINT,      /* integer min..max in an unsigned field of 1, 2, 4 or 8 bytes */
    TETHERD_KEY_BOOL,      /* true or false */
    TETHERD_KEY_STRING,    /* shorter than its field */
    TETHERD_KEY_HOSTPORT,  /* a string "HOST:PORT" (checked once every source is in) */
    TETHERD_KEY_SECRET,    /* a string never shown or logged ("***" in /config) */
    TETHERD_KEY_URL,       /* a string whose userinfo (password) /config hides */
    TETHERD_KEY_LOG_LEVEL, /* error, warn, info or debug */
    TETHERD_KEY_LISTEN,    /* the listeners: listen[] and nlisten */
    TETHERD_KEY_NODES,     /* {"ID": "HOST:PORT"}: cluster_nodes[] and ncluster_nodes */
} tetherd_key_type_t;

/* The library configuration a key feeds (tetherd_config_lib_conf). */
typedef enum { TETHERD_LIB_NONE, TETHERD_LIB_NODE, TETHERD_LIB_DTLS } tetherd_key_lib_t;

typedef struct {
    const char *key;  /* JSON path: "node_id", "dtls.cid_length" (at most one dot) */
    const char *env;  /* environment variable, or NULL */
    const char *flag; /* command-line flag without "--", or NULL */
    tetherd_key_type_t type;
    long long min, max; /* TETHERD_KEY_UINT */
    size_t off, size;   /* the field in tetherd_config_t */
    /* The default in the env/flag syntax; NULL: the library's default for
     * the field the key feeds (none for the listener and node lists). */
    const char *def;
    tetherd_key_lib_t lib; /* the library field this key sets, if any */
    size_t lib_off, lib_size;
    uint32_t lib_scale; /* library value = ours * lib_scale (seconds -> ms) */
    const char *arg;    /* how a value is written in --help ("HOST:PORT"), NULL: by type */
    const char *doc;    /* one line for --help */
} tetherd_key_t;

extern const tetherd_key_t tetherd_config_keys[];
extern const size_t tetherd_config_nkeys;

/* The key named `key` ("dtls.cid_length"), NULL when there is none. */
const tetherd_key_t *tetherd_config_key(const char *key);
/* Values of a key of `c` by type: UINT, BOOL, and the string types. */
uint64_t tetherd_config_uint(const tetherd_config_t *c, const tetherd_key_t *k);
bool tetherd_config_bool(const tetherd_config_t *c, const tetherd_key_t *k);
const char *tetherd_config_str(const tetherd_config_t *c, const tetherd_key_t *k);
/* Writes "coap(s)://HOST:PORT" ("[v6]" bracketed) into buf. */
void tetherd_listen_str(const tetherd_listen_t *l, char *buf, size_t cap);
/* Copies "scheme://user:pass@rest" into buf with the userinfo as "***". */
void tetherd_url_redacted(const char *url, char *buf, size_t cap);

/* Library configurations from `c`: the library's defaults, then every key
 * that feeds that library. What the keys do not cover (node ids, seeds,
 * the cluster key, file paths as pointers into `c`) the caller sets. */
void tetherd_config_node_conf(const tetherd_config_t *c, tether_node_conf_t *out);
void tetherd_config_dtls_conf(const tetherd_config_t *c, tether_dtls_conf_t *out);

/* Fills *cfg from defaults, the file named by --config, env and argv.
 * On failure returns a TETHER_E* code and writes a one-line message naming
 * the file, line and key into err[errcap]. Returns 1 when --help or
 * --version was handled and the process should exit 0. */
int tetherd_config_load(tetherd_config_t *cfg, int argc, char **argv, char *err, size_t errcap);

/* Parses "HOST:PORT", "[v6]:PORT" or "coap(s)://HOST:PORT". Without a
 * scheme, port 5683 means plain CoAP and anything else DTLS. Port 0 asks the
 * kernel for a free port (tests read the bound port from the log). */
int tetherd_parse_listen(const char *s, tetherd_listen_t *out);

/* True for 127.0.0.0/8, ::1 and "localhost". */
bool tetherd_is_loopback(const char *host);

#endif
