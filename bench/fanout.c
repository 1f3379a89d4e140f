/* tether-bench fanout-ceiling: the raw UDP ceiling of an observe fan-out
 * (SPEC S4, S9), the reference of the suite's observe row.
 *
 * What tetherd does for that row, minus DTLS and CoAP: a server pinned to
 * its own core (--relay-cpu, as tetherd is) reads the notifications of a
 * few devices from its one socket and sends each on to every observer of
 * its device. Per datagram read it finds the sender by a hash lookup on
 * its address (tetherd: the session, by CID or address); per observer it
 * finds the observer by a hash lookup on its 64-bit id (tetherd's fan-out
 * in lib/proxy/observe.c reaches each observer's session by id,
 * tether_dtls_sess_find), writes a datagram of tether's record size
 * holding the observer's own sequence number (tetherd: one DTLS record
 * each) and queues it; what one recvmmsg(2) read produced leaves with
 * sendmmsg, up to UIO_MAXIOV (1024) datagrams a call (tetherd: 256).
 * Socket buffers 4 MiB, as tetherd's.
 *
 * Sizes as tetherd's in the suite's observe stage (its sendmmsg and
 * recvmmsg seen with strace): 57 bytes in, a device's 19-byte CoAP
 * notification in a DTLS 1.2 CID record (RFC 9146: 13-byte header, 8-byte
 * CID, 8-byte explicit nonce, 8-byte CCM-8 tag, 1-byte inner type); 48
 * out, the same notification in a plain DTLS 1.2 record to each client
 * (the bench's clients offer an empty CID, so their records carry none).
 *
 * On loopback the receiver's softirq delivery runs in the sender's system
 * call and is charged to it, so the server's CPU holds the whole delivery
 * path, as tetherd's does (a perf profile of tetherd in the observe stage:
 * 90% kernel, mostly this path).
 *
 * This process plays the devices (one connected socket each) and the
 * observers (one socket each, on one epoll, drained with recvmmsg) and
 * counts what arrives. For a ceiling the server must be the busy side: by
 * default each device keeps --window notifications sent beyond the newest
 * one an observer has received, so the server's socket is never empty
 * (and never overflows, which would charge drops to the devices instead).
 * --notify-every MS sends one per device every MS instead, as the suite's
 * simulated devices do. Counters before the window (registration,
 * warm-up) are left out. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "fanout.h"

#define CMD "fanout-ceiling"
#define FAN_OBS_RCVBUF (1 << 20)
#define FAN_OBS_BATCH 64 /* datagrams per recvmmsg at an observer */
#define FAN_MAX_OBSERVERS 60000
/* A full window without progress this long: its datagrams were lost (far
 * longer than the server needs for every window, even on a shared core). */
#define FAN_STALL_US 1000000
#define FAN_SETTLE_US 100000 /* after the window: quiet this long, nothing is in flight */
#define FAN_SETTLE_MAX_US 3000000
#define FAN_REG_RESEND_US 200000
#define FAN_REG_TIMEOUT_US 10000000

/* ---- devices and observers (this process) ---------------------------------------- */

typedef struct {
    bench_common_opts_t c;
    uint32_t ndev, nobs, size, in_size, window;
    double notify_ms, warmup_s;
    int relay_cpu;
    bool json;
} fan_opts_t;

typedef struct {
    int fd;
    uint32_t seq_sent, seq_seen; /* newest notification sent; newest an observer received */
    uint64_t progress_us;        /* when seq_seen last moved (or the window filled) */
} fan_dev_t;

typedef struct {
    fan_opts_t o;
    pid_t srv_pid;
    fan_counters_t *ctr, c0, c1; /* c0, c1: the server's counters at the window's ends */
    struct sockaddr_in srv;
    int ep, tfd;
    int *obs_fd;
    uint8_t *acked;
    uint32_t nacked;
    fan_dev_t dev[FAN_MAX_DEVICES];
    bool window_open;
    uint64_t t0_us, t1_us, received, stalls, foreign;
    uint64_t fan_total; /* fan-out datagrams received over the whole run */
    bench_cpu_window_t cpu;
    struct mmsghdr msg[FAN_OBS_BATCH];
    struct iovec iov[FAN_OBS_BATCH];
    uint8_t buf[FAN_OBS_BATCH][FAN_MAX_DGRAM];
} fan_t;

