/* The proxy's response cache (see cache.h).
 *
 * A key is laid out so that every distinct request gives distinct bytes:
 *   path part:  [target length][target][number of paths][(len16, segment)...]
 *   the rest:   [method][number of options][(num16, len16, value)...][payload]
 * (the payload only for FETCH). An entry keeps the response's options
 * pre-encoded in two runs around Max-Age (option 14), so a hit is served by
 * copying them around a freshly computed Max-Age. */
#include <stdlib.h>
#include <string.h>

#include "proxy/cache.h"
#include "util/hash.h"
#include "util/hmap.h"
#include "util/list.h"

#include "util/container.h"
#define DIGEST_LEN sizeof(uint64_t)
#define PATH_SEED 0x6a09e667f3bcc909ull
#define MAX_STORED (64u * 1024) /* options of one entry; its payload by default */

/* The entries that share a path part (what invalidation reaches). */
typedef struct {
    tether_hnode_t node; /* key: digest of the path part */
    tether_list_t entries;
} cache_path_t;

struct tether_cache_entry {
    tether_hnode_t by_key; /* key: digest of the whole key */
    tether_lnode_t lru;
    tether_lnode_t sibling; /* in path->entries */
    cache_path_t *path;
    tether_time_t expires; /* fresh while now < expires */
    size_t size;           /* bytes charged to the budget */
    uint32_t klen, pre_len, post_len, payload_len;
    uint16_t last_pre; /* number of the last option before Max-Age, 0: none */
    uint8_t code;
    uint8_t etag_len;
    uint8_t etag[8];
    uint8_t data[]; /* key, options before Max-Age, options after it, payload */
};

struct tether_cache {
    tether_cache_conf_t conf;
    tether_hmap_t by_key, by_path;
    tether_list_t lru; /* head: least recently used */
    tether_cache_stats_t st;
};

/* ---- keys ---------------------------------------------------------------------- */

/* Keys are found by their seeded digest (util/hash.h); the seed keeps
 * remote peers from predicting collisions, and a collision only costs a
 * miss. */
uint64_t tether_cache_key_digest(const tether_cache_key_t *k, uint64_t seed)
{
    return tether_hash64(seed, k->buf, k->len);
}

static int put(tether_cache_key_t *k, const void *p, size_t n)
{
    if (n > (size_t)(TETHER_CACHE_KEY_MAX - k->len))
        return TETHER_ENOSPC;
    if (n)
        memcpy(k->buf + k->len, p, n);
    k->len = (uint16_t)(k->len + n);
    return 0;
}

static int put16(tether_cache_key_t *k, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return put(k, b, 2);
}

/* Whether option `num` of a request selects the representation (RFC 7252
 * §5.4.6): not NoCacheKey, not naming the target (the target replaces
 * those), not Uri-Path (in the path part), not ETag (a validator). */
static bool opt_in_key(uint16_t num)
{
    if (tether_coap_opt_nocachekey(num))
        return false;
    switch (num) {
    case TETHER_COAP_OPT_URI_HOST:
    case TETHER_COAP_OPT_URI_PORT:
    case TETHER_COAP_OPT_PROXY_URI:
    case TETHER_COAP_OPT_PROXY_SCHEME:
    case TETHER_COAP_OPT_URI_PATH:
    case TETHER_COAP_OPT_ETAG:
    case TETHER_COAP_OPT_OBSERVE:
    case TETHER_COAP_OPT_MAX_AGE: return false;
    default: return true;
    }
}

int tether_cache_key_path(tether_cache_key_t *k, const char *target, const tether_coap_msg_t *msg,
                          uint16_t path_opt)
{
    size_t tl = strlen(target);
    uint8_t b;
    k->len = k->path_len = 0;
    if (tl > 255)
        return TETHER_EINVAL;
    b = (uint8_t)tl;
    if (put(k, &b, 1) < 0 || put(k, target, tl) < 0)
        return TETHER_ENOSPC;
    const tether_coap_opt_t *first = tether_coap_msg_find_opt(msg, path_opt), *o;
    b = 0;
    for (o = first; o; o = tether_coap_msg_next_opt(msg, o))
        b++; /* at most TETHER_COAP_MAX_OPTS */
    if (put(k, &b, 1) < 0)
        return TETHER_ENOSPC;
    for (o = first; o; o = tether_coap_msg_next_opt(msg, o))
        if (put16(k, o->len) < 0 || put(k, o->val, o->len) < 0)
            return TETHER_ENOSPC;
    k->path_len = k->len;
    return 0;
}

