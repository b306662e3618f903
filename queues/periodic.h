/* periodic.h - the periodic scheduler (README, Periodic jobs): one thread
 * that enqueues one job per tick of each schedule of the config, with the id
 * periodic:<name>:<tick>, through the queue's normal submission path, so
 * that the store's idempotency makes the enqueues of one tick by any number
 * of processes a single job. Ticks of a Redis queue are decided on Redis's
 * clock and recorded in Redis; those of an inline queue on this process's. */
#ifndef JOBD_PERIODIC_H
#define JOBD_PERIODIC_H

#include "pipeline.h"

/* Test-only: milliseconds added to this process's clock where the scheduler
 * reads it (inline queues), to show that the clocks of hosts do not matter. */
#define PERIODIC_CLOCK_OFFSET_ENV "JOBD_TEST_CLOCK_OFFSET_MS"

/* The scheduler of ctx's schedules (ctx->cfg->periodic; none is fine), once
 * ctx's queues are built. A new scheduler, or NULL with err (a schedule
 * whose job cannot be built, e.g. args nested too deep). */
periodic_t *periodic_new(jobd_t *ctx, char *err, size_t errlen);

/* Starts the thread (none without schedules). 0 or -1. */
int periodic_start(periodic_t *p);

/* Stops the thread and joins it: no tick is enqueued afterwards (a
 * submission under way still completes through its pipeline). NULL is fine. */
void periodic_stop(periodic_t *p);

/* Frees p, once the pipelines have stopped (every submission answered). NULL is fine. */
void periodic_free(periodic_t *p);

/* {"periodic": [{"name", "queue", "type", "cron"|"every", "timezone",
 * "next_run_at", "last_tick_at", "last_job_id"}, ...]} in config order: a new
 * reference (NULL on OOM). last_* are null until a tick is known enqueued. */
json_t *periodic_list(periodic_t *p);

/* A job of schedule name to enqueue now, outside its ticks: id
 * periodic:<name>:trigger:<ULID>. The new job (caller submits it to *q and
 * frees it), or NULL with 404 unknown_periodic in err. */
job_t *periodic_trigger_job(periodic_t *p, const char *name, queue_t **q, jobd_error *err);

#endif