static void dev_send(fan_t *F, uint32_t d)
{
    static uint8_t b[FAN_MAX_DGRAM];
    uint32_t seq = F->dev[d].seq_sent + 1;
    b[0] = T_NOTIFY;
    memcpy(b + 1, &d, 4);
    memcpy(b + 5, &seq, 4);
    if (send(F->dev[d].fd, b, F->o.in_size, 0) == (ssize_t)F->o.in_size)
        F->dev[d].seq_sent = seq;
}

/* Closed loop: the devices top their windows up, one notification each in
 * turn (the server's socket then holds them interleaved, as from devices
 * notifying at the same rate); a window stuck for FAN_STALL_US is given
 * up. */
static void dev_pump(fan_t *F, uint64_t now)
{
    for (uint32_t d = 0; d < F->o.ndev; d++) {
        fan_dev_t *v = &F->dev[d];
        if (v->seq_sent - v->seq_seen >= F->o.window && now - v->progress_us > FAN_STALL_US) {
            v->seq_seen = v->seq_sent;
            F->stalls++;
        }
    }
    for (bool more = true; more;) {
        more = false;
        for (uint32_t d = 0; d < F->o.ndev; d++) {
            fan_dev_t *v = &F->dev[d];
            if (v->seq_sent - v->seq_seen >= F->o.window)
                continue;
            uint32_t before = v->seq_sent;
            dev_send(F, d);
            if (v->seq_sent == before)
                continue; /* the device's socket is full */
            v->progress_us = now;
            more = true;
        }
    }
}

static void obs_datagram(fan_t *F, uint32_t k, const uint8_t *b, size_t n, uint64_t *now)
{
    uint32_t d, seq;
    if (n < FAN_HDR)
        return;
    memcpy(&d, b + 1, 4);
    memcpy(&seq, b + 5, 4);
    if (b[0] == T_ACK) {
        if (!F->acked[k]) {
            F->acked[k] = 1;
            F->nacked++;
        }
        return;
    }
    if (b[0] != T_FAN || d >= F->o.ndev || d != k % F->o.ndev) {
        F->foreign++;
        return;
    }
    F->fan_total++;
    if (F->window_open)
        F->received++;
    fan_dev_t *v = &F->dev[d];
    if (seq > v->seq_seen && seq <= v->seq_sent) {
        v->seq_seen = seq;
        if (!*now)
            *now = bench_now_us();
        v->progress_us = *now;
    }
}

/* Reads observer k's socket until it is empty. */
static void obs_drain(fan_t *F, uint32_t k, uint64_t *now)
{
    for (;;) {
        for (uint32_t i = 0; i < FAN_OBS_BATCH; i++)
            F->iov[i].iov_len = sizeof F->buf[i];
        int n = recvmmsg(F->obs_fd[k], F->msg, FAN_OBS_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++)
            obs_datagram(F, k, F->buf[i], F->msg[i].msg_len, now);
        if (n < FAN_OBS_BATCH)
            return;
    }
}

/* One epoll round: observers drained, the open loop's due notifications
 * sent. */
static void poll_once(fan_t *F, int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(F->ep, evs, 512, timeout_ms);
    uint64_t now = 0;
    for (int i = 0; i < n; i++) {
        uint32_t k = evs[i].data.u32;
        if (k != UINT32_MAX) {
            obs_drain(F, k, &now);
            continue;
        }
        uint64_t due = 0;
        if (read(F->tfd, &due, sizeof due) != sizeof due)
            continue;
        for (uint32_t d = 0; d < F->o.ndev; d++)
            for (uint64_t j = 0; j < due && j < 64; j++)
                dev_send(F, d);
    }
}

