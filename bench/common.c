/* Shared helpers of tether-bench subcommands (see bench.h). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"
#include "tether/common.h"
#include "tether/dtls.h"
#include "tether/hostport.h"

int bench_usage_error(const char *cmd, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tether-bench %s: error: %s\n(see tether-bench %s --help)\n", cmd, line, cmd);
    return BENCH_EXIT_USAGE;
}

/* Handles a common option; -1 when `opt` is not one. */
static int common_opt(const char *cmd, int opt, const char *arg, bench_common_opts_t *co)
{
    switch (opt) {
    case BENCH_OPT_SERVER:
        if (bench_parse_addr(arg, &co->server) < 0)
            return bench_usage_error(cmd, "--server wants HOST:PORT, got '%s'", arg);
        co->have_server = true;
        return 0;
    case BENCH_OPT_DURATION:
        if (bench_parse_double(arg, 0, 1e9, &co->duration_s) < 0)
            return bench_usage_error(cmd, "--duration wants seconds, got '%s'", arg);
        return 0;
    case BENCH_OPT_DTLS13: co->dtls13 = true; return 0;
    case BENCH_OPT_RECORDS_TO:
        if (bench_parse_addr(arg, &co->records_to) < 0)
            return bench_usage_error(cmd, "--records-to wants HOST:PORT, got '%s'", arg);
        co->have_records_to = true;
        return 0;
    case BENCH_OPT_MAXHS:
        if (bench_parse_u32(arg, 1, 1000000, &co->max_handshakes) < 0)
            return bench_usage_error(cmd, "--max-handshakes wants a number >= 1, got '%s'", arg);
        return 0;
    case BENCH_OPT_CPU_PID: {
        uint32_t pid;
        if (co->ncpu_pids == BENCH_CPU_PIDS || bench_parse_u32(arg, 1, 0x7fffffff, &pid) < 0)
            return bench_usage_error(cmd, "--cpu-pid wants a process id (at most %d), got '%s'",
                                     BENCH_CPU_PIDS, arg);
        co->cpu_pids[co->ncpu_pids++] = pid;
        return 0;
    }
    case BENCH_OPT_CIPHER: co->cipher = arg; return 0;
    case BENCH_OPT_HELP: return 1;
    default: return -1;
    }
}

int bench_parse_args(const char *cmd, int argc, char **argv, const struct option *opts,
                     bench_common_opts_t *co, bench_opt_fn fn, void *ctx)
{
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == '?' || c == ':')
            return bench_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        int rc = common_opt(cmd, c, optarg, co);
        if (rc < 0)
            rc = fn(ctx, c, optarg);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return bench_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!co->have_server)
        return bench_usage_error(cmd, "--server HOST:PORT is required");
    return 0;
}

int bench_args_outcome(int rc, void (*usage)(FILE *f))
{
    if (rc == 0)
        return -1;
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    return rc;
}

int bench_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return TETHER_EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return TETHER_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

int bench_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    if (!s || !*s)
        return TETHER_EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max)
        return TETHER_EINVAL;
    *out = v;
    return 0;
}

int bench_parse_addr(const char *s, struct sockaddr_storage *out)
{
    char host[128];
    uint16_t port;
    if (tether_hostport_split(s, host, sizeof host, &port) < 0 || port == 0)
        return TETHER_EINVAL;
    memset(out, 0, sizeof *out);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return TETHER_EINVAL;
}

const char *bench_addr_str(const struct sockaddr_storage *a, char *buf, size_t cap)
{
    tether_addr_t t;
    t.len = a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&t.ss, a, t.len);
    return tether_addr_str(&t, buf, cap);
}

