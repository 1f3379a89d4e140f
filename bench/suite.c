/* tether-bench suite: the SPEC S9 table, each figure beside the same run's
 * references (the raw UDP relay ceiling and libcoap's coap-server acting as
 * a DTLS proxy) and the ratio.
 *
 * The suite pins itself (and so every load process it starts) to one CPU
 * and each server under test (tetherd, the ceiling relay, libcoap's proxy)
 * to another, starts them on loopback with generated credentials, runs the
 * other tether-bench commands as child processes and reads their JSON.
 * Beside each throughput the command itself reads the server's CPU time
 * over its measured window only (--cpu-pid), so a figure limited by the
 * load generator (two cores: it shares one with the simulated devices) is
 * told apart from one limited by the server, and ratios compare figures
 * per busy server core-second. A row whose figure or a reference its
 * target needs is missing is "not measured", never met. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "tether/common.h"

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

enum { H_TETHER, H_CEILING, H_PEER };
static const char *const hist_names[] = {"tether", "raw UDP relay", "libcoap"};

/* Keeps the "latency_hist" of a latency run's report. */
static void keep_hist(suite_t *S, int which, json_t *report)
{
    json_t *h = report ? json_object_get(report, "latency_hist") : NULL;
    if (h)
        S->lat_hist[which] = json_incref(h);
}

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

/* Whether the row's own figure was measured. */
static bool measured(const struct row_s *r);

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

static row_t rows[R_N];

static bool measured(const row_t *r)
{
    return r->signed_value ? r->tether > SIGNED_NONE : r->tether >= 0;
}

static void row_detail(row_t *r, const char *name, double v)
{
    if (r->ndetail < (int)(sizeof r->detail / sizeof r->detail[0])) {
        r->detail_name[r->ndetail] = name;
        r->detail[r->ndetail++] = v;
    }
}

static void row_init(int i, const char *id, const char *workload, const char *unit,
                     const char *target, bool higher)
{
    row_t *r = &rows[i];
    r->id = id, r->workload = workload, r->unit = unit, r->target = target;
    r->tether = r->ceiling = r->peer = -1;
    r->tether_cpu = r->ceiling_cpu = r->peer_cpu = -1;
    r->higher_better = higher;
    r->r_ceil = r->r_peer = -1;
    r->met = MET_NA;
}

static void say(suite_t *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(suite_t *S, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(S->log, "suite: ");
    vfprintf(S->log, fmt, ap);
    fputc('\n', S->log);
    fflush(S->log);
    va_end(ap);
}

static int write_file(const char *path, const char *text);

/* ---- processes ------------------------------------------------------------------ */

/* Starts argv with stdout to `out_fd` (or /dev/null when < 0) and stderr to
 * the file `err_path`, pinned to `cpu` (>= 0) as `taskset -c CPU` would.
 * Returns the pid or -1. */
static pid_t spawn(char *const argv[], int cpu, int out_fd, const char *err_path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    int nul = open("/dev/null", O_RDWR);
    dup2(nul, 0);
    dup2(out_fd >= 0 ? out_fd : nul, 1);
    int e = err_path ? open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : nul;
    dup2(e >= 0 ? e : nul, 2);
    execv(argv[0], argv);
    _exit(127);
}

static void stop_pid(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        usleep(50000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

/* Runs a tether-bench command on the bench CPU and parses the JSON object
 * it prints; NULL (reason logged) when it fails. `watch` > 0: the command
 * gets --cpu-pid WATCH and the share of one core that process used over
 * the command's own measured window (its "server_cpu") goes to *cpu (< 0
 * when unknown). */
static json_t *run_bench(suite_t *S, const char *name, pid_t watch, double *cpu, ...)
{
    char *argv[64], pidarg[16];
    int n = 0;
    argv[n++] = S->bench;
    va_list ap;
    va_start(ap, cpu);
    for (const char *a; n < 60 && (a = va_arg(ap, const char *));)
        argv[n++] = (char *)a;
    va_end(ap);
    if (watch > 0) {
        snprintf(pidarg, sizeof pidarg, "%d", (int)watch);
        argv[n++] = "--cpu-pid";
        argv[n++] = pidarg;
    }
    argv[n] = NULL;
    char err_path[400];
    snprintf(err_path, sizeof err_path, "%s/%s.log", S->dir, name);
    int fds[2];
    if (pipe(fds) < 0)
        return NULL;
    pid_t pid = spawn(argv, S->bench_cpu, fds[1], err_path);
    close(fds[1]);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    ssize_t r;
    while (out && (r = read(fds[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    json_t *j = NULL;
    if (out) {
        out[len] = 0;
        j = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
        snprintf(err_path, sizeof err_path, "%s/%s.out", S->dir, name);
        write_file(err_path, out);
        snprintf(err_path, sizeof err_path, "%s/%s.log", S->dir, name);
    }
    if (!j || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        say(S, "%s failed (exit %d); see %s", name, WIFEXITED(st) ? WEXITSTATUS(st) : -1, err_path);
    free(out);
    if (cpu) {
        json_t *v = json_object_get(j, "server_cpu");
        *cpu = watch > 0 && json_is_number(v) ? json_number_value(v) : -1;
    }
    return j;
}

static double jnum(json_t *j, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = j;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, "."))
        v = json_object_get(v, tok);
    return json_is_number(v) ? json_number_value(v) : -1;
}

/* Waits until file `path` holds `needle`; false after `secs`. */
static bool wait_for(const char *path, const char *needle, double secs)
{
    uint64_t end = bench_now_us() + (uint64_t)(secs * 1e6);
    char buf[1 << 16];
    while (bench_now_us() < end) {
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            if (strstr(buf, needle))
                return true;
        }
        usleep(20000);
    }
    return false;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return TETHER_EIO;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : TETHER_EIO;
}

/* ---- servers under test ------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    char port[16];
    char log[400];
} server_t;

/* tetherd with config `conf` (a file in the suite dir), pinned to the
 * server CPU; waits for "ready" and reads the DTLS port from the log. */
static int tetherd_start(suite_t *S, const char *conf, const char *name, server_t *sv)
{
    static int nstarts;
    char cfg[400], log[400];
    snprintf(cfg, sizeof cfg, "%s/%s", S->dir, conf);
    /* A new log each time: an old one would say "ready" for a dead server. */
    snprintf(log, sizeof log, "%s/%s-%d.log", S->dir, name, ++nstarts);
    snprintf(sv->log, sizeof sv->log, "%s", log);
    char *argv[] = {S->tetherd, "--config", cfg, NULL};
    sv->pid = spawn(argv, S->server_cpu, -1, log);
    if (sv->pid < 0 || !wait_for(log, "\"msg\":\"ready\"", 15)) {
        say(S, "tetherd did not start; see %s", log);
        stop_pid(&sv->pid);
        return TETHER_EIO;
    }
    FILE *f = fopen(log, "r");
    char line[1024];
    sv->port[0] = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *p;
        if (strstr(line, "\"msg\":\"listening\"") && strstr(line, "\"proto\":\"coaps\"") &&
            (p = strstr(line, "\"port\":\""))) {
            snprintf(sv->port, sizeof sv->port, "%.*s", (int)strcspn(p + 8, "\""), p + 8);
            break;
        }
    }
    if (f)
        fclose(f);
    return sv->port[0] ? 0 : TETHER_EIO;
}

/* GET /stats of a tetherd started by tetherd_start (admin port from its
 * log, token "bench"), parsed; NULL when it cannot be read. */
static json_t *tetherd_stats(const server_t *sv)
{
    FILE *f = fopen(sv->log, "r");
    char line[1024];
    int port = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *p;
        if (strstr(line, "\"component\":\"admin\",\"msg\":\"listening\"") &&
            (p = strstr(line, "\"port\":\"")))
            port = atoi(p + 8);
    }
    if (f)
        fclose(f);
    int fd = port ? socket(AF_INET, SOCK_STREAM, 0) : -1;
    if (fd < 0)
        return NULL;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char req[] = "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Authorization: Bearer bench\r\nConnection: close\r\n\r\n";
    static char resp[1 << 16];
    size_t n = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
        ssize_t k;
        while (n < sizeof resp - 1 && (k = read(fd, resp + n, sizeof resp - 1 - n)) > 0)
            n += (size_t)k;
    }
    close(fd);
    resp[n] = 0;
    char *body = strstr(resp, "\r\n\r\n");
    return body ? json_loads(body + 4, 0, NULL) : NULL;
}

static bool tetherd_accepts(suite_t *S, const char *conf)
{
    char cfg[400], log[400];
    snprintf(cfg, sizeof cfg, "%s/%s", S->dir, conf);
    snprintf(log, sizeof log, "%s/check-%s.log", S->dir, conf);
    char *argv[] = {S->tetherd, "--config", cfg, "--check-config", NULL};
    pid_t pid = spawn(argv, -1, -1, log);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* A UDP port p with p and p + 1 free on loopback (libcoap takes both). */
static int free_port_pair(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int p = 20000 + (int)(bench_rand() % 40000);
        int ok = 1;
        for (int k = 0; k < 2 && ok; k++) {
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(p + k))};
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
            if (fd >= 0)
                close(fd);
        }
        if (ok)
            return p;
    }
    return -1;
}

/* ---- the stages ---------------------------------------------------------------------- */

static char dur_s[16], half_s[16], warm_s[16];

static void set_cpu(double *slot, double cpu)
{
    *slot = cpu;
}

/* Appends "WHO: suite X" (the suite the command's first session
 * negotiated) to the row's note. */
static void note_cipher(row_t *r, const char *who, json_t *j)
{
    const char *c = json_string_value(json_object_get(j, "cipher"));
    size_t used = strlen(r->note);
    snprintf(r->note + used, sizeof r->note - used, "%s%s: suite %s", used ? "; " : "", who,
             c && *c ? c : "unknown");
}

/* Starts `count` simulated devices (dev0..) against server on the bench
 * CPU, /temp notifying every notify_ms, logging to DIR/NAME.log, and waits
 * until all registered. Returns the pid (stop it with stop_pid) with *ok
 * telling whether they registered. */
