/* tether-bench fanout-ceiling, inside: what its two processes share (the
 * datagrams' layout, the server's counters) and the server's entry
 * (fanout_srv.c); fanout.c is the driver. */
#ifndef BENCH_FANOUT_H
#define BENCH_FANOUT_H

#include <signal.h>
#include <stdint.h>

#define FAN_MAX_DGRAM 1500
#define FAN_HDR 9       /* in every datagram: type (1), device (4), sequence (4) */
#define FAN_MIN_SIZE 17 /* a fan-out datagram: the header and the observer's sequence */
#define FAN_MAX_DEVICES 256

enum { T_REGISTER = 'R', T_ACK = 'A', T_NOTIFY = 'N', T_FAN = 'F' };

/* The server's counters, in memory shared with the driver (MAP_SHARED):
 * the server writes, the driver reads. */
typedef struct {
    uint64_t in, sent, dropped, acks; /* notifications read; datagrams sent, refused; acks */
} fan_counters_t;

static inline void fan_ctr_add(uint64_t *c, uint64_t v)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline uint64_t fan_ctr_get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Set by fan_on_signal (SIGTERM in the server; SIGINT, SIGTERM in the
 * driver): each process's loop ends. */
extern volatile sig_atomic_t fan_stop;
void fan_on_signal(int sig);

/* The server child: pins itself to `cpu`, binds its socket on loopback,
 * writes its port (uint16_t) to `fd` and serves `ndev` devices and up to
 * `nobs` observers (k observing device k mod ndev), `size` bytes to each,
 * until SIGTERM. Never returns. */
void fan_server(int fd, int cpu, uint32_t ndev, uint32_t nobs, uint32_t size, fan_counters_t *ctr);

#endif
