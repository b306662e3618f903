/* timeindex.c - the sorted slot array: binary search, holes, compaction. */
#include "timeindex.h"

#include <stdlib.h>
#include <string.h>

/* Holes are squeezed out once they are this many and a quarter of all. */
#define TIMEINDEX_HOLES_MIN 64

static int timeindex_cmp(int64_t time, uint64_t seq, const timeindex_slot *s)
{
    if (time != s->time)
        return time < s->time ? -1 : 1;
    return seq < s->seq ? -1 : seq > s->seq ? 1 : 0;
}

size_t timeindex_lower_bound(const timeindex_t *x, int64_t time, uint64_t seq)
{
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (timeindex_cmp(time, seq, &x->v[mid]) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int timeindex_reserve(timeindex_t *x)
{
    if (x->n < x->cap)
        return 0;
    size_t cap = x->cap ? x->cap * 2 : 1024;
    timeindex_slot *v = realloc(x->v, cap * sizeof *v);
    if (!v)
        return -1;
    x->v = v;
    x->cap = cap;
    return 0;
}

void timeindex_add(timeindex_t *x, int64_t time, uint64_t seq, void *item)
{
    size_t at = timeindex_lower_bound(x, time, seq);
    memmove(x->v + at + 1, x->v + at, (x->n - at) * sizeof *x->v);
    x->v[at] = (timeindex_slot){time, seq, item};
    x->n++;
}

/* Drops the holes (their keys are needed no more than any other position
 * between two live slots). */
static void timeindex_compact(timeindex_t *x)
{
    size_t k = 0;
    for (size_t i = 0; i < x->n; i++)
        if (x->v[i].item)
            x->v[k++] = x->v[i];
    x->n = k;
    x->holes = 0;
}

void timeindex_remove(timeindex_t *x, int64_t time, uint64_t seq, const void *item)
{
    size_t at = timeindex_lower_bound(x, time, seq);
    if (at < x->n && x->v[at].item == item) {
        x->v[at].item = NULL;
        x->holes++;
    }
    if (x->holes >= TIMEINDEX_HOLES_MIN && x->holes * 4 > x->n)
        timeindex_compact(x);
}

void timeindex_destroy(timeindex_t *x)
{
    free(x->v);
    x->v = NULL;
    x->n = x->cap = x->holes = 0;
}
