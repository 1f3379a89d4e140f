/* tether-bench — a simulated peer on the network: one DTLS client session
 * (dtls_client.h) on its own UDP socket connected to the server, driven by
 * libuv. Handshakes are paced through the shared bench_net_t so thousands
 * of peers connect without flooding the server; a peer can move to a fresh
 * socket (new source port) while keeping its DTLS session (RFC 9146 CID). */
#ifndef BENCH_PEER_H
#define BENCH_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bench.h"
#include "dtls_client.h"

/* A handshake that has not finished by then is abandoned (and retried by
 * whoever owns the peer). */
#define BENCH_HANDSHAKE_GIVEUP_MS 20000

typedef struct bench_peer bench_peer_t;

typedef struct {
    /* The handshake completed. */
    void (*up)(bench_peer_t *p);
    /* One decrypted application record. */
    void (*record)(bench_peer_t *p, const uint8_t *data, size_t len);
    /* The handshake failed or the session ended (close_notify, alert);
     * the peer is idle again and may be connected anew. */
    void (*down)(bench_peer_t *p, int err);
} bench_peer_ops_t;

typedef struct {
    uint64_t handshakes_ok;
    uint64_t handshakes_failed;
    uint64_t sessions_lost;
    uint64_t rebinds;
    uint64_t tx_datagrams, tx_dropped;
    uint64_t rx_datagrams, rx_ignored; /* ignored: peer deaf (asleep) */
} bench_net_stats_t;

/* What every peer shares: loop, server address, wolfSSL context, pacing. */
typedef struct {
    uv_loop_t *loop;
    struct sockaddr_storage server;
    struct sockaddr_storage records_to; /* family 0: records go to `server` */
    bench_dtls_ctx_t dtls;
    uint32_t max_handshakes; /* in flight at once */
    uint32_t inflight;
    bench_peer_t *wait_head, *wait_tail;
    bench_net_stats_t stats;
    bool rx_busy;
    uint8_t rxbuf[65536];
} bench_net_t;

struct bench_peer {
    bench_net_t *net;
    const bench_peer_ops_t *ops;
    void *user;
    uv_udp_t *udp; /* heap: a rebind closes the old one asynchronously */
    uv_timer_t dtls_timer;
    bench_dtls_t dtls;
    bench_peer_t *wait_next;
    bool waiting;  /* wants a handshake slot */
    bool in_queue; /* linked in the pacing queue (removal is lazy) */
    bool counted;  /* holds a pacing slot */
    bool deaf;     /* drop every datagram before DTLS (a sleeping device) */
    bool closed;   /* bench_peer_close was called */
    uint64_t hs_started_ms;
    const bench_dtls_cred_t *cred;
    void *resume; /* a saved session to offer at the next handshake, or NULL */
};

/* Sets up what a command's peers share, on the default loop, from the
 * common options; raises the open-file limit (one socket per peer). On
 * failure the reason is printed as "tether-bench CMD: error: ...". */
int bench_net_init(bench_net_t *n, const char *cmd, const bench_common_opts_t *co);
/* Frees the shared state and closes the loop (after it has run dry). */
void bench_net_free(bench_net_t *n);

/* Sets up an idle peer (no socket yet) that authenticates with `cred`
 * (borrowed: it must outlive the peer). */
void bench_peer_init(bench_peer_t *p, bench_net_t *net, const bench_peer_ops_t *ops, void *user,
                     const bench_dtls_cred_t *cred);
/* Queues a handshake on a fresh socket; it starts when a pacing slot is
 * free. No-op unless the peer is idle. */
void bench_peer_connect(bench_peer_t *p);
/* True once the handshake completed and until the session ends. */
bool bench_peer_up(const bench_peer_t *p);
/* Sends one application record; TETHER_EINVAL when not up. */
int bench_peer_send(bench_peer_t *p, const uint8_t *data, size_t len);
/* Moves to a new UDP socket (new source port), same DTLS session. */
int bench_peer_rebind(bench_peer_t *p);
/* Drops the session without telling the server (as a vanished device
 * would) and goes idle; `down` is not called. */
void bench_peer_reset(bench_peer_t *p);
/* Ends the session politely (close_notify when up) and goes idle; `down`
 * is not called. The server frees its side at once. */
void bench_peer_hangup(bench_peer_t *p);
/* Ends for good: close_notify when `notify` and up, handles closed. */
void bench_peer_close(bench_peer_t *p, bool notify);

#endif
