/* tether-bench: load generator and device simulator for tether (SPEC S9,
 * S11). One process, one libuv loop, many simulated peers. Each subcommand
 * lives in its own file; this table is the only place that lists them. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} bench_cmd_t;

static const bench_cmd_t commands[] = {
    {"devices", "simulate N devices: DTLS PSK + CID tunnels, RD registration, CoAP resources",
     bench_devices_main},
    {"load", "drive CoAP requests through tether as DTLS PSK client sessions", bench_load_main},
    {"handshakes", "DTLS handshakes per second: full PSK, full ECDHE-ECDSA or resumed",
     bench_handshakes_main},
    {"relay-ceiling", "reference: raw UDP relay (no crypto, no CoAP) on its own core",
     bench_relay_ceiling_main},
    {"fanout-ceiling", "reference: raw UDP observe fan-out (no crypto, no CoAP) on its own core",
     bench_fanout_ceiling_main},
    {"suite", "the SPEC S9 table: tetherd beside the raw UDP ceiling and libcoap",
     bench_suite_main},
    {"idle", "server memory per idle DTLS tunnel (RSS delta / N)", bench_idle_main},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tether-bench COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'tether-bench COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return BENCH_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tether-bench: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return BENCH_EXIT_USAGE;
}
