/* proc_inline.c - the in-memory store: keeps jobs in this process and runs
 * them on the worker pool. Fast, and lost on a crash by design. Retries,
 * backoff, max_attempts and the dead set work as on Redis queues.
 *
 * The entries and their containers are described in proc_inline.h; this file
 * places them, takes submissions and runs jobs (the flow limits included);
 * proc_inline_read.c answers the store side of the API. One dispatcher thread
 * per queue moves due jobs to ready and hands ready jobs to the delegate
 * while it holds a worker slot.
 *
 * Bounds: at most max_jobs waiting (scheduled, enqueued, retrying) jobs, then
 * 503; finished and dead jobs by the retention settings; running ones by the
 * workers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/log.h"
#include "../server/metrics.h"
#include "job.h"
#include "proc_inline.h"
#include "worker.h"

#define INLINE_MAX_JOBS_DEFAULT 100000
#define INLINE_MAX_JOBS_LIMIT 100000000

#define INLINE_DRAIN_MS 5000     /* the windows of the drain rate (max_depth's Retry-After) */
#define INLINE_LIMIT_WAIT_MS 1000

/* --- containers --- */

/* The entry of that id, or NULL; borrowed, valid while st->mu is held. */
ientry *inline_find(inline_store *st, const char *id)
{
    hash_node *n = hash_find(&st->by_id, id);
    return n ? INLINE_ENTRY(n, hnode) : NULL;
}

/* The oldest entry of FIFO id, or NULL; borrowed as inline_find's. */
ientry *inline_fifo_head(const inline_store *st, inline_fifo_id id)
{
    list_node *n = st->fifos[id].head;
    return n ? INLINE_ENTRY(n, lnode) : NULL;
}

static void inline_fifo_push(inline_store *st, inline_fifo_id id, ientry *e)
{
    e->in = id;
    list_push(&st->fifos[id], &e->lnode);
}

static void inline_fifo_remove(inline_store *st, ientry *e)
{
    if (e->in == IL_NONE)
        return;
    list_remove(&st->fifos[e->in], &e->lnode);
    e->in = IL_NONE;
}

/* The entry due first, or NULL. */
static ientry *inline_due_first(const inline_store *st)
{
    heap_node *n = heap_top(&st->due);
    return n ? INLINE_ENTRY(n, due) : NULL;
}

/* --- state changes --- */

static void inline_set_state(inline_store *st, ientry *e, job_state s)
{
    st->counts[e->job->state]--;
    e->job->state = s;
    st->counts[s]++;
}

/* Moves e to where state s belongs. Called with st->mu held. */
void inline_place(inline_store *st, ientry *e, job_state s)
{
    inline_fifo_remove(st, e);
    heap_remove(&st->due, &e->due);
    inline_set_state(st, e, s);
    switch (s) {
    case JOB_SCHEDULED:
    case JOB_RETRYING:
        if (heap_push(&st->due, &e->due, e->job->run_at) != 0) {
            /* Cannot wait out the delay without memory: run it now instead. */
            inline_set_state(st, e, JOB_ENQUEUED);
            inline_fifo_push(st, IL_READY, e);
        }
        break;
    case JOB_ENQUEUED:
        inline_fifo_push(st, IL_READY, e);
        break;
    case JOB_SUCCEEDED:
    case JOB_CANCELLED:
        inline_fifo_push(st, IL_FINISHED, e);
        break;
    case JOB_DEAD:
        e->dead_seq = ++st->dead_seq;
        inline_fifo_push(st, IL_DEAD, e);
        break;
    default:
        break;
    }
    pthread_cond_signal(&st->cv);
}

/* Removes e from every structure and frees it with its job. Called with
 * st->mu held. */
void inline_drop(inline_store *st, ientry *e)
{
    inline_fifo_remove(st, e);
    heap_remove(&st->due, &e->due);
    hash_remove(&st->by_id, &e->hnode);
    timeindex_remove(&st->created, e->job->created_at, e->seq, e);
    st->counts[e->job->state]--;
    job_free(e->job);
    free(e);
}

/* Finished jobs and the dead set are bounded by count and age (config); what
 * is trimmed is counted and logged, never dropped silently. */
