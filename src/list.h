/* list.h: the one intrusive doubly-linked list (an entry embeds a struct
 * list_node; the list holds its ends). O(1) append, unlink and pop, no
 * allocation. Pure; each list belongs to whoever owns its entries. */
#ifndef CHAT_LIST_H
#define CHAT_LIST_H

#include <stddef.h>

#include "common.h"

struct list_node {
    struct list_node *prev, *next;
};

struct list {
    struct list_node *head, *tail; /* oldest, newest; both NULL when empty */
};

/* The entry that embeds node as member. */
#define list_entry(node, type, member) container_of(node, type, member)

static inline void list_push_tail(struct list *l, struct list_node *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

static inline void list_push_head(struct list *l, struct list_node *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

/* Unlinks n, which must be in l. */
static inline void list_unlink(struct list *l, struct list_node *n)
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

/* Unlinks and returns the oldest, or NULL. */
static inline struct list_node *list_pop_head(struct list *l)
{
    struct list_node *n = l->head;
    if (n)
        list_unlink(l, n);
    return n;
}

#endif
