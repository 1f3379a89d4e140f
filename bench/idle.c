/* tether-bench idle: what an idle established device tunnel costs the
 * server (SPEC S9: <= 600 bytes each, measured at 100k and 1M open).
 *
 * Reads the server's resident memory (VmRSS of --pid), opens N DTLS PSK
 * tunnels (fleet identities P<first>.., server CID), waits until every one
 * is established and a settling time has passed, reads VmRSS again and
 * reports (after - before) / N. Each tunnel sends one CoAP ping once up,
 * as a device's keep-alive would (which also tells the server the
 * handshake's last flight arrived), and nothing more: the figure is the
 * DTLS session plus the demux tables. With --register each device instead
 * registers (POST /rd?ep=NAME&lt=3600 with the link-format payload every
 * simulated device sends, RFC 9176 §5.3), a CON retransmitted per RFC 7252
 * §4.2 until its 2.01: the figure then includes the registry entry.
 *
 * A million tunnels need a million source addresses, not a million
 * sockets (the open-file limit stopped the old one-socket-per-tunnel bench
 * at 19k): tunnel k talks from 127.1.0.0 + k / S, port of socket k % S,
 * over S unconnected sockets bound to the wildcard address. The source
 * address of each datagram is chosen with IP_PKTINFO (every 127/8 address
 * is local, so no IP_FREEBIND is needed), and the destination of each one
 * received (IP_PKTINFO again) names its tunnel. Only the handshakes in
 * flight (--max-handshakes) hold a wolfSSL object; an established tunnel
 * keeps nothing here, so the server's sessions stay open until it exits
 * (the suite starts a fresh server for each count). The server must be on
 * IPv4 loopback. */
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "dtls_client.h"
#include "peer.h"
#include "tether/coap.h"
#include "tether/creds.h"

#define CMD "idle"
#define IDLE_SRC_BASE 0x7f010000u /* 127.1.0.0: tunnels' source addresses from here */
#define IDLE_SRC_MAX (0x7fffff00u - IDLE_SRC_BASE)
#define IDLE_BATCH 64
#define IDLE_NONE UINT16_MAX

typedef struct {
    bench_common_opts_t c;
    uint32_t count, first, pid, settle_s, connect_timeout_s, sockets;
    char prefix[32];
    uint8_t master[64];
    size_t master_len;
    bench_dtls_cred_t single; /* --identity/--psk-hex: one identity for all */
    bool json, reg;
} idle_opts_t;

struct idle;

/* A handshake in flight: the only per-tunnel state that costs memory. */
typedef struct {
    struct idle *I;
    bench_dtls_t dtls;
    bench_dtls_cred_t cred;
    uint32_t tun;
    uint64_t deadline_ms; /* retransmission due */
    uint64_t giveup_ms;
    bool busy;
    bool registering;   /* --register: the POST is out, its 2.01 awaited */
    bench_con_t reg_rt; /* its retransmission (RFC 7252 §4.2) */
    uint16_t reg_mid;
    uint16_t reg_len;
    uint8_t reg[512]; /* the POST as sent, for retransmissions */
} idle_slot_t;

typedef struct {
    struct idle *I;
    int fd;
    uint16_t port; /* network order */
    uv_poll_t poll;
} idle_sock_t;

typedef struct idle {
    idle_opts_t o;
    uv_loop_t *loop;
    bench_dtls_ctx_t ctx;
    bench_runner_t runner;
    uv_timer_t settle, progress, tick;
    idle_sock_t *socks;
    idle_slot_t *slots;
    uint16_t *slot_of; /* per tunnel: its slot while handshaking, else IDLE_NONE */
    uint32_t next_tun; /* next tunnel to start */
    uint32_t up, inflight;
    uint64_t retries, tx_errors, reg_errors;
    uint16_t next_mid;
    int64_t rss_before, rss_after;
    uint64_t t0_us, t_up_us;
    bool measured, stopping;
    uint8_t rxbuf[IDLE_BATCH][BENCH_DTLS_MAX_DGRAM];
} idle_t;