int tether_cache_key(tether_cache_key_t *k, const char *target, const tether_coap_msg_t *req)
{
    int rc = tether_cache_key_path(k, target, req, TETHER_COAP_OPT_URI_PATH);
    if (rc < 0)
        return rc;
    if (put(k, &req->code, 1) < 0 || put(k, "", 1) < 0)
        return TETHER_ENOSPC;
    uint16_t at = (uint16_t)(k->len - 1);
    uint8_t nopts = 0;
    for (size_t i = 0; i < req->nopts; i++) {
        const tether_coap_opt_t *o = &req->opts[i];
        if (!opt_in_key(o->num))
            continue;
        if (put16(k, o->num) < 0 || put16(k, o->len) < 0 || put(k, o->val, o->len) < 0)
            return TETHER_ENOSPC;
        nopts++;
    }
    k->buf[at] = nopts;
    if (req->code == TETHER_COAP_FETCH && put(k, req->payload, req->payload_len) < 0)
        return TETHER_ENOSPC;
    return 0;
}

int tether_cache_key_request(const uint8_t *key, size_t len, tether_coap_msg_t *out)
{
    /* The layout tether_cache_key writes: target(1 + n) | path count(1) |
     * segments (len16 | bytes) | code(1) | option count(1) | options
     * (num16 | len16 | bytes) | FETCH payload. */
    size_t at = 0;
#define NEED(n)                                                                                    \
    do {                                                                                           \
        if ((size_t)(n) > len - at)                                                                \
            return TETHER_EPROTO;                                                                  \
    } while (0)
    NEED(1);
    size_t tl = key[at++];
    NEED(tl + 1);
    const uint8_t *target = key + at;
    at += tl;
    size_t np = key[at++];
    const uint8_t *seg = key + at;
    for (size_t i = 0; i < np; i++) {
        NEED(2);
        size_t sl = (size_t)key[at] << 8 | key[at + 1];
        NEED(2 + sl);
        at += 2 + sl;
    }
    NEED(2);
    uint8_t code = key[at++];
    size_t no = key[at++];
    if (!tl || (code != TETHER_COAP_GET && code != TETHER_COAP_FETCH))
        return TETHER_EPROTO;
    tether_coap_msg_init(out, TETHER_COAP_NON, code, 0);
    if (tether_coap_msg_add_opt(out, TETHER_COAP_OPT_URI_HOST, target, tl) < 0)
        return TETHER_EPROTO;
    for (size_t i = 0; i < np; i++) {
        size_t sl = (size_t)seg[0] << 8 | seg[1];
        if (tether_coap_msg_add_opt(out, TETHER_COAP_OPT_URI_PATH, seg + 2, sl) < 0)
            return TETHER_EPROTO;
        seg += 2 + sl;
    }
    for (size_t i = 0, prev = 0; i < no; i++) {
        NEED(4);
        uint16_t num = (uint16_t)(key[at] << 8 | key[at + 1]);
        size_t ol = (size_t)key[at + 2] << 8 | key[at + 3];
        NEED(4 + ol);
        /* In the order a message holds them (tether_cache_key's). */
        if (num < prev || !opt_in_key(num) ||
            tether_coap_msg_add_opt(out, num, key + at + 4, ol) < 0)
            return TETHER_EPROTO;
        prev = num;
        at += 4 + ol;
    }
#undef NEED
    if (code == TETHER_COAP_FETCH) {
        out->payload = key + at;
        out->payload_len = len - at;
    } else if (at != len) {
        return TETHER_EPROTO;
    }
    return 0;
}

bool tether_cache_request_cacheable(const tether_coap_msg_t *req)
{
    if (req->code != TETHER_COAP_GET && req->code != TETHER_COAP_FETCH)
        return false;
    for (size_t i = 0; i < req->nopts; i++) {
        uint16_t num = req->opts[i].num;
        if (num == TETHER_COAP_OPT_OSCORE || num == TETHER_COAP_OPT_BLOCK1 ||
            num == TETHER_COAP_OPT_BLOCK2)
            return false;
    }
    return true;
}

