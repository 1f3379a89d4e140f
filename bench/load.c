/* tether-bench load: C concurrent DTLS PSK client sessions sending CoAP
 * requests through tether to one device resource (SPEC S9, S11).
 *
 * Closed loop by default (each session keeps one request outstanding and
 * sends the next as soon as the answer arrives); with --rate, open loop:
 * requests are due at fixed intervals and latency runs from the *scheduled*
 * time, so a slow server cannot hide its queueing (no coordinated
 * omission). One libuv loop, one UDP socket per session, and no allocation
 * per request: each request is a pre-encoded template with the MID and
 * token patched in. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "peer.h"
#include "tether/coap.h"
#include "tether/creds.h"
#include "tether/hist.h"

#define CMD "load"
#define LOAD_SLOTS 32 /* outstanding requests per session at most */
#define LOAD_REQ_MAX 1400
#define LOAD_TOKEN_LEN 4
#define LOAD_SWEEP_MS 20
#define LOAD_NOTIF_LOG 512

typedef struct {
    bench_common_opts_t c;
    bench_dtls_cred_t cred; /* shared by every session */
    char target[256];
    uint8_t method;
    const char *payload;
    const char *proxy_uri;
    uint32_t concurrency, max_outstanding, timeout_ms, connect_timeout_s;
    double warmup_s; /* --warmup: unmeasured traffic before the window */
    double rate;
    bool json;
    bool observe;          /* each session observes one target and counts notifications */
    uint32_t keepalive_ms; /* an empty CON (CoAP ping) this often per session, 0: none */
} load_opts_t;

enum { SLOT_FREE, SLOT_WAIT, SLOT_ACKED };

typedef struct {
    uint8_t state;
    uint16_t mid;
    uint16_t target; /* template index */
    uint32_t token;
    uint64_t t0_us; /* scheduled (open loop) or first sent (closed loop) */
    uint64_t sent_ms;
    bench_con_t rt;
} load_slot_t;

struct load;

typedef struct {
    bench_peer_t peer;
    struct load *L;
    uint16_t next_mid;
    uint32_t next_tok;
    uint32_t used; /* bit i set: slots[i] in use */
    uint32_t outstanding;
    bool up; /* counted in load_t.up */
    /* --observe: the longest silence between two notifications while
     * measuring (failover tests read it as the time an observer was cut
     * off; reported at the end, one to the end for a silent observer). */
    uint64_t last_notif_us, max_gap_us;
    /* and when each notification came (wall clock ms, the first
     * LOAD_NOTIF_LOG), so a test can line them up with its own events */
    uint64_t *notif_at;
    uint32_t nnotif;
    uint64_t next_ping_ms; /* --keepalive */
    load_slot_t slots[LOAD_SLOTS];
} load_sess_t;

typedef struct {
    uint64_t sent, retransmits, responses, separate, timeouts, resets, lost, overflow;
    uint64_t send_errors, late, codes[256];
    uint64_t notifications; /* --observe: notifications received while measuring */
} load_stats_t;

typedef struct load {
    load_opts_t o;
    uv_loop_t *loop;
    bench_net_t net;
    bench_runner_t runner;
    uv_idle_t pacer;                /* open loop: checks the schedule every loop turn */
    uv_timer_t sweep, warmup, warm; /* warm: end of --warmup */
    load_sess_t *sess;
    uint32_t up;
    bench_pacer_t pace;
    bool running, stopping, ended, warming;
    bench_cpu_window_t cpu; /* --cpu-pid over the measured window */
    char cipher[64];        /* negotiated by the first session up */
    uint64_t start_us, end_us, hs_start_us, hs_end_us;
    uint8_t (*tmpl)[LOAD_REQ_MAX]; /* one per target device */
    size_t *tmpl_len;
    uint32_t ntargets, next_target;
    load_stats_t st;
    tether_hist_t hist;
} load_t;

/* ---- requests ------------------------------------------------------------------ */

/* Encodes the request for device `dev`: CON, Uri-Host = dev, Uri-Path =
 * the path segments (or, with --proxy-uri, only a Proxy-Uri option),
 * optional text payload; the MID and the 4-byte token (bytes 2..7) are
 * patched per request. */
