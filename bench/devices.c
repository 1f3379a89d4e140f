/* tether-bench devices: N simulated devices, each on its own DTLS PSK
 * session with a server-issued Connection ID (SPEC S3, S11).
 *
 * A device registers CoRE-RD style (RFC 9176 subset), refreshes the
 * registration every lifetime/2 and serves tether's requests on the same
 * session (role reversal): /temp (observable, new value every second,
 * Max-Age 1), /big (4096 bytes, Block2), /echo (POST or PUT stores and
 * echoes, GET returns the last payload), /slow (separate response after 1 s), /static (never
 * changes, Max-Age 3600: the cache-hit benchmark's target), /count (grows
 * with every GET, Max-Age 0: never cacheable, the cache-miss benchmark's),
 * /large (65536 bytes, Block2, ETag), /upload (PUT or POST, Block1: the
 * answer is the SHA-256 of what arrived; GET gives that of the last
 * complete upload) and /hits (what /big, /large and /upload served). It
 * can move to a new source port every so often (NAT rebinding) and
 * sleep (queue mode, b=UQ). Progress lines on stderr are described in
 * bench/README.md; tests wait for "devices: connected N/N" and
 * "devices: registered N/N". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "bench.h"
#include "peer.h"
#include "tether/coap.h"
#include "tether/creds.h"

#define CMD "devices"
#define DEV_MTU 1400
#define DEV_MAX_OBS 4
#define DEV_DEDUP 16
#define DEV_OUTBOX 16
#define DEV_BIG_SIZE 4096
#define DEV_LARGE_SIZE 65536
#define DEV_UPLOADS 4              /* uploads in progress per device */
#define DEV_UPLOAD_MAX (64u << 20) /* bytes one upload may bring */
#define DEV_UPLOAD_IDLE_MS 60000   /* a partial upload older than this gives way */
#define DEV_REG_RETRY_MS 5000
#define DEV_SEP_WAIT_MS 30000     /* for a separate response after an empty ACK */
#define DEV_RECONNECT_MS 1000     /* plus up to twice that of jitter */
#define DEV_CON_NOTIFY_EVERY 5    /* every 5th notification is confirmable */
#define DEV_SEPARATE_AFTER_MS 500 /* delayed answers this late go separate */
#define DEV_REG_MAX_FAILS 2       /* exchange timeouts before a new handshake */

static const char link_format[] = BENCH_DEVICE_LINKS;

typedef struct {
    bench_common_opts_t c;
    uint32_t count, first, lifetime_s, response_delay_ms;
    uint32_t notify_ms; /* /temp notifies its observers this often */
    char prefix[32];
    uint8_t master[64];
    size_t master_len;
    double rebind_s, sleep_s, awake_s, stats_s;
    bool sleepy;
    /* --ping-gaps: after registering, stay silent for gap[0] seconds, send
     * a CoAP ping, and after its answer stay silent for gap[1]... (a NAT's
     * binding lifetime shows in which gaps change the source port). */
    double gaps[16];
    size_t ngaps;
} dev_opts_t;

/* A CON answered recently: a duplicate gets the same bytes (RFC 7252 §4.5). */
typedef struct {
    uint16_t mid;
    bool used, ready;
    uint16_t len, cap;
    uint8_t *buf;
} dev_dedup_t;

/* A message to send later (delayed or separate response, CON notification),
 * retransmitted until ACKed when confirmable. */
typedef struct {
    bool used, con, sent;
    int8_t obs;   /* observer this notification is for, or -1 */
    int8_t dedup; /* dedup slot to fill when sent (delayed piggyback), or -1 */
    uint16_t mid;
    uint64_t at_ms;
    bench_con_t rt;
    uint16_t len;
    uint8_t buf[DEV_MTU];
} dev_out_t;

/* One Block1 upload in progress (RFC 7959 §2.5), told apart from the
 * others by its Request-Tag (RFC 9175 §3): hashed as it comes, not kept. */
typedef struct {
    bool used;
    uint8_t tag_len, tag[8];
    uint64_t off, last_ms;
    wc_Sha256 sha;
} dev_upload_t;

typedef struct {
    bool active;
    uint8_t tkl;
    uint8_t token[TETHER_COAP_MAX_TOKEN];
    uint32_t seq, sent;
    uint16_t last_mid;
} dev_obs_t;

enum { REG_IDLE, REG_WAIT };

struct devices;

typedef struct {
    bench_peer_t peer;
    struct devices *ds;
    uint32_t num;
    bench_dtls_cred_t cred; /* identity = the device's name */
    uv_timer_t timer;
    uint16_t next_mid;
    uint32_t phase_ms; /* per-device offset of the one-second clock */
    /* registration */
    uint8_t reg_state;
    bool connected; /* counted in devices_t.connected */
    bool registered, reg_update, reg_acked, phases_started;
    uint8_t reg_fails;
    uint16_t reg_mid, reg_len;
    uint8_t reg_token[4];
    bench_con_t reg_rt;
    uint64_t t_reg;
    uint8_t reg_buf[256];
    char loc[96]; /* Location-Path segments joined by '/' */
    /* timing */
    uint64_t t_notify, t_rebind, t_phase, t_reconnect;
    uint64_t t_gap; /* --ping-gaps: when the next ping goes */
    /* The longest silence since it registered: from one record received
     * to the next (failover tests read it as the time a device was cut
     * off, reported at the end: "devices: silences_ms"). */
    uint64_t last_rx, max_silence;
    size_t gap_i;   /* the gap it ends */
    bool asleep;
    uint16_t ping_mid;
    /* serving */
    dev_obs_t obs[DEV_MAX_OBS];
    dev_dedup_t *dedup; /* DEV_DEDUP entries, allocated on first use */
    uint8_t dedup_next;
    dev_out_t *outbox; /* DEV_OUTBOX entries, allocated on first use */
    uint8_t *echo;     /* the last payload POSTed to /echo, allocated on first use */
    uint16_t echo_len;
    uint32_t count; /* GETs of /count */
    uint32_t hits_big, hits_large, hits_upload;
    dev_upload_t *uploads; /* DEV_UPLOADS entries, allocated on first use */
    char last_sha[65];     /* hex SHA-256 of the last complete upload, "" before */
} device_t;

