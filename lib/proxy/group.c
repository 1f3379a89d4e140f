/* Group requests through the proxy (see group.h). */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "proxy/group.h"
#include "proxy/observe.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "proxy/xrelay.h"
#include "util/container.h"
#include "util/hash.h"

enum { G_DEADLINE = 1, G_PACE };

#define NAME_KEY 16 /* two 64-bit digests of the lower-cased name */

struct group_fan {
    tether_lnode_t ln;       /* in g->fans */
    tether_timer_t deadline; /* T' */
    tether_timer_t pace;     /* the next batch of members */
    tether_list_t subs;      /* member requests out (relay_req_t.in_fan) */
    tether_list_t xsubs;     /* ... relayed to other nodes (xrelay.c) */
    tether_link_t client;
    /* The client's record (bounds.h): charged one group request; its
     * member requests and observers are charged to it too, so one client
     * cannot fill the pending or observer tables through a group. NULL:
     * exempt (an operator's request). */
    tether_bclient_t *charged;
    uint8_t ctkl;
    uint8_t ctok[TETHER_COAP_MAX_TOKEN];
    bool drop_all; /* T' = 0: nobody wants the responses */
    bool cached;   /* every member fresh in the cache: served from it (group_cache.c) */
    uint8_t etag[TETHER_GROUP_ETAG_LEN]; /* the Group-ETag of that set */
    bool observe;                        /* a group observation: members are observers (obs) */
    bool expired;                        /* T' passed; lives on while members observe */
    bool ending;                         /* its observers are being removed: no freeing meanwhile */
    tether_time_t checked_at; /* a confirmable notification last went to the client (0: none) */
    tether_list_t obs;        /* member observers (tether_observer_t.in_group) */
    tether_list_t xobs;       /* ... of members on other nodes (xobserve.c) */
    size_t nmembers, next;
    char **members; /* the members when the request came (names_pack) */
    uint16_t up_len;
    uint8_t up[]; /* the request as forwarded, without token */
};

/* n names in one allocation: the pointer array, then the strings (a
 * member costs its name's length, not TETHER_IDENTITY_MAX). One free().
 * NULL when n is 0 or memory runs out. */
static char **names_pack(const char *const *names, size_t n)
{
    size_t bytes = n * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(names[i]) + 1;
    char **v = n ? malloc(bytes) : NULL;
    if (!v)
        return NULL;
    char *p = (char *)(v + n);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(p, names[i], l);
        v[i] = p;
        p += l;
    }
    return v;
}