int64_t bench_rss_bytes(uint32_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%u/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return TETHER_ENOTFOUND;
    int64_t kb = TETHER_EPROTO;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb < 0 ? kb : kb * 1024;
}

static uint32_t src_of(const idle_t *I, uint32_t tun)
{
    return IDLE_SRC_BASE + tun / I->o.sockets;
}

/* One datagram of tunnel `tun` to the server, from its own address. */
static void send_from(idle_t *I, uint32_t tun, const uint8_t *data, size_t len)
{
    idle_sock_t *sk = &I->socks[tun % I->o.sockets];
    struct iovec v = {.iov_base = (void *)data, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } cm;
    memset(&cm, 0, sizeof cm);
    struct msghdr m = {.msg_name = &I->o.c.server,
                       .msg_namelen = sizeof(struct sockaddr_in),
                       .msg_iov = &v,
                       .msg_iovlen = 1,
                       .msg_control = cm.buf,
                       .msg_controllen = sizeof cm.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo pi = {.ipi_spec_dst.s_addr = htonl(src_of(I, tun))};
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    if (sendmsg(sk->fd, &m, 0) < 0)
        I->tx_errors++;
}

static void dtls_out(void *user, const uint8_t *data, size_t len)
{
    idle_slot_t *sl = user;
    send_from(sl->I, sl->tun, data, len);
}

static void slot_arm(idle_slot_t *sl)
{
    int ms = bench_dtls_timeout_ms(&sl->dtls);
    sl->deadline_ms = ms < 0 ? UINT64_MAX : uv_now(sl->I->loop) + (uint64_t)ms;
}

static void slot_free(idle_slot_t *sl)
{
    idle_t *I = sl->I;
    bench_dtls_end(&sl->dtls, false);
    I->slot_of[sl->tun] = IDLE_NONE;
    sl->busy = false;
    I->inflight--;
}

/* Starts tunnel `tun`'s handshake in free slot `sl`. */
static void slot_start(idle_t *I, idle_slot_t *sl, uint32_t tun)
{
    char name[BENCH_DTLS_IDENTITY_MAX];
    uint8_t key[TETHER_DERIVED_PSK_LEN];
    sl->tun = tun;
    if (I->o.single.key_len)
        sl->cred = I->o.single;
    else {
        snprintf(name, sizeof name, "%s%u", I->o.prefix, I->o.first + tun);
        if (tether_creds_derive_psk(I->o.master, I->o.master_len, name, key) < 0 ||
            bench_dtls_cred_set(&sl->cred, name, key, sizeof key) < 0)
            return;
    }
    sl->busy = true;
    I->inflight++;
    I->slot_of[tun] = (uint16_t)(sl - I->slots);
    sl->giveup_ms = uv_now(I->loop) + BENCH_HANDSHAKE_GIVEUP_MS;
    if (bench_dtls_start(&sl->dtls, &I->ctx, &sl->cred, dtls_out, sl) < 0) {
        slot_free(sl);
        I->retries++;
        return;
    }
    slot_arm(sl);
}

/* Keeps --max-handshakes in flight while tunnels are left to open. */
static void fill(idle_t *I)
{
    for (uint32_t k = 0; k < I->o.c.max_handshakes && I->next_tun < I->o.count && !I->stopping; k++)
        if (!I->slots[k].busy)
            slot_start(I, &I->slots[k], I->next_tun++);
}

static void on_settled(uv_timer_t *t)
{
    idle_t *I = t->data;
    I->rss_after = bench_rss_bytes(I->o.pid);
    I->measured = true;
    bench_runner_stop(&I->runner);
}

static const char idle_links[] = BENCH_DEVICE_LINKS;

/* POST /rd?ep=NAME&lt=3600, link-format payload (RFC 9176 §5.3), as a CON. */
static void reg_send(idle_t *I, idle_slot_t *sl)
{
    tether_coap_msg_t m;
    char ep[80];
    uint8_t cf[4], tok[2] = {(uint8_t)(sl->tun >> 8), (uint8_t)sl->tun};
    size_t n = 0;
    sl->reg_mid = I->next_mid++;
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, sl->reg_mid);
    tether_coap_msg_set_token(&m, tok, sizeof tok);
    snprintf(ep, sizeof ep, "ep=%s", sl->cred.identity);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, "rd", 2);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_QUERY, ep, strlen(ep));
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_QUERY, "lt=3600", 7);
    tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_CONTENT_FORMAT, cf,
                            tether_coap_uint_encode(TETHER_COAP_CF_LINK_FORMAT, cf));
    m.payload = (const uint8_t *)idle_links;
    m.payload_len = sizeof idle_links - 1;
    if (tether_coap_encode(&m, sl->reg, sizeof sl->reg, &n) < 0)
        return;
    sl->reg_len = (uint16_t)n;
    sl->registering = true;
    bench_con_start(&sl->reg_rt, uv_now(I->loop));
    bench_dtls_write(&sl->dtls, sl->reg, sl->reg_len);
}

