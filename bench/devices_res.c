/* tether-bench devices: the resources a simulated device serves (listed
 * in devices.c and bench/README.md), the routing of tether's requests to
 * them, and /temp's notifications to its observers (RFC 7641). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices_int.h"

const char link_format[sizeof BENCH_DEVICE_LINKS] = BENCH_DEVICE_LINKS;

/* ---- resources ----------------------------------------------------------------- */

/* Scratch for one response's option values (encoded before reuse). */
typedef struct {
    uint8_t cf[4], maxage[4], observe[4], block[3], size2[4];
    char text[96];
} dev_scratch_t;

static void temp_value(const device_t *d, uint64_t now, char *out, size_t cap)
{
    uint64_t sec = (now + d->phase_ms) / 1000;
    unsigned v = 200 + (unsigned)((sec + d->num * 7u) % 100);
    snprintf(out, cap, "%u.%u", v / 10, v % 10);
}

void add_uint_opt(tether_coap_msg_t *r, uint16_t num, uint32_t v, uint8_t *buf)
{
    size_t n = tether_coap_uint_encode(v, buf);
    tether_coap_msg_add_opt(r, num, buf, n);
}

/* Fills the body of a /temp representation (2.05, text, Max-Age 1). */
static void temp_body(device_t *d, uint64_t now, tether_coap_msg_t *r, dev_scratch_t *s)
{
    r->code = TETHER_COAP_CONTENT;
    add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_TEXT, s->cf);
    add_uint_opt(r, TETHER_COAP_OPT_MAX_AGE, 1, s->maxage);
    temp_value(d, now, s->text, sizeof s->text);
    r->payload = (const uint8_t *)s->text;
    r->payload_len = strlen(s->text);
}

static int obs_find(device_t *d, const tether_coap_msg_t *m)
{
    for (int i = 0; i < DEV_MAX_OBS; i++)
        if (d->obs[i].active && d->obs[i].tkl == m->tkl &&
            memcmp(d->obs[i].token, m->token, m->tkl) == 0)
            return i;
    return -1;
}

/* GET /temp, with Observe registration (0) or deregistration (1). */
static void res_temp(device_t *d, const tether_coap_msg_t *m, uint64_t now, tether_coap_msg_t *r,
                     dev_scratch_t *s)
{
    uint32_t ov;
    bool has_obs = tether_coap_msg_get_uint(m, TETHER_COAP_OPT_OBSERVE, &ov) == 0;
    int i = obs_find(d, m);
    if (has_obs && ov == 0) {
        if (i < 0)
            for (int k = 0; k < DEV_MAX_OBS && i < 0; k++)
                if (!d->obs[k].active)
                    i = k;
        if (i >= 0) {
            dev_obs_t *o = &d->obs[i];
            if (!o->active) {
                memset(o, 0, sizeof *o);
                o->active = true;
                o->tkl = m->tkl;
                memcpy(o->token, m->token, m->tkl);
                o->seq = bench_rand() & 0xffff;
                d->ds->st.observe_registrations++;
            }
            add_uint_opt(r, TETHER_COAP_OPT_OBSERVE, o->seq & 0xffffff, s->observe);
            dev_arm(d);
        }
    } else if (has_obs && ov == 1) {
        obs_cancel(d, i);
    }
    temp_body(d, now, r, s);
}

/* GET of data[size] in the block size the request asks for (/big, /large). */
static void res_blocks(const tether_coap_msg_t *m, tether_coap_msg_t *r, dev_scratch_t *s,
                       const uint8_t *data, size_t total, const char *etag)
{
    tether_coap_block_t b = {.num = 0, .more = false, .szx = 6};
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(m, TETHER_COAP_OPT_BLOCK2);
    if (o && tether_coap_block_decode(o->val, o->len, &b) < 0) {
        r->code = TETHER_COAP_BAD_OPTION;
        return;
    }
    size_t size = tether_coap_block_size(b.szx), off = (size_t)b.num * size;
    if (off >= total) {
        r->code = TETHER_COAP_BAD_OPTION;
        return;
    }
    size_t n = total - off < size ? total - off : size;
    b.more = off + n < total;
    size_t blen;
    tether_coap_block_encode(&b, s->block, &blen);
    r->code = TETHER_COAP_CONTENT;
    if (etag)
        tether_coap_msg_add_opt(r, TETHER_COAP_OPT_ETAG, etag, strlen(etag));
    add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_OCTET_STREAM, s->cf);
    tether_coap_msg_add_opt(r, TETHER_COAP_OPT_BLOCK2, s->block, blen);
    if (b.num == 0)
        add_uint_opt(r, TETHER_COAP_OPT_SIZE2, (uint32_t)total, s->size2);
    r->payload = data + off;
    r->payload_len = n;
}