/* Every observer registers (k observes device k mod ndev) until the server
 * acknowledged all. */
static bool fan_register(fan_t *F)
{
    uint64_t start = bench_now_us(), last = 0;
    while (F->nacked < F->o.nobs && !fan_stop) {
        uint64_t now = bench_now_us();
        if (now - start > FAN_REG_TIMEOUT_US)
            return false;
        if (now - last >= FAN_REG_RESEND_US) {
            last = now;
            for (uint32_t k = 0; k < F->o.nobs; k++) {
                uint8_t b[FAN_HDR] = {T_REGISTER};
                uint32_t d = k % F->o.ndev;
                memcpy(b + 1, &d, 4);
                if (!F->acked[k] && send(F->obs_fd[k], b, sizeof b, 0) < 0 && errno != EAGAIN)
                    return false;
            }
        }
        poll_once(F, 10);
    }
    return F->nacked == F->o.nobs;
}

static void window_edge(fan_t *F, bool open)
{
    fan_counters_t *c = open ? &F->c0 : &F->c1;
    c->in = fan_ctr_get(&F->ctr->in);
    c->sent = fan_ctr_get(&F->ctr->sent);
    c->dropped = fan_ctr_get(&F->ctr->dropped);
    if (open) {
        uint32_t pids[2] = {(uint32_t)F->srv_pid, (uint32_t)getpid()};
        bench_cpu_window_start(&F->cpu, pids, 2);
        F->t0_us = bench_now_us();
        F->received = 0;
        F->window_open = true;
    } else {
        F->t1_us = bench_now_us();
        bench_cpu_window_stop(&F->cpu);
        F->window_open = false;
    }
}

/* Devices start; warm-up, then the measured window, until the duration
 * ends or a signal comes. */
static void fan_run(fan_t *F)
{
    uint64_t start = bench_now_us();
    uint64_t open_at = start + (uint64_t)(F->o.warmup_s * 1e6);
    uint64_t close_at = open_at + (uint64_t)(F->o.c.duration_s * 1e6);
    if (F->o.notify_ms > 0) {
        long ns = (long)(F->o.notify_ms * 1e6);
        struct itimerspec it = {.it_interval = {ns / 1000000000, ns % 1000000000},
                                .it_value = {ns / 1000000000, ns % 1000000000}};
        timerfd_settime(F->tfd, 0, &it, NULL);
    }
    for (uint32_t d = 0; d < F->o.ndev; d++)
        F->dev[d].progress_us = start;
    while (!fan_stop) {
        uint64_t now = bench_now_us();
        if (!F->t0_us && now >= open_at)
            window_edge(F, true);
        if (now >= close_at)
            break;
        if (F->o.notify_ms <= 0)
            dev_pump(F, now);
        poll_once(F, 10);
    }
    if (!F->t0_us)
        window_edge(F, true); /* a signal during the warm-up: an empty window */
    window_edge(F, false);
    /* The devices stop; what is still in flight arrives (or was lost). */
    struct itimerspec off = {0};
    timerfd_settime(F->tfd, 0, &off, NULL);
    uint64_t quiet_at = bench_now_us() + FAN_SETTLE_US, n = F->fan_total;
    uint64_t give_up = bench_now_us() + FAN_SETTLE_MAX_US;
    while (bench_now_us() < quiet_at && bench_now_us() < give_up) {
        poll_once(F, 10);
        if (F->fan_total != n)
            n = F->fan_total, quiet_at = bench_now_us() + FAN_SETTLE_US;
    }
}