typedef struct {
    uint64_t requests, dup_requests, responses, notifications, notifications_con;
    uint64_t observe_registrations, observe_cancels, separate, reg_ok, reg_errors;
    uint64_t reg_timeouts, pings, pongs, sleeps, outbox_full, bad_messages;
} dev_stats_t;

typedef struct devices {
    dev_opts_t o;
    uv_loop_t *loop;
    bench_net_t net;
    bench_runner_t runner;
    uv_timer_t stats_timer;
    tether_coap_optreg_t reg;
    device_t *dev;
    uint32_t connected, registered;
    bool all_connected_said, all_registered_said, stopping;
    bool code_logged[256];
    dev_stats_t st;
    uint8_t big[DEV_BIG_SIZE];
    uint8_t large[DEV_LARGE_SIZE];
} devices_t;

static void dev_arm(device_t *d);

/* ---- sending ---------------------------------------------------------------- */

static void dev_send(device_t *d, const uint8_t *buf, size_t len)
{
    if (!d->asleep)
        bench_peer_send(&d->peer, buf, len);
}

/* Encodes and sends `m`; returns the encoded length (0 on failure) so the
 * caller can keep the bytes in `buf`. */
static size_t dev_emit(device_t *d, const tether_coap_msg_t *m, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    if (tether_coap_encode(m, buf, cap, &n) < 0)
        return 0;
    dev_send(d, buf, n);
    return n;
}

static void send_empty(device_t *d, uint8_t type, uint16_t mid)
{
    tether_coap_msg_t m;
    uint8_t buf[8];
    tether_coap_msg_init(&m, type, TETHER_COAP_EMPTY, mid);
    dev_emit(d, &m, buf, sizeof buf);
}

/* ---- duplicate detection (RFC 7252 §4.5) ------------------------------------ */

static dev_dedup_t *dedup_find(device_t *d, uint16_t mid)
{
    if (!d->dedup)
        return NULL;
    for (int i = 0; i < DEV_DEDUP; i++)
        if (d->dedup[i].used && d->dedup[i].mid == mid)
            return &d->dedup[i];
    return NULL;
}

/* Remembers the answer to CON `mid` (not ready yet when buf is NULL);
 * returns the slot, or -1 when out of memory. */
static int dedup_store(device_t *d, uint16_t mid, const uint8_t *buf, size_t len)
{
    if (!d->dedup && !(d->dedup = calloc(DEV_DEDUP, sizeof *d->dedup)))
        return -1;
    int i = d->dedup_next;
    d->dedup_next = (uint8_t)((d->dedup_next + 1) % DEV_DEDUP);
    dev_dedup_t *e = &d->dedup[i];
    e->used = true;
    e->mid = mid;
    e->ready = false;
    e->len = 0;
    if (!buf)
        return i;
    if (len > e->cap) {
        uint8_t *nb = realloc(e->buf, len);
        if (!nb) {
            e->used = false;
            return -1;
        }
        e->buf = nb;
        e->cap = (uint16_t)len;
    }
    memcpy(e->buf, buf, len);
    e->len = (uint16_t)len;
    e->ready = true;
    return i;
}

static void dedup_fill(device_t *d, int slot, uint16_t mid, const uint8_t *buf, size_t len)
{
    if (slot < 0 || !d->dedup || !d->dedup[slot].used || d->dedup[slot].mid != mid)
        return;
    d->dedup_next = (uint8_t)slot; /* reuse the slot: store writes it in place */
    dedup_store(d, mid, buf, len);
}

/* ---- outbox: delayed and confirmable messages ------------------------------- */

static dev_out_t *outbox_get(device_t *d)
{
    if (!d->outbox && !(d->outbox = calloc(DEV_OUTBOX, sizeof *d->outbox)))
        return NULL;
    for (int i = 0; i < DEV_OUTBOX; i++)
        if (!d->outbox[i].used) {
            dev_out_t *e = &d->outbox[i];
            memset(e, 0, offsetof(dev_out_t, buf));
            e->used = true;
            e->obs = e->dedup = -1;
            return e;
        }
    d->ds->st.outbox_full++;
    return NULL;
}

