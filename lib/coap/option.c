/* Option registry (RFC 7252 §5.4, §5.10 and later option RFCs), block-wise
 * values (RFC 7959 §2.2) and Observe ordering (RFC 7641 §3.4). */
#include <string.h>

#include "tether/coap.h"

/* Built-in options, sorted by number. Lengths per each option's RFC. */
static const tether_coap_optdef_t builtin[] = {
    {TETHER_COAP_OPT_IF_MATCH, "If-Match", TETHER_COAP_FMT_OPAQUE, true, 0, 8},
    {TETHER_COAP_OPT_URI_HOST, "Uri-Host", TETHER_COAP_FMT_STRING, false, 1, 255},
    {TETHER_COAP_OPT_ETAG, "ETag", TETHER_COAP_FMT_OPAQUE, true, 1, 8},
    {TETHER_COAP_OPT_IF_NONE_MATCH, "If-None-Match", TETHER_COAP_FMT_EMPTY, false, 0, 0},
    {TETHER_COAP_OPT_OBSERVE, "Observe", TETHER_COAP_FMT_UINT, false, 0, 3},
    {TETHER_COAP_OPT_URI_PORT, "Uri-Port", TETHER_COAP_FMT_UINT, false, 0, 2},
    {TETHER_COAP_OPT_LOCATION_PATH, "Location-Path", TETHER_COAP_FMT_STRING, true, 0, 255},
    {9, "OSCORE", TETHER_COAP_FMT_OPAQUE, false, 0, 255},
    {TETHER_COAP_OPT_URI_PATH, "Uri-Path", TETHER_COAP_FMT_STRING, true, 0, 255},
    {TETHER_COAP_OPT_CONTENT_FORMAT, "Content-Format", TETHER_COAP_FMT_UINT, false, 0, 2},
    {TETHER_COAP_OPT_MAX_AGE, "Max-Age", TETHER_COAP_FMT_UINT, false, 0, 4},
    {TETHER_COAP_OPT_URI_QUERY, "Uri-Query", TETHER_COAP_FMT_STRING, true, 0, 255},
    {16, "Hop-Limit", TETHER_COAP_FMT_UINT, false, 1, 1},
    {TETHER_COAP_OPT_ACCEPT, "Accept", TETHER_COAP_FMT_UINT, false, 0, 2},
    {TETHER_COAP_OPT_LOCATION_QUERY, "Location-Query", TETHER_COAP_FMT_STRING, true, 0, 255},
    {TETHER_COAP_OPT_BLOCK2, "Block2", TETHER_COAP_FMT_UINT, false, 0, 3},
    {TETHER_COAP_OPT_BLOCK1, "Block1", TETHER_COAP_FMT_UINT, false, 0, 3},
    {TETHER_COAP_OPT_SIZE2, "Size2", TETHER_COAP_FMT_UINT, false, 0, 4},
    {TETHER_COAP_OPT_PROXY_URI, "Proxy-Uri", TETHER_COAP_FMT_STRING, false, 1, 1034},
    {TETHER_COAP_OPT_PROXY_SCHEME, "Proxy-Scheme", TETHER_COAP_FMT_STRING, false, 1, 255},
    {TETHER_COAP_OPT_SIZE1, "Size1", TETHER_COAP_FMT_UINT, false, 0, 4},
    {TETHER_COAP_OPT_ECHO, "Echo", TETHER_COAP_FMT_OPAQUE, false, 1, 40},
    {TETHER_COAP_OPT_NO_RESPONSE, "No-Response", TETHER_COAP_FMT_UINT, false, 0, 1},
    {TETHER_COAP_OPT_REQUEST_TAG, "Request-Tag", TETHER_COAP_FMT_OPAQUE, true, 0, 8},
};

/* Builds the registry: built-ins plus the two configurable group-proxy
 * options, kept sorted so lookups are a binary search. */
