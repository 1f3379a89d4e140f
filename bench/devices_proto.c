/* tether-bench devices: a simulated device's CoAP messaging (RFC 7252):
 * sending on its DTLS session, duplicate detection (§4.5), the outbox of
 * delayed and confirmable messages with retransmission (§4.2), and its
 * registration with the RD (RFC 9176 subset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices_int.h"

/* ---- sending ---------------------------------------------------------------- */

void dev_send(device_t *d, const uint8_t *buf, size_t len)
{
    if (!d->asleep)
        bench_peer_send(&d->peer, buf, len);
}

/* Encodes and sends `m`; returns the encoded length (0 on failure) so the
 * caller can keep the bytes in `buf`. */
size_t dev_emit(device_t *d, const tether_coap_msg_t *m, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    if (tether_coap_encode(m, buf, cap, &n) < 0)
        return 0;
    dev_send(d, buf, n);
    return n;
}

void send_empty(device_t *d, uint8_t type, uint16_t mid)
{
    tether_coap_msg_t m;
    uint8_t buf[8];
    tether_coap_msg_init(&m, type, TETHER_COAP_EMPTY, mid);
    dev_emit(d, &m, buf, sizeof buf);
}

/* ---- duplicate detection (RFC 7252 §4.5) ------------------------------------ */

dev_dedup_t *dedup_find(device_t *d, uint16_t mid)
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
int dedup_store(device_t *d, uint16_t mid, const uint8_t *buf, size_t len)
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
dev_out_t *outbox_add(device_t *d, const tether_coap_msg_t *m, bool con, uint64_t at)
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

void obs_cancel(device_t *d, int i)
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
uint64_t outbox_run(device_t *d, uint64_t now)
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
void outbox_answered(device_t *d, uint16_t mid, bool rst)
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

/* ---- registration (RFC 9176 subset) ----------------------------------------- */

void say_all(devices_t *ds, const char *what, uint32_t n, bool *said)
{
    if (!*said && n == ds->o.count) {
        *said = true;
        bench_log(CMD, "%s %u/%u", what, n, ds->o.count);
    }
}

/* Builds the registration (POST /rd?ep=..&lt=..) or update (POST /rd/<id>)
 * and sends it as a CON. */
void reg_send(device_t *d, bool update, uint64_t now)
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

void set_registered(device_t *d, bool on)
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
void reg_answer(device_t *d, const tether_coap_msg_t *m, uint64_t now)
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
void reg_timeout(device_t *d, uint64_t now)
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

void reg_run(device_t *d, uint64_t now)
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
