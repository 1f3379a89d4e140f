/* tether-bench fanout-ceiling: the server, a child process on the server
 * core (fanout.h; the whole design is described in fanout.c). Per datagram
 * read: the sender found by a hash lookup on its address; per observer of
 * a notification's device: the observer found by a hash lookup on its
 * 64-bit id, a datagram of tether's record size with its own sequence
 * number queued; each read's output leaves with sendmmsg. */
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "fanout.h"
#include "tether/addr.h"
#include "tether/container.h"
#include "tether/hmap.h"

#define FAN_RX_BATCH 8        /* notifications per read: 8 x 125 observers fill one sendmmsg */
#define FAN_TX_BATCH 1024     /* datagrams per sendmmsg: UIO_MAXIOV */
#define FAN_SOCKBUF (4 << 20) /* tetherd's udp.recv_buffer / send_buffer default */

typedef struct {
    tether_hnode_t by_addr, by_id;
    struct sockaddr_in addr;
    uint64_t id, rec_seq; /* observers: id in by_id, the next record's sequence */
    uint32_t device;      /* the device it is, or observes */
    bool is_device;
} fan_peer_t;

typedef struct {
    uint64_t *obs; /* observer ids */
    uint32_t nobs;
    bool claimed; /* a peer sends as this device */
} fan_device_t;

typedef struct {
    int fd;
    uint32_t size, ndev, obs_cap; /* fan-out datagram bytes; observers per device */
    tether_hmap_t by_addr, by_id;
    fan_peer_t *peers;
    uint32_t npeers, cap;
    uint64_t next_id;
    fan_device_t dev[FAN_MAX_DEVICES];
    fan_counters_t *ctr;
    struct mmsghdr rmsg[FAN_RX_BATCH];
    struct iovec riov[FAN_RX_BATCH];
    struct sockaddr_in raddr[FAN_RX_BATCH];
    uint8_t rbuf[FAN_RX_BATCH][FAN_MAX_DGRAM];
    struct mmsghdr tmsg[FAN_TX_BATCH];
    struct iovec tiov[FAN_TX_BATCH];
    struct sockaddr_in taddr[FAN_TX_BATCH];
    uint8_t *tbytes; /* FAN_TX_BATCH datagrams of `size` bytes, packed */
    uint32_t ntx;
} fan_srv_t;

volatile sig_atomic_t fan_stop;

void fan_on_signal(int sig)
{
    (void)sig;
    fan_stop = 1;
}

static void srv_flush(fan_srv_t *s)
{
    uint32_t sent = bench_sendmmsg_all(s->fd, s->tmsg, s->ntx);
    fan_ctr_add(&s->ctr->sent, sent);
    fan_ctr_add(&s->ctr->dropped, s->ntx - sent);
    s->ntx = 0;
}

/* The next transmit slot, to `to`, `len` bytes long (a full batch leaves
 * first). */
static uint8_t *srv_slot(fan_srv_t *s, const struct sockaddr_in *to, size_t len)
{
    if (s->ntx == FAN_TX_BATCH)
        srv_flush(s);
    uint32_t k = s->ntx++;
    s->tiov[k].iov_len = len;
    s->taddr[k] = *to;
    return s->tiov[k].iov_base;
}

/* One notification to every observer of its device. */
static void srv_fanout(fan_srv_t *s, const fan_device_t *d, const uint8_t *b, size_t n)
{
    for (uint32_t i = 0; i < d->nobs; i++) {
        tether_hnode_t *h = tether_hmap_find(&s->by_id, &d->obs[i], sizeof d->obs[i]);
        if (!h)
            continue;
        fan_peer_t *o = container_of(h, fan_peer_t, by_id);
        uint8_t *out = srv_slot(s, &o->addr, s->size);
        memcpy(out, b, n < s->size ? n : s->size);
        out[0] = T_FAN;
        memcpy(out + FAN_HDR, &o->rec_seq, sizeof o->rec_seq);
        o->rec_seq++;
    }
}

/* A new peer at `from` (key/kl its address key): a device's first
 * notification or an observer's registration. NULL: not taken. */
static fan_peer_t *srv_learn(fan_srv_t *s, const uint8_t *b, const struct sockaddr_in *from,
                             const uint8_t *key, size_t kl)
{
    uint32_t dev;
    memcpy(&dev, b + 1, 4);
    if (dev >= s->ndev || s->npeers == s->cap || (b[0] != T_NOTIFY && b[0] != T_REGISTER))
        return NULL;
    fan_device_t *d = &s->dev[dev];
    if (b[0] == T_NOTIFY ? d->claimed : d->nobs == s->obs_cap)
        return NULL;
    fan_peer_t *p = &s->peers[s->npeers++];
    p->addr = *from;
    p->device = dev;
    p->is_device = b[0] == T_NOTIFY;
    tether_hmap_insert(&s->by_addr, &p->by_addr, key, kl);
    if (p->is_device) {
        d->claimed = true;
    } else {
        p->id = s->next_id++;
        tether_hmap_insert(&s->by_id, &p->by_id, &p->id, sizeof p->id);
        d->obs[d->nobs++] = p->id;
    }
    return p;
}

