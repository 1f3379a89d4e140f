/* tether-bench idle: what an idle established device tunnel costs the
 * server (SPEC S9: <= 1 KiB each).
 *
 * Reads the server's resident memory (VmRSS of --pid), opens N DTLS PSK
 * tunnels (fleet identities P<first>.., server CID, each on its own UDP
 * socket), waits until every one is established and a settling time has
 * passed, reads VmRSS again and reports (after - before) / N. Each tunnel
 * sends one CoAP ping once up, as a device's keep-alive would (which also
 * tells the server the handshake's last flight arrived), and nothing more:
 * they do not register, so the figure is the DTLS session plus the demux
 * tables, not a device registry entry. At the end every tunnel is closed with close_notify, so the server
 * frees them at once. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "peer.h"
#include "tether/creds.h"

#define CMD "idle"

typedef struct {
    bench_common_opts_t c;
    uint32_t count, first, pid, settle_s, connect_timeout_s;
    char prefix[32];
    uint8_t master[64];
    size_t master_len;
    bench_dtls_cred_t single; /* --identity/--psk-hex: one identity for all */
    bool json;
} idle_opts_t;

struct idle;

typedef struct {
    bench_peer_t peer;
    struct idle *I;
    bench_dtls_cred_t cred;
    bool up;
} idle_tun_t;

typedef struct idle {
    idle_opts_t o;
    uv_loop_t *loop;
    bench_net_t net;
    bench_runner_t runner;
    uv_timer_t settle, progress;
    idle_tun_t *t;
    uint32_t up;
    uint64_t retries;
    int64_t rss_before, rss_after;
    uint64_t t0_us, t_up_us;
    bool measured, stopping;
} idle_t;

int64_t bench_rss_bytes(uint32_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%u/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return TETHER_ENOTFOUND;
    int64_t kb = TETHER_EPROTO;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb < 0 ? kb : kb * 1024;
}

static void on_settled(uv_timer_t *t)
{
    idle_t *I = t->data;
    I->rss_after = bench_rss_bytes(I->o.pid);
    I->measured = true;
    bench_runner_stop(&I->runner);
}

static void on_up(bench_peer_t *p)
{
    idle_tun_t *t = p->user;
    idle_t *I = t->I;
    t->up = true;
    /* CoAP ping: an empty CON (RFC 7252 §4.3); the server answers RST. */
    const uint8_t ping[4] = {0x40, 0x00, (uint8_t)(I->up >> 8), (uint8_t)I->up};
    bench_peer_send(p, ping, sizeof ping);
    if (++I->up == I->o.count) {
        I->t_up_us = bench_now_us();
        bench_log(CMD, "connected %u/%u in %.1f s; settling %u s", I->up, I->o.count,
                  (double)(I->t_up_us - I->t0_us) / 1e6, I->o.settle_s);
        uv_timer_start(&I->settle, on_settled, (uint64_t)I->o.settle_s * 1000, 0);
    }
}

static void on_record(bench_peer_t *p, const uint8_t *data, size_t len)
{
    (void)p, (void)data, (void)len; /* idle: whatever comes is ignored */
}

static void on_down(bench_peer_t *p, int err)
{
    (void)err;
    idle_tun_t *t = p->user;
    idle_t *I = t->I;
    if (t->up)
        I->up--;
    t->up = false;
    I->retries++;
    if (!I->stopping)
        bench_peer_connect(p);
}

static const bench_peer_ops_t idle_ops = {.up = on_up, .record = on_record, .down = on_down};

static void on_progress(uv_timer_t *t)
{
    idle_t *I = t->data;
    if (uv_now(I->loop) >= (uint64_t)I->o.connect_timeout_s * 1000 + I->t0_us / 1000 &&
        I->up < I->o.count && !I->measured) {
        bench_log(CMD, "error: only %u/%u tunnels up after %u s", I->up, I->o.count,
                  I->o.connect_timeout_s);
        bench_runner_stop(&I->runner);
        return;
    }
    if (I->up < I->o.count)
        bench_log(CMD, "connected %u/%u (retries %llu)", I->up, I->o.count,
                  (unsigned long long)I->retries);
}

