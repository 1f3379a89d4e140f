/* tether — the observation registry of one node (RFC 7641 through the
 * proxy), sans-I/O: the bookkeeping; proxy/observe.c does the messaging.
 *
 * An observation is one device-side observe relationship: a target device
 * resource keyed like the response cache (device + method + cache-key
 * options), the long-lived upstream token tether registered it with, the
 * encoded upstream GET/FETCH (Observe: 0) to (re-)send, and the latest
 * notification. Its observers are the clients that asked for it, each with
 * its own link and token. tether generates the Observe values clients see:
 * one 24-bit counter per observation, advanced by every notification, so a
 * device-side re-registration never makes it go backwards.
 *
 * Lookups are hash lookups: by key digest (full key compared), by upstream
 * token, by observer id, by client link (its observers, for link down and
 * RST matching). The table sends nothing and reads no clock.
 *
 * Lifetimes: the table owns observations and observers (freed by
 * tether_obs_destroy / tether_obs_remove_observer / tether_obs_free); an
 * observation is also linked into its device's list, which must outlive
 * it. The exchange waiters embedded here belong to the messaging layer,
 * which cancels their CONs before the structs are freed.
 */
#ifndef TETHER_PROXY_OBSREG_H
#define TETHER_PROXY_OBSREG_H

#include <stdbool.h>

#include "coap/exchange.h"
#include "proxy/cache.h"
#include "tether/addr.h"
#include "tether/coap.h"
#include "util/hmap.h"
#include "util/list.h"

#define TETHER_OBS_TOKEN_LEN 4

typedef struct tether_observation tether_observation_t;
typedef struct tether_observer tether_observer_t;
typedef struct tether_obs_link tether_obs_link_t;

struct tether_observation {
    tether_hnode_t by_key;   /* key: digest of the cache key */
    tether_hnode_t by_token; /* key: upstream token */
    tether_lnode_t all;      /* every observation, for teardown */
    tether_lnode_t dev_node; /* in *dev_list */
    tether_list_t *dev_list; /* the device's observations (owned by the caller) */
    tether_list_t observers;
    uint32_t nobservers;
    uint32_t seq; /* Observe value of the latest notification (24 bits) */
    /* The device's side: its Observe value and when it arrived, for the
     * RFC 7641 §3.4 order of its notifications (reset per registration). */
    bool up_seen;
    uint32_t up_seq;
    tether_time_t up_at;
    uint8_t utok[TETHER_OBS_TOKEN_LEN];
    bool up_pending;      /* the upstream registration CON is outstanding */
    tether_link_t up_link; /* ... on this link, with this MID */
    uint16_t up_mid;
    tether_cx_waiter_t up_w; /* hears how the registration CON ended */
    uint8_t last_code; /* 0: no notification yet */
    uint16_t last_len;
    uint8_t *last; /* latest notification: options and payload, without token */
    uint16_t req_len;
    uint8_t *req; /* upstream request with Observe: 0 and the upstream token */
    uint16_t key_len, key_path_len;
    uint8_t key[]; /* the cache key */
};

struct tether_observer {
    tether_hnode_t by_id;  /* key: id, a stable handle for lookups */
    tether_lnode_t in_obs; /* in obs->observers */
    tether_lnode_t in_link;
    tether_obs_link_t *ln;
    tether_observation_t *obs;
    tether_link_t link;
    uint32_t id;
    bool notified;        /* it was sent a notification */
    uint16_t last_mid;    /* MID of the latest notification sent to it */
    bool con_pending;     /* a confirmable notification is outstanding */
    uint16_t con_mid;
    tether_cx_waiter_t con_w; /* hears how that notification ended */
    tether_time_t last_con; /* when it was last sent a confirmable message */
    uint8_t tkl;
    uint8_t tok[TETHER_COAP_MAX_TOKEN];
    struct tether_bclient *charged; /* the messaging layer's (proxy/bounds.h); not touched here */
    /* A group observation's member (proxy/group.h): the group's, not
     * touched here, except that tether_obs_observer_find skips it (its
     * link and token are the group client's, shared by every member). */
    struct group_fan *group;
    tether_lnode_t in_group;
};

typedef struct {
    tether_hmap_t by_key, by_token, by_id, by_link;
    tether_list_t all;
    uint64_t seed;
    uint32_t next_id;
    size_t nobservations, nobservers;
} tether_obs_table_t;

int tether_obs_init(tether_obs_table_t *t, uint64_t seed);
/* Frees every observation and observer without telling anyone. */
void tether_obs_free(tether_obs_table_t *t);

tether_observation_t *tether_obs_find(const tether_obs_table_t *t, const tether_cache_key_t *k);
tether_observation_t *tether_obs_find_token(const tether_obs_table_t *t, const uint8_t *tok,
                                            size_t tkl);
/* A new observation of `k` with upstream token `utok` and the encoded
 * upstream request req[len] (copied), added to `dev_list`. TETHER_EEXIST
 * when the token is taken. */
int tether_obs_create(tether_obs_table_t *t, const tether_cache_key_t *k, const uint8_t *utok,
                      const uint8_t *req, size_t len, tether_list_t *dev_list,
                      tether_observation_t **out);
/* Removes `o` and its remaining observers (not told) and frees them. */
void tether_obs_destroy(tether_obs_table_t *t, tether_observation_t *o);

/* Adds the client on `link` with token tok[tkl] as an observer of `o`. */
int tether_obs_add_observer(tether_obs_table_t *t, tether_observation_t *o,
                            const tether_link_t *link, const uint8_t *tok, size_t tkl,
                            tether_time_t now, tether_observer_t **out);
/* Removes and frees `ob`; its observation stays, maybe without observers. */
void tether_obs_remove_observer(tether_obs_table_t *t, tether_observer_t *ob);
tether_observer_t *tether_obs_observer_by_id(const tether_obs_table_t *t, uint32_t id);
/* The observer on `link` with token tok[tkl], or NULL; a group
 * observation's members (ob->group) are not found here. */
tether_observer_t *tether_obs_observer_find(const tether_obs_table_t *t, const tether_link_t *link,
                                            const uint8_t *tok, size_t tkl);
/* The observer on `link` whose latest notification had `mid`, or NULL. */
tether_observer_t *tether_obs_observer_by_mid(const tether_obs_table_t *t,
                                              const tether_link_t *link, uint16_t mid);
/* Some observer on `link`, or NULL (to remove them all at link down). */
tether_observer_t *tether_obs_link_first(const tether_obs_table_t *t, const tether_link_t *link);

/* Makes `resp` (a device notification, its Observe option and token
 * ignored) the latest notification of `o` under the next Observe value. */
int tether_obs_set_latest(tether_observation_t *o, const tether_coap_msg_t *resp);
/* Encodes the latest notification for `ob` with the given type and MID:
 * header, the observer's token, then the stored options and payload. */
int tether_obs_encode(const tether_observation_t *o, const tether_observer_t *ob, uint8_t type,
                      uint16_t mid, uint8_t *buf, size_t cap, size_t *out_len);

#endif
