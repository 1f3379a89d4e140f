/* tether-bench load: the command line (options, checked strictly) and
 * the report (text or one JSON object) of what load.c measured. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load_int.h"

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

void report_json(load_t *L, double secs)
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

void report_text(load_t *L, double secs)
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

/* ---- options ----------------------------------------------------------------- */

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
int parse_opts(int argc, char **argv, load_opts_t *o)
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
