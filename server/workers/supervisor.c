/* The supervisor of the workers of one host (see workers.h): listener
 * sockets in reuseport groups, fork, restart, signals. It runs no event
 * loop: fork comes before any libuv state exists, and the supervisor then
 * only waits on a signalfd and the workers' ready pipe. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "steer.h"
#include "tether/log.h"
#include "../udp.h"
#include "workers.h"

#define RESTART_DELAY_MS 1000
/* A worker that keeps dying waits longer each time (each restart sends
 * its devices through new handshakes), up to this; a minute of service
 * starts the delay over. */
#define RESTART_DELAY_MAX_MS 60000
#define RESTART_RESET_MS 60000

typedef struct {
    pid_t pid;           /* 0: not running */
    bool ready;          /* this incarnation said so */
    bool ever_ready;     /* some incarnation did */
    uint64_t restart_at; /* monotonic ms, 0: no restart pending */
    uint64_t ready_at;   /* monotonic ms this incarnation said it was ready */
    uint32_t delay_ms;   /* before its next restart */
} child_t;

typedef struct {
    tetherd_config_t *cfg;
    unsigned n;
    int fds[TETHERD_MAX_LISTEN][TETHERD_MAX_WORKERS];
    int ready_rd, ready_wr, sigfd;
    pid_t self; /* the supervisor */
    sigset_t mask, oldmask;
    child_t child[TETHERD_MAX_WORKERS];
    bool stopping, all_ready;
    uint64_t kill_at; /* stopping: workers still running then get SIGKILL (0: none yet) */
    int status;       /* the supervisor's exit status */
} sup_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void log_u(tether_log_level_t lvl, const char *msg, const char *k1, unsigned v1,
                  const char *k2, long v2)
{
    char a[16], b[24];
    snprintf(a, sizeof a, "%u", v1);
    snprintf(b, sizeof b, "%ld", v2);
    tether_log_kv(lvl, "workers", msg, k1, a, k2, b, NULL);
}

/* Claims the address and port `ss` for this host's workers, for as long
 * as any of them runs: an abstract AF_UNIX name, which lives in the
 * network namespace the UDP port lives in and goes with the last process
 * holding it (no stale lock file after a crash). A second tetherd started
 * on the same port with workers would otherwise join the reuseport group
 * (same uid), replace the steering program with its own and take a share
 * of the devices' records: it is refused instead. The name is made from
 * the address as bound (not as written: "localhost" and "127.0.0.1" are
 * one group). The fd, or a negative TETHER_E*. */
static int claim_port(const struct sockaddr_storage *ss, const char *host)
{
    char a[INET6_ADDRSTRLEN] = "";
    unsigned port, scope = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
        port = ntohs(s6->sin6_port);
        scope = s6->sin6_scope_id;
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
        port = ntohs(s4->sin_port);
    }
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int len =
        snprintf(un.sun_path + 1, sizeof un.sun_path - 1, "tetherd udp %s%%%u %u", a, scope, port);
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%u", port);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        bind(fd, (struct sockaddr *)&un,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len)) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        bool taken = fd >= 0 && e == EADDRINUSE;
        tether_log_kv(TETHER_LOG_ERROR, "workers",
                      taken ? "another tetherd's workers serve this port: stop it first"
                            : "cannot claim the port for the workers",
                      "host", host, "port", port_s, "error", strerror(e), NULL);
        return taken ? TETHER_EEXIST : TETHER_EIO;
    }
    return fd; /* kept open (and inherited by the workers) until exit */
}

/* Listener l's n sockets, bound in order (their reuseport slots), the
 * DTLS ones steered by CID. The port is claimed first (claim_port) when
 * configured, else right after the first socket bound a free one; the
 * others bind the port the first got. */
