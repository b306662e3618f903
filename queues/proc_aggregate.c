/* proc_aggregate.c - group commit in front of a store (async-job's Aggregate).
 *
 * Submitters append to `pending` under a mutex; a free flusher thread swaps
 * pending with its own buffer and hands the batch to the delegate in one call
 * per max_batch jobs. There is no timer: a flusher takes the next batch as
 * soon as it is free, so at low load a job waits one delegate round trip, and
 * under load batches grow by themselves.
 *
 * With ack durable two flushers take turns, so one batch is prepared and
 * queued behind the one the store is writing: neither jobd's work on a batch
 * nor the round trip leaves the store idle. Their batches may be stored in
 * either order, which no client can observe: a job is acknowledged only once
 * stored, so jobs of batches in flight at once were all unacknowledged. With
 * ack buffered, acknowledged jobs may still be in the buffer, so one flusher
 * keeps them in their order.
 *
 * Each entry either has a submitter waiting for its outcome (ack durable: the
 * delegate's outcome is passed on) or is owned here (ack buffered, after the
 * submitter was told "stored" at once; or replayed from the spill file).
 * Owned entries that the store refuses for lack of service (5xx) are kept and
 * retried with capped backoff; what is still unstored at stop() goes to the
 * spill file, which the next start() replays. A replay of a job that was
 * stored after all is answered "replayed" by the store (idempotency by id),
 * so nothing is stored twice. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../server/log.h"
#include "../server/metrics.h"
#include "job.h"
#include "proc_aggregate.h"

#define AGGREGATE_MAX_BUFFER_DEFAULT 100000
#define AGGREGATE_MAX_BYTES_DEFAULT (64 * 1024 * 1024)
#define AGGREGATE_MAX_BYTES_MIN 1024
#define AGGREGATE_MAX_BATCH_DEFAULT 1000
#define AGGREGATE_MAX_BATCH_LIMIT 100000
#define AGGREGATE_BACKOFF_MIN_MS 100
#define AGGREGATE_BACKOFF_MAX_MS 5000
/* The "why" of proc_aggregate_take_copies for a 429 rather than a 503. */
static const char AGGREGATE_QUEUE_FULL[] = "queue full";

/* One delegate call in flight; lives on its flusher's stack. */
typedef struct aggregate_batch {
    aggregate *a;
    job_t **jobs;
    aggregate_ref *refs;
    atomic_size_t remaining;
    atomic_size_t stored;
    atomic_int full_retry_after; /* > 0: jobs were refused for max_depth */
    bool complete; /* under a->mu */
} aggregate_batch;

/* --- options --- */

static bool proc_aggregate_opt_int(const json_t *v, json_int_t lo, json_int_t hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static int proc_aggregate_check(const json_t *opts, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)opts, key, v) {
        const char *why = NULL;
        const char *s = json_string_value(v);
        if (strcmp(key, "ack") == 0) {
            if (!s || (strcmp(s, "durable") != 0 && strcmp(s, "buffered") != 0))
                why = "ack: must be \"durable\" or \"buffered\"";
        } else if (strcmp(key, "max_buffer") == 0) {
            if (!proc_aggregate_opt_int(v, 1, INT32_MAX))
                why = "max_buffer: must be an integer >= 1";
        } else if (strcmp(key, "max_buffer_bytes") == 0) {
            if (!proc_aggregate_opt_int(v, AGGREGATE_MAX_BYTES_MIN, INT64_MAX))
                why = "max_buffer_bytes: must be an integer >= 1024";
        } else if (strcmp(key, "max_batch") == 0) {
            if (!proc_aggregate_opt_int(v, 1, AGGREGATE_MAX_BATCH_LIMIT))
                why = "max_batch: must be an integer from 1 to 100000";
        } else if (strcmp(key, "spill") == 0) {
            if (!s || !*s)
                why = "spill: must be a file path";
        } else {
            snprintf(err, errlen, "unknown option \"%s\"", key);
            return -1;
        }
        if (why) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
    }
    return 0;
}

/* --- buffers --- */