static void idle_stop(void *user)
{
    idle_t *I = user;
    I->stopping = true;
    uv_close((uv_handle_t *)&I->settle, NULL);
    uv_close((uv_handle_t *)&I->progress, NULL);
    for (uint32_t k = 0; k < I->o.count; k++)
        bench_peer_close(&I->t[k].peer, true);
}

static void report(idle_t *I)
{
    double hs_s = (double)(I->t_up_us - I->t0_us) / 1e6;
    double per = (double)(I->rss_after - I->rss_before) / I->o.count;
    if (I->o.json) {
        json_t *o = json_pack("{s:i, s:I, s:I, s:f, s:f, s:f, s:s}", "count", (int)I->o.count,
                              "rss_before", (json_int_t)I->rss_before, "rss_after",
                              (json_int_t)I->rss_after, "bytes_per_tunnel", per, "connect_s", hs_s,
                              "handshakes_per_s", hs_s > 0 ? I->o.count / hs_s : 0.0, "tunnels",
                              "established, unregistered, idle");
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
        return;
    }
    printf("tunnels     %u established (unregistered, idle) in %.1f s\n", I->o.count, hs_s);
    printf("server rss  %.1f MiB before, %.1f MiB after\n", I->rss_before / 1048576.0,
           I->rss_after / 1048576.0);
    printf("per tunnel  %.0f bytes\n", per);
}

/* ---- options ---------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tether-bench idle --server HOST:PORT --count N --pid PID --psk-master HEX\n"
               "                         [options]\n"
               "Opens N idle DTLS PSK tunnels and reports the server's resident memory per\n"
               "tunnel: (VmRSS after - VmRSS before) / N. The server must run on this machine.\n\n"
               "  --server HOST:PORT    DTLS listener (required)\n"
               "  --count N             tunnels (required)\n"
               "  --pid PID             the server's process id (required)\n"
               "  --psk-master HEX      fleet master key (required unless --identity)\n"
               "  --identity ID         one PSK identity for every tunnel instead\n"
               "  --psk-hex KEY         its key in hex\n"
               "  --identity-prefix P   names P<k> (default dev)\n"
               "  --first K             first number (default 0)\n"
               "  --settle S            wait after the last handshake (default 2)\n"
               "  --connect-timeout S   give up when not all are up (default 600)\n"
               "  --max-handshakes N    handshakes in flight (default 64)\n"
               "  --json                one JSON object\n");
}

enum {
    O_COUNT = BENCH_OPT_FIRST_OWN,
    O_PID,
    O_MASTER,
    O_PREFIX,
    O_FIRST,
    O_SETTLE,
    O_CTO,
    O_JSON,
    O_IDENTITY,
    O_PSK,
};

static const struct option long_opts[] = {
    BENCH_COMMON_LONG_OPTS,
    {"count", required_argument, NULL, O_COUNT},
    {"pid", required_argument, NULL, O_PID},
    {"psk-master", required_argument, NULL, O_MASTER},
    {"identity-prefix", required_argument, NULL, O_PREFIX},
    {"first", required_argument, NULL, O_FIRST},
    {"settle", required_argument, NULL, O_SETTLE},
    {"connect-timeout", required_argument, NULL, O_CTO},
    {"json", no_argument, NULL, O_JSON},
    {"identity", required_argument, NULL, O_IDENTITY},
    {"psk-hex", required_argument, NULL, O_PSK},
    {NULL, 0, NULL, 0},
};

static int idle_opt(void *ctx, int opt, const char *arg)
{
    idle_opts_t *o = ctx;
    uint32_t *num = NULL;
    const char *what = NULL;
    switch (opt) {
    case O_COUNT: num = &o->count, what = "--count"; break;
    case O_PID: num = &o->pid, what = "--pid"; break;
    case O_FIRST: num = &o->first, what = "--first"; break;
    case O_SETTLE: num = &o->settle_s, what = "--settle"; break;
    case O_CTO: num = &o->connect_timeout_s, what = "--connect-timeout"; break;
    case O_MASTER:
        if (tether_creds_key_from_hex(arg, o->master, sizeof o->master, &o->master_len) < 0)
            return bench_usage_error(CMD, "--psk-master wants 1..64 bytes of hex");
        return 0;
    case O_PREFIX:
        if (!*arg || strlen(arg) >= sizeof o->prefix)
            return bench_usage_error(CMD, "--identity-prefix must be 1..%zu characters",
                                     sizeof o->prefix - 1);
        strcpy(o->prefix, arg);
        return 0;
    case O_JSON: o->json = true; return 0;
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
    default: return 0;
    }
    if (bench_parse_u32(arg, opt == O_SETTLE || opt == O_FIRST ? 0 : 1, 100000000, num) < 0)
        return bench_usage_error(CMD, "%s wants a number, got '%s'", what, arg);
    return 0;
}

static int parse_opts(int argc, char **argv, idle_opts_t *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->prefix, "dev");
    o->settle_s = 2;
    o->connect_timeout_s = 600;
    o->c.max_handshakes = 64; /* more overflows a server socket's default buffer */
    int rc = bench_parse_args(CMD, argc, argv, long_opts, &o->c, idle_opt, o);
    if (rc)
        return rc;
    if (!o->count)
        return bench_usage_error(CMD, "--count N is required");
    if (!o->pid)
        return bench_usage_error(CMD, "--pid PID is required");
    if (!o->master_len && !(o->single.identity[0] && o->single.key_len))
        return bench_usage_error(CMD, "--psk-master HEX (or --identity and --psk-hex) is required");
    return 0;
}

