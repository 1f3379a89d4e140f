/* The Redis store's replica (redis_int.h): every record mirrored in
 * memory so reads never wait for Redis, kept current by the change log
 * (XREAD) and rebuilt by resync scans; credential tombstones refuse a
 * version at or below one already seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "redis_int.h"
#include "tether/log.h"

static void digest(const char *rkey, uint8_t out[DIGEST])
{
    uint8_t d[WC_SHA256_DIGEST_SIZE];
    wc_Sha256Hash((const byte *)rkey, (word32)strlen(rkey), d);
    memcpy(out, d, DIGEST);
}

rent_t *rs_rep_find(const tetherd_redis_t *r, const char *rkey)
{
    uint8_t d[DIGEST];
    digest(rkey, d);
    tether_hnode_t *h = tether_hmap_find(&r->map, d, sizeof d);
    rent_t *e = h ? container_of(h, rent_t, hn) : NULL;
    return e && strcmp(e->rkey, rkey) == 0 ? e : NULL;
}

uint64_t rs_tomb_version(const tetherd_redis_t *r, const char *rkey)
{
    uint8_t d[DIGEST];
    digest(rkey, d);
    tether_hnode_t *h = r->tombs.count ? tether_hmap_find(&r->tombs, d, sizeof d) : NULL;
    return h ? container_of(h, tomb_t, hn)->version : 0;
}

/* Remembers that rkey was deleted at `version`. The map is bounded like
 * the replica; when full the version is not remembered (counted). */
void rs_tomb_set(tetherd_redis_t *r, const char *rkey, uint64_t version)
{
    uint8_t d[DIGEST];
    digest(rkey, d);
    tether_hnode_t *h = tether_hmap_find(&r->tombs, d, sizeof d);
    tomb_t *t = h ? container_of(h, tomb_t, hn) : NULL;
    if (!t) {
        if (r->tombs.count >= r->conf.max_records || !(t = calloc(1, sizeof *t))) {
            r->errors++;
            return;
        }
        tether_hmap_insert(&r->tombs, &t->hn, d, sizeof d);
    }
    if (version > t->version)
        t->version = version;
}

/* Whether `version` of credential rkey is newer than all this node has
 * seen of it (live or deleted). Credentials only: other records may
 * legitimately start again (a Redis that lost its data, a device that
 * registers anew), and a stale one of those costs a lookup, not a key. */
static bool cred_newer(tetherd_redis_t *r, const char *rkey, uint64_t version)
{
    const rent_t *e = rs_rep_find(r, rkey);
    if (version > rs_tomb_version(r, rkey) && (!e || version > e->rversion))
        return true;
    r->stale_refused++;
    if (tether_log_enabled(TETHER_LOG_WARN)) {
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long)version);
        tether_log_kv(TETHER_LOG_WARN, "redis", "older credential version refused", "key", rkey,
                      "version", v, NULL);
    }
    return false;
}

void rs_rep_free(tetherd_redis_t *r, rent_t *e)
{
    tether_hmap_remove(&r->map, &e->hn);
    tether_store_scan_forget(&r->scan[e->rr.rec.kind], &e->order);
    tether_list_del(&r->order[e->rr.rec.kind], &e->order);
    r->count--;
    tetherd_rrec_free(&e->rr);
    free(e);
}

/* Removes e and tells the watchers. */
void rs_rep_drop(tetherd_redis_t *r, rent_t *e)
{
    uint8_t key[TETHER_STORE_KEY_MAX];
    size_t kl = e->key_len;
    tether_store_kind_t kind = e->rr.rec.kind;
    memcpy(key, e->key, kl);
    rs_rep_free(r, e);
    tether_store_notify(&r->base, kind, key, kl, 0);
    rs_event(r);
}

/* Stores `rr` (taken over, also on failure) as the record of rkey: a new
 * entry or the existing one replaced. NULL on TETHER_ELIMIT/ENOMEM. */