static void inline_trim(inline_store *st, proc_t *self, int64_t now)
{
    const config_t *cfg = self->queue->ctx->cfg;
    struct {
        inline_fifo_id list;
        size_t max;
        double age;
        const char *what;
    } rules[] = {
        {IL_FINISHED, (size_t)cfg->max_finished, cfg->retention_finished, "finished"},
        {IL_DEAD, (size_t)cfg->dead_max_jobs, cfg->dead_max_age, "dead"},
    };
    for (size_t r = 0; r < 2; r++) {
        const list_t *l = &st->fifos[rules[r].list];
        int64_t oldest = now - (int64_t)(rules[r].age * 1000);
        size_t trimmed = 0;
        for (ientry *e; (e = inline_fifo_head(st, rules[r].list)) &&
                        (l->n > rules[r].max || e->job->finished_at < oldest);) {
            inline_drop(st, e);
            trimmed++;
        }
        if (!trimmed)
            continue;
        st->trimmed_total += trimmed;
        if (rules[r].list == IL_DEAD)
            log_event(LOG_WARN, "dead.trimmed", NULL, "queue %s: %zu dead jobs removed (bounds)",
                      self->queue->cfg->name, trimmed);
        else
            st->finished_trimmed += trimmed;
    }
    /* At the count bound every finish trims one: a line per minute, not per job. */
    if (st->finished_trimmed && now - st->trim_logged_at >= 60000) {
        log_event(LOG_INFO, "finished.trimmed", NULL,
                  "queue %s: %zu finished jobs removed (retention bounds)", self->queue->cfg->name,
                  st->finished_trimmed);
        st->finished_trimmed = 0;
        st->trim_logged_at = now;
    }
}

/* --- flow limits --- */

/* Counts a start in the drain windows. Called with st->mu held. */
static void inline_drain_count(inline_store *st, int64_t now)
{
    if (now - st->drain_t >= 2 * INLINE_DRAIN_MS) {
        st->drain_p = 0;
        st->drain_c = 0;
        st->drain_t = now;
    } else if (now - st->drain_t >= INLINE_DRAIN_MS) {
        st->drain_p = st->drain_c;
        st->drain_c = 0;
        st->drain_t = now;
    }
    st->drain_c++;
}

/* Seconds until over more jobs have started at the recent drain rate,
 * 1..60 (60 when nothing started lately). Called with st->mu held. */
static int inline_retry_after(const inline_store *st, int64_t now, size_t over)
{
    double elapsed = (double)(now - st->drain_t);
    if (elapsed >= 2 * INLINE_DRAIN_MS || st->drain_c + st->drain_p == 0)
        return 60;
    double rate = (double)(st->drain_c + st->drain_p) * 1000.0 / (elapsed + INLINE_DRAIN_MS);
    double wait = ceil((double)over / rate);
    return wait < 1 ? 1 : wait > 60 ? 60 : (int)wait;
}

/* Milliseconds until max_running and the rate allow a start; 0 = now.
 * Called with st->mu held. */
static int64_t inline_flow_hold(const inline_store *st, const queue_cfg *qc, int64_t now)
{
    if (qc->max_running > 0 && st->counts[JOB_RUNNING] >= (size_t)qc->max_running)
        return INLINE_LIMIT_WAIT_MS; /* a run's end wakes the dispatcher sooner */
    if (qc->rate.limit <= 0)
        return 0;
    double t = qc->rate.per * 1000.0 / qc->rate.limit;
    double tau = t * (qc->rate.burst - 1);
    double ahead = st->rate_tat - (double)now - tau; /* GCRA: wait until tat - tau */
    return ahead > 0 ? (int64_t)ceil(ahead) : 0;
}

/* Counts a start against the rate and the drain. Called with st->mu held. */
static void inline_flow_start(inline_store *st, const queue_cfg *qc, int64_t now)
{
    if (qc->rate.limit > 0) {
        double t = qc->rate.per * 1000.0 / qc->rate.limit;
        st->rate_tat = (st->rate_tat > (double)now ? st->rate_tat : (double)now) + t;
    }
    if (qc->max_depth > 0)
        inline_drain_count(st, now);
}

/* --- submission --- */

