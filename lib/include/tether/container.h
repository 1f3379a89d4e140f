/* container_of: the struct that embeds a member, from a pointer to the
 * member. Every intrusive structure in tether (list, hash map, timer heap,
 * exchange waiters) hands back its embedded node; this recovers the owner.
 * The one definition for lib/, server/ and bench/ (public for that). */
#ifndef TETHER_CONTAINER_H
#define TETHER_CONTAINER_H

#include <stddef.h>

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

#endif
