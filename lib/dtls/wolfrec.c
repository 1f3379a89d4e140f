/* Reads the current record's number out of wolfSSL's state (see wolfrec.h).
 * Keys.curEpoch/curSeq_hi/curSeq_lo (DTLS 1.2) and Keys.curEpoch64/curSeq
 * (DTLS 1.3, already reconstructed from the encrypted partial number and
 * used as the AEAD nonce) are set while wolfSSL parses a record and stay put
 * until the next record: after wolfSSL_read() returned data they describe
 * the authenticated record that data came from. */
#include <wolfssl/options.h>
#include <wolfssl/version.h>
#include <wolfssl/internal.h>

#include "dtls/wolfrec.h"

#if LIBWOLFSSL_VERSION_HEX < 0x05007006
#error "tether needs wolfSSL >= 5.7.6 (deploy/deps.sh builds it)"
#endif
#if !defined(WORD64_AVAILABLE) || defined(WOLFSSL_W64_WRAPPER_TEST)
#error "expected w64wrapper to hold a word64"
#endif

bool tether_wolf_record_number(const WOLFSSL *ssl, uint64_t *epoch_seq, bool *dtls13)
{
    uint64_t epoch, seq;
    if (!ssl->options.dtls)
        return false;
    *dtls13 = ssl->options.tls1_3;
    if (ssl->options.tls1_3) {
        epoch = ssl->keys.curEpoch64.n;
        seq = ssl->keys.curSeq.n;
    } else {
        epoch = ssl->keys.curEpoch;
        seq = (uint64_t)ssl->keys.curSeq_hi << 32 | ssl->keys.curSeq_lo;
    }
    if (epoch > 0xffff || seq >> 48)
        return false;
    *epoch_seq = epoch << 48 | seq;
    return true;
}
