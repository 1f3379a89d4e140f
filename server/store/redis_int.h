/* tetherd — the Redis state store's internals shared by its files
 * (the contract is redis.h):
 *   redis.c    the store operations (get/put/del/scan), leases, setup;
 *   rcmd.c     the connection, commands and the dispatch of their replies;
 *   rreplica.c the local replica of every record, kept by the change log
 *              and by resync scans, with credential tombstones.
 * Everything runs on the libuv loop thread; a cmd_t lives until its reply
 * (or the connection's loss) is dispatched. */
#ifndef TETHERD_STORE_REDIS_INT_H
#define TETHERD_STORE_REDIS_INT_H

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "backlog.h"
#include "redis.h"
#include "rkey.h"
#include "tether/container.h"
#include "wrap.h"

#define DIGEST 16
#define XREAD_COUNT "512"
#define SCAN_COUNT "1000"
#define NODE_IDS 255
#define FLUSH_HEADROOM 64

/* The highest version of a deleted credential this node has seen. */
typedef struct {
    tether_hnode_t hn; /* key: digest of rkey */
    uint64_t version;
} tomb_t;

/* One record of the replica. */
typedef struct {
    tether_hnode_t hn;    /* key: digest of rkey */
    tether_lnode_t order; /* in r->order[kind], creation order (scan) */
    uint64_t seq;         /* scan cursor */
    uint64_t version;     /* as this node sees it */
    uint64_t rversion;    /* last version seen in Redis (0: not there yet) */
    uint64_t epoch;       /* resync that last saw it */
    tetherd_rrec_t rr;
    const uint8_t *key;
    size_t key_len;
    uint8_t keybuf[1]; /* NODE key */
    char rkey[];
} rent_t;

typedef enum {
    C_FLUSH,
    C_LOG,
    C_CRED,
    C_GET,
    C_XREAD,
    C_XLAST,
    C_SCAN,
    C_RGET,
    C_LEASES,
    C_LEASE,
    C_AUTH
} cmd_kind_t;

/* What a command's reply is for (one per command, freed by its callback). */
typedef struct {
    struct tetherd_redis *r;
    cmd_kind_t kind;
    bool resync; /* counted in r->scan_outstanding of resync `epoch` */
    uint64_t epoch;
    uint64_t conn_gen;      /* the connection it was sent on */
    tetherd_dirty_t *dirty; /* C_FLUSH */
    tether_store_kind_t skind;
    uint64_t expect;
    bool del;
    tether_store_cb cb; /* C_CRED, C_GET */
    void *user;
    char *value;        /* C_FLUSH, C_CRED: the JSON sent */
    tetherd_rrec_t rec; /* C_CRED put: the record written */
    size_t key_len;
    uint8_t key[TETHER_STORE_KEY_MAX]; /* C_CRED, C_GET, C_RGET */
    char rkey[TETHERD_RKEY_MAX];
} cmd_t;

struct tetherd_redis {
    tether_store_t base;
    tetherd_redis_conf_t conf;
    uv_loop_t *loop;
    uv_timer_t timer;
    bool closing;
    char host[256], password[128];
    int port, db;
    redisAsyncContext *ac;
    uint64_t conn_gen; /* +1 per connection */
    tetherd_rconn_t conn;
    tetherd_wrap_t wrap;
    tetherd_backlog_t backlog;
    tether_hmap_t map;
    tether_hmap_t tombs; /* tomb_t: deleted credentials' last versions */
    tether_list_t order[TETHER_STORE_KINDS];
    tether_store_scan_pos_t scan[TETHER_STORE_KINDS];
    size_t count;
    uint64_t next_seq, epoch;
    /* change log */
    char last_id[48];
    bool xread_inflight;
    tether_time_t next_poll, next_lease_poll;
    bool leases_inflight;
    /* resync */
    bool synced, resyncing;
    tether_time_t next_resync; /* after a failed one: back off */
    uint32_t resync_backoff_ms;
    tether_time_t flush_after; /* after an error reply to a write: back off */
    uint32_t flush_backoff_ms;
    unsigned scan_outstanding; /* SCAN and GET replies still to come */
    bool scan_done;
    void (*on_event)(void *);
    void *on_event_user;
    bool event_pending;
    uint64_t errors, conflicts, log_applied, resyncs, stale_refused;
};

/* The Lua scripts of writes (rcmd.c). */
extern const char rs_lua_put[], rs_lua_del[], rs_lua_tomb[];
#define TOMBSTONE "-"

/* redis.c */
tether_time_t rs_now_of(const tetherd_redis_t *r);
void rs_event(tetherd_redis_t *r);
void rs_event_flush(tetherd_redis_t *r);
void rs_leases_poll(tetherd_redis_t *r);
void rs_leases_reply(tetherd_redis_t *r, redisReply *rep);

/* rcmd.c */
cmd_t *rs_cmd_new(tetherd_redis_t *r, cmd_kind_t kind);
int rs_send_argv(tetherd_redis_t *r, cmd_t *c, int argc, const char **argv, const size_t *lens);
int rs_send_strs(tetherd_redis_t *r, cmd_t *c, int argc, const char **argv);
void rs_fmt_expect(uint64_t expect, char out[24]);
void rs_flush(tetherd_redis_t *r);
void rs_complete(tether_store_cb cb, void *user, int rc, tether_store_kind_t kind,
                 const uint8_t *key, size_t kl, uint64_t version, const tether_store_rec_t *rec,
                 uint64_t cursor);
void rs_rearm(tetherd_redis_t *r);

/* rreplica.c */
rent_t *rs_rep_find(const tetherd_redis_t *r, const char *rkey);
uint64_t rs_tomb_version(const tetherd_redis_t *r, const char *rkey);
void rs_tomb_set(tetherd_redis_t *r, const char *rkey, uint64_t version);
void rs_rep_free(tetherd_redis_t *r, rent_t *e);
void rs_rep_drop(tetherd_redis_t *r, rent_t *e);
rent_t *rs_rep_set(tetherd_redis_t *r, const char *rkey, tetherd_rrec_t *rr, uint64_t version);
int rs_rec_copy(tetherd_redis_t *r, const tether_store_rec_t *rec, const char *rkey, char **json,
                tetherd_rrec_t *out);
void rs_rep_gone(tetherd_redis_t *r, const char *rkey, tether_store_kind_t kind, uint64_t tomb);
void rs_rep_apply(tetherd_redis_t *r, const char *rkey, tether_store_kind_t kind, const char *json,
                  size_t jlen, uint64_t version);
void rs_xread_reply(tetherd_redis_t *r, redisReply *rep);
void rs_xread(tetherd_redis_t *r);
void rs_resync_end(tetherd_redis_t *r);
void rs_scan_reply(tetherd_redis_t *r, redisReply *rep);
void rs_resync_start(tetherd_redis_t *r);
void rs_xlast_reply(tetherd_redis_t *r, redisReply *rep);
void rs_resync_failed(tetherd_redis_t *r);
void rs_tombs_free(tetherd_redis_t *r);

#endif
