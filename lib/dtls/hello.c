/* ClientHello scanner (see hello.h). Every length is checked against the
 * end of the handshake message, which is checked against the record and
 * the datagram, so a hostile hello can only be refused. */
#include <string.h>

#include "dtls/hello.h"
#include "tether/common.h"

#define CT_HANDSHAKE 22
#define HS_CLIENT_HELLO 1
#define DTLS12_HDR 13
#define HS_HDR 12
#define EXT_PSK 41
#define EXT_COOKIE 44

typedef struct {
    const uint8_t *p, *end;
} cur_t;

static bool take(cur_t *c, size_t n, const uint8_t **out)
{
    if ((size_t)(c->end - c->p) < n)
        return false;
    if (out)
        *out = c->p;
    c->p += n;
    return true;
}

static bool u8(cur_t *c, size_t *v)
{
    const uint8_t *b;
    if (!take(c, 1, &b))
        return false;
    *v = b[0];
    return true;
}

static bool u16(cur_t *c, size_t *v)
{
    const uint8_t *b;
    if (!take(c, 2, &b))
        return false;
    *v = (size_t)b[0] << 8 | b[1];
    return true;
}

static size_t u24(const uint8_t *b)
{
    return (size_t)b[0] << 16 | (size_t)b[1] << 8 | b[2];
}

/* A sub-cursor over the next `n` bytes. */
static bool sub(cur_t *c, size_t n, cur_t *s)
{
    const uint8_t *b;
    if (!take(c, n, &b))
        return false;
    s->p = b;
    s->end = b + n;
    return true;
}

/* Adds the identities offered in a pre_shared_key extension body to *n. */
static bool psk_count(cur_t e, unsigned *n)
{
    size_t len, il;
    cur_t ids;
    if (!u16(&e, &len) || !sub(&e, len, &ids))
        return false;
    while (ids.p < ids.end) {
        if (!u16(&ids, &il) || il == 0 || !take(&ids, il + 4, NULL))
            return false;
        (*n)++;
    }
    return true;
}

int tether_hello_scan(const uint8_t *buf, size_t len, tether_hello_t *out)
{
    memset(out, 0, sizeof *out);
    if (len < DTLS12_HDR + HS_HDR || buf[0] != CT_HANDSHAKE || buf[DTLS12_HDR] != HS_CLIENT_HELLO)
        return TETHER_EPROTO;
    size_t rlen = (size_t)buf[11] << 8 | buf[12];
    const uint8_t *hs = buf + DTLS12_HDR;
    size_t mlen = u24(hs + 1), foff = u24(hs + 6), flen = u24(hs + 9);
    if (rlen > len - DTLS12_HDR || HS_HDR + flen > rlen || foff != 0 || flen > mlen)
        return TETHER_EPROTO; /* a later fragment cannot start a handshake */
    /* The first fragment of a larger hello (RFC 9147 §5.5: after a
     * HelloRetryRequest a hello with key shares may not fit a datagram)
     * is scanned as far as it goes; its cookie must be in it. */
    bool whole = flen == mlen;
    tether_hello_t h = {.fragment = !whole};
    cur_t c = {hs + HS_HDR, hs + HS_HDR + flen};
    size_t n;
    const uint8_t *suites;
    size_t nsuites;
    if (!take(&c, 2 + 32, NULL) || !u8(&c, &n) || !take(&c, n, NULL) || /* version, random, sid */
        !u8(&c, &n) || !take(&c, n, NULL))                              /* cookie */
        return TETHER_EPROTO;
    h.has_cookie = n > 0;
    if (!u16(&c, &nsuites) || (nsuites & 1) || !take(&c, nsuites, &suites))
        return whole ? TETHER_EPROTO : (*out = h, 0);
    bool ccm8 = false;
    for (size_t i = 0; i < nsuites; i += 2) {
        if (suites[i] == 0x13 && suites[i + 1] == 0x01) {
            h.psk13_suite = "TLS13-AES128-GCM-SHA256";
            break;
        }
        ccm8 |= suites[i] == 0x13 && suites[i + 1] == 0x05;
    }
    if (!h.psk13_suite && ccm8)
        h.psk13_suite = "TLS13-AES128-CCM-8-SHA256";
    if (!u8(&c, &n) || !take(&c, n, NULL)) /* compression methods */
        return whole ? TETHER_EPROTO : (*out = h, 0);
    if (c.p < c.end) { /* extensions are optional in a DTLS 1.2 hello */
        cur_t exts;
        if (!u16(&c, &n))
            return whole ? TETHER_EPROTO : (*out = h, 0);
        if (!sub(&c, n, &exts)) {
            if (whole)
                return TETHER_EPROTO;
            exts = c; /* what this fragment holds of them */
        }
        while (exts.p < exts.end) {
            size_t type, elen;
            cur_t e;
            if (!u16(&exts, &type) || !u16(&exts, &elen) || !sub(&exts, elen, &e)) {
                if (whole)
                    return TETHER_EPROTO;
                break;
            }
            if (type == EXT_COOKIE)
                h.has_cookie = true;
            else if (type == EXT_PSK && !psk_count(e, &h.psk_identities))
                return TETHER_EPROTO;
        }
    }
    *out = h;
    return 0;
}