bool tether_cache_method_unsafe(uint8_t code)
{
    return code == TETHER_COAP_POST || code == TETHER_COAP_PUT || code == TETHER_COAP_DELETE ||
           code == TETHER_COAP_PATCH || code == TETHER_COAP_IPATCH;
}

/* ---- the table ------------------------------------------------------------------ */

int tether_cache_create(const tether_cache_conf_t *conf, tether_cache_t **out)
{
    if (!conf->max_bytes)
        return TETHER_EINVAL;
    int rc = TETHER_ENOMEM;
    tether_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return rc;
    c->conf = *conf;
    if ((rc = tether_hmap_init(&c->by_key, 1024, conf->seed)) < 0)
        goto fail_key;
    if ((rc = tether_hmap_init(&c->by_path, 1024, conf->seed ^ PATH_SEED)) < 0)
        goto fail_path;
    *out = c;
    return 0;
fail_path:
    tether_hmap_free(&c->by_key);
fail_key:
    free(c);
    return rc;
}

static void entry_remove(tether_cache_t *c, tether_cache_entry_t *e)
{
    tether_hmap_remove(&c->by_key, &e->by_key);
    tether_list_del(&c->lru, &e->lru);
    cache_path_t *p = e->path;
    tether_list_del(&p->entries, &e->sibling);
    if (!p->entries.head) {
        tether_hmap_remove(&c->by_path, &p->node);
        c->st.bytes -= sizeof *p;
        free(p);
    }
    c->st.bytes -= e->size;
    c->st.entries--;
    free(e);
}

void tether_cache_destroy(tether_cache_t *c)
{
    if (!c)
        return;
    while (c->lru.head)
        entry_remove(c, container_of(c->lru.head, tether_cache_entry_t, lru));
    tether_hmap_free(&c->by_key);
    tether_hmap_free(&c->by_path);
    free(c);
}

const tether_cache_stats_t *tether_cache_stats(const tether_cache_t *c)
{
    return &c->st;
}

/* The entry holding `k`'s digest, whichever key it has. */
static tether_cache_entry_t *by_digest(const tether_cache_t *c, const tether_cache_key_t *k)
{
    uint64_t d = tether_hash64(c->conf.seed, k->buf, k->len);
    tether_hnode_t *h = tether_hmap_find(&c->by_key, &d, DIGEST_LEN);
    return h ? container_of(h, tether_cache_entry_t, by_key) : NULL;
}

/* The entry for exactly `k`, or NULL. */
static tether_cache_entry_t *find(const tether_cache_t *c, const tether_cache_key_t *k)
{
    tether_cache_entry_t *e = by_digest(c, k);
    if (!e || e->klen != k->len || memcmp(e->data, k->buf, k->len) != 0)
        return NULL;
    return e;
}

static void touch(tether_cache_t *c, tether_cache_entry_t *e)
{
    tether_list_del(&c->lru, &e->lru);
    tether_list_push(&c->lru, &e->lru);
}

tether_cache_state_t tether_cache_lookup(tether_cache_t *c, const tether_cache_key_t *k,
                                         tether_time_t now, tether_cache_entry_t **out)
{
    tether_cache_entry_t *e = find(c, k);
    if (!e)
        return TETHER_CACHE_MISS;
    if (now >= e->expires && !e->etag_len) {
        entry_remove(c, e);
        return TETHER_CACHE_MISS;
    }
    touch(c, e);
    *out = e;
    return now < e->expires ? TETHER_CACHE_FRESH : TETHER_CACHE_STALE;
}

size_t tether_cache_etag(const tether_cache_entry_t *e, const uint8_t **etag)
{
    *etag = e->etag;
    return e->etag_len;
}

size_t tether_cache_payload_len(const tether_cache_entry_t *e)
{
    return e->payload_len;
}

/* ---- storing ------------------------------------------------------------------- */

/* Max-Age of `m` in *secs (the default when absent); false when malformed. */
static bool max_age(const tether_coap_msg_t *m, uint32_t *secs)
{
    *secs = TETHER_CACHE_DEFAULT_MAX_AGE;
    if (!tether_coap_msg_find_opt(m, TETHER_COAP_OPT_MAX_AGE))
        return true;
    return tether_coap_msg_get_uint(m, TETHER_COAP_OPT_MAX_AGE, secs) == 0;
}