int tether_coap_optreg_init(tether_coap_optreg_t *reg, uint16_t multicast_timeout,
                            uint16_t reply_from)
{
    const size_t nb = sizeof(builtin) / sizeof(builtin[0]);
    if (multicast_timeout == 0 || reply_from == 0 || multicast_timeout == reply_from)
        return TETHER_EINVAL;
    for (size_t i = 0; i < nb; i++)
        if (builtin[i].num == multicast_timeout || builtin[i].num == reply_from)
            return TETHER_EINVAL;

    memset(reg, 0, sizeof(*reg));
    tether_coap_optdef_t extra[2] = {
        {multicast_timeout, "Multicast-Timeout", TETHER_COAP_FMT_UINT, false, 0, 4},
        {reply_from, "Reply-From", TETHER_COAP_FMT_OPAQUE, false, 1, 1034},
    };
    for (size_t i = 0; i < nb; i++)
        reg->defs[reg->n++] = builtin[i];
    for (size_t k = 0; k < 2; k++)
        tether_coap_optreg_add(reg, &extra[k]); /* numbers checked above */
    reg->multicast_timeout = multicast_timeout;
    reg->reply_from = reply_from;
    return 0;
}

int tether_coap_optreg_add(tether_coap_optreg_t *reg, const tether_coap_optdef_t *def)
{
    if (!def->num || tether_coap_optreg_find(reg, def->num))
        return TETHER_EINVAL;
    if (reg->n >= TETHER_COAP_OPTREG_MAX)
        return TETHER_ENOSPC;
    size_t i = reg->n; /* kept sorted for the binary search */
    while (i > 0 && reg->defs[i - 1].num > def->num) {
        reg->defs[i] = reg->defs[i - 1];
        i--;
    }
    reg->defs[i] = *def;
    reg->n++;
    return 0;
}

const tether_coap_optdef_t *tether_coap_optreg_find(const tether_coap_optreg_t *reg,
                                                    uint16_t num)
{
    size_t lo = 0, hi = reg->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (reg->defs[mid].num == num)
            return &reg->defs[mid];
        if (reg->defs[mid].num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool tether_coap_opt_usable(const tether_coap_optreg_t *reg, const tether_coap_opt_t *opt)
{
    const tether_coap_optdef_t *d = tether_coap_optreg_find(reg, opt->num);
    return d && opt->len >= d->min_len && opt->len <= d->max_len;
}

/* Only critical options can fail a message; elective ones that are unknown,
 * out of range or repeated are ignored by whoever reads them. */
int tether_coap_check_opts(const tether_coap_optreg_t *reg, const tether_coap_msg_t *msg,
                           uint16_t *bad_opt)
{
    for (size_t i = 0; i < msg->nopts; i++) {
        const tether_coap_opt_t *o = &msg->opts[i];
        if (!tether_coap_opt_critical(o->num))
            continue;
        const tether_coap_optdef_t *d = tether_coap_optreg_find(reg, o->num);
        bool bad = !d || o->len < d->min_len || o->len > d->max_len ||
                   (!d->repeatable && i > 0 && msg->opts[i - 1].num == o->num);
        if (bad) {
            if (bad_opt)
                *bad_opt = o->num;
            return TETHER_EPROTO;
        }
    }
    return 0;
}

int tether_coap_block_decode(const uint8_t *val, size_t len, tether_coap_block_t *out)
{
    uint32_t v;
    if (len > 3 || tether_coap_uint_decode(val, len, &v) < 0)
        return TETHER_EPROTO;
    if ((v & 7) == 7)
        return TETHER_EPROTO;
    out->szx = (uint8_t)(v & 7);
    out->more = (v >> 3) & 1;
    out->num = v >> 4;
    return 0;
}

int tether_coap_block_encode(const tether_coap_block_t *b, uint8_t out[3], size_t *out_len)
{
    if (b->num >= (1u << 20) || b->szx > 6)
        return TETHER_EINVAL;
    uint8_t tmp[4];
    uint32_t v = b->num << 4 | (uint32_t)b->more << 3 | b->szx;
    size_t n = tether_coap_uint_encode(v, tmp);
    memcpy(out, tmp, n);
    *out_len = n;
    return 0;
}

uint8_t tether_coap_block_szx_for(size_t size)
{
    uint8_t szx = 0;
    while (szx < 6 && tether_coap_block_size((uint8_t)(szx + 1)) <= size)
        szx++;
    return szx;
}

/* RFC 7641 §3.4: 24-bit serial-number arithmetic, or 128 s elapsed. */
bool tether_coap_observe_newer(uint32_t v1, tether_time_t t1, uint32_t v2, tether_time_t t2)
{
    const uint32_t half = 1u << 23;
    v1 &= 0xffffff;
    v2 &= 0xffffff;
    return (v1 < v2 && v2 - v1 < half) || (v1 > v2 && v1 - v2 > half) || (t2 > t1 + 128000);
}
