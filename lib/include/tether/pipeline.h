/* tether — the whole stack behind one entry (sans-I/O): UDP -> cluster
 * forwarding -> DTLS -> CoAP -> proxy node, and back.
 *
 * The host owns sockets, signals, configuration and timers. It numbers its
 * sockets (interfaces 0..niface-1), says what each one carries (plain
 * CoAP, DTLS, or the cluster's internal channel), feeds every datagram
 * with tether_pipeline_input, sends what the outbox holds from the
 * interface each datagram names, and calls tether_pipeline_tick at
 * tether_pipeline_next_deadline. Nothing here reads a clock or touches a
 * socket.
 *
 * One datagram's path (README.md, Architecture):
 *   DTLS interface: tether_channel_route_in (a CID naming another node:
 *     forwarded there, lib/cluster/channel.c) or tether_dtls_input
 *     (lib/dtls/session.c); each decrypted record goes to tether_node_input
 *     (lib/proxy/node.c) with the session's identity and role.
 *   plain interface: straight to tether_node_input.
 *   cluster interface: tether_channel_input; a forwarded record enters DTLS
 *     as if it had come from the client, a REPLY leaves from our listener.
 * A CID session that moved (DTLS EV_MOVED) gets a return-routability
 * probe (lib/proxy/probe.h); the RST answering it validates the address
 * and does not reach the node.
 * After each call the node's outbox is emptied: DTLS links through their
 * session (tether_dtls_send), plain links into the outbox, internal links
 * (operator requests) into the internal answers. DTLS datagrams for a
 * client that talks to another node leave through it (route_out).
 *
 * Clocks: `now` is the host's monotonic milliseconds, for the node and
 * DTLS. The cluster channel and DTLS cookie epochs need wall-clock
 * milliseconds that agree between hosts: the host gives them with
 * tether_pipeline_set_wall_clock before each call (between two calls the
 * wall clock advances with `now`).
 *
 * Lifetimes: the pipeline owns the node, the DTLS server and the channel
 * (the accessors' pointers live as long as it). `creds` is borrowed (see
 * tether_pipeline_set_creds). Outbox entries are valid until
 * tether_pipeline_out_clear or the next call that feeds the pipeline.
 */
#ifndef TETHER_PIPELINE_H
#define TETHER_PIPELINE_H

#include <stdbool.h>

#include "tether/addr.h"
#include "tether/channel.h"
#include "tether/common.h"
#include "tether/creds.h"
#include "tether/dtls.h"
#include "tether/node.h"

#define TETHER_PIPELINE_MAX_IFACE 16

typedef enum {
    TETHER_IFACE_PLAIN = 1,   /* plain CoAP datagrams (RFC 7252) */
    TETHER_IFACE_DTLS = 2,    /* CoAP over DTLS (RFC 7252 §9) */
    TETHER_IFACE_CLUSTER = 3, /* the cluster's internal channel (SPEC S5); at most one */
} tether_iface_kind_t;

/* An observer of the CoAP messages that cross the node on DTLS links, for
 * host-side measurements (tetherd's per-request latency): `in` for each
 * plaintext message a session delivered to the node, else for each message
 * the node sends on a session. It must not call into the pipeline. */
typedef void (*tether_pipeline_tap_fn)(void *user, bool in, uint64_t link_id, const uint8_t *msg,
                                       size_t len);

/* Failover (SPEC S5): the node holding the session of CID `cid`
 * (conf.dtls.cid_len bytes) when it is not this one, from the host's
 * replica of the store's SESSION records (no store round trip: it runs
 * for every record); 0 when unknown, which routes by the CID's node byte.
 * Consulted only for records whose CID no session here holds. */
typedef uint8_t (*tether_pipeline_cid_owner_fn)(void *user, const uint8_t *cid, size_t len);
/* Failover: every DTLS event, before the node hears of it (EV_CEILING is
 * the host's to serve: tether_dtls_ceiling_acked, then
 * tether_pipeline_settle). It must not call into the pipeline. */
typedef void (*tether_pipeline_dtls_event_fn)(void *user, const tether_dtls_event_t *ev);

typedef struct {
    tether_node_conf_t node;
    tether_dtls_conf_t dtls;       /* used when an interface is DTLS */
    tether_channel_conf_t channel; /* used when an interface is CLUSTER */
    uint8_t niface;
    uint8_t iface[TETHER_PIPELINE_MAX_IFACE]; /* tether_iface_kind_t of each */
    tether_pipeline_tap_fn tap;               /* optional */
    void *tap_user;
    tether_pipeline_cid_owner_fn cid_owner;   /* optional */
    tether_pipeline_dtls_event_fn dtls_event; /* optional */
    void *failover_user;
} tether_pipeline_conf_t;

typedef struct tether_pipeline tether_pipeline_t;

/* Return-routability probes of moved sessions (lib/proxy/probe.h). */
typedef struct {
    uint64_t probes_sent;   /* CoAP pings sent to a moved session's new address */
    uint64_t validated;     /* new addresses that answered (tether_dtls_sess_validate) */
    uint64_t gave_up;       /* probes that got no answer in their tries */
    uint64_t wrong_answers; /* empty RSTs from a probed address with another MID */
} tether_rrc_stats_t;

/* Every part's defaults; no interfaces. */
TETHER_API void tether_pipeline_conf_defaults(tether_pipeline_conf_t *conf);

