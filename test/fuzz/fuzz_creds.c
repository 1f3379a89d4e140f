/* libFuzzer target for lib/state/creds.c: any credentials file is loaded
 * or refused with a message, never a crash or a leak; a loaded set answers
 * lookups (PSK, role, X.509, ACL) for names taken from the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tether/creds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("creds", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    tether_creds_t *c = NULL;
    char err[512];
    err[0] = 0;
    if (tether_creds_load(path, &c, err, sizeof err) != 0) {
        if (!err[0] || c)
            abort(); /* a refusal always says why, and returns nothing */
        return 0;
    }
    /* Names from the input's first bytes. */
    char name[TETHER_IDENTITY_MAX];
    size_t n = size < sizeof name - 1 ? size : sizeof name - 1;
    memcpy(name, data, n);
    name[n] = 0;
    const char *names[] = {name, "dev1", "app1", "", "dev"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        uint8_t key[64];
        size_t kl;
        tether_role_t role;
        if (tether_creds_psk(c, names[i], key, sizeof key, &kl, &role) == 0 && kl > sizeof key)
            abort();
        (void)tether_creds_role(c, names[i], &role);
        (void)tether_creds_x509(c, names[i], &role);
        for (uint8_t m = 0; m <= 8; m++)
            (void)tether_creds_allowed(c, names[i], names[(i + 1) % 5], m);
    }
    (void)tether_creds_count(c);
    tether_creds_free(c);
    return 0;
}
