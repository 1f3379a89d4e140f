/* Device directory: names, registrations, links, NAT learning. */
#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/registry.h"
#include "util/hash.h"

#include "util/container.h"
#define NAME_KEY 16
/* Below the shortest NAT timeouts seen in the field (see the background notes). */
#define KEEPALIVE_DEFAULT_MS 15000u
/* Gaps shorter than this say nothing about the NAT. */
#define NAT_MIN_GAP_MS 1000u

/* Keyed 128-bit digest of a name folded to ASCII lowercase (two seeded
 * passes of the one hash, util/hash.h): a device name is a URI host, which
 * is case-insensitive (RFC 3986 §3.2.2, RFC 7252 §6.3), so names that
 * differ only in case share a key and at most one of them is registered.
 * Names are still compared after a hit. */
static void name_key(const tether_registry_t *r, const char *name, uint8_t key[NAME_KEY])
{
    char low[TETHER_IDENTITY_MAX];
    size_t len = strnlen(name, sizeof low - 1);
    for (size_t i = 0; i < len; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    for (int half = 0; half < 2; half++) {
        uint64_t h = tether_hash64(r->seed + (uint64_t)half * 0x9e3779b97f4a7c15ull, low, len);
        memcpy(key + 8 * half, &h, 8);
    }
}

int tether_registry_init(tether_registry_t *r, uint8_t node_id, size_t max, uint64_t seed)
{
    int rc;
    memset(r, 0, sizeof *r);
    r->node_id = node_id;
    r->max = max;
    r->seed = seed;
    if ((rc = tether_hmap_init(&r->by_name, 1024, seed)) < 0)
        return rc;
    if ((rc = tether_hmap_init(&r->by_reg, 1024, seed ^ 0x1234567ull)) < 0)
        goto fail_reg;
    if ((rc = tether_hmap_init(&r->by_link, 1024, seed ^ 0x7654321ull)) < 0)
        goto fail_link;
    return 0;
fail_link:
    tether_hmap_free(&r->by_reg);
fail_reg:
    tether_hmap_free(&r->by_name);
    return rc;
}

/* The device under name's key whose name equals it by `cmp`. */
static tether_device_t *find_by(const tether_registry_t *r, const char *name,
                                int (*cmp)(const char *, const char *))
{
    uint8_t key[NAME_KEY];
    name_key(r, name, key);
    tether_hnode_t *n = tether_hmap_find(&r->by_name, key, sizeof key);
    tether_device_t *d = n ? container_of(n, tether_device_t, by_name) : NULL;
    return d && cmp(d->name, name) == 0 ? d : NULL;
}

tether_device_t *tether_registry_find(const tether_registry_t *r, const char *name)
{
    return find_by(r, name, strcmp);
}

tether_device_t *tether_registry_find_host(const tether_registry_t *r, const char *host)
{
    return find_by(r, host, strcasecmp);
}

tether_device_t *tether_registry_find_reg(const tether_registry_t *r, const char *regid)
{
    size_t len = strlen(regid);
    if (len == 0 || len >= TETHER_STORE_REGID_MAX)
        return NULL;
    tether_hnode_t *n = tether_hmap_find(&r->by_reg, regid, len);
    return n ? container_of(n, tether_device_t, by_reg) : NULL;
}

tether_device_t *tether_registry_find_link(const tether_registry_t *r, const tether_link_t *link)
{
    uint8_t key[20];
    size_t kl = tether_link_key(link, key);
    tether_hnode_t *n = tether_hmap_find(&r->by_link, key, kl);
    return n ? container_of(n, tether_device_t, by_link) : NULL;
}

/* Links `d` under registration id regid[len] (< TETHER_STORE_REGID_MAX),
 * its key NUL-terminated (tether_device_regid). 0 or TETHER_EEXIST. */
static int reg_link(tether_registry_t *r, tether_device_t *d, const char *regid, size_t len)
{
    int rc = tether_hmap_insert(&r->by_reg, &d->by_reg, regid, len);
    if (rc == 0)
        d->by_reg.key[len] = 0;
    return rc;
}

int tether_registry_add(tether_registry_t *r, const char *name, tether_device_t **dev,
                        bool *created)
{
    *created = false;
    if ((*dev = tether_registry_find(r, name)))
        return 0;
    size_t nl = strlen(name);
    if (nl >= TETHER_IDENTITY_MAX)
        return TETHER_EINVAL;
    if (tether_registry_find_host(r, name))
        return TETHER_EEXIST; /* the same name in another case is registered */
    if (r->count >= r->max)
        return TETHER_ELIMIT;
    /* Every device is armed in the expiry heap while registered: reserve its
     * slot now so that arming its lifetime cannot fail later. */
    int rc = tether_heap_reserve(&r->expiry, r->count + 1);
    if (rc < 0)
        return rc;
    /* The name at its offset, not after the struct's tail padding (which
     * would take a device into the next malloc size class). */
    tether_device_t *d = calloc(1, offsetof(tether_device_t, name) + nl + 1);
    if (!d)
        return TETHER_ENOMEM;
    memcpy(d->name, name, nl + 1);
    d->node_id = r->node_id;
    tether_timer_init(&d->expiry);
    uint8_t key[NAME_KEY];
    name_key(r, name, key);
    if (tether_hmap_insert(&r->by_name, &d->by_name, key, sizeof key) < 0) {
        free(d); /* a 128-bit digest collision between two names */
        return TETHER_ELIMIT;
    }
    /* Registration ids are short, unique per node and name the node. */
    char id[TETHER_STORE_REGID_MAX];
    do
        snprintf(id, sizeof id, "%x%x", r->node_id, ++r->next_reg);
    while (reg_link(r, d, id, strlen(id)) < 0);
    tether_list_push(&r->order, &d->order);
    r->count++;
    *dev = d;
    *created = true;
    return 0;
}

int tether_registry_set_regid(tether_registry_t *r, tether_device_t *dev, const char *regid)
{
    size_t len = strlen(regid);
    if (!len || len >= TETHER_STORE_REGID_MAX)
        return TETHER_EINVAL;
    if (strcmp(tether_device_regid(dev), regid) == 0)
        return 0;
    if (tether_registry_find_reg(r, regid))
        return TETHER_EEXIST;
    tether_hmap_remove(&r->by_reg, &dev->by_reg);
    /* Not present (checked above), so it cannot fail. */
    reg_link(r, dev, regid, len);
    return 0;
}

void tether_registry_link_down(tether_registry_t *r, tether_device_t *dev)
{
    if (!dev->link_up)
        return;
    tether_hmap_remove(&r->by_link, &dev->by_link);
    dev->link_up = false;
}

void tether_registry_remove(tether_registry_t *r, tether_device_t *dev)
{
    tether_registry_link_down(r, dev);
    tether_heap_disarm(&r->expiry, &dev->expiry);
    tether_hmap_remove(&r->by_name, &dev->by_name);
    tether_hmap_remove(&r->by_reg, &dev->by_reg);
    tether_list_del(&r->order, &dev->order);
    r->count--;
    free(dev->work); /* empty: the caller detached its requests and observations */
    free((char *)dev->links);
    free(dev);
}

void tether_registry_free(tether_registry_t *r)
{
    tether_timer_t *t;
    /* Every device is armed in the expiry heap while registered. */
    while ((t = tether_heap_top(&r->expiry)))
        tether_registry_remove(r, container_of(t, tether_device_t, expiry));
    tether_heap_free(&r->expiry);
    tether_hmap_free(&r->by_link);
    tether_hmap_free(&r->by_reg);
    tether_hmap_free(&r->by_name);
}

tether_dev_work_t *tether_device_work(tether_device_t *dev)
{
    if (!dev->work && (dev->work = calloc(1, sizeof *dev->work)))
        dev->work->dev = dev;
    return dev->work;
}

void tether_device_work_done(tether_device_t *dev)
{
    tether_dev_work_t *w = dev->work;
    if (w && !w->reqs.head && !w->held.head && !w->observations.head) {
        free(w);
        dev->work = NULL;
    }
}

const tether_dev_work_t *tether_device_work_peek(const tether_device_t *dev)
{
    static const tether_dev_work_t none;
    return dev->work ? dev->work : &none;
}

int tether_registry_set_lifetime(tether_registry_t *r, tether_device_t *dev, uint32_t lifetime_s,
                                 tether_time_t now)
{
    dev->lifetime_s = lifetime_s;
    return tether_heap_arm(&r->expiry, &dev->expiry, now + (tether_time_t)lifetime_s * 1000);
}

int tether_registry_set_links(tether_device_t *dev, const char *links, size_t len)
{
    if (len > UINT32_MAX)
        return TETHER_EINVAL;
    char *copy = malloc(len + 1);
    if (!copy)
        return TETHER_ENOMEM;
    if (len) /* an empty registration payload may come without a pointer */
        memcpy(copy, links, len);
    copy[len] = 0;
    free((char *)dev->links);
    dev->links = copy;
    dev->links_len = (uint32_t)len;
    return 0;
}

void tether_registry_forget_links(tether_device_t *dev)
{
    free((char *)dev->links);
    dev->links = NULL;
    dev->links_len = 0;
}

void tether_registry_touch(tether_registry_t *r, tether_device_t *dev, const tether_link_t *link,
                           tether_time_t now)
{
    bool same_link = dev->link_up && dev->link.kind == link->kind && dev->link.id == link->id;
    if (same_link && dev->last_rx && now - dev->last_rx >= NAT_MIN_GAP_MS) {
        uint64_t gap = now - dev->last_rx;
        uint32_t g = gap > UINT32_MAX ? UINT32_MAX : (uint32_t)gap;
        if (tether_addr_equal(&dev->link.addr, &link->addr)) {
            if (g > dev->nat_lo_ms)
                dev->nat_lo_ms = g;
        } else if (!dev->nat_hi_ms || g < dev->nat_hi_ms) {
            dev->nat_hi_ms = g;
        }
    }
    if (!same_link) {
        tether_registry_link_down(r, dev);
        uint8_t key[20];
        size_t kl = tether_link_key(link, key);
        /* A session belongs to one identity, hence to at most one device. */
        if (tether_hmap_insert(&r->by_link, &dev->by_link, key, kl) == 0)
            dev->link_up = true;
    }
    dev->link = *link;
    dev->last_rx = now;
}

tether_device_t *tether_registry_next(const tether_registry_t *r, const char *after)
{
    const tether_lnode_t *n = r->order.head;
    if (after) {
        const tether_device_t *prev = tether_registry_find_reg(r, after);
        if (prev) {
            n = prev->order.next;
        } else {
            /* The cursor's device is gone: ids grow in registration order,
             * so resume after the last one not newer than it. */
            unsigned long want = strtoul(after, NULL, 16);
            while (n && strtoul(tether_device_regid(container_of(n, tether_device_t, order)), NULL,
                                16) <= want)
                n = n->next;
        }
    }
    return n ? container_of(n, tether_device_t, order) : NULL;
}

tether_device_t *tether_registry_pop_expired(tether_registry_t *r, tether_time_t now)
{
    tether_timer_t *t = tether_heap_pop_due(&r->expiry, now);
    return t ? container_of(t, tether_device_t, expiry) : NULL;
}

uint32_t tether_registry_keepalive_ms(const tether_device_t *dev)
{
    if (dev->nat_hi_ms)
        return dev->nat_hi_ms * 4 / 5;
    if (dev->nat_lo_ms > KEEPALIVE_DEFAULT_MS)
        return dev->nat_lo_ms;
    return KEEPALIVE_DEFAULT_MS;
}
