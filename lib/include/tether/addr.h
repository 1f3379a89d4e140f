/* tether — peer addresses and links (how the node reaches a peer). */
#ifndef TETHER_ADDR_H
#define TETHER_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "tether/common.h"

/* An IPv4 or IPv6 socket address: what UDP peers have. Not a
 * sockaddr_storage (128 bytes): every session, link and pending request
 * holds addresses, and an idle tunnel is budgeted at 600 bytes (SPEC S9).
 * `ss.ss_family` reads the family as with sockaddr_storage; `len` is at
 * most sizeof(tether_sockaddr_t), and whoever fills one from the system
 * (recvmmsg, getsockname) passes that as the buffer size. */
typedef union {
    sa_family_t ss_family;
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} tether_sockaddr_t;

typedef struct {
    tether_sockaddr_t ss;
    socklen_t len;
} tether_addr_t;

typedef enum {
    TETHER_LINK_PLAIN = 1,    /* plain CoAP datagrams to `addr` from listener `iface` */
    TETHER_LINK_DTLS = 2,     /* records on DTLS session `id` */
    TETHER_LINK_INTERNAL = 3, /* an operator request (admin API) numbered `id` */
    TETHER_LINK_CLUSTER = 4,  /* a request another node relayed here: slot `id` (xrelay) */
    /* An HTTP-to-CoAP request (RFC 8075, admin port) numbered `id`: unlike
     * an operator request it is a client's, with the client's ACL, the
     * cache and Observe (a server-sent event stream) */
    TETHER_LINK_HTTP = 5,
} tether_link_kind_t;

/* Where a CoAP message goes. A DTLS link is the session id (stable across
 * NAT rebinding); its address is informational. */
typedef struct {
    uint8_t kind;  /* tether_link_kind_t */
    uint8_t iface; /* plain: index of the listener the peer talks to */
    uint64_t id;   /* DTLS: session id */
    tether_addr_t addr;
} tether_link_t;

/* Largest CoAP message tether sends in one datagram. */
#define TETHER_MSG_MAX 1400

/* One outgoing CoAP message and the link it goes on. */
typedef struct {
    tether_link_t link;
    uint16_t len;
    uint8_t data[TETHER_MSG_MAX];
} tether_out_t;

/* Formats "ip:port" into buf (at least 64 bytes). */
TETHER_API const char *tether_addr_str(const tether_addr_t *a, char *buf, size_t cap);
/* Same family, address and port. */
TETHER_API bool tether_addr_equal(const tether_addr_t *a, const tether_addr_t *b);
/* Compact byte key of an address (family, port, address): at most 19 bytes. */
TETHER_API size_t tether_addr_key(const tether_addr_t *a, uint8_t key[19]);
/* Compact key identifying a link (DTLS id or plain address): at most 20 bytes. */
TETHER_API size_t tether_link_key(const tether_link_t *l, uint8_t key[20]);
/* Same link: equal link keys. */
TETHER_API bool tether_link_equal(const tether_link_t *a, const tether_link_t *b);

#endif
