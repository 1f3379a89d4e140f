/* tether — "HOST:PORT" and "[V6]:PORT" strings, as listeners and tools
 * take them (tetherd's config, tether-bench's --server). */
#ifndef TETHER_HOSTPORT_H
#define TETHER_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

#include "tether/common.h"

/* Splits `s` into host (without brackets, NUL-terminated, 1..cap-1 bytes)
 * and port (0..65535, decimal, nothing after it). The host is not
 * resolved or checked. TETHER_EINVAL when malformed. */
TETHER_API int tether_hostport_split(const char *s, char *host, size_t cap, uint16_t *port);

#endif
