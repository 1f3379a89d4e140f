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
 * target needs is missing is "not measured", never met.
 *
 * This file: the processes (spawned pinned, stopped, tether-bench commands
 * run for their JSON) and the servers under test (tetherd, redis-server,
 * the simulated devices, libcoap's pair, certificates and configs); the
 * stages are in suite_stages.c and suite_cluster.c, the rows and the
 * table in suite_table.c, the entry in suite_main.c (suite_int.h). */
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
#include "suite_int.h"
#include "tether/common.h"

void say(suite_t *S, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(S->log, "suite: ");
    vfprintf(S->log, fmt, ap);
    fputc('\n', S->log);
    fflush(S->log);
    va_end(ap);
}

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

void stop_pid(pid_t *pid)
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
json_t *run_bench(suite_t *S, const char *name, pid_t watch, double *cpu, ...)
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

double jnum(json_t *j, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = j;
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, "."))
        v = json_object_get(v, tok);
    return json_is_number(v) ? json_number_value(v) : -1;
}

/* Waits until file `path` holds `needle`; false after `secs`. */
bool wait_for(const char *path, const char *needle, double secs)
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

int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return TETHER_EIO;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : TETHER_EIO;
}

/* ---- servers under test ------------------------------------------------------------- */

/* tetherd with config `conf` (a file in the suite dir), pinned to the
 * server CPU; waits for "ready" and reads the DTLS port from the log. */
int tetherd_start(suite_t *S, const char *conf, const char *name, server_t *sv)
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
json_t *tetherd_stats(const server_t *sv)
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

bool tetherd_accepts(suite_t *S, const char *conf)
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
int free_port_pair(void)
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

/* Starts `count` simulated devices (dev0..) against server on the bench
 * CPU, /temp notifying every notify_ms, logging to DIR/NAME.log, and waits
 * until all registered. Returns the pid (stop it with stop_pid) with *ok
 * telling whether they registered. */
pid_t devices_start(suite_t *S, char *server, int count, int notify_ms, const char *name, bool *ok)
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

/* A redis-server on a free loopback port (*port) on the bench CPU,
 * logging to DIR/redis-NAME.log, for the stages whose nodes share state.
 * Returns its pid, or -1 with the reason in row r's note. */
pid_t redis_start(suite_t *S, const char *name, row_t *r, int *port)
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

const char *const peer_bin = "/usr/bin/coap-server-openssl";

void peer_stop(peer_t *p)
{
    stop_pid(&p->proxy);
    stop_pid(&p->dev);
}

/* Starts the pair (logs DIR/libcoap-NAME-{device,proxy}.log) and waits
 * until both answer a CoAP ping and hold their DTLS ports. */
int peer_start(suite_t *S, bool certs, const char *name, peer_t *p)
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
void peer_upstream_suite(suite_t *S, const peer_t *p, char *out, size_t cap)
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

/* CA, server and client certificates (ECDSA P-256) with the openssl tool.
 * They must be X.509 v3 with CA/leaf extensions: wolfSSL (and OpenSSL's
 * verifier) refuse a v1 certificate in the chain with bad_certificate. */
bool make_certs(suite_t *S)
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

int write_configs(suite_t *S)
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