static void tunnel_done(idle_t *I, idle_slot_t *sl)
{
    sl->registering = false;
    slot_free(sl);
    if (++I->up == I->o.count) {
        I->t_up_us = bench_now_us();
        bench_log(CMD, "connected %u/%u in %.1f s; settling %u s", I->up, I->o.count,
                  (double)(I->t_up_us - I->t0_us) / 1e6, I->o.settle_s);
        uv_timer_start(&I->settle, on_settled, (uint64_t)I->o.settle_s * 1000, 0);
    }
}

static void tunnel_up(idle_t *I, idle_slot_t *sl)
{
    if (I->o.reg) {
        reg_send(I, sl);
        return;
    }
    /* CoAP ping: an empty CON (RFC 7252 §4.3); the server answers RST. */
    const uint8_t ping[4] = {0x40, 0x00, (uint8_t)(sl->tun >> 8), (uint8_t)sl->tun};
    bench_dtls_write(&sl->dtls, ping, sizeof ping);
    tunnel_done(I, sl);
}

/* --register: the records of an established tunnel; its 2.01 ends it. */
static void reg_input(idle_t *I, idle_slot_t *sl)
{
    const uint8_t *data;
    size_t len;
    while (sl->registering && bench_dtls_read(&sl->dtls, &data, &len)) {
        tether_coap_msg_t m;
        tether_coap_perr_t perr;
        if (tether_coap_parse(&m, data, len, &perr) < 0 || m.mid != sl->reg_mid ||
            m.type != TETHER_COAP_ACK)
            continue; /* /rd answers piggybacked */
        if (m.code == TETHER_COAP_CREATED || m.code == TETHER_COAP_CHANGED) {
            tunnel_done(I, sl);
            return;
        }
        if (m.code != TETHER_COAP_EMPTY && I->reg_errors++ == 0)
            bench_log(CMD, "registration of %s answered %u.%02u", sl->cred.identity,
                      (unsigned)(m.code >> 5), (unsigned)(m.code & 31));
    }
}

