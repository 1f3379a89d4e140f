/* tether-bench relay-ceiling: the raw UDP relay ceiling of SPEC S9.
 *
 * The same path as a relayed request through tether, minus DTLS and CoAP:
 * client -> relay -> echo device -> relay -> client, over loopback UDP with
 * the same datagram sizes and concurrency. The relay is a child process
 * pinned to its own core (--relay-cpu, as tetherd is) and does per datagram
 * at least what tetherd does, with the best batching the kernel offers for
 * this traffic: each wake-up reads up to RELAY_BATCH datagrams per
 * recvmmsg(2) (tetherd: libuv's recvmmsg, 20 per call) until the socket is
 * empty, finds the client by a hash lookup on its address (tether's hash
 * map), tags the datagram with the client's slot so the device's answer
 * finds its way back, and sends everything one read produced with one
 * sendmmsg(2) (tetherd: one sendmmsg per receive batch). Socket buffers
 * are sized as tetherd sizes its own (4 MiB, SO_RCVBUFFORCE when allowed).
 *
 * UDP GSO (UDP_SEGMENT) and GRO (UDP_GRO) would not lift this ceiling for
 * tether's traffic: GSO sends one buffer as several datagrams to ONE
 * destination, GRO coalesces datagrams of ONE flow, and a relay's batch
 * holds one datagram per client or device (64 of each in the suite: 64
 * addresses, each with one request in flight). Only this bench's single
 * echo socket makes the device side one flow; coalescing there would
 * measure an artefact of the bench, not a relay's limit.
 *
 * Clients and the echo device run in this process. Closed loop by default,
 * open loop with --rate (latency from the scheduled time, as `load` does).
 * With --answer the relay answers each request itself after the lookup, as
 * a server answering from memory does (the ceiling of a cache hit). */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "tether/addr.h"
#include "tether/hist.h"
#include "tether/hmap.h"

#define CMD "relay-ceiling"
#define RELAY_MAX_DGRAM 1500
#define RELAY_TAG 4  /* client slot prepended towards the device */
#define RELAY_HDR 16 /* in every datagram: send time (8), client (4), pad */
#define RELAY_RESEND_MS 1000
#define RELAY_BATCH 256         /* datagrams per recvmmsg / sendmmsg */
#define RELAY_SOCKBUF (4 << 20) /* tetherd's udp.recv_buffer / send_buffer default */

/* ---- the relay (child process) ------------------------------------------------- */

typedef struct {
    tether_hnode_t node;
    struct sockaddr_storage addr;
} relay_client_t;

/* One direction's batch: what recvmmsg read, what sendmmsg will send. */
typedef struct {
    struct mmsghdr msg[RELAY_BATCH];
    struct iovec iov[RELAY_BATCH];
    struct sockaddr_storage addr[RELAY_BATCH];
    uint8_t buf[RELAY_BATCH][RELAY_MAX_DGRAM + RELAY_TAG];
} relay_batch_t;

typedef struct {
    int front, back; /* clients / device */
    struct sockaddr_storage device;
    tether_hmap_t by_addr;
    relay_client_t *clients;
    uint32_t nclients, cap;
    uint32_t answer_size; /* > 0: answer clients directly with this many bytes */
    relay_batch_t rx, tx;
} relay_t;

static volatile sig_atomic_t relay_stop;

static void relay_on_term(int sig)
{
    (void)sig;
    relay_stop = 1;
}

/* From a client: look it up (or add it), then either the answer (answer
 * mode) or the tagged datagram for the device into tx slot k. False: drop. */