static int open_group(sup_t *s, size_t l)
{
    tetherd_listen_t *lc = &s->cfg->listen[l];
    struct sockaddr_storage ss;
    socklen_t sl;
    if (tetherd_listen_sockaddr(lc, &ss, &sl) < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "udp", "bad listen address", "host", lc->host, NULL);
        return TETHER_EINVAL;
    }
    int rc, claimed = lc->port ? claim_port(&ss, lc->host) : -1;
    if (lc->port && claimed < 0)
        return claimed;
    for (unsigned k = 0; k < s->n; k++) {
        int one = 1, fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        s->fds[l][k] = fd;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
            bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
            getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
            char port[8];
            snprintf(port, sizeof port, "%u", lc->port);
            tether_log_kv(TETHER_LOG_ERROR, "udp", "cannot listen", "host", lc->host, "port", port,
                          "error", strerror(errno), NULL);
            return TETHER_EIO;
        }
        if (k == 0) {
            lc->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port);
            if (claimed < 0 && (rc = claim_port(&ss, lc->host)) < 0)
                return rc;
        }
    }
    if (lc->proto == TETHERD_PROTO_COAPS &&
        tetherd_steer_attach(s->fds[l][0], (uint8_t)s->cfg->node_id, s->n) < 0) {
        tether_log_kv(TETHER_LOG_ERROR, "workers", "cannot attach the reuseport program", "error",
                      strerror(errno), NULL);
        return TETHER_EIO;
    }
    return 0;
}

/* In the child: worker k's configuration and sockets; never returns on
 * failure. */
static void become_worker(sup_t *s, unsigned k, tetherd_worker_t *w)
{
    char err[512];
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* the supervisor gone: drain and stop */
    if (getppid() != s->self)         /* it went before the line above took effect */
        _exit(1);
    /* A reload forwarded before libuv's SIGHUP handler is in place would
     * kill the worker (the default action), and the host with it: ignored
     * until then (uv_signal_start replaces the disposition). */
    signal(SIGHUP, SIG_IGN);
    sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
    close(s->sigfd);
    close(s->ready_rd);
    memset(w, 0, sizeof *w);
    w->index = k;
    w->count = s->n;
    w->ready_fd = s->ready_wr;
    for (size_t l = 0; l < TETHERD_MAX_LISTEN; l++)
        w->listen_fd[l] = -1;
    for (size_t l = 0; l < s->cfg->nlisten; l++)
        for (unsigned j = 0; j < s->n; j++) {
            if (j == k)
                w->listen_fd[l] = s->fds[l][j];
            else
                close(s->fds[l][j]);
        }
    if (tetherd_workers_derive(s->cfg, k, s->n, err, sizeof err) < 0) {
        fprintf(stderr, "tetherd: config error: %s\n", err);
        _exit(2);
    }
    char ks[12], id[12], pid[24];
    snprintf(ks, sizeof ks, "%u", k);
    snprintf(id, sizeof id, "%u", s->cfg->node_id);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    tether_log_kv(TETHER_LOG_INFO, "workers", "worker started", "worker", ks, "node_id", id, "pid",
                  pid, NULL);
}

/* Forks worker k. 1 in the child (return to main), 0 in the supervisor. */
static int spawn(sup_t *s, unsigned k, tetherd_worker_t *w)
{
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        become_worker(s, k, w);
        return 1;
    }
    if (pid < 0) {
        log_u(TETHER_LOG_ERROR, "cannot fork a worker", "worker", k, "errno", errno);
        return TETHER_EIO;
    }
    s->child[k] = (child_t){
        .pid = pid, .ever_ready = s->child[k].ever_ready, .delay_ms = s->child[k].delay_ms};
    return 0;
}

static void signal_all(sup_t *s, int sig)
{
    for (unsigned k = 0; k < s->n; k++)
        if (s->child[k].pid > 0)
            kill(s->child[k].pid, sig);
}

/* Stops every worker with `sig`; those still running drain_timeout + 5 s
 * later are killed, so a stop is bounded (SPEC S7) even when a worker
 * hangs. */
