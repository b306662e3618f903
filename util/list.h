/* list.h - an intrusive doubly linked FIFO: the owner embeds a list_node in
 * its entry; a node is in at most one list at a time. Not thread-safe. */
#ifndef JOBD_LIST_H
#define JOBD_LIST_H

#include <stddef.h>

/* The entry of type that holds node as its member. */
#define LIST_ITEM(node, type, member) ((type *)(void *)((char *)(node) - offsetof(type, member)))

typedef struct list_node {
    struct list_node *prev, *next;
} list_node;

typedef struct list_t {
    list_node *head, *tail; /* borrowed; oldest first */
    size_t n;
} list_t;

/* Appends node (in no list) at the tail of l. */
void list_push(list_t *l, list_node *node);

/* Takes node, which is in l, out of it. */
void list_remove(list_t *l, list_node *node);

#endif