/* Queues `m` to leave at `at` (retransmitted until ACKed when `con`). */
static dev_out_t *outbox_add(device_t *d, const tether_coap_msg_t *m, bool con, uint64_t at)
{
    dev_out_t *e = outbox_get(d);
    if (!e)
        return NULL;
    size_t n;
    if (tether_coap_encode(m, e->buf, sizeof e->buf, &n) < 0) {
        e->used = false;
        return NULL;
    }
    e->len = (uint16_t)n;
    e->con = con;
    e->mid = m->mid;
    e->at_ms = at;
    dev_arm(d);
    return e;
}

static void obs_cancel(device_t *d, int i)
{
    if (i < 0 || !d->obs[i].active)
        return;
    d->obs[i].active = false;
    d->ds->st.observe_cancels++;
    if (d->outbox)
        for (int k = 0; k < DEV_OUTBOX; k++)
            if (d->outbox[k].used && d->outbox[k].obs == i)
                d->outbox[k].used = false;
}

/* Sends what is due, retransmits unanswered CONs; returns the next deadline
 * (0 when nothing waits). */
static uint64_t outbox_run(device_t *d, uint64_t now)
{
    uint64_t next = 0;
    for (int i = 0; d->outbox && i < DEV_OUTBOX; i++) {
        dev_out_t *e = &d->outbox[i];
        if (!e->used)
            continue;
        if (!e->sent && now >= e->at_ms) {
            dev_send(d, e->buf, e->len);
            e->sent = true;
            if (!e->con) {
                dedup_fill(d, e->dedup, e->mid, e->buf, e->len);
                e->used = false;
                continue;
            }
            bench_con_start(&e->rt, now);
        } else if (e->sent && now >= e->rt.deadline_ms) {
            if (!bench_con_retry(&e->rt, now)) {
                e->used = false;
                obs_cancel(d, e->obs); /* RFC 7641 §4.5: a lost CON ends the observation */
                continue;
            }
            dev_send(d, e->buf, e->len);
        }
        uint64_t t = e->sent ? e->rt.deadline_ms : e->at_ms;
        if (!next || t < next)
            next = t;
    }
    return next;
}

/* ACK or RST for one of our CONs (or an RST for a NON notification). */
static void outbox_answered(device_t *d, uint16_t mid, bool rst)
{
    for (int i = 0; d->outbox && i < DEV_OUTBOX; i++) {
        dev_out_t *e = &d->outbox[i];
        if (e->used && e->sent && e->con && e->mid == mid) {
            e->used = false;
            if (rst)
                obs_cancel(d, e->obs);
            return;
        }
    }
    if (rst)
        for (int i = 0; i < DEV_MAX_OBS; i++)
            if (d->obs[i].active && d->obs[i].last_mid == mid)
                obs_cancel(d, i);
}

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

static void add_uint_opt(tether_coap_msg_t *r, uint16_t num, uint32_t v, uint8_t *buf)
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
static void dev_request(device_t *d, const tether_coap_msg_t *m, uint64_t now)
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
static void notify_all(device_t *d, uint64_t now)
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

/* ---- registration (RFC 9176 subset) ----------------------------------------- */

static void say_all(devices_t *ds, const char *what, uint32_t n, bool *said)
{
    if (!*said && n == ds->o.count) {
        *said = true;
        bench_log(CMD, "%s %u/%u", what, n, ds->o.count);
    }
}

/* Builds the registration (POST /rd?ep=..&lt=..) or update (POST /rd/<id>)
 * and sends it as a CON. */
static void reg_send(device_t *d, bool update, uint64_t now)
{
    devices_t *ds = d->ds;
    tether_coap_msg_t m;
    char ep[80], lt[24], loc[sizeof d->loc];
    uint8_t cf[4];
    tether_coap_msg_init(&m, TETHER_COAP_CON, TETHER_COAP_POST, d->next_mid++);
    uint32_t tok = bench_rand();
    memcpy(d->reg_token, &tok, sizeof d->reg_token);
    tether_coap_msg_set_token(&m, d->reg_token, sizeof d->reg_token);
    if (update) {
        strcpy(loc, d->loc);
        for (char *seg = loc, *slash; seg; seg = slash ? slash + 1 : NULL) {
            slash = strchr(seg, '/');
            if (slash)
                *slash = 0;
            tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, seg, strlen(seg));
        }
    } else {
        snprintf(ep, sizeof ep, "ep=%s", d->cred.identity);
        snprintf(lt, sizeof lt, "lt=%u", ds->o.lifetime_s);
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, "rd", 2);
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_QUERY, ep, strlen(ep));
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_QUERY, lt, strlen(lt));
        if (ds->o.sleepy)
            tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_QUERY, "b=UQ", 4);
        add_uint_opt(&m, TETHER_COAP_OPT_CONTENT_FORMAT, TETHER_COAP_CF_LINK_FORMAT, cf);
        m.payload = (const uint8_t *)link_format;
        m.payload_len = sizeof link_format - 1;
    }
    size_t n = dev_emit(d, &m, d->reg_buf, sizeof d->reg_buf);
    d->reg_len = (uint16_t)n;
    d->reg_mid = m.mid;
    d->reg_update = update;
    d->reg_acked = false;
    d->reg_state = REG_WAIT;
    bench_con_start(&d->reg_rt, now);
    d->t_reg = d->reg_rt.deadline_ms;
    dev_arm(d);
}

