/* CoAP message parse / serialise (RFC 7252 §3) and option array helpers. */
#include <stdio.h>
#include <string.h>

#include "tether/coap.h"

const char *tether_coap_perr_str(tether_coap_perr_t e)
{
    switch (e) {
    case TETHER_COAP_PERR_NONE: return "ok";
    case TETHER_COAP_PERR_TRUNCATED: return "truncated message";
    case TETHER_COAP_PERR_VERSION: return "unknown version";
    case TETHER_COAP_PERR_TKL: return "token length over 8";
    case TETHER_COAP_PERR_CODE_CLASS: return "reserved code class";
    case TETHER_COAP_PERR_EMPTY_NOT_EMPTY: return "empty message with content";
    case TETHER_COAP_PERR_OPT_DELTA: return "reserved option delta 15";
    case TETHER_COAP_PERR_OPT_LENGTH: return "reserved option length 15";
    case TETHER_COAP_PERR_OPT_NUMBER: return "option number over 65535";
    case TETHER_COAP_PERR_PAYLOAD_MARKER: return "payload marker with empty payload";
    case TETHER_COAP_PERR_TOO_MANY_OPTS: return "too many options";
    case TETHER_COAP_PERR_BAD_OPTION: return "unrecognised or malformed critical option";
    }
    return "unknown";
}

/* Reads an extended delta/length field (nibble 13 or 14) into *out:
 * 0, or TETHER_EPROTO when the bytes run out or the nibble is 15. */
static int read_ext(uint8_t nib, const uint8_t *buf, size_t len, size_t *pos, uint32_t *out)
{
    if (nib < 13) {
        *out = nib;
        return 0;
    }
    if (nib == 13) {
        if (*pos + 1 > len)
            return TETHER_EPROTO;
        *out = 13u + buf[(*pos)++];
        return 0;
    }
    if (nib == 14) {
        if (*pos + 2 > len)
            return TETHER_EPROTO;
        *out = ((uint32_t)buf[*pos] << 8 | buf[*pos + 1]) + 269u;
        *pos += 2;
        return 0;
    }
    return TETHER_EPROTO;
}

/* Parses header, token, options and payload. Every reference stays inside
 * buf[len]; the message is valid only while buf is. */
int tether_coap_parse(tether_coap_msg_t *msg, const uint8_t *buf, size_t len,
                      tether_coap_perr_t *perr)
{
    tether_coap_perr_t e = TETHER_COAP_PERR_NONE;
    size_t pos;
    unsigned prev = 0;

    memset(msg, 0, offsetof(tether_coap_msg_t, opts));
    msg->payload = NULL;
    msg->payload_len = 0;
    if (len < TETHER_COAP_HDR_SIZE) {
        e = TETHER_COAP_PERR_TRUNCATED;
        goto fail;
    }
    msg->type = (buf[0] >> 4) & 3;
    msg->tkl = buf[0] & 0x0f;
    msg->code = buf[1];
    msg->mid = (uint16_t)(buf[2] << 8 | buf[3]);
    if ((buf[0] >> 6) != TETHER_COAP_VERSION) {
        e = TETHER_COAP_PERR_VERSION;
        goto fail;
    }
    if (msg->tkl > TETHER_COAP_MAX_TOKEN) {
        e = TETHER_COAP_PERR_TKL;
        goto fail;
    }
    if (msg->code == TETHER_COAP_EMPTY) {
        if (len != TETHER_COAP_HDR_SIZE || msg->tkl != 0)
            e = TETHER_COAP_PERR_EMPTY_NOT_EMPTY;
        goto done;
    }
    switch (TETHER_COAP_CLASS(msg->code)) {
    case 1:
    case 6:
    case 7: e = TETHER_COAP_PERR_CODE_CLASS; goto fail;
    }
    if (len < TETHER_COAP_HDR_SIZE + (size_t)msg->tkl) {
        e = TETHER_COAP_PERR_TRUNCATED;
        msg->tkl = 0;
        goto fail;
    }
    memcpy(msg->token, buf + TETHER_COAP_HDR_SIZE, msg->tkl);
    pos = TETHER_COAP_HDR_SIZE + msg->tkl;

    while (pos < len) {
        uint8_t b = buf[pos++];
        if (b == 0xff) {
            if (pos == len) {
                e = TETHER_COAP_PERR_PAYLOAD_MARKER;
                goto fail;
            }
            msg->payload = buf + pos;
            msg->payload_len = len - pos;
            break;
        }
        uint8_t dn = b >> 4, ln = b & 0x0f;
        if (dn == 15) {
            e = TETHER_COAP_PERR_OPT_DELTA;
            goto fail;
        }
        if (ln == 15) {
            e = TETHER_COAP_PERR_OPT_LENGTH;
            goto fail;
        }
        uint32_t delta, olen;
        if (read_ext(dn, buf, len, &pos, &delta) < 0 || read_ext(ln, buf, len, &pos, &olen) < 0 ||
            pos + (size_t)olen > len) {
            e = TETHER_COAP_PERR_TRUNCATED;
            goto fail;
        }
        if (prev + (unsigned long)delta > 65535) {
            e = TETHER_COAP_PERR_OPT_NUMBER;
            goto fail;
        }
        if (olen > 65535) {
            e = TETHER_COAP_PERR_OPT_LENGTH;
            goto fail;
        }
        if (msg->nopts == TETHER_COAP_MAX_OPTS) {
            e = TETHER_COAP_PERR_TOO_MANY_OPTS;
            goto fail;
        }
        prev += (unsigned)delta;
        tether_coap_opt_t *o = &msg->opts[msg->nopts++];
        o->num = (uint16_t)prev;
        o->len = (uint16_t)olen;
        o->val = buf + pos;
        pos += (size_t)olen;
    }
done:
    if (e == TETHER_COAP_PERR_NONE) {
        if (perr)
            *perr = e;
        return 0;
    }
fail:
    if (perr)
        *perr = e;
    return TETHER_EPROTO;
}

