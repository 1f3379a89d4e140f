/* Block1 uploads through the proxy (blockwise.h, RFC 7959 §2.5, RFC 9175
 * §3): each block a client sends is checked against its upload (order,
 * size, tether's bound) and relayed under tether's own Request-Tag. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/blockwise.h"
#include "proxy/relay.h"
#include "proxy/reply.h"
#include "util/be64.h"
#include "util/container.h"

#define BW_CTAG_MAX 40 /* the client's Request-Tag options, length-prefixed */

struct bw_upload {
    tether_lnode_t node; /* in n->bw.uploads */
    tether_link_t client;
    uint8_t code;
    tether_cache_key_t target; /* device and Uri-Path */
    uint8_t ctag_len, ctag[BW_CTAG_MAX];
    char dev[TETHER_IDENTITY_MAX];
    uint8_t rtag[4]; /* tether's Request-Tag toward the device */
    uint64_t next_off;
    uint32_t pending_len;
    struct relay_req *pending;
    tether_time_t idle_until;
};

static void upload_free(tether_node_t *n, bw_upload_t *u)
{
    if (u->pending)
        u->pending->bw_upload = NULL;
    tether_list_del(&n->bw.uploads, &u->node);
    n->bw.nuploads--;
    n->stats.uploads_active = n->bw.nuploads;
    free(u);
}

/* The client's Request-Tag options of `m`, length-prefixed, into
 * out[BW_CTAG_MAX]; -1 when they do not fit. */
static int client_tags(const tether_coap_msg_t *m, uint8_t *out)
{
    int len = 0;
    for (const tether_coap_opt_t *o = tether_coap_msg_find_opt(m, TETHER_COAP_OPT_REQUEST_TAG); o;
         o = tether_coap_msg_next_opt(m, o)) {
        if (len + 1 + o->len > BW_CTAG_MAX)
            return -1;
        out[len++] = (uint8_t)o->len;
        memcpy(out + len, o->val, o->len);
        len += o->len;
    }
    return len;
}

static bw_upload_t *upload_find(tether_node_t *n, const tether_link_t *link, uint8_t code,
                                const tether_cache_key_t *target, const uint8_t *ctag,
                                size_t ctag_len)
{
    for (tether_lnode_t *l = n->bw.uploads.head; l; l = l->next) {
        bw_upload_t *u = container_of(l, bw_upload_t, node);
        if (u->code == code && u->ctag_len == ctag_len && tether_link_equal(&u->client, link) &&
            u->target.len == target->len && memcmp(u->target.buf, target->buf, target->len) == 0 &&
            memcmp(u->ctag, ctag, ctag_len) == 0)
            return u;
    }
    return NULL;
}

static size_t uploads_of(const tether_node_t *n, const char *dev)
{
    size_t c = 0;
    for (tether_lnode_t *l = n->bw.uploads.head; l; l = l->next)
        c += strcmp(container_of(l, bw_upload_t, node)->dev, dev) == 0;
    return c;
}

/* 4.13 with the largest size tether accepts in Size1 (RFC 7959 §2.9.3). */
static void reply_too_large(tether_node_t *n, const tether_link_t *link,
                            const tether_coap_msg_t *req, tether_time_t now)
{
    tether_coap_msg_t resp;
    uint8_t s1[4];
    n->stats.uploads_rejected++;
    tether_reply_start(n, link, req, TETHER_COAP_REQUEST_TOO_LARGE, &resp, now);
    tether_coap_msg_add_opt(&resp, TETHER_COAP_OPT_SIZE1, s1,
                            tether_coap_uint_encode(n->conf.upload_max_bytes, s1));
    tether_reply_send(n, link, req, &resp);
}

static void reject(tether_node_t *n, const tether_link_t *link, const tether_coap_msg_t *req,
                   uint8_t code, const char *diag, tether_time_t now)
{
    n->stats.uploads_rejected++;
    tether_reply_code(n, link, req, code, diag, now);
}