static void stop_all(sup_t *s, int sig)
{
    if (!s->stopping)
        s->kill_at = mono_ms() + ((uint64_t)s->cfg->drain_timeout + 5) * 1000;
    s->stopping = true;
    for (unsigned k = 0; k < s->n; k++)
        s->child[k].restart_at = 0;
    signal_all(s, sig);
}

static unsigned running(const sup_t *s)
{
    unsigned r = 0;
    for (unsigned k = 0; k < s->n; k++)
        r += s->child[k].pid > 0;
    return r;
}

/* Every worker that exited: a stop, a start that failed, or a crash to
 * restart in its slot. */
static void reap(sup_t *s)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        unsigned k = 0;
        while (k < s->n && s->child[k].pid != pid)
            k++;
        if (k == s->n)
            continue;
        child_t *c = &s->child[k];
        bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        long code = WIFEXITED(st) ? WEXITSTATUS(st) : -(long)WTERMSIG(st);
        c->pid = 0;
        if (s->stopping) {
            if (!clean)
                s->status = 1;
            continue;
        }
        if (!c->ready && !c->ever_ready) { /* never served: the configuration cannot start */
            log_u(TETHER_LOG_ERROR, "worker failed to start; stopping", "worker", k, "status",
                  code);
            s->status = 1;
            stop_all(s, SIGTERM);
            continue;
        }
        uint64_t now = mono_ms();
        if (!c->delay_ms || (c->ready && now - c->ready_at >= RESTART_RESET_MS))
            c->delay_ms = RESTART_DELAY_MS;
        log_u(TETHER_LOG_WARN, "worker exited; restarting it in its slot", "worker", k, "status",
              code);
        log_u(TETHER_LOG_INFO, "worker restart delay", "worker", k, "delay_ms", c->delay_ms);
        c->restart_at = now + c->delay_ms;
        c->delay_ms =
            c->delay_ms * 2 > RESTART_DELAY_MAX_MS ? RESTART_DELAY_MAX_MS : c->delay_ms * 2;
    }
}

/* The ready pipe: one byte, the worker's index, per started worker. */
static void read_ready(sup_t *s)
{
    uint8_t b[64];
    ssize_t n;
    while ((n = read(s->ready_rd, b, sizeof b)) > 0)
        for (ssize_t i = 0; i < n; i++)
            if (b[i] < s->n && s->child[b[i]].pid > 0) {
                bool again = s->child[b[i]].ever_ready;
                s->child[b[i]].ready = s->child[b[i]].ever_ready = true;
                s->child[b[i]].ready_at = mono_ms();
                if (again)
                    log_u(TETHER_LOG_INFO, "worker restarted", "worker", b[i], "pid",
                          (long)s->child[b[i]].pid);
            }
    if (s->all_ready)
        return;
    for (unsigned k = 0; k < s->n; k++)
        if (!s->child[k].ready)
            return;
    s->all_ready = true;
    char n_[12], base[12], last[12], pid[24];
    snprintf(n_, sizeof n_, "%u", s->n);
    snprintf(base, sizeof base, "%u", s->cfg->node_id);
    snprintf(last, sizeof last, "%u", s->cfg->node_id + s->n - 1);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    tether_log_kv(TETHER_LOG_INFO, "workers", "workers ready", "workers", n_, "node_ids_from", base,
                  "node_ids_to", last, "pid", pid, NULL);
}

/* The supervisor's life after the first forks; returns 1 in a worker
 * forked for a restart, else exits. */