static int encode_request(load_t *L, const char *dev, const char *path, uint8_t *out,
                          size_t *out_len)
{
    tether_coap_msg_t m;
    uint8_t tok[LOAD_TOKEN_LEN] = {0}, cf[4];
    char segs[256];
    snprintf(segs, sizeof segs, "%s", path ? path : "");
    tether_coap_msg_init(&m, TETHER_COAP_CON, L->o.method, 0);
    tether_coap_msg_set_token(&m, tok, sizeof tok);
    if (L->o.observe) /* Observe: 0 = register (RFC 7641), an empty value */
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_OBSERVE, "", 0);
    if (L->o.proxy_uri) {
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_PROXY_URI, L->o.proxy_uri,
                                strlen(L->o.proxy_uri));
    } else {
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_HOST, dev, strlen(dev));
        for (char *seg = segs, *next; *seg; seg = next) {
            next = strchr(seg, '/');
            if (next)
                *next++ = 0;
            else
                next = seg + strlen(seg);
            tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_URI_PATH, seg, strlen(seg));
        }
    }
    if (L->o.payload) {
        size_t n = tether_coap_uint_encode(TETHER_COAP_CF_TEXT, cf);
        tether_coap_msg_add_opt(&m, TETHER_COAP_OPT_CONTENT_FORMAT, cf, n);
        m.payload = (const uint8_t *)L->o.payload;
        m.payload_len = strlen(L->o.payload);
    }
    return tether_coap_encode(&m, out, LOAD_REQ_MAX, out_len);
}

/* One template per target device: --target DEV/PATH, or PREFIX[A-B]/PATH
 * for devices PREFIX<A>..PREFIX<B>, which requests then visit in turn. */