static void set_registered(device_t *d, bool on)
{
    if (d->registered == on)
        return;
    d->registered = on;
    if (on) {
        if (d->ds->o.ngaps && !d->t_gap && d->gap_i == 0)
            d->t_gap = uv_now(d->ds->loop) + (uint64_t)(d->ds->o.gaps[0] * 1000);
        d->ds->registered++;
        say_all(d->ds, "registered", d->ds->registered, &d->ds->all_registered_said);
    } else {
        d->ds->registered--;
    }
}

static uint64_t retry_at(uint64_t now)
{
    return now + DEV_REG_RETRY_MS + (uint64_t)(bench_rand01() * DEV_REG_RETRY_MS);
}

static void log_code_once(devices_t *ds, const device_t *d, const char *what, uint8_t code)
{
    char cs[6];
    if (ds->code_logged[code])
        return;
    ds->code_logged[code] = true;
    bench_log(CMD, "%s of %s answered %s (retrying; logged once per code)", what, d->cred.identity,
              tether_coap_code_str(code, cs));
}

/* The answer to our registration or update. */
static void reg_answer(device_t *d, const tether_coap_msg_t *m, uint64_t now)
{
    devices_t *ds = d->ds;
    uint64_t refresh = now + (uint64_t)ds->o.lifetime_s * 500;
    d->reg_state = REG_IDLE;
    d->reg_fails = 0;
    if (d->reg_update) {
        if (m->code == TETHER_COAP_CHANGED) {
            d->t_reg = refresh;
        } else if (m->code == TETHER_COAP_NOT_FOUND) {
            set_registered(d, false); /* the registration expired: start over */
            reg_send(d, false, now);
            return;
        } else {
            log_code_once(ds, d, "registration update", m->code);
            d->t_reg = retry_at(now);
        }
        dev_arm(d);
        return;
    }
    size_t len = 0;
    d->loc[0] = 0;
    for (const tether_coap_opt_t *o = tether_coap_msg_find_opt(m, TETHER_COAP_OPT_LOCATION_PATH); o;
         o = tether_coap_msg_next_opt(m, o)) {
        if (len + o->len + 2 > sizeof d->loc)
            break;
        if (len)
            d->loc[len++] = '/';
        memcpy(d->loc + len, o->val, o->len);
        len += o->len;
        d->loc[len] = 0;
    }
    if (m->code != TETHER_COAP_CREATED || !len) {
        ds->st.reg_errors++;
        log_code_once(ds, d, "registration", m->code);
        d->t_reg = retry_at(now);
        dev_arm(d);
        return;
    }
    ds->st.reg_ok++;
    set_registered(d, true);
    d->t_reg = refresh;
    if (ds->o.sleepy && !d->phases_started) {
        d->phases_started = true;
        d->t_phase = now + (uint64_t)(ds->o.awake_s * 1000);
    }
    dev_arm(d);
}

/* Registration exchange timed out. Twice in a row means the session is
 * probably gone on the server (it never alerts for unknown CIDs): start a
 * new handshake. */
static void reg_timeout(device_t *d, uint64_t now)
{
    d->ds->st.reg_timeouts++;
    d->reg_state = REG_IDLE;
    if (++d->reg_fails >= DEV_REG_MAX_FAILS) {
        d->reg_fails = 0;
        bench_peer_reset(&d->peer);
        d->peer.ops->down(&d->peer, TETHER_ETIMEDOUT);
        return;
    }
    d->t_reg = retry_at(now);
}

static void reg_run(device_t *d, uint64_t now)
{
    if (!d->t_reg || now < d->t_reg || !bench_peer_up(&d->peer))
        return;
    if (d->reg_state == REG_IDLE) {
        reg_send(d, d->registered, now);
        return;
    }
    if (d->reg_acked || !bench_con_retry(&d->reg_rt, now)) {
        reg_timeout(d, now);
        return;
    }
    dev_send(d, d->reg_buf, d->reg_len);
    d->t_reg = d->reg_rt.deadline_ms;
}

/* ---- input ------------------------------------------------------------------ */

static void dev_response(device_t *d, const tether_coap_msg_t *m, uint64_t now)
{
    bool ours = d->reg_state == REG_WAIT && m->tkl == sizeof d->reg_token &&
                memcmp(m->token, d->reg_token, m->tkl) == 0 &&
                (m->type != TETHER_COAP_ACK || m->mid == d->reg_mid);
    if (m->type == TETHER_COAP_CON)
        send_empty(d, ours ? TETHER_COAP_ACK : TETHER_COAP_RST, m->mid);
    if (ours)
        reg_answer(d, m, now);
}