static void report(const fan_t *F)
{
    double secs = (double)(F->t1_us - F->t0_us) / 1e6;
    double cpu = bench_cpu_window_share(&F->cpu, 0), rcpu = bench_cpu_window_share(&F->cpu, 1);
    uint64_t in = F->c1.in - F->c0.in, sent = F->c1.sent - F->c0.sent,
             dropped = F->c1.dropped - F->c0.dropped;
    /* every datagram the server sent over the run but the acks, against
     * every fan-out datagram received (after the in-flight ones arrived) */
    uint64_t fanned = fan_ctr_get(&F->ctr->sent) - fan_ctr_get(&F->ctr->acks);
    uint64_t lost = fanned > F->fan_total ? fanned - F->fan_total : 0;
    double rx = secs > 0 ? (double)F->received / secs : 0;
    double per_core = cpu > 0.05 ? rx / cpu : -1;
    bool closed = F->o.notify_ms <= 0;
    if (F->o.json) {
        json_t *o = json_pack(
            "{s:s, s:i, s:i, s:i, s:i, s:o, s:o, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:f, "
            "s:f, s:f, s:f, s:o}",
            "mode", closed ? "closed" : "open", "devices", (int)F->o.ndev, "observers",
            (int)F->o.nobs, "size", (int)F->o.size, "in_size", (int)F->o.in_size, "window",
            closed ? json_integer(F->o.window) : json_null(), "notify_every_ms",
            closed ? json_null() : json_real(F->o.notify_ms), "duration_s", secs, "warmup_s",
            F->o.warmup_s, "notifications_in", (json_int_t)in, "sent", (json_int_t)sent, "received",
            (json_int_t)F->received, "lost", (json_int_t)lost, "send_errors", (json_int_t)dropped,
            "stalls", (json_int_t)F->stalls, "datagrams_per_s", rx, "sent_per_s",
            secs > 0 ? (double)sent / secs : 0, "relay_cpu", cpu, "receiver_cpu", rcpu, "per_core",
            per_core > 0 ? json_real(per_core) : json_null());
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
        return;
    }
    char mode[64];
    if (closed)
        snprintf(mode, sizeof mode, "closed loop, window %u per device", F->o.window);
    else
        snprintf(mode, sizeof mode, "a notification every %g ms per device", F->o.notify_ms);
    printf("fan-out     raw UDP, %s, %u devices, %u observers, %u -> %u bytes, server on cpu %d "
           "(%.0f%% busy)\n",
           mode, F->o.ndev, F->o.nobs, F->o.in_size, F->o.size, F->o.relay_cpu, cpu * 100);
    printf("datagrams   notifications in %llu, sent %llu, received %llu, send errors %llu; over "
           "the run lost %llu, stalls %llu\n",
           (unsigned long long)in, (unsigned long long)sent, (unsigned long long)F->received,
           (unsigned long long)dropped, (unsigned long long)lost, (unsigned long long)F->stalls);
    printf("throughput  %.1f datagrams/s received (this process %.0f%% busy)", rx, rcpu * 100);
    if (per_core > 0)
        printf(", %.0f per busy server core-second", per_core);
    printf("\n");
}

