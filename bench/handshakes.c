/* tether-bench handshakes: DTLS 1.2 handshakes per second against a server
 * (SPEC S9: full PSK, full ECDHE-ECDSA P-256, resumed).
 *
 * C workers each run one handshake at a time on a fresh UDP socket (a new
 * source port, as a new device would). Once established the session is
 * ended with close_notify, so the server frees it at once and never fills
 * up, and the worker starts its next handshake. A handshake counts when the
 * client has completed it; a resumed one counts only when the server then
 * answers a CoAP ping on the resumed session, which proves it kept the
 * session rather than dropping it after the abbreviated handshake. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "peer.h"
#include "tether/coap.h"
#include "tether/creds.h"
#include "tether/hist.h"

#define CMD "handshakes"
#define HS_PING_WAIT_MS 1000

enum { MODE_PSK, MODE_ECDHE, MODE_RESUMED };
static const char *const mode_names[] = {"psk", "ecdhe", "resumed"};

typedef struct {
    bench_common_opts_t c;
    int mode;
    uint32_t concurrency;
    char prefix[32];
    uint8_t master[64];
    size_t master_len;
    bench_dtls_cred_t single; /* --identity/--psk-hex instead of a fleet */
    const char *ca, *cert, *key;
    bool json;
    struct sockaddr_storage resume_at; /* --resume-server (family 0: --server) */
} hs_opts_t;

struct hs;

typedef struct {
    bench_peer_t peer;
    struct hs *H;
    bench_dtls_cred_t cred;
    uint64_t t0_us;
    uv_timer_t ping_timer;
    uint16_t ping_mid;
    bool ping_wait;
} hs_worker_t;

typedef struct hs {
    hs_opts_t o;
    uv_loop_t *loop;
    bench_net_t net;
    bench_runner_t runner;
    hs_worker_t *w;
    bool stopping;
    uint64_t start_us, end_us;
    bench_cpu_window_t cpu; /* --cpu-pid over the run */
    char cipher[64];        /* negotiated by the first completed handshake */
    uint64_t ok, failed, full_instead, resumed_dead, warmups;
    char alert[48];
    tether_hist_t hist;
    struct sockaddr_storage full_at; /* --server */
} hs_t;

static void next(hs_worker_t *w)
{
    hs_t *H = w->H;
    if (H->stopping)
        return;
    w->t0_us = bench_now_us();
    /* --resume-server: a session is offered to another node of the cluster
     * than the one that issued it (the connect reads the address now). */
    if (H->o.resume_at.ss_family)
        H->net.server = w->peer.resume ? H->o.resume_at : H->full_at;
    bench_peer_connect(&w->peer);
}

/* Counts one completed handshake and starts the next. */
static void done(hs_worker_t *w)
{
    hs_t *H = w->H;
    H->ok++;
    tether_hist_record(&H->hist, bench_now_us() - w->t0_us);
    bench_peer_hangup(&w->peer);
    next(w);
}

static void on_ping_timeout(uv_timer_t *t)
{
    hs_worker_t *w = t->data;
    if (!w->ping_wait)
        return;
    w->ping_wait = false;
    w->H->resumed_dead++;
    bench_peer_hangup(&w->peer);
    next(w);
}

static void on_up(bench_peer_t *p)
{
    hs_worker_t *w = p->user;
    hs_t *H = w->H;
    if (!H->cipher[0])
        snprintf(H->cipher, sizeof H->cipher, "%s", bench_dtls_cipher(&p->dtls));
    if (H->o.mode != MODE_RESUMED) {
        done(w);
        return;
    }
    if (p->resume && bench_dtls_resumed(&p->dtls)) {
        /* CoAP ping (empty CON): a live session answers with RST. */
        uint8_t ping[4] = {0x40, 0, (uint8_t)(w->ping_mid >> 8), (uint8_t)w->ping_mid};
        w->ping_wait = true;
        bench_peer_send(p, ping, sizeof ping);
        uv_timer_start(&w->ping_timer, on_ping_timeout, HS_PING_WAIT_MS, 0);
        return;
    }
    /* A full handshake: the first one of the worker, or the server did not
     * resume. Keep the fresh session for the next attempt. */
    if (p->resume)
        H->full_instead++;
    else
        H->warmups++;
    bench_dtls_free_session(p->resume);
    p->resume = bench_dtls_save_session(&p->dtls);
    bench_peer_hangup(p);
    next(w);
}