static bool relay_front(relay_t *r, const uint8_t *b, size_t n, const struct sockaddr_storage *from,
                        uint32_t k)
{
    if (n > RELAY_MAX_DGRAM || from->ss_family != AF_INET)
        return false;
    tether_addr_t a = {.len = sizeof(struct sockaddr_in)};
    memcpy(&a.ss, from, a.len);
    uint8_t key[TETHER_HKEY_MAX];
    size_t kl = tether_addr_key(&a, key);
    tether_hnode_t *hn = tether_hmap_find(&r->by_addr, key, kl);
    uint32_t slot;
    if (hn) {
        slot = (uint32_t)((relay_client_t *)hn - r->clients);
    } else {
        if (r->nclients == r->cap)
            return false; /* table full */
        slot = r->nclients++;
        relay_client_t *c = &r->clients[slot];
        memcpy(&c->addr, from, a.len);
        tether_hmap_insert(&r->by_addr, &c->node, key, kl);
    }
    uint8_t *out = r->tx.buf[k];
    if (r->answer_size) { /* the request's header (send time, client) comes back */
        memcpy(out, b, n < r->answer_size ? n : r->answer_size);
        r->tx.iov[k].iov_len = r->answer_size;
        memcpy(&r->tx.addr[k], &r->clients[slot].addr, sizeof(struct sockaddr_in));
        return true;
    }
    memcpy(out, &slot, RELAY_TAG);
    memcpy(out + RELAY_TAG, b, n);
    r->tx.iov[k].iov_len = n + RELAY_TAG;
    memcpy(&r->tx.addr[k], &r->device, sizeof(struct sockaddr_in));
    return true;
}

/* From the device: untag, to the client's address. */
static bool relay_back(relay_t *r, const uint8_t *b, size_t n, uint32_t k)
{
    uint32_t slot;
    if (n <= RELAY_TAG)
        return false;
    memcpy(&slot, b, RELAY_TAG);
    if (slot >= r->nclients)
        return false;
    memcpy(r->tx.buf[k], b + RELAY_TAG, n - RELAY_TAG);
    r->tx.iov[k].iov_len = n - RELAY_TAG;
    memcpy(&r->tx.addr[k], &r->clients[slot].addr, sizeof(struct sockaddr_in));
    return true;
}

/* Reads `fd` until it is empty, RELAY_BATCH datagrams per recvmmsg, each
 * read's output leaving with one sendmmsg. */