rent_t *rs_rep_set(tetherd_redis_t *r, const char *rkey, tetherd_rrec_t *rr, uint64_t version)
{
    rent_t *e = rs_rep_find(r, rkey);
    if (e && e->rr.rec.kind != rr->rec.kind) {
        rs_rep_free(r, e); /* cannot happen: the key name carries the kind */
        e = NULL;
    }
    if (!e) {
        uint8_t d[DIGEST];
        digest(rkey, d);
        size_t rl = strlen(rkey);
        if (r->count >= r->conf.max_records || tether_hmap_find(&r->map, d, sizeof d) ||
            !(e = calloc(1, sizeof *e + rl + 1))) {
            tetherd_rrec_free(rr);
            return NULL;
        }
        memcpy(e->rkey, rkey, rl + 1);
        e->seq = ++r->next_seq;
        tether_hmap_insert(&r->map, &e->hn, d, sizeof d);
        tether_list_push(&r->order[rr->rec.kind], &e->order);
        r->count++;
    } else {
        tetherd_rrec_free(&e->rr);
    }
    e->rr = *rr;
    e->version = version;
    e->epoch = r->epoch;
    tether_store_rec_key(&e->rr.rec, e->keybuf, &e->key, &e->key_len);
    return e;
}

/* A deep copy of `rec` owned by the replica (through its JSON: one code
 * path for what this node writes and what it reads). */
int rs_rec_copy(tetherd_redis_t *r, const tether_store_rec_t *rec, const char *rkey, char **json,
                tetherd_rrec_t *out)
{
    int rc = tetherd_rrec_encode(rec, &r->wrap, rkey, 1, json);
    if (rc < 0)
        return rc;
    if ((rc = tetherd_rrec_decode(rec->kind, *json, strlen(*json), &r->wrap, rkey, 1, out)) < 0) {
        tetherd_rrec_free(out);
        free(*json);
        *json = NULL;
    }
    return rc;
}

/* Whether a record names the key it was read from: a value copied to
 * another key name (by a writer to Redis) is not taken for that key. */
static bool rec_is_at(const tether_store_rec_t *rec, const char *rkey)
{
    uint8_t kb[1], want[TETHER_STORE_KEY_MAX];
    const uint8_t *key;
    size_t kl, wl;
    tether_store_kind_t kind;
    return tether_store_rec_key(rec, kb, &key, &kl) == 0 &&
           tetherd_rkey_parse(rkey, strlen(rkey), &kind, want, sizeof want, &wl) == 0 &&
           kind == rec->kind && wl == kl && memcmp(want, key, kl) == 0;
}

/* A deleted record seen in Redis (a NIL, a tombstone or a delete in the
 * change log): the replica's copy goes unless this node has a write of
 * its own pending; a credential's tombstone must be newer than what this
 * node has seen (cred_newer). */
void rs_rep_gone(tetherd_redis_t *r, const char *rkey, tether_store_kind_t kind, uint64_t tomb)
{
    if (kind == TETHER_STORE_CRED && tomb) {
        if (!cred_newer(r, rkey, tomb))
            return;
        rs_tomb_set(r, rkey, tomb);
    }
    rent_t *e = rs_rep_find(r, rkey);
    if (e && !tetherd_backlog_find(&r->backlog, rkey))
        rs_rep_drop(r, e);
}

/* Applies a record read from Redis (resync, change log, get): replaces the
 * replica's unless this node has a write of its own pending for that key
 * (its flush settles the conflict). Tells the watchers when it changed. */
void rs_rep_apply(tetherd_redis_t *r, const char *rkey, tether_store_kind_t kind, const char *json,
                  size_t jlen, uint64_t version)
{
    rent_t *e = rs_rep_find(r, rkey);
    if (tetherd_backlog_find(&r->backlog, rkey))
        return;
    if (e && e->rversion == version) {
        e->epoch = r->epoch;
        return;
    }
    if (kind == TETHER_STORE_CRED && !cred_newer(r, rkey, version))
        return;
    tetherd_rrec_t rr;
    if (tetherd_rrec_decode(kind, json, jlen, &r->wrap, rkey, version, &rr) < 0 ||
        !rec_is_at(&rr.rec, rkey)) {
        tetherd_rrec_free(&rr);
        r->errors++;
        if (tether_log_enabled(TETHER_LOG_WARN))
            tether_log_kv(TETHER_LOG_WARN, "redis", "undecodable record ignored", "key", rkey,
                          NULL);
        return;
    }
    if (!(e = rs_rep_set(r, rkey, &rr, version))) {
        r->errors++;
        return;
    }
    e->rversion = version;
    tether_store_notify(&r->base, kind, e->key, e->key_len, version);
    rs_event(r);
}