/* RFC 7252 §5.9: 2.05 is cacheable; errors are too, but only those that
 * say for how long (an error without Max-Age would stick for 60 s). */
static bool response_cacheable(const tether_coap_msg_t *r, uint32_t *secs)
{
    if (!max_age(r, secs) || *secs == 0)
        return false;
    uint8_t cls = TETHER_COAP_CLASS(r->code);
    if (r->code != TETHER_COAP_CONTENT &&
        !((cls == 4 || cls == 5) && tether_coap_msg_find_opt(r, TETHER_COAP_OPT_MAX_AGE)))
        return false;
    if (tether_coap_msg_find_opt(r, TETHER_COAP_OPT_BLOCK2) ||
        tether_coap_msg_find_opt(r, TETHER_COAP_OPT_OSCORE))
        return false;
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(r, TETHER_COAP_OPT_ETAG);
    return !et || (et->len >= 1 && et->len <= 8);
}

/* The 4-bit field and extension bytes of an option delta or length. */
static size_t nibble(uint32_t v, uint8_t *nib, uint8_t *ext)
{
    if (v < 13) {
        *nib = (uint8_t)v;
        return 0;
    }
    if (v < 269) {
        *nib = 13;
        ext[0] = (uint8_t)(v - 13);
        return 1;
    }
    *nib = 14;
    ext[0] = (uint8_t)((v - 269) >> 8);
    ext[1] = (uint8_t)(v - 269);
    return 2;
}

/* Writes an option header (delta from the previous option, value length)
 * at p, or only measures it when p is NULL; returns its size. */
static size_t opt_head(uint8_t *p, uint32_t delta, uint32_t len)
{
    uint8_t dn, ln, ext[4];
    size_t n = nibble(delta, &dn, ext);
    n += nibble(len, &ln, ext + n);
    if (p) {
        p[0] = (uint8_t)(dn << 4 | ln);
        memcpy(p + 1, ext, n);
    }
    return 1 + n;
}

/* Options an entry keeps: all but Max-Age (recomputed when served) and
 * Observe (a cached answer is not a notification). */
static bool opt_stored(uint16_t num)
{
    return num != TETHER_COAP_OPT_MAX_AGE && num != TETHER_COAP_OPT_OBSERVE;
}

/* Encodes the kept options of `m` numbered below Max-Age (after = false,
 * deltas from 0) or above it (after = true, deltas from 14) at p, or only
 * measures them when p is NULL. *last gets the last number written. */
static size_t encode_opts(const tether_coap_msg_t *m, bool after, uint8_t *p, uint16_t *last)
{
    uint16_t prev = after ? TETHER_COAP_OPT_MAX_AGE : 0;
    size_t n = 0;
    for (size_t i = 0; i < m->nopts; i++) {
        const tether_coap_opt_t *o = &m->opts[i];
        if (!opt_stored(o->num) || (o->num > TETHER_COAP_OPT_MAX_AGE) != after)
            continue;
        n += opt_head(p ? p + n : NULL, (uint32_t)(o->num - prev), o->len);
        if (p && o->len)
            memcpy(p + n, o->val, o->len);
        n += o->len;
        prev = o->num;
    }
    *last = prev;
    return n;
}

/* Drops least recently used entries until `need` more bytes fit. */
static void make_room(tether_cache_t *c, size_t need)
{
    while (c->lru.head && c->st.bytes + need > c->conf.max_bytes) {
        entry_remove(c, container_of(c->lru.head, tether_cache_entry_t, lru));
        c->st.evictions++;
    }
}

/* The path group of `k`, created (and charged) when absent. */
static cache_path_t *path_get(tether_cache_t *c, const tether_cache_key_t *k)
{
    uint64_t d = tether_hash64(c->conf.seed ^ PATH_SEED, k->buf, k->path_len);
    tether_hnode_t *h = tether_hmap_find(&c->by_path, &d, DIGEST_LEN);
    if (h)
        return container_of(h, cache_path_t, node);
    cache_path_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    tether_hmap_insert(&c->by_path, &p->node, &d, DIGEST_LEN);
    c->st.bytes += sizeof *p;
    return p;
}