/* Room for extra more entries. 0, or -1 on OOM (the buffer is unchanged). */
int proc_aggregate_buf_reserve(aggregate_buf *b, size_t extra)
{
    if (b->n + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra)
        cap *= 2;
    job_t **jobs = realloc(b->jobs, cap * sizeof *jobs);
    if (jobs)
        b->jobs = jobs;
    aggregate_ref *refs = jobs ? realloc(b->refs, cap * sizeof *refs) : NULL;
    if (!refs)
        return -1;
    b->refs = refs;
    b->cap = cap;
    return 0;
}

/* Moves every entry of from to the end of to. 0, or -1 on OOM (nothing moved). */
static int proc_aggregate_buf_move(aggregate_buf *to, aggregate_buf *from)
{
    if (from->n == 0)
        return 0; /* memcpy must not see the NULL arrays of an unused buffer */
    if (proc_aggregate_buf_reserve(to, from->n) != 0)
        return -1;
    memcpy(to->jobs + to->n, from->jobs, from->n * sizeof *from->jobs);
    memcpy(to->refs + to->n, from->refs, from->n * sizeof *from->refs);
    to->n += from->n;
    from->n = 0;
    return 0;
}

static void proc_aggregate_buf_free(aggregate_buf *b)
{
    free(b->jobs);
    free(b->refs);
    *b = (aggregate_buf){0};
}

/* --- reporting --- */

void proc_aggregate_refuse(proc_done_fn done, void *done_ctx, size_t index, const char *why)
{
    outcome_t out = {.kind = OUT_REFUSED};
    jobd_fail(&out.err, 503, "unavailable", "%s", why);
    out.err.retry_after = 1;
    done(done_ctx, index, &out);
}

static void proc_aggregate_refuse_all(proc_done_fn done, void *done_ctx, size_t n, const char *why)
{
    for (size_t i = 0; i < n; i++)
        proc_aggregate_refuse(done, done_ctx, i, why);
}

/* Why a call of n jobs of bytes in all cannot be taken now, or NULL.
 * Called with a->mu held. */
static const char *proc_aggregate_full(const aggregate *a, size_t n, size_t bytes)
{
    if (a->stopping)
        return JOBD_MSG_SHUTDOWN;
    if (a->held + n > a->max_buffer)
        return "the submission buffer is full (max_buffer jobs)";
    if (a->held_bytes + bytes > a->max_buffer_bytes)
        return "the submission buffer is full (max_buffer_bytes)";
    return NULL;
}

/* The job_mem_size of jobs[0..n) into sizes; their sum. */
static size_t proc_aggregate_sizes(job_t *const *jobs, size_t n, size_t *sizes)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += sizes[i] = job_mem_size(jobs[i]);
    return sum;
}

/* Bytes held by refs[0..n). */
size_t proc_aggregate_bytes(const aggregate_ref *refs, size_t n)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += refs[i].bytes;
    return sum;
}

/* --- submission --- */

