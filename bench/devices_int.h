/* tether-bench devices, inside: the simulated device's state and what its
 * files share. devices.c drives the fleet (sessions, timers, input,
 * stats, options), devices_proto.c is a device's CoAP messaging (sending,
 * duplicate detection, the outbox with retransmission, RD registration)
 * and devices_res.c the resources it serves. */
#ifndef BENCH_DEVICES_INT_H
#define BENCH_DEVICES_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "bench.h"
#include "peer.h"
#include "tether/coap.h"
#include "tether/creds.h"

#define CMD "devices"
#define DEV_MTU 1400
#define DEV_MAX_OBS 4
#define DEV_DEDUP 16
#define DEV_OUTBOX 16
#define DEV_BIG_SIZE 4096
#define DEV_LARGE_SIZE 65536
#define DEV_UPLOADS 4              /* uploads in progress per device */
#define DEV_UPLOAD_MAX (64u << 20) /* bytes one upload may bring */
#define DEV_UPLOAD_IDLE_MS 60000   /* a partial upload older than this gives way */
#define DEV_REG_RETRY_MS 5000
#define DEV_SEP_WAIT_MS 30000     /* for a separate response after an empty ACK */
#define DEV_RECONNECT_MS 1000     /* plus up to twice that of jitter */
#define DEV_CON_NOTIFY_EVERY 5    /* every 5th notification is confirmable */
#define DEV_SEPARATE_AFTER_MS 500 /* delayed answers this late go separate */
#define DEV_REG_MAX_FAILS 2       /* exchange timeouts before a new handshake */

typedef struct {
    bench_common_opts_t c;
    uint32_t count, first, lifetime_s, response_delay_ms;
    uint32_t notify_ms; /* /temp notifies its observers this often */
    char prefix[32];
    uint8_t master[64];
    size_t master_len;
    double rebind_s, sleep_s, awake_s, stats_s;
    bool sleepy;
    /* --ping-gaps: after registering, stay silent for gap[0] seconds, send
     * a CoAP ping, and after its answer stay silent for gap[1]... (a NAT's
     * binding lifetime shows in which gaps change the source port). */
    double gaps[16];
    size_t ngaps;
} dev_opts_t;

/* A CON answered recently: a duplicate gets the same bytes (RFC 7252 §4.5). */
typedef struct {
    uint16_t mid;
    bool used, ready;
    uint16_t len, cap;
    uint8_t *buf;
} dev_dedup_t;

/* A message to send later (delayed or separate response, CON notification),
 * retransmitted until ACKed when confirmable. */
typedef struct {
    bool used, con, sent;
    int8_t obs;   /* observer this notification is for, or -1 */
    int8_t dedup; /* dedup slot to fill when sent (delayed piggyback), or -1 */
    uint16_t mid;
    uint64_t at_ms;
    bench_con_t rt;
    uint16_t len;
    uint8_t buf[DEV_MTU];
} dev_out_t;

/* One Block1 upload in progress (RFC 7959 §2.5), told apart from the
 * others by its Request-Tag (RFC 9175 §3): hashed as it comes, not kept. */
typedef struct {
    bool used;
    uint8_t tag_len, tag[8];
    uint64_t off, last_ms;
    wc_Sha256 sha;
} dev_upload_t;

typedef struct {
    bool active;
    uint8_t tkl;
    uint8_t token[TETHER_COAP_MAX_TOKEN];
    uint32_t seq, sent;
    uint16_t last_mid;
} dev_obs_t;

enum { REG_IDLE, REG_WAIT };

struct devices;

