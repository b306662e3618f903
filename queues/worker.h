/* worker.h - the worker pool: N threads shared by all queues of a process.
 *
 * A store hands a job to the executor only while it holds a slot: it first
 * reserves one (which also honours the queue's concurrency limit), then calls
 * its delegate. Reserving before fetching is what keeps a store from taking
 * more jobs out of Redis than this process can start. */
#ifndef JOBD_WORKER_H
#define JOBD_WORKER_H

#include "../server/jobd.h"

/* A new pool of n threads (n >= 1), stack size big enough for jansson's
 * parser depth. NULL on failure. */
worker_pool_t *worker_pool_new(int n);

/* Reserves a slot for one job of q: waits until a worker is free and q runs
 * fewer than its concurrency, or until deadline (mono ms). 0 = reserved,
 * -1 = timed out. A closed pool reserves nothing: -1 at the deadline. */
int worker_pool_reserve(worker_pool_t *pool, queue_t *q, int64_t deadline_ms);

/* Gives back a reserved slot that will not be used. */
void worker_pool_release(worker_pool_t *pool, queue_t *q);

/* Runs fn(arg) on a worker using a slot reserved for q; the slot is released
 * after fn returns. Never blocks. */
void worker_pool_run(worker_pool_t *pool, queue_t *q, void (*fn)(void *), void *arg);

/* Slots neither reserved nor running. */
int worker_pool_free_slots(worker_pool_t *pool);

/* The pool's size and how many of its workers run a job now, into *size and *busy. */
void worker_pool_counts(worker_pool_t *pool, int *size, int *busy);

/* Waits until no job runs or deadline (mono ms). 0 = idle, -1 = timed out. */
int worker_pool_wait_idle(worker_pool_t *pool, int64_t deadline_ms);

/* Makes reserve fail from now on (shutdown): no job starts anywhere after
 * this, while jobs already handed to a worker run on. */
void worker_pool_close(worker_pool_t *pool);

/* Joins the threads (after running jobs end) and frees the pool. NULL is fine. */
void worker_pool_free(worker_pool_t *pool);

#endif
