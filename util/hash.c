/* hash.c - chained hashing (FNV-1a) over intrusive nodes. */
#include "hash.h"

#include <stdlib.h>
#include <string.h>

static size_t hash_fnv(const char *s)
{
    size_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int hash_init(hash_t *h, size_t n_buckets)
{
    h->buckets = calloc(n_buckets, sizeof *h->buckets);
    h->n_buckets = h->buckets ? n_buckets : 0;
    h->n = 0;
    return h->buckets ? 0 : -1;
}

hash_node *hash_find(const hash_t *h, const char *key)
{
    for (hash_node *e = h->buckets[hash_fnv(key) & (h->n_buckets - 1)]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int hash_grow(hash_t *h)
{
    size_t n = h->n_buckets * 2;
    hash_node **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < h->n_buckets; i++) {
        for (hash_node *e = h->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t k = hash_fnv(e->key) & (n - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->n_buckets = n;
    return 0;
}

int hash_insert(hash_t *h, hash_node *node)
{
    if (h->n >= h->n_buckets && hash_grow(h) != 0)
        return -1;
    hash_node **b = &h->buckets[hash_fnv(node->key) & (h->n_buckets - 1)];
    node->next = *b;
    *b = node;
    h->n++;
    return 0;
}

void hash_remove(hash_t *h, hash_node *node)
{
    for (hash_node **p = &h->buckets[hash_fnv(node->key) & (h->n_buckets - 1)]; *p;
         p = &(*p)->next) {
        if (*p == node) {
            *p = node->next;
            h->n--;
            return;
        }
    }
}

void hash_destroy(hash_t *h, void (*free_node)(hash_node *node))
{
    for (size_t i = 0; free_node && i < h->n_buckets; i++) {
        for (hash_node *e = h->buckets[i], *next; e; e = next) {
            next = e->next;
            free_node(e);
        }
    }
    free(h->buckets);
    h->buckets = NULL;
    h->n_buckets = h->n = 0;
}