static void on_datagram(idle_t *I, uint32_t sock, uint32_t dst, const uint8_t *b, size_t n)
{
    if (dst < IDLE_SRC_BASE)
        return;
    uint64_t tun = (uint64_t)(dst - IDLE_SRC_BASE) * I->o.sockets + sock;
    if (tun >= I->o.count || I->slot_of[tun] == IDLE_NONE)
        return; /* established (the ping's RST) or never started */
    idle_slot_t *sl = &I->slots[I->slot_of[tun]];
    int rc = bench_dtls_input(&sl->dtls, b, n);
    if (rc == 0 && sl->registering)
        reg_input(I, sl);
    else if (rc == 1)
        tunnel_up(I, sl);
    else if (rc < 0) { /* failed: try again from a fresh handshake */
        uint32_t t = sl->tun;
        slot_free(sl);
        I->retries++;
        slot_start(I, sl, t);
    } else
        slot_arm(sl);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    idle_sock_t *sk = h->data;
    idle_t *I = sk->I;
    if (status < 0 || !(events & UV_READABLE))
        return;
    struct mmsghdr mm[IDLE_BATCH];
    struct iovec v[IDLE_BATCH];
    union {
        char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } cm[IDLE_BATCH];
    for (int round = 0; round < 16; round++) {
        for (int i = 0; i < IDLE_BATCH; i++) {
            v[i] = (struct iovec){.iov_base = I->rxbuf[i], .iov_len = sizeof I->rxbuf[i]};
            mm[i].msg_hdr = (struct msghdr){.msg_iov = &v[i],
                                            .msg_iovlen = 1,
                                            .msg_control = cm[i].buf,
                                            .msg_controllen = sizeof cm[i].buf};
        }
        int got = recvmmsg(sk->fd, mm, IDLE_BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0)
            break;
        for (int i = 0; i < got; i++)
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&mm[i].msg_hdr); c;
                 c = CMSG_NXTHDR(&mm[i].msg_hdr, c))
                if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                    struct in_pktinfo pi;
                    memcpy(&pi, CMSG_DATA(c), sizeof pi);
                    on_datagram(I, (uint32_t)(sk - I->socks), ntohl(pi.ipi_addr.s_addr),
                                I->rxbuf[i], mm[i].msg_len);
                }
        if (got < IDLE_BATCH)
            break;
    }
    fill(I);
}

/* Retransmissions and give-ups of the handshakes in flight. */
static void on_tick(uv_timer_t *t)
{
    idle_t *I = t->data;
    uint64_t now = uv_now(I->loop);
    for (uint32_t k = 0; k < I->o.c.max_handshakes; k++) {
        idle_slot_t *sl = &I->slots[k];
        if (!sl->busy)
            continue;
        if (sl->registering) { /* RFC 7252 §4.2, then a fresh handshake */
            if (now < sl->reg_rt.deadline_ms)
                continue;
            if (bench_con_retry(&sl->reg_rt, now)) {
                bench_dtls_write(&sl->dtls, sl->reg, sl->reg_len);
                continue;
            }
            sl->registering = false;
            uint32_t tun = sl->tun;
            slot_free(sl);
            I->retries++;
            slot_start(I, sl, tun);
            continue;
        }
        if (now >= sl->giveup_ms || (now >= sl->deadline_ms && bench_dtls_timeout(&sl->dtls) < 0)) {
            uint32_t tun = sl->tun;
            slot_free(sl);
            I->retries++;
            slot_start(I, sl, tun);
        } else if (now >= sl->deadline_ms)
            slot_arm(sl);
    }
    fill(I);
}

static void on_progress(uv_timer_t *t)
{
    idle_t *I = t->data;
    if (uv_now(I->loop) >= (uint64_t)I->o.connect_timeout_s * 1000 + I->t0_us / 1000 &&
        I->up < I->o.count && !I->measured) {
        bench_log(CMD, "error: only %u/%u tunnels up after %u s", I->up, I->o.count,
                  I->o.connect_timeout_s);
        bench_runner_stop(&I->runner);
        return;
    }
    if (I->up < I->o.count)
        bench_log(CMD, "connected %u/%u (retries %llu)", I->up, I->o.count,
                  (unsigned long long)I->retries);
}