static void dev_record(bench_peer_t *p, const uint8_t *data, size_t len)
{
    device_t *d = p->user;
    devices_t *ds = d->ds;
    uint64_t now = uv_now(ds->loop);
    if (d->registered && d->last_rx && now - d->last_rx > d->max_silence)
        d->max_silence = now - d->last_rx;
    d->last_rx = now;
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    if (tether_coap_parse(&m, data, len, &perr) < 0) {
        ds->st.bad_messages++;
        if (tether_coap_reject_action(&m, perr) != TETHER_COAP_REJECT_DROP)
            send_empty(d, TETHER_COAP_RST, m.mid);
        return;
    }
    if (m.code == TETHER_COAP_EMPTY) {
        if (m.type == TETHER_COAP_CON) {
            send_empty(d, TETHER_COAP_RST, m.mid); /* CoAP ping */
        } else if (m.type == TETHER_COAP_ACK || m.type == TETHER_COAP_RST) {
            bool rst = m.type == TETHER_COAP_RST;
            if (rst && m.mid == d->ping_mid) {
                ds->st.pongs++;
                if (d->gap_i < ds->o.ngaps && !d->t_gap) /* the next silence */
                    d->t_gap = now + (uint64_t)(ds->o.gaps[d->gap_i] * 1000);
            }
            if (d->reg_state == REG_WAIT && m.mid == d->reg_mid && !d->reg_acked) {
                if (rst) {
                    reg_timeout(d, now);
                } else {
                    d->reg_acked = true; /* separate response follows */
                    d->t_reg = now + DEV_SEP_WAIT_MS;
                }
            }
            outbox_answered(d, m.mid, rst);
        }
    } else if (tether_coap_is_request(m.code)) {
        dev_request(d, &m, now);
    } else if (tether_coap_is_response(m.code)) {
        dev_response(d, &m, now);
    }
    dev_arm(d);
}

/* ---- life cycle --------------------------------------------------------------- */

static void dev_up(bench_peer_t *p)
{
    device_t *d = p->user;
    devices_t *ds = d->ds;
    uint64_t now = uv_now(ds->loop);
    d->connected = true;
    ds->connected++;
    say_all(ds, "connected", ds->connected, &ds->all_connected_said);
    if (ds->o.rebind_s > 0)
        d->t_rebind = now + (uint64_t)(ds->o.rebind_s * 1000 * (0.5 + bench_rand01()));
    d->reg_fails = 0;
    reg_send(d, false, now);
}

/* Forgets everything tied to the session. */
static void dev_forget_session(device_t *d)
{
    memset(d->obs, 0, sizeof d->obs);
    if (d->outbox)
        for (int i = 0; i < DEV_OUTBOX; i++)
            d->outbox[i].used = false;
    if (d->dedup)
        for (int i = 0; i < DEV_DEDUP; i++)
            d->dedup[i].used = false;
    d->reg_state = REG_IDLE;
    d->t_reg = d->t_notify = d->t_rebind = d->t_gap = 0;
    d->gap_i = 0;
}

static void dev_down(bench_peer_t *p, int err)
{
    (void)err;
    device_t *d = p->user;
    devices_t *ds = d->ds;
    if (d->t_reconnect || ds->stopping)
        return;
    if (d->connected)
        ds->connected--;
    d->connected = false;
    set_registered(d, false);
    dev_forget_session(d);
    d->t_reconnect =
        uv_now(ds->loop) + DEV_RECONNECT_MS + (uint64_t)(bench_rand01() * 2 * DEV_RECONNECT_MS);
    dev_arm(d);
}

static const bench_peer_ops_t dev_ops = {.up = dev_up, .record = dev_record, .down = dev_down};

static void phase_run(device_t *d, uint64_t now)
{
    devices_t *ds = d->ds;
    if (!d->t_phase || now < d->t_phase)
        return;
    d->asleep = !d->asleep;
    d->peer.deaf = d->asleep;
    if (d->asleep) {
        ds->st.sleeps++;
        d->t_phase = now + (uint64_t)(ds->o.sleep_s * 1000);
        return;
    }
    d->t_phase = now + (uint64_t)(ds->o.awake_s * 1000);
    /* Awake: tell tether (it delivers what it queued), unless a
     * registration exchange is already under way. */
    if (bench_peer_up(&d->peer) && d->reg_state == REG_IDLE)
        reg_send(d, d->registered, now);
}

static void dev_run(device_t *d, uint64_t now)
{
    devices_t *ds = d->ds;
    if (ds->stopping)
        return;
    if (d->t_reconnect && now >= d->t_reconnect) {
        d->t_reconnect = 0;
        bench_peer_connect(&d->peer);
    }
    phase_run(d, now);
    if (d->asleep || !bench_peer_up(&d->peer))
        return;
    if (d->t_rebind && now >= d->t_rebind) {
        d->t_rebind = now + (uint64_t)(ds->o.rebind_s * 1000 * (0.9 + 0.2 * bench_rand01()));
        if (bench_peer_rebind(&d->peer) == 0) {
            /* The new address is learnt from our next record (RFC 9146):
             * send one at once, a CoAP ping, as a keep-alive would. */
            d->ping_mid = d->next_mid++;
            ds->st.pings++;
            send_empty(d, TETHER_COAP_CON, d->ping_mid);
        }
    }
    if (d->t_gap && now >= d->t_gap) {
        d->t_gap = 0;
        d->gap_i++;
        d->ping_mid = d->next_mid++;
        ds->st.pings++;
        send_empty(d, TETHER_COAP_CON, d->ping_mid);
    }
    reg_run(d, now);
    if (d->t_notify && now >= d->t_notify)
        notify_all(d, now);
}

static void on_dev_timer(uv_timer_t *t)
{
    device_t *d = t->data;
    dev_run(d, uv_now(d->ds->loop));
    dev_arm(d);
}

