/* Block-wise transfers through the proxy (see blockwise.h): Block2
 * representations fetched, reassembled and served; Block1 uploads are in
 * bwupload.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/blockwise.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "tether/log.h"
#include "util/container.h"

/* A client waiting for a transfer: its request's head and the block it
 * asked for (its Block2 value, if any, and whether it asked for Size2). */
typedef struct {
    tether_lnode_t node; /* in x->waiters */
    tether_link_t link;
    uint16_t mid;
    uint8_t type, tkl, tok[TETHER_COAP_MAX_TOKEN];
    bool acked;
    bool has_block, size2;
    uint8_t block_len, block[3];
    tether_time_t ack_at; /* its CON gets an empty ACK then, if still waiting */
} bw_waiter_t;

/* One representation of one device resource (by cache key): a transfer
 * running, and/or a reassembled representation kept for late blocks. */
struct bw_xfer {
    tether_lnode_t node; /* in n->bw.xfers */
    tether_cache_key_t key;
    char dev[TETHER_IDENTITY_MAX];
    uint8_t *tmpl; /* the request without Block2, Size2 and token */
    uint16_t tmpl_len;
    /* the running transfer */
    bool running;
    struct relay_req *pending;
    tether_list_t waiters; /* in arrival order, so also in ack_at order */
    bw_waiter_t *unacked;  /* the first waiter whose CON is not acknowledged yet */
    uint8_t *head;         /* code and options of the first block (no payload) */
    size_t head_len;
    uint8_t *body;
    size_t len, cap;
    bool have_first;
    uint8_t etag_len, etag[8];
    uint8_t szx, restarts;
    uint32_t num; /* the block asked for now */
    tether_time_t first_at, deadline;
    /* the kept representation (not in the cache) */
    uint8_t *rep_head, *rep_body;
    size_t rep_head_len, rep_len;
    tether_time_t keep_until;
};

static uint8_t conf_szx(const tether_node_t *n)
{
    return tether_coap_block_szx_for(n->conf.block_size);
}

static void count(tether_node_t *n)
{
    n->stats.block_transfers_active = n->bw.nxfers;
}

/* ---- slicing --------------------------------------------------------------------- */

int tether_bw_slice(tether_node_t *n, const tether_coap_msg_t *req, tether_coap_msg_t *resp,
                    uint8_t blk[3], uint8_t sz2[4])
{
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_BLOCK2);
    tether_coap_block_t b = {.num = 0, .more = false, .szx = conf_szx(n)};
    if (o && tether_coap_block_decode(o->val, o->len, &b) < 0)
        return TETHER_EPROTO;
    size_t size = tether_coap_block_size(b.szx), total = resp->payload_len;
    tether_coap_msg_del_opt(resp, TETHER_COAP_OPT_BLOCK2);
    tether_coap_msg_del_opt(resp, TETHER_COAP_OPT_SIZE2);
    /* RFC 7959 §4: Size2 in a request (value 0) asks for the size. */
    if (tether_coap_msg_find_opt(req, TETHER_COAP_OPT_SIZE2))
        tether_coap_msg_add_opt(resp, TETHER_COAP_OPT_SIZE2, sz2,
                                tether_coap_uint_encode((uint32_t)total, sz2));
    if (!o && total <= size)
        return 0; /* fits: the whole representation, as without block-wise */
    uint64_t off = (uint64_t)b.num * size;
    if (off > total || (off == total && total > 0))
        return TETHER_EPROTO; /* beyond the end */
    size_t nb = total - off < size ? total - (size_t)off : size;
    b.more = off + nb < total;
    size_t blen;
    if (tether_coap_block_encode(&b, blk, &blen) < 0)
        return TETHER_EPROTO;
    tether_coap_msg_add_opt(resp, TETHER_COAP_OPT_BLOCK2, blk, blen);
    resp->payload += off;
    resp->payload_len = nb;
    n->stats.block_served++;
    return 0;
}

/* Serves the block `req` asks for from the whole representation `rep`
 * to a client whose request head is (link, type, mid, token, acked). */