static pid_t devices_start(suite_t *S, char *server, int count, int notify_ms, const char *name,
                           bool *ok)
{
    char n[16], every[16], log[400], want[64];
    snprintf(n, sizeof n, "%d", count);
    snprintf(every, sizeof every, "%d", notify_ms);
    snprintf(log, sizeof log, "%s/%s.log", S->dir, name);
    char *argv[] = {
        S->bench, "devices",        "--server", server,          "--count", n,   "--psk-master",
        MASTER,   "--notify-every", every,      "--stats-every", "0",       NULL};
    pid_t pid = spawn(argv, S->bench_cpu, -1, log);
    snprintf(want, sizeof want, "registered %d/%d", count, count);
    *ok = wait_for(log, want, 60);
    if (!*ok)
        say(S, "the simulated devices did not register; see %s", log);
    return pid;
}

static void stage_tether_relay(suite_t *S)
{
    server_t td;
    if (tetherd_start(S, "tether.json", "tetherd-relay", &td) < 0)
        return;
    char server[32];
    snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
    bool registered;
    pid_t dev = devices_start(S, server, N_DEVICES, 1000, "devices", &registered);
    if (registered) {
        char target[32], conc[8];
        /* /count answers with Max-Age 0: every request misses the cache. */
        snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
        snprintf(conc, sizeof conc, "%d", CONC);
        say(S, "relayed requests through tetherd: closed loop, %d sessions, %d devices, %s s", CONC,
            N_DEVICES, dur_s);
        double cpu;
        json_t *j = run_bench(S, "load-tether", td.pid, &cpu, "load", "--server", server,
                              "--identity", "app1", "--psk-hex", APP_KEY_HEX, "--target", target,
                              "--concurrency", conc, "--duration", dur_s, "--warmup", warm_s,
                              "--cipher", CIPHER_PSK, "--json", NULL);
        double x = j ? jnum(j, "throughput_rps") : -1;
        note_cipher(&rows[R_MISS], "tether", j);
        if (x > 0 && jnum(j, "timeouts") + jnum(j, "classes.5xx") > 0.01 * jnum(j, "sent"))
            snprintf(rows[R_MISS].note, sizeof rows[R_MISS].note,
                     "%.0f timeouts and %.0f 5.xx answers in the run", jnum(j, "timeouts"),
                     jnum(j, "classes.5xx"));
        rows[R_MISS].tether = x;
        set_cpu(&rows[R_MISS].tether_cpu, cpu);
        json_decref(j);
        if (x > 0)
            S->lat_rate = x / 2;
        /* /static answers with Max-Age 3600: after one miss per device,
         * every request is answered from tetherd's cache. */
        snprintf(target, sizeof target, "dev[0-%d]/static", N_DEVICES - 1);
        say(S, "cache hits through tetherd: closed loop, %d sessions, %s, %s s", CONC, target,
            dur_s);
        j = run_bench(S, "load-tether-hit", td.pid, &cpu, "load", "--server", server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency", conc,
                      "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK, "--json",
                      NULL);
        note_cipher(&rows[R_HIT], "tether", j);
        x = j ? jnum(j, "throughput_rps") : -1;
        if (x > 0 && jnum(j, "timeouts") + jnum(j, "classes.5xx") > 0.01 * jnum(j, "sent"))
            snprintf(rows[R_HIT].note, sizeof rows[R_HIT].note,
                     "%.0f timeouts and %.0f 5.xx answers in the run", jnum(j, "timeouts"),
                     jnum(j, "classes.5xx"));
        rows[R_HIT].tether = x;
        set_cpu(&rows[R_HIT].tether_cpu, cpu);
        json_decref(j);
    }
    stop_pid(&dev);
    say(S, "PSK handshakes against tetherd (32 in flight, %s s)", dur_s);
    double cpu;
    json_t *j = run_bench(S, "hs-psk-tether", td.pid, &cpu, "handshakes", "--server", server,
                          "--psk-master", MASTER, "--duration", dur_s, "--cipher", CIPHER_PSK,
                          "--json", NULL);
    rows[R_PSK].tether = j ? jnum(j, "rate_per_s") : -1;
    note_cipher(&rows[R_PSK], "tether", j);
    rows[R_PSK].tether_cpu = cpu;
    json_decref(j);
    say(S, "resumed handshakes against tetherd (%s s)", half_s);
    j = run_bench(S, "hs-resumed-tether", td.pid, &cpu, "handshakes", "--server", server,
                  "--psk-master", MASTER, "--mode", "resumed", "--duration", half_s, "--cipher",
                  CIPHER_PSK, "--json", NULL);
    if (j) {
        rows[R_RESUMED].tether = jnum(j, "rate_per_s");
        rows[R_RESUMED].tether_cpu = cpu;
        if (jnum(j, "handshakes") <= 0)
            snprintf(rows[R_RESUMED].note, sizeof rows[R_RESUMED].note, "tether: %s",
                     json_string_value(json_object_get(j, "detail")));
    }
    json_decref(j);
    stop_pid(&td.pid);
}

static void stage_tether_ecdhe(suite_t *S, bool have_certs)
{
    row_t *r = &rows[R_ECDHE];
    if (!have_certs) {
        snprintf(r->note, sizeof r->note, "tether: not measured (no openssl to make certificates)");
        return;
    }
    if (!tetherd_accepts(S, "tether-cert.json")) {
        snprintf(r->note, sizeof r->note,
                 "tether: unsupported by server (this tetherd rejects dtls.cert_file/key_file/"
                 "ca_file: no server certificates yet)");
        r->tether = 0;
        return;
    }
    server_t td;
    if (tetherd_start(S, "tether-cert.json", "tetherd-ecdhe", &td) < 0)
        return;
    char server[32], ca[400], cert[400], key[400];
    snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
    snprintf(ca, sizeof ca, "%s/ca.pem", S->dir);
    snprintf(cert, sizeof cert, "%s/client.pem", S->dir);
    snprintf(key, sizeof key, "%s/client.key", S->dir);
    say(S, "ECDHE-ECDSA handshakes against tetherd (%s s)", dur_s);
    double cpu;
    json_t *j = run_bench(S, "hs-ecdhe-tether", td.pid, &cpu, "handshakes", "--server", server,
                          "--mode", "ecdhe", "--ca", ca, "--cert", cert, "--key", key, "--duration",
                          dur_s, "--cipher", CIPHER_ECDHE, "--json", NULL);
    note_cipher(r, "tether", j);
    if (j) {
        r->tether = jnum(j, "rate_per_s");
        r->tether_cpu = cpu;
        if (r->tether <= 0)
            snprintf(r->note, sizeof r->note, "tether: %s",
                     json_string_value(json_object_get(j, "detail")));
    }
    json_decref(j);
    stop_pid(&td.pid);
}

/* Latency at half the measured maximum (S9: proxy-added p99 <= 100 us) on a
 * fresh tetherd, so its histograms hold only this run: the row is tetherd's
 * own per-request figure (latency.relayed_p99_us: both crossings of each
 * relayed request, matched by the device-side token; see
 * server/latency.h), the end-to-end p99 seen by the load generator and the
 * raw relay's at the same rate go in the note. */
static void stage_latency(suite_t *S)
{
    row_t *r = &rows[R_LAT];
    if (S->lat_rate <= 0)
        return;
    server_t td;
    if (tetherd_start(S, "tether.json", "tetherd-latency", &td) < 0)
        return;
    char server[32], rate[32], target[32], conc[8];
    snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
    bool registered;
    pid_t dev = devices_start(S, server, N_DEVICES, 1000, "latency-devices", &registered);
    if (registered) {
        snprintf(rate, sizeof rate, "%.0f", S->lat_rate);
        snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
        snprintf(conc, sizeof conc, "%d", CONC);
        say(S, "latency through a fresh tetherd at 50%% of its maximum (%s req/s, open loop)",
            rate);
        double cpu;
        json_t *j =
            run_bench(S, "latency-tether", td.pid, &cpu, "load", "--server", server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency", conc,
                      "--duration", dur_s, "--rate", rate, "--cipher", CIPHER_PSK, "--json", NULL);
        json_t *st = tetherd_stats(&td);
        S->lat_e2e = j ? jnum(j, "latency_us.p99") : -1;
        keep_hist(S, H_TETHER, j);
        double n = st ? jnum(st, "latency.relayed") : -1;
        if (n > 0) {
            r->tether = jnum(st, "latency.relayed_p99_us");
            r->tether_cpu = cpu;
            snprintf(
                r->note, sizeof r->note,
                "tetherd's own time per relayed request, both crossings (client's request "
                "in to the device's request out, device's answer in to the client's answer "
                "out; each from its receive batch's recvmmsg to its sendmmsg), matched by "
                "the device-side token: p50 %.0f, p99.9 %.0f, max %.0f us over %.0f of "
                "%.0f answered requests (%.0f unmatched); per receive batch it was p50 "
                "%.0f, p99 %.0f us; time in the socket buffer before the read is not in it. End to "
                "end (client -> proxy -> device -> back, load and devices sharing the "
                "other core) p99 was %.0f us",
                jnum(st, "latency.relayed_p50_us"), jnum(st, "latency.relayed_p999_us"),
                jnum(st, "latency.relayed_max_us"), n, j ? jnum(j, "responses") : -1,
                jnum(st, "latency.relayed_unmatched"), jnum(st, "latency.service_p50_us"),
                jnum(st, "latency.service_p99_us"), S->lat_e2e);
        } else {
            snprintf(r->note, sizeof r->note,
                     "not measured: tetherd timed no relayed request (latency.relayed = %.0f)", n);
        }
        json_decref(st);
        json_decref(j);
    }
    stop_pid(&dev);
    stop_pid(&td.pid);
}

/* Observe fan-out (S4, S9): 500 client sessions each observe one of 4
 * simulated devices' /temp, which notify every 2 ms; the row counts the
 * notifications the clients receive per second. */
static void stage_observe(suite_t *S)
{
    row_t *r = &rows[R_OBS];
    server_t td;
    if (tetherd_start(S, "tether.json", "tetherd-observe", &td) < 0)
        return;
    char server[32];
    snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
    bool registered;
    pid_t dev = devices_start(S, server, 4, 2, "observe-devices", &registered);
    if (registered) {
        say(S, "observe fan-out: 500 observers of 4 devices notifying every 2 ms, %s s", dur_s);
        double cpu;
        json_t *j =
            run_bench(S, "observe-tether", td.pid, &cpu, "load", "--server", server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", "dev[0-3]/temp", "--observe",
                      "--concurrency", "500", "--duration", dur_s, "--json", NULL);
        if (j) {
            r->tether = jnum(j, "notifications_per_s");
            set_cpu(&r->tether_cpu, cpu);
            snprintf(r->note, sizeof r->note,
                     "500 DTLS client sessions observing dev[0-3]/temp (4 device-side "
                     "observations, each notifying every 2 ms, so at most 250k/s can be "
                     "offered); the load process decrypts every notification on the other core");
        }
        json_decref(j);
    }
    stop_pid(&dev);
    stop_pid(&td.pid);
}

