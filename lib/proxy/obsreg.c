/* The observation table (see obsreg.h). */
#include <stdlib.h>
#include <string.h>

#include "proxy/obsreg.h"

#include "util/container.h"
#define SEQ_MASK 0xffffffu

/* The observers of one client link. */
struct tether_obs_link {
    tether_hnode_t node; /* key: link key */
    tether_list_t observers;
};

int tether_obs_init(tether_obs_table_t *t, uint64_t seed)
{
    int rc;
    memset(t, 0, sizeof *t);
    t->seed = seed;
    if ((rc = tether_hmap_init(&t->by_key, 256, seed)) < 0)
        return rc;
    if ((rc = tether_hmap_init(&t->by_token, 256, seed ^ 0x3c6ef372fe94f82bull)) < 0)
        goto fail_token;
    if ((rc = tether_hmap_init(&t->by_id, 256, seed ^ 0xa54ff53a5f1d36f1ull)) < 0)
        goto fail_id;
    if ((rc = tether_hmap_init(&t->by_link, 256, seed ^ 0x510e527fade682d1ull)) < 0)
        goto fail_link;
    return 0;
fail_link:
    tether_hmap_free(&t->by_id);
fail_id:
    tether_hmap_free(&t->by_token);
fail_token:
    tether_hmap_free(&t->by_key);
    return rc;
}

void tether_obs_free(tether_obs_table_t *t)
{
    while (t->all.head)
        tether_obs_destroy(t, container_of(t->all.head, tether_observation_t, all));
    tether_hmap_free(&t->by_link);
    tether_hmap_free(&t->by_id);
    tether_hmap_free(&t->by_token);
    tether_hmap_free(&t->by_key);
}

tether_observation_t *tether_obs_find(const tether_obs_table_t *t, const tether_cache_key_t *k)
{
    uint64_t d = tether_cache_key_digest(k, t->seed);
    tether_hnode_t *h = tether_hmap_find(&t->by_key, &d, sizeof d);
    tether_observation_t *o = h ? container_of(h, tether_observation_t, by_key) : NULL;
    return o && o->key_len == k->len && memcmp(o->key, k->buf, k->len) == 0 ? o : NULL;
}

tether_observation_t *tether_obs_find_token(const tether_obs_table_t *t, const uint8_t *tok,
                                            size_t tkl)
{
    if (tkl != TETHER_OBS_TOKEN_LEN)
        return NULL;
    tether_hnode_t *h = tether_hmap_find(&t->by_token, tok, tkl);
    return h ? container_of(h, tether_observation_t, by_token) : NULL;
}

int tether_obs_create(tether_obs_table_t *t, const tether_cache_key_t *k, const uint8_t *utok,
                      const uint8_t *req, size_t len, tether_list_t *dev_list,
                      tether_observation_t **out)
{
    int rc = TETHER_ENOMEM;
    if (len > UINT16_MAX)
        return TETHER_EINVAL;
    tether_observation_t *o = calloc(1, sizeof *o + k->len);
    if (!o || !(o->req = malloc(len)))
        goto fail;
    memcpy(o->req, req, len);
    o->req_len = (uint16_t)len;
    memcpy(o->key, k->buf, k->len);
    o->key_len = k->len;
    o->key_path_len = k->path_len;
    memcpy(o->utok, utok, TETHER_OBS_TOKEN_LEN);
    o->seq = 1; /* the first notification goes out as 2 */
    if ((rc = tether_hmap_insert(&t->by_token, &o->by_token, utok, TETHER_OBS_TOKEN_LEN)) < 0)
        goto fail;
    uint64_t d = tether_cache_key_digest(k, t->seed);
    if ((rc = tether_hmap_insert(&t->by_key, &o->by_key, &d, sizeof d)) < 0) {
        /* Another key with the same digest is observed: not shareable. */
        tether_hmap_remove(&t->by_token, &o->by_token);
        goto fail;
    }
    o->dev_list = dev_list;
    tether_list_push(dev_list, &o->dev_node);
    tether_list_push(&t->all, &o->all);
    t->nobservations++;
    *out = o;
    return 0;
fail:
    if (o)
        free(o->req);
    free(o);
    return rc;
}

void tether_obs_destroy(tether_obs_table_t *t, tether_observation_t *o)
{
    while (o->observers.head)
        tether_obs_remove_observer(t, container_of(o->observers.head, tether_observer_t, in_obs));
    tether_hmap_remove(&t->by_key, &o->by_key);
    tether_hmap_remove(&t->by_token, &o->by_token);
    tether_list_del(o->dev_list, &o->dev_node);
    tether_list_del(&t->all, &o->all);
    t->nobservations--;
    free(o->last);
    free(o->req);
    free(o);
}

static tether_obs_link_t *link_find(const tether_obs_table_t *t, const tether_link_t *link)
{
    uint8_t key[20];
    size_t kl = tether_link_key(link, key);
    tether_hnode_t *h = tether_hmap_find(&t->by_link, key, kl);
    return h ? container_of(h, tether_obs_link_t, node) : NULL;
}

