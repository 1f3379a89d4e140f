/* tetherd configuration: embedded defaults < config file < env < CLI. */
#ifndef TETHERD_CONFIG_H
#define TETHERD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TETHERD_MAX_LISTEN 8

typedef enum { TETHERD_PROTO_COAP = 0, TETHERD_PROTO_COAPS = 1 } tetherd_proto_t;

typedef struct {
    char host[64];
    uint16_t port;
    tetherd_proto_t proto;
} tetherd_listen_t;

typedef struct {
    char file[512]; /* "" when running on embedded defaults */
    unsigned node_id;
    tetherd_listen_t listen[TETHERD_MAX_LISTEN];
    size_t nlisten;
    char admin[80];
    char admin_token[128];
    uint32_t admin_max_connections;
    uint32_t admin_idle_timeout; /* seconds */
    char redis_url[256];
    char cluster_key[128];
    char log_level[16];
    char credentials_file[512];
    bool plain_coap_public;
    uint16_t opt_multicast_timeout;
    uint16_t opt_reply_from;
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
    uint32_t drain_timeout; /* seconds SIGTERM waits for pending requests */
    char dtls_ca_file[512];          /* CA of client certificates ("" = none) */
    char dtls_cert_file[512];        /* our ECDSA certificate (chain), PEM */
    char dtls_key_file[512];         /* its private key, PEM */
    uint32_t dtls_hs_rate;           /* handshakes per second per source IP, 0 = off */
    uint32_t dtls_hs_burst;
    uint32_t dtls_hs_per_source;     /* handshakes in flight per source, 0 = no cap */
    /* "cluster": the internal channel (SPEC S5). Off while listen is "". */
    char cluster_listen[160]; /* HOST:PORT this node receives forwarded records on */
    struct {
        uint8_t id;
        char addr[160]; /* HOST:PORT of that node's internal channel */
    } cluster_nodes[32];
    size_t ncluster_nodes;
    uint32_t udp_recv_buffer; /* SO_RCVBUF of each listener, bytes, 0 = kernel default */
    uint32_t udp_send_buffer; /* SO_SNDBUF */
    bool check_only;
} tetherd_config_t;

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
