/* tether-bench suite: the stages with one server under test at a time
 * (tetherd, the raw ceilings, libcoap), each filling its rows. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "suite_int.h"

/* ---- the stages ---------------------------------------------------------------------- */

char dur_s[16], half_s[16], warm_s[16];

static void set_cpu(double *slot, double cpu)
{
    *slot = cpu;
}

/* Appends "WHO: suite X" (the suite the command's first session
 * negotiated) to the row's note. */
static void note_cipher(row_t *r, const char *who, json_t *j)
{
    const char *c = json_string_value(json_object_get(j, "cipher"));
    size_t used = strlen(r->note);
    snprintf(r->note + used, sizeof r->note - used, "%s%s: suite %s", used ? "; " : "", who,
             c && *c ? c : "unknown");
}

void stage_tether_relay(suite_t *S)
{
    server_t td;
    if (tetherd_start(S, "tether.json", "tetherd-relay", &td) < 0)
        return;
    char server[32];
    snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
    bool registered;
    pid_t dev = devices_start(S, server, N_DEVICES, 1000, "devices", &registered);
    if (registered) {
        char target[32], conc[8];
        /* /count answers with Max-Age 0: every request misses the cache. */
        snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
        snprintf(conc, sizeof conc, "%d", CONC);
        say(S, "relayed requests through tetherd: closed loop, %d sessions, %d devices, %s s", CONC,
            N_DEVICES, dur_s);
        double cpu;
        json_t *j = run_bench(S, "load-tether", td.pid, &cpu, "load", "--server", server,
                              "--identity", "app1", "--psk-hex", APP_KEY_HEX, "--target", target,
                              "--concurrency", conc, "--duration", dur_s, "--warmup", warm_s,
                              "--cipher", CIPHER_PSK, "--json", NULL);
        double x = j ? jnum(j, "throughput_rps") : -1;
        note_cipher(&rows[R_MISS], "tether", j);
        if (x > 0 && jnum(j, "timeouts") + jnum(j, "classes.5xx") > 0.01 * jnum(j, "sent"))
            snprintf(rows[R_MISS].note, sizeof rows[R_MISS].note,
                     "%.0f timeouts and %.0f 5.xx answers in the run", jnum(j, "timeouts"),
                     jnum(j, "classes.5xx"));
        rows[R_MISS].tether = x;
        set_cpu(&rows[R_MISS].tether_cpu, cpu);
        json_decref(j);
        if (x > 0)
            S->lat_rate = x / 2;
        /* /static answers with Max-Age 3600: after one miss per device,
         * every request is answered from tetherd's cache. */
        snprintf(target, sizeof target, "dev[0-%d]/static", N_DEVICES - 1);
        say(S, "cache hits through tetherd: closed loop, %d sessions, %s, %s s", CONC, target,
            dur_s);
        j = run_bench(S, "load-tether-hit", td.pid, &cpu, "load", "--server", server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency", conc,
                      "--duration", dur_s, "--warmup", warm_s, "--cipher", CIPHER_PSK, "--json",
                      NULL);
        note_cipher(&rows[R_HIT], "tether", j);
        x = j ? jnum(j, "throughput_rps") : -1;
        if (x > 0 && jnum(j, "timeouts") + jnum(j, "classes.5xx") > 0.01 * jnum(j, "sent"))
            snprintf(rows[R_HIT].note, sizeof rows[R_HIT].note,
                     "%.0f timeouts and %.0f 5.xx answers in the run", jnum(j, "timeouts"),
                     jnum(j, "classes.5xx"));
        rows[R_HIT].tether = x;
        set_cpu(&rows[R_HIT].tether_cpu, cpu);
        json_decref(j);
    }
    stop_pid(&dev);
    say(S, "PSK handshakes against tetherd (32 in flight, %s s)", dur_s);
    double cpu;
    json_t *j = run_bench(S, "hs-psk-tether", td.pid, &cpu, "handshakes", "--server", server,
                          "--psk-master", MASTER, "--duration", dur_s, "--cipher", CIPHER_PSK,
                          "--json", NULL);
    rows[R_PSK].tether = j ? jnum(j, "rate_per_s") : -1;
    note_cipher(&rows[R_PSK], "tether", j);
    rows[R_PSK].tether_cpu = cpu;
    json_decref(j);
    say(S, "resumed handshakes against tetherd (%s s)", half_s);
    j = run_bench(S, "hs-resumed-tether", td.pid, &cpu, "handshakes", "--server", server,
                  "--psk-master", MASTER, "--mode", "resumed", "--duration", half_s, "--cipher",
                  CIPHER_PSK, "--json", NULL);
    if (j) {
        rows[R_RESUMED].tether = jnum(j, "rate_per_s");
        rows[R_RESUMED].tether_cpu = cpu;
        if (jnum(j, "handshakes") <= 0)
            snprintf(rows[R_RESUMED].note, sizeof rows[R_RESUMED].note, "tether: %s",
                     json_string_value(json_object_get(j, "detail")));
    }
    json_decref(j);
    stop_pid(&td.pid);
}