static void serve(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                  bool acked, const tether_coap_msg_t *rep, tether_time_t now)
{
    tether_coap_msg_t resp = *rep;
    uint8_t blk[3], sz2[4];
    if (tether_bw_slice(n, req, &resp, blk, sz2) < 0) {
        tether_coap_msg_init(&resp, TETHER_COAP_NON, TETHER_COAP_BAD_OPTION, 0);
        resp.payload = (const uint8_t *)"no such block";
        resp.payload_len = strlen("no such block");
    }
    tether_reply_to(n, link, req->type, req->mid, req->token, req->tkl, acked, &resp, now);
}

/* The request a waiter made, as far as serving it goes. */
static void waiter_req(const bw_waiter_t *w, tether_coap_msg_t *m)
{
    tether_coap_msg_init(m, w->type, TETHER_COAP_GET, w->mid);
    tether_coap_msg_set_token(m, w->tok, w->tkl);
    if (w->has_block)
        tether_coap_msg_add_opt(m, TETHER_COAP_OPT_BLOCK2, w->block, w->block_len);
    if (w->size2)
        tether_coap_msg_add_opt(m, TETHER_COAP_OPT_SIZE2, NULL, 0);
}

/* ---- transfers ------------------------------------------------------------------- */

static bw_xfer_t *xfer_find(tether_node_t *n, const tether_cache_key_t *k)
{
    for (tether_lnode_t *l = n->bw.xfers.head; l; l = l->next) {
        bw_xfer_t *x = container_of(l, bw_xfer_t, node);
        if (x->key.len == k->len && memcmp(x->key.buf, k->buf, k->len) == 0)
            return x;
    }
    return NULL;
}

static void run_reset(bw_xfer_t *x)
{
    free(x->head);
    free(x->body);
    x->head = x->body = NULL;
    x->head_len = x->len = x->cap = 0;
    x->have_first = false;
    x->etag_len = 0;
    x->num = 0;
}

static void rep_free(bw_xfer_t *x)
{
    free(x->rep_head);
    free(x->rep_body);
    x->rep_head = x->rep_body = NULL;
    x->rep_head_len = x->rep_len = 0;
}

static void xfer_free(tether_node_t *n, bw_xfer_t *x)
{
    if (x->pending)
        tether_relay_cancel(n, x->pending); /* clears x->pending */
    while (x->waiters.head) {
        bw_waiter_t *w = container_of(x->waiters.head, bw_waiter_t, node);
        tether_list_del(&x->waiters, &w->node);
        n->npending--;
        free(w);
    }
    x->unacked = NULL;
    run_reset(x);
    rep_free(x);
    tether_list_del(&n->bw.xfers, &x->node);
    n->bw.nxfers--;
    count(n);
    free(x->tmpl);
    free(x);
}

/* A new entry for key `k` of device `dev`, whose request (without Block2)
 * is `plain`; NULL at the bound or out of memory. */
static bw_xfer_t *xfer_new(tether_node_t *n, const tether_cache_key_t *k, const char *dev,
                           const tether_coap_msg_t *plain)
{
    if (n->bw.nxfers + n->bw.nuploads >= n->conf.block_max_transfers)
        return NULL;
    bw_xfer_t *x = calloc(1, sizeof *x);
    size_t len = tether_coap_encoded_size(plain);
    if (!x || len > TETHER_MSG_MAX || !(x->tmpl = malloc(len)) ||
        tether_coap_encode(plain, x->tmpl, len, &len) < 0) {
        if (x)
            free(x->tmpl);
        free(x);
        return NULL;
    }
    x->tmpl_len = (uint16_t)len;
    x->key = *k;
    snprintf(x->dev, sizeof x->dev, "%s", dev);
    tether_list_push(&n->bw.xfers, &x->node);
    n->bw.nxfers++;
    count(n);
    return x;
}

static void xfer_start(tether_node_t *n, bw_xfer_t *x, tether_time_t now)
{
    run_reset(x);
    x->running = true;
    x->restarts = 0;
    x->szx = conf_szx(n);
    x->deadline = now + n->conf.block_timeout_ms;
}