static int build_templates(load_t *L)
{
    char dev[256], name[300];
    snprintf(dev, sizeof dev, "%s", L->o.target);
    char *slash = strchr(dev, '/');
    const char *path = NULL;
    if (slash) {
        *slash = 0;
        path = slash + 1;
    }
    unsigned lo = 0, hi = 0;
    char *br = strchr(dev, '[');
    bool range = br && sscanf(br, "[%u-%u]", &lo, &hi) == 2 && lo <= hi && hi - lo < 65536;
    if (br && !range)
        return TETHER_EINVAL;
    if (range)
        *br = 0;
    L->ntargets = range ? hi - lo + 1 : 1;
    L->tmpl = calloc(L->ntargets, sizeof *L->tmpl);
    L->tmpl_len = calloc(L->ntargets, sizeof *L->tmpl_len);
    if (!L->tmpl || !L->tmpl_len)
        return TETHER_ENOMEM;
    for (uint32_t i = 0; i < L->ntargets; i++) {
        if (range)
            snprintf(name, sizeof name, "%s%u", dev, lo + i);
        else
            snprintf(name, sizeof name, "%s", dev);
        int rc = encode_request(L, name, path, L->tmpl[i], &L->tmpl_len[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void transmit(load_sess_t *s, const load_slot_t *sl)
{
    load_t *L = s->L;
    uint8_t *t = L->tmpl[sl->target];
    t[2] = (uint8_t)(sl->mid >> 8);
    t[3] = (uint8_t)sl->mid;
    memcpy(t + 4, &sl->token, LOAD_TOKEN_LEN);
    if (bench_peer_send(&s->peer, t, L->tmpl_len[sl->target]) < 0)
        L->st.send_errors++;
}

/* Sends a new request from a free slot; t0_us is when it was due. */
static void issue(load_sess_t *s, uint64_t t0_us)
{
    load_t *L = s->L;
    int i = __builtin_ctz(~s->used);
    load_slot_t *sl = &s->slots[i];
    s->used |= 1u << i;
    s->outstanding++;
    sl->state = SLOT_WAIT;
    sl->mid = s->next_mid++;
    sl->target = (uint16_t)(L->next_target++ % L->ntargets);
    sl->token = (s->next_tok++ << 5) | (uint32_t)i;
    sl->t0_us = t0_us;
    sl->sent_ms = uv_now(L->loop);
    bench_con_start(&sl->rt, sl->sent_ms);
    L->st.sent++;
    transmit(s, sl);
}

static void slot_free(load_sess_t *s, int i)
{
    s->slots[i].state = SLOT_FREE;
    s->used &= ~(1u << i);
    s->outstanding--;
}

/* Closed loop: keep one request in flight per session while running.
 * --observe: one registration per session, on target (session % targets),
 * renewed only if it ended. */
static void closed_loop_next(load_sess_t *s)
{
    load_t *L = s->L;
    if (!L->running || L->o.rate > 0 || s->outstanding != 0 || !bench_peer_up(&s->peer))
        return;
    if (L->o.observe)
        L->next_target = (uint32_t)(s - L->sess);
    issue(s, bench_now_us());
}

static load_slot_t *slot_by_mid(load_sess_t *s, uint16_t mid, int *idx)
{
    for (uint32_t u = s->used; u; u &= u - 1) {
        int i = __builtin_ctz(u);
        if (s->slots[i].mid == mid) {
            *idx = i;
            return &s->slots[i];
        }
    }
    return NULL;
}

static void send_empty(load_sess_t *s, uint8_t type, uint16_t mid)
{
    uint8_t b[4] = {(uint8_t)(0x40 | type << 4), 0, (uint8_t)(mid >> 8), (uint8_t)mid};
    bench_peer_send(&s->peer, b, sizeof b);
}

static void on_record(bench_peer_t *p, const uint8_t *data, size_t len)
{
    load_sess_t *s = p->user;
    load_t *L = s->L;
    tether_coap_msg_t m;
    tether_coap_perr_t perr;
    int i;
    if (tether_coap_parse(&m, data, len, &perr) < 0)
        return;
    if (m.code == TETHER_COAP_EMPTY) {
        load_slot_t *sl = slot_by_mid(s, m.mid, &i);
        if (m.type == TETHER_COAP_CON)
            send_empty(s, TETHER_COAP_RST, m.mid);
        if (!sl)
            return;
        if (m.type == TETHER_COAP_ACK && sl->state == SLOT_WAIT) {
            sl->state = SLOT_ACKED; /* a separate response follows */
            L->st.separate++;
        } else if (m.type == TETHER_COAP_RST) {
            L->st.resets++;
            slot_free(s, i);
            closed_loop_next(s);
        }
        return;
    }
    if (!tether_coap_is_response(m.code)) {
        if (m.type == TETHER_COAP_CON)
            send_empty(s, TETHER_COAP_RST, m.mid);
        return;
    }
    if (m.type == TETHER_COAP_CON)
        send_empty(s, TETHER_COAP_ACK, m.mid);
    uint32_t tok;
    if (m.tkl != LOAD_TOKEN_LEN)
        return;
    memcpy(&tok, m.token, sizeof tok);
    i = (int)(tok & (LOAD_SLOTS - 1));
    load_slot_t *sl = &s->slots[i];
    if (!(s->used & (1u << i)) || sl->token != tok)
        return; /* a duplicate, or the answer to a request that timed out */
    uint64_t now = bench_now_us();
    if (L->o.observe && tether_coap_msg_find_opt(&m, TETHER_COAP_OPT_OBSERVE)) {
        if (sl->state != SLOT_ACKED + 1) { /* the registration's answer */
            sl->state = SLOT_ACKED + 1;
            if (L->running)
                tether_hist_record(&L->hist, now > sl->t0_us ? now - sl->t0_us : 0);
        }
        if (L->running) {
            L->st.notifications++;
            L->st.codes[m.code]++;
            uint64_t from = s->last_notif_us ? s->last_notif_us : L->start_us;
            if (now - from > s->max_gap_us)
                s->max_gap_us = now - from;
            s->last_notif_us = now;
            if (!s->notif_at)
                s->notif_at = calloc(LOAD_NOTIF_LOG, sizeof *s->notif_at);
            if (s->notif_at && s->nnotif < LOAD_NOTIF_LOG) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                s->notif_at[s->nnotif++] =
                    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
            }
        }
        return; /* the slot stays: the observation goes on */
    }
    if (L->running) {
        L->st.responses++;
        L->st.codes[m.code]++;
        tether_hist_record(&L->hist, now > sl->t0_us ? now - sl->t0_us : 0);
    } else {
        L->st.late++;
    }
    slot_free(s, i);
    closed_loop_next(s);
}

/* Retransmits unanswered requests (RFC 7252 timing) and fails the ones
 * older than the timeout. */
static void on_sweep(uv_timer_t *t)
{
    load_t *L = t->data;
    uint64_t now = uv_now(L->loop);
    for (uint32_t k = 0; k < L->o.concurrency; k++) {
        load_sess_t *s = &L->sess[k];
        /* RFC 7252 §4.3 ping: keeps the path through NATs and balancers,
         * which a passive observer has no other reason to use. */
        if (L->o.keepalive_ms && bench_peer_up(&s->peer) && now >= s->next_ping_ms) {
            if (s->next_ping_ms)
                send_empty(s, TETHER_COAP_CON, s->next_mid++);
            s->next_ping_ms = now + L->o.keepalive_ms;
        }
        for (uint32_t u = s->used; u; u &= u - 1) {
            int i = __builtin_ctz(u);
            load_slot_t *sl = &s->slots[i];
            if (sl->state == SLOT_ACKED + 1)
                continue; /* an observation in progress */
            if (now - sl->sent_ms >= L->o.timeout_ms) {
                L->st.timeouts++;
                slot_free(s, i);
                closed_loop_next(s);
            } else if (sl->state == SLOT_WAIT && now >= sl->rt.deadline_ms &&
                       bench_con_retry(&sl->rt, now)) {
                L->st.retransmits++;
                transmit(s, sl);
            }
        }
    }
}

/* Open loop: issues every request that has come due, each stamped with its
 * scheduled time; when every session is at its limit the request is
 * counted as overflow. Runs on every loop turn (the loop never blocks while
 * it is active), so requests leave within microseconds of their schedule
 * at the cost of one busy core, as a load generator may. */
static bool load_can_take(void *ctx, uint32_t i)
{
    load_t *L = ctx;
    return bench_peer_up(&L->sess[i].peer) && L->sess[i].outstanding < L->o.max_outstanding;
}

static void load_send(void *ctx, uint32_t i, uint64_t sched_us)
{
    load_t *L = ctx;
    issue(&L->sess[i], sched_us);
}

static void on_pace(uv_idle_t *t)
{
    load_t *L = t->data;
    if (L->running)
        L->st.overflow += bench_pacer_poll(&L->pace, L->o.concurrency, load_can_take, load_send, L);
}

/* ---- sessions ----------------------------------------------------------------- */

/* The measured window opens: counters, histogram, schedule and the
 * servers' CPU clocks start from here (after --warmup, whatever the warm-up
 * left in flight is answered inside the window and counted). */
static void open_window(load_t *L)
{
    L->warming = false;
    memset(&L->st, 0, sizeof L->st);
    tether_hist_init(&L->hist);
    L->start_us = bench_now_us();
    bench_cpu_window_start(&L->cpu, L->o.c.cpu_pids, L->o.c.ncpu_pids);
    bench_runner_start(&L->runner);
    if (L->o.rate > 0)
        bench_pacer_start(&L->pace, L->start_us, L->o.rate);
}

static void on_warm(uv_timer_t *t)
{
    load_t *L = t->data;
    if (L->stopping)
        return;
    bench_log(CMD, "warm-up done; measuring");
    open_window(L);
}

static void start_measuring(load_t *L)
{
    if (L->running || L->stopping)
        return;
    uv_timer_stop(&L->warmup);
    L->hs_end_us = bench_now_us();
    L->running = true;
    L->start_us = bench_now_us();
    bench_log(CMD, "connected %u/%u in %.0f ms; %s", L->up, L->o.concurrency,
              (double)(L->hs_end_us - L->hs_start_us) / 1000.0,
              L->o.warmup_s > 0 ? "warming up" : "measuring");
    if (L->o.warmup_s > 0) {
        L->warming = true;
        uv_timer_start(&L->warm, on_warm, (uint64_t)(L->o.warmup_s * 1000), 0);
    } else {
        open_window(L);
    }
    bench_pacer_start(&L->pace, L->start_us, L->o.rate);
    if (L->o.rate > 0)
        uv_idle_start(&L->pacer, on_pace);
    else
        for (uint32_t k = 0; k < L->o.concurrency; k++)
            closed_loop_next(&L->sess[k]);
}

static void on_up(bench_peer_t *p)
{
    load_sess_t *s = p->user;
    load_t *L = s->L;
    s->up = true;
    L->up++;
    if (!L->cipher[0])
        snprintf(L->cipher, sizeof L->cipher, "%s", bench_dtls_cipher(&p->dtls));
    if (L->up == L->o.concurrency)
        start_measuring(L);
    else
        closed_loop_next(s);
}

static void on_down(bench_peer_t *p, int err)
{
    (void)err;
    load_sess_t *s = p->user;
    load_t *L = s->L;
    for (uint32_t u = s->used; u; u &= u - 1) {
        L->st.lost++;
        slot_free(s, __builtin_ctz(u));
    }
    if (s->up)
        L->up--;
    s->up = false;
    if (!L->stopping)
        bench_peer_connect(p);
}

static const bench_peer_ops_t load_ops = {.up = on_up, .record = on_record, .down = on_down};

static void on_warmup(uv_timer_t *t)
{
    load_t *L = t->data;
    if (L->up) {
        bench_log(CMD, "only %u/%u sessions connected after %u s; measuring with those", L->up,
                  L->o.concurrency, L->o.connect_timeout_s);
        start_measuring(L);
        return;
    }
    bench_log(CMD,
              "error: no session connected within %u s (check --server, --identity, "
              "--psk-hex)",
              L->o.connect_timeout_s);
    bench_runner_stop(&L->runner);
}

/* ---- report ---------------------------------------------------------------------- */

static uint64_t class_sum(const load_stats_t *st, int cls)
{
    uint64_t n = 0;
    for (int d = 0; d < 32; d++)
        n += st->codes[TETHER_COAP_CODE(cls, d)];
    return n;
}

static int by_gap_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* --observe: every session's longest silence between notifications (ms),
 * the one up to the end of the window included, longest first. NULL when
 * out of memory; the caller frees it. */
static uint64_t *observe_gaps(const load_t *L)
{
    uint64_t *v = malloc((L->o.concurrency ? L->o.concurrency : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (uint32_t k = 0; k < L->o.concurrency; k++) {
        const load_sess_t *s = &L->sess[k];
        uint64_t from = s->last_notif_us ? s->last_notif_us : L->start_us;
        uint64_t tail = L->end_us > from ? L->end_us - from : 0;
        v[k] = (s->max_gap_us > tail ? s->max_gap_us : tail) / 1000;
    }
    qsort(v, L->o.concurrency, sizeof *v, by_gap_desc);
    return v;
}

static void report_json(load_t *L, double secs)
{
    const load_stats_t *st = &L->st;
    const tether_hist_t *h = &L->hist;
    json_t *codes = json_object();
    for (int c = 0; c < 256; c++)
        if (st->codes[c]) {
            char cs[6];
            json_object_set_new(codes, tether_coap_code_str((uint8_t)c, cs),
                                json_integer((json_int_t)st->codes[c]));
        }
    json_t *o = json_pack(
        "{s:s, s:s, s:i, s:f, s:o, s:f, s:I, s:I, s:{s:I, s:I, s:I}, s:o, s:I, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:f, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:f}}",
        "target", L->o.target, "mode", L->o.rate > 0 ? "open" : "closed", "concurrency",
        (int)L->o.concurrency, "duration_s", secs, "rate",
        L->o.rate > 0 ? json_real(L->o.rate) : json_null(), "handshake_ms",
        (double)(L->hs_end_us - L->hs_start_us) / 1000.0, "sent", (json_int_t)st->sent, "responses",
        (json_int_t)st->responses, "classes", "2xx", (json_int_t)class_sum(st, 2), "4xx",
        (json_int_t)class_sum(st, 4), "5xx", (json_int_t)class_sum(st, 5), "codes", codes,
        "timeouts", (json_int_t)st->timeouts, "resets", (json_int_t)st->resets, "lost",
        (json_int_t)st->lost, "overflow", (json_int_t)st->overflow, "retransmits",
        (json_int_t)st->retransmits, "separate", (json_int_t)st->separate, "send_errors",
        (json_int_t)st->send_errors, "throughput_rps",
        secs > 0 ? (double)st->responses / secs : 0.0, "latency_us", "p50",
        (json_int_t)tether_hist_percentile(h, 50), "p90", (json_int_t)tether_hist_percentile(h, 90),
        "p99", (json_int_t)tether_hist_percentile(h, 99), "p99.9",
        (json_int_t)tether_hist_percentile(h, 99.9), "min", (json_int_t)(h->count ? h->min : 0),
        "max", (json_int_t)h->max, "mean", tether_hist_mean(h));
    if (o) {
        json_object_set_new(o, "cipher", json_string(L->cipher));
        json_object_set_new(o, "warmup_s", json_real(L->o.warmup_s));
        bench_cpu_window_json(&L->cpu, o);
        bench_hist_json(h, o);
    }
    if (o && L->o.observe) {
        json_object_set_new(o, "notifications", json_integer((json_int_t)st->notifications));
        json_object_set_new(o, "notifications_per_s",
                            json_real(secs > 0 ? (double)st->notifications / secs : 0.0));
        uint64_t *gaps = observe_gaps(L);
        json_t *a = json_array();
        for (uint32_t k = 0; gaps && a && k < L->o.concurrency; k++)
            json_array_append_new(a, json_integer((json_int_t)gaps[k]));
        if (a)
            json_object_set_new(o, "silences_ms", a);
        free(gaps);
    }
    if (!o) {
        fprintf(stderr, "tether-bench load: error: cannot build the JSON report\n");
        return;
    }
    char *text = json_dumps(o, JSON_COMPACT);
    if (text) {
        printf("%s\n", text);
        free(text);
    }
    json_decref(o);
}

static void report_text(load_t *L, double secs)
{
    const load_stats_t *st = &L->st;
    const tether_hist_t *h = &L->hist;
    printf("target      %s (%s loop, %u sessions%s)\n", L->o.target,
           L->o.rate > 0 ? "open" : "closed", L->o.concurrency, L->o.c.dtls13 ? ", DTLS 1.3" : "");
    printf("duration    %.3f s (handshakes took %.0f ms)\n", secs,
           (double)(L->hs_end_us - L->hs_start_us) / 1000.0);
    printf("requests    sent %llu, responses %llu: 2xx %llu, 4xx %llu, 5xx %llu\n",
           (unsigned long long)st->sent, (unsigned long long)st->responses,
           (unsigned long long)class_sum(st, 2), (unsigned long long)class_sum(st, 4),
           (unsigned long long)class_sum(st, 5));
    printf("errors      timeouts %llu, resets %llu, lost %llu, overflow %llu, "
           "retransmits %llu, separate %llu\n",
           (unsigned long long)st->timeouts, (unsigned long long)st->resets,
           (unsigned long long)st->lost, (unsigned long long)st->overflow,
           (unsigned long long)st->retransmits, (unsigned long long)st->separate);
    printf("codes      ");
    for (int c = 0; c < 256; c++)
        if (st->codes[c]) {
            char cs[6];
            printf(" %s=%llu", tether_coap_code_str((uint8_t)c, cs),
                   (unsigned long long)st->codes[c]);
        }
    printf("\n");
    printf("throughput  %.1f req/s\n", secs > 0 ? (double)st->responses / secs : 0.0);
    if (L->o.observe) {
        printf("observe     %llu notifications, %.1f/s\n", (unsigned long long)st->notifications,
               secs > 0 ? (double)st->notifications / secs : 0.0);
        uint64_t *gaps = observe_gaps(L);
        printf("silences_ms");
        for (uint32_t k = 0; gaps && k < L->o.concurrency; k++)
            printf(" %llu", (unsigned long long)gaps[k]);
        printf("\n");
        for (uint32_t k = 0; k < L->o.concurrency; k++) {
            printf("notified_at_ms %u", k);
            for (uint32_t i = 0; i < L->sess[k].nnotif; i++)
                printf(" %llu", (unsigned long long)L->sess[k].notif_at[i]);
            printf("\n");
        }
        free(gaps);
    }
    printf("latency us  p50 %llu, p90 %llu, p99 %llu, p99.9 %llu, max %llu, mean %.1f\n",
           (unsigned long long)tether_hist_percentile(h, 50),
           (unsigned long long)tether_hist_percentile(h, 90),
           (unsigned long long)tether_hist_percentile(h, 99),
           (unsigned long long)tether_hist_percentile(h, 99.9), (unsigned long long)h->max,
           tether_hist_mean(h));
}

static void load_stop(void *user)
{
    load_t *L = user;
    L->stopping = true;
    if (L->running) {
        L->end_us = bench_now_us();
        bench_cpu_window_stop(&L->cpu);
        L->running = false;
        L->ended = !L->warming;
    }
    uv_close((uv_handle_t *)&L->warm, NULL);
    uv_close((uv_handle_t *)&L->pacer, NULL);
    uv_close((uv_handle_t *)&L->sweep, NULL);
    uv_close((uv_handle_t *)&L->warmup, NULL);
    for (uint32_t k = 0; k < L->o.concurrency; k++)
        bench_peer_close(&L->sess[k].peer, true);
}

/* ---- options ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tether-bench load --server HOST:PORT --identity ID --psk-hex KEY\n"
               "                         --target DEVICE/PATH [options]\n"
               "Sends CoAP requests through tether (Uri-Host = DEVICE) from concurrent DTLS PSK\n"
               "sessions and reports throughput and latency (microseconds).\n\n"
               "  --server HOST:PORT    tether's DTLS listener (required)\n"
               "  --identity ID         PSK identity of the client (required)\n"
               "  --psk-hex KEY         its key in hex (required)\n"
               "  --target DEV/PATH     device and resource, e.g. dev0/temp (required);\n"
               "                        dev[0-63]/temp spreads requests over dev0..dev63\n"
               "  --proxy-uri URI       send Proxy-Uri: URI instead of Uri-Host/Uri-Path (a\n"
               "                        forward proxy such as libcoap's; --target is a label)\n"
               "  --method M            GET (default), POST, PUT, DELETE, FETCH, PATCH, iPATCH\n"
               "  --payload STR         request payload (sent as text/plain)\n"
               "  --concurrency C       sessions (default 1)\n"
               "  --duration S          measuring time after all sessions connect (default 10)\n"
               "  --rate R              open loop: R requests/s in total (default: closed loop)\n"
               "  --max-outstanding N   open loop: requests in flight per session (default 16, "
               "<= 32)\n"
               "  --timeout MS          a request unanswered this long is an error (default 5000)\n"
               "  --connect-timeout S   give up waiting for all handshakes (default 30)\n"
               "  --max-handshakes N    handshakes in flight at once (default 200)\n"
               "  --records-to H:P      after each handshake with --server, send the\n"
               "                        session's records to H:P instead (another node of\n"
               "                        a cluster: measures forwarding by CID)\n"
               "  --dtls13              DTLS 1.3 instead of 1.2\n"
               "  --cipher LIST         offer only these suites (wolfSSL names, e.g.\n"
               "                        PSK-AES128-CCM-8); the report names the one negotiated\n"
               "  --warmup S            run the workload S seconds before measuring (a\n"
               "                        proxy's own upstream sessions form then)\n"
               "  --cpu-pid PID         report the CPU share PID used over the measured\n"
               "                        window (server_cpu; repeatable)\n"
               "  --json                print the report as one JSON object\n"
               "  --observe             each session registers as an observer (Observe: 0)\n"
               "                        of one target (session k observes target k mod N)\n"
               "                        and counts the notifications it receives; each\n"
               "                        one's longest silence between notifications is\n"
               "                        reported (silences_ms, longest first), and when\n"
               "                        each notification came (notified_at_ms, wall clock)\n"
               "  --keepalive MS        each session sends an empty CON (CoAP ping) every\n"
               "                        MS, as a client behind a NAT or balancer does\n"
               "  --help                this text\n");
}

enum {
    O_IDENTITY = BENCH_OPT_FIRST_OWN,
    O_PSK,
    O_TARGET,
    O_PROXY_URI,
    O_METHOD,
    O_PAYLOAD,
    O_CONC,
    O_RATE,
    O_MAXOUT,
    O_TIMEOUT,
    O_CONNTO,
    O_JSON,
    O_OBSERVE,
    O_WARMUP,
    O_KEEPALIVE,
};

static const struct option long_opts[] = {
    BENCH_COMMON_LONG_OPTS,
    {"identity", required_argument, NULL, O_IDENTITY},
    {"psk-hex", required_argument, NULL, O_PSK},
    {"target", required_argument, NULL, O_TARGET},
    {"proxy-uri", required_argument, NULL, O_PROXY_URI},
    {"method", required_argument, NULL, O_METHOD},
    {"payload", required_argument, NULL, O_PAYLOAD},
    {"concurrency", required_argument, NULL, O_CONC},
    {"rate", required_argument, NULL, O_RATE},
    {"max-outstanding", required_argument, NULL, O_MAXOUT},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"connect-timeout", required_argument, NULL, O_CONNTO},
    {"json", no_argument, NULL, O_JSON},
    {"observe", no_argument, NULL, O_OBSERVE},
    {"warmup", required_argument, NULL, O_WARMUP},
    {"keepalive", required_argument, NULL, O_KEEPALIVE},
    {NULL, 0, NULL, 0},
};

static int parse_method(const char *s, uint8_t *out)
{
    static const struct {
        const char *name;
        uint8_t code;
    } methods[] = {{"GET", TETHER_COAP_GET},      {"POST", TETHER_COAP_POST},
                   {"PUT", TETHER_COAP_PUT},      {"DELETE", TETHER_COAP_DELETE},
                   {"FETCH", TETHER_COAP_FETCH},  {"PATCH", TETHER_COAP_PATCH},
                   {"iPATCH", TETHER_COAP_IPATCH}};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcasecmp(s, methods[i].name) == 0) {
            *out = methods[i].code;
            return 0;
        }
    return -1;
}

/* One load-specific option (bench_opt_fn). */
static int load_opt(void *ctx, int opt, const char *arg)
{
    load_opts_t *o = ctx;
    switch (opt) {
    case O_IDENTITY:
        if (bench_dtls_cred_set(&o->cred, arg, NULL, 0) < 0)
            return bench_usage_error(CMD, "--identity must be 1..%d characters",
                                     BENCH_DTLS_IDENTITY_MAX - 1);
        break;
    case O_PSK:
        if (tether_creds_key_from_hex(arg, o->cred.key, sizeof o->cred.key, &o->cred.key_len) < 0)
            return bench_usage_error(CMD, "--psk-hex wants 1..64 bytes of hex");
        break;
    case O_TARGET:
        if (!*arg || *arg == '/' || strlen(arg) >= sizeof o->target)
            return bench_usage_error(CMD, "--target wants DEVICE/PATH, got '%s'", arg);
        strcpy(o->target, arg);
        break;
    case O_METHOD:
        if (parse_method(arg, &o->method) < 0)
            return bench_usage_error(CMD, "--method: unknown method '%s'", arg);
        break;
    case O_PAYLOAD: o->payload = arg; break;
    case O_PROXY_URI:
        if (strlen(arg) > 1034)
            return bench_usage_error(CMD, "--proxy-uri is too long");
        o->proxy_uri = arg;
        break;
    case O_CONC:
        if (bench_parse_u32(arg, 1, 1000000, &o->concurrency) < 0)
            return bench_usage_error(CMD, "--concurrency wants a number >= 1, got '%s'", arg);
        break;
    case O_RATE:
        if (bench_parse_double(arg, 0.001, 1e8, &o->rate) < 0)
            return bench_usage_error(CMD, "--rate wants requests/s > 0, got '%s'", arg);
        break;
    case O_MAXOUT:
        if (bench_parse_u32(arg, 1, LOAD_SLOTS, &o->max_outstanding) < 0)
            return bench_usage_error(CMD, "--max-outstanding wants 1..%d", LOAD_SLOTS);
        break;
    case O_TIMEOUT:
        if (bench_parse_u32(arg, 1, 600000, &o->timeout_ms) < 0)
            return bench_usage_error(CMD, "--timeout wants milliseconds, got '%s'", arg);
        break;
    case O_CONNTO:
        if (bench_parse_u32(arg, 1, 3600, &o->connect_timeout_s) < 0)
            return bench_usage_error(CMD, "--connect-timeout wants seconds, got '%s'", arg);
        break;
    case O_JSON: o->json = true; break;
    case O_OBSERVE: o->observe = true; break;
    case O_WARMUP:
        if (bench_parse_double(arg, 0, 3600, &o->warmup_s) < 0)
            return bench_usage_error(CMD, "--warmup wants seconds, got '%s'", arg);
        break;
    case O_KEEPALIVE:
        if (bench_parse_u32(arg, 100, 3600000, &o->keepalive_ms) < 0)
            return bench_usage_error(CMD, "--keepalive wants milliseconds >= 100, got '%s'", arg);
        break;
    }
    return 0;
}

/* Fills `o` from argv; returns 0, 1 for --help, or an exit code >= 2. */
static int parse_opts(int argc, char **argv, load_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->method = TETHER_COAP_GET;
    o->concurrency = 1;
    o->c.duration_s = 10;
    o->c.max_handshakes = 200;
    o->max_outstanding = 16;
    o->timeout_ms = 5000;
    o->connect_timeout_s = 30;
    int rc = bench_parse_args(CMD, argc, argv, long_opts, &o->c, load_opt, o);
    if (rc)
        return rc;
    if (o->c.duration_s <= 0)
        return bench_usage_error(CMD, "--duration must be > 0");
    if (!o->cred.identity[0])
        return bench_usage_error(CMD, "--identity ID is required");
    if (!o->cred.key_len)
        return bench_usage_error(CMD, "--psk-hex KEY is required");
    if (!o->target[0])
        return bench_usage_error(CMD, "--target DEVICE/PATH is required");
    return 0;
}

/* ---- entry ------------------------------------------------------------------- */

int bench_load_main(int argc, char **argv)
{
    load_t *L = calloc(1, sizeof *L);
    int exit_code = BENCH_EXIT_FAIL;
    if (!L)
        return BENCH_EXIT_FAIL;
    int ex = bench_args_outcome(parse_opts(argc, argv, &L->o), usage);
    if (ex >= 0) {
        free(L);
        return ex;
    }
    if (build_templates(L) < 0) {
        free(L->tmpl);
        free(L->tmpl_len);
        free(L);
        return bench_usage_error(CMD, "--target: bad device range, or the request does not fit "
                                      "in one datagram");
    }
    tether_hist_init(&L->hist);
    if (bench_net_init(&L->net, CMD, &L->o.c) < 0)
        goto cleanup;
    L->loop = L->net.loop;
    if (!(L->sess = calloc(L->o.concurrency, sizeof *L->sess)))
        goto cleanup;
    for (uint32_t k = 0; k < L->o.concurrency; k++) {
        load_sess_t *s = &L->sess[k];
        s->L = L;
        s->next_mid = (uint16_t)bench_rand();
        bench_peer_init(&s->peer, &L->net, &load_ops, s, &L->o.cred);
    }
    bench_runner_init(&L->runner, L->loop, L->o.c.duration_s, load_stop, L);
    uv_idle_init(L->loop, &L->pacer);
    uv_timer_init(L->loop, &L->sweep);
    uv_timer_init(L->loop, &L->warmup);
    uv_timer_init(L->loop, &L->warm);
    L->pacer.data = L->sweep.data = L->warmup.data = L->warm.data = L;
    uv_timer_start(&L->sweep, on_sweep, LOAD_SWEEP_MS, LOAD_SWEEP_MS);
    uv_timer_start(&L->warmup, on_warmup, (uint64_t)L->o.connect_timeout_s * 1000, 0);
    L->hs_start_us = bench_now_us();
    for (uint32_t k = 0; k < L->o.concurrency; k++)
        bench_peer_connect(&L->sess[k].peer);
    bench_runner_run(&L->runner);
    if (L->ended) {
        double secs = (double)(L->end_us - L->start_us) / 1e6;
        if (L->o.json)
            report_json(L, secs);
        else
            report_text(L, secs);
        exit_code = 0;
    }
cleanup:
    for (uint32_t k = 0; L->sess && k < L->o.concurrency; k++)
        free(L->sess[k].notif_at);
    free(L->sess);
    free(L->tmpl);
    free(L->tmpl_len);
    bench_net_free(&L->net);
    free(L);
    return exit_code;
}