static void hex_digest(wc_Sha256 *sha, char out[65])
{
    uint8_t dg[WC_SHA256_DIGEST_SIZE];
    wc_Sha256Final(sha, dg);
    wc_Sha256Free(sha);
    for (int i = 0; i < WC_SHA256_DIGEST_SIZE; i++)
        snprintf(out + 2 * i, 3, "%02x", dg[i]);
}

/* The upload slot of Request-Tag tag[len]: found, or (fresh) a free or
 * stale one taken; NULL when none. */
static dev_upload_t *upload_slot(device_t *d, const uint8_t *tag, size_t len, bool fresh,
                                 uint64_t now)
{
    if (!d->uploads && !(d->uploads = calloc(DEV_UPLOADS, sizeof *d->uploads)))
        return NULL;
    dev_upload_t *free_slot = NULL;
    for (int i = 0; i < DEV_UPLOADS; i++) {
        dev_upload_t *u = &d->uploads[i];
        if (u->used && u->tag_len == len && memcmp(u->tag, tag, len) == 0)
            return u;
        if (u->used && now > u->last_ms + DEV_UPLOAD_IDLE_MS) {
            wc_Sha256Free(&u->sha);
            u->used = false;
        }
        if (!u->used && !free_slot)
            free_slot = u;
    }
    return fresh ? free_slot : NULL;
}

/* PUT or POST /upload: Block1 blocks in order (RFC 7959 §2.5) under one
 * Request-Tag; 2.31 for each but the last, then 2.04 with the hex SHA-256
 * of everything received. A partial upload changes nothing. */
static void res_upload(device_t *d, const tether_coap_msg_t *m, uint64_t now, tether_coap_msg_t *r,
                       dev_scratch_t *s)
{
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(m, TETHER_COAP_OPT_BLOCK1);
    const tether_coap_opt_t *tag = tether_coap_msg_find_opt(m, TETHER_COAP_OPT_REQUEST_TAG);
    tether_coap_block_t b = {.num = 0, .more = false, .szx = 6};
    if ((o && tether_coap_block_decode(o->val, o->len, &b) < 0) || (tag && tag->len > 8)) {
        r->code = TETHER_COAP_BAD_OPTION;
        return;
    }
    size_t size = tether_coap_block_size(b.szx);
    uint64_t off = (uint64_t)b.num * size;
    dev_upload_t *u = upload_slot(d, tag ? tag->val : NULL, tag ? tag->len : 0, b.num == 0, now);
    if (!u) {
        r->code = b.num == 0 ? TETHER_COAP_SERVICE_UNAVAILABLE : TETHER_COAP_REQUEST_INCOMPLETE;
        return;
    }
    if (b.num == 0) {
        if (u->used)
            wc_Sha256Free(&u->sha);
        memset(u, 0, sizeof *u);
        wc_InitSha256(&u->sha);
        u->used = true;
        u->tag_len = tag ? (uint8_t)tag->len : 0;
        if (tag)
            memcpy(u->tag, tag->val, tag->len);
    } else if (!u->used || off != u->off) {
        r->code = TETHER_COAP_REQUEST_INCOMPLETE;
        return;
    }
    if ((b.more && m->payload_len != size) || u->off + m->payload_len > DEV_UPLOAD_MAX) {
        r->code = TETHER_COAP_BAD_REQUEST;
        wc_Sha256Free(&u->sha);
        u->used = false;
        return;
    }
    wc_Sha256Update(&u->sha, m->payload, (word32)m->payload_len);
    u->off += m->payload_len;
    u->last_ms = now;
    size_t blen;
    if (o) {
        tether_coap_block_encode(&b, s->block, &blen);
        tether_coap_msg_add_opt(r, TETHER_COAP_OPT_BLOCK1, s->block, blen);
    }
    if (b.more) {
        r->code = TETHER_COAP_CONTINUE;
        return;
    }
    hex_digest(&u->sha, d->last_sha);
    u->used = false;
    d->hits_upload++;
    r->code = TETHER_COAP_CHANGED;
    add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_TEXT, s->cf);
    r->payload = (const uint8_t *)d->last_sha;
    r->payload_len = 64;
}

/* POST or PUT /echo: 2.04 with the request's payload and Content-Format; the
 * payload is kept for GET /echo. */