/* Adds the client of `req` (on `link`; `acked` when its CON was
 * acknowledged already) to the waiters of x. Its block is piggybacked when
 * the transfer ends within ack_delay_ms; else its CON gets an empty ACK
 * then and the block comes as a separate response (RFC 7252 §5.2.2;
 * libcoap 4.3.1 clients cannot take a separate first block, so the
 * piggybacked answer is the one to aim for). false (answered 5.03) at
 * max_pending. */
static bool join(tether_node_t *n, bw_xfer_t *x, const tether_link_t *link,
                 const tether_coap_msg_t *req, bool acked, tether_time_t now)
{
    bw_waiter_t *w = NULL;
    if (n->npending >= n->conf.max_pending || !(w = calloc(1, sizeof *w))) {
        tether_coap_msg_t resp;
        tether_coap_msg_init(&resp, TETHER_COAP_NON, TETHER_COAP_SERVICE_UNAVAILABLE, 0);
        tether_reply_to(n, link, req->type, req->mid, req->token, req->tkl, acked, &resp, now);
        return false;
    }
    w->link = *link;
    w->mid = req->mid;
    w->type = req->type;
    w->tkl = req->tkl;
    memcpy(w->tok, req->token, req->tkl);
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_BLOCK2);
    if (o && o->len <= 3) {
        w->has_block = true;
        w->block_len = (uint8_t)o->len;
        memcpy(w->block, o->val, o->len);
    }
    w->size2 = tether_coap_msg_find_opt(req, TETHER_COAP_OPT_SIZE2) != NULL;
    w->acked = acked;
    w->ack_at = now + n->conf.ack_delay_ms;
    tether_list_push(&x->waiters, &w->node);
    if (req->type == TETHER_COAP_CON && !acked && !x->unacked)
        x->unacked = w;
    n->npending++;
    return true;
}

/* Answers every waiter: from the representation `rep`, or with `err`. */
static void answer_waiters(tether_node_t *n, bw_xfer_t *x, const tether_coap_msg_t *rep,
                           const tether_coap_msg_t *err, tether_time_t now)
{
    x->unacked = NULL;
    while (x->waiters.head) {
        bw_waiter_t *w = container_of(x->waiters.head, bw_waiter_t, node);
        tether_list_del(&x->waiters, &w->node);
        n->npending--;
        tether_coap_msg_t req;
        waiter_req(w, &req);
        if (rep) {
            serve(n, &w->link, &req, w->acked, rep, now);
        } else {
            tether_coap_msg_t resp = *err;
            tether_reply_to(n, &w->link, w->type, w->mid, w->tok, w->tkl, w->acked, &resp, now);
        }
        free(w);
    }
}

/* Ends the running transfer: its clients get `dev_answer` (the device's
 * own answer to the first block) or `code` with `diag`. */
static void xfer_fail(tether_node_t *n, bw_xfer_t *x, const tether_coap_msg_t *dev_answer,
                      uint8_t code, const char *diag, tether_time_t now)
{
    tether_coap_msg_t err;
    if (dev_answer) {
        err = *dev_answer;
    } else {
        tether_coap_msg_init(&err, TETHER_COAP_NON, code, 0);
        err.payload = (const uint8_t *)diag;
        err.payload_len = strlen(diag);
        n->stats.block_failed++;
        tether_log_kv(TETHER_LOG_INFO, "proxy", "block-wise transfer failed", "device", x->dev,
                      "why", diag, NULL);
    }
    if (x->pending)
        tether_relay_cancel(n, x->pending);
    x->running = false;
    answer_waiters(n, x, NULL, &err, now);
    run_reset(x);
    if (!x->rep_body)
        xfer_free(n, x);
}

