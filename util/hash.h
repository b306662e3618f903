/* hash.h - an intrusive hash table of nodes keyed by a C string: the owner
 * embeds a hash_node in its entry and keeps both the entry and the key alive
 * while the node is in a table. Not thread-safe: the owner locks. */
#ifndef JOBD_HASH_H
#define JOBD_HASH_H

#include <stddef.h>

typedef struct hash_node {
    struct hash_node *next; /* chain */
    const char *key;        /* borrowed from the entry; set before hash_insert */
} hash_node;

typedef struct hash_t {
    hash_node **buckets; /* owned array; the nodes are borrowed */
    size_t n_buckets;    /* a power of two */
    size_t n;            /* nodes in the table */
} hash_t;

/* An empty table of n_buckets (a power of two, > 0) buckets. 0, or -1 on OOM. */
int hash_init(hash_t *h, size_t n_buckets);

/* The node with that key, borrowed, or NULL. */
hash_node *hash_find(const hash_t *h, const char *key);

/* Adds node (no other node has its key), doubling the buckets when the table
 * is as full as it is wide. 0, or -1 on OOM (nothing added). */
int hash_insert(hash_t *h, hash_node *node);

/* Takes node, which is in h, out of it. */
void hash_remove(hash_t *h, hash_node *node);

/* Hands each node to free_node (when not NULL) and frees the buckets. */
void hash_destroy(hash_t *h, void (*free_node)(hash_node *node));

#endif