static ientry *inline_add(inline_store *st, proc_t *self, const job_t *job)
{
    ientry *e = calloc(1, sizeof *e);
    if (!e || !(e->job = job_dup(job))) {
        free(e);
        return NULL;
    }
    e->self = self;
    e->job->state = JOB_SCHEDULED; /* counted below by inline_place */
    st->counts[JOB_SCHEDULED]++;
    e->hnode.key = e->job->id;
    if (timeindex_reserve(&st->created) != 0 || hash_insert(&st->by_id, &e->hnode) != 0) {
        st->counts[JOB_SCHEDULED]--;
        job_free(e->job);
        free(e);
        return NULL;
    }
    e->seq = ++st->seq;
    timeindex_add(&st->created, e->job->created_at, e->seq, e);
    inline_place(st, e, job->run_at > jobd_now_ms() ? JOB_SCHEDULED : JOB_ENQUEUED);
    return e;
}

/* How many of jobs[0..n) would be new once the waiting jobs (scheduled,
 * enqueued, retrying) number *waiting: 0 when n new ones still fit under
 * bound (no lookups), else the count of unknown ids. Called with st->mu held. */
static size_t inline_fresh(inline_store *st, job_t *const *jobs, size_t n, size_t bound,
                           size_t *waiting)
{
    *waiting = st->counts[JOB_SCHEDULED] + st->counts[JOB_ENQUEUED] + st->counts[JOB_RETRYING];
    if (*waiting + n <= bound)
        return 0;
    size_t fresh = 0;
    for (size_t i = 0; i < n; i++)
        fresh += inline_find(st, jobs[i]->id) == NULL;
    return fresh;
}

/* Why jobs[0..n) cannot be taken now because of max_jobs, or NULL. Replays
 * of known ids add nothing. Called with st->mu held. */
static const char *inline_full(inline_store *st, job_t *const *jobs, size_t n)
{
    size_t waiting, fresh = inline_fresh(st, jobs, n, st->max_jobs, &waiting);
    if (fresh && waiting + fresh > st->max_jobs)
        return "the queue holds max_jobs waiting jobs: retry later";
    return NULL;
}

/* 429 queue_full in err when the new ids of jobs[0..n) would take the
 * waiting jobs past max_depth (replays add nothing): true then. Called with
 * st->mu held. */
static bool inline_over_depth(inline_store *st, long max_depth, job_t *const *jobs, size_t n,
                              jobd_error *err)
{
    if (max_depth <= 0)
        return false;
    size_t waiting, fresh = inline_fresh(st, jobs, n, (size_t)max_depth, &waiting);
    if (!fresh || waiting + fresh <= (size_t)max_depth)
        return false;
    jobd_fail(err, 429, "queue_full",
              "queue %s would hold more than its max_depth of %ld waiting jobs: retry later",
              jobs[0]->queue, max_depth);
    err->retry_after = inline_retry_after(st, jobd_mono_ms(), waiting + fresh - (size_t)max_depth);
    return true;
}

static int inline_call(proc_t *self, job_t *const *jobs, size_t n, proc_done_fn done,
                       void *done_ctx)
{
    inline_store *st = self->priv;
    outcome_t *outs = calloc(n, sizeof *outs);
    if (!outs) {
        outcome_t out = {.kind = OUT_REFUSED};
        jobd_fail(&out.err, 503, "unavailable", "out of memory");
        for (size_t i = 0; i < n; i++)
            done(done_ctx, i, &out);
        return 0;
    }
    pthread_mutex_lock(&st->mu);
    jobd_error deep = {0};
    bool too_deep = inline_over_depth(st, self->queue->cfg->max_depth, jobs, n, &deep);
    const char *full = too_deep ? NULL : inline_full(st, jobs, n);
    for (size_t i = 0; i < n; i++) {
        if (too_deep) {
            outs[i].kind = OUT_REFUSED;
            outs[i].err = deep;
            continue;
        }
        if (full) {
            /* All or nothing: a batch that does not fit is refused whole. */
            outs[i].kind = OUT_REFUSED;
            jobd_fail(&outs[i].err, 503, "unavailable", "%s", full);
            outs[i].err.retry_after = 1;
            continue;
        }
        if (st->stopping) {
            /* Stop has counted what is lost; a job now would be lost uncounted. */
            outs[i].kind = OUT_REFUSED;
            jobd_fail(&outs[i].err, 503, "unavailable", JOBD_MSG_SHUTDOWN);
            outs[i].err.retry_after = 1;
            continue;
        }
        ientry *e = inline_find(st, jobs[i]->id);
        outs[i].kind = e ? OUT_REPLAYED : OUT_STORED;
        if (!e && !(e = inline_add(st, self, jobs[i]))) {
            outs[i].kind = OUT_REFUSED;
            jobd_fail(&outs[i].err, 503, "unavailable", "out of memory");
            outs[i].err.retry_after = 1;
            continue;
        }
        outs[i].view = job_view(e->job);
    }
    pthread_mutex_unlock(&st->mu);
    /* Outcomes are reported outside the lock: done may resume an HTTP request. */
    for (size_t i = 0; i < n; i++) {
        done(done_ctx, i, &outs[i]);
        json_decref(outs[i].view);
    }
    free(outs);
    return 0;
}