static void on_record(bench_peer_t *p, const uint8_t *data, size_t len)
{
    hs_worker_t *w = p->user;
    if (!w->ping_wait || len < 4 || (data[0] & 0x30) != 0x30 ||
        (uint16_t)(data[2] << 8 | data[3]) != w->ping_mid)
        return;
    w->ping_wait = false;
    w->ping_mid++;
    uv_timer_stop(&w->ping_timer);
    done(w);
}

static void on_down(bench_peer_t *p, int err)
{
    (void)err;
    hs_worker_t *w = p->user;
    hs_t *H = w->H;
    if (w->ping_wait) {
        w->ping_wait = false;
        uv_timer_stop(&w->ping_timer);
        H->resumed_dead++;
    } else {
        H->failed++;
        if (p->dtls.alert[0])
            snprintf(H->alert, sizeof H->alert, "%s", p->dtls.alert);
        else
            snprintf(H->alert, sizeof H->alert, "no answer (timeout)");
    }
    next(w);
}

static const bench_peer_ops_t hs_ops = {.up = on_up, .record = on_record, .down = on_down};

static void hs_stop(void *user)
{
    hs_t *H = user;
    H->stopping = true;
    H->end_us = bench_now_us();
    bench_cpu_window_stop(&H->cpu);
    for (uint32_t k = 0; k < H->o.concurrency; k++) {
        bench_peer_close(&H->w[k].peer, true);
        uv_close((uv_handle_t *)&H->w[k].ping_timer, NULL);
    }
}

/* "ok", or why no handshake of this mode could be counted. */
static const char *verdict(const hs_t *H, char *buf, size_t cap)
{
    if (H->ok) {
        snprintf(buf, cap, "ok");
    } else if (H->o.mode == MODE_RESUMED && (H->full_instead || H->resumed_dead)) {
        snprintf(buf, cap,
                 "unsupported by server: %llu resumption attempts completed the abbreviated "
                 "handshake but the server dropped the session (no answer to a CoAP ping on "
                 "it), %llu were answered with a full handshake",
                 (unsigned long long)H->resumed_dead, (unsigned long long)H->full_instead);
    } else if (H->failed) {
        snprintf(buf, cap, "unsupported by server: every handshake failed (%s)", H->alert);
    } else {
        snprintf(buf, cap, "no handshake completed");
    }
    return buf;
}

static void report(hs_t *H)
{
    double secs = (double)(H->end_us - H->start_us) / 1e6;
    double rate = secs > 0 ? (double)H->ok / secs : 0;
    char why[300];
    verdict(H, why, sizeof why);
    const tether_hist_t *h = &H->hist;
    if (H->o.json) {
        json_t *o = json_pack(
            "{s:s, s:i, s:f, s:I, s:I, s:f, s:s, s:s, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}}",
            "mode", mode_names[H->o.mode], "concurrency", (int)H->o.concurrency, "duration_s", secs,
            "handshakes", (json_int_t)H->ok, "failed", (json_int_t)H->failed, "rate_per_s", rate,
            "status", H->ok ? "ok" : "unsupported", "detail", why, "resumption", "warmup_full",
            (json_int_t)H->warmups, "full_instead", (json_int_t)H->full_instead, "dropped",
            (json_int_t)H->resumed_dead, "latency_us", "p50",
            (json_int_t)tether_hist_percentile(h, 50), "p99",
            (json_int_t)tether_hist_percentile(h, 99), "max", (json_int_t)h->max);
        if (o) {
            json_object_set_new(o, "cipher", json_string(H->cipher));
            bench_cpu_window_json(&H->cpu, o);
        }
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (t)
            printf("%s\n", t);
        free(t);
        json_decref(o);
        return;
    }
    printf("mode        %s (%u concurrent, DTLS 1.2, close_notify after each)\n",
           mode_names[H->o.mode], H->o.concurrency);
    printf("duration    %.3f s\n", secs);
    printf("handshakes  %llu completed, %llu failed\n", (unsigned long long)H->ok,
           (unsigned long long)H->failed);
    if (H->o.mode == MODE_RESUMED)
        printf("resumption  %llu full warm-up, %llu answered with a full handshake, %llu dropped\n",
               (unsigned long long)H->warmups, (unsigned long long)H->full_instead,
               (unsigned long long)H->resumed_dead);
    printf("rate        %.1f handshakes/s\n", rate);
    printf("latency us  p50 %llu, p99 %llu, max %llu\n",
           (unsigned long long)tether_hist_percentile(h, 50),
           (unsigned long long)tether_hist_percentile(h, 99), (unsigned long long)h->max);
    printf("status      %s\n", why);
}

