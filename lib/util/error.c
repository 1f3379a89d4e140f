/* Error code names. */
#include "tether/common.h"

const char *tether_strerror(int err)
{
    switch (err) {
    case TETHER_OK: return "ok";
    case TETHER_EINVAL: return "invalid argument";
    case TETHER_ENOMEM: return "out of memory";
    case TETHER_ENOSPC: return "no space";
    case TETHER_EPROTO: return "protocol error";
    case TETHER_ENOTFOUND: return "not found";
    case TETHER_EEXIST: return "already exists";
    case TETHER_ELIMIT: return "limit reached";
    case TETHER_EIO: return "i/o error";
    case TETHER_ECONFIG: return "configuration error";
    case TETHER_ETIMEDOUT: return "timed out";
    case TETHER_EAGAIN: return "try again";
    case TETHER_ECRYPTO: return "crypto error";
    case TETHER_ECONFLICT: return "version conflict";
    }
    return "unknown error";
}