bool tether_bw_upload_request(tether_node_t *n, const tether_link_t *link,
                              const tether_coap_msg_t *req, const char *host, tether_coap_msg_t *up,
                              uint8_t rtag[8], bw_upload_t **upload, tether_time_t now)
{
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(up, TETHER_COAP_OPT_BLOCK1);
    tether_coap_block_t b;
    tether_cache_key_t target;
    uint8_t ctag[BW_CTAG_MAX];
    int ctag_len = client_tags(up, ctag);
    if (tether_coap_block_decode(o->val, o->len, &b) < 0) {
        reject(n, link, req, TETHER_COAP_BAD_OPTION, "bad Block1", now);
        return true;
    }
    if (ctag_len < 0 || tether_cache_key_path(&target, host, up, TETHER_COAP_OPT_URI_PATH) < 0) {
        reject(n, link, req, TETHER_COAP_BAD_REQUEST, "Request-Tag too long", now);
        return true;
    }
    size_t size = tether_coap_block_size(b.szx);
    uint64_t off = (uint64_t)b.num * size;
    bw_upload_t *u = upload_find(n, link, up->code, &target, ctag, (size_t)ctag_len);
    uint32_t size1;
    if (b.num == 0) {
        if (tether_coap_msg_get_uint(up, TETHER_COAP_OPT_SIZE1, &size1) == 0 &&
            size1 > n->conf.upload_max_bytes) {
            reply_too_large(n, link, req, now);
            return true;
        }
        if (u && u->pending) {
            reject(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "upload block in flight", now);
            return true;
        }
        if (u) /* the client starts over */
            upload_free(n, u);
        u = NULL;
        if (!b.more)
            return false; /* all in one block: nothing to keep apart */
        if (uploads_of(n, host) >= n->conf.uploads_per_device ||
            n->bw.nxfers + n->bw.nuploads >= n->conf.block_max_transfers) {
            reject(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "too many uploads", now);
            return true;
        }
        if (!(u = calloc(1, sizeof *u))) {
            reject(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
            return true;
        }
        u->client = *link;
        u->code = up->code;
        u->target = target;
        u->ctag_len = (uint8_t)ctag_len;
        memcpy(u->ctag, ctag, (size_t)ctag_len);
        snprintf(u->dev, sizeof u->dev, "%s", host);
        tether_be32_put(u->rtag, n->bw.next_rtag++);
        tether_list_push(&n->bw.uploads, &u->node);
        n->bw.nuploads++;
        n->stats.uploads_active = n->bw.nuploads;
    } else if (!u || off != u->next_off) {
        reject(n, link, req, TETHER_COAP_REQUEST_INCOMPLETE, "block out of order", now);
        return true;
    } else if (u->pending) {
        reject(n, link, req, TETHER_COAP_SERVICE_UNAVAILABLE, "upload block in flight", now);
        return true;
    }
    /* RFC 7959 §2.3: only the last block may be shorter than the size. */
    if (b.more ? up->payload_len != size : up->payload_len > size) {
        reject(n, link, req, TETHER_COAP_BAD_REQUEST, "block of the wrong length", now);
        return true;
    }
    if (u->next_off + up->payload_len > n->conf.upload_max_bytes) {
        upload_free(n, u);
        reply_too_large(n, link, req, now);
        return true;
    }
    tether_coap_msg_del_opt(up, TETHER_COAP_OPT_REQUEST_TAG);
    memcpy(rtag, u->rtag, sizeof u->rtag);
    if (tether_coap_msg_add_opt(up, TETHER_COAP_OPT_REQUEST_TAG, rtag, sizeof u->rtag) < 0) {
        reject(n, link, req, TETHER_COAP_INTERNAL_ERROR, NULL, now);
        return true;
    }
    u->pending_len = (uint32_t)up->payload_len;
    u->idle_until = now + n->conf.block_idle_ms;
    n->stats.upload_blocks++;
    *upload = u;
    return false;
}

void tether_bw_upload_answer(tether_node_t *n, bw_upload_t *u, const tether_coap_msg_t *resp,
                             tether_time_t now)
{
    if (resp->code == TETHER_COAP_CONTINUE) {
        u->next_off += u->pending_len;
        u->idle_until = now + n->conf.block_idle_ms;
        return;
    }
    if (TETHER_COAP_CLASS(resp->code) == 2)
        n->stats.uploads_completed++;
    upload_free(n, u); /* done, or refused: either way over */
}

void tether_bw_upload_attach(bw_upload_t *u, relay_req_t *r)
{
    u->pending = r;
    r->bw_upload = u;
}

void tether_bw_upload_detach(relay_req_t *r)
{
    if (r->bw_upload)
        r->bw_upload->pending = NULL;
    r->bw_upload = NULL;
}

void tether_bw_uploads_tick(tether_node_t *n, tether_time_t now)
{
    for (tether_lnode_t *l = n->bw.uploads.head, *next; l; l = next) {
        next = l->next;
        bw_upload_t *u = container_of(l, bw_upload_t, node);
        if (!u->pending && now >= u->idle_until) {
            n->stats.uploads_abandoned++;
            upload_free(n, u);
        }
    }
}

tether_time_t tether_bw_uploads_deadline(const tether_node_t *n)
{
    tether_time_t d = UINT64_MAX;
    for (const tether_lnode_t *l = n->bw.uploads.head; l; l = l->next) {
        const bw_upload_t *u = container_of(l, bw_upload_t, node);
        if (!u->pending && u->idle_until < d)
            d = u->idle_until;
    }
    return d;
}

void tether_bw_uploads_free(tether_node_t *n)
{
    while (n->bw.uploads.head)
        upload_free(n, container_of(n->bw.uploads.head, bw_upload_t, node));
}