/* Asks the device for block x->num. */
static void xfer_send(tether_node_t *n, bw_xfer_t *x, tether_time_t now)
{
    tether_device_t *d = tether_registry_find(&n->reg, x->dev);
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    uint8_t blk[3];
    size_t blen;
    tether_coap_block_t b = {.num = x->num, .more = false, .szx = x->szx};
    if (!d) {
        xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY, "device gone", now);
        return;
    }
    if (tether_coap_parse(&m, x->tmpl, x->tmpl_len, &perr) < 0 ||
        tether_coap_block_encode(&b, blk, &blen) < 0 ||
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_BLOCK2, blk, blen) < 0) {
        xfer_fail(n, x, NULL, TETHER_COAP_INTERNAL_ERROR, "block request", now);
        return;
    }
    n->stats.block_blocks_fetched++;
    if (tether_relay_internal(n, d, &m, x, now) < 0)
        xfer_fail(n, x, NULL, TETHER_COAP_SERVICE_UNAVAILABLE, "proxy busy", now);
    /* x may be gone now (a failure while sending answers at once) */
}

/* The whole representation arrived: into the cache when it is cacheable
 * there, else kept with x; every waiter gets its block. */
static void xfer_complete(tether_node_t *n, bw_xfer_t *x, tether_time_t now)
{
    tether_coap_msg_t rep;
    tether_coap_perr_t perr;
    uint8_t ma[4];
    x->running = false;
    n->stats.block_transfers++;
    if (tether_coap_parse(&rep, x->head, x->head_len, &perr) < 0) {
        xfer_fail(n, x, NULL, TETHER_COAP_INTERNAL_ERROR, "reassembly", now);
        return;
    }
    rep.payload = x->body;
    rep.payload_len = x->len;
    /* Freshness counts from the first block (RFC 7252 §5.6.1: the age
     * the representation has by now). */
    uint32_t secs = TETHER_CACHE_DEFAULT_MAX_AGE, age = (uint32_t)((now - x->first_at) / 1000);
    if (tether_coap_msg_find_opt(&rep, TETHER_COAP_OPT_MAX_AGE) &&
        tether_coap_msg_get_uint(&rep, TETHER_COAP_OPT_MAX_AGE, &secs) < 0)
        secs = 0;
    tether_coap_msg_del_opt(&rep, TETHER_COAP_OPT_MAX_AGE);
    tether_coap_msg_add_opt(&rep, TETHER_COAP_OPT_MAX_AGE, ma,
                            tether_coap_uint_encode(secs > age ? secs - age : 0, ma));
    bool stored = false;
    if (n->cache) {
        stored = tether_cache_store(n->cache, &x->key, &rep, now) != NULL;
        tether_node_cache_sync(n);
    }
    answer_waiters(n, x, &rep, NULL, now);
    rep_free(x);
    if (stored) {
        xfer_free(n, x);
        return;
    }
    /* Not cached: kept for the clients' later blocks. */
    x->rep_head = x->head;
    x->rep_head_len = x->head_len;
    x->rep_body = x->body;
    x->rep_len = x->len;
    x->head = x->body = NULL;
    run_reset(x);
    x->keep_until = now + n->conf.block_idle_ms;
}

static bool same_etag(const bw_xfer_t *x, const tether_coap_opt_t *et)
{
    if (!et)
        return x->etag_len == 0;
    return et->len == x->etag_len && memcmp(et->val, x->etag, et->len) == 0;
}

/* Keeps the code and options of the first block, without Block2, Size2
 * and Observe, as the head of the whole representation. */
static int keep_head(bw_xfer_t *x, const tether_coap_msg_t *resp)
{
    tether_coap_msg_t h;
    tether_coap_msg_init(&h, TETHER_COAP_NON, resp->code, 0);
    for (size_t i = 0; i < resp->nopts; i++) {
        uint16_t num = resp->opts[i].num;
        if (num != TETHER_COAP_OPT_BLOCK2 && num != TETHER_COAP_OPT_SIZE2 &&
            num != TETHER_COAP_OPT_OBSERVE)
            tether_coap_msg_add_opt(&h, num, resp->opts[i].val, resp->opts[i].len);
    }
    size_t len = tether_coap_encoded_size(&h);
    if (!(x->head = malloc(len)) || tether_coap_encode(&h, x->head, len, &len) < 0)
        return TETHER_ENOMEM;
    x->head_len = len;
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(resp, TETHER_COAP_OPT_ETAG);
    x->etag_len = et && et->len <= 8 ? (uint8_t)et->len : 0;
    if (x->etag_len)
        memcpy(x->etag, et->val, et->len);
    return 0;
}

