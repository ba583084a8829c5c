/*
 * list.h — intrusive doubly linked lists with a count.  A session's state
 * is the list it sits on, so counting sessions by state is free.
 */
#ifndef PGNEAR_PROXY_LIST_H
#define PGNEAR_PROXY_LIST_H

#include <stddef.h>

struct list_node {
    struct list_node *prev, *next;
};

struct list {
    struct list_node head;
    size_t count;
};

static inline void list_init(struct list *l)
{
    l->head.prev = l->head.next = &l->head;
    l->count = 0;
}

static inline void list_append(struct list *l, struct list_node *n)
{
    n->prev = l->head.prev;
    n->next = &l->head;
    l->head.prev->next = n;
    l->head.prev = n;
    l->count++;
}

/* n goes right after at (&l->head: first), a node of l. */
static inline void list_insert_after(struct list *l, struct list_node *at, struct list_node *n)
{
    n->prev = at;
    n->next = at->next;
    at->next->prev = n;
    at->next = n;
    l->count++;
}

static inline void list_remove(struct list *l, struct list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
    l->count--;
}

#define list_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define list_for_each_safe(pos, tmp, l)                                                            \
    for (pos = (l)->head.next, tmp = pos->next; pos != &(l)->head; pos = tmp, tmp = pos->next)

/* From the last appended to the first. */
#define list_for_each_reverse_safe(pos, tmp, l)                                                    \
    for (pos = (l)->head.prev, tmp = pos->prev; pos != &(l)->head; pos = tmp, tmp = pos->prev)

#endif