/* Cross-node CID forwarding (SPEC S5, S9): two tetherd nodes, both on the
 * server CPU. Devices and every load session handshake with node 1; the
 * same workload is measured twice, its records sent to node 1 directly and
 * then to node 2, which forwards them by CID to node 1 (whose answers go
 * back through node 2). The row is the throughput lost. */
static void stage_cross(suite_t *S)
{
    row_t *r = &rows[R_CROSS];
    int ports = free_port_pair();
    if (ports < 0)
        return;
    char path[400], text[1024];
    for (int id = 1; id <= 2; id++) {
        snprintf(path, sizeof path, "%s/cross%d.json", S->dir, id);
        snprintf(text, sizeof text,
                 "{\"node_id\": %d, \"listen\": [\"coaps://127.0.0.1:0\"], "
                 "\"admin\": \"127.0.0.1:0\", \"admin_token\": \"bench\", "
                 "\"credentials_file\": \"%s/creds.json\", \"log_level\": \"info\", "
                 "\"cluster_key\": \"bench-cluster-key-0123456789\", "
                 "\"dtls\": {\"handshake_rate_per_source\": 0, \"max_handshakes_per_source\": 0}, "
                 "\"cluster\": {\"listen\": \"127.0.0.1:%d\", "
                 "\"nodes\": {\"1\": \"127.0.0.1:%d\", \"2\": \"127.0.0.1:%d\"}}}\n",
                 id, S->dir, ports + id - 1, ports, ports + 1);
        if (write_file(path, text) < 0)
            return;
    }
    server_t n1, n2 = {.pid = -1};
    if (tetherd_start(S, "cross1.json", "tetherd-cross1", &n1) < 0)
        return;
    if (tetherd_start(S, "cross2.json", "tetherd-cross2", &n2) < 0) {
        stop_pid(&n1.pid);
        return;
    }
    char server[32], via[32], target[32], conc[8];
    snprintf(server, sizeof server, "127.0.0.1:%s", n1.port);
    snprintf(via, sizeof via, "127.0.0.1:%s", n2.port);
    snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
    snprintf(conc, sizeof conc, "%d", CONC);
    bool registered;
    pid_t dev = devices_start(S, server, N_DEVICES, 1000, "cross-devices", &registered);
    if (registered) {
        char p1[16], p2[16]; /* --cpu-pid node 1, node 2: server_cpu_each in that order */
        snprintf(p1, sizeof p1, "%d", (int)n1.pid);
        snprintf(p2, sizeof p2, "%d", (int)n2.pid);
        say(S, "cross-node: relayed requests sent to node 1 directly, %s s", dur_s);
        json_t *a = run_bench(S, "cross-direct", -1, NULL, "load", "--server", server, "--identity",
                              "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency",
                              conc, "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK,
                              "--cpu-pid", p1, "--cpu-pid", p2, "--json", NULL);
        json_t *s1 = tetherd_stats(&n1), *s2 = tetherd_stats(&n2);
        say(S, "cross-node: the same, records sent to node 2 and forwarded by CID, %s s", dur_s);
        json_t *b =
            run_bench(S, "cross-via", -1, NULL, "load", "--server", server, "--records-to", via,
                      "--identity", "app1", "--psk-hex", APP_KEY_HEX, "--target", target,
                      "--concurrency", conc, "--duration", dur_s, "--warmup", warm_s, "--cipher",
                      CIPHER_PSK, "--cpu-pid", p1, "--cpu-pid", p2, "--json", NULL);
        json_t *e1 = tetherd_stats(&n1), *e2 = tetherd_stats(&n2);
        double direct = a ? jnum(a, "throughput_rps") : -1,
               fwd = b ? jnum(b, "throughput_rps") : -1;
        /* CPU of both nodes over each window (--cpu-pid node 1, node 2). */
        json_t *ca = json_object_get(a, "server_cpu_each"),
               *cb = json_object_get(b, "server_cpu_each");
        double d1 = json_number_value(json_array_get(ca, 0)),
               d2 = json_number_value(json_array_get(ca, 1));
        double v1 = json_number_value(json_array_get(cb, 0)),
               v2 = json_number_value(json_array_get(cb, 1));
        /* Messages on the internal channel during the forwarded run (includes
         * its warm-up): node 2's records to node 1 and node 1's replies. */
        double msgs =
            (jnum(e2, "cluster.forwarded_records") - jnum(s2, "cluster.forwarded_records")) +
            (jnum(e1, "cluster.replies_out") - jnum(s1, "cluster.replies_out"));
        double secs_b = b ? jnum(b, "duration_s") + jnum(b, "warmup_s") : -1;
        if (direct > 0 && fwd >= 0) {
            /* Both runs are limited by the load generator, not by the
             * nodes' core, so their throughputs differ by its noise; the
             * row is the loss per busy core-second of both nodes (what the
             * shared core could do at saturation), the raw loss, not
             * clamped (negative: the forwarded run was faster), beside it. */
            double raw = 100.0 * (1.0 - fwd / direct);
            bool pc = d1 + d2 > 0.05 && v1 + v2 > 0.05 && fwd > 0;
            r->tether = pc ? 100.0 * (1.0 - (fwd / (v1 + v2)) / (direct / (d1 + d2))) : raw;
            row_detail(r, "direct_rps", direct);
            row_detail(r, "forwarded_rps", fwd);
            row_detail(r, "raw_loss_pct", raw);
            row_detail(r, "channel_messages", msgs);
            r->tether_cpu = v1 + v2;
            int used = snprintf(r->note, sizeof r->note,
                                "%s; relayed cache misses: %.0f req/s direct (node 1 %.0f%%, "
                                "node 2 %.0f%% busy), %.0f req/s with every client record "
                                "entering at node 2 (node 1 %.0f%%, node 2 %.0f%%): raw "
                                "throughput loss %.1f%%; both nodes share one core, so node 2's "
                                "forwarding work is taken from node 1",
                                pc ? "loss per busy core-second of both nodes"
                                   : "raw throughput loss (CPU shares unknown)",
                                direct, d1 * 100, d2 * 100, fwd, v1 * 100, v2 * 100, raw);
            if (used > 0 && (size_t)used < sizeof r->note && direct > 0 && fwd > 0 && msgs > 0 &&
                secs_b > 0 && d1 >= 0 && v1 >= 0) {
                /* core-seconds per request in each run; the difference over the
                 * internal-channel messages per request (from the counters over the
                 * whole forwarded run, warm-up included, at the window's rate) is
                 * what one forwarded message costs the cluster */
                double per_req_d = (d1 + d2) / direct, per_req_v = (v1 + v2) / fwd;
                double msgs_per_req = msgs / (fwd * secs_b);
                snprintf(r->note + used, sizeof r->note - used,
                         "; CPU per request %.1f us direct, %.1f us forwarded (both nodes); "
                         "%.2f internal-channel messages (records forwarded and replies) per "
                         "request: %.2f us of CPU per forwarded message",
                         per_req_d * 1e6, per_req_v * 1e6, msgs_per_req,
                         (per_req_v - per_req_d) / msgs_per_req * 1e6);
                row_detail(r, "cpu_us_per_message", (per_req_v - per_req_d) / msgs_per_req * 1e6);
            }
        }
        json_decref(a);
        json_decref(b);
        json_decref(s1);
        json_decref(s2);
        json_decref(e1);
        json_decref(e2);
    }
    stop_pid(&dev);
    stop_pid(&n2.pid);
    stop_pid(&n1.pid);
}

/* A redis-server on a free loopback port (*port) on the bench CPU,
 * logging to DIR/redis-NAME.log, for the stages whose nodes share state.
 * Returns its pid, or -1 with the reason in row r's note. */
static pid_t redis_start(suite_t *S, const char *name, row_t *r, int *port)
{
    char rp[16], rdir[400], rlog[400];
    if ((*port = free_port_pair()) < 0)
        return -1;
    snprintf(rp, sizeof rp, "%d", *port);
    snprintf(rdir, sizeof rdir, "%s", S->dir);
    snprintf(rlog, sizeof rlog, "%s/redis-%s.log", S->dir, name);
    char *rargv[] = {
        "/usr/bin/redis-server", "--port", rp,      "--bind", "127.0.0.1", "--save", "",
        "--appendonly",          "no",     "--dir", rdir,     "--logfile", rlog,     NULL};
    if (access(rargv[0], X_OK) != 0) {
        snprintf(r->note, sizeof r->note, "not measured: %s is not installed", rargv[0]);
        return -1;
    }
    pid_t redis = spawn(rargv, S->bench_cpu, -1, NULL);
    if (redis < 0 || !wait_for(rlog, "Ready to accept connections", 10)) {
        snprintf(r->note, sizeof r->note, "not measured: redis-server did not start (%s)", rlog);
        stop_pid(&redis);
        return -1;
    }
    return redis;
}

/* Cross-node relay (SPEC S5): the same relayed cache-miss workload twice
 * on one two-node cluster sharing a redis-server (the device directory),
 * both nodes on the server CPU: clients on node 1, where the devices'
 * tunnels are (the same-node relay, the reference), then clients on node
 * 2, which relays each request to node 1 over the internal channel
 * (lib/proxy/xrelay.h) and the answer back. The row is the cross-node
 * throughput; its ratio to the same-node run is per busy core-second of
 * both nodes when their CPU shares are known. */