typedef struct {
    bench_peer_t peer;
    struct devices *ds;
    uint32_t num;
    bench_dtls_cred_t cred; /* identity = the device's name */
    uv_timer_t timer;
    uint16_t next_mid;
    uint32_t phase_ms; /* per-device offset of the one-second clock */
    /* registration */
    uint8_t reg_state;
    bool connected; /* counted in devices_t.connected */
    bool registered, reg_update, reg_acked, phases_started;
    uint8_t reg_fails;
    uint16_t reg_mid, reg_len;
    uint8_t reg_token[4];
    bench_con_t reg_rt;
    uint64_t t_reg;
    uint8_t reg_buf[256];
    char loc[96]; /* Location-Path segments joined by '/' */
    /* timing */
    uint64_t t_notify, t_rebind, t_phase, t_reconnect;
    uint64_t t_gap; /* --ping-gaps: when the next ping goes */
    /* The longest silence since it registered: from one record received
     * to the next (failover tests read it as the time a device was cut
     * off, reported at the end: "devices: silences_ms"). */
    uint64_t last_rx, max_silence;
    size_t gap_i; /* the gap it ends */
    bool asleep;
    uint16_t ping_mid;
    /* serving */
    dev_obs_t obs[DEV_MAX_OBS];
    dev_dedup_t *dedup; /* DEV_DEDUP entries, allocated on first use */
    uint8_t dedup_next;
    dev_out_t *outbox; /* DEV_OUTBOX entries, allocated on first use */
    uint8_t *echo;     /* the last payload POSTed to /echo, allocated on first use */
    uint16_t echo_len;
    uint32_t count; /* GETs of /count */
    uint32_t hits_big, hits_large, hits_upload;
    dev_upload_t *uploads; /* DEV_UPLOADS entries, allocated on first use */
    char last_sha[65];     /* hex SHA-256 of the last complete upload, "" before */
} device_t;

typedef struct {
    uint64_t requests, dup_requests, responses, notifications, notifications_con;
    uint64_t observe_registrations, observe_cancels, separate, reg_ok, reg_errors;
    uint64_t reg_timeouts, pings, pongs, sleeps, outbox_full, bad_messages;
} dev_stats_t;

typedef struct devices {
    dev_opts_t o;
    uv_loop_t *loop;
    bench_net_t net;
    bench_runner_t runner;
    uv_timer_t stats_timer;
    tether_coap_optreg_t reg;
    device_t *dev;
    uint32_t connected, registered;
    bool all_connected_said, all_registered_said, stopping;
    bool code_logged[256];
    dev_stats_t st;
    uint8_t big[DEV_BIG_SIZE];
    uint8_t large[DEV_LARGE_SIZE];
} devices_t;

/* devices.c: the driver (life cycle, input, reporting, options, entry). */
void dev_arm(device_t *d);

/* devices_proto.c: sending, duplicate detection, the outbox, registration. */
void dev_send(device_t *d, const uint8_t *buf, size_t len);
size_t dev_emit(device_t *d, const tether_coap_msg_t *m, uint8_t *buf, size_t cap);
void send_empty(device_t *d, uint8_t type, uint16_t mid);
dev_dedup_t *dedup_find(device_t *d, uint16_t mid);
int dedup_store(device_t *d, uint16_t mid, const uint8_t *buf, size_t len);
dev_out_t *outbox_add(device_t *d, const tether_coap_msg_t *m, bool con, uint64_t at);
void obs_cancel(device_t *d, int i);
uint64_t outbox_run(device_t *d, uint64_t now);
void outbox_answered(device_t *d, uint16_t mid, bool rst);
void say_all(devices_t *ds, const char *what, uint32_t n, bool *said);
void reg_send(device_t *d, bool update, uint64_t now);
void set_registered(device_t *d, bool on);
void reg_answer(device_t *d, const tether_coap_msg_t *m, uint64_t now);
void reg_timeout(device_t *d, uint64_t now);
void reg_run(device_t *d, uint64_t now);

/* devices_res.c: the resources a device serves. */
extern const char link_format[sizeof BENCH_DEVICE_LINKS];
void add_uint_opt(tether_coap_msg_t *r, uint16_t num, uint32_t v, uint8_t *buf);
void dev_request(device_t *d, const tether_coap_msg_t *m, uint64_t now);
void notify_all(device_t *d, uint64_t now);
#endif
