/* tetherd — the reuseport steering program of the workers of one host
 * (SPEC S5: "a reuseport BPF program steers a CID record to the worker
 * named by its node byte, so no record is forwarded inside a host").
 *
 * The workers' sockets for one listener form one SO_REUSEPORT group; the
 * kernel runs the group's classic BPF program (SO_ATTACH_REUSEPORT_CBPF,
 * no privilege needed) on each datagram with the data starting at the
 * UDP payload, and delivers it to the socket at the index the program
 * returns. The index is the socket's position in the group: the order in
 * which the sockets were bound (net/core/sock_reuseport.c). A socket that
 * leaves the group is replaced in its slot by the last one, so the slots
 * hold only while every socket stays: the supervisor (workers.h) keeps
 * every worker's socket open for the whole life of tetherd, and a
 * restarted worker takes over the same socket, hence the same slot.
 *
 * The program reads what tether_cluster_cid_node (tether/cluster.h) reads:
 *   DTLS 1.2 tls12_cid record (RFC 9146 §4): content type 25, version (2),
 *     epoch (2), sequence number (6), then the CID: node byte at offset 11
 *     (the record must be at least 13 bytes, as the library demands);
 *   DTLS 1.3 unified header (RFC 9147 §4): first byte 001CSLEE with the C
 *     bit (0x10) set, then the CID: node byte at offset 1.
 * A node byte of base .. base + workers - 1 returns index byte - base;
 * anything else (no CID, a short record, a node byte of another host)
 * returns an index past the group, and the kernel then picks by its hash
 * of the 4-tuple (source address and port): a handshake's flights, which
 * carry no CID, all reach one worker. A mis-steered record (a group whose
 * slots no longer match the workers, another host's CID) is not lost: the
 * worker that gets it forwards it to its owner over the cluster channel
 * like any node (cluster.forwarded_records counts it).
 *
 * Loads past the end of a datagram would make a classic BPF program
 * return 0 (worker 0): every load is guarded by a length check first.
 * A sender picks the worker its datagrams reach by the byte it writes
 * (as it could by its source port under the hash): that is no privilege,
 * since the worker still authenticates every record (an unknown CID is
 * dropped), and a flood aimed at one worker is bounded there like a flood
 * aimed at one node. */
#ifndef TETHERD_WORKERS_STEER_H
#define TETHERD_WORKERS_STEER_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

/* Instructions the program takes at most. */
#define TETHERD_STEER_MAX_INSNS 20

/* Writes the program for workers whose node ids are base .. base + n - 1
 * into prog[TETHERD_STEER_MAX_INSNS]. Returns the number of instructions,
 * or TETHER_EINVAL when n is 0 or the ids leave 1..255. */
int tetherd_steer_prog(uint8_t base, unsigned n, struct sock_filter *prog);

/* Attaches that program to the reuseport group of socket fd (any member).
 * Returns 0, or TETHER_EINVAL / TETHER_EIO (errno kept). */
int tetherd_steer_attach(int fd, uint8_t base, unsigned n);

#endif