void stage_tether_ecdhe(suite_t *S, bool have_certs)
{
    row_t *r = &rows[R_ECDHE];
    if (!have_certs) {
        snprintf(r->note, sizeof r->note, "tether: not measured (no openssl to make certificates)");
        return;
    }
    if (!tetherd_accepts(S, "tether-cert.json")) {
        snprintf(r->note, sizeof r->note,
                 "tether: unsupported by server (this tetherd rejects dtls.cert_file/key_file/"
                 "ca_file: no server certificates yet)");
        r->tether = 0;
        return;
    }
    server_t td;
    if (tetherd_start(S, "tether-cert.json", "tetherd-ecdhe", &td) < 0)
        return;
    char server[32], ca[400], cert[400], key[400];
    snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
    snprintf(ca, sizeof ca, "%s/ca.pem", S->dir);
    snprintf(cert, sizeof cert, "%s/client.pem", S->dir);
    snprintf(key, sizeof key, "%s/client.key", S->dir);
    say(S, "ECDHE-ECDSA handshakes against tetherd (%s s)", dur_s);
    double cpu;
    json_t *j = run_bench(S, "hs-ecdhe-tether", td.pid, &cpu, "handshakes", "--server", server,
                          "--mode", "ecdhe", "--ca", ca, "--cert", cert, "--key", key, "--duration",
                          dur_s, "--cipher", CIPHER_ECDHE, "--json", NULL);
    note_cipher(r, "tether", j);
    if (j) {
        r->tether = jnum(j, "rate_per_s");
        r->tether_cpu = cpu;
        if (r->tether <= 0)
            snprintf(r->note, sizeof r->note, "tether: %s",
                     json_string_value(json_object_get(j, "detail")));
    }
    json_decref(j);
    stop_pid(&td.pid);
}

/* Latency at half the measured maximum (S9: proxy-added p99 <= 100 us) on a
 * fresh tetherd, so its histograms hold only this run: the row is tetherd's
 * own per-request figure (latency.relayed_p99_us: both crossings of each
 * relayed request, matched by the device-side token; see
 * server/latency.h), the end-to-end p99 seen by the load generator and the
 * raw relay's at the same rate go in the note. */
void stage_latency(suite_t *S)
{
    row_t *r = &rows[R_LAT];
    if (S->lat_rate <= 0)
        return;
    server_t td;
    if (tetherd_start(S, "tether.json", "tetherd-latency", &td) < 0)
        return;
    char server[32], rate[32], target[32], conc[8];
    snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
    bool registered;
    pid_t dev = devices_start(S, server, N_DEVICES, 1000, "latency-devices", &registered);
    if (registered) {
        snprintf(rate, sizeof rate, "%.0f", S->lat_rate);
        snprintf(target, sizeof target, "dev[0-%d]/count", N_DEVICES - 1);
        snprintf(conc, sizeof conc, "%d", CONC);
        say(S, "latency through a fresh tetherd at 50%% of its maximum (%s req/s, open loop)",
            rate);
        double cpu;
        json_t *j =
            run_bench(S, "latency-tether", td.pid, &cpu, "load", "--server", server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", target, "--concurrency", conc,
                      "--duration", dur_s, "--rate", rate, "--cipher", CIPHER_PSK, "--json", NULL);
        json_t *st = tetherd_stats(&td);
        S->lat_e2e = j ? jnum(j, "latency_us.p99") : -1;
        keep_hist(S, H_TETHER, j);
        double n = st ? jnum(st, "latency.relayed") : -1;
        if (n > 0) {
            r->tether = jnum(st, "latency.relayed_p99_us");
            r->tether_cpu = cpu;
            snprintf(
                r->note, sizeof r->note,
                "tetherd's own time per relayed request, both crossings (client's request "
                "in to the device's request out, device's answer in to the client's answer "
                "out; each from its receive batch's recvmmsg to its sendmmsg), matched by "
                "the device-side token: p50 %.0f, p99.9 %.0f, max %.0f us over %.0f of "
                "%.0f answered requests (%.0f unmatched); per receive batch it was p50 "
                "%.0f, p99 %.0f us; time in the socket buffer before the read is not in it. End to "
                "end (client -> proxy -> device -> back, load and devices sharing the "
                "other core) p99 was %.0f us",
                jnum(st, "latency.relayed_p50_us"), jnum(st, "latency.relayed_p999_us"),
                jnum(st, "latency.relayed_max_us"), n, j ? jnum(j, "responses") : -1,
                jnum(st, "latency.relayed_unmatched"), jnum(st, "latency.service_p50_us"),
                jnum(st, "latency.service_p99_us"), S->lat_e2e);
        } else {
            snprintf(r->note, sizeof r->note,
                     "not measured: tetherd timed no relayed request (latency.relayed = %.0f)", n);
        }
        json_decref(st);
        json_decref(j);
    }
    stop_pid(&dev);
    stop_pid(&td.pid);
}

