/* The record number of the record wolfSSL authenticated last. wolfSSL has
 * no public accessor for it, and DTLS 1.3 encrypts record numbers on the
 * wire (RFC 9147 §4.2.3), so this is the one place in tether that reads
 * wolfSSL's internal structures (wolfssl/internal.h, installed into .deps
 * by deploy/deps.sh from the same source tree the library was built from). */
#ifndef TETHER_WOLFREC_H
#define TETHER_WOLFREC_H

#include <stdbool.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

/* After a wolfSSL_read() that returned data: (epoch << 48 | sequence) of the
 * record it came from, and whether the session runs DTLS 1.3. False when
 * the numbers do not fit (epoch >= 2^16). */
bool tether_wolf_record_number(const WOLFSSL *ssl, uint64_t *epoch_seq, bool *dtls13);

#endif