static void name_key(const tether_groups_t *g, const char *name, uint8_t key[NAME_KEY])
{
    char low[TETHER_IDENTITY_MAX];
    size_t n = strlen(name);
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    uint64_t a = tether_hash64(g->seed, low, n), b = tether_hash64(~g->seed, low, n);
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

const char **tether_group_unique(const tether_groups_t *g, const char *const *names, size_t n,
                                 size_t *out)
{
    const char **v = malloc((n ? n : 1) * sizeof *v);
    tether_hnode_t *nodes = malloc((n ? n : 1) * sizeof *nodes);
    tether_hmap_t seen;
    size_t k = 0;
    if (!v || !nodes || tether_hmap_init(&seen, n, g->seed) < 0) {
        free(v);
        free(nodes);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t key[NAME_KEY];
        name_key(g, names[i], key);
        tether_hnode_t *h = tether_hmap_find(&seen, key, sizeof key);
        if (h && strcasecmp(v[h - nodes], names[i]) == 0)
            continue; /* named before */
        /* a 128-bit digest collision between two names: both kept */
        if (!h && tether_hmap_insert(&seen, &nodes[k], key, sizeof key) < 0) {
            tether_hmap_free(&seen);
            free(nodes);
            free(v);
            return NULL;
        }
        v[k++] = names[i];
    }
    tether_hmap_free(&seen);
    free(nodes);
    *out = k;
    return v;
}

int tether_groups_init(tether_groups_t *g, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    g->seed = seed;
    /* Derived, not the seed itself: SHA-256 of a label and the seed. */
    uint8_t in[20 + sizeof seed] = "tether group-etag v1";
    memcpy(in + 20, &seed, sizeof seed);
    if (wc_Sha256Hash(in, sizeof in, g->etag_key) != 0)
        return TETHER_ECRYPTO;
    return tether_hmap_init(&g->by_name, 16, seed);
}

tether_group_t *tether_group_find(const tether_groups_t *g, const char *name)
{
    uint8_t key[NAME_KEY];
    if (!g->ngroups || strlen(name) >= TETHER_IDENTITY_MAX)
        return NULL;
    name_key(g, name, key);
    tether_hnode_t *h = tether_hmap_find(&g->by_name, key, sizeof key);
    tether_group_t *grp = h ? container_of(h, tether_group_t, by_name) : NULL;
    return grp && strcasecmp(grp->name, name) == 0 ? grp : NULL;
}

static void group_free(tether_groups_t *g, tether_group_t *grp)
{
    tether_hmap_remove(&g->by_name, &grp->by_name);
    tether_list_del(&g->groups, &grp->ln);
    g->ngroups--;
    free(grp->members);
    free(grp);
}

int tether_group_check(const tether_node_t *n, const char *name, const char *pattern,
                       const char *const *members, size_t nmembers)
{
    const tether_groups_t *g = &n->groups;
    size_t nl = strlen(name), pl = pattern ? strlen(pattern) : 0;
    /* one way of naming members: a list or a pattern (SPEC S11) */
    if (!nl || nl >= TETHER_IDENTITY_MAX || pl >= TETHER_IDENTITY_MAX || (pl && nmembers) ||
        (!pl && !nmembers))
        return TETHER_EINVAL;
    if (nmembers > n->conf.group_max_members)
        return TETHER_ELIMIT;
    for (size_t i = 0; i < nmembers; i++)
        if (!members[i][0] || strlen(members[i]) >= TETHER_IDENTITY_MAX)
            return TETHER_EINVAL;
    if (!tether_group_find(g, name) && g->ngroups >= n->conf.max_groups)
        return TETHER_ELIMIT;
    return 0;
}

int tether_group_set(tether_node_t *n, const char *name, const char *pattern,
                     const char *const *members, size_t nmembers)
{
    tether_groups_t *g = &n->groups;
    size_t nl = strlen(name), pl = pattern ? strlen(pattern) : 0;
    int rc = tether_group_check(n, name, pattern, members, nmembers);
    if (rc < 0)
        return rc;
    tether_group_t *old = tether_group_find(g, name);
    tether_group_t *grp = calloc(1, sizeof *grp);
    /* a device named twice (any case) is one member: one request each */
    const char **uniq = tether_group_unique(g, members, nmembers, &nmembers);
    if (!grp || !uniq || (nmembers && !(grp->members = names_pack(uniq, nmembers)))) {
        free(uniq);
        free(grp);
        return TETHER_ENOMEM;
    }
    free(uniq);
    memcpy(grp->name, name, nl + 1);
    if (pl)
        memcpy(grp->pattern, pattern, pl + 1);
    grp->nmembers = nmembers;
    if (old)
        group_free(g, old);
    uint8_t key[NAME_KEY];
    name_key(g, name, key);
    if (tether_hmap_insert(&g->by_name, &grp->by_name, key, sizeof key) < 0) {
        free(grp->members); /* a 128-bit digest collision between two names */
        free(grp);
        return TETHER_ELIMIT;
    }
    tether_list_push(&g->groups, &grp->ln);
    g->ngroups++;
    return 0;
}

int tether_group_remove(tether_node_t *n, const char *name)
{
    tether_group_t *grp = tether_group_find(&n->groups, name);
    if (!grp)
        return TETHER_ENOTFOUND;
    group_free(&n->groups, grp);
    return 0;
}

/* Stops a fan-out's pacing and its member requests still out, so late
 * responses find no request and are dropped (draft §3.5.1). */
static void fan_stop(tether_node_t *n, group_fan_t *f)
{
    tether_groups_t *g = &n->groups;
    while (f->subs.head) {
        relay_req_t *r = container_of(f->subs.head, relay_req_t, in_fan);
        g->late_dropped++;
        tether_relay_cancel(n, r); /* detaches it from f */
    }
    g->late_dropped += tether_xrelay_group_cancel(n, &f->xsubs);
    tether_heap_disarm(&g->timers, &f->deadline);
    tether_heap_disarm(&g->timers, &f->pace);
}

/* Ends a fan-out and frees it; member observers still listed are only
 * detached (teardown: the observation table frees them). */
static void fan_end(tether_node_t *n, group_fan_t *f)
{
    tether_groups_t *g = &n->groups;
    fan_stop(n, f);
    while (f->obs.head) {
        tether_observer_t *ob = container_of(f->obs.head, tether_observer_t, in_group);
        tether_list_del(&f->obs, &ob->in_group);
        ob->group = NULL;
    }
    tether_xrelay_group_detach(&f->xobs);
    tether_list_del(&g->fans, &f->ln);
    g->nfans--;
    tether_bounds_release(&n->bounds, f->charged, TETHER_BOUND_GROUPS);
    free(f->members);
    free(f);
}

void tether_group_obs_left(tether_node_t *n, tether_observer_t *ob)
{
    group_fan_t *f = ob->group;
    tether_list_del(&f->obs, &ob->in_group);
    ob->group = NULL;
    /* draft §3.5.2: after T' the group observation lives while one of its
     * members' observations does */
    if (f->expired && !f->ending && !f->obs.head && !f->xobs.head)
        fan_end(n, f);
}

tether_list_t *tether_group_xobs(group_fan_t *f)
{
    return &f->xobs;
}

void tether_group_client_of(const group_fan_t *f, tether_link_t *link, const uint8_t **tok,
                            uint8_t *tkl)
{
    *link = f->client;
    *tok = f->ctok;
    *tkl = f->ctkl;
}

void tether_group_xobs_left(tether_node_t *n, group_fan_t *f)
{
    if (f->expired && !f->ending && !f->obs.head && !f->xobs.head)
        fan_end(n, f);
}

bool tether_group_obs_check_due(const group_fan_t *f, tether_time_t interval, tether_time_t now)
{
    return f->expired && (!f->checked_at || now - f->checked_at >= interval);
}

void tether_group_obs_checked(group_fan_t *f, tether_time_t now)
{
    f->checked_at = now ? now : 1;
}

void tether_group_obs_cancel(tether_node_t *n, group_fan_t *f, tether_time_t now)
{
    f->ending = true;
    while (f->obs.head) /* the last observer of each cancels it on the device */
        tether_observe_leave(n, container_of(f->obs.head, tether_observer_t, in_group), now);
    tether_xrelay_group_leave(n, &f->xobs, false, now); /* ... or at its node (XEND) */
    fan_end(n, f);
}

/* T' passed for fan-out `f`. A plain one ends. A group observation keeps
 * the members that sent a notification (draft §3.5.2: a 2.xx with
 * Observe) and ends when none did; members silent so far are dropped,
 * like late responses. */
static void fan_expire(tether_node_t *n, group_fan_t *f, tether_time_t now)
{
    fan_stop(n, f);
    f->ending = true;
    for (tether_lnode_t *l = f->obs.head, *next; l; l = next) {
        next = l->next;
        tether_observer_t *ob = container_of(l, tether_observer_t, in_group);
        if (!ob->notified)
            tether_observe_leave(n, ob, now);
    }
    tether_xrelay_group_leave(n, &f->xobs, true, now);
    f->ending = false;
    f->expired = true;
    if (!f->obs.head && !f->xobs.head)
        fan_end(n, f);
}

/* The fan-out of client `link` with token tok[tkl] (`obs`: a group
 * observation's only). */
static group_fan_t *fan_find(const tether_groups_t *g, const tether_link_t *link,
                             const uint8_t *tok, size_t tkl, bool obs)
{
    for (tether_lnode_t *l = g->fans.head; l; l = l->next) {
        group_fan_t *f = container_of(l, group_fan_t, ln);
        if ((f->observe || !obs) && f->ctkl == tkl && memcmp(f->ctok, tok, tkl) == 0 &&
            tether_link_equal(&f->client, link))
            return f;
    }
    return NULL;
}

void tether_group_link_down(tether_node_t *n, const tether_link_t *link, tether_time_t now)
{
    tether_groups_t *g = &n->groups;
    for (tether_lnode_t *l = g->fans.head, *next; l; l = next) {
        next = l->next;
        group_fan_t *f = container_of(l, group_fan_t, ln);
        if (!tether_link_equal(&f->client, link))
            continue;
        /* nobody left to answer: removing a fan-out's observers frees
         * only that fan-out, so `next` stays valid */
        if (f->observe)
            tether_group_obs_cancel(n, f, now);
        else
            fan_end(n, f);
    }
}

bool tether_group_early_stop(tether_node_t *n, const tether_peer_t *peer,
                             const tether_coap_msg_t *req, tether_time_t now)
{
    const tether_coap_opt_t *mt = tether_coap_msg_find_opt(req, n->conf.opt_multicast_timeout);
    uint32_t t;
    group_fan_t *f;
    if (req->code != TETHER_COAP_GET || !mt || tether_coap_uint_decode(mt->val, mt->len, &t) < 0 ||
        t != 0 || !(f = fan_find(&n->groups, &peer->link, req->token, req->tkl, false)))
        return false;
    if (f->observe) /* every member's observation ends (group.h) */
        tether_group_obs_cancel(n, f, now);
    else
        fan_end(n, f); /* member requests still out are cancelled */
    /* Nothing to answer: the client freed the token (§3.1.3); a CON is
     * acknowledged so that it is not retransmitted. */
    if (req->type == TETHER_COAP_CON)
        tether_reply_empty(n, &peer->link, TETHER_COAP_ACK, req->mid);
    return true;
}

void tether_groups_free(tether_node_t *n)
{
    tether_groups_t *g = &n->groups;
    while (g->fans.head)
        fan_end(n, container_of(g->fans.head, group_fan_t, ln));
    while (g->groups.head)
        group_free(g, container_of(g->groups.head, tether_group_t, ln));
    tether_hmap_free(&g->by_name);
    tether_heap_free(&g->timers);
}

void tether_group_detach(relay_req_t *r)
{
    tether_list_del(&r->fan->subs, &r->in_fan);
    r->fan = NULL;
}

/* Sends the next batch of members their request (the "popcorn" pacing);
 * arms the next step while members remain. */
static void fan_step(tether_node_t *n, group_fan_t *f, tether_time_t now)
{
    tether_groups_t *g = &n->groups;
    static tether_coap_msg_t m;
    tether_coap_perr_t perr;
    if (tether_coap_parse(&m, f->up, f->up_len, &perr) < 0) {
        f->next = f->nmembers; /* cannot happen: tether encoded it */
        return;
    }
    for (uint32_t sent = 0; f->next < f->nmembers && sent < n->conf.group_pacing_burst;) {
        if (f->cached && tether_group_cache_send(n, &f->client, f->ctok, f->ctkl, &m,
                                                 f->members[f->next], f->etag, now)) {
            f->next++;
            sent++;
            continue;
        } /* evicted since: this member is asked */
        tether_device_t *d = tether_registry_find_host(&n->reg, f->members[f->next]);
        tether_coap_msg_t up = m;
        if (!d || !d->link_up) {
            /* Its tunnel may be on another node (xrelay.h): observed
             * there, or a plain request there (group.h). Else one
             * registered here waits for its tunnel like any request; no
             * server answers for the rest. */
            int rc = f->observe ? tether_xrelay_group_observe(n, &up, f->members[f->next], f, now)
                                : TETHER_EINVAL;
            if (rc == TETHER_ENOMEM) { /* skipped, as a member here beyond the bounds */
                f->next++;
                continue;
            }
            if (rc == TETHER_EINVAL) /* not observable: a plain request */
                rc = tether_xrelay_group(n, &up, f->members[f->next], f, now);
            if (rc == TETHER_ELIMIT)
                break;
            if (rc == 0 || !d) {
                f->next++;
                sent += rc == 0;
                g->members_sent += rc == 0;
                continue;
            }
        }
        int rc = TETHER_EINVAL;
        if (f->observe) { /* draft §3.2.2: tether observes every member */
            tether_observer_t *ob;
            /* the client's observer share (bounds.h): beyond it, skipped */
            rc = tether_bounds_charge_more(f->charged, TETHER_BOUND_OBSERVERS,
                                           n->conf.max_observers_per_client);
            if (rc == 0) {
                rc =
                    tether_observe_group_join(n, d, &up, &f->client, f->ctok, f->ctkl, f, &ob, now);
                if (rc == 0)
                    ob->charged = f->charged; /* released when it goes (observe.c) */
                else
                    tether_bounds_release(&n->bounds, f->charged, TETHER_BOUND_OBSERVERS);
            } else {
                n->stats.bound_observers++;
            }
            if (rc == 0)
                tether_list_push(&f->obs, &ob->in_group);
            else if (rc == TETHER_ELIMIT)
                rc = TETHER_ENOMEM; /* the observer bounds: this member is skipped */
        }
        if (rc == TETHER_EINVAL) /* not observable: a plain request */
            rc = tether_relay_group(n, d, &up, f, now);
        if (rc == TETHER_ELIMIT)
            break; /* the proxy or the device's queue is full: next step */
        f->next++;
        if (rc == 0) {
            sent++;
            g->members_sent++;
        }
    }
    if (f->next < f->nmembers)
        tether_heap_arm(&g->timers, &f->pace, now + n->conf.group_pacing_interval_ms);
    else if (f->cached && !f->subs.head && !f->xsubs.head)
        fan_end(n, f); /* all served from the cache: nothing more can come */
}

/* Names gathered for a snapshot: borrowed (this node's devices) or owned
 * (copies of directory records, which live only during the store's
 * callback), in a growing array. */
typedef struct {
    const tether_node_t *n;
    const char *pattern;
    const char **names;
    size_t k, cap, max, first_owned;
    uint64_t cursor;
    bool more, nomem;
} gather_t;

static void gather(gather_t *s, const char *name, bool copy)
{
    if (s->k == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 16;
        const char **nn = realloc(s->names, nc * sizeof *nn);
        if (!nn) {
            s->nomem = true;
            return;
        }
        s->names = nn;
        s->cap = nc;
    }
    const char *v = copy ? strdup(name) : name;
    if (!v) {
        s->nomem = true;
        return;
    }
    s->names[s->k++] = v;
}

/* One directory record: another node's device matching the pattern. */
static void dir_one(void *user, const tether_store_result_t *res)
{
    gather_t *s = user;
    s->more = res->rc == 0 && res->rec && res->cursor;
    if (!s->more)
        return;
    s->cursor = res->cursor;
    const tether_store_device_t *d = &res->rec->u.device;
    if (d->node_id && d->node_id != s->n->conf.node_id &&
        !tether_registry_find_host(&s->n->reg, d->name) &&
        fnmatch(s->pattern, d->name, FNM_NOESCAPE) == 0)
        gather(s, d->name, true);
}

/* The members of grp as they are now, at most conf.group_max_members:
 * the list, or the devices matching the pattern, this node's first, then
 * those the directory has on other nodes (the store answers from its
 * replica at once, no Redis round trip: xrelay.h). */
static size_t snapshot(const tether_node_t *n, const tether_group_t *grp, tether_time_t now,
                       char ***out)
{
    *out = NULL;
    if (!grp->pattern[0]) {
        size_t k =
            grp->nmembers < n->conf.group_max_members ? grp->nmembers : n->conf.group_max_members;
        *out = names_pack((const char *const *)grp->members, k);
        return *out ? k : 0;
    }
    gather_t s = {.n = n, .pattern = grp->pattern, .max = n->conf.group_max_members, .more = true};
    for (const tether_lnode_t *l = n->reg.order.head; l && s.k < s.max && !s.nomem; l = l->next) {
        const tether_device_t *d = container_of(l, tether_device_t, order);
        if (fnmatch(grp->pattern, d->name, FNM_NOESCAPE) == 0)
            gather(&s, d->name, false);
    }
    s.first_owned = s.k;
    while (s.more && s.k < s.max && !s.nomem) {
        s.more = false; /* a store that does not answer at once ends it */
        if (tether_store_scan(n->store, TETHER_STORE_DEVICE, s.cursor, now, dir_one, &s) < 0)
            break;
    }
    /* A device may come twice: registered here under one case and in the
     * directory under another, or a directory record not yet replaced
     * after it moved; one request each (names match without case). */
    size_t k = 0;
    const char **uniq = s.nomem ? NULL : tether_group_unique(&n->groups, s.names, s.k, &k);
    if (k > s.max)
        k = s.max;
    *out = uniq ? names_pack(uniq, k) : NULL;
    free(uniq);
    for (size_t i = s.first_owned; i < s.k; i++)
        free((char *)s.names[i]);
    free(s.names);
    return *out ? k : 0;
}

void tether_group_request(tether_node_t *n, const tether_peer_t *peer, const tether_coap_msg_t *req,
                          tether_group_t *grp, tether_coap_msg_t *up, bool skip_uri,
                          tether_time_t now)
{
    tether_groups_t *g = &n->groups;
    const tether_link_t *link = &peer->link;
    const tether_coap_opt_t *mt = tether_coap_msg_find_opt(req, n->conf.opt_multicast_timeout);
    uint32_t tsec = 0, ov = 1;
    bool observing = (req->code == TETHER_COAP_GET || req->code == TETHER_COAP_FETCH) &&
                     tether_coap_msg_get_uint(req, TETHER_COAP_OPT_OBSERVE, &ov) == 0;
    /* RFC 7641 §3.6 through the proxy: Observe 1 with the token of a group
     * observation cancels it at every member; Observe 0 with it registers
     * anew. The request itself goes on like any group request. */
    group_fan_t *old = observing ? fan_find(g, link, req->token, req->tkl, true) : NULL;
    if (old)
        tether_group_obs_cancel(n, old, now);
    if (!mt || tether_coap_uint_decode(mt->val, mt->len, &tsec) < 0) {
        /* draft §3.2 step 3: the client must say it takes several
         * responses, and for how long; the option with value 0 (empty)
         * says what was missing. */
        tether_coap_msg_t resp;
        static const char diag[] = "group request: Multicast-Timeout missing";
        tether_reply_start(n, link, req, TETHER_COAP_BAD_REQUEST, &resp, now);
        tether_coap_msg_add_opt(&resp, n->conf.opt_multicast_timeout, NULL, 0);
        resp.payload = (const uint8_t *)diag;
        resp.payload_len = sizeof diag - 1;
        tether_reply_send(n, link, req, &resp);
        g->rejected++;
        return;
    }
    /* draft §3.2 step 2: the client must be allowed group requests */
    if (peer->identity &&
        !tether_creds_allowed_group(n->creds, peer->identity, grp->name, req->code)) {
        n->stats.relay_denied++;
        g->rejected++;
        tether_reply_code(n, link, req, TETHER_COAP_FORBIDDEN, NULL, now);
        return;
    }
    uint64_t ms = (uint64_t)tsec * 1000;
    if (ms > n->conf.group_timeout_max_ms)
        ms = n->conf.group_timeout_max_ms;
    /* The client's share of the fan-outs (bounds.h), before the node's
     * own bound: one client must not take group_max_requests from all the
     * others. 4.29 with the time by which its fan-outs have surely ended
     * T' (RFC 8516 §4), as relay.c does for pending requests. */
    tether_bclient_t *charged;
    int brc = tether_bounds_charge(&n->bounds, peer, TETHER_BOUND_GROUPS,
                                   n->conf.max_group_requests_per_client, &charged);
    if (brc == TETHER_ELIMIT) {
        g->rejected++;
        n->stats.bound_groups++;
        tether_reply_retry(n, link, req, TETHER_COAP_TOO_MANY_REQUESTS,
                           (uint32_t)((ms + 999) / 1000), now);
        return;
    }
    if (brc < 0) {
        tether_reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return;
    }
    if (g->nfans >= n->conf.group_max_requests) {
        g->rejected++;
        tether_bounds_release(&n->bounds, charged, TETHER_BOUND_GROUPS);
        tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "too many group requests",
                          now);
        return;
    }
    /* step 4: Multicast-Timeout is not forwarded (nor Observe, group.h) */
    if (tether_relay_forward_opts(n, req, up, skip_uri) < 0) {
        tether_bounds_release(&n->bounds, charged, TETHER_BOUND_GROUPS);
        tether_reply_code(n, link, req, TETHER_COAP_BAD_GATEWAY, "option cannot be forwarded", now);
        return;
    }
    up->payload = req->payload;
    up->payload_len = req->payload_len;
    tether_coap_msg_set_token(up, NULL, 0);
    size_t len = tether_coap_encoded_size(up);
    group_fan_t *f = len <= TETHER_MSG_MAX ? calloc(1, sizeof *f + len) : NULL;
    if (!f || tether_heap_reserve(&g->timers, 2 * (g->nfans + 1)) < 0 ||
        tether_coap_encode(up, f->up, len, &len) < 0) {
        free(f);
        tether_bounds_release(&n->bounds, charged, TETHER_BOUND_GROUPS);
        tether_reply_code(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return;
    }
    f->up_len = (uint16_t)len;
    f->nmembers = snapshot(n, grp, now, &f->members);
    f->observe = observing && ov == 0 && tsec > 0 && link->kind != TETHER_LINK_INTERNAL;
    /* draft §5.2: every member fresh in the cache: nothing reaches a
     * device; the entries go out paced like a fan-out (fan_step), not in
     * one burst of up to group_max_members NONs */
    int cached = !f->observe && tsec > 0 ? tether_group_cache_check(n, link, req, up, f->members,
                                                                    f->nmembers, f->etag, now)
                                         : 0;
    f->cached = cached == 2;
    if (cached == 1) { /* 2.03: the client's set is current */
        tether_bounds_release(&n->bounds, charged, TETHER_BOUND_GROUPS);
        free(f->members);
        free(f);
        return;
    }
    f->client = *link;
    f->charged = charged;
    f->ctkl = req->tkl;
    memcpy(f->ctok, req->token, req->tkl);
    f->drop_all = tsec == 0;
    tether_timer_init(&f->deadline);
    tether_timer_init(&f->pace);
    f->deadline.tag = G_DEADLINE;
    f->pace.tag = G_PACE;
    tether_list_push(&g->fans, &f->ln);
    g->nfans++;
    g->requests++;
    /* Responses come as separate NONs (several per request): a CON is
     * acknowledged now (RFC 7252 §5.2.2). */
    if (req->type == TETHER_COAP_CON)
        tether_reply_empty(n, link, TETHER_COAP_ACK, req->mid);
    tether_heap_arm(&g->timers, &f->deadline, now + ms); /* room reserved above */
    fan_step(n, f, now);
}

/* Reply-From (group.h): the CBOR CRI [-1, "<device>"]. */
size_t tether_group_reply_from(const char *device, uint8_t out[TETHER_REPLY_FROM_MAX])
{
    size_t dl = strlen(device), o = 0;
    out[o++] = 0x82; /* array of 2 */
    out[o++] = 0x20; /* -1: coap */
    if (dl < 24) {
        out[o++] = (uint8_t)(0x60 | dl);
    } else {
        out[o++] = 0x78; /* text, one-byte length (names are < 128 bytes) */
        out[o++] = (uint8_t)dl;
    }
    memcpy(out + o, device, dl);
    return o + dl;
}

void tether_group_answer(tether_node_t *n, group_fan_t *f, const char *device, bool remote,
                         const tether_coap_msg_t *resp, tether_time_t now)
{
    if (f->drop_all)
        return;
    tether_group_cache_store(n, f->up, f->up_len, device, remote, resp, now);
    static tether_coap_msg_t out;
    uint8_t rf[TETHER_REPLY_FROM_MAX];
    out = *resp;
    if (tether_coap_msg_add_opt(&out, n->conf.opt_reply_from, rf,
                                tether_group_reply_from(device, rf)) < 0)
        return; /* no room for the one option that says who answered */
    n->groups.responses++;
    tether_reply_to(n, &f->client, TETHER_COAP_NON, 0, f->ctok, f->ctkl, true, &out, now);
}

void tether_group_tick(tether_node_t *n, tether_time_t now)
{
    tether_timer_t *t;
    while ((t = tether_heap_pop_due(&n->groups.timers, now))) {
        if (t->tag == G_DEADLINE)
            fan_expire(n, container_of(t, group_fan_t, deadline), now);
        else
            fan_step(n, container_of(t, group_fan_t, pace), now);
    }
}

tether_time_t tether_group_next_deadline(const tether_node_t *n)
{
    const tether_timer_t *t = tether_heap_top(&n->groups.timers);
    return t ? t->at : UINT64_MAX;
}

tether_bclient_t *tether_group_client(group_fan_t *f)
{
    return f->charged;
}

tether_list_t *tether_group_xsubs(group_fan_t *f)
{
    return &f->xsubs;
}

void tether_group_attach(group_fan_t *f, relay_req_t *r)
{
    r->fan = f;
    tether_list_push(&f->subs, &r->in_fan);
}