/* Observe fan-out (S4, S9): 500 client sessions each observe one of 4
 * simulated devices' /temp, which notify every 2 ms; the row counts the
 * notifications the clients receive per second. */
void stage_observe(suite_t *S)
{
    row_t *r = &rows[R_OBS];
    server_t td;
    if (tetherd_start(S, "tether.json", "tetherd-observe", &td) < 0)
        return;
    char server[32];
    snprintf(server, sizeof server, "127.0.0.1:%s", td.port);
    bool registered;
    pid_t dev = devices_start(S, server, 4, 2, "observe-devices", &registered);
    if (registered) {
        say(S, "observe fan-out: 500 observers of 4 devices notifying every 2 ms, %s s", dur_s);
        double cpu;
        json_t *j =
            run_bench(S, "observe-tether", td.pid, &cpu, "load", "--server", server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", "dev[0-3]/temp", "--observe",
                      "--concurrency", "500", "--duration", dur_s, "--json", NULL);
        if (j) {
            r->tether = jnum(j, "notifications_per_s");
            set_cpu(&r->tether_cpu, cpu);
            snprintf(r->note, sizeof r->note,
                     "500 DTLS client sessions observing dev[0-3]/temp (4 device-side "
                     "observations, each notifying every 2 ms, so at most 250k/s can be "
                     "offered); the load process decrypts every notification on the other core");
        }
        json_decref(j);
    }
    stop_pid(&dev);
    stop_pid(&td.pid);
}

/* Bytes per idle tunnel on a fresh tetherd. */
static double idle_on(suite_t *S, const char *server_conf, uint32_t count, server_t *given,
                      bool reg, double *connect_s)
{
    server_t td = {0};
    server_t *sv = given;
    if (!sv) {
        if (tetherd_start(S, server_conf, "tetherd-idle", &td) < 0)
            return -1;
        sv = &td;
    }
    char server[32], n[16], pid[16], name[40];
    snprintf(server, sizeof server, "127.0.0.1:%s", sv->port);
    snprintf(n, sizeof n, "%u", count);
    snprintf(pid, sizeof pid, "%d", (int)sv->pid);
    snprintf(name, sizeof name, "idle-%s-%u%s", given ? "peer" : "tether", count,
             reg ? "-registered" : "");
    /* libcoap has one key for every identity; tetherd takes the fleet. */
    json_t *j = given ? run_bench(S, name, -1, NULL, "idle", "--server", server, "--count", n,
                                  "--pid", pid, "--identity", "app1", "--psk-hex", APP_KEY_HEX,
                                  "--connect-timeout", "120", "--json", NULL)
                      : run_bench(S, name, -1, NULL, "idle", "--server", server, "--count", n,
                                  "--pid", pid, "--psk-master", MASTER, "--connect-timeout", "1200",
                                  "--json", reg ? "--register" : NULL, NULL);
    double b = j ? jnum(j, "bytes_per_tunnel") : -1;
    if (connect_s)
        *connect_s = j ? jnum(j, "connect_s") : -1;
    json_decref(j);
    if (!given)
        stop_pid(&td.pid);
    return b;
}

