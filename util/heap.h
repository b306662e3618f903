/* heap.h - an intrusive binary min-heap by an int64 key (e.g. a due time):
 * the owner embeds a heap_node in its entry; the node knows its place, so
 * any node can be removed in O(log n). Not thread-safe. */
#ifndef JOBD_HEAP_H
#define JOBD_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct heap_node {
    int64_t key; /* fixed while in the heap */
    size_t idx;  /* its place, valid while in */
    bool in;
} heap_node;

typedef struct heap_t {
    heap_node **v; /* owned array of borrowed nodes */
    size_t n, cap;
} heap_t;

/* Adds node (in no heap) with that key. 0, or -1 on OOM (nothing added). */
int heap_push(heap_t *h, heap_node *node, int64_t key);

/* The node with the least key, borrowed, or NULL when h is empty. */
heap_node *heap_top(const heap_t *h);

/* Takes node out of h; a node that is in no heap is left alone. */
void heap_remove(heap_t *h, heap_node *node);

/* Frees the array (the nodes belong to their owner). */
void heap_destroy(heap_t *h);

#endif