/* ack durable: the submitter's done waits for the batch. */
static int proc_aggregate_call_durable(aggregate *a, job_t *const *jobs, size_t n,
                                       proc_done_fn done, void *done_ctx)
{
    size_t few[16]; /* single submissions, the hot path, need no allocation */
    size_t *sizes = n <= sizeof few / sizeof *few ? few : malloc(n * sizeof *sizes);
    if (!sizes) {
        proc_aggregate_refuse_all(done, done_ctx, n, "out of memory");
        return 0;
    }
    size_t bytes = proc_aggregate_sizes(jobs, n, sizes);
    pthread_mutex_lock(&a->mu);
    const char *why = proc_aggregate_full(a, n, bytes);
    if (!why && proc_aggregate_buf_reserve(&a->pending, n) != 0)
        why = "out of memory";
    if (why) {
        pthread_mutex_unlock(&a->mu);
        if (sizes != few)
            free(sizes);
        proc_aggregate_refuse_all(done, done_ctx, n, why);
        return 0;
    }
    aggregate_buf *p = &a->pending;
    for (size_t i = 0; i < n; i++) {
        p->jobs[p->n] = jobs[i];
        p->refs[p->n++] =
            (aggregate_ref){.done = done, .done_ctx = done_ctx, .index = i, .bytes = sizes[i]};
    }
    if (sizes != few)
        free(sizes);
    a->held += n;
    a->held_bytes += bytes;
    a->waiters += n;
    pthread_cond_signal(&a->work_cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

/* The view of a job as submitted, as its buffered submitter is told: as
 * text, so the answer needs no dump, and as a tree for callers that read it. */
typedef struct aggregate_view {
    json_t *tree;
    char *text;
} aggregate_view;

static void proc_aggregate_view_free(aggregate_view *v)
{
    json_decref(v->tree);
    free(v->text);
}

/* Copies jobs and their views (done is called with the views after the
 * copies left our hands). 0, or -1 on OOM with nothing left allocated. */
static int proc_aggregate_copy(job_t *const *jobs, size_t n, job_t **copies,
                               aggregate_view *views)
{
    for (size_t i = 0; i < n; i++) {
        copies[i] = job_dup(jobs[i]);
        views[i] = (aggregate_view){job_view(jobs[i]), job_view_text(jobs[i], NULL)};
        if (!copies[i] || !views[i].tree || !views[i].text) {
            for (size_t k = 0; k <= i; k++) {
                job_free(copies[k]);
                proc_aggregate_view_free(&views[k]);
            }
            return -1;
        }
    }
    return 0;
}

/* Appends owned copies (sizes[i] bytes each) to pending. NULL, or why they
 * were not taken: AGGREGATE_QUEUE_FULL (the store refused jobs for
 * max_depth lately) with its Retry-After in *retry_after, or a 503 reason. */
static const char *proc_aggregate_take_copies(aggregate *a, job_t **copies, size_t n,
                                              const size_t *sizes, int *retry_after)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += sizes[i];
    pthread_mutex_lock(&a->mu);
    const char *why = proc_aggregate_full(a, n, bytes);
    if (!why && proc_aggregate_buf_reserve(&a->pending, n) != 0)
        why = "out of memory";
    if (!why && a->buffered && a->queue_full) {
        why = AGGREGATE_QUEUE_FULL;
        *retry_after = a->full_retry_after;
    }
    if (!why) {
        aggregate_buf *p = &a->pending;
        for (size_t i = 0; i < n; i++) {
            p->jobs[p->n] = copies[i];
            p->refs[p->n++] = (aggregate_ref){.bytes = sizes[i]};
        }
        a->held += n;
        a->held_bytes += bytes;
        pthread_cond_signal(&a->work_cv);
    }
    pthread_mutex_unlock(&a->mu);
    return why;
}

/* ack buffered: "stored" at once, with the view of the job as submitted. */
static int proc_aggregate_call_buffered(aggregate *a, job_t *const *jobs, size_t n,
                                        proc_done_fn done, void *done_ctx)
{
    job_t **copies = calloc(n, sizeof *copies);
    aggregate_view *views = calloc(n, sizeof *views);
    size_t *sizes = calloc(n, sizeof *sizes);
    const char *why = "out of memory";
    if (copies && views && sizes && proc_aggregate_copy(jobs, n, copies, views) == 0) {
        proc_aggregate_sizes(jobs, n, sizes);
        int retry_after = 1;
        why = proc_aggregate_take_copies(a, copies, n, sizes, &retry_after);
        for (size_t i = 0; i < n; i++) {
            if (why == AGGREGATE_QUEUE_FULL) {
                job_free(copies[i]);
                outcome_t out = {.kind = OUT_REFUSED};
                jobd_fail(&out.err, 429, "queue_full",
                          "queue %s is at its max_depth (the store refused this process's "
                          "buffered jobs): retry later",
                          jobs[i]->queue);
                out.err.retry_after = retry_after;
                done(done_ctx, i, &out);
            } else if (why) {
                job_free(copies[i]);
                proc_aggregate_refuse(done, done_ctx, i, why);
            } else {
                outcome_t out = {
                    .kind = OUT_STORED, .view = views[i].tree, .view_text = views[i].text};
                done(done_ctx, i, &out);
            }
            proc_aggregate_view_free(&views[i]);
        }
    } else {
        proc_aggregate_refuse_all(done, done_ctx, n, why);
    }
    free(copies);
    free(views);
    free(sizes);
    return 0;
}

static int proc_aggregate_call(proc_t *self, job_t *const *jobs, size_t n, proc_done_fn done,
                               void *done_ctx)
{
    aggregate *a = self->priv;
    if (n == 0)
        return 0;
    return a->buffered ? proc_aggregate_call_buffered(a, jobs, n, done, done_ctx)
                       : proc_aggregate_call_durable(a, jobs, n, done, done_ctx);
}

/* --- flushing --- */

/* The delegate's outcome for refs[index]: passed on to a waiting submitter,
 * or noted for an owned job. The last one wakes the flusher. */
static void proc_aggregate_batch_done(void *done_ctx, size_t index, const outcome_t *out)
{
    aggregate_batch *b = done_ctx;
    aggregate_ref *r = &b->refs[index];
    bool refused = out->kind == OUT_REFUSED;
    if (!refused)
        atomic_fetch_add_explicit(&b->stored, 1, memory_order_relaxed);
    else if (out->err.status == 429)
        atomic_store_explicit(&b->full_retry_after,
                              out->err.retry_after > 0 ? out->err.retry_after : 1,
                              memory_order_relaxed);
    if (r->done) {
        r->done(r->done_ctx, r->index, out);
    } else if (refused && out->err.status < 500 && out->err.status != 429) {
        /* Refused for what the job is, not for lack of service: a retry
         * cannot help. Said loudly, since the submitter was told "stored". */
        log_event(LOG_ERROR, "aggregate.dropped", b->jobs[index],
                  "refused by the store after it was acknowledged: %s (%s)", out->err.message,
                  out->err.code);
    } else {
        /* Lack of service, or the queue's max_depth (429): the job was
         * acknowledged, so it waits here until the store takes it. */
        r->keep = refused;
    }
    if (atomic_fetch_sub_explicit(&b->remaining, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&b->a->mu);
        b->complete = true;
        pthread_cond_broadcast(&b->a->batch_cv); /* each flusher waits for its own */
        pthread_mutex_unlock(&b->a->mu);
    }
}

/* True when refs a and b belong to one waiting submission. */
static bool proc_aggregate_same_ref(const aggregate_ref *a, const aggregate_ref *b)
{
    return a->done && a->done == b->done && a->done_ctx == b->done_ctx;
}

/* Under max_depth, hands the batch to a store that takes submissions as
 * parts (d->ops->call_parts), which admits each whole: calls it with the
 * sizes of the submissions of refs[0..n). 0; -1 when it reported nothing
 * (out of memory). */
static int proc_aggregate_call_parts(proc_t *d, job_t **jobs, aggregate_ref *refs, size_t n,
                                     aggregate_batch *b)
{
    size_t *parts = d->ops->call_parts ? malloc(n * sizeof *parts) : NULL;
    if (!parts)
        return -1;
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || !proc_aggregate_same_ref(&refs[i - 1], &refs[i]))
            parts[np++] = 0;
        parts[np - 1]++;
    }
    int rc = d->ops->call_parts(d, jobs, n, parts, np, proc_aggregate_batch_done, b);
    free(parts);
    return rc;
}