/* Idle tunnels, unregistered (`idle`: handshake only, the DTLS session and
 * the demux tables) and registered (S3: the registry entry too), each on a
 * fresh tetherd, at the small and the large count. */
void stage_idle(suite_t *S)
{
    uint32_t small = S->quick ? 2000 : 10000, big = S->quick ? 10000 : 100000;
    static char labels[6][64];
    /* `idle` needs no socket per tunnel (many loopback source addresses
     * over a few sockets), so the counts are the ones S9 names; the
     * million is left out of a --quick run. */
    const struct {
        int row;
        uint32_t n;
        bool reg;
    } runs[] = {{R_IDLE10K, small, false},    {R_IDLE100K, big, false},
                {R_IDLE10K_REG, small, true}, {R_IDLE100K_REG, big, true},
                {R_IDLE1M, 1000000, false},   {R_IDLE1M_REG, 1000000, true}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        row_t *r = &rows[runs[k].row];
        if (S->quick && runs[k].n == 1000000) {
            snprintf(r->note, sizeof r->note, "not run by --quick");
            continue;
        }
        snprintf(labels[k], sizeof labels[k], "idle tunnel, %uk, %s", runs[k].n / 1000,
                 runs[k].reg ? "registered" : "unregistered");
        r->workload = labels[k];
        say(S, "idle tunnels on a fresh tetherd: %u, %s", runs[k].n,
            runs[k].reg ? "each device registered" : "handshake only");
        double up_s = -1;
        r->tether = idle_on(S, "tether.json", runs[k].n, NULL, runs[k].reg, &up_s);
        size_t used = strlen(r->note);
        if (runs[k].reg)
            snprintf(r->note + used, sizeof r->note - used,
                     "%s%u devices handshaken and registered (POST /rd, lifetime 3600 s, "
                     "link-format payload of %zu bytes) in %.1f s; the unregistered figure of the "
                     "same count is the row above",
                     used ? "; " : "", runs[k].n, sizeof BENCH_DEVICE_LINKS - 1, up_s);
        else
            snprintf(r->note + used, sizeof r->note - used, "%s%u tunnels up in %.1f s",
                     used ? "; " : "", runs[k].n, up_s);
    }
}

/* The observe row's reference: tetherd spends most of its CPU there in
 * the kernel's loopback UDP send path (perf: ~90%), so the raw fan-out of
 * the same datagrams to the same 500 sockets on the same core is what
 * bounds it, far below S9's 1M/s per core on this kernel. */
static void stage_ceiling_fanout(suite_t *S, const char *cpu)
{
    row_t *r = &rows[R_OBS];
    say(S, "raw UDP observe fan-out ceiling: 4 devices, 500 observers, %s s", dur_s);
    json_t *j =
        run_bench(S, "ceiling-fanout", -1, NULL, "fanout-ceiling", "--devices", "4", "--observers",
                  "500", "--relay-cpu", cpu, "--duration", dur_s, "--json", NULL);
    if (j) {
        r->ceiling = jnum(j, "datagrams_per_s");
        r->ceiling_cpu = jnum(j, "relay_cpu");
        size_t used = strlen(r->note);
        double pc = r->ceiling_cpu > 0.05 ? r->ceiling / r->ceiling_cpu : -1;
        int n =
            snprintf(r->note + used, sizeof r->note - used,
                     "%sceiling: fanout-ceiling, the same fan-out as raw UDP on the server "
                     "core (4 device sockets; each notification read goes on to its 125 "
                     "observers' sockets, %.0f -> %.0f bytes as tether's records, a hash lookup "
                     "per destination, sendmmsg per read; the devices paced so the server "
                     "stays busy): the kernel's loopback send path, where tetherd spends most "
                     "of its CPU here",
                     used ? "; " : "", jnum(j, "in_size"), jnum(j, "size"));
        used += n > 0 ? (size_t)n : 0;
        if (pc > 0 && pc < 1e6 && used < sizeof r->note)
            snprintf(r->note + used, sizeof r->note - used,
                     "; raw, one core delivers %.0f per busy second, below S9's 1M/s/core", pc);
    }
    json_decref(j);
}