/* Creates the node, and the DTLS server and the cluster channel when an
 * interface needs them. Returns 0, TETHER_EINVAL (no or too many
 * interfaces, an unknown kind, two cluster interfaces), TETHER_ENOMEM, or
 * what tether_node_create, tether_dtls_create or tether_channel_create
 * returned (TETHER_ECONFIG: a DTLS certificate file is unusable). */
TETHER_API int tether_pipeline_create(const tether_pipeline_conf_t *conf,
                                      const tether_creds_t *creds, tether_time_t now,
                                      tether_time_t wall_ms, tether_pipeline_t **out);
TETHER_API void tether_pipeline_destroy(tether_pipeline_t *p);

/* Wall-clock milliseconds (Unix epoch) at the coming call's `now`. */
TETHER_API void tether_pipeline_set_wall_clock(tether_pipeline_t *p, tether_time_t wall_ms);

/* One datagram that arrived on interface `iface` from `from`. Returns 0
 * (what it led to is in the outbox and the internal answers), or
 * TETHER_EINVAL for an interface that was not configured. */
TETHER_API int tether_pipeline_input(tether_pipeline_t *p, uint8_t iface, const tether_addr_t *from,
                                     const uint8_t *buf, size_t len, tether_time_t now);

/* An operator request (admin API) on internal link `id`: it enters the
 * node like a client's, without identity (the node trusts internal links).
 * Its answers come back through tether_pipeline_internal_take. */
TETHER_API void tether_pipeline_internal_input(tether_pipeline_t *p, uint64_t id,
                                               const uint8_t *msg, size_t len, tether_time_t now);
/* An HTTP-to-CoAP request (RFC 8075) on HTTP link `id`, sent as client
 * `identity` (NULL: the operator's admin token, which may reach every
 * device): the node treats it as that client's request (ACL, cache,
 * Observe). Answers come back through tether_pipeline_internal_take with
 * link kind TETHER_LINK_HTTP. */
TETHER_API void tether_pipeline_http_input(tether_pipeline_t *p, uint64_t id, const char *identity,
                                           const uint8_t *msg, size_t len, tether_time_t now);
/* HTTP link `id` is gone (the HTTP client left): its observations end, as
 * for a client whose DTLS session ended. */
TETHER_API void tether_pipeline_http_close(tether_pipeline_t *p, uint64_t id, tether_time_t now);
/* Takes the oldest answer on an internal or HTTP link into *out; false when none.
 * A separate response (a CON) was already acknowledged on its link, as a
 * client would. The host may feed the pipeline while it takes answers. */
TETHER_API bool tether_pipeline_internal_take(tether_pipeline_t *p, tether_out_t *out);

/* Settles what reached the pipeline's parts outside its own calls: a state
 * store callback completing later from the host's event loop, or the host
 * calling the DTLS server directly (a ceiling acknowledged, a session
 * adopted or released). Output moves to the outbox and events are handled,
 * as after any entry point. */
TETHER_API void tether_pipeline_settle(tether_pipeline_t *p, tether_time_t now);

/* With conf.channel.bundle_max, messages for other nodes wait to share a
 * datagram (tether/channel.h) and reach the outbox only here: call it when
 * a batch of input ends (the host's recvmmsg batch) and after calls made
 * outside one. No-op without bundling. */
TETHER_API void tether_pipeline_flush(tether_pipeline_t *p, tether_time_t now);

/* Runs every part whose deadline has come. */
TETHER_API void tether_pipeline_tick(tether_pipeline_t *p, tether_time_t now);
/* When tether_pipeline_tick next has work (UINT64_MAX: none), on the
 * `now` clock; valid after any call. */
TETHER_API tether_time_t tether_pipeline_next_deadline(const tether_pipeline_t *p);

/* The outbox: datagrams to send, oldest first, each from interface
 * d->iface to d->to; the caller clears it. */
TETHER_API size_t tether_pipeline_out_count(const tether_pipeline_t *p);
TETHER_API const tether_dgram_t *tether_pipeline_out_get(const tether_pipeline_t *p, size_t i);
TETHER_API void tether_pipeline_out_clear(tether_pipeline_t *p);
/* Datagrams lost because the outbox could not grow. */
TETHER_API uint64_t tether_pipeline_out_dropped(const tether_pipeline_t *p);

/* Swaps the credential set of DTLS and the node (see tether_dtls_set_creds:
 * revoked sessions end, and their links go down at once). The caller frees
 * the old set after this returns. */
TETHER_API void tether_pipeline_set_creds(tether_pipeline_t *p, const tether_creds_t *creds,
                                          tether_time_t now);
/* tether_node_device_remove, then what it led to (its pending requests
 * answered 5.02). Returns what tether_node_device_remove returned. */
TETHER_API int tether_pipeline_device_remove(tether_pipeline_t *p, const char *name,
                                             tether_time_t now);

/* The parts, for statistics, the device views and static cluster
 * membership (tether_channel_add_node). DTLS and the channel are NULL
 * when no interface needs them. */
TETHER_API tether_node_t *tether_pipeline_node(const tether_pipeline_t *p);
TETHER_API tether_dtls_srv_t *tether_pipeline_dtls(const tether_pipeline_t *p);
TETHER_API tether_channel_t *tether_pipeline_channel(const tether_pipeline_t *p);
/* The probes' counters (all 0 without a DTLS interface). */
TETHER_API const tether_rrc_stats_t *tether_pipeline_rrc_stats(const tether_pipeline_t *p);

#endif