static void idle_stop(void *user)
{
    idle_t *I = user;
    I->stopping = true;
    uv_close((uv_handle_t *)&I->settle, NULL);
    uv_close((uv_handle_t *)&I->progress, NULL);
    uv_close((uv_handle_t *)&I->tick, NULL);
    for (uint32_t k = 0; k < I->o.c.max_handshakes; k++)
        if (I->slots[k].busy)
            slot_free(&I->slots[k]);
    for (uint32_t k = 0; k < I->o.sockets; k++)
        uv_close((uv_handle_t *)&I->socks[k].poll, NULL);
}

static void report(idle_t *I)
{
    double hs_s = (double)(I->t_up_us - I->t0_us) / 1e6;
    double per = (double)(I->rss_after - I->rss_before) / I->o.count;
    if (I->o.json) {
        json_t *o = json_pack("{s:i, s:I, s:I, s:f, s:f, s:f, s:s, s:I}", "count", (int)I->o.count,
                              "rss_before", (json_int_t)I->rss_before, "rss_after",
                              (json_int_t)I->rss_after, "bytes_per_tunnel", per, "connect_s", hs_s,
                              "handshakes_per_s", hs_s > 0 ? I->o.count / hs_s : 0.0, "tunnels",
                              I->o.reg ? "established, registered, idle"
                                       : "established, unregistered, idle",
                              "retries", (json_int_t)I->retries);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
        return;
    }
    printf("tunnels     %u established (%s, idle) in %.1f s (%llu retries)\n", I->o.count,
           I->o.reg ? "registered" : "unregistered", hs_s, (unsigned long long)I->retries);
    printf("server rss  %.1f MiB before, %.1f MiB after\n", I->rss_before / 1048576.0,
           I->rss_after / 1048576.0);
    printf("per tunnel  %.0f bytes\n", per);
}

/* S unconnected sockets on the wildcard address, each told the
 * destination address of what it receives. */