/* Appends payload p[len] to the body, growing it within block_max_bytes. */
static int append(tether_node_t *n, bw_xfer_t *x, const uint8_t *p, size_t len)
{
    if (x->len + len > n->conf.block_max_bytes)
        return TETHER_ELIMIT;
    if (x->len + len > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + len)
            cap *= 2;
        if (cap > n->conf.block_max_bytes)
            cap = n->conf.block_max_bytes;
        uint8_t *b = realloc(x->body, cap ? cap : 1);
        if (!b)
            return TETHER_ENOMEM;
        x->body = b;
        x->cap = cap;
    }
    if (len)
        memcpy(x->body + x->len, p, len);
    x->len += len;
    return 0;
}

/* One block of the running transfer, the device's answer `resp` to the
 * request for block x->num (RFC 7959 §2.4). */
static void xfer_block(tether_node_t *n, bw_xfer_t *x, const tether_coap_msg_t *resp,
                       tether_time_t now)
{
    if (resp->code != TETHER_COAP_CONTENT) {
        if (!x->have_first) /* the device's answer to the first block is the answer */
            xfer_fail(n, x, resp, 0, NULL, now);
        else
            xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY, "device failed mid-transfer", now);
        return;
    }
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(resp, TETHER_COAP_OPT_BLOCK2);
    tether_coap_block_t b = {.num = 0, .more = false, .szx = x->szx};
    if (o ? tether_coap_block_decode(o->val, o->len, &b) < 0 : x->num != 0) {
        xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY, "bad Block2 from device", now);
        return;
    }
    size_t size = tether_coap_block_size(b.szx);
    if (o && b.szx > x->szx) { /* a server may only make blocks smaller */
        xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY, "device grew the block size", now);
        return;
    }
    if ((uint64_t)b.num * size != x->len) {
        xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY, "device sent the wrong block", now);
        return;
    }
    if (o && (b.more ? resp->payload_len != size : resp->payload_len > size)) {
        xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY, "block of the wrong length", now);
        return;
    }
    const tether_coap_opt_t *et = tether_coap_msg_find_opt(resp, TETHER_COAP_OPT_ETAG);
    if (x->have_first && !same_etag(x, et)) {
        /* A new version mid-transfer: start over, so that no client gets
         * blocks of two versions (RFC 7959 §2.4, ETag). */
        if (++x->restarts > BW_MAX_RESTARTS) {
            xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY, "representation keeps changing", now);
            return;
        }
        n->stats.block_restarts++;
        uint8_t restarts = x->restarts;
        run_reset(x);
        x->restarts = restarts;
        x->szx = conf_szx(n);
        xfer_send(n, x, now);
        return;
    }
    if (!x->have_first) {
        uint32_t size2;
        if (tether_coap_msg_get_uint(resp, TETHER_COAP_OPT_SIZE2, &size2) == 0 &&
            size2 > n->conf.block_max_bytes) {
            xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY, "representation too large", now);
            return;
        }
        if (keep_head(x, resp) < 0) {
            xfer_fail(n, x, NULL, TETHER_COAP_INTERNAL_ERROR, "out of memory", now);
            return;
        }
        x->have_first = true;
        x->first_at = now;
    }
    int rc = append(n, x, resp->payload, resp->payload_len);
    if (rc < 0) {
        xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY,
                  rc == TETHER_ELIMIT ? "representation too large" : "out of memory", now);
        return;
    }
    if (!o || !b.more) {
        xfer_complete(n, x, now);
        return;
    }
    x->szx = b.szx;
    x->num = b.num + 1;
    if (x->num >= (1u << 20)) {
        xfer_fail(n, x, NULL, TETHER_COAP_BAD_GATEWAY, "too many blocks", now);
        return;
    }
    xfer_send(n, x, now);
}

void tether_bw_xfer_answer(tether_node_t *n, bw_xfer_t *x, const tether_coap_msg_t *resp,
                           tether_time_t now)
{
    if (x->running)
        xfer_block(n, x, resp, now);
}

