/* HOST:PORT splitting shared by tetherd's configuration and tether-bench. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tether/common.h"
#include "tether/hostport.h"

int tether_hostport_split(const char *s, char *host, size_t cap, uint16_t *port)
{
    const char *colon;
    size_t hlen;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return TETHER_EINVAL;
        hlen = (size_t)(rb - s - 1);
        s++;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return TETHER_EINVAL;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= cap)
        return TETHER_EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || colon[1] == '-' || colon[1] == '+' || p < 0 ||
        p > 65535)
        return TETHER_EINVAL;
    memcpy(host, s, hlen);
    host[hlen] = 0;
    *port = (uint16_t)p;
    return 0;
}
