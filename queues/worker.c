/* worker.c - the worker pool: N threads, slots reserved by stores before they
 * take a job out, per-queue concurrency. */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "../server/log.h"
#include "pipeline.h"

/* jansson parses recursively up to depth 2048; handlers may too. */
#define WORKER_STACK_SIZE (8u << 20)

typedef struct task {
    void (*fn)(void *);
    void *arg;
    queue_t *q;
    struct task *next;
} task;

struct worker_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* a task was queued, or quit */
    pthread_cond_t slot_cv;  /* a slot was freed */
    pthread_cond_t idle_cv;  /* a running task ended */
    int n;
    int reserved;            /* slots promised to stores, not yet running */
    int running;
    bool closed;             /* reserve fails from now on */
    bool quit;               /* threads exit once the task list is empty */
    task *head, *tail;
    pthread_t *threads;
    int n_threads;
};

static void worker_deadline_ts(int64_t deadline_ms, struct timespec *ts)
{
    ts->tv_sec = deadline_ms / 1000;
    ts->tv_nsec = (deadline_ms % 1000) * 1000000L;
}

static int worker_queue_limit(const queue_t *q)
{
    return q && q->cfg && q->cfg->concurrency > 0 ? q->cfg->concurrency : 0;
}

static void *worker_main(void *arg)
{
    worker_pool_t *pool = arg;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->head && !pool->quit)
            pthread_cond_wait(&pool->work_cv, &pool->mu);
        task *t = pool->head;
        if (!t)
            break; /* quit and nothing left */
        pool->head = t->next;
        if (!pool->head)
            pool->tail = NULL;
        pthread_mutex_unlock(&pool->mu);

        t->fn(t->arg);

        pthread_mutex_lock(&pool->mu);
        pool->running--;
        if (t->q)
            atomic_fetch_sub(&t->q->running, 1);
        pthread_cond_broadcast(&pool->slot_cv);
        pthread_cond_broadcast(&pool->idle_cv);
        free(t);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

worker_pool_t *worker_pool_new(int n)
{
    if (n < 1)
        return NULL;
    worker_pool_t *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->work_cv, &ca);
    pthread_cond_init(&pool->slot_cv, &ca);
    pthread_cond_init(&pool->idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    pool->n = n;
    pool->threads = calloc((size_t)n, sizeof *pool->threads);
    if (!pool->threads) {
        worker_pool_free(pool);
        return NULL;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&pool->threads[i], &attr, worker_main, pool) != 0) {
            log_event(LOG_ERROR, "worker.start_failed", NULL, "could not start worker %d of %d", i + 1, n);
            pthread_attr_destroy(&attr);
            worker_pool_free(pool);
            return NULL;
        }
        pool->n_threads++;
    }
    pthread_attr_destroy(&attr);
    return pool;
}

int worker_pool_reserve(worker_pool_t *pool, queue_t *q, int64_t deadline_ms)
{
    struct timespec ts;
    worker_deadline_ts(deadline_ms, &ts);
    int limit = worker_queue_limit(q);
    int rc = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        if (pool->closed) {
            /* Wait out the deadline all the same, so that no caller's loop
             * spins while the process shuts down. */
            while (pthread_cond_timedwait(&pool->slot_cv, &pool->mu, &ts) != ETIMEDOUT)
                ;
            rc = -1;
            break;
        }
        bool pool_free = pool->reserved + pool->running < pool->n;
        bool queue_free = !limit || atomic_load(&q->running) < limit;
        if (pool_free && queue_free)
            break;
        if (pthread_cond_timedwait(&pool->slot_cv, &pool->mu, &ts) == ETIMEDOUT) {
            rc = -1;
            break;
        }
    }
    if (rc == 0) {
        pool->reserved++;
        if (q)
            atomic_fetch_add(&q->running, 1);
    }
    pthread_mutex_unlock(&pool->mu);
    return rc;
}

void worker_pool_release(worker_pool_t *pool, queue_t *q)
{
    pthread_mutex_lock(&pool->mu);
    pool->reserved--;
    if (q)
        atomic_fetch_sub(&q->running, 1);
    pthread_cond_broadcast(&pool->slot_cv);
    pthread_mutex_unlock(&pool->mu);
}

void worker_pool_run(worker_pool_t *pool, queue_t *q, void (*fn)(void *), void *arg)
{
    task *t = malloc(sizeof *t);
    if (!t) {
        /* Out of memory: run it here rather than lose the job's outcome. */
        fn(arg);
        worker_pool_release(pool, q);
        return;
    }
    *t = (task){fn, arg, q, NULL};
    pthread_mutex_lock(&pool->mu);
    pool->reserved--;
    pool->running++;
    if (pool->tail)
        pool->tail->next = t;
    else
        pool->head = t;
    pool->tail = t;
    pthread_cond_signal(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);
}

int worker_pool_free_slots(worker_pool_t *pool)
{
    pthread_mutex_lock(&pool->mu);
    int n = pool->n - pool->reserved - pool->running;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

void worker_pool_counts(worker_pool_t *pool, int *size, int *busy)
{
    pthread_mutex_lock(&pool->mu);
    *size = pool->n;
    *busy = pool->running;
    pthread_mutex_unlock(&pool->mu);
}

int worker_pool_wait_idle(worker_pool_t *pool, int64_t deadline_ms)
{
    struct timespec ts;
    worker_deadline_ts(deadline_ms, &ts);
    int rc = 0;
    pthread_mutex_lock(&pool->mu);
    while (pool->running > 0 || pool->head) {
        if (pthread_cond_timedwait(&pool->idle_cv, &pool->mu, &ts) == ETIMEDOUT) {
            rc = pool->running > 0 || pool->head ? -1 : 0;
            break;
        }
    }
    pthread_mutex_unlock(&pool->mu);
    return rc;
}

void worker_pool_close(worker_pool_t *pool)
{
    pthread_mutex_lock(&pool->mu);
    pool->closed = true;
    pthread_cond_broadcast(&pool->slot_cv);
    pthread_mutex_unlock(&pool->mu);
}

void worker_pool_free(worker_pool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->closed = true;
    pool->quit = true;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_cond_broadcast(&pool->slot_cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    free(pool->threads);
    pthread_cond_destroy(&pool->work_cv);
    pthread_cond_destroy(&pool->slot_cv);
    pthread_cond_destroy(&pool->idle_cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}