tether_cache_entry_t *tether_cache_store(tether_cache_t *c, const tether_cache_key_t *k,
                                         const tether_coap_msg_t *resp, tether_time_t now)
{
    tether_cache_entry_t *e = by_digest(c, k);
    if (e) /* replaced, or no longer the current answer */
        entry_remove(c, e);
    uint32_t secs;
    if (!response_cacheable(resp, &secs))
        return NULL;
    uint16_t last_pre, last_post;
    size_t pre = encode_opts(resp, false, NULL, &last_pre);
    size_t post = encode_opts(resp, true, NULL, &last_post);
    size_t max_payload = c->conf.max_payload ? c->conf.max_payload : MAX_STORED;
    if (pre > MAX_STORED || post > MAX_STORED || resp->payload_len > max_payload)
        return NULL;
    size_t size = sizeof *e + k->len + pre + post + resp->payload_len;
    if (size + sizeof(cache_path_t) > c->conf.max_bytes)
        return NULL;
    make_room(c, size + sizeof(cache_path_t));
    e = malloc(size);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    cache_path_t *p = path_get(c, k);
    if (!p) {
        free(e);
        return NULL;
    }
    e->size = size;
    e->expires = now + (tether_time_t)secs * 1000;
    e->code = resp->code;
    e->klen = k->len;
    e->pre_len = (uint32_t)pre;
    e->post_len = (uint32_t)post;
    e->payload_len = (uint32_t)resp->payload_len;
    e->last_pre = last_pre;
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(resp, TETHER_COAP_OPT_ETAG);
    if (et) {
        e->etag_len = (uint8_t)et->len;
        memcpy(e->etag, et->val, et->len);
    }
    uint8_t *w = e->data;
    memcpy(w, k->buf, k->len);
    w += k->len;
    w += encode_opts(resp, false, w, &last_pre);
    w += encode_opts(resp, true, w, &last_post);
    if (resp->payload_len)
        memcpy(w, resp->payload, resp->payload_len);
    uint64_t d = tether_hash64(c->conf.seed, k->buf, k->len);
    tether_hmap_insert(&c->by_key, &e->by_key, &d, DIGEST_LEN); /* digest freed above */
    tether_list_push(&c->lru, &e->lru);
    e->path = p;
    tether_list_push(&p->entries, &e->sibling);
    c->st.bytes += size;
    c->st.entries++;
    c->st.stored++;
    return e;
}

tether_cache_entry_t *tether_cache_validate(tether_cache_t *c, const tether_cache_key_t *k,
                                            const tether_coap_msg_t *resp, tether_time_t now)
{
    tether_cache_entry_t *e = find(c, k);
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(resp, TETHER_COAP_OPT_ETAG);
    uint32_t secs;
    if (!e || !et || et->len != e->etag_len || memcmp(et->val, e->etag, et->len) != 0 ||
        !max_age(resp, &secs))
        return NULL;
    e->expires = now + (tether_time_t)secs * 1000;
    touch(c, e);
    c->st.refreshed++;
    return e;
}

size_t tether_cache_invalidate(tether_cache_t *c, const tether_cache_key_t *k)
{
    uint64_t d = tether_hash64(c->conf.seed ^ PATH_SEED, k->buf, k->path_len);
    tether_hnode_t *h = tether_hmap_find(&c->by_path, &d, DIGEST_LEN);
    if (!h)
        return 0;
    cache_path_t *p = container_of(h, cache_path_t, node);
    size_t n = 0;
    /* Removing the group's last entry frees the group: `next` is read
     * first, and the loop ends there. */
    for (tether_lnode_t *l = p->entries.head, *next; l; l = next) {
        next = l->next;
        tether_cache_entry_t *e = container_of(l, tether_cache_entry_t, sibling);
        if (!e->etag_len) {
            entry_remove(c, e);
            n++;
        } else if (e->expires) {
            e->expires = 0;
            n++;
        }
    }
    c->st.invalidations += n;
    return n;
}

/* ---- serving -------------------------------------------------------------------- */