/* Hands jobs[0..n) to the delegate in one call and waits for every outcome
 * (the entries are reused right after). */
static void proc_aggregate_batch_run(proc_t *self, job_t **jobs, aggregate_ref *refs, size_t n)
{
    aggregate *a = self->priv;
    aggregate_batch b = {.a = a, .jobs = jobs, .refs = refs};
    atomic_init(&b.remaining, n);
    atomic_init(&b.stored, 0);
    atomic_init(&b.full_retry_after, 0);
    for (size_t i = 0; i < n; i++)
        refs[i].keep = false;
    proc_t *d = self->delegate;
    int rc = self->queue->cfg->max_depth > 0 && d->ops->call_parts
                 ? proc_aggregate_call_parts(d, jobs, refs, n, &b)
                 : d->ops->call(d, jobs, n, proc_aggregate_batch_done, &b);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            outcome_t out = {.kind = OUT_REFUSED};
            jobd_fail(&out.err, 503, "unavailable", "the store cannot take jobs now");
            proc_aggregate_batch_done(&b, i, &out);
        }
    }
    pthread_mutex_lock(&a->mu);
    while (!b.complete)
        pthread_cond_wait(&a->batch_cv, &a->mu);
    size_t stored = atomic_load_explicit(&b.stored, memory_order_relaxed);
    int full = atomic_load_explicit(&b.full_retry_after, memory_order_relaxed);
    if (full > 0) {
        a->queue_full = true;
        a->full_retry_after = full;
    } else if (stored > 0) {
        a->queue_full = false;
    }
    a->batches++;
    a->jobs += n;
    a->largest = n > a->largest ? n : a->largest;
    a->stored += stored;
    a->refused += n - stored;
    pthread_mutex_unlock(&a->mu);
}