static int supervise(sup_t *s, tetherd_worker_t *w)
{
    for (;;) {
        uint64_t now = mono_ms(), next = UINT64_MAX;
        for (unsigned k = 0; k < s->n && !s->stopping; k++) {
            child_t *c = &s->child[k];
            if (c->restart_at && c->restart_at <= now) {
                c->restart_at = 0;
                int rc = spawn(s, k, w);
                if (rc == 1)
                    return 1;
                if (rc < 0)
                    c->restart_at = now + RESTART_DELAY_MS;
            }
            if (c->restart_at && c->restart_at < next)
                next = c->restart_at;
        }
        if (s->stopping && running(s) == 0)
            exit(s->status);
        if (s->stopping && now >= s->kill_at) {
            tether_log_kv(TETHER_LOG_WARN, "workers", "workers still running; killing them", NULL);
            signal_all(s, SIGKILL);
            s->status = 1;
            s->kill_at = UINT64_MAX;
        }
        if (s->stopping && s->kill_at < next)
            next = s->kill_at;
        struct pollfd p[2] = {{.fd = s->sigfd, .events = POLLIN},
                              {.fd = s->ready_rd, .events = POLLIN}};
        int timeout = next == UINT64_MAX ? -1 : (int)(next - now);
        if (poll(p, 2, timeout) < 0 && errno != EINTR)
            exit(1);
        if (p[1].revents & POLLIN)
            read_ready(s);
        struct signalfd_siginfo si;
        while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
            int sig = (int)si.ssi_signo;
            if (sig == SIGCHLD) {
                reap(s);
                continue;
            }
            if (sig == SIGTERM || sig == SIGINT)
                stop_all(s, sig); /* TERM drains, INT stops */
            else
                signal_all(s, sig); /* HUP reloads */
        }
    }
}

int tetherd_workers_start(tetherd_config_t *cfg, tetherd_worker_t *w)
{
    static sup_t s;
    unsigned n = tetherd_workers_count(cfg);
    memset(w, 0, sizeof *w);
    w->count = 1;
    w->ready_fd = -1;
    for (size_t l = 0; l < TETHERD_MAX_LISTEN; l++)
        w->listen_fd[l] = -1;
    if (n <= 1)
        return 0;
    /* The supervisor and its workers share one stderr: each log line must
     * leave in one write (the workers inherit the buffering). */
    static char logbuf[16384];
    setvbuf(stderr, logbuf, _IOLBF, sizeof logbuf);
    s.cfg = cfg;
    s.n = n;
    s.self = getpid();
    int pfd[2];
    for (size_t l = 0; l < cfg->nlisten; l++)
        if (open_group(&s, l) < 0)
            return TETHER_EIO;
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return TETHER_EIO;
    s.ready_rd = pfd[0];
    s.ready_wr = pfd[1];
    fcntl(s.ready_rd, F_SETFL, O_NONBLOCK);
    sigemptyset(&s.mask);
    sigaddset(&s.mask, SIGCHLD);
    sigaddset(&s.mask, SIGTERM);
    sigaddset(&s.mask, SIGINT);
    sigaddset(&s.mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &s.mask, &s.oldmask);
    if ((s.sigfd = signalfd(-1, &s.mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
        return TETHER_EIO;
    char n_[12], port[8];
    snprintf(n_, sizeof n_, "%u", n);
    snprintf(port, sizeof port, "%u", cfg->nlisten ? cfg->listen[0].port : 0);
    tether_log_kv(TETHER_LOG_INFO, "workers", "starting workers", "workers", n_, "port", port,
                  NULL);
    for (unsigned k = 0; k < n; k++) {
        int rc = spawn(&s, k, w);
        if (rc == 1)
            return 0;
        if (rc < 0) {
            s.status = 1;
            stop_all(&s, SIGTERM);
            break;
        }
    }
    supervise(&s, w); /* returns only in a restarted worker */
    return 0;
}

void tetherd_workers_ready(tetherd_worker_t *w)
{
    if (w->ready_fd < 0)
        return;
    uint8_t b = (uint8_t)w->index;
    if (write(w->ready_fd, &b, 1) != 1)
        tether_log_kv(TETHER_LOG_WARN, "workers", "cannot tell the supervisor", NULL);
    close(w->ready_fd);
    w->ready_fd = -1;
}
