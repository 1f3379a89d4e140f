/* tether — intrusive doubly-linked list with head and tail (LRU and FIFO
 * orders). Callers embed tether_lnode_t and recover the owner with
 * container_of; a zeroed tether_list_t is empty. Public for tetherd's
 * cluster routes (least recently heard first). */
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

#endif
