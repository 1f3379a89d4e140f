/* tetherd UDP helpers: a transmit batch that leaves with one sendmmsg(2)
 * per socket, and socket buffer sizing. */
#ifndef TETHERD_UDP_H
#define TETHERD_UDP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "tether/addr.h"

/* One queued datagram: its bytes live in the batch's arena at `off`. */
typedef struct {
    uv_udp_t *sock; /* NULL once handled during a flush */
    tether_addr_t to;
    size_t off;
    size_t len;
} tetherd_txent_t;

typedef struct {
    uint64_t datagrams; /* handed to the kernel */
    uint64_t calls;     /* sendmmsg/sendmsg system calls that sent something */
    uint64_t dropped;   /* refused by the kernel (full buffer, unreachable, ...) */
} tetherd_txstats_t;

/* Outgoing datagrams in the order they were queued. Zero-initialise; the
 * arrays grow as needed and keep their size between flushes. */
typedef struct {
    tetherd_txent_t *ents;
    size_t n, cap;
    uint8_t *bytes;
    size_t used, bytes_cap;
    struct mmsghdr *msgs; /* scratch for one socket's sendmmsg */
    size_t msgs_cap;
    struct iovec *iov;
    size_t iov_cap;
    tetherd_txstats_t stats;
} tetherd_txq_t;

/* Queues a copy of data[len] for `to` on `sock`. When memory runs out the
 * datagram is sent at once instead, so it is never lost to the batch.
 * Returns 0, or TETHER_ENOMEM when it had to be sent unbatched. */
int tetherd_txq_push(tetherd_txq_t *q, uv_udp_t *sock, const tether_addr_t *to, const uint8_t *data,
                     size_t len);

/* Sends everything queued, with one sendmmsg(2) per socket (more only for
 * very large batches), in queue order per socket, then empties the queue.
 * After a full socket buffer (EAGAIN, ENOBUFS) each remaining datagram of
 * that socket gets its own uv_udp_try_send; after any other error only the
 * datagram the kernel refused is dropped. Drops are counted in q->stats and
 * logged at debug level. */
void tetherd_txq_flush(tetherd_txq_t *q);

/* Frees the arrays (queued datagrams are discarded). */
void tetherd_txq_free(tetherd_txq_t *q);

/* Asks for SO_RCVBUF / SO_SNDBUF of `rcv` / `snd` bytes on the socket
 * (0 leaves that one alone): first with SO_*BUFFORCE, which ignores
 * net.core.[rw]mem_max but needs CAP_NET_ADMIN, then with the capped
 * option. Writes the sizes the kernel reports afterwards (Linux counts
 * bookkeeping too and reports twice the request) to *eff_rcv, *eff_snd.
 * Returns 0, or TETHER_EINVAL when the handle has no socket yet. */
int tetherd_udp_set_buffers(uv_udp_t *sock, uint32_t rcv, uint32_t snd, int *eff_rcv, int *eff_snd);

/* The socket address of listener lc: a host with ':' is IPv6, "localhost"
 * is 127.0.0.1, anything else a numeric IPv4 address. 0, or TETHER_EINVAL. */
int tetherd_listen_sockaddr(const tetherd_listen_t *lc, struct sockaddr_storage *ss,
                            socklen_t *len);

#endif