void bench_log(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

uint64_t bench_now_us(void)
{
    return uv_hrtime() / 1000;
}

static uint64_t rng_state;

/* xorshift64*, seeded from the OS once. */
uint32_t bench_rand(void)
{
    if (!rng_state) {
        if (uv_random(NULL, NULL, &rng_state, sizeof rng_state, 0, NULL) != 0 || !rng_state)
            rng_state = uv_hrtime() | 1;
    }
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

double bench_rand01(void)
{
    return bench_rand() / 4294967296.0;
}

void bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int bench_raise_nofile_to(uint64_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return TETHER_EIO;
    if (rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max < want) { /* only a privileged process may raise the hard limit */
        struct rlimit up = {want, want};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            return 0;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_max >= want ? 0 : TETHER_ELIMIT;
}

static void runner_close_cb(uv_handle_t *h)
{
    (void)h;
}

void bench_runner_stop(bench_runner_t *r)
{
    if (r->stopping)
        return;
    r->stopping = true;
    uv_close((uv_handle_t *)&r->sigint, runner_close_cb);
    uv_close((uv_handle_t *)&r->sigterm, runner_close_cb);
    uv_close((uv_handle_t *)&r->duration, runner_close_cb);
    r->stop(r->user);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    bench_runner_stop(s->data);
}

static void on_duration(uv_timer_t *t)
{
    bench_runner_stop(t->data);
}

void bench_runner_init(bench_runner_t *r, uv_loop_t *loop, double duration_s,
                       void (*stop)(void *user), void *user)
{
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->duration_s = duration_s;
    r->stop = stop;
    r->user = user;
    uv_signal_init(loop, &r->sigint);
    uv_signal_init(loop, &r->sigterm);
    uv_timer_init(loop, &r->duration);
    r->sigint.data = r->sigterm.data = r->duration.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
}

void bench_runner_start(bench_runner_t *r)
{
    uv_update_time(r->loop); /* the duration runs from now, not the loop's last turn */
    if (r->duration_s > 0 && !r->stopping)
        uv_timer_start(&r->duration, on_duration, (uint64_t)(r->duration_s * 1000.0), 0);
}

int bench_runner_run(bench_runner_t *r)
{
    return uv_run(r->loop, UV_RUN_DEFAULT);
}

void bench_con_start(bench_con_t *c, uint64_t now_ms)
{
    c->retries = 0;
    c->timeout_ms = BENCH_ACK_TIMEOUT_MS + (uint32_t)(bench_rand01() * BENCH_ACK_TIMEOUT_MS *
                                                      (BENCH_ACK_RANDOM_FACTOR - 1));
    c->deadline_ms = now_ms + c->timeout_ms;
}

bool bench_con_retry(bench_con_t *c, uint64_t now_ms)
{
    if (c->retries >= BENCH_MAX_RETRANSMIT)
        return false;
    c->retries++;
    c->timeout_ms *= 2;
    c->deadline_ms = now_ms + c->timeout_ms;
    return true;
}

void bench_pacer_start(bench_pacer_t *p, uint64_t start_us, double rate)
{
    p->start_us = start_us;
    p->rate = rate;
    p->issued = 0;
    p->rr = 0;
}

bool bench_pacer_due(bench_pacer_t *p, uint64_t now, uint64_t *sched)
{
    double per_us = p->rate / 1e6;
    uint64_t due = (uint64_t)((double)(now - p->start_us) * per_us);
    if (p->issued >= due)
        return false;
    *sched = p->start_us + (uint64_t)((double)p->issued / per_us);
    p->issued++;
    return true;
}

static int pacer_pick(bench_pacer_t *p, uint32_t n, bool (*can_take)(void *ctx, uint32_t i),
                      void *ctx)
{
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (p->rr + k) % n;
        if (can_take(ctx, i)) {
            p->rr = (i + 1) % n;
            return (int)i;
        }
    }
    return -1;
}

uint64_t bench_pacer_poll(bench_pacer_t *p, uint32_t n, bool (*can_take)(void *ctx, uint32_t i),
                          void (*send)(void *ctx, uint32_t i, uint64_t sched_us), void *ctx)
{
    uint64_t now = bench_now_us(), sched, overflow = 0;
    bool issued = false;
    while (bench_pacer_due(p, now, &sched)) {
        int i = pacer_pick(p, n, can_take, ctx);
        if (i >= 0)
            send(ctx, (uint32_t)i, sched);
        else
            overflow++;
        issued = true;
    }
    if (!issued)
        sched_yield();
    return overflow;
}

uint64_t bench_proc_cpu_ns(uint32_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%u/schedstat", pid);
    FILE *f = fopen(path, "r");
    unsigned long long ns = 0;
    if (f) {
        int n = fscanf(f, "%llu", &ns);
        fclose(f);
        if (n == 1)
            return ns;
    }
    return bench_proc_cpu_ticks(pid) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
}

void bench_cpu_window_start(bench_cpu_window_t *w, const uint32_t *pids, uint32_t n)
{
    memset(w, 0, sizeof *w);
    w->n = n < BENCH_CPU_PIDS ? n : BENCH_CPU_PIDS;
    for (uint32_t i = 0; i < w->n; i++) {
        w->pids[i] = pids[i];
        w->c0[i] = bench_proc_cpu_ns(pids[i]);
    }
    w->t0_us = bench_now_us();
}

void bench_cpu_window_stop(bench_cpu_window_t *w)
{
    if (w->t1_us)
        return;
    w->t1_us = bench_now_us();
    for (uint32_t i = 0; i < w->n; i++)
        w->c1[i] = bench_proc_cpu_ns(w->pids[i]);
}

double bench_cpu_window_share(const bench_cpu_window_t *w, uint32_t i)
{
    if (i >= w->n || !w->t1_us || w->t1_us <= w->t0_us || !w->c1[i])
        return -1;
    return (double)(w->c1[i] - w->c0[i]) / 1e3 / (double)(w->t1_us - w->t0_us);
}

void bench_hist_json(const tether_hist_t *h, json_t *report)
{
    if (!report)
        return;
    json_t *a = json_array();
    tether_hist_iter_t it = {0};
    tether_hist_bucket_t b;
    while (tether_hist_next(h, &it, &b))
        json_array_append_new(
            a, json_pack("[I, I, I]", (json_int_t)b.lo, (json_int_t)b.hi, (json_int_t)b.count));
    json_object_set_new(report, "latency_hist", a);
}

void bench_cpu_window_json(const bench_cpu_window_t *w, json_t *report)
{
    if (!report)
        return;
    json_t *each = json_array();
    double sum = 0;
    bool any = false;
    for (uint32_t i = 0; i < w->n; i++) {
        double s = bench_cpu_window_share(w, i);
        json_array_append_new(each, s >= 0 ? json_real(s) : json_null());
        if (s >= 0)
            sum += s, any = true;
    }
    json_object_set_new(report, "server_cpu", any ? json_real(sum) : json_null());
    json_object_set_new(report, "server_cpu_each", each);
}