/* --- running --- */

static void inline_run_done(void *done_ctx, size_t index, const outcome_t *out)
{
    (void)index;
    ientry *e = done_ctx;
    proc_t *self = e->self;
    inline_store *st = self->priv;
    const queue_cfg *qc = self->queue->cfg;
    pthread_mutex_lock(&st->mu);
    job_t *job = e->job;
    int64_t now = jobd_now_ms();
    job->attempts++;
    double delay;
    job_state next = pipeline_next_state(qc, job, out, &delay);
    metrics_job_filed(self->queue->ctx->metrics, qc, next);
    if (out->kind == OUT_SUCCEEDED)
        st->processed_total++;
    else {
        st->failed_total++;
        job_set_error(job, out->message ? out->message : "failed");
    }
    if (next == JOB_RETRYING)
        job->run_at = now + (int64_t)(delay * 1000);
    else if (next == JOB_ENQUEUED)
        job->run_at = 0;
    else
        job->finished_at = now;
    inline_place(st, e, next);
    if (next == JOB_SUCCEEDED) /* per-job success lines cost; as on Redis, debug */
        log_event(LOG_DEBUG, "job.succeeded", job, "in %.3fs", out->duration);
    else
        log_event(next == JOB_DEAD ? LOG_WARN : LOG_INFO,
                  next == JOB_DEAD ? "job.dead" : "job.failed", job, "%s", job->last_error);
    inline_trim(st, self, now);
    pthread_mutex_unlock(&st->mu);
}

/* Moves every due job from the heap to the ready list. */
static void inline_move_due(inline_store *st, int64_t now)
{
    for (ientry *e; (e = inline_due_first(st)) && e->due.key <= now;)
        inline_place(st, e, JOB_ENQUEUED);
}

/* How long the dispatcher may sleep: until the next due job, at most 1 s so
 * that age-based trimming happens without traffic. */
static void inline_wait(inline_store *st, int64_t now)
{
    int64_t until = now + 1000;
    const ientry *first = inline_due_first(st);
    if (first && first->due.key < until)
        until = first->due.key;
    struct timespec ts = {until / 1000, (until % 1000) * 1000000L};
    pthread_cond_timedwait(&st->cv, &st->mu, &ts);
}

