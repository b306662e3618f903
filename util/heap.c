/* heap.c - the array-backed min-heap. */
#include "heap.h"

#include <stdlib.h>

static void heap_swap(heap_t *h, size_t a, size_t b)
{
    heap_node *t = h->v[a];
    h->v[a] = h->v[b];
    h->v[b] = t;
    h->v[a]->idx = a;
    h->v[b]->idx = b;
}

/* Restores the order around i, up or down. */
static void heap_fix(heap_t *h, size_t i)
{
    while (i > 0 && h->v[(i - 1) / 2]->key > h->v[i]->key) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l]->key < h->v[m]->key)
            m = l;
        if (r < h->n && h->v[r]->key < h->v[m]->key)
            m = r;
        if (m == i)
            return;
        heap_swap(h, i, m);
        i = m;
    }
}

int heap_push(heap_t *h, heap_node *node, int64_t key)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        heap_node **v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    node->key = key;
    node->idx = h->n;
    node->in = true;
    h->v[h->n++] = node;
    heap_fix(h, node->idx);
    return 0;
}

heap_node *heap_top(const heap_t *h)
{
    return h->n ? h->v[0] : NULL;
}

void heap_remove(heap_t *h, heap_node *node)
{
    if (!node->in)
        return;
    size_t i = node->idx;
    h->n--;
    if (i != h->n) {
        h->v[i] = h->v[h->n];
        h->v[i]->idx = i;
        heap_fix(h, i);
    }
    node->in = false;
}

void heap_destroy(heap_t *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
