/* tether — Observe through the proxy (internal to lib/proxy; RFC 7641,
 * SPEC S4): the messaging over the observation registry (proxy/obsreg.h).
 *
 * One device-side observation per observed resource, registered with a
 * long-lived upstream token and fanned out to every client observer with
 * the observer's own token and tether's own Observe sequence. The first
 * observer creates and registers it; the last one to leave cancels it on
 * the device (GET with Observe: 1, §3.6). A notification refreshes the
 * cache entry; anything else from the device ends the observation for
 * every observer. After a new device session the observations are
 * registered again there, observers noticing nothing. Confirmable
 * notifications (§4.5) detect clients that are gone.
 *
 * Lifetimes: observations and observers are owned by the registry; the
 * exchange waiters embedded in them (registration CON, confirmable
 * notification) are cancelled here before the registry frees them.
 */
#ifndef TETHER_PROXY_OBSERVE_H
#define TETHER_PROXY_OBSERVE_H

#include "proxy/node_int.h"

/* RFC 7641 §4.5: an observer gets a confirmable notification at least
 * this often (an unacknowledged one means it is gone). */
#define TETHER_OBS_CON_INTERVAL_MS (24ull * 3600 * 1000)

/* The Observe option of `req` when it can register or deregister an
 * observer (RFC 7641 §2: GET or FETCH; operator requests on an internal
 * link never observe): true with its value in *ov. */
bool tether_observe_option(const tether_coap_msg_t *req, const tether_link_t *link, uint32_t *ov);
/* The observe part of a client request for device `d`, `up` being the
 * request as it would be forwarded (Observe stripped). Observe: 0 on a
 * cacheable GET/FETCH makes the client an observer (answered with the
 * latest notification, or an empty ACK until the first one comes):
 * returns true. Observe: 1 removes the client's observer with that token
 * and returns false, so the request goes on as a plain one (§3.6).
 * Operator requests are never observers. */
bool tether_observe_request(tether_node_t *n, const tether_peer_t *peer,
                            const tether_coap_msg_t *req, tether_device_t *d,
                            const tether_coap_msg_t *up, tether_time_t now);
/* Charges one observer to the client that sent `req` as `peer` (bounds.h,
 * conf.max_observers_per_client; xobserve.c charges its remote observers
 * the same way): what tether_bounds_charge returns; at the limit the
 * client has had its 5.03 (counted). */
int tether_observe_charge(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                          tether_bclient_t **out, tether_time_t now);
/* A response from a device carrying an observation's upstream token.
 * false when no observation has the token or it did not come on the
 * device's current tunnel (the caller then answers a CON/NON with RST,
 * cancelling a stale device-side observation). */
bool tether_observe_response(tether_node_t *n, const tether_peer_t *peer,
                             const tether_coap_msg_t *msg, tether_time_t now);
/* A group observation's member (group.h): the client on `link` with token
 * tok[tkl] observes `d`'s resource `up` (the request as forwarded, Observe
 * stripped) on behalf of group fan-out `f`, sharing the device-side
 * observation with every other observer of it. Its notifications carry a
 * Reply-From naming `d`; one it has already goes out now. 0 (*out set,
 * ob->group = f: tether_group_obs_left hears when it goes);
 * TETHER_EINVAL when the request cannot be observed (not cacheable: the
 * caller relays it plainly); TETHER_ELIMIT beyond the observer bounds;
 * TETHER_ENOMEM. */
int tether_observe_group_join(tether_node_t *n, tether_device_t *d, const tether_coap_msg_t *up,
                              const tether_link_t *link, const uint8_t *tok, size_t tkl,
                              struct group_fan *f, tether_observer_t **out, tether_time_t now);
/* Removes observer `ob`; the last observer of its observation to leave
 * cancels the device side (RFC 7641 §3.6). */
void tether_observe_leave(tether_node_t *n, tether_observer_t *ob, tether_time_t now);
/* The device's tunnel changed: every observation of it registers again. */
void tether_observe_relink(tether_node_t *n, tether_device_t *d, tether_time_t now);
/* The device is gone: its observers get 5.02 and its observations end. */
void tether_observe_device_gone(tether_node_t *n, tether_device_t *d, tether_time_t now);
/* A client session ended: its observers leave. */
void tether_observe_link_down(tether_node_t *n, const tether_link_t *link, tether_time_t now);
/* A client answered `mid` with RST: when it was a notification, the
 * observer leaves (§3.6). */
void tether_observe_reset(tether_node_t *n, const tether_link_t *link, uint16_t mid,
                          tether_time_t now);

#endif
