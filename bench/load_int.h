/* tether-bench load, inside: the run's state and what its files share.
 * load.c drives the sessions and their requests, load_cli.c parses the
 * options and writes the report. */
#ifndef BENCH_LOAD_INT_H
#define BENCH_LOAD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "peer.h"
#include "tether/coap.h"
#include "tether/creds.h"
#include "tether/hist.h"

#define CMD "load"
#define LOAD_SLOTS 32 /* outstanding requests per session at most */
#define LOAD_REQ_MAX 1400
#define LOAD_TOKEN_LEN 4
#define LOAD_SWEEP_MS 20
#define LOAD_NOTIF_LOG 512

typedef struct {
    bench_common_opts_t c;
    bench_dtls_cred_t cred; /* shared by every session */
    char target[256];
    uint8_t method;
    const char *payload;
    const char *proxy_uri;
    uint32_t concurrency, max_outstanding, timeout_ms, connect_timeout_s;
    double warmup_s; /* --warmup: unmeasured traffic before the window */
    double rate;
    bool json;
    bool observe;          /* each session observes one target and counts notifications */
    uint32_t keepalive_ms; /* an empty CON (CoAP ping) this often per session, 0: none */
} load_opts_t;

enum { SLOT_FREE, SLOT_WAIT, SLOT_ACKED };

typedef struct {
    uint8_t state;
    uint16_t mid;
    uint16_t target; /* template index */
    uint32_t token;
    uint64_t t0_us; /* scheduled (open loop) or first sent (closed loop) */
    uint64_t sent_ms;
    bench_con_t rt;
} load_slot_t;

struct load;

typedef struct {
    bench_peer_t peer;
    struct load *L;
    uint16_t next_mid;
    uint32_t next_tok;
    uint32_t used; /* bit i set: slots[i] in use */
    uint32_t outstanding;
    bool up; /* counted in load_t.up */
    /* --observe: the longest silence between two notifications while
     * measuring (failover tests read it as the time an observer was cut
     * off; reported at the end, one to the end for a silent observer). */
    uint64_t last_notif_us, max_gap_us;
    /* and when each notification came (wall clock ms, the first
     * LOAD_NOTIF_LOG), so a test can line them up with its own events */
    uint64_t *notif_at;
    uint32_t nnotif;
    uint64_t next_ping_ms; /* --keepalive */
    load_slot_t slots[LOAD_SLOTS];
} load_sess_t;

typedef struct {
    uint64_t sent, retransmits, responses, separate, timeouts, resets, lost, overflow;
    uint64_t send_errors, late, codes[256];
    uint64_t notifications; /* --observe: notifications received while measuring */
} load_stats_t;

typedef struct load {
    load_opts_t o;
    uv_loop_t *loop;
    bench_net_t net;
    bench_runner_t runner;
    uv_idle_t pacer;                /* open loop: checks the schedule every loop turn */
    uv_timer_t sweep, warmup, warm; /* warm: end of --warmup */
    load_sess_t *sess;
    uint32_t up;
    bench_pacer_t pace;
    bool running, stopping, ended, warming;
    bench_cpu_window_t cpu; /* --cpu-pid over the measured window */
    char cipher[64];        /* negotiated by the first session up */
    uint64_t start_us, end_us, hs_start_us, hs_end_us;
    uint8_t (*tmpl)[LOAD_REQ_MAX]; /* one per target device */
    size_t *tmpl_len;
    uint32_t ntargets, next_target;
    load_stats_t st;
    tether_hist_t hist;
} load_t;

/* load_cli.c: the options in, the report out. */
void report_json(load_t *L, double secs);
void report_text(load_t *L, double secs);
int parse_opts(int argc, char **argv, load_opts_t *o);

#endif
