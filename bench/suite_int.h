/* tether-bench suite, inside: what its files share. suite.c starts and
 * stops processes and the servers under test, suite_stages.c and
 * suite_cluster.c measure (one server at a time; clusters), suite_table.c
 * holds the rows and judges and prints them, suite_main.c is the entry. */
#ifndef BENCH_SUITE_INT_H
#define BENCH_SUITE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "bench.h"

#define CMD "suite"
#define MASTER "00112233445566778899aabbccddeeff"
#define APP_KEY_HEX "6170702d7365637265742d6b6579" /* "app-secret-key" */
#define APP_KEY "app-secret-key"
#define N_DEVICES 64
#define CONC 64
/* Every client-facing session of tether and of libcoap runs these suites,
 * so the comparison is of proxies, not of ciphers. */
#define CIPHER_PSK "PSK-AES128-CCM-8"
#define CIPHER_ECDHE "ECDHE-ECDSA-AES128-CCM-8"

typedef struct {
    char bench[1024], tetherd[1024], dir[256];
    const char *json_out;
    bool json, quick;
    const char *only; /* --only: comma-separated stage names, NULL: every stage */
    int server_cpu, bench_cpu;
    double dur;
    FILE *log;        /* progress */
    double lat_rate;  /* half the measured relayed-miss maximum, for the latency row */
    double lat_e2e;   /* end-to-end p99 of that run, us */
    double peer_rate; /* libcoap's measured relayed maximum */
    /* End-to-end latency histograms of the three latency runs (tether,
     * raw relay, libcoap) for bench/chart.sh; NULL when not run. */
    json_t *lat_hist[3];
} suite_t;

/* One S9 row: the figure, its two references, the target. */
typedef struct row_s {
    const char *id, *workload, *unit, *target;
    double tether, ceiling, peer;             /* < 0: not measured */
    double tether_cpu, ceiling_cpu, peer_cpu; /* server core share over the window, < 0 unknown */
    bool higher_better;
    /* the figure may be negative (a loss that came out as a gain): then
     * only SIGNED_NONE means "not measured" */
    bool signed_value;
    /* the ratios printed and judged (< 0: none), and whether they compare
     * per busy core-second figures (both CPU shares known) */
    double r_ceil, r_peer;
    bool r_ceil_pc, r_peer_pc;
    int met; /* MET_* */
    char note[900], peer_note[600];
    /* machine-readable figures behind the note ("detail" in the JSON) */
    const char *detail_name[6];
    double detail[6];
    int ndetail;
} row_t;

enum { MET_NA = -1, MET_NO = 0, MET_YES = 1, MET_NOT_MEASURED = 2 };
#define SIGNED_NONE (-1e300)

enum {
    R_MISS,
    R_HIT,
    R_OBS,
    R_PSK,
    R_ECDHE,
    R_RESUMED,
    R_IDLE10K,
    R_IDLE100K,
    R_IDLE10K_REG,
    R_IDLE100K_REG,
    R_IDLE1M,
    R_IDLE1M_REG,
    R_CROSS,
    R_XRELAY,
    R_WORKERS,
    R_LAT,
    R_N
};

typedef struct {
    pid_t pid;
    char port[16];
    char log[400];
} server_t;

/* libcoap as the peer: coap-server-openssl as a DTLS forward proxy (-P with
 * no next hop: it connects straight to the Proxy-Uri's host) in front of a
 * second coap-server-openssl playing the device over DTLS PSK. libcoap
 * 4.3.1 cannot be the reverse proxy S9 names: its -P applies to requests
 * with Proxy-Uri/Proxy-Scheme only; a request naming the device by
 * Uri-Host is answered from the proxy's own resources (checked: the device
 * saw none of them). A fresh pair for every row. */
typedef struct {
    pid_t dev, proxy;
    int up, px; /* UDP ports; DTLS on port + 1 */
    char server[32], uri[96];
} peer_t;

enum { H_TETHER, H_CEILING, H_PEER };

/* suite.c: processes and the servers under test. */

/* A progress line "suite: ..." on the suite's log (stderr). */
void say(suite_t *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stops a started process (SIGTERM, then SIGKILL after 5 s) and zeroes *pid. */
void stop_pid(pid_t *pid);

/* Runs a tether-bench command on the bench CPU and parses the JSON object
 * it prints (the argument list ends with NULL); see suite.c. */
json_t *run_bench(suite_t *S, const char *name, pid_t watch, double *cpu, ...);

/* A number at a dotted path of a JSON object, -1 when absent. */
double jnum(json_t *j, const char *path);

bool wait_for(const char *path, const char *needle, double secs);
int write_file(const char *path, const char *text);
int tetherd_start(suite_t *S, const char *conf, const char *name, server_t *sv);
json_t *tetherd_stats(const server_t *sv);
bool tetherd_accepts(suite_t *S, const char *conf);
int free_port_pair(void);
pid_t devices_start(suite_t *S, char *server, int count, int notify_ms, const char *name, bool *ok);
pid_t redis_start(suite_t *S, const char *name, row_t *r, int *port);

/* libcoap's pair of coap-server-openssl processes (suite.c). */
extern const char *const peer_bin;
void peer_stop(peer_t *p);
int peer_start(suite_t *S, bool certs, const char *name, peer_t *p);
void peer_upstream_suite(suite_t *S, const peer_t *p, char *out, size_t cap);

bool make_certs(suite_t *S);
int write_configs(suite_t *S);

/* suite_table.c: the rows, their verdicts, the table and its JSON. */
extern row_t rows[R_N];
void keep_hist(suite_t *S, int which, json_t *report);
bool measured(const row_t *r);
void row_detail(row_t *r, const char *name, double v);
void row_init(int i, const char *id, const char *workload, const char *unit, const char *target,
              bool higher);
void judge(void);
void print_table(suite_t *S);
json_t *table_json(suite_t *S);

/* suite_stages.c: one tetherd (or libcoap) at a time; the durations as
 * option values, set by the entry (suite_main.c). */
extern char dur_s[16], half_s[16], warm_s[16];
void stage_tether_relay(suite_t *S);
void stage_tether_ecdhe(suite_t *S, bool have_certs);
void stage_latency(suite_t *S);
void stage_observe(suite_t *S);
void stage_idle(suite_t *S);
void stage_ceiling(suite_t *S);
void stage_peer(suite_t *S, bool have_certs);

/* suite_cluster.c: several tetherd processes (and redis-server). */
void stage_cross(suite_t *S);
void stage_xrelay(suite_t *S);
void stage_workers(suite_t *S);

#endif