static void stage_xrelay(suite_t *S)
{
    row_t *r = &rows[R_XRELAY];
    int ports = free_port_pair(), rport;
    if (ports < 0)
        return;
    pid_t redis = redis_start(S, "xrelay", r, &rport);
    if (redis < 0)
        return;
    char path[400], text[1024];
    for (int id = 1; id <= 2; id++) {
        snprintf(path, sizeof path, "%s/xrelay%d.json", S->dir, id);
        snprintf(text, sizeof text,
                 "{\"node_id\": %d, \"listen\": [\"coaps://127.0.0.1:0\"], "
                 "\"admin\": \"127.0.0.1:0\", \"admin_token\": \"bench\", "
                 "\"credentials_file\": \"%s/creds.json\", \"log_level\": \"info\", "
                 "\"cluster_key\": \"bench-cluster-key-0123456789\", "
                 "\"redis_url\": \"redis://127.0.0.1:%d\", "
                 "\"dtls\": {\"handshake_rate_per_source\": 0, \"max_handshakes_per_source\": 0}, "
                 "\"cluster\": {\"listen\": \"127.0.0.1:%d\"}}\n",
                 id, S->dir, rport, ports + id - 1);
        if (write_file(path, text) < 0) {
            stop_pid(&redis);
            return;
        }
    }
    server_t n1, n2 = {.pid = -1};
    if (tetherd_start(S, "xrelay1.json", "tetherd-xrelay1", &n1) < 0) {
        stop_pid(&redis);
        return;
    }
    if (tetherd_start(S, "xrelay2.json", "tetherd-xrelay2", &n2) < 0) {
        stop_pid(&n1.pid);
        stop_pid(&redis);
        return;
    }
    char s1[32], s2[32], target[32], conc[8], p1[16], p2[16];
    snprintf(s1, sizeof s1, "127.0.0.1:%s", n1.port);
    snprintf(s2, sizeof s2, "127.0.0.1:%s", n2.port);
    snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
    snprintf(conc, sizeof conc, "%d", CONC);
    snprintf(p1, sizeof p1, "%d", (int)n1.pid);
    snprintf(p2, sizeof p2, "%d", (int)n2.pid);
    bool registered;
    pid_t dev = devices_start(S, s1, N_DEVICES, 1000, "xrelay-devices", &registered);
    /* Node 2 must see node 1 alive (channel heartbeats, leases) and the
     * directory entries (the store's change log): poll its /stats. */
    bool ready = false;
    for (int i = 0; registered && !ready && i < 100; i++) {
        json_t *st = tetherd_stats(&n2);
        ready = st && jnum(st, "cluster.nodes_alive") >= 2;
        json_decref(st);
        if (!ready)
            usleep(100000);
    }
    if (ready) {
        usleep(1500000); /* a few change-log polls: every directory entry replicated */
        say(S, "cross-node relay: relayed requests on node 1 (the devices' node), %s s", dur_s);
        json_t *a = run_bench(S, "xrelay-same", -1, NULL, "load", "--server", s1, "--identity",
                              "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency",
                              conc, "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK,
                              "--cpu-pid", p1, "--cpu-pid", p2, "--json", NULL);
        say(S, "cross-node relay: the same on node 2, relayed to node 1, %s s", dur_s);
        json_t *b = run_bench(S, "xrelay-cross", -1, NULL, "load", "--server", s2, "--identity",
                              "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency",
                              conc, "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK,
                              "--cpu-pid", p1, "--cpu-pid", p2, "--json", NULL);
        json_t *e2 = tetherd_stats(&n2);
        double same = a ? jnum(a, "throughput_rps") : -1,
               cross = b ? jnum(b, "throughput_rps") : -1;
        json_t *ca = json_object_get(a, "server_cpu_each"),
               *cb = json_object_get(b, "server_cpu_each");
        double d =
            json_number_value(json_array_get(ca, 0)) + json_number_value(json_array_get(ca, 1));
        double v =
            json_number_value(json_array_get(cb, 0)) + json_number_value(json_array_get(cb, 1));
        if (same > 0 && cross >= 0) {
            r->tether = cross;
            r->ceiling = same;
            r->tether_cpu = ca && cb && v > 0.05 ? v : -1;
            r->ceiling_cpu = ca && cb && d > 0.05 ? d : -1;
            row_detail(r, "same_node_rps", same);
            row_detail(r, "cross_node_rps", cross);
            row_detail(r, "raw_ratio", cross / same);
            row_detail(r, "node2_relayed_out", e2 ? jnum(e2, "cluster.xrelay.sent") : -1);
            snprintf(r->note, sizeof r->note,
                     "GET dev[0-%d]/count (every request a cache miss), %d sessions; reference "
                     "column: the same workload on the devices' own node of the same cluster "
                     "(%.0f req/s, both nodes %.0f%% busy); cross-node: %.0f req/s (both nodes "
                     "%.0f%% busy), raw ratio %.2f; both nodes share one core, so node 2's "
                     "relaying work is taken from node 1",
                     N_DEVICES - 1, CONC, same, d * 100, cross, v * 100, cross / same);
        } else {
            snprintf(r->note, sizeof r->note, "not measured: a load run failed (see %s)", S->dir);
        }
        json_decref(a);
        json_decref(b);
        json_decref(e2);
    } else {
        snprintf(r->note, sizeof r->note, "not measured: %s",
                 registered ? "node 2 never saw node 1 alive" : "the devices did not register");
    }
    stop_pid(&dev);
    stop_pid(&n2.pid);
    stop_pid(&n1.pid);
    stop_pid(&redis);
}

/* The pids of the workers a tetherd with `workers` > 1 started, from
 * their "worker started" log lines; how many were found. */
static int worker_pids(const server_t *sv, char pids[][16], int max)
{
    FILE *f = fopen(sv->log, "r");
    char line[1024];
    int n = 0;
    while (f && n < max && fgets(line, sizeof line, f)) {
        char *p;
        if (strstr(line, "\"msg\":\"worker started\"") && (p = strstr(line, "\"pid\":\"")))
            snprintf(pids[n++], sizeof pids[0], "%.*s", (int)strcspn(p + 7, "\""), p + 7);
    }
    if (f)
        fclose(f);
    return n;
}

/* Relayed cache misses on one tetherd (workers.h) with `workers` workers,
 * all on the server CPU, sharing the redis-server on rport; req/s, and
 * the share of a core the workers used together in *cpu. */
static double workers_run(suite_t *S, int workers, int rport, double *cpu)
{
    int cport = free_port_pair();
    char conf[32], name[32], path[400], text[1024];
    snprintf(conf, sizeof conf, "workers%d.json", workers);
    snprintf(path, sizeof path, "%s/%s", S->dir, conf);
    snprintf(text, sizeof text,
             "{\"node_id\": 1, \"workers\": %d, \"listen\": [\"coaps://127.0.0.1:0\"], "
             "\"admin\": \"127.0.0.1:0\", \"admin_token\": \"bench\", "
             "\"credentials_file\": \"%s/creds.json\", "
             "\"cluster_key\": \"bench-cluster-key-0123456789\", "
             "\"redis_url\": \"redis://127.0.0.1:%d\", "
             "\"dtls\": {\"handshake_rate_per_source\": 0, \"max_handshakes_per_source\": 0}, "
             "\"cluster\": {\"listen\": \"127.0.0.1:%d\"}}\n",
             workers, S->dir, rport, cport);
    *cpu = -1;
    server_t td;
    snprintf(name, sizeof name, "tetherd-workers%d", workers);
    if (cport < 0 || write_file(path, text) < 0 || tetherd_start(S, conf, name, &td) < 0)
        return -1;
    char pids[2][16] = {"", ""}, server[32], target[32], concs[8];
    int np = workers > 1 ? worker_pids(&td, pids, 2) : 0;
    if (workers == 1)
        snprintf(pids[np++], sizeof pids[0], "%d", (int)td.pid);
    double x = -1;
    bool registered = false;
    if (np == workers && (workers == 1 || wait_for(td.log, "\"msg\":\"workers ready\"", 15))) {
        snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
        pid_t dev = devices_start(S, server, N_DEVICES, 1000, name, &registered);
        if (registered) {
            usleep(1500000); /* leases seen, every directory entry replicated */
            snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
            snprintf(concs, sizeof concs, "%d", CONC);
            say(S, "relayed requests through %d worker(s) sharing the server core, %s s", workers,
                dur_s);
            snprintf(name, sizeof name, "load-workers%d", workers);
            json_t *j =
                run_bench(S, name, -1, NULL, "load", "--server", server, "--identity", "app1",
                          "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency", concs,
                          "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK, "--json",
                          "--cpu-pid", pids[0], workers > 1 ? "--cpu-pid" : NULL, pids[1], NULL);
            if (j && jnum(j, "timeouts") + jnum(j, "classes.5xx") <= 0.01 * jnum(j, "sent")) {
                x = jnum(j, "throughput_rps");
                json_t *v = json_object_get(j, "server_cpu_each");
                *cpu = json_number_value(json_array_get(v, 0)) +
                       (workers > 1 ? json_number_value(json_array_get(v, 1)) : 0);
            }
            json_decref(j);
        }
        stop_pid(&dev);
    }
    stop_pid(&td.pid);
    return x;
}

/* Every core of one host (config key `workers`, SPEC S9): the relayed
 * cache-miss workload through one tetherd with 1 worker, then 2, both
 * with a redis-server (the workers' shared device directory). The row is
 * the 2-worker throughput; its reference the 1-worker run. SPEC S9 pins
 * tetherd to one core and the load generator takes the other, so here the
 * 2 workers share that core: the row shows what splitting a core into
 * workers costs (about half of the requests land on the worker without
 * the device's tunnel and cross to its sibling over the channel), never
 * scaling, which needs a core per worker beside the generator's. */
static void stage_workers(suite_t *S)
{
    row_t *r = &rows[R_WORKERS];
    int rport;
    pid_t redis = redis_start(S, "workers", r, &rport);
    if (redis < 0)
        return;
    double c1, c2;
    double one = workers_run(S, 1, rport, &c1);
    double two = workers_run(S, 2, rport, &c2);
    stop_pid(&redis);
    if (one <= 0 || two < 0) {
        snprintf(r->note, sizeof r->note, "not measured: a run failed (see %s)", S->dir);
        return;
    }
    r->tether = two;
    r->ceiling = one;
    r->tether_cpu = c2 > 0.05 ? c2 : -1;
    r->ceiling_cpu = c1 > 0.05 ? c1 : -1;
    row_detail(r, "one_worker_rps", one);
    row_detail(r, "two_workers_rps", two);
    row_detail(r, "raw_ratio", two / one);
    snprintf(r->note, sizeof r->note,
             "GET dev[0-%d]/count, %d sessions, Redis; reference column: 1 worker (%.0f req/s, "
             "%.0f%% of a core); 2 workers: %.0f req/s (%.0f%% of a core together), raw ratio "
             "%.2f. Both runs have the one server core (the load generator has the other of this "
             "2-core machine): this shows the cost of splitting a core into workers (requests "
             "whose client and device hashed to different workers cross over the channel), not "
             "scaling, which needs a core per worker",
             N_DEVICES - 1, CONC, one, c1 * 100, two, c2 * 100, two / one);
}