void tether_bw_xfer_attach(bw_xfer_t *x, relay_req_t *r)
{
    x->pending = r;
    r->bw_xfer = x;
}

void tether_bw_detach(relay_req_t *r)
{
    if (r->bw_xfer)
        r->bw_xfer->pending = NULL;
    r->bw_xfer = NULL;
    tether_bw_upload_detach(r);
}

/* `up` without Block2 and Size2 (the request the whole representation
 * answers) into *plain, and its cache key for device `host`. */
static int plain_key(const tether_coap_msg_t *up, const char *host, tether_coap_msg_t *plain,
                     tether_cache_key_t *k)
{
    *plain = *up;
    tether_coap_msg_set_token(plain, NULL, 0);
    tether_coap_msg_del_opt(plain, TETHER_COAP_OPT_BLOCK2);
    tether_coap_msg_del_opt(plain, TETHER_COAP_OPT_SIZE2);
    plain->type = TETHER_COAP_CON;
    plain->mid = 0;
    return tether_cache_key(k, host, plain);
}

static bool blockable(const tether_coap_msg_t *up)
{
    return (up->code == TETHER_COAP_GET || up->code == TETHER_COAP_FETCH) &&
           !tether_coap_msg_find_opt(up, TETHER_COAP_OPT_OSCORE) &&
           !tether_coap_msg_find_opt(up, TETHER_COAP_OPT_OBSERVE) &&
           !tether_coap_msg_find_opt(up, TETHER_COAP_OPT_BLOCK1);
}

bool tether_bw_adopt(tether_node_t *n, relay_req_t *r, const tether_coap_msg_t *resp,
                     tether_time_t now)
{
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(resp, TETHER_COAP_OPT_BLOCK2);
    tether_coap_block_t b;
    if (resp->code != TETHER_COAP_CONTENT || !o ||
        tether_coap_block_decode(o->val, o->len, &b) < 0 || b.num != 0 || !b.more)
        return false;
    tether_coap_msg_t up, plain;
    tether_coap_perr_t perr;
    tether_cache_key_t k;
    if (tether_coap_parse(&up, r->msg, r->len, &perr) < 0 || !blockable(&up) ||
        plain_key(&up, r->dev->name, &plain, &k) < 0)
        return false;
    bw_xfer_t *x = xfer_find(n, &k);
    if (!x && !(x = xfer_new(n, &k, r->dev->name, &plain)))
        return false; /* at the bound: the client gets this first block as it is */
    tether_coap_msg_t creq;
    tether_coap_msg_init(&creq, r->ctype, TETHER_COAP_GET, r->cmid);
    tether_coap_msg_set_token(&creq, r->ctok, r->ctkl);
    bool start = !x->running;
    if (start)
        xfer_start(n, x, now);
    if (!join(n, x, &r->client, &creq, r->acked, now)) {
        if (start)
            xfer_fail(n, x, NULL, TETHER_COAP_SERVICE_UNAVAILABLE, "proxy busy", now);
        return true;
    }
    if (start) {
        x->szx = b.szx; /* not asked for: the device chose it */
        xfer_block(n, x, resp, now);
    }
    return true;
}

/* ---- entry points ------------------------------------------------------------------ */