/* After a flush: drops what is done with (freeing owned copies), keeps what
 * is to be retried in order. Returns how many entries were dropped; those
 * replayed from the spill file are counted in *from_spill, their bytes in
 * *bytes. */
static size_t proc_aggregate_compact(aggregate_buf *f, size_t *from_spill, size_t *bytes)
{
    size_t kept = 0, n = f->n;
    *from_spill = 0;
    *bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (f->refs[i].keep) {
            f->jobs[kept] = f->jobs[i];
            f->refs[kept++] = f->refs[i];
            continue;
        }
        if (!f->refs[i].done)
            job_free(f->jobs[i]);
        *from_spill += f->refs[i].from_spill;
        *bytes += f->refs[i].bytes;
    }
    f->n = kept;
    return n - kept;
}

/* True when entries i-1 and i belong to one waiting submission. */
static bool proc_aggregate_same_call(const aggregate_buf *f, size_t i)
{
    return proc_aggregate_same_ref(&f->refs[i - 1], &f->refs[i]);
}

/* Flushes f in batches of about max_batch. A batch ends only between
 * submissions: a client's batch goes to the store in one call, so it is
 * stored or refused as a whole (the API's all-or-nothing batch). Returns how many
 * entries left f; *from_spill of them were replayed from the spill file;
 * *bytes is their size. */
static size_t proc_aggregate_flush(proc_t *self, aggregate_buf *f, size_t *from_spill,
                                   size_t *bytes)
{
    aggregate *a = self->priv;
    /* Under max_depth a store without call_parts admits or refuses a call
     * whole: one call per submission, so that one that does not fit refuses
     * no other. */
    size_t max_batch = self->queue->cfg->max_depth > 0 && !self->delegate->ops->call_parts
                           ? 1
                           : a->max_batch;
    for (size_t off = 0, end; off < f->n; off = end) {
        end = f->n - off < max_batch ? f->n : off + max_batch;
        while (end < f->n && proc_aggregate_same_call(f, end))
            end++;
        metrics_batch(self->queue->ctx->metrics, self->queue->cfg, end - off);
        proc_aggregate_batch_run(self, f->jobs + off, f->refs + off, end - off);
    }
    return proc_aggregate_compact(f, from_spill, bytes);
}

/* Waits out the retry delay of owned jobs the store refused. Ends early on
 * stop (to retry at once and again until the deadline) and when submitters
 * wait (durable ones are answered by the store, not kept waiting here).
 * Called with a->mu held. */
static void proc_aggregate_backoff(aggregate *a, int64_t *delay_ms)
{
    *delay_ms = *delay_ms ? *delay_ms * 2 : AGGREGATE_BACKOFF_MIN_MS;
    if (*delay_ms > AGGREGATE_BACKOFF_MAX_MS)
        *delay_ms = AGGREGATE_BACKOFF_MAX_MS;
    int64_t until = jobd_mono_ms() + *delay_ms;
    bool was_stopping = a->stopping;
    while (a->stopping == was_stopping && !a->waiters) {
        int64_t limit = a->stopping && a->deadline_ms < until ? a->deadline_ms : until;
        if (jobd_mono_ms() >= limit)
            break;
        struct timespec ts = {limit / 1000, (limit % 1000) * 1000000L};
        pthread_cond_timedwait(&a->work_cv, &a->mu, &ts);
    }
}