/* Sets the device timer to its earliest deadline. */
static void dev_arm(device_t *d)
{
    devices_t *ds = d->ds;
    if (ds->stopping)
        return;
    uint64_t now = uv_now(ds->loop);
    bool any_obs = false;
    for (int i = 0; i < DEV_MAX_OBS; i++)
        any_obs |= d->obs[i].active;
    if (!any_obs) {
        d->t_notify = 0;
    } else if (!d->t_notify || d->t_notify <= now) {
        /* Next tick of this device's notification clock (by default each
         * second, when the value changes). */
        uint64_t p = ds->o.notify_ms;
        uint64_t t = ((now + d->phase_ms) / p + 1) * p;
        d->t_notify = t - d->phase_ms;
    }
    uint64_t next = 0;
    uint64_t cands[7] = {d->t_reconnect, d->t_phase, 0, 0, 0, 0, 0};
    if (!d->asleep && bench_peer_up(&d->peer)) {
        cands[2] = d->t_reg;
        cands[3] = d->t_notify;
        cands[4] = d->t_rebind;
        cands[5] = outbox_run(d, now);
        cands[6] = d->t_gap;
    }
    for (int i = 0; i < 7; i++)
        if (cands[i] && (!next || cands[i] < next))
            next = cands[i];
    if (!next)
        uv_timer_stop(&d->timer);
    else
        uv_timer_start(&d->timer, on_dev_timer, next > now ? next - now : 0, 0);
}

/* ---- reporting and shutdown ------------------------------------------------- */

static void log_stats(devices_t *ds, const char *tag)
{
    const bench_net_stats_t *n = &ds->net.stats;
    const dev_stats_t *s = &ds->st;
    uint32_t observers = 0;
    for (uint32_t i = 0; i < ds->o.count; i++)
        for (int k = 0; k < DEV_MAX_OBS; k++)
            observers += ds->dev[i].obs[k].active;
    bench_log(CMD,
              "%s connected=%u registered=%u handshakes=%llu handshake_failures=%llu "
              "sessions_lost=%llu requests=%llu duplicates=%llu separate=%llu observers=%u "
              "notifications=%llu notifications_con=%llu registrations=%llu "
              "registration_errors=%llu registration_timeouts=%llu rebinds=%llu pings=%llu "
              "pongs=%llu sleeps=%llu rx_ignored_asleep=%llu tx_dropped=%llu",
              tag, ds->connected, ds->registered, (unsigned long long)n->handshakes_ok,
              (unsigned long long)n->handshakes_failed, (unsigned long long)n->sessions_lost,
              (unsigned long long)s->requests, (unsigned long long)s->dup_requests,
              (unsigned long long)s->separate, observers, (unsigned long long)s->notifications,
              (unsigned long long)s->notifications_con, (unsigned long long)s->reg_ok,
              (unsigned long long)s->reg_errors, (unsigned long long)s->reg_timeouts,
              (unsigned long long)n->rebinds, (unsigned long long)s->pings,
              (unsigned long long)s->pongs, (unsigned long long)s->sleeps,
              (unsigned long long)n->rx_ignored, (unsigned long long)n->tx_dropped);
}

static void on_stats(uv_timer_t *t)
{
    log_stats(t->data, "stats");
}

static int by_silence_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Every device's longest silence (one to the end for a device still
 * silent), longest first, on one line. */
static void log_silences(devices_t *ds)
{
    uint64_t now = uv_now(ds->loop);
    uint64_t *v = malloc(ds->o.count * sizeof *v);
    char *line = malloc((size_t)ds->o.count * 21 + 1);
    if (!v || !line) {
        free(v);
        free(line);
        return;
    }
    for (uint32_t i = 0; i < ds->o.count; i++) {
        const device_t *d = &ds->dev[i];
        uint64_t tail = d->registered && d->last_rx ? now - d->last_rx : 0;
        v[i] = d->max_silence > tail ? d->max_silence : tail;
    }
    qsort(v, ds->o.count, sizeof *v, by_silence_desc);
    size_t at = 0;
    line[0] = 0;
    for (uint32_t i = 0; i < ds->o.count; i++)
        at += (size_t)sprintf(line + at, " %llu", (unsigned long long)v[i]);
    bench_log(CMD, "silences_ms%s", line);
    free(v);
    free(line);
}

static void devices_stop(void *user)
{
    devices_t *ds = user;
    ds->stopping = true;
    log_stats(ds, "final");
    log_silences(ds);
    uv_close((uv_handle_t *)&ds->stats_timer, NULL);
    for (uint32_t i = 0; i < ds->o.count; i++) {
        device_t *d = &ds->dev[i];
        d->peer.deaf = false;
        d->asleep = false;
        bench_peer_close(&d->peer, true);
        uv_close((uv_handle_t *)&d->timer, NULL);
    }
    bench_log(CMD, "stopped");
}