/* ---- options ---------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tether-bench handshakes --server HOST:PORT [--mode psk|ecdhe|resumed]\n"
            "                               (--identity-prefix P --psk-master HEX |\n"
            "                                --identity ID --psk-hex KEY) [options]\n"
            "Runs DTLS 1.2 handshakes back to back and reports handshakes per second. Each\n"
            "session is closed with close_notify once established; the next handshake comes\n"
            "from a new source port.\n\n"
            "  --server HOST:PORT    DTLS listener (required)\n"
            "  --mode M              psk (default): full PSK handshakes; ecdhe: full\n"
            "                        ECDHE-ECDSA P-256 handshakes (needs a server certificate);\n"
            "                        resumed: resumption by session ticket (RFC 5077) or\n"
            "                        session id, each checked with a CoAP ping on the\n"
            "                        resumed session\n"
            "  --concurrency C       handshakes in flight (default 32)\n"
            "  --duration S          seconds (default 10)\n"
            "  --identity-prefix P   PSK fleet: worker k is P<k> (default dev)\n"
            "  --psk-master HEX      fleet master key: key = HMAC-SHA256(master, identity)\n"
            "  --identity ID         one PSK identity for every worker instead\n"
            "  --psk-hex KEY         its key in hex\n"
            "  --ca FILE             ecdhe: verify the server certificate against FILE\n"
            "                        (default: no verification)\n"
            "  --cert FILE --key F   ecdhe: client certificate and key (PEM)\n"
            "  --cipher LIST         offer only these suites (wolfSSL names); the report\n"
            "                        names the one negotiated\n"
            "  --resume-server H:P   resumed: offer the sessions to this server (another node\n"
            "                        of --server's cluster) instead\n"
            "  --cpu-pid PID         report the CPU share PID used over the run (server_cpu;\n"
            "                        repeatable)\n"
            "  --json                one JSON object\n");
}

enum {
    O_MODE = BENCH_OPT_FIRST_OWN,
    O_CONC,
    O_PREFIX,
    O_MASTER,
    O_IDENTITY,
    O_PSK,
    O_CA,
    O_CERT,
    O_KEY,
    O_JSON,
    O_RESUME_AT,
};

static const struct option long_opts[] = {
    BENCH_COMMON_LONG_OPTS,
    {"mode", required_argument, NULL, O_MODE},
    {"concurrency", required_argument, NULL, O_CONC},
    {"identity-prefix", required_argument, NULL, O_PREFIX},
    {"psk-master", required_argument, NULL, O_MASTER},
    {"identity", required_argument, NULL, O_IDENTITY},
    {"psk-hex", required_argument, NULL, O_PSK},
    {"ca", required_argument, NULL, O_CA},
    {"cert", required_argument, NULL, O_CERT},
    {"key", required_argument, NULL, O_KEY},
    {"json", no_argument, NULL, O_JSON},
    {"resume-server", required_argument, NULL, O_RESUME_AT},
    {NULL, 0, NULL, 0},
};

static int hs_opt(void *ctx, int opt, const char *arg)
{
    hs_opts_t *o = ctx;
    switch (opt) {
    case O_MODE:
        for (o->mode = 0; o->mode < 3; o->mode++)
            if (strcmp(arg, mode_names[o->mode]) == 0)
                return 0;
        return bench_usage_error(CMD, "--mode wants psk, ecdhe or resumed, got '%s'", arg);
    case O_CONC:
        if (bench_parse_u32(arg, 1, 100000, &o->concurrency) < 0)
            return bench_usage_error(CMD, "--concurrency wants a number >= 1, got '%s'", arg);
        return 0;
    case O_PREFIX:
        if (!*arg || strlen(arg) >= sizeof o->prefix)
            return bench_usage_error(CMD, "--identity-prefix must be 1..%zu characters",
                                     sizeof o->prefix - 1);
        strcpy(o->prefix, arg);
        return 0;
    case O_MASTER:
        if (tether_creds_key_from_hex(arg, o->master, sizeof o->master, &o->master_len) < 0)
            return bench_usage_error(CMD, "--psk-master wants 1..64 bytes of hex");
        return 0;
    case O_IDENTITY:
        if (bench_dtls_cred_set(&o->single, arg, NULL, 0) < 0)
            return bench_usage_error(CMD, "--identity must be 1..%d characters",
                                     BENCH_DTLS_IDENTITY_MAX - 1);
        return 0;
    case O_PSK:
        if (tether_creds_key_from_hex(arg, o->single.key, sizeof o->single.key,
                                      &o->single.key_len) < 0)
            return bench_usage_error(CMD, "--psk-hex wants 1..64 bytes of hex");
        return 0;
    case O_CA: o->ca = arg; return 0;
    case O_CERT: o->cert = arg; return 0;
    case O_KEY: o->key = arg; return 0;
    case O_RESUME_AT:
        if (bench_parse_addr(arg, &o->resume_at) < 0)
            return bench_usage_error(CMD, "--resume-server wants HOST:PORT, got '%s'", arg);
        return 0;
    case O_JSON: o->json = true; return 0;
    }
    return 0;
}

static int parse_opts(int argc, char **argv, hs_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->concurrency = 32;
    o->c.duration_s = 10;
    strcpy(o->prefix, "dev");
    int rc = bench_parse_args(CMD, argc, argv, long_opts, &o->c, hs_opt, o);
    if (rc)
        return rc;
    if (o->c.duration_s <= 0)
        return bench_usage_error(CMD, "--duration must be > 0");
    if (o->c.dtls13)
        return bench_usage_error(CMD, "--dtls13 is not supported here (DTLS 1.2 handshakes)");
    if (o->mode != MODE_ECDHE && !o->master_len && !o->single.key_len)
        return bench_usage_error(CMD, "PSK modes need --psk-master HEX or --identity/--psk-hex");
    if (o->single.key_len && !o->single.identity[0])
        return bench_usage_error(CMD, "--psk-hex needs --identity");
    if (!o->cert != !o->key)
        return bench_usage_error(CMD, "--cert and --key go together");
    return 0;
}

/* Each worker's credentials: the single identity, or fleet member P<k>. */
static int setup_workers(hs_t *H)
{
    for (uint32_t k = 0; k < H->o.concurrency; k++) {
        hs_worker_t *w = &H->w[k];
        w->H = H;
        w->ping_mid = (uint16_t)bench_rand();
        if (H->o.single.key_len) {
            w->cred = H->o.single;
        } else if (H->o.master_len) {
            char name[BENCH_DTLS_IDENTITY_MAX];
            uint8_t key[TETHER_DERIVED_PSK_LEN];
            snprintf(name, sizeof name, "%s%u", H->o.prefix, k);
            if (tether_creds_derive_psk(H->o.master, H->o.master_len, name, key) < 0 ||
                bench_dtls_cred_set(&w->cred, name, key, sizeof key) < 0)
                return TETHER_EINVAL;
        } else {
            bench_dtls_cred_set(&w->cred, "none", NULL, 0);
        }
        bench_peer_init(&w->peer, &H->net, &hs_ops, w, &w->cred);
        uv_timer_init(H->loop, &w->ping_timer);
        w->ping_timer.data = w;
    }
    return 0;
}