void stage_ceiling(suite_t *S)
{
    char conc[8], cpu[8];
    snprintf(conc, sizeof conc, "%d", CONC);
    snprintf(cpu, sizeof cpu, "%d", S->server_cpu);
    say(S, "raw UDP relay ceiling: closed loop, %d clients, %s s", CONC, dur_s);
    json_t *j = run_bench(S, "ceiling", -1, NULL, "relay-ceiling", "--concurrency", conc,
                          "--relay-cpu", cpu, "--duration", dur_s, "--json", NULL);
    if (j) {
        rows[R_MISS].ceiling = jnum(j, "throughput_rps");
        rows[R_MISS].ceiling_cpu = jnum(j, "relay_cpu");
    }
    json_decref(j);
    say(S, "raw UDP ceiling of an answer from memory (relay-ceiling --answer), %s s", dur_s);
    j = run_bench(S, "ceiling-answer", -1, NULL, "relay-ceiling", "--concurrency", conc,
                  "--relay-cpu", cpu, "--duration", dur_s, "--answer", "--json", NULL);
    if (j) {
        rows[R_HIT].ceiling = jnum(j, "throughput_rps");
        rows[R_HIT].ceiling_cpu = jnum(j, "relay_cpu");
    }
    json_decref(j);
    stage_ceiling_fanout(S, cpu);
    if (rows[R_MISS].tether > 0) {
        char rate[32];
        snprintf(rate, sizeof rate, "%.0f", rows[R_MISS].tether / 2);
        say(S, "raw UDP relay latency at tether's 50%% rate (%s req/s)", rate);
        j = run_bench(S, "ceiling-latency", -1, NULL, "relay-ceiling", "--concurrency", conc,
                      "--relay-cpu", cpu, "--duration", dur_s, "--rate", rate, "--json", NULL);
        if (j) {
            rows[R_LAT].ceiling = jnum(j, "latency_us.p99");
            rows[R_LAT].ceiling_cpu = jnum(j, "relay_cpu");
            keep_hist(S, H_CEILING, j);
        }
        json_decref(j);
    }
}