/* ---- options and entry ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tether-bench fanout-ceiling [options]\n"
               "The raw UDP ceiling of an observe fan-out: devices -> server -> every observer\n"
               "of the device on loopback, no crypto, no CoAP; a hash lookup per destination\n"
               "and sendmmsg per batch. The server is a child process pinned to one core.\n\n"
               "  --devices N           devices (default 4)\n"
               "  --observers N         observers, k observing device k mod N (default 500)\n"
               "  --duration S          seconds measured (default 10)\n"
               "  --warmup S            seconds of traffic before the window (default 0.5)\n"
               "  --size N              bytes to each observer (default 48: tetherd's\n"
               "                        notification record to a client, DTLS 1.2)\n"
               "  --in-size N           bytes from each device (default 57)\n"
               "  --window N            notifications each device keeps ahead of the newest\n"
               "                        one received, so the server stays busy (default 8)\n"
               "  --notify-every MS     instead: one notification per device every MS\n"
               "  --relay-cpu N         pin the server to this CPU (default 0; -1: no pinning)\n"
               "  --json                one JSON object\n");
}

enum {
    O_DEV = BENCH_OPT_FIRST_OWN,
    O_OBS,
    O_SIZE,
    O_INSIZE,
    O_WINDOW,
    O_EVERY,
    O_WARMUP,
    O_CPU,
    O_JSON
};

static const struct option long_opts[] = {
    BENCH_COMMON_LONG_OPTS,
    {"devices", required_argument, NULL, O_DEV},
    {"observers", required_argument, NULL, O_OBS},
    {"size", required_argument, NULL, O_SIZE},
    {"in-size", required_argument, NULL, O_INSIZE},
    {"window", required_argument, NULL, O_WINDOW},
    {"notify-every", required_argument, NULL, O_EVERY},
    {"warmup", required_argument, NULL, O_WARMUP},
    {"relay-cpu", required_argument, NULL, O_CPU},
    {"json", no_argument, NULL, O_JSON},
    {NULL, 0, NULL, 0},
};

static int fan_opt(void *ctx, int opt, const char *arg)
{
    fan_opts_t *o = ctx;
    uint32_t v;
    switch (opt) {
    case O_EVERY:
        if (bench_parse_double(arg, 0.01, 60000, &o->notify_ms) < 0)
            return bench_usage_error(CMD, "--notify-every wants milliseconds > 0, got '%s'", arg);
        return 0;
    case O_WARMUP:
        if (bench_parse_double(arg, 0, 3600, &o->warmup_s) < 0)
            return bench_usage_error(CMD, "--warmup wants seconds, got '%s'", arg);
        return 0;
    case O_CPU: return bench_parse_cpu(CMD, "--relay-cpu", arg, &o->relay_cpu);
    case O_JSON: o->json = true; return 0;
    }
    static const struct {
        int opt;
        uint32_t min, max;
        const char *what;
    } nums[] = {
        {O_DEV, 1, FAN_MAX_DEVICES, "--devices"},
        {O_OBS, 1, FAN_MAX_OBSERVERS, "--observers"},
        {O_SIZE, FAN_MIN_SIZE, FAN_MAX_DGRAM, "--size"},
        {O_INSIZE, FAN_MIN_SIZE, FAN_MAX_DGRAM, "--in-size"},
        {O_WINDOW, 1, 4096, "--window"},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (nums[i].opt != opt)
            continue;
        if (bench_parse_u32(arg, nums[i].min, nums[i].max, &v) < 0)
            return bench_usage_error(CMD, "%s wants a number in [%u, %u], got '%s'", nums[i].what,
                                     nums[i].min, nums[i].max, arg);
        *(opt == O_DEV      ? &o->ndev
          : opt == O_OBS    ? &o->nobs
          : opt == O_SIZE   ? &o->size
          : opt == O_INSIZE ? &o->in_size
                            : &o->window) = v;
        return 0;
    }
    return bench_usage_error(CMD, "unknown option");
}

static int parse_opts(int argc, char **argv, fan_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->ndev = 4;
    o->nobs = 500;
    o->size = 48;
    o->in_size = 57;
    o->window = 8;
    o->warmup_s = 0.5;
    o->c.duration_s = 10;
    o->c.have_server = true; /* no --server: the server is ours */
    int rc = bench_parse_args(CMD, argc, argv, long_opts, &o->c, fan_opt, o);
    if (rc)
        return rc;
    if (o->c.duration_s <= 0)
        return bench_usage_error(CMD, "--duration must be > 0");
    if (o->nobs < o->ndev)
        return bench_usage_error(CMD, "--observers must be at least --devices");
    return 0;
}

/* Forks the server; its port into F->srv (false on failure). */
static bool start_server(fan_t *F)
{
    int fds[2];
    if (pipe(fds) < 0)
        return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        fan_server(fds[1], F->o.relay_cpu, F->o.ndev, F->o.nobs, F->o.size, F->ctr);
    }
    close(fds[1]);
    uint16_t port = 0;
    if (pid < 0 || read(fds[0], &port, sizeof port) != sizeof port)
        port = 0;
    close(fds[0]);
    F->srv_pid = pid;
    F->srv = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port)};
    F->srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return port != 0;
}

