/* tetherd UDP helpers: batched transmission with sendmmsg(2), socket
 * buffer sizing. Linux only, like the rest of tetherd's deployment. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tether/common.h"
#include "tether/log.h"
#include "udp.h"

/* Datagrams per sendmmsg call (the kernel's limit is UIO_MAXIOV, 1024). */
#define TXQ_VLEN 256

/* Makes room for `need` items of `size` bytes in *arr (capacity *cap,
 * doubling). Returns 0 or TETHER_ENOMEM (the array is then unchanged). */
static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, c * size);
    if (!p)
        return TETHER_ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

/* Counts and logs (debug) one datagram the kernel refused; `err` is a
 * libuv error (negative errno on Linux). */
static void dropped(tetherd_txq_t *q, int err)
{
    q->stats.dropped++;
    if (tether_log_enabled(TETHER_LOG_DEBUG))
        tether_log_kv(TETHER_LOG_DEBUG, "udp", "send failed", "error", uv_strerror(err), NULL);
}

/* One datagram with its own system call, as tetherd sent everything before
 * batching; failures are dropped and counted. */
static void send_one(tetherd_txq_t *q, uv_udp_t *sock, const struct msghdr *h)
{
    uv_buf_t b = uv_buf_init(h->msg_iov->iov_base, (unsigned)h->msg_iov->iov_len);
    int rc = uv_udp_try_send(sock, &b, 1, h->msg_name);
    if (rc < 0) {
        dropped(q, rc);
        return;
    }
    q->stats.calls++;
    q->stats.datagrams++;
}

int tetherd_txq_push(tetherd_txq_t *q, uv_udp_t *sock, const tether_addr_t *to, const uint8_t *data,
                     size_t len)
{
    if (grow((void **)&q->ents, &q->cap, q->n + 1, sizeof *q->ents) < 0 ||
        grow((void **)&q->msgs, &q->msgs_cap, q->n + 1, sizeof *q->msgs) < 0 ||
        grow((void **)&q->iov, &q->iov_cap, q->n + 1, sizeof *q->iov) < 0 ||
        grow((void **)&q->bytes, &q->bytes_cap, q->used + len, 1) < 0) {
        struct iovec v = {.iov_base = (void *)data, .iov_len = len};
        struct msghdr h = {
            .msg_name = (void *)&to->ss, .msg_namelen = to->len, .msg_iov = &v, .msg_iovlen = 1};
        send_one(q, sock, &h);
        return TETHER_ENOMEM;
    }
    tetherd_txent_t *e = &q->ents[q->n++];
    e->sock = sock;
    e->to = *to;
    e->off = q->used;
    e->len = len;
    memcpy(q->bytes + q->used, data, len);
    q->used += len;
    return 0;
}

/* Sends q->msgs[0..m) on `sock`: sendmmsg until done; after EAGAIN or
 * ENOBUFS the rest go one by one (send_one); any other error drops only
 * the datagram it is about (sendmmsg stops there) and goes on. */
static void send_batch(tetherd_txq_t *q, uv_udp_t *sock, size_t m)
{
    uv_os_fd_t fd;
    size_t i = 0;
    if (uv_fileno((const uv_handle_t *)sock, &fd) == 0) {
        while (i < m) {
            unsigned vlen = (unsigned)(m - i < TXQ_VLEN ? m - i : TXQ_VLEN);
            int r = sendmmsg(fd, q->msgs + i, vlen, 0);
            if (r > 0) {
                i += (size_t)r;
                q->stats.calls++;
                q->stats.datagrams += (uint64_t)r;
                continue;
            }
            int err = r < 0 ? errno : EIO;
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
                break;
            dropped(q, -err);
            i++;
        }
    }
    for (; i < m; i++)
        send_one(q, sock, &q->msgs[i].msg_hdr);
}

void tetherd_txq_flush(tetherd_txq_t *q)
{
    for (size_t first = 0; first < q->n; first++) {
        uv_udp_t *sock = q->ents[first].sock;
        if (!sock)
            continue; /* went out with an earlier socket's batch */
        size_t m = 0;
        for (size_t i = first; i < q->n; i++) {
            tetherd_txent_t *e = &q->ents[i];
            if (e->sock != sock)
                continue;
            q->iov[m] = (struct iovec){.iov_base = q->bytes + e->off, .iov_len = e->len};
            q->msgs[m] = (struct mmsghdr){.msg_hdr = {.msg_name = &e->to.ss,
                                                      .msg_namelen = e->to.len,
                                                      .msg_iov = &q->iov[m],
                                                      .msg_iovlen = 1}};
            e->sock = NULL;
            m++;
        }
        send_batch(q, sock, m);
    }
    q->n = 0;
    q->used = 0;
}

void tetherd_txq_free(tetherd_txq_t *q)
{
    free(q->ents);
    free(q->msgs);
    free(q->iov);
    free(q->bytes);
    memset(q, 0, sizeof *q);
}

/* Sets one buffer size (`force` first, then `opt`) and reads it back. */
static int set_size(int fd, int force, int opt, uint32_t want)
{
    if (want > 0) {
        int v = want > INT32_MAX / 2 ? INT32_MAX / 2 : (int)want;
        if (force < 0 || setsockopt(fd, SOL_SOCKET, force, &v, sizeof v) != 0)
            (void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v); /* capped by the kernel */
    }
    int eff = 0;
    socklen_t len = sizeof eff;
    if (getsockopt(fd, SOL_SOCKET, opt, &eff, &len) != 0)
        eff = 0;
    return eff;
}

int tetherd_udp_set_buffers(uv_udp_t *sock, uint32_t rcv, uint32_t snd, int *eff_rcv, int *eff_snd)
{
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)sock, &fd) != 0)
        return TETHER_EINVAL;
#ifdef SO_RCVBUFFORCE
    *eff_rcv = set_size(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcv);
    *eff_snd = set_size(fd, SO_SNDBUFFORCE, SO_SNDBUF, snd);
#else
    *eff_rcv = set_size(fd, -1, SO_RCVBUF, rcv);
    *eff_snd = set_size(fd, -1, SO_SNDBUF, snd);
#endif
    return 0;
}

int tetherd_listen_sockaddr(const tetherd_listen_t *lc, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    bool v6 = strchr(lc->host, ':') != NULL;
    int rc = v6 ? uv_ip6_addr(lc->host, lc->port, (struct sockaddr_in6 *)ss)
                : uv_ip4_addr(strcmp(lc->host, "localhost") == 0 ? "127.0.0.1" : lc->host, lc->port,
                              (struct sockaddr_in *)ss);
    *len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    return rc < 0 ? TETHER_EINVAL : 0;
}
