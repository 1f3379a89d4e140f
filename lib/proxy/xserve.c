/* Device node B's side of cross-node requests (xrelay.h): a slot per
 * XREQ, its request entering the node on a cluster link, the answers and
 * notifications sent back as XRSP, and slots of silent nodes closed. */
#include <stdlib.h>
#include <string.h>

#include "proxy/observe.h"
#include "proxy/obsstore.h"
#include "proxy/xrelay_int.h"
#include "tether/cluster.h"
#include "util/vec.h"

static void slot_key(uint8_t node, uint32_t id, uint8_t k[5])
{
    k[0] = node;
    tether_be32_put(k + 1, id);
}

static tether_link_t slot_link(const xr_slot_t *s)
{
    tether_link_t l = {.kind = TETHER_LINK_CLUSTER, .id = s->link_id};
    return l;
}

static void slot_free(tether_node_t *n, xr_slot_t *s)
{
    struct tether_xrelay *x = XR(n);
    tether_hmap_remove(&x->by_src, &s->by_src);
    tether_hmap_remove(&x->by_link, &s->by_link);
    tether_list_del(&x->slots, &s->all);
    x->slots_per_node[s->node]--;
    x->nslots--;
    free(s);
}

/* Ends what the node holds for `s` (its observer, its message state). */
static void slot_close(tether_node_t *n, xr_slot_t *s, tether_time_t now)
{
    tether_link_t l = slot_link(s);
    s->closing = false;
    tether_node_link_down(n, &l, now);
}

static void xrsp(tether_node_t *n, const xr_slot_t *s, const uint8_t *msg, size_t len)
{
    uint8_t h[4];
    tether_be32_put(h, s->reqid);
    xr_out(n, s->node, TETHER_CLUSTER_XRSP, h, sizeof h, msg, len);
}

void xr_on_xreq(tether_node_t *n, uint8_t from, const uint8_t *p, size_t len, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    if (len <= TETHER_XRELAY_HDR || len > TETHER_XRELAY_HDR + TETHER_MSG_MAX)
        return;
    uint8_t k[5];
    slot_key(from, tether_be32_get(p), k);
    tether_hnode_t *h = tether_hmap_find(&x->by_src, k, sizeof k);
    if (h) { /* A retransmitted: the answer again if there is one */
        xr_slot_t *s = container_of(h, xr_slot_t, by_src);
        n->stats.xrelay_duplicates++;
        if (s->done && s->rlen)
            xrsp(n, s, s->resp, s->rlen);
        return;
    }
    if (x->nslots >= n->conf.xslots_max) {
        tether_coap_msg_t req, resp;
        tether_coap_perr_t perr;
        uint8_t buf[64];
        size_t bl;
        if (tether_coap_parse(&req, p + TETHER_XRELAY_HDR, len - TETHER_XRELAY_HDR, &perr) < 0)
            return;
        tether_coap_msg_init(&resp, TETHER_COAP_NON, TETHER_COAP_SERVICE_UNAVAILABLE, 0);
        tether_coap_msg_set_token(&resp, req.token, req.tkl);
        if (tether_coap_encode(&resp, buf, sizeof buf, &bl) == 0) {
            xr_slot_t tmp = {.node = from, .reqid = tether_be32_get(p)};
            xrsp(n, &tmp, buf, bl);
        }
        return;
    }
    xr_slot_t *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->node = from;
    s->reqid = tether_be32_get(p);
    s->observe = p[4] & F_OBSERVE;
    s->link_id = x->next_link++;
    s->since = now;
    tether_hmap_insert(&x->by_src, &s->by_src, k, sizeof k);
    tether_hmap_insert(&x->by_link, &s->by_link, &s->link_id, sizeof s->link_id);
    tether_list_push(&x->slots, &s->all);
    x->slots_per_node[from]++;
    x->nslots++;
    n->stats.xrelay_served++;
    if (x->next_sweep == UINT64_MAX)
        x->next_sweep = now + SWEEP_MS;
    tether_peer_t peer = {.link = slot_link(s)};
    tether_node_input(n, &peer, p + TETHER_XRELAY_HDR, len - TETHER_XRELAY_HDR, now);
}

void xr_on_xend(tether_node_t *n, uint8_t from, const uint8_t *p, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    uint8_t k[5];
    slot_key(from, tether_be32_get(p), k);
    tether_hnode_t *h = tether_hmap_find(&x->by_src, k, sizeof k);
    if (h) {
        xr_slot_t *s = container_of(h, xr_slot_t, by_src);
        slot_close(n, s, now);
        slot_free(n, s);
    }
}