/* A socket connected to the server: a device's, or an observer's on epoll
 * as observer k. */
static int peer_socket(fan_t *F, int bufsize, uint32_t k, bool observer)
{
    int fd = bench_udp_socket(bufsize, NULL);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&F->srv, sizeof F->srv) < 0) {
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = k};
    if (fd >= 0 && observer && epoll_ctl(F->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool fan_setup(fan_t *F)
{
    F->ep = epoll_create1(EPOLL_CLOEXEC);
    F->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    if (F->ep < 0 || F->tfd < 0 || epoll_ctl(F->ep, EPOLL_CTL_ADD, F->tfd, &ev) < 0)
        return false;
    F->obs_fd = malloc(F->o.nobs * sizeof *F->obs_fd);
    F->acked = calloc(F->o.nobs, 1);
    if (!F->obs_fd || !F->acked)
        return false;
    for (uint32_t k = 0; k < F->o.nobs; k++)
        F->obs_fd[k] = -1;
    for (uint32_t k = 0; k < F->o.nobs; k++)
        if ((F->obs_fd[k] = peer_socket(F, FAN_OBS_RCVBUF, k, true)) < 0)
            return false;
    for (uint32_t d = 0; d < F->o.ndev; d++)
        if ((F->dev[d].fd = peer_socket(F, 0, d, false)) < 0)
            return false;
    for (uint32_t i = 0; i < FAN_OBS_BATCH; i++) {
        F->iov[i] = (struct iovec){.iov_base = F->buf[i], .iov_len = sizeof F->buf[i]};
        F->msg[i].msg_hdr = (struct msghdr){.msg_iov = &F->iov[i], .msg_iovlen = 1};
    }
    return true;
}

int bench_fanout_ceiling_main(int argc, char **argv)
{
    static fan_t F;
    memset(&F, 0, sizeof F);
    F.ep = F.tfd = -1;
    for (uint32_t d = 0; d < FAN_MAX_DEVICES; d++)
        F.dev[d].fd = -1;
    int ex = bench_args_outcome(parse_opts(argc, argv, &F.o), usage);
    if (ex >= 0)
        return ex;
    int exit_code = BENCH_EXIT_FAIL;
    bench_raise_nofile_to(F.o.nobs + F.o.ndev + 64);
    F.ctr = mmap(NULL, sizeof *F.ctr, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (F.ctr == MAP_FAILED) {
        F.ctr = NULL;
        return BENCH_EXIT_FAIL;
    }
    struct sigaction sa = {.sa_handler = fan_on_signal};
    if (!start_server(&F)) {
        fprintf(stderr, "tether-bench %s: error: the server did not start\n", CMD);
        goto out;
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!fan_setup(&F)) {
        fprintf(stderr, "tether-bench %s: error: cannot open %u observer sockets: %s\n", CMD,
                F.o.nobs, strerror(errno));
        goto out;
    }
    if (!fan_register(&F)) {
        fprintf(stderr, "tether-bench %s: error: %u of %u observers registered\n", CMD, F.nacked,
                F.o.nobs);
        goto out;
    }
    bench_log(CMD, "%u observers of %u devices registered", F.o.nobs, F.o.ndev);
    fan_run(&F);
    report(&F);
    exit_code = 0;
out:
    if (F.srv_pid > 0) {
        kill(F.srv_pid, SIGTERM);
        waitpid(F.srv_pid, NULL, 0);
    }
    for (uint32_t k = 0; F.obs_fd && k < F.o.nobs; k++)
        if (F.obs_fd[k] >= 0)
            close(F.obs_fd[k]);
    for (uint32_t d = 0; d < F.o.ndev; d++)
        if (F.dev[d].fd >= 0)
            close(F.dev[d].fd);
    if (F.ep >= 0)
        close(F.ep);
    if (F.tfd >= 0)
        close(F.tfd);
    free(F.obs_fd);
    free(F.acked);
    munmap(F.ctr, sizeof *F.ctr);
    return exit_code;
}
