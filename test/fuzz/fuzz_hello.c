/* libFuzzer target for lib/dtls/hello.c: any datagram is scanned without
 * reading past its end; what the scanner reports is consistent (no PSK
 * identities reported for a hello it refused). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "dtls/hello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tether_hello_t h;
    int rc = tether_hello_scan(data, size, &h);
    if (rc < 0 && (h.psk_identities || h.has_cookie || h.psk13_suite || h.fragment))
        abort();
    if (rc == 0 && h.fragment && h.psk_identities > 65535 / 7)
        abort(); /* more identities than a fragment can hold */
    return 0;
}