/* True when flusher f is done for good: stopped and drained, or stopped
 * with only retries left and past the deadline (stop() takes the rest). Every
 * submitted job gets at least one attempt, even after the deadline. Waits for
 * work otherwise. Called with a->mu held. */
static bool proc_aggregate_wait_work(aggregate *a, const aggregate_flusher *f)
{
    while (!a->pending.n && !f->buf.n && !a->stopping)
        pthread_cond_wait(&a->work_cv, &a->mu);
    if (a->pending.n)
        return false;
    if (!f->buf.n)
        return true;
    return a->stopping && jobd_mono_ms() >= a->deadline_ms;
}

/* Moves pending into f's buffer (behind its retries). Called with a->mu held. */
static void proc_aggregate_take(aggregate *a, aggregate_flusher *f)
{
    if (!f->buf.n) {
        aggregate_buf t = f->buf; /* the swap: pending starts over empty */
        f->buf = a->pending;
        a->pending = t;
    } else if (proc_aggregate_buf_move(&f->buf, &a->pending) != 0) {
        log_event(LOG_WARN, "aggregate.oom", NULL, "retrying the refused jobs alone");
    }
    for (size_t i = 0; i < f->buf.n; i++)
        a->waiters -= f->buf.refs[i].done != NULL;
}

static void *proc_aggregate_main(void *arg)
{
    aggregate_flusher *f = arg;
    aggregate *a = f->self->priv;
    int64_t delay = 0;
    pthread_mutex_lock(&a->mu);
    while (!proc_aggregate_wait_work(a, f)) {
        proc_aggregate_take(a, f);
        pthread_mutex_unlock(&a->mu);
        size_t from_spill, bytes;
        size_t gone = proc_aggregate_flush(f->self, &f->buf, &from_spill, &bytes);
        pthread_mutex_lock(&a->mu);
        a->held -= gone;
        a->held_bytes -= bytes;
        proc_aggregate_spill_done(a, from_spill);
        if (f->buf.n)
            proc_aggregate_backoff(a, &delay);
        else
            delay = 0;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* --- life --- */

static int proc_aggregate_start(proc_t *self)
{
    aggregate *a = self->priv;
    pthread_mutex_lock(&a->mu);
    int rc = a->spill ? proc_aggregate_spill_load(self) : 0;
    pthread_mutex_unlock(&a->mu);
    if (rc != 0)
        return -1;
    for (size_t i = 0; i < a->n_flushers; i++) {
        aggregate_flusher *f = &a->flushers[i];
        if (pthread_create(&f->thread, NULL, proc_aggregate_main, f) != 0) {
            log_event(LOG_ERROR, "aggregate.start_failed", NULL,
                      "queue %s: cannot start flusher", self->queue->cfg->name);
            return -1; /* stop() joins those that started */
        }
        f->started = true;
    }
    return 0;
}

/* Everything still held, in one buffer (the first flusher's: its retries,
 * the other flushers', then pending), so the spill file is written once.
 * Called with a->mu held. */
static void proc_aggregate_gather(aggregate *a)
{
    aggregate_buf *all = &a->flushers[0].buf;
    for (size_t i = 1; i < a->n_flushers; i++)
        proc_aggregate_buf_move(all, &a->flushers[i].buf);
    proc_aggregate_buf_move(all, &a->pending);
}

/* Takes no more jobs, flushes what it holds (owned jobs are retried until the
 * deadline), then answers or spills the rest. Without a started flusher the
 * flushing happens on the caller's thread. */
static void proc_aggregate_stop(proc_t *self, int64_t deadline_ms)
{
    aggregate *a = self->priv;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    a->deadline_ms = deadline_ms;
    pthread_cond_broadcast(&a->work_cv);
    pthread_mutex_unlock(&a->mu);
    bool any = false;
    for (size_t i = 0; i < a->n_flushers; i++) {
        aggregate_flusher *f = &a->flushers[i];
        if (f->started)
            pthread_join(f->thread, NULL);
        any |= f->started;
        f->started = false;
    }
    if (!any)
        proc_aggregate_main(&a->flushers[0]);
    pthread_mutex_lock(&a->mu);
    proc_aggregate_gather(a);
    /* The rest only if gathering ran out of memory. */
    for (size_t i = 0; i < a->n_flushers; i++)
        proc_aggregate_spill_leftovers(a, &a->flushers[i].buf);
    proc_aggregate_spill_leftovers(a, &a->pending);
    pthread_mutex_unlock(&a->mu);
}

static json_t *proc_aggregate_stats(proc_t *self)
{
    aggregate *a = self->priv;
    pthread_mutex_lock(&a->mu);
    json_t *s = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "ack",
                          a->buffered ? "buffered" : "durable", "batches", (json_int_t)a->batches,
                          "jobs", (json_int_t)a->jobs, "largest_batch", (json_int_t)a->largest,
                          "buffered", (json_int_t)a->held, "buffered_bytes",
                          (json_int_t)a->held_bytes, "stored", (json_int_t)a->stored,
                          "refused", (json_int_t)a->refused, "spilled", (json_int_t)a->spilled);
    pthread_mutex_unlock(&a->mu);
    return s;
}

static void proc_aggregate_destroy(proc_t *self)
{
    aggregate *a = self->priv;
    if (!a)
        return;
    if (!a->stopping || a->held)
        proc_aggregate_stop(self, jobd_mono_ms());
    proc_aggregate_buf_free(&a->pending);
    for (size_t i = 0; i < a->n_flushers; i++)
        proc_aggregate_buf_free(&a->flushers[i].buf);
    free(a->spill);
    pthread_cond_destroy(&a->work_cv);
    pthread_cond_destroy(&a->batch_cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static const proc_ops proc_aggregate_ops = {
    .name = "aggregate",
    .call = proc_aggregate_call,
    .start = proc_aggregate_start,
    .stop = proc_aggregate_stop,
    .stats = proc_aggregate_stats,
    .destroy = proc_aggregate_destroy,
};

static json_int_t proc_aggregate_opt_or(const json_t *opts, const char *key, json_int_t dflt)
{
    const json_t *v = json_object_get(opts, key);
    return v ? json_integer_value(v) : dflt;
}

static proc_t *proc_aggregate_create(jobd_t *ctx, queue_t *q, const json_t *opts, proc_t *delegate,
                                     char *err, size_t errlen)
{
    (void)ctx; /* opts passed proc_aggregate_check in config_parse: read, not checked again */
    proc_t *p = pipeline_proc_new(&proc_aggregate_ops, q, delegate);
    aggregate *a = p ? calloc(1, sizeof *a) : NULL;
    const char *spill = json_string_value(json_object_get(opts, "spill"));
    if (a && spill && !(a->spill = strdup(spill))) {
        free(a);
        a = NULL;
    }
    if (!a) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *ack = json_string_value(json_object_get(opts, "ack"));
    a->buffered = ack && strcmp(ack, "buffered") == 0;
    a->max_buffer = (size_t)proc_aggregate_opt_or(opts, "max_buffer", AGGREGATE_MAX_BUFFER_DEFAULT);
    a->max_buffer_bytes =
        (size_t)proc_aggregate_opt_or(opts, "max_buffer_bytes", AGGREGATE_MAX_BYTES_DEFAULT);
    a->max_batch = (size_t)proc_aggregate_opt_or(opts, "max_batch", AGGREGATE_MAX_BATCH_DEFAULT);
    a->n_flushers = a->buffered ? 1 : AGGREGATE_FLUSHERS_DURABLE;
    for (size_t i = 0; i < a->n_flushers; i++)
        a->flushers[i].self = p;
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->work_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&a->batch_cv, NULL);
    p->priv = a;
    return p;
}

const proc_kind proc_aggregate_kind = {"aggregate", false, proc_aggregate_check,
                                       proc_aggregate_create};