static void relay_drain(relay_t *r, int fd)
{
    bool front = fd == r->front;
    int out = front && !r->answer_size ? r->back : r->front;
    for (;;) {
        for (uint32_t i = 0; i < RELAY_BATCH; i++) {
            r->rx.iov[i].iov_len = sizeof r->rx.buf[i];
            r->rx.msg[i].msg_hdr.msg_namelen = sizeof r->rx.addr[i];
        }
        int n = recvmmsg(fd, r->rx.msg, RELAY_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        uint32_t k = 0;
        for (int i = 0; i < n; i++) {
            const uint8_t *b = r->rx.buf[i];
            size_t len = r->rx.msg[i].msg_len;
            if (r->rx.msg[i].msg_hdr.msg_flags & MSG_TRUNC)
                continue;
            if (front ? relay_front(r, b, len, &r->rx.addr[i], k) : relay_back(r, b, len, k))
                k++;
        }
        bench_sendmmsg_all(out, r->tx.msg, k);
        if (n < RELAY_BATCH)
            return;
    }
}

static void batch_init(relay_batch_t *b)
{
    for (uint32_t i = 0; i < RELAY_BATCH; i++) {
        b->iov[i].iov_base = b->buf[i];
        b->iov[i].iov_len = sizeof b->buf[i];
        b->msg[i].msg_hdr = (struct msghdr){.msg_name = &b->addr[i],
                                            .msg_namelen = sizeof(struct sockaddr_in),
                                            .msg_iov = &b->iov[i],
                                            .msg_iovlen = 1};
    }
}

/* The child: pins itself, binds both sockets on loopback, tells the parent
 * their ports through `fd` and relays (or answers, answer_size > 0) until
 * SIGTERM. Never returns. */
static void relay_child(int fd, int cpu, uint16_t device_port, uint32_t answer_size)
{
    bench_pin_cpu(cpu);
    static relay_t r;
    r.cap = 1 << 16;
    r.answer_size = answer_size;
    r.clients = calloc(r.cap, sizeof *r.clients);
    if (!r.clients || tether_hmap_init(&r.by_addr, 1024, 0x5eed) < 0)
        _exit(1);
    batch_init(&r.rx);
    batch_init(&r.tx);
    struct sockaddr_in *dev = (struct sockaddr_in *)&r.device;
    dev->sin_family = AF_INET;
    dev->sin_port = htons(device_port);
    dev->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uint16_t ports[2];
    r.front = bench_udp_socket(RELAY_SOCKBUF, &ports[0]);
    r.back = bench_udp_socket(RELAY_SOCKBUF, &ports[1]);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (r.front < 0 || r.back < 0 || ep < 0)
        _exit(1);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = r.front;
    epoll_ctl(ep, EPOLL_CTL_ADD, r.front, &ev);
    ev.data.fd = r.back;
    epoll_ctl(ep, EPOLL_CTL_ADD, r.back, &ev);
    struct sigaction sa = {.sa_handler = relay_on_term}; /* no SA_RESTART: epoll_wait returns */
    sigaction(SIGTERM, &sa, NULL);
    if (write(fd, ports, sizeof ports) != sizeof ports)
        _exit(1);
    close(fd);
    while (!relay_stop) {
        struct epoll_event evs[2];
        int n = epoll_wait(ep, evs, 2, -1);
        for (int i = 0; i < n; i++)
            relay_drain(&r, evs[i].data.fd);
    }
    _exit(0);
}

/* ---- clients and the echo device (this process) --------------------------------- */

typedef struct {
    bench_common_opts_t c;
    uint32_t concurrency, size, resp_size, max_outstanding;
    int relay_cpu;
    double rate;
    bool json, answer;
} rc_opts_t;

struct rc;

typedef struct {
    uv_udp_t udp;
    struct rc *R;
    uint32_t idx, outstanding;
    uint64_t last_send_ms;
} rc_client_t;

typedef struct rc {
    rc_opts_t o;
    uv_loop_t *loop;
    bench_runner_t runner;
    uv_udp_t device;
    uv_idle_t pacer;
    uv_timer_t sweep;
    rc_client_t *cl;
    pid_t relay_pid;
    bool running, stopping;
    uint64_t start_us, end_us, sent, responses, resent, overflow;
    bench_cpu_window_t relay_cpu; /* the relay's CPU over the measured window */
    bench_pacer_t pace;
    tether_hist_t hist;
} rc_t;

static void rc_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h, (void)sz;
    static uint8_t rx[RELAY_MAX_DGRAM]; /* one loop: one datagram at a time */
    b->base = (char *)rx;
    b->len = sizeof rx;
}

/* Echo device: answers each request with resp_size bytes, header kept. */
static void on_device(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                      unsigned flags)
{
    rc_t *R = h->data;
    if (n < RELAY_TAG + RELAY_HDR || !from || (flags & UV_UDP_PARTIAL))
        return;
    uv_buf_t out = uv_buf_init(b->base, RELAY_TAG + R->o.resp_size);
    uv_udp_try_send(&R->device, &out, 1, from);
}

static void client_send(rc_client_t *c, uint64_t t0_us)
{
    rc_t *R = c->R;
    static uint8_t msg[RELAY_MAX_DGRAM];
    memcpy(msg, &t0_us, 8);
    memcpy(msg + 8, &c->idx, 4);
    uv_buf_t out = uv_buf_init((char *)msg, R->o.size);
    if (uv_udp_try_send(&c->udp, &out, 1, NULL) < 0)
        return;
    c->outstanding++;
    c->last_send_ms = uv_now(R->loop);
    R->sent++;
}

static void on_client(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                      unsigned flags)
{
    rc_client_t *c = h->data;
    rc_t *R = c->R;
    if (n < RELAY_HDR || (flags & UV_UDP_PARTIAL))
        return;
    (void)from;
    uint64_t t0;
    memcpy(&t0, b->base, 8);
    if (c->outstanding)
        c->outstanding--;
    if (!R->running)
        return;
    uint64_t now = bench_now_us();
    R->responses++;
    tether_hist_record(&R->hist, now > t0 ? now - t0 : 0);
    if (R->o.rate <= 0)
        client_send(c, now);
}