void stage_peer(suite_t *S, bool have_certs)
{
    if (access(peer_bin, X_OK) != 0) {
        snprintf(rows[R_MISS].peer_note, sizeof rows[R_MISS].peer_note,
                 "libcoap peer not measured: %s not installed (Debian libcoap3-bin)", peer_bin);
        return;
    }
    char conc[8];
    snprintf(conc, sizeof conc, "%d", CONC);
    peer_t p;
    double cpu;
    json_t *j;
    if (peer_start(S, have_certs, "relay", &p) == 0) {
        char up_suite[64];
        peer_upstream_suite(S, &p, up_suite, sizeof up_suite);
        say(S, "libcoap proxy: closed loop, %d sessions, %s s after %s s of warm-up (Proxy-Uri %s)",
            CONC, dur_s, warm_s, p.uri);
        j = run_bench(S, "load-peer", p.proxy, &cpu, "load", "--server", p.server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", "libcoap-device/time",
                      "--proxy-uri", p.uri, "--concurrency", conc, "--duration", dur_s, "--warmup",
                      warm_s, "--cipher", CIPHER_PSK, "--json", NULL);
        double x = j ? jnum(j, "throughput_rps") : -1;
        const char *c = json_string_value(json_object_get(j, "cipher"));
        snprintf(rows[R_MISS].peer_note, sizeof rows[R_MISS].peer_note,
                 "libcoap 4.3.1 coap-server-openssl as a forward proxy (Proxy-Uri; it cannot be "
                 "a reverse proxy: a request naming the device by Uri-Host is answered from the "
                 "proxy's own resources), a fresh process pair per row, %s s of unmeasured "
                 "traffic first; client suite %s, upstream %s (libcoap chooses its own list)",
                 warm_s, c && *c ? c : "unknown", up_suite[0] ? up_suite : "unknown");
        if (j && jnum(j, "classes.2xx") < 0.99 * jnum(j, "responses")) {
            size_t used = strlen(rows[R_MISS].peer_note);
            snprintf(rows[R_MISS].peer_note + used, sizeof rows[R_MISS].peer_note - used,
                     "; only %.0f of %.0f answers were 2.xx", jnum(j, "classes.2xx"),
                     jnum(j, "responses"));
        }
        rows[R_MISS].peer = x;
        rows[R_MISS].peer_cpu = cpu;
        S->peer_rate = x;
        json_decref(j);
        peer_stop(&p);
    }
    if (S->peer_rate > 0 && peer_start(S, have_certs, "latency", &p) == 0) {
        char rate[32];
        snprintf(rate, sizeof rate, "%.0f", S->peer_rate / 2);
        say(S, "libcoap proxy latency at 50%% of its maximum (%s req/s)", rate);
        j = run_bench(S, "latency-peer", p.proxy, &cpu, "load", "--server", p.server, "--identity",
                      "app1", "--psk-hex", APP_KEY_HEX, "--target", "libcoap-device/time",
                      "--proxy-uri", p.uri, "--concurrency", conc, "--duration", dur_s, "--rate",
                      rate, "--warmup", warm_s, "--cipher", CIPHER_PSK, "--json", NULL);
        rows[R_LAT].peer = j ? jnum(j, "latency_us.p99") : -1;
        rows[R_LAT].peer_cpu = cpu;
        keep_hist(S, H_PEER, j);
        json_decref(j);
        peer_stop(&p);
    }
    if (peer_start(S, have_certs, "psk", &p) == 0) {
        say(S, "PSK handshakes against libcoap (%s s)", dur_s);
        j = run_bench(S, "hs-psk-peer", p.proxy, &cpu, "handshakes", "--server", p.server,
                      "--identity", "app1", "--psk-hex", APP_KEY_HEX, "--duration", dur_s,
                      "--cipher", CIPHER_PSK, "--json", NULL);
        rows[R_PSK].peer = j ? jnum(j, "rate_per_s") : -1;
        rows[R_PSK].peer_cpu = cpu;
        note_cipher(&rows[R_PSK], "libcoap", j);
        json_decref(j);
        peer_stop(&p);
    }
    if (have_certs && peer_start(S, have_certs, "ecdhe", &p) == 0) {
        say(S, "ECDHE-ECDSA handshakes against libcoap (%s s)", dur_s);
        char ca[400], ccert[400], ckey[400];
        snprintf(ca, sizeof ca, "%s/ca.pem", S->dir);
        snprintf(ccert, sizeof ccert, "%s/client.pem", S->dir);
        snprintf(ckey, sizeof ckey, "%s/client.key", S->dir);
        j = run_bench(S, "hs-ecdhe-peer", p.proxy, &cpu, "handshakes", "--server", p.server,
                      "--mode", "ecdhe", "--ca", ca, "--cert", ccert, "--key", ckey, "--duration",
                      dur_s, "--cipher", CIPHER_ECDHE, "--json", NULL);
        rows[R_ECDHE].peer = j ? jnum(j, "rate_per_s") : -1;
        rows[R_ECDHE].peer_cpu = cpu;
        note_cipher(&rows[R_ECDHE], "libcoap", j);
        snprintf(rows[R_ECDHE].peer_note, sizeof rows[R_ECDHE].peer_note,
                 "libcoap's low figure checked by hand (strace, perf): libcoap 4.3.1 opens and "
                 "decodes the server certificate, key and CA file again for every new DTLS "
                 "session (one open of server.pem per handshake), and OpenSSL 3's decoders and "
                 "provider lookups, not P-256 (EC point multiplication ~2%% of its CPU), take "
                 "its time");
        json_decref(j);
        peer_stop(&p);
    }
    if (peer_start(S, have_certs, "resumed", &p) == 0) {
        say(S, "resumed handshakes against libcoap (%s s)", half_s);
        j = run_bench(S, "hs-resumed-peer", p.proxy, &cpu, "handshakes", "--server", p.server,
                      "--identity", "app1", "--psk-hex", APP_KEY_HEX, "--mode", "resumed",
                      "--duration", half_s, "--cipher", CIPHER_PSK, "--json", NULL);
        rows[R_RESUMED].peer = j ? jnum(j, "rate_per_s") : -1;
        rows[R_RESUMED].peer_cpu = cpu;
        json_decref(j);
        peer_stop(&p);
    }
    uint32_t n = S->quick ? 2000 : 10000;
    if (peer_start(S, have_certs, "idle", &p) == 0) {
        say(S, "idle tunnels on libcoap: %u", n);
        server_t sv = {.pid = p.proxy};
        snprintf(sv.port, sizeof sv.port, "%d", p.px + 1);
        rows[R_IDLE10K].peer = idle_on(S, NULL, n, &sv, false, NULL);
        peer_stop(&p);
    }
}
