/* tether — the parts of xrelay shared by its three files (internal to
 * lib/proxy/xrelay*.c; the contract is xrelay.h):
 *   xrelay.c   node A's relayed requests, the channel outbox, timers;
 *   xobserve.c node A's aggregate observations of remote resources;
 *   xserve.c   node B's slots for requests other nodes relayed to it.
 * Every object here is owned by the node's struct tether_xrelay and lives
 * until the function of its file that frees it; none outlives the node. */
#ifndef TETHER_PROXY_XRELAY_INT_H
#define TETHER_PROXY_XRELAY_INT_H

#include "proxy/xrelay.h"
#include "util/be64.h"
#include "util/container.h"

#define F_OBSERVE 1
#define SWEEP_MS 1000 /* finished slots, and nodes gone silent, this often */
/* A registered aggregate sends its XREQ again this often: a device node
 * that restarted (and lost the slot) registers it anew; one that kept it
 * takes it as a duplicate. */
#define REFRESH_MS 30000
/* An aggregate whose device node went silent waits this long for the
 * directory to name the node that adopted its sessions (SPEC S5: a
 * lease expiry, the claim and the device's next message take seconds)
 * before its observers get 5.02. */
#define REHOME_GRACE_MS 30000

enum xr_tag { T_DEADLINE = 1, T_RETRY, T_ACK };

typedef struct xr_agg xr_agg_t;

/* A: a request relayed to another node, or an aggregate's registration. */
typedef struct {
    tether_hnode_t by_id;    /* key: id */
    tether_timer_t deadline; /* 5.04 (a registration: the aggregate fails) */
    tether_timer_t retry;    /* the XREQ again */
    tether_timer_t ack;      /* the client's CON not yet acknowledged */
    uint32_t id;
    uint8_t node;
    uint32_t backoff_ms;
    xr_agg_t *agg;         /* non-NULL: the registration of this aggregate */
    group_fan_t *fan;      /* non-NULL: a group fan-out's member request (no client) */
    tether_lnode_t in_fan; /* in the fan-out's xsubs */
    const char *member;    /* its device, in the fan-out's member list */
    tether_link_t client;
    tether_bclient_t *charged; /* the client's share of pending (bounds.h); NULL: none */
    uint16_t cmid;
    uint8_t ctype, ctkl;
    uint8_t ctok[TETHER_COAP_MAX_TOKEN];
    bool acked;
    uint16_t len;
    uint8_t msg[TETHER_XRELAY_HDR + TETHER_MSG_MAX]; /* the XREQ payload */
} xr_req_t;

/* A: one client observing a remote resource through this node, or a
 * group observation's member whose tunnel is on another node (`group`:
 * the fan-out it belongs to, group.h). */
typedef struct {
    tether_lnode_t in_agg;
    xr_agg_t *agg; /* the aggregate it observes */
    tether_link_t link;
    group_fan_t *group;      /* non-NULL: a group observation's member */
    tether_lnode_t in_group; /* in tether_group_xobs(group) */
    bool notified;           /* it got a notification (a group member that answered) */
    /* RFC 7641 §4.5: a confirmable notification at least every
     * TETHER_OBS_CON_INTERVAL_MS (and a group's checks past T') tells
     * whether the client is still interested. */
    bool con_pending;
    uint16_t con_mid;
    tether_time_t last_con;
    tether_cx_waiter_t con_w;
    tether_bclient_t *charged; /* the client's share of observers (bounds.h) */
    uint8_t tkl;
    uint8_t tok[TETHER_COAP_MAX_TOKEN];
    uint16_t last_mid; /* of the latest notification sent to it (RST matching) */
    bool answered;     /* it got a first answer */
    uint16_t cmid;     /* its registration, until answered */
    uint8_t ctype;
    bool acked;
    tether_role_t role; /* the client's, to register it again on this node */
    char identity[TETHER_IDENTITY_MAX];
} xr_obsr_t;

/* A: this node's one observation of a remote resource. */
struct xr_agg {
    tether_hnode_t by_key; /* key: digest of the cache key */
    tether_lnode_t all;
    xr_req_t *reg;         /* the registration (also in by_id); lives with the aggregate */
    bool registered;       /* B answered with a notification */
    tether_time_t lost_at; /* B went silent (0: it is alive) */
    tether_list_t observers;
    uint32_t nobservers;
    uint32_t seq; /* our Observe values (24 bits) */
    char device[TETHER_IDENTITY_MAX];
    uint16_t last_len; /* latest notification as B sent it, 0: none yet */
    uint8_t last[TETHER_MSG_MAX];
    uint16_t key_len;
    uint8_t key[TETHER_CACHE_KEY_MAX];
};

