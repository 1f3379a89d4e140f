/* tether-bench — shared pieces of every subcommand: option parsing helpers,
 * clock and randomness, progress lines, the run loop with signals and a
 * duration, and RFC 7252 CON retransmission timing. */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "tether/hist.h"

#define BENCH_EXIT_USAGE 2
#define BENCH_EXIT_FAIL 1

/* RFC 7252 §4.8 transmission parameters. */
#define BENCH_ACK_TIMEOUT_MS 2000
#define BENCH_ACK_RANDOM_FACTOR 1.5
#define BENCH_MAX_RETRANSMIT 4

/* The link-format payload (RFC 6690) every simulated device registers
 * with (`devices`; the suite's registered idle rows state its size). */
#define BENCH_DEVICE_LINKS                                                                         \
    "</temp>;rt=\"temperature\";obs,</big>;sz=4096,</echo>,</slow>,</static>,</count>,"            \
    "</large>;sz=65536,</upload>,</hits>"

/* Subcommands (see the table in main.c). */
int bench_devices_main(int argc, char **argv);
int bench_load_main(int argc, char **argv);
int bench_handshakes_main(int argc, char **argv);
int bench_idle_main(int argc, char **argv);
int bench_relay_ceiling_main(int argc, char **argv);
int bench_fanout_ceiling_main(int argc, char **argv);
int bench_suite_main(int argc, char **argv);

/* Prints "tether-bench CMD: error: ..." and a hint to --help on stderr;
 * returns BENCH_EXIT_USAGE for the caller to exit with. */
int bench_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define BENCH_CPU_PIDS 4

/* Options every network command takes. A command sets its defaults, then
 * bench_parse_args fills them. */
typedef struct {
    struct sockaddr_storage server;
    bool have_server;
    /* --records-to: after its handshake with --server, a peer sends its
     * records here (another node of a cluster, which forwards them by CID) */
    struct sockaddr_storage records_to;
    bool have_records_to;
    bool dtls13;
    double duration_s; /* 0: until a signal */
    uint32_t max_handshakes;
    /* --cpu-pid (repeatable): processes whose CPU time the command reads
     * over its own measured window (the servers under test) */
    uint32_t cpu_pids[BENCH_CPU_PIDS];
    uint32_t ncpu_pids;
    const char *cipher; /* --cipher: the only suites offered (NULL: the defaults) */
} bench_common_opts_t;

enum {
    BENCH_OPT_SERVER = 1000,
    BENCH_OPT_DURATION,
    BENCH_OPT_DTLS13,
    BENCH_OPT_MAXHS,
    BENCH_OPT_RECORDS_TO,
    BENCH_OPT_CPU_PID,
    BENCH_OPT_CIPHER,
    BENCH_OPT_HELP,
    BENCH_OPT_FIRST_OWN = 1100, /* a command numbers its own options from here */
};

#define BENCH_COMMON_LONG_OPTS                                                                     \
    {"server", required_argument, NULL, BENCH_OPT_SERVER},                                         \
        {"duration", required_argument, NULL, BENCH_OPT_DURATION},                                 \
        {"dtls13", no_argument, NULL, BENCH_OPT_DTLS13},                                           \
        {"max-handshakes", required_argument, NULL, BENCH_OPT_MAXHS},                              \
        {"records-to", required_argument, NULL, BENCH_OPT_RECORDS_TO},                             \
        {"cpu-pid", required_argument, NULL, BENCH_OPT_CPU_PID},                                   \
        {"cipher", required_argument, NULL, BENCH_OPT_CIPHER},                                     \
    {                                                                                              \
        "help", no_argument, NULL, BENCH_OPT_HELP                                                  \
    }

/* Handles one of the command's own options: 0, or an exit code from
 * bench_usage_error. */
typedef int (*bench_opt_fn)(void *ctx, int opt, const char *arg);

/* Parses argv (argv[0] is the command name) with getopt_long: common
 * options into `co`, the others through `fn`. --server is required.
 * Returns 0 to go on, 1 when --help was asked, or a usage exit code. */
int bench_parse_args(const char *cmd, int argc, char **argv, const struct option *opts,
                     bench_common_opts_t *co, bench_opt_fn fn, void *ctx);

/* What a command does with bench_parse_args' result: -1 to go on, else the
 * exit status (after printing the usage text for --help). */
int bench_args_outcome(int rc, void (*usage)(FILE *f));

/* Strict number parsing for option values: the whole string must be a
 * number within [min, max]. 0 or TETHER_EINVAL. */
int bench_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
int bench_parse_double(const char *s, double min, double max, double *out);
/* "HOST:PORT" or "[V6]:PORT" (a numeric address or "localhost"). */
int bench_parse_addr(const char *s, struct sockaddr_storage *out);

/* "ip:port" of an address, into buf (64 bytes suffice). */
const char *bench_addr_str(const struct sockaddr_storage *a, char *buf, size_t cap);

