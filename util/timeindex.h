/* timeindex.h - an array of slots sorted by (time, seq), each naming an item
 * or, once the item is removed, a hole that keeps its key: a cursor naming a
 * removed item still finds its place, and pages are read without sorting
 * anything. Items are borrowed. Not thread-safe. */
#ifndef JOBD_TIMEINDEX_H
#define JOBD_TIMEINDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct timeindex_slot {
    int64_t time;
    uint64_t seq; /* unique with time: the tie-break of equal times */
    void *item;   /* NULL = removed */
} timeindex_slot;

typedef struct timeindex_t {
    timeindex_slot *v; /* owned; v[0..n) in ascending (time, seq) */
    size_t n, cap, holes;
} timeindex_t;

/* Makes room for one more slot. 0, or -1 on OOM. */
int timeindex_reserve(timeindex_t *x);

/* Adds item under (time, seq), a key not in x yet (room reserved). Cheap
 * when keys arrive in about ascending order: the slot goes near the end. */
void timeindex_add(timeindex_t *x, int64_t time, uint64_t seq, void *item);

/* The first slot whose key is >= (time, seq): x->n when none. */
size_t timeindex_lower_bound(const timeindex_t *x, int64_t time, uint64_t seq);

/* Turns the slot of item, added under (time, seq), into a hole; squeezes the
 * holes out once they are many and a quarter of all slots. */
void timeindex_remove(timeindex_t *x, int64_t time, uint64_t seq, const void *item);

/* Frees the slots (the items belong to their owner). */
void timeindex_destroy(timeindex_t *x);

#endif
