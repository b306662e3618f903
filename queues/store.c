/* store.c - the store facade of store.h: each call forwards to the queue's
 * store processor, so callers depend on one header, not on proc_t's tables. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

static const store_ops *store_of(queue_t *q)
{
    return q->store->ops->store;
}

json_t *store_get(queue_t *q, const char *id, jobd_error *err)
{
    return store_of(q)->get(q->store, id, err);
}

json_t *store_list(queue_t *q, int state, size_t limit, const char *cursor, jobd_error *err)
{
    return store_of(q)->list(q->store, state, limit, cursor, err);
}

json_t *store_cancel(queue_t *q, const char *id, jobd_error *err)
{
    return store_of(q)->cancel(q->store, id, err);
}

int store_pause(queue_t *q, bool paused, jobd_error *err)
{
    return store_of(q)->pause(q->store, paused, err);
}

json_t *store_info(queue_t *q, jobd_error *err)
{
    return store_of(q)->info(q->store, err);
}

json_t *store_dead_list(queue_t *q, size_t limit, const char *cursor, jobd_error *err)
{
    return store_of(q)->dead_list(q->store, limit, cursor, err);
}

json_t *store_dead_retry(queue_t *q, const char *id, jobd_error *err)
{
    return store_of(q)->dead_retry(q->store, id, err);
}

int store_dead_delete(queue_t *q, const char *id, jobd_error *err)
{
    return store_of(q)->dead_delete(q->store, id, err);
}

bool store_ready(queue_t *q)
{
    bool (*ready)(proc_t *) = store_of(q)->ready;
    return !ready || ready(q->store);
}

void store_gauges_all(jobd_t *ctx, store_gauges *out)
{
    size_t n = ctx->n_queues;
    proc_t **group = calloc(n ? n : 1, sizeof *group);
    size_t *where = calloc(n ? n : 1, sizeof *where);
    store_gauges *got = calloc(n ? n : 1, sizeof *got);
    bool *done = calloc(n ? n : 1, sizeof *done);
    for (size_t i = 0; i < n; i++)
        out[i] = (store_gauges){0};
    for (size_t i = 0; group && where && got && done && i < n; i++) {
        if (done[i])
            continue;
        const store_ops *ops = store_of(ctx->queues[i]);
        size_t k = 0;
        for (size_t j = i; j < n; j++)
            if (!done[j] && store_of(ctx->queues[j]) == ops) {
                done[j] = true;
                where[k] = j;
                group[k++] = ctx->queues[j]->store;
            }
        if (!ops->gauges)
            continue;
        memset(got, 0, k * sizeof *got);
        ops->gauges(group, k, got);
        for (size_t j = 0; j < k; j++)
            out[where[j]] = got[j];
    }
    free(group);
    free(where);
    free(got);
    free(done);
}

int64_t store_clock_ms(queue_t *q)
{
    const store_ops *ops = store_of(q);
    return ops->clock_ms ? ops->clock_ms(q->store) : -1;
}

int store_tick_get(queue_t *q, const char *name, int64_t *tick_ms, jobd_error *err)
{
    const store_ops *ops = store_of(q);
    return ops->tick_get ? ops->tick_get(q->store, name, tick_ms, err) : 1;
}

int store_tick_set(queue_t *q, const char *name, int64_t tick_ms, jobd_error *err)
{
    const store_ops *ops = store_of(q);
    return ops->tick_set ? ops->tick_set(q->store, name, tick_ms, err) : 1;
}