/* Whether --only names stage `name` (or is absent). */
static bool stage_wanted(const suite_t *S, const char *name)
{
    if (!S->only)
        return true;
    size_t nl = strlen(name);
    for (const char *p = S->only; *p;) {
        size_t l = strcspn(p, ",");
        if (l == nl && memcmp(p, name, nl) == 0)
            return true;
        p += l + (p[l] == ',');
    }
    return false;
}

/* Bytes per idle tunnel on a fresh tetherd. */
static double idle_on(suite_t *S, const char *server_conf, uint32_t count, server_t *given,
                      bool reg, double *connect_s)
{
    server_t td = {0};
    server_t *sv = given;
    if (!sv) {
        if (tetherd_start(S, server_conf, "tetherd-idle", &td) < 0)
            return -1;
        sv = &td;
    }
    char server[32], n[16], pid[16], name[40];
    snprintf(server, sizeof server, "127.0.0.1:%s", sv->port);
    snprintf(n, sizeof n, "%u", count);
    snprintf(pid, sizeof pid, "%d", (int)sv->pid);
    snprintf(name, sizeof name, "idle-%s-%u%s", given ? "peer" : "tether", count,
             reg ? "-registered" : "");
    /* libcoap has one key for every identity; tetherd takes the fleet. */
    json_t *j = given ? run_bench(S, name, -1, NULL, "idle", "--server", server, "--count", n,
                                  "--pid", pid, "--identity", "app1", "--psk-hex", APP_KEY_HEX,
                                  "--connect-timeout", "120", "--json", NULL)
                      : run_bench(S, name, -1, NULL, "idle", "--server", server, "--count", n,
                                  "--pid", pid, "--psk-master", MASTER, "--connect-timeout", "1200",
                                  "--json", reg ? "--register" : NULL, NULL);
    double b = j ? jnum(j, "bytes_per_tunnel") : -1;
    if (connect_s)
        *connect_s = j ? jnum(j, "connect_s") : -1;
    json_decref(j);
    if (!given)
        stop_pid(&td.pid);
    return b;
}

/* Idle tunnels, unregistered (`idle`: handshake only, the DTLS session and
 * the demux tables) and registered (S3: the registry entry too), each on a
 * fresh tetherd, at the small and the large count. */
static void stage_idle(suite_t *S)
{
    uint32_t small = S->quick ? 2000 : 10000, big = S->quick ? 10000 : 100000;
    static char labels[6][64];
    /* `idle` needs no socket per tunnel (many loopback source addresses
     * over a few sockets), so the counts are the ones S9 names; the
     * million is left out of a --quick run. */
    const struct {
        int row;
        uint32_t n;
        bool reg;
    } runs[] = {{R_IDLE10K, small, false},    {R_IDLE100K, big, false},
                {R_IDLE10K_REG, small, true}, {R_IDLE100K_REG, big, true},
                {R_IDLE1M, 1000000, false},   {R_IDLE1M_REG, 1000000, true}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        row_t *r = &rows[runs[k].row];
        if (S->quick && runs[k].n == 1000000) {
            snprintf(r->note, sizeof r->note, "not run by --quick");
            continue;
        }
        snprintf(labels[k], sizeof labels[k], "idle tunnel, %uk, %s", runs[k].n / 1000,
                 runs[k].reg ? "registered" : "unregistered");
        r->workload = labels[k];
        say(S, "idle tunnels on a fresh tetherd: %u, %s", runs[k].n,
            runs[k].reg ? "each device registered" : "handshake only");
        double up_s = -1;
        r->tether = idle_on(S, "tether.json", runs[k].n, NULL, runs[k].reg, &up_s);
        size_t used = strlen(r->note);
        if (runs[k].reg)
            snprintf(r->note + used, sizeof r->note - used,
                     "%s%u devices handshaken and registered (POST /rd, lifetime 3600 s, "
                     "link-format payload of %zu bytes) in %.1f s; the unregistered figure of the "
                     "same count is the row above",
                     used ? "; " : "", runs[k].n, sizeof BENCH_DEVICE_LINKS - 1, up_s);
        else
            snprintf(r->note + used, sizeof r->note - used, "%s%u tunnels up in %.1f s",
                     used ? "; " : "", runs[k].n, up_s);
    }
}

/* The observe row's reference: tetherd spends most of its CPU there in
 * the kernel's loopback UDP send path (perf: ~90%), so the raw fan-out of
 * the same datagrams to the same 500 sockets on the same core is what
 * bounds it, far below S9's 1M/s per core on this kernel. */
static void stage_ceiling_fanout(suite_t *S, const char *cpu)
{
    row_t *r = &rows[R_OBS];
    say(S, "raw UDP observe fan-out ceiling: 4 devices, 500 observers, %s s", dur_s);
    json_t *j =
        run_bench(S, "ceiling-fanout", -1, NULL, "fanout-ceiling", "--devices", "4", "--observers",
                  "500", "--relay-cpu", cpu, "--duration", dur_s, "--json", NULL);
    if (j) {
        r->ceiling = jnum(j, "datagrams_per_s");
        r->ceiling_cpu = jnum(j, "relay_cpu");
        size_t used = strlen(r->note);
        double pc = r->ceiling_cpu > 0.05 ? r->ceiling / r->ceiling_cpu : -1;
        int n =
            snprintf(r->note + used, sizeof r->note - used,
                     "%sceiling: fanout-ceiling, the same fan-out as raw UDP on the server "
                     "core (4 device sockets; each notification read goes on to its 125 "
                     "observers' sockets, %.0f -> %.0f bytes as tether's records, a hash lookup "
                     "per destination, sendmmsg per read; the devices paced so the server "
                     "stays busy): the kernel's loopback send path, where tetherd spends most "
                     "of its CPU here",
                     used ? "; " : "", jnum(j, "in_size"), jnum(j, "size"));
        used += n > 0 ? (size_t)n : 0;
        if (pc > 0 && pc < 1e6 && used < sizeof r->note)
            snprintf(r->note + used, sizeof r->note - used,
                     "; raw, one core delivers %.0f per busy second, below S9's 1M/s/core", pc);
    }
    json_decref(j);
}

static void stage_ceiling(suite_t *S)
{
    char conc[8], cpu[8];
    snprintf(conc, sizeof conc, "%d", CONC);
    snprintf(cpu, sizeof cpu, "%d", S->server_cpu);
    say(S, "raw UDP relay ceiling: closed loop, %d clients, %s s", CONC, dur_s);
    json_t *j = run_bench(S, "ceiling", -1, NULL, "relay-ceiling", "--concurrency", conc,
                          "--relay-cpu", cpu, "--duration", dur_s, "--json", NULL);
    if (j) {
        rows[R_MISS].ceiling = jnum(j, "throughput_rps");
        rows[R_MISS].ceiling_cpu = jnum(j, "relay_cpu");
    }
    json_decref(j);
    say(S, "raw UDP ceiling of an answer from memory (relay-ceiling --answer), %s s", dur_s);
    j = run_bench(S, "ceiling-answer", -1, NULL, "relay-ceiling", "--concurrency", conc,
                  "--relay-cpu", cpu, "--duration", dur_s, "--answer", "--json", NULL);
    if (j) {
        rows[R_HIT].ceiling = jnum(j, "throughput_rps");
        rows[R_HIT].ceiling_cpu = jnum(j, "relay_cpu");
    }
    json_decref(j);
    stage_ceiling_fanout(S, cpu);
    if (rows[R_MISS].tether > 0) {
        char rate[32];
        snprintf(rate, sizeof rate, "%.0f", rows[R_MISS].tether / 2);
        say(S, "raw UDP relay latency at tether's 50%% rate (%s req/s)", rate);
        j = run_bench(S, "ceiling-latency", -1, NULL, "relay-ceiling", "--concurrency", conc,
                      "--relay-cpu", cpu, "--duration", dur_s, "--rate", rate, "--json", NULL);
        if (j) {
            rows[R_LAT].ceiling = jnum(j, "latency_us.p99");
            rows[R_LAT].ceiling_cpu = jnum(j, "relay_cpu");
            keep_hist(S, H_CEILING, j);
        }
        json_decref(j);
    }
}

/* ---- the libcoap peer ---------------------------------------------------------------- */

/* True once a CoAP ping (RFC 7252 §4.3: an empty CON) to 127.0.0.1:port is
 * answered (a RST), within `secs`: the server is serving, not just started. */
static bool coap_ping_answered(int port, double secs)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_usec = 50000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    bool ok = false;
    uint64_t end = bench_now_us() + (uint64_t)(secs * 1e6);
    for (uint16_t mid = 1; !ok && bench_now_us() < end; mid++) {
        uint8_t ping[4] = {0x40, 0x00, (uint8_t)(mid >> 8), (uint8_t)mid}, rx[64];
        sendto(fd, ping, sizeof ping, 0, (struct sockaddr *)&a, sizeof a);
        ssize_t n = recv(fd, rx, sizeof rx, 0);
        ok = n >= 4 && (rx[0] >> 4 & 3) == 3 && rx[2] == ping[2] && rx[3] == ping[3];
    }
    close(fd);
    return ok;
}

/* True when a UDP socket is bound to 127.0.0.1:port (ours fails to bind). */
static bool udp_port_bound(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool bound = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno == EADDRINUSE;
    if (fd >= 0)
        close(fd);
    return bound;
}

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

static const char *const peer_bin = "/usr/bin/coap-server-openssl";

static void peer_stop(peer_t *p)
{
    stop_pid(&p->proxy);
    stop_pid(&p->dev);
}

/* Starts the pair (logs DIR/libcoap-NAME-{device,proxy}.log) and waits
 * until both answer a CoAP ping and hold their DTLS ports. */