/* Closed loop: a client whose datagram was lost sends a new one. */
static void on_sweep(uv_timer_t *t)
{
    rc_t *R = t->data;
    uint64_t now = uv_now(R->loop);
    for (uint32_t k = 0; k < R->o.concurrency; k++) {
        rc_client_t *c = &R->cl[k];
        if (c->outstanding && now - c->last_send_ms >= RELAY_RESEND_MS) {
            c->outstanding = 0;
            R->resent++;
            if (R->running && R->o.rate <= 0)
                client_send(c, bench_now_us());
        }
    }
}

static bool rc_can_take(void *ctx, uint32_t i)
{
    rc_t *R = ctx;
    return R->cl[i].outstanding < R->o.max_outstanding;
}

static void rc_send(void *ctx, uint32_t i, uint64_t sched_us)
{
    rc_t *R = ctx;
    client_send(&R->cl[i], sched_us);
}

static void on_pace(uv_idle_t *t)
{
    rc_t *R = t->data;
    if (R->running)
        R->overflow += bench_pacer_poll(&R->pace, R->o.concurrency, rc_can_take, rc_send, R);
}

/* utime + stime of a process in clock ticks (0 when unreadable). */
uint64_t bench_proc_cpu_ticks(uint32_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return ut + st;
}

static void rc_stop(void *user)
{
    rc_t *R = user;
    R->stopping = true;
    if (R->running) {
        R->end_us = bench_now_us();
        bench_cpu_window_stop(&R->relay_cpu);
        R->running = false;
    }
    uv_close((uv_handle_t *)&R->pacer, NULL);
    uv_close((uv_handle_t *)&R->sweep, NULL);
    uv_close((uv_handle_t *)&R->device, NULL);
    for (uint32_t k = 0; k < R->o.concurrency; k++)
        uv_close((uv_handle_t *)&R->cl[k].udp, NULL);
}

static void report(rc_t *R)
{
    double secs = (double)(R->end_us - R->start_us) / 1e6;
    double cpu = bench_cpu_window_share(&R->relay_cpu, 0);
    double tput = secs > 0 ? (double)R->responses / secs : 0;
    const tether_hist_t *h = &R->hist;
    if (R->o.json) {
        json_t *o = json_pack(
            "{s:s, s:b, s:i, s:o, s:i, s:i, s:f, s:I, s:I, s:I, s:I, s:f, s:f, "
            "s:{s:I, s:I, s:I, s:I, s:I, s:f}}",
            "mode", R->o.rate > 0 ? "open" : "closed", "answer", (int)R->o.answer, "concurrency",
            (int)R->o.concurrency, "rate", R->o.rate > 0 ? json_real(R->o.rate) : json_null(),
            "size", (int)R->o.size, "resp_size", (int)R->o.resp_size, "duration_s", secs, "sent",
            (json_int_t)R->sent, "responses", (json_int_t)R->responses, "lost",
            (json_int_t)R->resent, "overflow", (json_int_t)R->overflow, "throughput_rps", tput,
            "relay_cpu", cpu, "latency_us", "p50", (json_int_t)tether_hist_percentile(h, 50), "p90",
            (json_int_t)tether_hist_percentile(h, 90), "p99",
            (json_int_t)tether_hist_percentile(h, 99), "p99.9",
            (json_int_t)tether_hist_percentile(h, 99.9), "max", (json_int_t)h->max, "mean",
            tether_hist_mean(h));
        bench_hist_json(h, o);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
        return;
    }
    printf("relay       raw UDP%s, %s loop, %u clients, %u -> %u bytes, relay on cpu %d (%.0f%% "
           "busy)\n",
           R->o.answer ? " (answering itself)" : "", R->o.rate > 0 ? "open" : "closed",
           R->o.concurrency, R->o.size, R->o.resp_size, R->o.relay_cpu, cpu * 100);
    printf("requests    sent %llu, responses %llu, lost %llu, overflow %llu\n",
           (unsigned long long)R->sent, (unsigned long long)R->responses,
           (unsigned long long)R->resent, (unsigned long long)R->overflow);
    printf("throughput  %.1f req/s\n", tput);
    printf("latency us  p50 %llu, p90 %llu, p99 %llu, p99.9 %llu, max %llu, mean %.1f\n",
           (unsigned long long)tether_hist_percentile(h, 50),
           (unsigned long long)tether_hist_percentile(h, 90),
           (unsigned long long)tether_hist_percentile(h, 99),
           (unsigned long long)tether_hist_percentile(h, 99.9), (unsigned long long)h->max,
           tether_hist_mean(h));
}