int tether_obs_add_observer(tether_obs_table_t *t, tether_observation_t *o,
                            const tether_link_t *link, const uint8_t *tok, size_t tkl,
                            tether_time_t now, tether_observer_t **out)
{
    if (tkl > TETHER_COAP_MAX_TOKEN)
        return TETHER_EINVAL;
    tether_observer_t *ob = calloc(1, sizeof *ob);
    if (!ob)
        return TETHER_ENOMEM;
    tether_obs_link_t *ln = link_find(t, link);
    if (!ln) {
        uint8_t key[20];
        size_t kl = tether_link_key(link, key);
        if (!(ln = calloc(1, sizeof *ln)) ||
            tether_hmap_insert(&t->by_link, &ln->node, key, kl) < 0) {
            free(ln);
            free(ob);
            return TETHER_ENOMEM;
        }
    }
    do
        ob->id = t->next_id++;
    while (tether_hmap_insert(&t->by_id, &ob->by_id, &ob->id, sizeof ob->id) < 0);
    ob->obs = o;
    ob->ln = ln;
    ob->link = *link;
    ob->tkl = (uint8_t)tkl;
    memcpy(ob->tok, tok, tkl);
    ob->last_con = now;
    tether_list_push(&o->observers, &ob->in_obs);
    tether_list_push(&ln->observers, &ob->in_link);
    o->nobservers++;
    t->nobservers++;
    *out = ob;
    return 0;
}

void tether_obs_remove_observer(tether_obs_table_t *t, tether_observer_t *ob)
{
    tether_observation_t *o = ob->obs;
    tether_list_del(&o->observers, &ob->in_obs);
    tether_list_del(&ob->ln->observers, &ob->in_link);
    if (!ob->ln->observers.head) {
        tether_hmap_remove(&t->by_link, &ob->ln->node);
        free(ob->ln);
    }
    tether_hmap_remove(&t->by_id, &ob->by_id);
    o->nobservers--;
    t->nobservers--;
    free(ob);
}

tether_observer_t *tether_obs_observer_by_id(const tether_obs_table_t *t, uint32_t id)
{
    tether_hnode_t *h = tether_hmap_find(&t->by_id, &id, sizeof id);
    return h ? container_of(h, tether_observer_t, by_id) : NULL;
}

tether_observer_t *tether_obs_observer_find(const tether_obs_table_t *t, const tether_link_t *link,
                                            const uint8_t *tok, size_t tkl)
{
    tether_obs_link_t *ln = link_find(t, link);
    for (tether_lnode_t *n = ln ? ln->observers.head : NULL; n; n = n->next) {
        tether_observer_t *ob = container_of(n, tether_observer_t, in_link);
        if (!ob->group && ob->tkl == tkl && memcmp(ob->tok, tok, tkl) == 0)
            return ob;
    }
    return NULL;
}

tether_observer_t *tether_obs_observer_by_mid(const tether_obs_table_t *t,
                                              const tether_link_t *link, uint16_t mid)
{
    tether_obs_link_t *ln = link_find(t, link);
    for (tether_lnode_t *n = ln ? ln->observers.head : NULL; n; n = n->next) {
        tether_observer_t *ob = container_of(n, tether_observer_t, in_link);
        if (ob->notified && ob->last_mid == mid)
            return ob;
    }
    return NULL;
}

tether_observer_t *tether_obs_link_first(const tether_obs_table_t *t, const tether_link_t *link)
{
    tether_obs_link_t *ln = link_find(t, link);
    return ln && ln->observers.head ? container_of(ln->observers.head, tether_observer_t, in_link)
                                    : NULL;
}

int tether_obs_set_latest(tether_observation_t *o, const tether_coap_msg_t *resp)
{
    tether_coap_msg_t m;
    uint8_t buf[TETHER_MSG_MAX], ov[3];
    size_t len;
    uint32_t seq = (o->seq + 1) & SEQ_MASK;
    tether_coap_msg_init(&m, TETHER_COAP_NON, resp->code, 0);
    size_t ol = seq > 0xffff ? 3 : seq > 0xff ? 2 : seq ? 1 : 0;
    for (size_t i = 0; i < ol; i++)
        ov[i] = (uint8_t)(seq >> (8 * (ol - 1 - i)));
    for (size_t i = 0; i < resp->nopts; i++)
        if (resp->opts[i].num != TETHER_COAP_OPT_OBSERVE &&
            tether_coap_msg_add_opt(&m, resp->opts[i].num, resp->opts[i].val, resp->opts[i].len) <
                0)
            return TETHER_ENOSPC;
    if (tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, ov, ol) < 0)
        return TETHER_ENOSPC;
    m.payload = resp->payload;
    m.payload_len = resp->payload_len;
    int rc = tether_coap_encode(&m, buf, sizeof buf, &len);
    if (rc < 0)
        return rc;
    uint8_t *tail = malloc(len - 4 ? len - 4 : 1);
    if (!tail)
        return TETHER_ENOMEM;
    memcpy(tail, buf + 4, len - 4);
    free(o->last);
    o->last = tail;
    o->last_len = (uint16_t)(len - 4);
    o->last_code = resp->code;
    o->seq = seq;
    return 0;
}

int tether_obs_encode(const tether_observation_t *o, const tether_observer_t *ob, uint8_t type,
                      uint16_t mid, uint8_t *buf, size_t cap, size_t *out_len)
{
    size_t len = 4 + (size_t)ob->tkl + o->last_len;
    if (!o->last_code || len > cap)
        return o->last_code ? TETHER_ENOSPC : TETHER_ENOTFOUND;
    buf[0] = (uint8_t)(TETHER_COAP_VERSION << 6 | type << 4 | ob->tkl);
    buf[1] = o->last_code;
    buf[2] = (uint8_t)(mid >> 8);
    buf[3] = (uint8_t)mid;
    memcpy(buf + 4, ob->tok, ob->tkl);
    memcpy(buf + 4 + ob->tkl, o->last, o->last_len);
    *out_len = len;
    return 0;
}