/* A progress line "CMD: ..." on stderr, flushed at once. */
void bench_log(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic microseconds. */
uint64_t bench_now_us(void);

/* Open-loop schedule: request k is due at start_us + k / rate, whatever
 * happened to the earlier ones, so latency runs from the schedule (no
 * coordinated omission). Shared by `load` and `relay-ceiling`. */
typedef struct {
    uint64_t start_us;
    double rate; /* requests per second */
    uint64_t issued;
    uint32_t rr; /* round-robin position among senders */
} bench_pacer_t;

void bench_pacer_start(bench_pacer_t *p, uint64_t start_us, double rate);
/* True while a request is due by `now`; *sched receives its scheduled time
 * and it counts as issued. */
bool bench_pacer_due(bench_pacer_t *p, uint64_t now, uint64_t *sched);
/* One poll of a busy-polling open loop: every request due by now goes to
 * the next of n senders, round robin, for which can_take(ctx, i) holds, via
 * send(ctx, i, scheduled_us). Returns how many found every sender at its
 * limit (overflow). When nothing was due it yields the CPU, so a process
 * sharing the core (the simulated devices in the suite) runs now rather
 * than at our next time slice: otherwise the latency measured would be the
 * scheduler's, in milliseconds. */
uint64_t bench_pacer_poll(bench_pacer_t *p, uint32_t n, bool (*can_take)(void *ctx, uint32_t i),
                          void (*send)(void *ctx, uint32_t i, uint64_t sched_us), void *ctx);
/* Fast non-cryptographic randomness (timing jitter, tokens). */
uint32_t bench_rand(void);
/* Uniform in [0, 1). */
double bench_rand01(void);

/* Adds "latency_hist": [[lo, hi, count], ...] (the non-empty buckets of
 * `h`, microseconds) to a JSON report, for bench/chart.sh. */
struct json_t;
void bench_hist_json(const tether_hist_t *h, struct json_t *report);

/* Raises the open-file limit to the hard limit (one socket per peer). */
void bench_raise_nofile(void);
/* Resident memory of process `pid` (VmRSS) in bytes, or a negative code. */
int64_t bench_rss_bytes(uint32_t pid);

/* utime + stime of process `pid` in clock ticks (0 when unreadable). */
uint64_t bench_proc_cpu_ticks(uint32_t pid);

/* CPU time of process `pid` in nanoseconds, all threads: the scheduler's
 * own account (/proc/PID/schedstat, first field) when the kernel has it,
 * else utime + stime at clock-tick resolution. 0 when unreadable. */
uint64_t bench_proc_cpu_ns(uint32_t pid);

/* The share of one core each watched process used over a window: what a
 * command measures must be judged by its servers' CPU over the same
 * window, not over their start-up or the load's connection phase. */
typedef struct {
    uint32_t n, pids[BENCH_CPU_PIDS];
    uint64_t t0_us, t1_us, c0[BENCH_CPU_PIDS], c1[BENCH_CPU_PIDS];
} bench_cpu_window_t;

void bench_cpu_window_start(bench_cpu_window_t *w, const uint32_t *pids, uint32_t n);
void bench_cpu_window_stop(bench_cpu_window_t *w);
/* Share of one core (0.37 = 37%) process i used; < 0 before stop or when
 * not watched. */
double bench_cpu_window_share(const bench_cpu_window_t *w, uint32_t i);
/* Adds "server_cpu" (sum of the shares, or null when nothing was watched)
 * and "server_cpu_each" (one per --cpu-pid) to a JSON report. */
void bench_cpu_window_json(const bench_cpu_window_t *w, struct json_t *report);

/* Raises the open-file limit to at least `want` (also the hard limit when
 * privileged); TETHER_ELIMIT when it stays below. */
int bench_raise_nofile_to(uint64_t want);

/* Raw loopback UDP of the ceiling commands (rawudp.c). */
struct mmsghdr;
/* A CPU number option (`opt`, e.g. "--relay-cpu"): 0..4095, or -1 for no
 * pinning. 0, or the exit code of bench_usage_error. */
int bench_parse_cpu(const char *cmd, const char *opt, const char *arg, int *out);
/* Pins the calling process to `cpu` (< 0: no pinning). */
void bench_pin_cpu(int cpu);
/* A non-blocking UDP socket bound to 127.0.0.1:0 with both buffers of
 * `bufsize` bytes (forced past the system maximum when allowed; 0: the
 * defaults); its port in *port. The fd or -1. */
int bench_udp_socket(int bufsize, uint16_t *port);
/* Sends msgs[0..n) with sendmmsg until done; a full socket (or any other
 * error) drops the rest, as a full tetherd transmit queue does. Returns
 * how many the kernel took. */
uint32_t bench_sendmmsg_all(int fd, struct mmsghdr *msgs, uint32_t n);

/* Runs `loop` until `stop` has been called and every handle is closed.
 * SIGINT/SIGTERM and, when duration_s > 0, the end of the duration call
 * stop(user) once; stop must close the caller's handles. start_duration
 * may be false to start the clock later with bench_runner_start. */
typedef struct {
    uv_loop_t *loop;
    uv_signal_t sigint, sigterm;
    uv_timer_t duration;
    double duration_s;
    bool stopping;
    void (*stop)(void *user);
    void *user;
} bench_runner_t;

void bench_runner_init(bench_runner_t *r, uv_loop_t *loop, double duration_s,
                       void (*stop)(void *user), void *user);
/* Starts the duration clock (no-op without a duration). */
void bench_runner_start(bench_runner_t *r);
/* Stops now (as a signal would); idempotent. */
void bench_runner_stop(bench_runner_t *r);
int bench_runner_run(bench_runner_t *r);

/* CON retransmission state (RFC 7252 §4.2): random initial timeout in
 * [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR], doubled each time. */
typedef struct {
    uint64_t deadline_ms;
    uint32_t timeout_ms;
    uint8_t retries;
} bench_con_t;

void bench_con_start(bench_con_t *c, uint64_t now_ms);
/* At the deadline: true means retransmit now (the next deadline is set),
 * false means MAX_RETRANSMIT is exhausted and the exchange failed. */
bool bench_con_retry(bench_con_t *c, uint64_t now_ms);

#endif