static int open_sockets(idle_t *I)
{
    for (uint32_t k = 0; k < I->o.sockets; k++) {
        idle_sock_t *sk = &I->socks[k];
        int one = 1, big = 8 << 20;
        sk->I = I;
        sk->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_in any = {.sin_family = AF_INET};
        socklen_t len = sizeof any;
        if (sk->fd < 0 || setsockopt(sk->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0 ||
            bind(sk->fd, (struct sockaddr *)&any, sizeof any) < 0 ||
            getsockname(sk->fd, (struct sockaddr *)&any, &len) < 0) {
            fprintf(stderr, "tether-bench %s: error: socket: %s\n", CMD, strerror(errno));
            return TETHER_EIO;
        }
        (void)setsockopt(sk->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        (void)setsockopt(sk->fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        sk->port = any.sin_port;
        uv_poll_init_socket(I->loop, &sk->poll, sk->fd);
        sk->poll.data = sk;
        uv_poll_start(&sk->poll, UV_READABLE, on_readable);
    }
    return 0;
}

/* ---- options ---------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tether-bench idle --server HOST:PORT --count N --pid PID --psk-master HEX\n"
               "                         [options]\n"
               "Opens N idle DTLS PSK tunnels and reports the server's resident memory per\n"
               "tunnel: (VmRSS after - VmRSS before) / N. The server must run on this machine.\n\n"
               "  --server HOST:PORT    DTLS listener (required)\n"
               "  --count N             tunnels (required)\n"
               "  --pid PID             the server's process id (required)\n"
               "  --psk-master HEX      fleet master key (required unless --identity)\n"
               "  --identity ID         one PSK identity for every tunnel instead\n"
               "  --psk-hex KEY         its key in hex\n"
               "  --identity-prefix P   names P<k> (default dev)\n"
               "  --first K             first number (default 0)\n"
               "  --settle S            wait after the last handshake (default 2)\n"
               "  --connect-timeout S   give up when not all are up (default 600)\n"
               "  --max-handshakes N    handshakes in flight (default 64, at most 65535)\n"
               "  --sockets S           UDP sockets the tunnels share (default 16); tunnel k\n"
               "                        sends from 127.1.0.0 + k/S: the server must be on\n"
               "                        127.0.0.0/8\n"
               "  --register            each device registers (POST /rd, lifetime 3600 s)\n"
               "  --json                one JSON object\n");
}

enum {
    O_COUNT = BENCH_OPT_FIRST_OWN,
    O_PID,
    O_MASTER,
    O_PREFIX,
    O_FIRST,
    O_SETTLE,
    O_CTO,
    O_JSON,
    O_IDENTITY,
    O_PSK,
    O_SOCKETS,
    O_REGISTER,
};

static const struct option long_opts[] = {
    BENCH_COMMON_LONG_OPTS,
    {"count", required_argument, NULL, O_COUNT},
    {"pid", required_argument, NULL, O_PID},
    {"psk-master", required_argument, NULL, O_MASTER},
    {"identity-prefix", required_argument, NULL, O_PREFIX},
    {"first", required_argument, NULL, O_FIRST},
    {"settle", required_argument, NULL, O_SETTLE},
    {"connect-timeout", required_argument, NULL, O_CTO},
    {"json", no_argument, NULL, O_JSON},
    {"identity", required_argument, NULL, O_IDENTITY},
    {"psk-hex", required_argument, NULL, O_PSK},
    {"sockets", required_argument, NULL, O_SOCKETS},
    {"register", no_argument, NULL, O_REGISTER},
    {NULL, 0, NULL, 0},
};

static int idle_opt(void *ctx, int opt, const char *arg)
{
    idle_opts_t *o = ctx;
    uint32_t *num = NULL;
    const char *what = NULL;
    switch (opt) {
    case O_COUNT: num = &o->count, what = "--count"; break;
    case O_PID: num = &o->pid, what = "--pid"; break;
    case O_FIRST: num = &o->first, what = "--first"; break;
    case O_SETTLE: num = &o->settle_s, what = "--settle"; break;
    case O_CTO: num = &o->connect_timeout_s, what = "--connect-timeout"; break;
    case O_SOCKETS: num = &o->sockets, what = "--sockets"; break;
    case O_MASTER:
        if (tether_creds_key_from_hex(arg, o->master, sizeof o->master, &o->master_len) < 0)
            return bench_usage_error(CMD, "--psk-master wants 1..64 bytes of hex");
        return 0;
    case O_PREFIX:
        if (!*arg || strlen(arg) >= sizeof o->prefix)
            return bench_usage_error(CMD, "--identity-prefix must be 1..%zu characters",
                                     sizeof o->prefix - 1);
        strcpy(o->prefix, arg);
        return 0;
    case O_JSON: o->json = true; return 0;
    case O_REGISTER: o->reg = true; return 0;
    case O_IDENTITY:
        if (bench_dtls_cred_set(&o->single, arg, NULL, 0) < 0)
            return bench_usage_error(CMD, "--identity must be 1..%d characters",
                                     BENCH_DTLS_IDENTITY_MAX - 1);
        return 0;
    case O_PSK:
        if (tether_creds_key_from_hex(arg, o->single.key, sizeof o->single.key,
                                      &o->single.key_len) < 0)
            return bench_usage_error(CMD, "--psk-hex wants 1..64 bytes of hex");
        return 0;
    default: return 0;
    }
    if (bench_parse_u32(arg, opt == O_SETTLE || opt == O_FIRST ? 0 : 1, 100000000, num) < 0)
        return bench_usage_error(CMD, "%s wants a number, got '%s'", what, arg);
    return 0;
}

static int parse_opts(int argc, char **argv, idle_opts_t *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->prefix, "dev");
    o->settle_s = 2;
    o->connect_timeout_s = 600;
    o->sockets = 16;
    o->c.max_handshakes = 64; /* more overflows a server socket's default buffer */
    int rc = bench_parse_args(CMD, argc, argv, long_opts, &o->c, idle_opt, o);
    if (rc)
        return rc;
    if (!o->count)
        return bench_usage_error(CMD, "--count N is required");
    if (!o->pid)
        return bench_usage_error(CMD, "--pid PID is required");
    if (!o->master_len && !(o->single.identity[0] && o->single.key_len))
        return bench_usage_error(CMD, "--psk-master HEX (or --identity and --psk-hex) is required");
    const struct sockaddr_in *sv = (const struct sockaddr_in *)&o->c.server;
    if (sv->sin_family != AF_INET || (ntohl(sv->sin_addr.s_addr) >> 24) != 127)
        return bench_usage_error(CMD, "--server must be on 127.0.0.0/8 (tunnels send from "
                                      "127.1.0.0 and up)");
    if (o->c.max_handshakes >= IDLE_NONE)
        return bench_usage_error(CMD, "--max-handshakes wants at most %u", IDLE_NONE - 1);
    if (o->sockets > 1024 || (uint64_t)o->count > (uint64_t)IDLE_SRC_MAX * o->sockets)
        return bench_usage_error(CMD, "--sockets wants 1..1024, enough for --count addresses");
    return 0;
}

int bench_idle_main(int argc, char **argv)
{
    idle_t *I = calloc(1, sizeof *I);
    int exit_code = BENCH_EXIT_FAIL;
    if (!I)
        return BENCH_EXIT_FAIL;
    int ex = bench_args_outcome(parse_opts(argc, argv, &I->o), usage);
    if (ex >= 0) {
        free(I);
        return ex;
    }
    if ((I->rss_before = bench_rss_bytes(I->o.pid)) < 0) {
        fprintf(stderr, "tether-bench %s: error: cannot read /proc/%u/status\n", CMD, I->o.pid);
        free(I);
        return BENCH_EXIT_FAIL;
    }
    I->loop = uv_default_loop();
    if (bench_dtls_ctx_init(&I->ctx, I->o.c.dtls13) < 0 ||
        (I->o.c.cipher && bench_dtls_ctx_set_suites(&I->ctx, I->o.c.cipher) < 0)) {
        fprintf(stderr, "tether-bench %s: error: DTLS setup failed\n", CMD);
        goto cleanup;
    }
    if (!(I->socks = calloc(I->o.sockets, sizeof *I->socks)) ||
        !(I->slots = calloc(I->o.c.max_handshakes, sizeof *I->slots)) ||
        !(I->slot_of = malloc((size_t)I->o.count * sizeof *I->slot_of)))
        goto cleanup;
    memset(I->slot_of, 0xff, (size_t)I->o.count * sizeof *I->slot_of);
    for (uint32_t k = 0; k < I->o.c.max_handshakes; k++)
        I->slots[k].I = I;
    for (uint32_t k = 0; k < I->o.sockets; k++)
        I->socks[k].fd = -1;
    if (open_sockets(I) < 0)
        goto cleanup;
    bench_runner_init(&I->runner, I->loop, 0, idle_stop, I);
    uv_timer_init(I->loop, &I->settle);
    uv_timer_init(I->loop, &I->progress);
    uv_timer_init(I->loop, &I->tick);
    I->settle.data = I->progress.data = I->tick.data = I;
    uv_timer_start(&I->progress, on_progress, 5000, 5000);
    uv_timer_start(&I->tick, on_tick, 10, 10);
    I->t0_us = bench_now_us();
    fill(I);
    bench_runner_run(&I->runner);
    if (I->measured) {
        report(I);
        exit_code = 0;
    }
cleanup:
    for (uint32_t k = 0; I->socks && k < I->o.sockets; k++)
        if (I->socks[k].fd >= 0)
            close(I->socks[k].fd);
    free(I->socks);
    free(I->slots);
    free(I->slot_of);
    bench_dtls_ctx_free(&I->ctx);
    uv_loop_close(I->loop);
    free(I);
    return exit_code;
}
