/* tether — the device directory of one node: registered devices (CoRE RD
 * style, RFC 9176 subset), their current tunnel, reachability and what the
 * node learned about their NAT binding. Lookups by name, registration id
 * and link are hash lookups. Time is passed in. */
#ifndef TETHER_REGISTRY_H
#define TETHER_REGISTRY_H

#include "tether/addr.h"
#include "tether/creds.h"
#include "tether/store.h"
#include "util/heap.h"
#include "util/hmap.h"
#include "util/list.h"

typedef struct tether_device tether_device_t;

/* What a device has under way at this node: relayed requests and
 * device-side observations. Allocated with the first of them
 * (tether_device_work) and freed when the last goes
 * (tether_device_work_done), so an idle registered device carries one
 * pointer instead (SPEC S9 budgets an idle tunnel at 600 bytes). */
typedef struct {
    tether_list_t reqs;          /* relayed requests (proxy/relay.h), newest first */
    tether_list_t held;          /* of those, waiting for an NSTART slot, oldest first */
    tether_list_t observations;  /* device-side observations (proxy/obsreg.h) */
    tether_device_t *dev;        /* its owner (an observation finds its device) */
    uint32_t nqueued, ninflight; /* queued; sent or waiting for a separate response */
    uint32_t nsent, nheld;       /* CONs outstanding (NSTART); held for a slot */
    uint32_t nobservations;      /* device-side observations (proxy/observe.c) */
} tether_dev_work_t;

/* A registered device: what the cluster shares (its directory entry in
 * the store, written from these fields by rd.c, which adds the address
 * and a coarse last-seen) and what only this node's proxy needs. Sized
 * for an idle tunnel's budget (SPEC S9): one allocation, the name at its
 * length at the end, fields ordered so none pads. `links` is owned here
 * (tether_registry_set_links), and NULL while the store holds them for
 * this registration where they can be read at once (rd.c): one copy. */
struct tether_device {
    tether_hnode_t by_name; /* key: keyed digest of the name */
    tether_hnode_t by_reg;  /* key: regid, NUL-terminated (tether_device_regid) */
    tether_hnode_t by_link; /* key: link key, while link_up */
    tether_timer_t expiry;  /* registration lifetime */
    tether_lnode_t order;   /* registration order, for paged listing */
    tether_link_t link;
    tether_time_t registered_at, last_rx;
    uint64_t store_version;  /* of its entry in the store, 0: not written yet */
    tether_dev_work_t *work; /* NULL while nothing is under way */
    const char *links;       /* registered link-format (RFC 6690), NUL-terminated */
    uint32_t links_len;
    uint32_t lifetime_s;
    uint32_t nat_lo_ms, nat_hi_ms; /* binding survived lo; was lost within hi */
    uint8_t node_id;               /* the node holding its tunnel (this one) */
    bool queue_mode;
    bool link_up;
    char name[]; /* < TETHER_IDENTITY_MAX bytes and its NUL */
};

typedef struct {
    tether_hmap_t by_name, by_reg, by_link;
    tether_heap_t expiry;
    tether_list_t order;
    uint64_t seed;
    uint32_t next_reg;
    uint8_t node_id;
    size_t count, max;
} tether_registry_t;

int tether_registry_init(tether_registry_t *r, uint8_t node_id, size_t max, uint64_t seed);
/* Frees every device; the caller has already detached their requests. */
void tether_registry_free(tether_registry_t *r);

tether_device_t *tether_registry_find(const tether_registry_t *r, const char *name);
/* The device a request names as its host (Uri-Host, or the host of a
 * Proxy-Uri, which is lowercased): device names are matched without
 * regard to ASCII case, as URI hosts are (RFC 3986 §3.2.2). */
tether_device_t *tether_registry_find_host(const tether_registry_t *r, const char *host);
tether_device_t *tether_registry_find_reg(const tether_registry_t *r, const char *regid);
tether_device_t *tether_registry_find_link(const tether_registry_t *r, const tether_link_t *link);

/* Registers `name` (or returns its existing entry, *created false).
 * TETHER_ELIMIT when the directory is full, TETHER_ENOMEM. */
int tether_registry_add(tether_registry_t *r, const char *name, tether_device_t **dev,
                        bool *created);
/* Gives `dev` the registration id `regid` (another node's, for a device
 * whose session this node adopted: its updates name that id). 0;
 * TETHER_EEXIST (the id is taken here: it keeps its own); TETHER_EINVAL
 * (empty or too long). */
int tether_registry_set_regid(tether_registry_t *r, tether_device_t *dev, const char *regid);
/* The device registered after the one with registration id `after`
 * (NULL: the first), in registration order; NULL at the end. */
tether_device_t *tether_registry_next(const tether_registry_t *r, const char *after);
/* Removes and frees a device whose request and observation lists are empty. */
void tether_registry_remove(tether_registry_t *r, tether_device_t *dev);
_Static_assert(TETHER_STORE_REGID_MAX <= TETHER_HKEY_MAX, "a regid and its NUL fit a hash key");

/* The RD registration id of `dev` (names its node; < TETHER_STORE_REGID_MAX
 * bytes): the key it is found by, kept NUL-terminated, not a second copy. */
static inline const char *tether_device_regid(const tether_device_t *dev)
{
    return (const char *)dev->by_reg.key;
}

/* dev's work, allocated (empty) when it has none; NULL on ENOMEM. Valid
 * until tether_device_work_done finds it empty. */
tether_dev_work_t *tether_device_work(tether_device_t *dev);
/* Frees dev's work when its lists are empty (a request or observation
 * just left). */
void tether_device_work_done(tether_device_t *dev);
/* dev's work for reading: an empty one when it has none (never NULL). */
const tether_dev_work_t *tether_device_work_peek(const tether_device_t *dev);
/* Sets the lifetime and re-arms expiry at now + lifetime. Cannot fail for
 * a device from tether_registry_add (its heap slot is reserved there). */
int tether_registry_set_lifetime(tether_registry_t *r, tether_device_t *dev, uint32_t lifetime_s,
                                 tether_time_t now);
/* Replaces the registered links (copied; at most UINT32_MAX bytes). 0,
 * TETHER_EINVAL or TETHER_ENOMEM (the old links stay). */
int tether_registry_set_links(tether_device_t *dev, const char *links, size_t len);
/* Frees the registered links: the store holds them (rd.c). */
void tether_registry_forget_links(tether_device_t *dev);
/* The device sent something on `link` from link->addr: records it as
 * online there, and learns from the gap since its previous message whether
 * its NAT binding survived (same address) or not (address changed). */
void tether_registry_touch(tether_registry_t *r, tether_device_t *dev, const tether_link_t *link,
                           tether_time_t now);
/* The tunnel ended. */
void tether_registry_link_down(tether_registry_t *r, tether_device_t *dev);
/* A device whose lifetime ran out, or NULL. */
tether_device_t *tether_registry_pop_expired(tether_registry_t *r, tether_time_t now);
/* Recommended keep-alive interval: below the shortest binding loss seen,
 * else at most the longest survival seen, else a conservative default. */
uint32_t tether_registry_keepalive_ms(const tether_device_t *dev);

#endif
