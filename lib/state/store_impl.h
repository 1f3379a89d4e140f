/* tether — what every state-store implementation shares: the operations
 * table and the watcher list, public in tether/store_backend.h so that a
 * backend doing I/O (tetherd's Redis store) can live outside lib/. */
#ifndef TETHER_STORE_IMPL_H
#define TETHER_STORE_IMPL_H

#include "tether/store_backend.h"

#endif