static void res_echo(device_t *d, const tether_coap_msg_t *m, tether_coap_msg_t *r)
{
    size_t n = m->payload_len < DEV_MTU ? m->payload_len : DEV_MTU;
    uint8_t *keep = n ? realloc(d->echo, n) : d->echo;
    if (keep) {
        memcpy(keep, m->payload, n);
        d->echo = keep;
        d->echo_len = (uint16_t)n;
    }
    r->code = TETHER_COAP_CHANGED;
    const tether_coap_opt_t *cf = tether_coap_msg_find_opt(m, TETHER_COAP_OPT_CONTENT_FORMAT);
    if (cf)
        tether_coap_msg_add_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, cf->val, cf->len);
    r->payload = m->payload;
    r->payload_len = m->payload_len;
}

/* Routes a request: fills r (code, options, payload); *slow when the answer
 * is the 1-second separate response of /slow. */
static void dev_route(device_t *d, const tether_coap_msg_t *m, uint64_t now, tether_coap_msg_t *r,
                      dev_scratch_t *s, bool *slow)
{
    uint16_t bad;
    *slow = false;
    if (tether_coap_check_opts(&d->ds->reg, m, &bad) < 0) {
        r->code = TETHER_COAP_BAD_OPTION;
        return;
    }
    bool get = m->code == TETHER_COAP_GET;
    if (tether_coap_path_equals(m, "temp")) {
        if (get)
            res_temp(d, m, now, r, s);
        else
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
    } else if (tether_coap_path_equals(m, "big")) {
        if (get) {
            d->hits_big++;
            res_blocks(m, r, s, d->ds->big, DEV_BIG_SIZE, NULL);
        } else {
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
        }
    } else if (tether_coap_path_equals(m, "large")) {
        if (get) {
            d->hits_large++;
            res_blocks(m, r, s, d->ds->large, DEV_LARGE_SIZE, "L1");
        } else {
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
        }
    } else if (tether_coap_path_equals(m, "upload")) {
        if (m->code == TETHER_COAP_PUT || m->code == TETHER_COAP_POST) {
            res_upload(d, m, now, r, s);
        } else if (get) { /* the device's state: the last complete upload */
            r->code = TETHER_COAP_CONTENT;
            add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_TEXT, s->cf);
            r->payload = (const uint8_t *)(d->last_sha[0] ? d->last_sha : "none");
            r->payload_len = strlen((const char *)r->payload);
        } else {
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
        }
    } else if (tether_coap_path_equals(m, "hits")) {
        if (get) { /* never cached: Max-Age 0 */
            r->code = TETHER_COAP_CONTENT;
            add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_TEXT, s->cf);
            add_uint_opt(r, TETHER_COAP_OPT_MAX_AGE, 0, s->maxage);
            snprintf(s->text, sizeof s->text, "big=%u large=%u upload=%u", d->hits_big,
                     d->hits_large, d->hits_upload);
            r->payload = (const uint8_t *)s->text;
            r->payload_len = strlen(s->text);
        } else {
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
        }
    } else if (tether_coap_path_equals(m, "echo")) {
        if (m->code == TETHER_COAP_POST || m->code == TETHER_COAP_PUT) {
            res_echo(d, m, r);
        } else if (get) { /* the last payload POSTed, no Max-Age (60 s) */
            r->code = TETHER_COAP_CONTENT;
            add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_TEXT, s->cf);
            r->payload = d->echo;
            r->payload_len = d->echo_len;
        } else {
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
        }
    } else if (tether_coap_path_equals(m, "count")) {
        if (get) {
            r->code = TETHER_COAP_CONTENT;
            add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_TEXT, s->cf);
            add_uint_opt(r, TETHER_COAP_OPT_MAX_AGE, 0, s->maxage);
            snprintf(s->text, sizeof s->text, "%u", ++d->count);
            r->payload = (const uint8_t *)s->text;
            r->payload_len = strlen(s->text);
        } else {
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
        }
    } else if (tether_coap_path_equals(m, "static")) {
        if (get) {
            r->code = TETHER_COAP_CONTENT;
            add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_TEXT, s->cf);
            add_uint_opt(r, TETHER_COAP_OPT_MAX_AGE, 3600, s->maxage);
            tether_coap_msg_add_opt(r, TETHER_COAP_OPT_ETAG, "s1", 2);
            r->payload = (const uint8_t *)"static";
            r->payload_len = 6;
        } else {
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
        }
    } else if (tether_coap_path_equals(m, "slow")) {
        if (get) {
            r->code = TETHER_COAP_CONTENT;
            add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_TEXT, s->cf);
            r->payload = (const uint8_t *)"slow";
            r->payload_len = 4;
            *slow = true;
        } else {
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
        }
    } else if (tether_coap_path_equals(m, ".well-known/core")) {
        if (get) {
            r->code = TETHER_COAP_CONTENT;
            add_uint_opt(r, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_LINK_FORMAT, s->cf);
            r->payload = (const uint8_t *)link_format;
            r->payload_len = sizeof link_format - 1;
        } else {
            r->code = TETHER_COAP_METHOD_NOT_ALLOWED;
        }
    } else {
        r->code = TETHER_COAP_NOT_FOUND;
    }
}

