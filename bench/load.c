/* tether-bench load: C concurrent DTLS PSK client sessions sending CoAP
 * requests through tether to one device resource (SPEC S9, S11).
 *
 * Closed loop by default (each session keeps one request outstanding and
 * sends the next as soon as the answer arrives); with --rate, open loop:
 * requests are due at fixed intervals and latency runs from the *scheduled*
 * time, so a slow server cannot hide its queueing (no coordinated
 * omission). One libuv loop, one UDP socket per session, and no allocation
 * per request: each request is a pre-encoded template with the MID and
 * token patched in.
 *
 * This file: requests, sessions, the entry; options and the report are in
 * load_cli.c (load_int.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "load_int.h"

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