static void *inline_dispatch(void *arg)
{
    proc_t *self = arg;
    inline_store *st = self->priv;
    queue_t *q = self->queue;
    worker_pool_t *pool = q->ctx->pool;
    pthread_mutex_lock(&st->mu);
    while (!st->stopping) {
        int64_t now = jobd_now_ms();
        inline_move_due(st, now);
        inline_trim(st, self, now);
        if (st->paused || !inline_fifo_head(st, IL_READY)) {
            inline_wait(st, now);
            continue;
        }
        int64_t hold = inline_flow_hold(st, q->cfg, jobd_mono_ms());
        if (hold > 0) {
            int64_t until = now + (hold < INLINE_LIMIT_WAIT_MS ? hold : INLINE_LIMIT_WAIT_MS);
            struct timespec ts = {until / 1000, (until % 1000) * 1000000L};
            pthread_cond_timedwait(&st->cv, &st->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&st->mu);
        int reserved = worker_pool_reserve(pool, q, jobd_mono_ms() + 200);
        pthread_mutex_lock(&st->mu);
        if (reserved != 0)
            continue;
        ientry *e = inline_fifo_head(st, IL_READY);
        if (!e || st->paused || st->stopping) {
            /* Cancelled or paused while we waited for a worker. */
            pthread_mutex_unlock(&st->mu);
            worker_pool_release(pool, q);
            pthread_mutex_lock(&st->mu);
            continue;
        }
        inline_place(st, e, JOB_RUNNING);
        inline_flow_start(st, q->cfg, jobd_mono_ms());
        e->job->started_at = jobd_now_ms();
        job_t *job = e->job;
        pthread_mutex_unlock(&st->mu);
        log_event(LOG_DEBUG, "job.started", job, "on a worker");
        self->delegate->ops->call(self->delegate, &job, 1, inline_run_done, e);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static int inline_start(proc_t *self)
{
    inline_store *st = self->priv;
    if (!self->queue->ctx->pool) {
        log_event(LOG_WARN, "inline.no_workers", NULL,
                  "queue %s keeps jobs in this process's memory, which has no workers: they will not run",
                  self->queue->cfg->name);
        return 0;
    }
    if (pthread_create(&st->dispatcher, NULL, inline_dispatch, self) != 0) {
        log_event(LOG_ERROR, "inline.start_failed", NULL, "queue %s: cannot start dispatcher",
                  self->queue->cfg->name);
        return -1;
    }
    st->started = true;
    return 0;
}

/* Stops handing out jobs, then waits for this queue's running jobs until the
 * deadline. Jobs still waiting exist only in memory: say how many are lost. */
static void inline_stop(proc_t *self, int64_t deadline_ms)
{
    inline_store *st = self->priv;
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (st->started)
        pthread_join(st->dispatcher, NULL);
    st->started = false;
    while (atomic_load(&self->queue->running) > 0 && jobd_mono_ms() < deadline_ms) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&st->mu);
    size_t waiting = st->counts[JOB_SCHEDULED] + st->counts[JOB_ENQUEUED] + st->counts[JOB_RETRYING];
    size_t running = st->counts[JOB_RUNNING];
    pthread_mutex_unlock(&st->mu);
    if (waiting || running)
        log_event(LOG_WARN, "inline.lost", NULL,
                  "queue %s: %zu waiting and %zu running jobs existed only in memory", self->queue->cfg->name,
                  waiting, running);
}

static json_t *inline_stats(proc_t *self)
{
    inline_store *st = self->priv;
    pthread_mutex_lock(&st->mu);
    json_t *s = json_pack("{s:I,s:I}", "jobs", (json_int_t)st->by_id.n, "trimmed_total",
                          (json_int_t)st->trimmed_total);
    pthread_mutex_unlock(&st->mu);
    return s;
}

static void inline_free_node(hash_node *node)
{
    ientry *e = INLINE_ENTRY(node, hnode);
    job_free(e->job);
    free(e);
}

static void inline_destroy(proc_t *self)
{
    inline_store *st = self->priv;
    if (!st)
        return;
    if (st->started)
        inline_stop(self, jobd_mono_ms());
    hash_destroy(&st->by_id, inline_free_node);
    heap_destroy(&st->due);
    timeindex_destroy(&st->created);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static int inline_check(const json_t *opts, char *err, size_t errlen)
{
    const char *key = NULL;
    json_t *v;
    json_object_foreach((json_t *)opts, key, v) {
        if (strcmp(key, "max_jobs") != 0) {
            snprintf(err, errlen, "unknown option \"%s\"", key);
            return -1;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > INLINE_MAX_JOBS_LIMIT) {
            snprintf(err, errlen, "max_jobs: must be an integer from 1 to %d", INLINE_MAX_JOBS_LIMIT);
            return -1;
        }
    }
    return 0;
}

static const proc_ops inline_ops = {
    .name = "inline",
    .call = inline_call,
    .start = inline_start,
    .stop = inline_stop,
    .stats = inline_stats,
    .destroy = inline_destroy,
    .store = &inline_store_ops,
};

static proc_t *inline_create(jobd_t *ctx, queue_t *q, const json_t *opts, proc_t *delegate,
                             char *err, size_t errlen)
{
    (void)ctx; /* opts passed inline_check in config_parse: read, not checked again */
    proc_t *p = pipeline_proc_new(&inline_ops, q, delegate);
    inline_store *st = p ? calloc(1, sizeof *st) : NULL;
    if (!st || hash_init(&st->by_id, 1024) != 0) {
        if (st)
            free(st);
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const json_t *max = json_object_get(opts, "max_jobs");
    st->max_jobs = max ? (size_t)json_integer_value(max) : INLINE_MAX_JOBS_DEFAULT;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL); /* realtime clock: due times are wall-clock ms */
    p->priv = st;
    return p;
}

const proc_kind proc_inline_kind = {"inline", true, inline_check, inline_create};