static const char *field(const redisReply *fields, const char *name, size_t *len)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            k->len == strlen(name) && memcmp(k->str, name, k->len) == 0) {
            *len = v->len;
            return v->str;
        }
    }
    return NULL;
}

/* One change-log entry [id, [k, .., v, .., n, .., d, ..]]. */
static void log_entry(tetherd_redis_t *r, const redisReply *ent)
{
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
        ent->element[0]->type != REDIS_REPLY_STRING || ent->element[1]->type != REDIS_REPLY_ARRAY ||
        ent->element[0]->len >= sizeof r->last_id)
        return;
    memcpy(r->last_id, ent->element[0]->str, ent->element[0]->len);
    r->last_id[ent->element[0]->len] = 0;
    const redisReply *f = ent->element[1];
    size_t kl, vl, nl, dl = 0;
    const char *k = field(f, "k", &kl), *v = field(f, "v", &vl), *n = field(f, "n", &nl);
    const char *d = field(f, "d", &dl);
    char rkey[TETHERD_RKEY_MAX], num[24];
    if (!k || !v || !n || kl >= sizeof rkey || vl >= sizeof num || nl >= sizeof num)
        return;
    memcpy(num, n, nl);
    num[nl] = 0;
    if (strtoul(num, NULL, 10) == r->conf.node_id)
        return; /* our own write: the replica has it */
    memcpy(rkey, k, kl);
    rkey[kl] = 0;
    memcpy(num, v, vl);
    num[vl] = 0;
    uint64_t version = strtoull(num, NULL, 10);
    tether_store_kind_t kind;
    uint8_t key[TETHER_STORE_KEY_MAX];
    size_t klen;
    if (tetherd_rkey_parse(rkey, kl, &kind, key, sizeof key, &klen) < 0)
        return;
    r->log_applied++;
    if (!d) /* a delete; a credential's names its tombstone's version */
        rs_rep_gone(r, rkey, kind, version);
    else if (version)
        rs_rep_apply(r, rkey, kind, d, dl, version);
}

void rs_xread_reply(tetherd_redis_t *r, redisReply *rep)
{
    r->xread_inflight = false;
    if (rep->type == REDIS_REPLY_NIL)
        return;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 ||
        rep->element[0]->type != REDIS_REPLY_ARRAY || rep->element[0]->elements != 2 ||
        rep->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        r->errors++;
        return;
    }
    const redisReply *ents = rep->element[0]->element[1];
    for (size_t i = 0; i < ents->elements; i++)
        log_entry(r, ents->element[i]);
    if (ents->elements >= (size_t)atoi(XREAD_COUNT))
        r->next_poll = 0; /* more waiting: read again at once */
}

void rs_xread(tetherd_redis_t *r)
{
    const char *argv[] = {"XREAD", "COUNT", XREAD_COUNT, "STREAMS", TETHERD_RKEY_LOG, r->last_id};
    cmd_t *c = rs_cmd_new(r, C_XREAD);
    if (!c || rs_send_strs(r, c, 6, argv) < 0) {
        free(c);
        return;
    }
    r->xread_inflight = true;
}

/* Sends one of the resync's six-word commands, counted in its
 * outstanding replies; false (the resync abandoned) when it cannot go. */
static bool resync_send(tetherd_redis_t *r, cmd_kind_t kind, const char *argv[6])
{
    cmd_t *c = rs_cmd_new(r, kind);
    if (c) {
        c->resync = true;
        c->epoch = r->epoch;
    }
    if (!c || rs_send_strs(r, c, 6, argv) < 0) {
        free(c);
        r->resyncing = false;
        return false;
    }
    r->scan_outstanding++;
    return true;
}

static void resync_scan(tetherd_redis_t *r, const char *cursor)
{
    const char *argv[] = {"SCAN", cursor, "MATCH", TETHERD_RKEY_MATCH, "COUNT", SCAN_COUNT};
    resync_send(r, C_SCAN, argv);
}

