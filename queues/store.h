/* store.h - the read and admin side of a queue, as handlers see it: one call
 * per action on the queue's store processor (inline or redis), instead of
 * reaching through q->store->ops->store. Ownership and errors are those of
 * store_ops (pipeline.h): a new reference (or 0) on success, NULL (or -1)
 * with err filled on error (404 unknown_job, 409 conflict, 503 unavailable). */
#ifndef JOBD_STORE_H
#define JOBD_STORE_H

#include "pipeline.h"

/* The job view of id (new reference). */
json_t *store_get(queue_t *q, const char *id, jobd_error *err);

/* {"jobs": [views], "next_cursor"} newest created first (new reference);
 * state -1 = any; cursor NULL = the first page. */
json_t *store_list(queue_t *q, int state, size_t limit, const char *cursor, jobd_error *err);

/* Cancels a scheduled, enqueued or retrying job: its new view (new reference). */
json_t *store_cancel(queue_t *q, const char *id, jobd_error *err);

/* Pauses (paused true) or resumes the queue's runs. 0 or -1. */
int store_pause(queue_t *q, bool paused, jobd_error *err);

/* {"paused", "counts", "processed_total", "failed_total"} (new reference). */
json_t *store_info(queue_t *q, jobd_error *err);

/* {"jobs": [views], "next_cursor"} of dead jobs, newest death first (new reference). */
json_t *store_dead_list(queue_t *q, size_t limit, const char *cursor, jobd_error *err);

/* A dead job back to enqueued with attempts reset: its new view (new reference). */
json_t *store_dead_retry(queue_t *q, const char *id, jobd_error *err);

/* Deletes a dead job. 0 or -1. */
int store_dead_delete(queue_t *q, const char *id, jobd_error *err);

/* The gauges of every queue of ctx into out[0..ctx->n_queues), in config
 * order: each kind of store is asked once for all its queues (one Redis
 * round trip for every Redis queue together). */
void store_gauges_all(jobd_t *ctx, store_gauges *out);

/* True when the store can take jobs now; a store without the notion (inline) always can. */
bool store_ready(queue_t *q);

/* The store's own clock in unix ms (Redis TIME as last measured, carried
 * forward on the monotonic clock); 0 while unknown; -1 when the store has
 * none (inline): the caller uses the process's clock. */
int64_t store_clock_ms(queue_t *q);

/* The last tick (unix ms, 0 = none) of periodic schedule name as the store
 * records it, into *tick_ms. 1 when the store keeps none (inline), 0, or -1
 * with 503 in err. */
int store_tick_get(queue_t *q, const char *name, int64_t *tick_ms, jobd_error *err);

/* Records tick_ms as schedule name's last tick unless a later one is
 * recorded. 1 when the store keeps none (inline), 0, or -1 with 503 in err. */
int store_tick_set(queue_t *q, const char *name, int64_t tick_ms, jobd_error *err);

#endif