/* ---- options ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tether-bench devices --server HOST:PORT --count N --psk-master HEX\n"
            "                            [options]\n"
            "Simulates devices dev<first>..dev<first+N-1> on DTLS PSK sessions with a\n"
            "server Connection ID; each registers (POST /rd?ep=NAME&lt=S) and serves\n"
            "/temp (observable), /big (4096 bytes, Block2), /echo (POST), /slow,\n"
            "/static, /count, /large (65536 bytes, Block2), /upload (Block1, SHA-256), /hits.\n\n"
            "  --server HOST:PORT       tether's DTLS listener (required)\n"
            "  --count N                number of devices (required)\n"
            "  --psk-master HEX         fleet master key; PSK = HMAC-SHA256(master, name)\n"
            "  --identity-prefix P      device names are P<k> (default dev)\n"
            "  --first K                number of the first device (default 0)\n"
            "  --lifetime S             registration lifetime lt (default 300); update every S/2\n"
            "  --rebind-every S         move to a new source port every S seconds (jittered)\n"
            "  --notify-every MS        notify /temp's observers every MS milliseconds\n"
            "  --ping-gaps S1,S2,...    after registering, a CoAP ping after each silence\n"
            "                           in turn (the next starts when a ping is answered)\n"
            "                           (default 1000; the value changes every second)\n"
            "  --sleepy SLEEP:AWAKE     register with b=UQ, then sleep/awake in turns (seconds)\n"
            "  --response-delay MS      answer every request MS later (>= 500: separate)\n"
            "  --duration S             stop after S seconds (default: until SIGINT/SIGTERM)\n"
            "  --dtls13                 DTLS 1.3 instead of 1.2\n"
            "  --max-handshakes N       handshakes in flight at once (default 200)\n"
            "  --records-to HOST:PORT   after the handshake, send records there (another\n"
            "                           cluster node, which forwards them by CID)\n"
            "  --stats-every S          progress line period (default 10, 0 = off)\n"
            "  --help                   this text\n");
}

enum {
    O_COUNT = BENCH_OPT_FIRST_OWN,
    O_PREFIX,
    O_MASTER,
    O_REBIND,
    O_LIFETIME,
    O_SLEEPY,
    O_DELAY,
    O_FIRST,
    O_STATS,
    O_NOTIFY,
    O_GAPS,
};

static const struct option long_opts[] = {
    BENCH_COMMON_LONG_OPTS,
    {"count", required_argument, NULL, O_COUNT},
    {"identity-prefix", required_argument, NULL, O_PREFIX},
    {"psk-master", required_argument, NULL, O_MASTER},
    {"rebind-every", required_argument, NULL, O_REBIND},
    {"lifetime", required_argument, NULL, O_LIFETIME},
    {"sleepy", required_argument, NULL, O_SLEEPY},
    {"response-delay", required_argument, NULL, O_DELAY},
    {"first", required_argument, NULL, O_FIRST},
    {"stats-every", required_argument, NULL, O_STATS},
    {"notify-every", required_argument, NULL, O_NOTIFY},
    {"ping-gaps", required_argument, NULL, O_GAPS},
    {NULL, 0, NULL, 0},
};

/* Parses SLEEP:AWAKE (seconds, both > 0). */
static int parse_sleepy(const char *s, double *sleep_s, double *awake_s)
{
    char buf[64];
    const char *colon = strchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof buf)
        return -1;
    memcpy(buf, s, (size_t)(colon - s));
    buf[colon - s] = 0;
    if (bench_parse_double(buf, 0.001, 86400, sleep_s) < 0 ||
        bench_parse_double(colon + 1, 0.001, 86400, awake_s) < 0)
        return -1;
    return 0;
}

/* One devices-specific option (bench_opt_fn). */
static int dev_opt(void *ctx, int opt, const char *arg)
{
    dev_opts_t *o = ctx;
    switch (opt) {
    case O_COUNT:
        if (bench_parse_u32(arg, 1, 10000000, &o->count) < 0)
            return bench_usage_error(CMD, "--count wants a number >= 1, got '%s'", arg);
        break;
    case O_PREFIX:
        if (!*arg || strlen(arg) >= sizeof o->prefix)
            return bench_usage_error(CMD, "--identity-prefix must be 1..%zu characters",
                                     sizeof o->prefix - 1);
        strcpy(o->prefix, arg);
        break;
    case O_MASTER:
        if (tether_creds_key_from_hex(arg, o->master, sizeof o->master, &o->master_len) < 0)
            return bench_usage_error(CMD, "--psk-master wants 1..64 bytes of hex");
        break;
    case O_NOTIFY:
        if (bench_parse_u32(arg, 1, 3600000, &o->notify_ms) < 0)
            return bench_usage_error(CMD, "--notify-every wants milliseconds >= 1, got '%s'", arg);
        break;
    case O_REBIND:
        if (bench_parse_double(arg, 0.01, 1e7, &o->rebind_s) < 0)
            return bench_usage_error(CMD, "--rebind-every wants seconds > 0, got '%s'", arg);
        break;
    case O_LIFETIME:
        if (bench_parse_u32(arg, 2, 100000000, &o->lifetime_s) < 0)
            return bench_usage_error(CMD, "--lifetime wants seconds >= 2, got '%s'", arg);
        break;
    case O_SLEEPY:
        if (parse_sleepy(arg, &o->sleep_s, &o->awake_s) < 0)
            return bench_usage_error(CMD, "--sleepy wants SLEEP:AWAKE seconds, got '%s'", arg);
        o->sleepy = true;
        break;
    case O_DELAY:
        if (bench_parse_u32(arg, 0, 600000, &o->response_delay_ms) < 0)
            return bench_usage_error(CMD, "--response-delay wants milliseconds, got '%s'", arg);
        break;
    case O_FIRST:
        if (bench_parse_u32(arg, 0, 1000000000, &o->first) < 0)
            return bench_usage_error(CMD, "--first wants a number, got '%s'", arg);
        break;
    case O_STATS:
        if (bench_parse_double(arg, 0, 1e6, &o->stats_s) < 0)
            return bench_usage_error(CMD, "--stats-every wants seconds, got '%s'", arg);
        break;
    case O_GAPS: {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", arg);
        o->ngaps = 0;
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (o->ngaps == sizeof o->gaps / sizeof *o->gaps ||
                bench_parse_double(t, 0.01, 1e6, &o->gaps[o->ngaps++]) < 0)
                return bench_usage_error(
                    CMD, "--ping-gaps wants up to 16 seconds, comma separated, got '%s'", arg);
        if (!o->ngaps)
            return bench_usage_error(CMD, "--ping-gaps wants a list of seconds");
        break;
    }
    }
    return 0;
}