static int peer_start(suite_t *S, bool certs, const char *name, peer_t *p)
{
    memset(p, 0, sizeof *p);
    p->up = free_port_pair();
    p->px = free_port_pair();
    if (p->up < 0 || p->px < 0 || abs(p->up - p->px) < 2)
        return TETHER_EIO;
    char up_p[16], px_p[16], up_log[400], px_log[400], cert[400], key[400], ca[400];
    snprintf(up_p, sizeof up_p, "%d", p->up);
    snprintf(px_p, sizeof px_p, "%d", p->px);
    snprintf(up_log, sizeof up_log, "%s/libcoap-%s-device.log", S->dir, name);
    snprintf(px_log, sizeof px_log, "%s/libcoap-%s-proxy.log", S->dir, name);
    snprintf(cert, sizeof cert, "%s/server.pem", S->dir);
    snprintf(key, sizeof key, "%s/server.key", S->dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", S->dir);
    char *uargv[] = {(char *)peer_bin, "-A", "127.0.0.1", "-p", up_p, "-k",
                     APP_KEY,          "-v", "0",         NULL};
    char *pargv_cert[] = {
        (char *)peer_bin, "-A", "127.0.0.1", "-p", px_p, "-k", APP_KEY, "-u", "proxy", "-P",
        ",tether-peer",   "-v", "0",         "-c", cert, "-j", key,     "-C", ca,      NULL};
    char *pargv_psk[] = {(char *)peer_bin, "-A", "127.0.0.1",    "-p", px_p, "-k", APP_KEY, "-u",
                         "proxy",          "-P", ",tether-peer", "-v", "0",  NULL};
    p->dev = spawn(uargv, S->bench_cpu, -1, up_log);
    p->proxy = spawn(certs ? pargv_cert : pargv_psk, S->server_cpu, -1, px_log);
    snprintf(p->server, sizeof p->server, "127.0.0.1:%d", p->px + 1);
    snprintf(p->uri, sizeof p->uri, "coaps://127.0.0.1:%d/time", p->up + 1);
    if (p->dev < 0 || p->proxy < 0 || !coap_ping_answered(p->up, 10) ||
        !coap_ping_answered(p->px, 10) || !udp_port_bound(p->up + 1) ||
        !udp_port_bound(p->px + 1)) {
        say(S, "libcoap (%s) did not come up; see %s and %s", name, up_log, px_log);
        peer_stop(p);
        return TETHER_EIO;
    }
    return 0;
}

/* The suite an OpenSSL client with its default list negotiates with the
 * libcoap device (what libcoap's proxy, also OpenSSL, runs upstream: libcoap
 * sets its own cipher list, which the suite cannot change), or "". */
static void peer_upstream_suite(suite_t *S, const peer_t *p, char *out, size_t cap)
{
    char connect[32], log[400], line[512];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", p->up + 1);
    snprintf(log, sizeof log, "%s/libcoap-upstream-suite.log", S->dir);
    char *argv[] = {
        "/usr/bin/openssl", "s_client", "-dtls1_2", "-psk_identity", "app1", "-psk", APP_KEY_HEX,
        "-connect",         connect,    NULL};
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = fd >= 0 ? spawn(argv, S->bench_cpu, fd, NULL) : -1;
    if (fd >= 0)
        close(fd);
    out[0] = 0;
    if (pid <= 0)
        return;
    for (int i = 0; i < 100 && waitpid(pid, NULL, WNOHANG) == 0; i++)
        usleep(50000);
    stop_pid(&pid);
    FILE *f = fopen(log, "r");
    char *c;
    while (f && fgets(line, sizeof line, f))
        if ((c = strstr(line, "Cipher is ")))
            snprintf(out, cap, "%.*s", (int)strcspn(c + 10, "\r\n"), c + 10);
    if (f)
        fclose(f);
}

static void stage_peer(suite_t *S, bool have_certs)
{
    if (access(peer_bin, X_OK) != 0) {
        snprintf(rows[R_MISS].peer_note, sizeof rows[R_MISS].peer_note,
                 "libcoap peer not measured: %s not installed (Debian libcoap3-bin)", peer_bin);
        return;
    }
    char conc[8];
    snprintf(conc, sizeof conc, "%d", CONC);
    peer_t p;
    double cpu;
    json_t *j;
    if (peer_start(S, have_certs, "relay", &p) == 0) {
        char up_suite[64];
        peer_upstream_suite(S, &p, up_suite, sizeof up_suite);
        say(S, "libcoap proxy: closed loop, %d sessions, %s s after %s s of warm-up (Proxy-Uri %s)",
            CONC, dur_s, warm_s, p.uri);
        j = run_bench(S, "load-peer", p.proxy, &cpu, "load", "--server", p.server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", "libcoap-device/time",
                      "--proxy-uri", p.uri, "--concurrency", conc, "--duration", dur_s, "--warmup",
                      warm_s, "--cipher", CIPHER_PSK, "--json", NULL);
        double x = j ? jnum(j, "throughput_rps") : -1;
        const char *c = json_string_value(json_object_get(j, "cipher"));
        snprintf(rows[R_MISS].peer_note, sizeof rows[R_MISS].peer_note,
                 "libcoap 4.3.1 coap-server-openssl as a forward proxy (Proxy-Uri; it cannot be "
                 "a reverse proxy: a request naming the device by Uri-Host is answered from the "
                 "proxy's own resources), a fresh process pair per row, %s s of unmeasured "
                 "traffic first; client suite %s, upstream %s (libcoap chooses its own list)",
                 warm_s, c && *c ? c : "unknown", up_suite[0] ? up_suite : "unknown");
        if (j && jnum(j, "classes.2xx") < 0.99 * jnum(j, "responses")) {
            size_t used = strlen(rows[R_MISS].peer_note);
            snprintf(rows[R_MISS].peer_note + used, sizeof rows[R_MISS].peer_note - used,
                     "; only %.0f of %.0f answers were 2.xx", jnum(j, "classes.2xx"),
                     jnum(j, "responses"));
        }
        rows[R_MISS].peer = x;
        rows[R_MISS].peer_cpu = cpu;
        S->peer_rate = x;
        json_decref(j);
        peer_stop(&p);
    }
    if (S->peer_rate > 0 && peer_start(S, have_certs, "latency", &p) == 0) {
        char rate[32];
        snprintf(rate, sizeof rate, "%.0f", S->peer_rate / 2);
        say(S, "libcoap proxy latency at 50%% of its maximum (%s req/s)", rate);
        j = run_bench(S, "latency-peer", p.proxy, &cpu, "load", "--server", p.server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", "libcoap-device/time",
                      "--proxy-uri", p.uri, "--concurrency", conc, "--duration", dur_s, "--rate",
                      rate, "--warmup", warm_s, "--cipher", CIPHER_PSK, "--json", NULL);
        rows[R_LAT].peer = j ? jnum(j, "latency_us.p99") : -1;
        rows[R_LAT].peer_cpu = cpu;
        keep_hist(S, H_PEER, j);
        json_decref(j);
        peer_stop(&p);
    }
    if (peer_start(S, have_certs, "psk", &p) == 0) {
        say(S, "PSK handshakes against libcoap (%s s)", dur_s);
        j = run_bench(S, "hs-psk-peer", p.proxy, &cpu, "handshakes", "--server", p.server,
                      "--identity", "app1", "--psk-hex", APP_KEY_HEX, "--duration", dur_s,
                      "--cipher", CIPHER_PSK, "--json", NULL);
        rows[R_PSK].peer = j ? jnum(j, "rate_per_s") : -1;
        rows[R_PSK].peer_cpu = cpu;
        note_cipher(&rows[R_PSK], "libcoap", j);
        json_decref(j);
        peer_stop(&p);
    }
    if (have_certs && peer_start(S, have_certs, "ecdhe", &p) == 0) {
        say(S, "ECDHE-ECDSA handshakes against libcoap (%s s)", dur_s);
        char ca[400], ccert[400], ckey[400];
        snprintf(ca, sizeof ca, "%s/ca.pem", S->dir);
        snprintf(ccert, sizeof ccert, "%s/client.pem", S->dir);
        snprintf(ckey, sizeof ckey, "%s/client.key", S->dir);
        j = run_bench(S, "hs-ecdhe-peer", p.proxy, &cpu, "handshakes", "--server", p.server,
                      "--mode", "ecdhe", "--ca", ca, "--cert", ccert, "--key", ckey, "--duration",
                      dur_s, "--cipher", CIPHER_ECDHE, "--json", NULL);
        rows[R_ECDHE].peer = j ? jnum(j, "rate_per_s") : -1;
        rows[R_ECDHE].peer_cpu = cpu;
        note_cipher(&rows[R_ECDHE], "libcoap", j);
        snprintf(rows[R_ECDHE].peer_note, sizeof rows[R_ECDHE].peer_note,
                 "libcoap's low figure checked by hand (strace, perf): libcoap 4.3.1 opens and "
                 "decodes the server certificate, key and CA file again for every new DTLS "
                 "session (one open of server.pem per handshake), and OpenSSL 3's decoders and "
                 "provider lookups, not P-256 (EC point multiplication ~2%% of its CPU), take "
                 "its time");
        json_decref(j);
        peer_stop(&p);
    }
    if (peer_start(S, have_certs, "resumed", &p) == 0) {
        say(S, "resumed handshakes against libcoap (%s s)", half_s);
        j = run_bench(S, "hs-resumed-peer", p.proxy, &cpu, "handshakes", "--server", p.server,
                      "--identity", "app1", "--psk-hex", APP_KEY_HEX, "--mode", "resumed",
                      "--duration", half_s, "--cipher", CIPHER_PSK, "--json", NULL);
        rows[R_RESUMED].peer = j ? jnum(j, "rate_per_s") : -1;
        rows[R_RESUMED].peer_cpu = cpu;
        json_decref(j);
        peer_stop(&p);
    }
    uint32_t n = S->quick ? 2000 : 10000;
    if (peer_start(S, have_certs, "idle", &p) == 0) {
        say(S, "idle tunnels on libcoap: %u", n);
        server_t sv = {.pid = p.proxy};
        snprintf(sv.port, sizeof sv.port, "%d", p.px + 1);
        rows[R_IDLE10K].peer = idle_on(S, NULL, n, &sv, false, NULL);
        peer_stop(&p);
    }
}

/* CA, server and client certificates (ECDSA P-256) with the openssl tool.
 * They must be X.509 v3 with CA/leaf extensions: wolfSSL (and OpenSSL's
 * verifier) refuse a v1 certificate in the chain with bad_certificate. */
static bool make_certs(suite_t *S)
{
    char script[2048], path[400];
    snprintf(path, sizeof path, "%s/certs.sh", S->dir);
    snprintf(script, sizeof script,
             "set -e\ncd '%s'\n"
             "openssl ecparam -name prime256v1 -genkey -noout -out ca.key\n"
             "openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 2 -sha256 "
             "-addext basicConstraints=critical,CA:TRUE "
             "-addext keyUsage=critical,keyCertSign,cRLSign -out ca.pem\n"
             "for n in server client; do\n"
             "  openssl ecparam -name prime256v1 -genkey -noout -out $n.key\n"
             "  openssl req -new -key $n.key -subj /CN=$n -out $n.csr\n"
             "  printf 'basicConstraints=CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
             "extendedKeyUsage=%%sAuth\\n' $( [ $n = server ] && echo server || echo client ) "
             ">$n.ext\n"
             "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
             "-sha256 -extfile $n.ext -out $n.pem\n"
             "done\n",
             S->dir);
    if (write_file(path, script) < 0)
        return false;
    char log[400];
    snprintf(log, sizeof log, "%s/certs.log", S->dir);
    char *argv[] = {"/bin/sh", path, NULL};
    pid_t pid = spawn(argv, -1, -1, log);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int write_configs(suite_t *S)
{
    char path[400], text[2048];
    snprintf(path, sizeof path, "%s/creds.json", S->dir);
    snprintf(text, sizeof text,
             "{\"psk\": [{\"identity\": \"app1\", \"key_hex\": \"%s\", \"role\": \"client\",\n"
             "  \"allow\": [{\"devices\": \"dev*\", \"methods\": [\"GET\", \"POST\"]}]}],\n"
             " \"psk_derived\": [{\"identity_prefix\": \"dev\", \"role\": \"device\", "
             "\"master_hex\": \"%s\"}],\n"
             " \"x509\": [{\"identity\": \"client\", \"role\": \"client\"}]}\n",
             APP_KEY_HEX, MASTER);
    if (write_file(path, text) < 0)
        return TETHER_EIO;
    const char *base =
        "{\"listen\": [\"coaps://127.0.0.1:0\"], \"admin\": \"127.0.0.1:0\",\n"
        " \"admin_token\": \"bench\", \"credentials_file\": \"%s/creds.json\",\n"
        " \"log_level\": \"info\",\n"
        " \"dtls\": {\"handshake_rate_per_source\": 0, \"max_handshakes_per_source\": 0,\n"
        "  \"max_sessions\": 1100000%s}}\n";
    char extra[1024];
    snprintf(path, sizeof path, "%s/tether.json", S->dir);
    snprintf(text, sizeof text, base, S->dir, "");
    if (write_file(path, text) < 0)
        return TETHER_EIO;
    snprintf(extra, sizeof extra,
             ", \"cert_file\": \"%s/server.pem\", \"key_file\": \"%s/server.key\", "
             "\"ca_file\": \"%s/ca.pem\"",
             S->dir, S->dir, S->dir);
    snprintf(path, sizeof path, "%s/tether-cert.json", S->dir);
    snprintf(text, sizeof text, base, S->dir, extra);
    return write_file(path, text);
}

/* ---- the table ---------------------------------------------------------------------- */

/* A throughput per busy server core-second: the figure divided by the
 * server's core share over the measured window. */
static double per_core(double v, double cpu)
{
    return cpu > 0.05 ? v / cpu : v;
}

/* The ratio a row prints and is judged on: of per busy core-second figures
 * when both CPU shares were measured, else of the figures themselves. */
static double ratio(double a, double acpu, double b, double bcpu, bool pc_ok, bool *pc)
{
    *pc = false;
    if (a < 0 || b <= 0)
        return -1;
    if (pc_ok && acpu > 0.05 && bcpu > 0.05) {
        *pc = true;
        return (a / acpu) / (b / bcpu);
    }
    return a / b;
}

/* The S9 targets (SPEC S9), one table: per busy core-second minimum,
 * maximum of the figure, minimum ratio to the ceiling and to the peer
 * (each < 0: not part of the target). A needed reference that is missing
 * makes the row "not measured". */
static const struct {
    int row;
    double min_per_core, max, min_ceil, min_peer;
} targets[] = {
    {R_MISS, -1, -1, 0.8, 5},         {R_HIT, -1, -1, 0.8, -1},
    {R_OBS, 1000000, -1, -1, -1},     {R_PSK, 30000, -1, -1, 3},
    {R_ECDHE, 4000, -1, -1, -1},      {R_RESUMED, 30000, -1, -1, 3},
    {R_IDLE10K_REG, -1, 600, -1, -1}, {R_IDLE100K_REG, -1, 600, -1, -1},
    {R_IDLE1M_REG, -1, 600, -1, -1},  {R_CROSS, -1, 10, -1, -1},
    {R_LAT, -1, 100, -1, -1},
};

static void judge(void)
{
    for (int i = 0; i < R_N; i++) {
        row_t *r = &rows[i];
        r->r_ceil = ratio(r->tether, r->tether_cpu, r->ceiling, r->ceiling_cpu, r->higher_better,
                          &r->r_ceil_pc);
        r->r_peer =
            ratio(r->tether, r->tether_cpu, r->peer, r->peer_cpu, r->higher_better, &r->r_peer_pc);
    }
    for (size_t k = 0; k < sizeof targets / sizeof targets[0]; k++) {
        row_t *r = &rows[targets[k].row];
        if (!measured(r) || (targets[k].min_ceil > 0 && r->r_ceil < 0) ||
            (targets[k].min_peer > 0 && r->r_peer < 0)) {
            r->met = MET_NOT_MEASURED;
            continue;
        }
        bool ok = true;
        if (targets[k].min_per_core > 0)
            ok = ok && per_core(r->tether, r->tether_cpu) >= targets[k].min_per_core;
        if (targets[k].max >= 0)
            ok = ok && r->tether <= targets[k].max;
        if (targets[k].min_ceil > 0)
            ok = ok && r->r_ceil >= targets[k].min_ceil;
        if (targets[k].min_peer > 0)
            ok = ok && r->r_peer >= targets[k].min_peer;
        r->met = ok ? MET_YES : MET_NO;
    }
}

static void fmt_val(char *buf, size_t cap, double v, bool signed_value)
{
    if (signed_value ? v <= SIGNED_NONE : v < 0)
        snprintf(buf, cap, "-");
    else if (v >= 100 || v <= -100)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.1f", v);
}

static void fmt_ratio(char *buf, size_t cap, double r, bool pc)
{
    if (r < 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.2fx%s", r, pc ? "*" : "");
}

static const char *met_str(int met)
{
    return met == MET_YES            ? "yes"
           : met == MET_NO           ? "NO"
           : met == MET_NOT_MEASURED ? "not measured"
                                     : "-";
}

static void print_table(suite_t *S)
{
    printf("\n%-40s %12s %12s %9s %12s %9s  %-28s %s\n", "workload (unit)", "tether", "ceiling",
           "t/ceil", "libcoap", "t/peer", "S9 target", "met");
    for (int i = 0; i < R_N; i++) {
        row_t *r = &rows[i];
        char name[80], t[24], c[24], p[24], rc[16], rp[16];
        snprintf(name, sizeof name, "%s (%s)", r->workload, r->unit);
        fmt_val(t, sizeof t, r->tether, r->signed_value);
        fmt_val(c, sizeof c, r->ceiling, false);
        fmt_val(p, sizeof p, r->peer, false);
        fmt_ratio(rc, sizeof rc, r->r_ceil, r->r_ceil_pc);
        fmt_ratio(rp, sizeof rp, r->r_peer, r->r_peer_pc);
        printf("%-40s %12s %12s %9s %12s %9s  %-28s %s\n", name, t, c, rc, p, rp, r->target,
               met_str(r->met));
    }
    printf("\nt/ceil, t/peer: tether / the reference; * = of figures per busy server "
           "core-second (each server's CPU\nshare over the command's measured window), the "
           "figures' own ratio otherwise. \"met\" is judged on exactly\nthese ratios, on per "
           "busy core-second figures for per-core targets, and is \"not measured\" when a\n"
           "figure or a reference its target needs is missing.\n");
    printf("\nnotes:\n");
    for (int i = 0; i < R_N; i++) {
        row_t *r = &rows[i];
        char cpu[200] = "";
        if (r->tether_cpu >= 0 || r->ceiling_cpu >= 0 || r->peer_cpu >= 0) {
            int n = snprintf(cpu, sizeof cpu, "server core busy:");
            if (r->tether_cpu >= 0)
                n += snprintf(cpu + n, sizeof cpu - n, " tetherd %.0f%%", r->tether_cpu * 100);
            if (r->ceiling_cpu >= 0)
                n += snprintf(cpu + n, sizeof cpu - n, ", relay %.0f%%", r->ceiling_cpu * 100);
            if (r->peer_cpu >= 0)
                snprintf(cpu + n, sizeof cpu - n, ", libcoap %.0f%%", r->peer_cpu * 100);
        }
        if (r->note[0] || r->peer_note[0] || cpu[0])
            printf("  %-18s %s%s%s%s%s\n", r->id, cpu, cpu[0] && r->note[0] ? "; " : "", r->note,
                   r->peer_note[0] ? "; " : "", r->peer_note);
        if (r->higher_better && r->tether > 0 && r->tether_cpu > 0.05)
            printf("  %-18s per busy core-second: tether %.0f%s%s\n", "", r->tether / r->tether_cpu,
                   r->ceiling > 0 && r->ceiling_cpu > 0.05 ? ", ceiling " : "",
                   r->ceiling > 0 && r->ceiling_cpu > 0.05
                       ? (snprintf(cpu, sizeof cpu, "%.0f", r->ceiling / r->ceiling_cpu), cpu)
                       : "");
        if (r->higher_better && r->peer > 0 && r->peer_cpu > 0.05)
            printf("  %-18s per busy core-second: libcoap %.0f\n", "", r->peer / r->peer_cpu);
    }
    (void)S;
}

static json_t *num_or_null(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

static json_t *table_json(suite_t *S)
{
    json_t *arr = json_array();
    for (int i = 0; i < R_N; i++) {
        row_t *r = &rows[i];
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:o, s:b, s:{s:o, s:o, s:o}, s:o, s:s, "
            "s:s, s:s}",
            "id", r->id, "workload", r->workload, "unit", r->unit, "target", r->target, "tether",
            measured(r) ? json_real(r->tether) : json_null(), "ceiling", num_or_null(r->ceiling),
            "peer", num_or_null(r->peer), "ratio_ceiling", num_or_null(r->r_ceil),
            "ratio_ceiling_per_core", r->r_ceil_pc, "ratio_peer", num_or_null(r->r_peer),
            "ratio_peer_per_core", r->r_peer_pc, "server_cpu", "tether", num_or_null(r->tether_cpu),
            "ceiling", num_or_null(r->ceiling_cpu), "peer", num_or_null(r->peer_cpu), "met",
            r->met == MET_YES  ? json_true()
            : r->met == MET_NO ? json_false()
                               : json_null(),
            "verdict", met_str(r->met), "note", r->note, "peer_note", r->peer_note);
        json_t *det = json_object();
        for (int k = 0; k < r->ndetail; k++)
            json_object_set_new(det, r->detail_name[k], json_real(r->detail[k]));
        json_object_set_new(o, "detail", det);
        json_array_append_new(arr, o);
    }
    return json_pack("{s:s, s:b, s:f, s:i, s:i, s:o}", "suite", "tether S9", "quick", S->quick,
                     "duration_s", S->dur, "server_cpu", S->server_cpu, "bench_cpu", S->bench_cpu,
                     "rows", arr);
}

/* ---- entry --------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tether-bench suite [--json] [--quick] [--only STAGES] [--json-out FILE]\n"
               "                          [--tetherd PATH]\n"
               "Runs the SPEC S9 table on loopback: tetherd (and each reference server) pinned\n"
               "to one CPU, the load generator and simulated devices to another. Prints an\n"
               "aligned table with each figure, its references (raw UDP relay ceiling,\n"
               "libcoap's coap-server-openssl as DTLS proxy) and ratios.\n\n"
               "  --json           print the table as one JSON object instead\n"
               "  --json-out FILE  also write the JSON object to FILE\n"
               "  --quick          short runs (smoke test, ~1 minute)\n"
               "  --only STAGES    run only these stages, comma-separated: relay, latency,\n"
               "                   observe, cross, xrelay (cross-node relay), workers (1 and\n"
               "                   2 workers), ecdhe, idle, ceiling, peer (rows of the\n"
               "                   others: not measured)\n"
               "  --tetherd PATH   tetherd binary (default: next to tether-bench)\n"
               "  --server-cpu N   CPU for the servers (default 0)\n"
               "  --bench-cpu N    CPU for the load (default 1)\n");
}

int bench_suite_main(int argc, char **argv)
{
    static suite_t S;
    memset(&S, 0, sizeof S);
    S.log = stderr;
    S.server_cpu = 0;
    S.bench_cpu = 1;
    ssize_t n = readlink("/proc/self/exe", S.bench, sizeof S.bench - 1);
    if (n <= 0)
        return BENCH_EXIT_FAIL;
    S.bench[n] = 0;
    snprintf(S.tetherd, sizeof S.tetherd, "%.*s/tetherd", (int)(strrchr(S.bench, '/') - S.bench),
             S.bench);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0)
            S.json = true;
        else if (strcmp(a, "--quick") == 0)
            S.quick = true;
        else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(a, "--only") == 0)
            S.only = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--json-out") == 0)
            S.json_out = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--tetherd") == 0)
            snprintf(S.tetherd, sizeof S.tetherd, "%s", argv[++i]);
        else if (i + 1 < argc && strcmp(a, "--server-cpu") == 0)
            S.server_cpu = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(a, "--bench-cpu") == 0)
            S.bench_cpu = atoi(argv[++i]);
        else
            return bench_usage_error(CMD, "unknown or incomplete option '%s'", a);
    }
    if (access(S.tetherd, X_OK) != 0)
        return bench_usage_error(CMD, "no tetherd at %s (use --tetherd PATH)", S.tetherd);
    S.dur = S.quick ? 2 : 10;
    snprintf(dur_s, sizeof dur_s, "%g", S.dur);
    snprintf(half_s, sizeof half_s, "%g", S.dur / 2);
    /* Unmeasured traffic before each throughput window: a proxy's own
     * upstream sessions (libcoap's to its device) form then, as tether's
     * device tunnels exist before its window. */
    snprintf(warm_s, sizeof warm_s, "%g", S.quick ? 1.0 : 2.0);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(S.bench_cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0)
        say(&S, "warning: cannot pin to CPU %d: %s", S.bench_cpu, strerror(errno));
    bench_raise_nofile_to(200000);
    snprintf(S.dir, sizeof S.dir, "/tmp/tether-bench-suite.XXXXXX");
    if (!mkdtemp(S.dir) || write_configs(&S) < 0) {
        fprintf(stderr, "tether-bench suite: error: cannot write into /tmp\n");
        return BENCH_EXIT_FAIL;
    }
    signal(SIGPIPE, SIG_IGN);
    say(&S, "work dir %s (logs of every process); tetherd %s", S.dir, S.tetherd);
    uint64_t t0 = bench_now_us();

    /* Targets as SPEC S9 states them (the judged table is `targets`). */
    row_init(R_MISS, "relay_cache_miss", "relayed request, cache miss", "req/s",
             ">=0.8x ceiling, >=5x libcoap", true);
    row_init(R_HIT, "cache_hit", "cache hit", "req/s", ">=0.8x ceiling", true);
    row_init(R_OBS, "observe_fanout", "observe fan-out", "notif/s", ">=1M/s/core", true);
    row_init(R_PSK, "psk_handshakes", "PSK handshakes", "1/s", ">=30k/s/core, >=3x libcoap", true);
    row_init(R_ECDHE, "ecdhe_handshakes", "ECDHE-ECDSA P-256 handshakes", "1/s", ">=4k/s/core",
             true);
    row_init(R_RESUMED, "resumed_handshakes", "resumed handshakes", "1/s",
             ">=30k/s/core, >=3x libcoap", true);
    row_init(R_IDLE10K, "idle_tunnel_10k", "idle tunnel, 10k, unregistered", "bytes", "(reference)",
             false);
    row_init(R_IDLE100K, "idle_tunnel_100k", "idle tunnel, 100k, unregistered", "bytes",
             "(reference)", false);
    row_init(R_IDLE10K_REG, "idle_tunnel_10k_registered", "idle tunnel, 10k, registered", "bytes",
             "<=600", false);
    row_init(R_IDLE100K_REG, "idle_tunnel_100k_registered", "idle tunnel, 100k, registered",
             "bytes", "<=600", false);
    row_init(R_IDLE1M, "idle_tunnel_1m", "idle tunnel, 1M, unregistered", "bytes", "(reference)",
             false);
    row_init(R_IDLE1M_REG, "idle_tunnel_1m_registered", "idle tunnel, 1M, registered", "bytes",
             "<=600", false);
    row_init(R_CROSS, "cross_node", "cross-node CID forwarding", "% loss", "<=10%", false);
    rows[R_CROSS].signed_value = true;
    rows[R_CROSS].tether = SIGNED_NONE;
    row_init(R_XRELAY, "cross_node_relay", "relayed request, client on another node", "req/s",
             "(ratio: same-node relay)", true);
    row_init(R_WORKERS, "workers_relay", "relayed request, 2 workers on one core", "req/s",
             "(ratio: 1 worker)", true);
    row_init(R_LAT, "latency_p99_50pct", "proxy-added latency p99, 50% load", "us", "<=100", false);
    snprintf(rows[R_MISS].note, sizeof rows[R_MISS].note,
             "GET dev[0-63]/count (Max-Age 0: every request misses the cache and is relayed)");
    snprintf(rows[R_HIT].note, sizeof rows[R_HIT].note,
             "GET dev[0-63]/static (Max-Age 3600) over DTLS, answered by tetherd's cache; "
             "the ceiling is a raw UDP server answering from memory (relay-ceiling --answer)");

    bool certs = make_certs(&S);
    if (stage_wanted(&S, "relay"))
        stage_tether_relay(&S);
    if (stage_wanted(&S, "latency"))
        stage_latency(&S);
    if (stage_wanted(&S, "observe"))
        stage_observe(&S);
    if (stage_wanted(&S, "cross"))
        stage_cross(&S);
    if (stage_wanted(&S, "xrelay"))
        stage_xrelay(&S);
    if (stage_wanted(&S, "workers"))
        stage_workers(&S);
    if (stage_wanted(&S, "ecdhe"))
        stage_tether_ecdhe(&S, certs);
    if (stage_wanted(&S, "idle"))
        stage_idle(&S);
    if (stage_wanted(&S, "ceiling"))
        stage_ceiling(&S);
    if (stage_wanted(&S, "peer"))
        stage_peer(&S, certs);
    /* The latency row is measured inside tetherd; its references are end
     * to end, so they go to the note rather than make a ratio of unlikes. */
    row_t *lat = &rows[R_LAT];
    if (S.lat_e2e > 0) {
        size_t used = strlen(lat->note);
        snprintf(lat->note + used, sizeof lat->note - used,
                 " (raw relay %.0f us end to end at the same rate and concurrency, libcoap %.0f us "
                 "end to end at half its own maximum)",
                 lat->ceiling, lat->peer);
        row_detail(lat, "end_to_end_p99_us", S.lat_e2e);
        row_detail(lat, "ceiling_end_to_end_p99_us", lat->ceiling);
        row_detail(lat, "peer_end_to_end_p99_us", lat->peer);
    }
    lat->ceiling = lat->peer = -1;
    judge();

    json_t *j = table_json(&S);
    json_object_set_new(j, "elapsed_s", json_real((double)(bench_now_us() - t0) / 1e6));
    json_t *hists = json_object();
    for (int i = 0; i < 3; i++)
        if (S.lat_hist[i])
            json_object_set_new(hists, hist_names[i], S.lat_hist[i]);
    json_object_set_new(j, "latency_hist", hists);
    if (S.json_out) {
        char *text = json_dumps(j, JSON_INDENT(1));
        if (!text || write_file(S.json_out, text) < 0)
            say(&S, "cannot write %s", S.json_out);
        free(text);
    }
    if (S.json) {
        char *text = json_dumps(j, JSON_COMPACT);
        if (text)
            printf("%s\n", text);
        free(text);
    } else {
        print_table(&S);
        printf("\nelapsed %.0f s; logs in %s\n", (double)(bench_now_us() - t0) / 1e6, S.dir);
    }
    json_decref(j);
    return 0;
}