/* Serves one request: piggybacked (CON) or NON answer now, or after the
 * configured delay; /slow and long delays answer CON with an empty ACK
 * first and a separate CON response. */
void dev_request(device_t *d, const tether_coap_msg_t *m, uint64_t now)
{
    devices_t *ds = d->ds;
    bool con = m->type == TETHER_COAP_CON;
    if (m->type != TETHER_COAP_CON && m->type != TETHER_COAP_NON)
        return;
    if (con) {
        dev_dedup_t *e = dedup_find(d, m->mid);
        if (e) {
            ds->st.dup_requests++;
            if (e->ready)
                dev_send(d, e->buf, e->len);
            return;
        }
    }
    ds->st.requests++;
    tether_coap_msg_t r;
    dev_scratch_t s;
    bool slow;
    tether_coap_msg_init(&r, TETHER_COAP_ACK, 0, m->mid);
    tether_coap_msg_set_token(&r, m->token, m->tkl);
    dev_route(d, m, now, &r, &s, &slow);
    uint32_t delay = ds->o.response_delay_ms + (slow ? 1000u : 0u);
    uint8_t buf[DEV_MTU];
    ds->st.responses++;
    if (delay == 0) {
        if (!con) {
            r.type = TETHER_COAP_NON;
            r.mid = d->next_mid++;
        }
        size_t n = dev_emit(d, &r, buf, sizeof buf);
        if (con && n)
            dedup_store(d, m->mid, buf, n);
        return;
    }
    if (!con) {
        r.type = TETHER_COAP_NON;
        r.mid = d->next_mid++;
        outbox_add(d, &r, false, now + delay);
        return;
    }
    if (slow || delay >= DEV_SEPARATE_AFTER_MS) {
        tether_coap_msg_t ack;
        tether_coap_msg_init(&ack, TETHER_COAP_ACK, TETHER_COAP_EMPTY, m->mid);
        size_t n = dev_emit(d, &ack, buf, sizeof buf);
        if (n)
            dedup_store(d, m->mid, buf, n);
        r.type = TETHER_COAP_CON;
        r.mid = d->next_mid++;
        ds->st.separate++;
        outbox_add(d, &r, true, now + delay);
        return;
    }
    int slot = dedup_store(d, m->mid, NULL, 0);
    dev_out_t *e = outbox_add(d, &r, false, now + delay);
    if (e)
        e->dedup = (int8_t)slot;
}

/* One notification to every observer of /temp. */
void notify_all(device_t *d, uint64_t now)
{
    for (int i = 0; i < DEV_MAX_OBS; i++) {
        dev_obs_t *o = &d->obs[i];
        if (!o->active)
            continue;
        bool con = ++o->sent % DEV_CON_NOTIFY_EVERY == 0;
        tether_coap_msg_t r;
        dev_scratch_t s;
        tether_coap_msg_init(&r, con ? TETHER_COAP_CON : TETHER_COAP_NON, 0, d->next_mid++);
        tether_coap_msg_set_token(&r, o->token, o->tkl);
        o->seq = (o->seq + 1) & 0xffffff;
        add_uint_opt(&r, TETHER_COAP_OPT_OBSERVE, o->seq, s.observe);
        temp_body(d, now, &r, &s);
        o->last_mid = r.mid;
        d->ds->st.notifications++;
        if (!con) {
            uint8_t buf[128];
            dev_emit(d, &r, buf, sizeof buf);
            continue;
        }
        d->ds->st.notifications_con++;
        /* RFC 7641 §4.5.2: a newer state replaces a CON still in flight,
         * keeping its retransmission state. */
        dev_out_t *old = NULL;
        for (int k = 0; d->outbox && k < DEV_OUTBOX; k++)
            if (d->outbox[k].used && d->outbox[k].obs == i)
                old = &d->outbox[k];
        if (old && old->sent) {
            size_t n;
            if (tether_coap_encode(&r, old->buf, sizeof old->buf, &n) == 0) {
                old->len = (uint16_t)n;
                old->mid = r.mid;
                dev_send(d, old->buf, old->len);
            }
            continue;
        }
        dev_out_t *e = outbox_add(d, &r, true, now);
        if (e)
            e->obs = (int8_t)i;
    }
}
