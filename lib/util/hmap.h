/* Forwards to the public tether/hmap.h for lib/ modules that still include
 * it by its old path (lib/coap, lib/dtls, lib/proxy are being reworked on
 * other branches); new code includes "tether/hmap.h". */
#include "tether/hmap.h"