/* Size of the header nibble extension for a delta or length value. */
static size_t ext_size(unsigned v) { return v < 13 ? 0 : v < 269 ? 1 : 2; }

size_t tether_coap_encoded_size(const tether_coap_msg_t *msg)
{
    size_t n = TETHER_COAP_HDR_SIZE + msg->tkl;
    unsigned prev = 0;
    for (size_t i = 0; i < msg->nopts; i++) {
        unsigned d = msg->opts[i].num - prev;
        n += 1 + ext_size(d) + ext_size(msg->opts[i].len) + msg->opts[i].len;
        prev = msg->opts[i].num;
    }
    if (msg->payload_len)
        n += 1 + msg->payload_len;
    return n;
}

/* Writes a nibble's extension bytes and returns the nibble value. */
static uint8_t put_ext(unsigned v, uint8_t *p, size_t *pos)
{
    if (v < 13)
        return (uint8_t)v;
    if (v < 269) {
        p[(*pos)++] = (uint8_t)(v - 13);
        return 13;
    }
    v -= 269;
    p[(*pos)++] = (uint8_t)(v >> 8);
    p[(*pos)++] = (uint8_t)v;
    return 14;
}

/* Serialises a message whose options are sorted by number. */
int tether_coap_encode(const tether_coap_msg_t *msg, uint8_t *buf, size_t cap, size_t *out_len)
{
    if (msg->tkl > TETHER_COAP_MAX_TOKEN || msg->type > 3 || msg->nopts > TETHER_COAP_MAX_OPTS)
        return TETHER_EINVAL;
    for (size_t i = 1; i < msg->nopts; i++)
        if (msg->opts[i].num < msg->opts[i - 1].num)
            return TETHER_EINVAL;
    size_t need = tether_coap_encoded_size(msg);
    if (need > cap)
        return TETHER_ENOSPC;

    buf[0] = (uint8_t)(TETHER_COAP_VERSION << 6 | msg->type << 4 | msg->tkl);
    buf[1] = msg->code;
    buf[2] = (uint8_t)(msg->mid >> 8);
    buf[3] = (uint8_t)msg->mid;
    size_t pos = TETHER_COAP_HDR_SIZE;
    memcpy(buf + pos, msg->token, msg->tkl);
    pos += msg->tkl;
    unsigned prev = 0;
    for (size_t i = 0; i < msg->nopts; i++) {
        const tether_coap_opt_t *o = &msg->opts[i];
        size_t hdr = pos++;
        uint8_t dn = put_ext(o->num - prev, buf, &pos);
        uint8_t ln = put_ext(o->len, buf, &pos);
        buf[hdr] = (uint8_t)(dn << 4 | ln);
        if (o->len)
            memcpy(buf + pos, o->val, o->len);
        pos += o->len;
        prev = o->num;
    }
    if (msg->payload_len) {
        buf[pos++] = 0xff;
        memcpy(buf + pos, msg->payload, msg->payload_len);
        pos += msg->payload_len;
    }
    *out_len = pos;
    return 0;
}

/* RFC 7252 §4.2/4.3 (rejecting), §5.4.1 (critical options): a CON request
 * with a bad critical option gets 4.02; other format errors in CON/NON get
 * RST; ACK and RST are never answered; unknown versions are ignored. */