/* ---- options and entry ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tether-bench relay-ceiling [options]\n"
               "The raw UDP relay ceiling: client -> relay -> echo device -> relay -> client on\n"
               "loopback, no crypto, no CoAP. The relay is a child process pinned to one core.\n\n"
               "  --concurrency C       clients (default 64)\n"
               "  --duration S          seconds (default 10)\n"
               "  --size N              request datagram bytes (default 57: a tether request\n"
               "                        in a DTLS 1.2 CID record)\n"
               "  --resp-size N         response datagram bytes (default 48)\n"
               "  --rate R              open loop: R requests/s in total (default: closed loop)\n"
               "  --max-outstanding N   open loop: in flight per client (default 16)\n"
               "  --relay-cpu N         pin the relay to this CPU (default 0; -1: no pinning)\n"
               "  --answer              the relay answers each request itself (resp-size\n"
               "                        bytes) instead of relaying it: a cache hit's ceiling\n"
               "  --json                one JSON object\n");
}

enum { O_CONC = BENCH_OPT_FIRST_OWN, O_SIZE, O_RSIZE, O_RATE, O_MAXOUT, O_CPU, O_JSON, O_ANSWER };

static const struct option long_opts[] = {
    BENCH_COMMON_LONG_OPTS,
    {"concurrency", required_argument, NULL, O_CONC},
    {"size", required_argument, NULL, O_SIZE},
    {"resp-size", required_argument, NULL, O_RSIZE},
    {"rate", required_argument, NULL, O_RATE},
    {"max-outstanding", required_argument, NULL, O_MAXOUT},
    {"relay-cpu", required_argument, NULL, O_CPU},
    {"json", no_argument, NULL, O_JSON},
    {"answer", no_argument, NULL, O_ANSWER},
    {NULL, 0, NULL, 0},
};

static int rc_opt(void *ctx, int opt, const char *arg)
{
    rc_opts_t *o = ctx;
    uint32_t v;
    switch (opt) {
    case O_RATE:
        if (bench_parse_double(arg, 0.001, 1e8, &o->rate) < 0)
            return bench_usage_error(CMD, "--rate wants requests/s > 0, got '%s'", arg);
        return 0;
    case O_CPU: return bench_parse_cpu(CMD, "--relay-cpu", arg, &o->relay_cpu);
    case O_JSON: o->json = true; return 0;
    case O_ANSWER: o->answer = true; return 0;
    }
    if (bench_parse_u32(arg, opt == O_CONC || opt == O_MAXOUT ? 1 : RELAY_HDR,
                        opt == O_CONC     ? 60000
                        : opt == O_MAXOUT ? 1024
                                          : RELAY_MAX_DGRAM,
                        &v) < 0)
        return bench_usage_error(CMD, "bad number '%s'", arg);
    *(opt == O_CONC    ? &o->concurrency
      : opt == O_SIZE  ? &o->size
      : opt == O_RSIZE ? &o->resp_size
                       : &o->max_outstanding) = v;
    return 0;
}

static int parse_opts(int argc, char **argv, rc_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->concurrency = 64;
    o->size = 57;
    o->resp_size = 48;
    o->max_outstanding = 16;
    o->c.duration_s = 10;
    o->c.have_server = true; /* no --server: the relay is ours */
    int rc = bench_parse_args(CMD, argc, argv, long_opts, &o->c, rc_opt, o);
    if (rc)
        return rc;
    if (o->c.duration_s <= 0)
        return bench_usage_error(CMD, "--duration must be > 0");
    return 0;
}

