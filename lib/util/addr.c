/* Address and link keys and formatting. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "tether/addr.h"

size_t tether_addr_key(const tether_addr_t *a, uint8_t key[19])
{
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;
        key[0] = 6;
        memcpy(key + 1, &s->sin6_port, 2);
        memcpy(key + 3, &s->sin6_addr, 16);
        return 19;
    }
    const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
    key[0] = 4;
    memcpy(key + 1, &s->sin_port, 2);
    memcpy(key + 3, &s->sin_addr, 4);
    return 7;
}

bool tether_addr_equal(const tether_addr_t *a, const tether_addr_t *b)
{
    uint8_t ka[19], kb[19];
    size_t la = tether_addr_key(a, ka), lb = tether_addr_key(b, kb);
    return la == lb && memcmp(ka, kb, la) == 0;
}

size_t tether_link_key(const tether_link_t *l, uint8_t key[20])
{
    key[0] = l->kind;
    if (l->kind != TETHER_LINK_PLAIN) {
        memcpy(key + 1, &l->id, sizeof l->id);
        return 1 + sizeof l->id;
    }
    return 1 + tether_addr_key(&l->addr, key + 1);
}

bool tether_link_equal(const tether_link_t *a, const tether_link_t *b)
{
    uint8_t ka[20], kb[20];
    size_t la = tether_link_key(a, ka), lb = tether_link_key(b, kb);
    return la == lb && memcmp(ka, kb, la) == 0;
}

const char *tether_addr_str(const tether_addr_t *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        snprintf(buf, cap, "[%s]:%u", ip, ntohs(s->sin6_port));
    } else {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        snprintf(buf, cap, "%s:%u", ip, ntohs(s->sin_port));
    }
    return buf;
}