tether_coap_reject_t tether_coap_reject_action(const tether_coap_msg_t *msg,
                                               tether_coap_perr_t perr)
{
    switch (perr) {
    case TETHER_COAP_PERR_NONE:
    case TETHER_COAP_PERR_VERSION: return TETHER_COAP_REJECT_DROP;
    default: break;
    }
    /* Truncation with code 0 only happens under 4 bytes: no header to answer. */
    if (perr == TETHER_COAP_PERR_TRUNCATED && msg->code == 0)
        return TETHER_COAP_REJECT_DROP;
    if (msg->type == TETHER_COAP_ACK || msg->type == TETHER_COAP_RST)
        return TETHER_COAP_REJECT_DROP;
    bool request = tether_coap_is_request(msg->code);
    if (perr == TETHER_COAP_PERR_BAD_OPTION && request)
        return TETHER_COAP_REJECT_BAD_OPTION;
    if (perr == TETHER_COAP_PERR_TOO_MANY_OPTS && request)
        return TETHER_COAP_REJECT_BAD_REQUEST;
    return TETHER_COAP_REJECT_RST;
}

void tether_coap_msg_init(tether_coap_msg_t *msg, uint8_t type, uint8_t code, uint16_t mid)
{
    msg->type = type;
    msg->code = code;
    msg->mid = mid;
    msg->tkl = 0;
    msg->nopts = 0;
    msg->payload = NULL;
    msg->payload_len = 0;
}

int tether_coap_msg_set_token(tether_coap_msg_t *msg, const uint8_t *tok, size_t len)
{
    if (len > TETHER_COAP_MAX_TOKEN)
        return TETHER_EINVAL;
    if (len)
        memcpy(msg->token, tok, len);
    msg->tkl = (uint8_t)len;
    return 0;
}

/* Insertion after the last option with a number <= num keeps the array
 * sorted and repeated options in the order they were added. */
int tether_coap_msg_add_opt(tether_coap_msg_t *msg, uint16_t num, const void *val, size_t len)
{
    if (len > 65535)
        return TETHER_EINVAL;
    if (msg->nopts >= TETHER_COAP_MAX_OPTS)
        return TETHER_ENOSPC;
    size_t i = msg->nopts;
    while (i > 0 && msg->opts[i - 1].num > num)
        i--;
    memmove(&msg->opts[i + 1], &msg->opts[i], (msg->nopts - i) * sizeof(msg->opts[0]));
    msg->opts[i].num = num;
    msg->opts[i].len = (uint16_t)len;
    msg->opts[i].val = val;
    msg->nopts++;
    return 0;
}

int tether_coap_msg_del_opt(tether_coap_msg_t *msg, uint16_t num)
{
    size_t w = 0;
    int removed = 0;
    for (size_t r = 0; r < msg->nopts; r++) {
        if (msg->opts[r].num == num) {
            removed++;
            continue;
        }
        msg->opts[w++] = msg->opts[r];
    }
    msg->nopts = (uint16_t)w;
    return removed;
}

const tether_coap_opt_t *tether_coap_msg_find_opt(const tether_coap_msg_t *msg, uint16_t num)
{
    for (size_t i = 0; i < msg->nopts; i++) {
        if (msg->opts[i].num == num)
            return &msg->opts[i];
        if (msg->opts[i].num > num)
            break;
    }
    return NULL;
}

const tether_coap_opt_t *tether_coap_msg_next_opt(const tether_coap_msg_t *msg,
                                                  const tether_coap_opt_t *prev)
{
    const tether_coap_opt_t *end = msg->opts + msg->nopts;
    if (!prev || prev + 1 >= end || prev[1].num != prev->num)
        return NULL;
    return prev + 1;
}

size_t tether_coap_uint_encode(uint32_t v, uint8_t out[4])
{
    size_t n = v == 0 ? 0 : v < 0x100 ? 1 : v < 0x10000 ? 2 : v < 0x1000000 ? 3 : 4;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return n;
}

int tether_coap_uint_decode(const uint8_t *val, size_t len, uint32_t *out)
{
    if (len > 4)
        return TETHER_EPROTO;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++)
        v = v << 8 | val[i];
    *out = v;
    return 0;
}

int tether_coap_msg_get_uint(const tether_coap_msg_t *msg, uint16_t num, uint32_t *out)
{
    const tether_coap_opt_t *o = tether_coap_msg_find_opt(msg, num);
    if (!o)
        return TETHER_ENOTFOUND;
    return tether_coap_uint_decode(o->val, o->len, out);
}

const char *tether_coap_code_str(uint8_t code, char buf[6])
{
    snprintf(buf, 6, "%u.%02u", (unsigned)TETHER_COAP_CLASS(code),
             (unsigned)TETHER_COAP_DETAIL(code));
    return buf;
}
