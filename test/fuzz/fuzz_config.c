/* libFuzzer target for server/config (load.c over the key table keys.c):
 * any config file is loaded or refused with a one-line message naming the
 * file, never a crash, a leak or a field written past its end; a loaded
 * configuration yields library configurations (SPEC S10). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../server/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("config", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    static tetherd_config_t c;
    char *argv[] = {"tetherd", "--config", path, "--check-config", NULL};
    char err[512];
    err[0] = 0;
    int rc = tetherd_config_load(&c, 4, argv, err, sizeof err);
    if (rc < 0) {
        if (!err[0])
            abort(); /* a refusal always says why */
        return 0;
    }
    if (rc != 0 || !c.check_only || c.nlisten > TETHERD_MAX_LISTEN ||
        c.ncluster_nodes > sizeof c.cluster_nodes / sizeof c.cluster_nodes[0])
        abort();
    /* Every string field stays terminated inside its field. */
    for (size_t i = 0; i < tetherd_config_nkeys; i++) {
        const tetherd_key_t *k = &tetherd_config_keys[i];
        if (k->type == TETHERD_KEY_STRING || k->type == TETHERD_KEY_HOSTPORT ||
            k->type == TETHERD_KEY_SECRET || k->type == TETHERD_KEY_URL ||
            k->type == TETHERD_KEY_LOG_LEVEL)
            if (strnlen(tetherd_config_str(&c, k), k->size) >= k->size)
                abort();
    }
    tether_node_conf_t nc;
    tether_dtls_conf_t dc;
    tetherd_config_node_conf(&c, &nc);
    tetherd_config_dtls_conf(&c, &dc);
    return 0;
}