/* Fills `o` from argv; returns 0, 1 for --help, or an exit code >= 2. */
static int parse_opts(int argc, char **argv, dev_opts_t *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->prefix, "dev");
    o->lifetime_s = 300;
    o->c.max_handshakes = 200;
    o->stats_s = 10;
    o->notify_ms = 1000;
    int rc = bench_parse_args(CMD, argc, argv, long_opts, &o->c, dev_opt, o);
    if (rc)
        return rc;
    if (!o->count)
        return bench_usage_error(CMD, "--count N is required");
    if (!o->master_len)
        return bench_usage_error(CMD, "--psk-master HEX is required");
    return 0;
}

/* ---- entry -------------------------------------------------------------------- */

static int devices_setup(devices_t *ds)
{
    for (size_t i = 0; i < DEV_BIG_SIZE; i++)
        ds->big[i] = (uint8_t)('a' + i % 26);
    for (size_t i = 0; i < DEV_LARGE_SIZE; i++) /* every byte value, no period of 16 */
        ds->large[i] = (uint8_t)(i * 7 + i / 251);
    int rc = tether_coap_optreg_init(&ds->reg, TETHER_COAP_OPT_MULTICAST_TIMEOUT_DEFAULT,
                                     TETHER_COAP_OPT_REPLY_FROM_DEFAULT);
    if (rc < 0)
        return rc;
    if (!(ds->dev = calloc(ds->o.count, sizeof *ds->dev)))
        return TETHER_ENOMEM;
    for (uint32_t i = 0; i < ds->o.count; i++) {
        device_t *d = &ds->dev[i];
        uint8_t key[TETHER_DERIVED_PSK_LEN];
        char name[BENCH_DTLS_IDENTITY_MAX];
        d->ds = ds;
        d->num = ds->o.first + i;
        snprintf(name, sizeof name, "%s%u", ds->o.prefix, d->num);
        d->next_mid = (uint16_t)bench_rand();
        d->phase_ms = bench_rand() % 1000;
        uv_timer_init(ds->loop, &d->timer);
        d->timer.data = d;
        rc = tether_creds_derive_psk(ds->o.master, ds->o.master_len, name, key);
        if (rc == 0)
            rc = bench_dtls_cred_set(&d->cred, name, key, sizeof key);
        memset(key, 0, sizeof key);
        if (rc < 0)
            return rc;
        bench_peer_init(&d->peer, &ds->net, &dev_ops, d, &d->cred);
    }
    return 0;
}

int bench_devices_main(int argc, char **argv)
{
    devices_t *ds = calloc(1, sizeof *ds);
    int rc, exit_code = BENCH_EXIT_FAIL;
    if (!ds)
        return BENCH_EXIT_FAIL;
    int ex = bench_args_outcome(parse_opts(argc, argv, &ds->o), usage);
    if (ex >= 0) {
        free(ds);
        return ex;
    }
    if (bench_net_init(&ds->net, CMD, &ds->o.c) < 0)
        goto cleanup_net;
    ds->loop = ds->net.loop;
    if ((rc = devices_setup(ds)) < 0) {
        fprintf(stderr, "tether-bench devices: error: setup failed: %s\n", tether_strerror(rc));
        goto cleanup_net;
    }
    bench_runner_init(&ds->runner, ds->loop, ds->o.c.duration_s, devices_stop, ds);
    uv_timer_init(ds->loop, &ds->stats_timer);
    ds->stats_timer.data = ds;
    if (ds->o.stats_s > 0)
        uv_timer_start(&ds->stats_timer, on_stats, (uint64_t)(ds->o.stats_s * 1000),
                       (uint64_t)(ds->o.stats_s * 1000));
    char where[64];
    bench_log(CMD, "starting %u devices %s%u..%s%u against %s (DTLS %s)", ds->o.count, ds->o.prefix,
              ds->o.first, ds->o.prefix, ds->o.first + ds->o.count - 1,
              bench_addr_str(&ds->o.c.server, where, sizeof where), ds->o.c.dtls13 ? "1.3" : "1.2");
    for (uint32_t i = 0; i < ds->o.count; i++)
        bench_peer_connect(&ds->dev[i].peer);
    bench_runner_start(&ds->runner);
    bench_runner_run(&ds->runner);
    exit_code = 0;
cleanup_net:
    if (ds->dev)
        for (uint32_t i = 0; i < ds->o.count; i++) {
            if (ds->dev[i].dedup)
                for (int k = 0; k < DEV_DEDUP; k++)
                    free(ds->dev[i].dedup[k].buf);
            free(ds->dev[i].dedup);
            free(ds->dev[i].outbox);
            free(ds->dev[i].echo);
            free(ds->dev[i].uploads);
        }
    free(ds->dev);
    bench_net_free(&ds->net);
    free(ds);
    return exit_code;
}
