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
 * "devices: registered N/N".
 *
 * This file drives the fleet; a device's messaging is in devices_proto.c,
 * its resources in devices_res.c (devices_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices_int.h"

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
void dev_arm(device_t *d)
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