bool tether_bw_request(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                       tether_device_t *d, const char *host, tether_coap_msg_t *up, uint8_t rtag[8],
                       bw_upload_t **upload, tether_time_t now)
{
    *upload = NULL;
    if (tether_coap_msg_find_opt(up, TETHER_COAP_OPT_BLOCK1))
        return tether_bw_upload_request(n, link, req, host, up, rtag, upload, now);
    if (!blockable(up))
        return false;
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(up, TETHER_COAP_OPT_BLOCK2);
    tether_coap_block_t b = {.num = 0};
    if (o && tether_coap_block_decode(o->val, o->len, &b) < 0) {
        tether_reply_code(n, link, req, TETHER_COAP_BAD_OPTION, "bad Block2", now);
        return true;
    }
    tether_coap_msg_t plain;
    tether_cache_key_t k;
    if (plain_key(up, host, &plain, &k) < 0)
        return false;
    /* A fresh whole representation answers any block of it. A request
     * without Block2 whose answer fits one block is the cache's to answer
     * whole (relay_cache.c): no view is made for it here. */
    if (n->cache && link->kind != TETHER_LINK_INTERNAL) {
        tether_cache_entry_t *e = NULL;
        tether_coap_msg_t rep;
        uint8_t buf[TETHER_MSG_MAX];
        if (tether_cache_lookup(n->cache, &k, now, &e) == TETHER_CACHE_FRESH &&
            (o || tether_cache_payload_len(e) > tether_coap_block_size(conf_szx(n))) &&
            tether_cache_view(e, now, buf, sizeof buf, &rep) == 0) {
            n->stats.cache_hits++;
            serve(n, link, req, false, &rep, now);
            return true;
        }
    }
    bw_xfer_t *x = xfer_find(n, &k);
    if (x && x->rep_body && o && b.num > 0) { /* later blocks of a kept representation */
        tether_coap_msg_t rep;
        tether_coap_perr_t perr;
        if (tether_coap_parse(&rep, x->rep_head, x->rep_head_len, &perr) == 0) {
            rep.payload = x->rep_body;
            rep.payload_len = x->rep_len;
            /* keep_until is not moved: a representation the cache would
             * not keep (Max-Age 0, no room) is served for
             * proxy.block_idle_ms from its reassembly and then fetched
             * again, however often its later blocks are asked for. */
            serve(n, link, req, false, &rep, now);
            return true;
        }
    }
    if (x && x->running) {
        join(n, x, link, req, false, now);
        return true;
    }
    if (!o)
        return false; /* relayed as it is; a first block with M=1 is adopted */
    if (!x && !(x = xfer_new(n, &k, d->name, &plain))) {
        tether_reply_code(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "too many transfers", now);
        return true;
    }
    xfer_start(n, x, now);
    if (!join(n, x, link, req, false, now)) {
        xfer_fail(n, x, NULL, TETHER_COAP_SERVICE_UNAVAILABLE, "proxy busy", now);
        return true;
    }
    xfer_send(n, x, now);
    return true;
}

void tether_bw_tick(tether_node_t *n, tether_time_t now)
{
    for (tether_lnode_t *l = n->bw.xfers.head, *next; l; l = next) {
        next = l->next;
        bw_xfer_t *x = container_of(l, bw_xfer_t, node);
        while (x->unacked && x->unacked->ack_at <= now) { /* delayed empty ACKs */
            bw_waiter_t *w = x->unacked;
            tether_reply_empty(n, &w->link, TETHER_COAP_ACK, w->mid);
            w->acked = true;
            x->unacked = NULL;
            for (tether_lnode_t *k = w->node.next; k && !x->unacked; k = k->next) {
                bw_waiter_t *v = container_of(k, bw_waiter_t, node);
                if (v->type == TETHER_COAP_CON && !v->acked)
                    x->unacked = v;
            }
        }
        if (x->running && now >= x->deadline)
            xfer_fail(n, x, NULL, TETHER_COAP_GATEWAY_TIMEOUT, "transfer took too long", now);
        else if (!x->running && now >= x->keep_until)
            xfer_free(n, x);
    }
    tether_bw_uploads_tick(n, now);
}

tether_time_t tether_bw_next_deadline(const tether_node_t *n)
{
    tether_time_t d = UINT64_MAX;
    for (const tether_lnode_t *l = n->bw.xfers.head; l; l = l->next) {
        const bw_xfer_t *x = container_of(l, bw_xfer_t, node);
        tether_time_t t = x->running ? x->deadline : x->keep_until;
        if (x->unacked && x->unacked->ack_at < t)
            t = x->unacked->ack_at;
        if (t < d)
            d = t;
    }
    tether_time_t u = tether_bw_uploads_deadline(n);
    return u < d ? u : d;
}

void tether_bw_free(tether_node_t *n)
{
    while (n->bw.xfers.head)
        xfer_free(n, container_of(n->bw.xfers.head, bw_xfer_t, node));
    tether_bw_uploads_free(n);
}