/* B: one request another node relayed to us. */
typedef struct {
    tether_hnode_t by_src;  /* key: node | request id */
    tether_hnode_t by_link; /* key: link id */
    tether_lnode_t all;
    uint64_t link_id;
    uint8_t node;
    uint32_t reqid;
    bool observe;
    bool done;    /* its final answer went out (kept for duplicates) */
    bool closing; /* to be closed in settle */
    tether_time_t since;
    uint16_t rlen;
    uint8_t resp[TETHER_MSG_MAX];
} xr_slot_t;

typedef struct {
    tether_link_t link;
    uint16_t mid;
} xr_ack_t;

/* B: a silent node's observe registry record, deleted once the node that
 * may adopt its sessions had time to take its observers over (SPEC S5). */
typedef struct {
    tether_lnode_t ln;
    tether_time_t at;
    uint8_t node;
    uint16_t key_len;
    uint8_t key[TETHER_CACHE_KEY_MAX];
} xr_drop_t;

struct tether_xrelay {
    tether_hmap_t by_id, by_key, by_src, by_link;
    tether_list_t aggs, slots;
    tether_heap_t timers;
    uint32_t next_id;
    uint64_t next_link;
    size_t nreq, nslots;
    uint32_t slots_per_node[256];
    tether_time_t next_sweep;
    xr_ack_t *acks;
    size_t nacks, acks_cap;
    uint64_t *closes; /* slots whose final answer went out, closed in settle */
    size_t ncloses, closes_cap;
    tether_xmsg_t *out;
    size_t nout, out_cap;
    tether_list_t drops; /* of xr_drop_t, oldest first */
};

#define XR(n) ((n)->xr)

/* The lookup of a name in the directory: the store's callback runs before
 * the get returns when the replica has the record (xrelay.h). */
typedef struct {
    bool done, found;
    uint8_t node;
    bool queue_mode;
} lookup_t;

/* Whether an answer from the device node is its own verdict rather than
 * the device's: 5.02 (device gone, node unreachable) and 5.04 (no answer
 * in time) are what a proxy says (RFC 7252 §5.9.3.3, §5.9.3.5), which a
 * group's client does not get as a member's response (group.h). The
 * XRSP does not say who spoke; a device answering these itself is taken
 * for tether. */
static inline bool xr_verdict(uint8_t code)
{
    return code == TETHER_COAP_BAD_GATEWAY || code == TETHER_COAP_GATEWAY_TIMEOUT;
}

/* A 2.xx code (RFC 7252 §5.9.1). */
static inline bool xr_success(uint8_t code)
{
    return code >> 5 == 2;
}

/* xrelay.c */
void xr_out(tether_node_t *n, uint8_t to, uint8_t type, const uint8_t *hdr, size_t hl,
            const uint8_t *body, size_t bl);
bool xr_node_alive(const tether_node_t *n, uint8_t id, tether_time_t now);
void xr_req_free(tether_node_t *n, xr_req_t *r);
void xr_xend(tether_node_t *n, const xr_req_t *r);
void xr_code_msg(tether_coap_msg_t *m, uint8_t code);
bool xr_directory_find(tether_node_t *n, const char *host, tether_time_t now, lookup_t *l);
xr_req_t *xr_req_new_tok(tether_node_t *n, uint8_t to, uint8_t flags, tether_coap_msg_t *msg,
                         bool queue_mode, uint8_t tok[4], tether_time_t now);
int xr_fwd_msg(const tether_coap_msg_t *req, const char *host, tether_coap_msg_t *out);

/* xobserve.c */
/* The observe part of a remote request: true when taken (answered or joined). */
bool xr_observe_request(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                        const char *host, uint8_t to, bool queue_mode, tether_time_t now);
/* B's answer `up` (raw `msg`) to the registration `r` of an aggregate. */
void xr_agg_answer(tether_node_t *n, xr_req_t *r, const tether_coap_msg_t *up, const uint8_t *msg,
                   size_t len, tether_time_t now);
/* Ends `a` for every observer with `resp` and frees it; `device`: resp
 * is the device node's answer, which group members get too (tether's own
 * verdicts are not a member's response, group.h). */
void xr_agg_fail(tether_node_t *n, xr_agg_t *a, tether_coap_msg_t *resp, bool device,
                 tether_time_t now);
/* Aggregates whose device node went silent follow their device. */
void xr_aggs_sweep(tether_node_t *n, tether_time_t now);
void xr_aggs_free(tether_node_t *n);

/* xserve.c */
void xr_on_xreq(tether_node_t *n, uint8_t from, const uint8_t *p, size_t len, tether_time_t now);
void xr_on_xend(tether_node_t *n, uint8_t from, const uint8_t *p, tether_time_t now);
/* Slots of silent nodes, expired slots, and registry records to drop. */
void xr_slots_sweep(tether_node_t *n, tether_time_t now);
void xr_slots_free(tether_node_t *n);

#endif