int bench_idle_main(int argc, char **argv)
{
    idle_t *I = calloc(1, sizeof *I);
    int exit_code = BENCH_EXIT_FAIL;
    if (!I)
        return BENCH_EXIT_FAIL;
    int ex = bench_args_outcome(parse_opts(argc, argv, &I->o), usage);
    if (ex >= 0) {
        free(I);
        return ex;
    }
    if (bench_raise_nofile_to((uint64_t)I->o.count + 256) < 0)
        bench_log(CMD, "warning: cannot raise the open-file limit to %u (one socket per tunnel)",
                  I->o.count + 256);
    if ((I->rss_before = bench_rss_bytes(I->o.pid)) < 0) {
        fprintf(stderr, "tether-bench %s: error: cannot read /proc/%u/status\n", CMD, I->o.pid);
        free(I);
        return BENCH_EXIT_FAIL;
    }
    if (bench_net_init(&I->net, CMD, &I->o.c) < 0)
        goto cleanup;
    I->loop = I->net.loop;
    if (!(I->t = calloc(I->o.count, sizeof *I->t)))
        goto cleanup;
    for (uint32_t k = 0; k < I->o.count; k++) {
        idle_tun_t *t = &I->t[k];
        char name[BENCH_DTLS_IDENTITY_MAX];
        uint8_t key[TETHER_DERIVED_PSK_LEN];
        t->I = I;
        snprintf(name, sizeof name, "%s%u", I->o.prefix, I->o.first + k);
        if (I->o.single.key_len)
            t->cred = I->o.single;
        else if (tether_creds_derive_psk(I->o.master, I->o.master_len, name, key) < 0 ||
                 bench_dtls_cred_set(&t->cred, name, key, sizeof key) < 0)
            goto cleanup;
        bench_peer_init(&t->peer, &I->net, &idle_ops, t, &t->cred);
    }
    bench_runner_init(&I->runner, I->loop, 0, idle_stop, I);
    uv_timer_init(I->loop, &I->settle);
    uv_timer_init(I->loop, &I->progress);
    I->settle.data = I->progress.data = I;
    uv_timer_start(&I->progress, on_progress, 5000, 5000);
    I->t0_us = bench_now_us();
    for (uint32_t k = 0; k < I->o.count; k++)
        bench_peer_connect(&I->t[k].peer);
    bench_runner_run(&I->runner);
    if (I->measured) {
        report(I);
        exit_code = 0;
    }
cleanup:
    free(I->t);
    bench_net_free(&I->net);
    free(I);
    return exit_code;
}