int tether_cache_encode(const tether_cache_entry_t *e, uint8_t type, uint16_t mid,
                        const uint8_t *token, size_t tkl, bool valid_only, tether_time_t now,
                        uint8_t *buf, size_t cap, size_t *out_len)
{
    if (tkl > TETHER_COAP_MAX_TOKEN)
        return TETHER_EINVAL;
    tether_time_t left = e->expires > now ? (e->expires - now) / 1000 : 0;
    uint8_t ma[4];
    size_t mal = tether_coap_uint_encode(left > UINT32_MAX ? UINT32_MAX : (uint32_t)left, ma);
    const uint8_t *pre = e->data + e->klen, *post = pre + e->pre_len, *payload = post + e->post_len;
    uint16_t before = valid_only ? (e->etag_len ? TETHER_COAP_OPT_ETAG : 0) : e->last_pre;
    size_t need = TETHER_COAP_HDR_SIZE + tkl +
                  opt_head(NULL, TETHER_COAP_OPT_MAX_AGE - before, (uint32_t)mal) + mal;
    if (valid_only)
        need += e->etag_len ? opt_head(NULL, TETHER_COAP_OPT_ETAG, e->etag_len) + e->etag_len : 0;
    else
        need += e->pre_len + e->post_len + (e->payload_len ? 1 + e->payload_len : 0);
    if (need > cap)
        return TETHER_ENOSPC;
    uint8_t *w = buf;
    *w++ = (uint8_t)(TETHER_COAP_VERSION << 6 | (type & 3) << 4 | tkl);
    *w++ = valid_only ? TETHER_COAP_VALID : e->code;
    *w++ = (uint8_t)(mid >> 8);
    *w++ = (uint8_t)mid;
    if (tkl)
        memcpy(w, token, tkl);
    w += tkl;
    if (valid_only) {
        if (e->etag_len) {
            w += opt_head(w, TETHER_COAP_OPT_ETAG, e->etag_len);
            memcpy(w, e->etag, e->etag_len);
            w += e->etag_len;
        }
    } else {
        memcpy(w, pre, e->pre_len);
        w += e->pre_len;
    }
    w += opt_head(w, TETHER_COAP_OPT_MAX_AGE - before, (uint32_t)mal);
    memcpy(w, ma, mal);
    w += mal;
    if (!valid_only) {
        memcpy(w, post, e->post_len);
        w += e->post_len;
        if (e->payload_len) {
            *w++ = 0xff;
            memcpy(w, payload, e->payload_len);
            w += e->payload_len;
        }
    }
    *out_len = (size_t)(w - buf);
    return 0;
}

int tether_cache_view(const tether_cache_entry_t *e, tether_time_t now, uint8_t *buf, size_t cap,
                      tether_coap_msg_t *m)
{
    /* The stored option runs around a fresh Max-Age, parsed like a
     * message without payload; the payload is the entry's own. */
    tether_time_t left = e->expires > now ? (e->expires - now) / 1000 : 0;
    uint8_t ma[4];
    size_t mal = tether_coap_uint_encode(left > UINT32_MAX ? UINT32_MAX : (uint32_t)left, ma);
    const uint8_t *pre = e->data + e->klen, *post = pre + e->pre_len;
    size_t need = TETHER_COAP_HDR_SIZE + e->pre_len +
                  opt_head(NULL, TETHER_COAP_OPT_MAX_AGE - e->last_pre, (uint32_t)mal) + mal +
                  e->post_len;
    if (need > cap)
        return TETHER_ENOSPC;
    uint8_t *w = buf;
    *w++ = (uint8_t)(TETHER_COAP_VERSION << 6 | TETHER_COAP_NON << 4);
    *w++ = e->code;
    *w++ = 0;
    *w++ = 0;
    memcpy(w, pre, e->pre_len);
    w += e->pre_len;
    w += opt_head(w, TETHER_COAP_OPT_MAX_AGE - e->last_pre, (uint32_t)mal);
    memcpy(w, ma, mal);
    w += mal;
    memcpy(w, post, e->post_len);
    w += e->post_len;
    tether_coap_perr_t perr;
    if (tether_coap_parse(m, buf, (size_t)(w - buf), &perr) < 0)
        return TETHER_EPROTO;
    m->payload = post + e->post_len;
    m->payload_len = e->payload_len;
    return 0;
}
