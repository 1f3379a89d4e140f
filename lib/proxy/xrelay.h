/* tether — client requests and observations across nodes (internal to
 * lib/proxy; SPEC S4 Observe, S5 "a client request for a device whose
 * tunnel lives on another node is relayed to that node internally").
 *
 * Two roles, every node playing both:
 *
 * Relaying node A (the client's). A request for a device this node does
 * not hold is looked up in the device directory through the state store;
 * the store answers from its local replica (the Redis store mirrors every
 * record, store_mem is local), so there is no Redis round trip on the
 * request path: a lookup that does not complete at once is an unknown
 * device (4.04). A directory entry naming another node B sends an XREQ
 * over the internal channel; A keeps its own exchange state with the
 * client (empty ACK after ack_delay_ms, piggybacked or separate answer,
 * RFC 7252 §5.2) and retransmits the XREQ until B answers (B deduplicates).
 * B not alive on the channel: 5.02 (S4 "device gone"); no answer by the
 * deadline (the device's request timeout, or its queue TTL in queue mode,
 * plus a margin for the hop): 5.04. An Observe: 0 GET/FETCH joins A's one
 * aggregate observation of that resource: only the first observer of A
 * sends an XREQ, A fans each notification out to its own observers with
 * its own Observe sequence, and the last one leaving sends XEND. When B
 * goes silent the aggregate follows B's devices to the node that adopted
 * B's sessions (SPEC S5) as soon as the directory names it: a new XREQ
 * there, or, when that node is A itself and the device's tunnel is up
 * here, each observer joins the local observation as if it had sent its
 * registration to A; 5.02 only when no live node is named within 30 s.
 *
 * Device node B. Each XREQ gets a slot, a link of kind TETHER_LINK_CLUSTER
 * whose id is the slot's; the request enters the node on that link like a
 * trusted operator request (A checked the client's ACL), so queue mode,
 * the cache and the shared observation work unchanged, and A's aggregate
 * is one more observer of B's one device-side observation. What the node
 * sends on a slot goes back to A in an XRSP (a CON notification is
 * acknowledged here, as the client would). A plain request's slot keeps
 * its final answer for keep_ms to answer a retransmitted XREQ again; an
 * observation's slot lives until XEND, an error answer, or A no longer
 * alive on the channel (then its observers leave, and its observe
 * registry records are deleted 30 s later, once an adopter of its
 * sessions could read them).
 *
 * Payloads (inside the channel's authenticated messages, tether/cluster.h):
 *   XREQ: request id (4) | flags (1: bit 0 observe) | CoAP request (NON,
 *         MID 0, the client's token — the aggregate's id for an
 *         observation — and Uri-Host naming the device)
 *   XRSP: request id (4) | CoAP message as the device node sent it
 *   XEND: request id (4)
 * The request id is the relaying node's, unique among its live requests;
 * (relaying node, id) names a slot at B.
 *
 * Bounds: xrelay_max requests and aggregates at A, slots_max slots at B
 * (5.03 beyond). At A a client is charged its relayed requests and its
 * observers of remote resources like those of local ones (bounds.h:
 * max_pending_per_client, 4.29 with Max-Age beyond; max_observers_per_
 * client, 5.03), so one client cannot take the xrelay_max table or the
 * observer table from the others. Time is `now`; tick at tether_xrelay_next_deadline.
 * Lifetimes: everything here is owned by the node's xrelay and freed by
 * tether_xrelay_free; slots are closed (link down) in tether_xrelay_settle,
 * outside the node's callbacks.
 */
#ifndef TETHER_PROXY_XRELAY_H
#define TETHER_PROXY_XRELAY_H

#include "proxy/node_int.h"

#define TETHER_XRELAY_HDR 5

int tether_xrelay_init(tether_node_t *n);
void tether_xrelay_free(tether_node_t *n);

/* A client request for `host`, which is not registered here (relay.c).
 * True when it was taken (relayed, or answered 5.02/5.03); false when the
 * directory does not name another node (the caller answers 4.04). */
bool tether_xrelay_request(tether_node_t *n, const tether_peer_t *peer,
                           const tether_coap_msg_t *req, const char *host, tether_time_t now);
/* A group fan-out's member request for `host` (group.c; `up` as forwarded,
 * host a string of f's that outlives the request), relayed to the node the
 * directory names for it. Its answer goes to tether_group_answer; tether's
 * own verdicts (5.04, node gone) go nowhere (group.h). 0;
 * TETHER_ENOTFOUND when no other live node holds it; TETHER_ELIMIT at
 * xrelay_max; TETHER_ENOSPC. */
int tether_xrelay_group(tether_node_t *n, const tether_coap_msg_t *up, const char *host,
                        group_fan_t *f, tether_time_t now);
/* Whether the directory (its replica, no round trip) names a node other
 * than this one for `host` (group_cache.c: entries here do not answer
 * for such a device). */
bool tether_xrelay_elsewhere(tether_node_t *n, const char *host, tether_time_t now);
/* Ends every such request of a fan-out (its xsubs list, group.h); how
 * many were still out. */
size_t tether_xrelay_group_cancel(tether_node_t *n, tether_list_t *xsubs);
/* A group observation's member `host` whose tunnel is on another node
 * (group.c, group.h): observed through this node's one aggregate of that
 * resource (xobserve.c), shared with direct observers of it; each
 * notification goes to the group's client with Reply-From naming the
 * member. 0: joined (charged to the client's observer bound);
 * TETHER_ENOTFOUND: no other live node holds it; TETHER_EINVAL: not
 * observable (relay it plainly); TETHER_ELIMIT: xrelay_max now (the next
 * pacing step tries again); TETHER_ENOMEM: skipped (the client's or the
 * node's observer bound, or memory). */
int tether_xrelay_group_observe(tether_node_t *n, const tether_coap_msg_t *up, const char *host,
                                group_fan_t *f, tether_time_t now);
/* The remote members listed in `xobs` (tether_group_xobs) leave their
 * aggregates: all of them, or (`silent`) those that never notified. */
void tether_xrelay_group_leave(tether_node_t *n, tether_list_t *xobs, bool silent,
                               tether_time_t now);
/* The fan-out of the remote members listed is being freed: they forget it. */
void tether_xrelay_group_detach(tether_list_t *xobs);
/* A client session ended: its observers of remote resources leave. */
void tether_xrelay_link_down(tether_node_t *n, const tether_link_t *link, tether_time_t now);
/* A client's RST of `mid`: when it was a remote notification, it leaves. */
void tether_xrelay_reset(tether_node_t *n, const tether_link_t *link, uint16_t mid,
                         tether_time_t now);

void tether_xrelay_tick(tether_node_t *n, tether_time_t now);
tether_time_t tether_xrelay_next_deadline(const tether_node_t *n);

#endif