int bench_handshakes_main(int argc, char **argv)
{
    hs_t *H = calloc(1, sizeof *H);
    int exit_code = BENCH_EXIT_FAIL;
    if (!H)
        return BENCH_EXIT_FAIL;
    int ex = bench_args_outcome(parse_opts(argc, argv, &H->o), usage);
    if (ex >= 0) {
        free(H);
        return ex;
    }
    tether_hist_init(&H->hist);
    H->o.c.max_handshakes = H->o.concurrency;
    if (bench_net_init(&H->net, CMD, &H->o.c) < 0)
        goto cleanup;
    H->loop = H->net.loop;
    if (H->o.mode == MODE_ECDHE) {
        bench_dtls_ctx_free(&H->net.dtls);
        int rc = bench_dtls_ctx_init_cert(&H->net.dtls, H->o.ca, H->o.cert, H->o.key);
        if (rc == 0 && H->o.c.cipher)
            rc = bench_dtls_ctx_set_suites(&H->net.dtls, H->o.c.cipher);
        if (rc < 0) {
            fprintf(stderr, "tether-bench %s: error: certificate setup failed: %s\n", CMD,
                    tether_strerror(rc));
            goto cleanup;
        }
    }
    H->net.dtls.tickets = H->o.mode == MODE_RESUMED;
    H->full_at = H->net.server;
    if (!(H->w = calloc(H->o.concurrency, sizeof *H->w)) || setup_workers(H) < 0)
        goto cleanup;
    bench_runner_init(&H->runner, H->loop, H->o.c.duration_s, hs_stop, H);
    bench_runner_start(&H->runner);
    H->start_us = bench_now_us();
    bench_cpu_window_start(&H->cpu, H->o.c.cpu_pids, H->o.c.ncpu_pids);
    for (uint32_t k = 0; k < H->o.concurrency; k++)
        next(&H->w[k]);
    bench_runner_run(&H->runner);
    report(H);
    exit_code = 0;
cleanup:
    if (H->w)
        for (uint32_t k = 0; k < H->o.concurrency; k++)
            bench_dtls_free_session(H->w[k].peer.resume);
    free(H->w);
    bench_net_free(&H->net);
    free(H);
    return exit_code;
}