/* Forks the relay and returns its client-side port (0 on failure). */
static uint16_t start_relay(rc_t *R, uint16_t device_port, int dev_fd)
{
    int fds[2];
    if (pipe(fds) < 0)
        return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        close(dev_fd);
        relay_child(fds[1], R->o.relay_cpu, device_port, R->o.answer ? R->o.resp_size : 0);
    }
    close(fds[1]);
    uint16_t ports[2] = {0, 0};
    if (pid < 0 || read(fds[0], ports, sizeof ports) != sizeof ports)
        ports[0] = 0;
    close(fds[0]);
    R->relay_pid = pid;
    return ports[0];
}

int bench_relay_ceiling_main(int argc, char **argv)
{
    rc_t *R = calloc(1, sizeof *R);
    int exit_code = BENCH_EXIT_FAIL;
    if (!R)
        return BENCH_EXIT_FAIL;
    int ex = bench_args_outcome(parse_opts(argc, argv, &R->o), usage);
    if (ex >= 0) {
        free(R);
        return ex;
    }
    tether_hist_init(&R->hist);
    bench_raise_nofile_to(R->o.concurrency + 64);
    /* The echo device's socket first (the relay needs its port), as a plain
     * socket: the relay is forked before this process touches libuv. */
    struct sockaddr_in any, relay_addr;
    uv_ip4_addr("127.0.0.1", 0, &any);
    int dev_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t alen = sizeof relay_addr;
    if (dev_fd < 0 || bind(dev_fd, (struct sockaddr *)&any, sizeof any) < 0 ||
        getsockname(dev_fd, (struct sockaddr *)&relay_addr, &alen) < 0)
        goto out;
    uint16_t relay_port = start_relay(R, ntohs(relay_addr.sin_port), dev_fd);
    if (!relay_port) {
        fprintf(stderr, "tether-bench %s: error: the relay did not start\n", CMD);
        goto out;
    }
    R->loop = uv_default_loop();
    uv_udp_init(R->loop, &R->device);
    R->device.data = R;
    if (uv_udp_open(&R->device, dev_fd) < 0)
        goto out;
    uv_ip4_addr("127.0.0.1", relay_port, &relay_addr);
    uv_udp_recv_start(&R->device, rc_alloc, on_device);
    if (!(R->cl = calloc(R->o.concurrency, sizeof *R->cl)))
        goto out;
    for (uint32_t k = 0; k < R->o.concurrency; k++) {
        rc_client_t *c = &R->cl[k];
        c->R = R;
        c->idx = k;
        uv_udp_init(R->loop, &c->udp);
        c->udp.data = c;
        if (uv_udp_bind(&c->udp, (struct sockaddr *)&any, 0) < 0 ||
            uv_udp_connect(&c->udp, (struct sockaddr *)&relay_addr) < 0)
            goto out;
        uv_udp_recv_start(&c->udp, rc_alloc, on_client);
    }
    bench_runner_init(&R->runner, R->loop, R->o.c.duration_s, rc_stop, R);
    uv_idle_init(R->loop, &R->pacer);
    uv_timer_init(R->loop, &R->sweep);
    R->pacer.data = R->sweep.data = R;
    uv_timer_start(&R->sweep, on_sweep, 100, 100);
    bench_runner_start(&R->runner);
    R->running = true;
    R->start_us = bench_now_us();
    uint32_t relay_pid = (uint32_t)R->relay_pid;
    bench_cpu_window_start(&R->relay_cpu, &relay_pid, 1);
    bench_pacer_start(&R->pace, R->start_us, R->o.rate);
    if (R->o.rate > 0)
        uv_idle_start(&R->pacer, on_pace);
    else
        for (uint32_t k = 0; k < R->o.concurrency; k++)
            client_send(&R->cl[k], bench_now_us());
    bench_runner_run(&R->runner);
    report(R);
    exit_code = 0;
out:
    if (R->relay_pid > 0) {
        kill(R->relay_pid, SIGTERM);
        waitpid(R->relay_pid, NULL, 0);
    }
    if (R->loop)
        uv_loop_close(R->loop);
    free(R->cl);
    free(R);
    return exit_code;
}