/* The resync is complete: what it did not see is gone from Redis. */
void rs_resync_end(tetherd_redis_t *r)
{
    for (int k = TETHER_STORE_DEVICE; k < TETHER_STORE_KINDS; k++) {
        if (k == TETHER_STORE_NODE)
            continue;
        for (tether_lnode_t *l = r->order[k].head, *next; l; l = next) {
            next = l->next;
            rent_t *e = container_of(l, rent_t, order);
            if (e->epoch != r->epoch && !tetherd_backlog_find(&r->backlog, e->rkey))
                rs_rep_drop(r, e);
        }
    }
    r->resyncing = false;
    r->synced = true;
    r->resyncs++;
    r->resync_backoff_ms = 0;
    r->next_poll = 0;
    char n[24];
    snprintf(n, sizeof n, "%zu", r->count);
    tether_log_kv(TETHER_LOG_INFO, "redis", "replica loaded", "records", n, "from_log", r->last_id,
                  NULL);
    rs_flush(r);
}

void rs_scan_reply(tetherd_redis_t *r, redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY) {
        r->errors++;
        rs_resync_failed(r);
        return;
    }
    const redisReply *keys = rep->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        tether_store_kind_t kind;
        uint8_t key[TETHER_STORE_KEY_MAX];
        size_t kl;
        if (k->type != REDIS_REPLY_STRING || k->len >= TETHERD_RKEY_MAX ||
            tetherd_rkey_parse(k->str, k->len, &kind, key, sizeof key, &kl) < 0 ||
            kind == TETHER_STORE_NODE)
            continue;
        cmd_t *c = rs_cmd_new(r, C_RGET);
        if (!c)
            continue;
        memcpy(c->rkey, k->str, k->len);
        c->rkey[k->len] = 0;
        c->resync = true;
        c->epoch = r->epoch;
        const char *argv[] = {"GET", c->rkey};
        if (rs_send_strs(r, c, 2, argv) < 0) {
            free(c);
            continue;
        }
        r->scan_outstanding++;
    }
    if (strcmp(rep->element[0]->str, "0") == 0)
        r->scan_done = true;
    else
        resync_scan(r, rep->element[0]->str);
}

/* After a connect: the log position first (so nothing written during the
 * scan is missed: it is read again from there), then every record. */
void rs_resync_start(tetherd_redis_t *r)
{
    r->resyncing = true;
    r->synced = false;
    r->scan_done = false;
    r->scan_outstanding = 0;
    r->epoch++;
    const char *argv[] = {"XREVRANGE", TETHERD_RKEY_LOG, "+", "-", "COUNT", "1"};
    if (resync_send(r, C_XLAST, argv))
        resync_scan(r, "0");
}

void rs_xlast_reply(tetherd_redis_t *r, redisReply *rep)
{
    strcpy(r->last_id, "0-0");
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
        rep->element[0]->element[0]->type == REDIS_REPLY_STRING &&
        rep->element[0]->element[0]->len < sizeof r->last_id) {
        memcpy(r->last_id, rep->element[0]->element[0]->str, rep->element[0]->element[0]->len);
        r->last_id[rep->element[0]->element[0]->len] = 0;
    }
}

/* A resync that failed part way: the next one starts after a pause that
 * doubles up to 30 s, so a key Redis cannot serve does not make every
 * node scan it in a loop. */
void rs_resync_failed(tetherd_redis_t *r)
{
    r->resyncing = false;
    r->resync_backoff_ms = r->resync_backoff_ms ? r->resync_backoff_ms * 2 : 100;
    if (r->resync_backoff_ms > 30000)
        r->resync_backoff_ms = 30000;
    r->next_resync = rs_now_of(r) + r->resync_backoff_ms;
}

void rs_tombs_free(tetherd_redis_t *r)
{
    for (size_t b = 0; b < r->tombs.nbuckets; b++)
        while (r->tombs.buckets[b]) {
            tether_hnode_t *h = r->tombs.buckets[b];
            tether_hmap_remove(&r->tombs, h);
            free(container_of(h, tomb_t, hn));
        }
    tether_hmap_free(&r->tombs);
}