static void srv_input(fan_srv_t *s, const uint8_t *b, size_t n, const struct sockaddr_in *from)
{
    if (n < FAN_HDR || from->sin_family != AF_INET)
        return;
    tether_addr_t a = {.len = sizeof(struct sockaddr_in)};
    memcpy(&a.ss, from, a.len);
    uint8_t key[TETHER_HKEY_MAX];
    size_t kl = tether_addr_key(&a, key);
    tether_hnode_t *h = tether_hmap_find(&s->by_addr, key, kl);
    fan_peer_t *p = h ? container_of(h, fan_peer_t, by_addr) : srv_learn(s, b, from, key, kl);
    if (!p)
        return;
    if (b[0] == T_NOTIFY && p->is_device) {
        fan_ctr_add(&s->ctr->in, 1);
        srv_fanout(s, &s->dev[p->device], b, n);
    } else if (b[0] == T_REGISTER && !p->is_device) { /* (again: the ack was lost) */
        uint8_t *out = srv_slot(s, &p->addr, FAN_HDR);
        memcpy(out, b, FAN_HDR);
        out[0] = T_ACK;
        fan_ctr_add(&s->ctr->acks, 1);
    }
}

/* Reads the socket until it is empty, FAN_RX_BATCH datagrams per
 * recvmmsg, each read's output leaving with sendmmsg. */
static void srv_drain(fan_srv_t *s)
{
    for (;;) {
        for (uint32_t i = 0; i < FAN_RX_BATCH; i++) {
            s->riov[i].iov_len = sizeof s->rbuf[i];
            s->rmsg[i].msg_hdr.msg_namelen = sizeof s->raddr[i];
        }
        int n = recvmmsg(s->fd, s->rmsg, FAN_RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++)
            if (!(s->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC))
                srv_input(s, s->rbuf[i], s->rmsg[i].msg_len, &s->raddr[i]);
        srv_flush(s);
        if (n < FAN_RX_BATCH)
            return;
    }
}

static void msgs_init(struct mmsghdr *m, struct iovec *iov, struct sockaddr_in *addr,
                      uint8_t *bytes, size_t stride, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        iov[i] = (struct iovec){.iov_base = bytes + i * stride, .iov_len = stride};
        m[i].msg_hdr = (struct msghdr){.msg_name = &addr[i],
                                       .msg_namelen = sizeof addr[i],
                                       .msg_iov = &iov[i],
                                       .msg_iovlen = 1};
    }
}

void fan_server(int fd, int cpu, uint32_t ndev, uint32_t nobs, uint32_t size, fan_counters_t *ctr)
{
    bench_pin_cpu(cpu);
    static fan_srv_t s;
    s.size = size;
    s.ndev = ndev;
    s.obs_cap = (nobs + ndev - 1) / ndev;
    s.cap = nobs + ndev;
    s.next_id = 0x100000001ull; /* ids as tetherd's session ids: 64-bit keys */
    s.ctr = ctr;
    s.peers = calloc(s.cap, sizeof *s.peers);
    s.tbytes = calloc(FAN_TX_BATCH, size);
    if (!s.peers || !s.tbytes || tether_hmap_init(&s.by_addr, 1024, 0x5eed) < 0 ||
        tether_hmap_init(&s.by_id, 1024, 0xfa11) < 0)
        _exit(1);
    for (uint32_t d = 0; d < ndev; d++)
        if (!(s.dev[d].obs = calloc(s.obs_cap, sizeof *s.dev[d].obs)))
            _exit(1);
    msgs_init(s.rmsg, s.riov, s.raddr, &s.rbuf[0][0], FAN_MAX_DGRAM, FAN_RX_BATCH);
    msgs_init(s.tmsg, s.tiov, s.taddr, s.tbytes, size, FAN_TX_BATCH);
    uint16_t port;
    s.fd = bench_udp_socket(FAN_SOCKBUF, &port);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (s.fd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev) < 0)
        _exit(1);
    struct sigaction sa = {.sa_handler = fan_on_signal}; /* no SA_RESTART: epoll_wait returns */
    sigaction(SIGTERM, &sa, NULL);
    if (write(fd, &port, sizeof port) != sizeof port)
        _exit(1);
    close(fd);
    while (!fan_stop)
        if (epoll_wait(ep, &ev, 1, -1) == 1)
            srv_drain(&s);
    _exit(0);
}
