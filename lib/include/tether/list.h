/* Intrusive doubly-linked list with head and tail (LRU, FIFO and
 * newest-first orders): the one list of lib/ and server/ (public: tetherd uses it too). Callers
 * embed tether_lnode_t and recover the owner with container_of (util/container.h). A zeroed
 * tether_list_t is empty; a node is in at most one list at a time per embedded tether_lnode_t, and
 * tether_list_del must name that list. */
#ifndef TETHER_LIST_H
#define TETHER_LIST_H

#include <stddef.h>

typedef struct tether_lnode {
    struct tether_lnode *prev, *next;
} tether_lnode_t;

typedef struct {
    tether_lnode_t *head, *tail;
} tether_list_t;

static inline void tether_list_push(tether_list_t *l, tether_lnode_t *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

/* Inserts n at the head (newest-first orders). */
static inline void tether_list_push_front(tether_list_t *l, tether_lnode_t *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

static inline void tether_list_del(tether_list_t *l, tether_lnode_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

/* Puts `n` where `old` is in l (old leaves it): a record moved to a new
 * allocation keeps its place in the order. */
static inline void tether_list_replace(tether_list_t *l, tether_lnode_t *old, tether_lnode_t *n)
{
    n->prev = old->prev;
    n->next = old->next;
    if (n->prev)
        n->prev->next = n;
    else
        l->head = n;
    if (n->next)
        n->next->prev = n;
    else
        l->tail = n;
    old->prev = old->next = NULL;
}

#endif