void tether_node_xlink_out(tether_node_t *n, const tether_out_t *o)
{
    struct tether_xrelay *x = XR(n);
    tether_hnode_t *h = tether_hmap_find(&x->by_link, &o->link.id, sizeof o->link.id);
    if (!h || o->len < 4)
        return;
    xr_slot_t *s = container_of(h, xr_slot_t, by_link);
    uint8_t type = o->data[0] >> 4 & 3;
    if (type == TETHER_COAP_CON) { /* acknowledged in settle, as A would */
        xr_ack_t *a = tether_vec_grow(x->acks, &x->acks_cap, x->nacks + 1, sizeof *a, 16, 4096);
        if (a) {
            x->acks = a;
            x->acks[x->nacks++] =
                (xr_ack_t){.link = o->link, .mid = (uint16_t)(o->data[2] << 8 | o->data[3])};
        }
    }
    if (o->data[1] == 0 || s->done) /* an empty ACK or RST: A has its own exchange */
        return;
    xrsp(n, s, o->data, o->len);
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    uint32_t ov;
    bool notification = s->observe && tether_coap_parse(&m, o->data, o->len, &perr) == 0 &&
                        xr_success(m.code) &&
                        tether_coap_msg_get_uint(&m, TETHER_COAP_OPT_OBSERVE, &ov) == 0;
    if (!notification) { /* the final answer: kept for a retransmitted XREQ */
        s->done = true;
        uint64_t *c =
            tether_vec_grow(x->closes, &x->closes_cap, x->ncloses + 1, sizeof *c, 16, SIZE_MAX);
        if (c) { /* else closed by the sweep when it expires */
            x->closes = c;
            x->closes[x->ncloses++] = s->link_id;
            s->closing = true;
        }
        memcpy(s->resp, o->data, o->len);
        s->rlen = o->len;
    }
}

void tether_node_xsettle(tether_node_t *n, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    while (x->nacks) {
        xr_ack_t a = x->acks[--x->nacks];
        uint8_t ack[4] = {(uint8_t)(TETHER_COAP_VERSION << 6 | TETHER_COAP_ACK << 4), 0,
                          (uint8_t)(a.mid >> 8), (uint8_t)a.mid};
        tether_peer_t peer = {.link = a.link};
        tether_node_input(n, &peer, ack, sizeof ack, now);
    }
    while (x->ncloses) {
        uint64_t id = x->closes[--x->ncloses];
        tether_hnode_t *h = tether_hmap_find(&x->by_link, &id, sizeof id);
        xr_slot_t *s = h ? container_of(h, xr_slot_t, by_link) : NULL;
        if (s && s->closing)
            slot_close(n, s, now);
    }
}

/* B: node `id` went silent: its slots close, its registry records go. */
static void node_gone(tether_node_t *n, uint8_t id, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    for (tether_lnode_t *l = x->slots.head, *ln; l; l = ln) {
        ln = l->next;
        xr_slot_t *s = container_of(l, xr_slot_t, all);
        if (s->node != id)
            continue;
        tether_link_t link = slot_link(s);
        tether_observer_t *ob = tether_obs_link_first(&n->obs, &link);
        xr_drop_t *d = ob ? calloc(1, sizeof *d) : NULL;
        if (d) { /* its record lists that node's clients: an adopter takes them */
            d->at = now + REHOME_GRACE_MS;
            d->node = id;
            d->key_len = (uint16_t)ob->obs->key_len;
            memcpy(d->key, ob->obs->key, ob->obs->key_len);
            tether_list_push(&x->drops, &d->ln);
        } else if (ob) {
            tether_obsstore_drop(n, ob->obs->key, ob->obs->key_len, id, now);
        }
        slot_close(n, s, now);
        slot_free(n, s);
    }
}

/* Slots of silent nodes and finished ones, and registry records whose
 * grace ran out (xrelay_int.h). */
void xr_slots_sweep(tether_node_t *n, tether_time_t now)
{
    struct tether_xrelay *x = XR(n);
    for (int id = 1; id < 256; id++)
        if (x->slots_per_node[id] && !xr_node_alive(n, (uint8_t)id, now))
            node_gone(n, (uint8_t)id, now);
    /* Records of silent nodes whose grace ran out (none came back). */
    while (x->drops.head) {
        xr_drop_t *d = container_of(x->drops.head, xr_drop_t, ln);
        if (d->at > now)
            break;
        if (!xr_node_alive(n, d->node, now))
            tether_obsstore_drop(n, d->key, d->key_len, d->node, now);
        tether_list_del(&x->drops, &d->ln);
        free(d);
    }
    /* Finished slots are kept while A may still retransmit its XREQ. */
    tether_time_t keep = n->conf.request_timeout_ms + n->conf.xrelay_margin_ms;
    for (tether_lnode_t *l = x->slots.head, *ln; l; l = ln) {
        ln = l->next;
        xr_slot_t *s = container_of(l, xr_slot_t, all);
        if (s->done && s->since + keep < now) {
            if (s->closing)
                slot_close(n, s, now);
            slot_free(n, s);
        } else if (!s->observe && !s->done && s->since + n->conf.queue_ttl_ms + keep < now) {
            slot_close(n, s, now); /* never answered: the node lost it */
            slot_free(n, s);
        }
    }
}

void xr_slots_free(tether_node_t *n)
{
    struct tether_xrelay *x = XR(n);
    while (x->slots.head)
        slot_free(n, container_of(x->slots.head, xr_slot_t, all));
    while (x->drops.head) {
        xr_drop_t *d = container_of(x->drops.head, xr_drop_t, ln);
        tether_list_del(&x->drops, &d->ln);
        free(d);
    }
}
