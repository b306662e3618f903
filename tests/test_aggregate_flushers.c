/* test_aggregate_flushers.c - how many batches the aggregate processor keeps
 * in flight: two with ack durable (the next batch is handed on while the
 * store still writes the previous one), one with ack buffered (acknowledged
 * jobs are stored in their order).
 *
 * The queue is aggregate -> hold -> inline, built with pipeline_build. The
 * "hold" stage keeps every call waiting until a second call is in flight at
 * the same time, or until a deadline, and records the most calls it saw at
 * once. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "../queues/job.h"
#include "../queues/pipeline.h"
#include "../server/config.h"
#include "support.h"

#define HOLD_MS 300  /* how long a lone call waits for company */
#define WAIT_MS 5000 /* deadline for the answers */

typedef struct hold {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight, most;
} hold;

typedef struct fixture {
    jobd_t ctx;
    proc_cfg enq[1], deq[1];
    queue_cfg qc;
    queue_t *q;
    proc_t *hold_proc;
    hold h;
} fixture;

/* Waits (bounded) until another call is in flight too, then passes on. */
static int hold_call(proc_t *self, job_t *const *jobs, size_t n, proc_done_fn done, void *ctx)
{
    hold *h = self->priv;
    pthread_mutex_lock(&h->mu);
    h->in_flight++;
    h->most = h->in_flight > h->most ? h->in_flight : h->most;
    pthread_cond_broadcast(&h->cv);
    long long deadline = ts_now_ms() + ts_patience(HOLD_MS);
    while (h->most < 2 && ts_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    int rc = self->delegate->ops->call(self->delegate, jobs, n, done, ctx);
    pthread_mutex_lock(&h->mu);
    h->in_flight--;
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static const proc_ops hold_ops = {.name = "hold", .call = hold_call};

static fixture *fixture_new(const char *opts)
{
    fixture *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    f->enq[0] = (proc_cfg){.name = "aggregate", .opts = json_loads(opts, 0, NULL)};
    f->deq[0] = (proc_cfg){.name = "inline", .opts = json_object()};
    f->qc = (queue_cfg){.enqueue = f->enq, .n_enqueue = 1, .dequeue = f->deq, .n_dequeue = 1,
                        .max_attempts = 25, .timeout = 60};
    strcpy(f->qc.name, "q");
    char err[256] = "";
    f->q = pipeline_build(&f->ctx, &f->qc, err, sizeof err);
    cr_assert_not_null(f->q, "%s", err);
    pthread_mutex_init(&f->h.mu, NULL);
    pthread_cond_init(&f->h.cv, NULL);
    f->hold_proc = pipeline_proc_new(&hold_ops, f->q, f->q->store);
    f->hold_proc->priv = &f->h;
    f->q->client->delegate = f->hold_proc;
    return f;
}

static void fixture_free(fixture *f)
{
    pipeline_stop(f->q, jobd_mono_ms());
    pipeline_free(f->q);
    free(f->hold_proc);
    pthread_cond_destroy(&f->h.cv);
    pthread_mutex_destroy(&f->h.mu);
    json_decref(f->enq[0].opts);
    json_decref(f->deq[0].opts);
    free(f);
}

static job_t *make_job(const char *id)
{
    job_t *job = job_new();
    cr_assert_not_null(job);
    snprintf(job->id, sizeof job->id, "%s", id);
    strcpy(job->queue, "q");
    strcpy(job->type, "noop");
    job->created_at = jobd_now_ms();
    job->max_attempts = 25;
    job->state = JOB_ENQUEUED;
    return job;
}

static void on_done(void *done_ctx, size_t index, const outcome_t *out)
{
    (void)index;
    atomic_int *stored = done_ctx;
    if (out->kind == OUT_STORED)
        atomic_fetch_add(stored, 1);
}

/* Submits a, waits until its batch is held, then submits b; returns the
 * most calls the store saw at once, once both jobs are stored. */
static int most_in_flight(fixture *f)
{
    job_t *a = make_job("a"), *b = make_job("b");
    atomic_int stored = 0;
    cr_assert_eq(pipeline_start(f->q), 0);
    cr_assert_eq(pipeline_submit(f->q, &a, 1, on_done, &stored), 0);
    long long deadline = ts_now_ms() + ts_patience(WAIT_MS);
    bool held = false;
    while (!held && ts_now_ms() < deadline) {
        pthread_mutex_lock(&f->h.mu);
        held = f->h.in_flight == 1;
        pthread_mutex_unlock(&f->h.mu);
        if (!held)
            ts_sleep_ms(1);
    }
    cr_assert(held, "the first batch never reached the store");
    cr_assert_eq(pipeline_submit(f->q, &b, 1, on_done, &stored), 0);
    while (atomic_load(&stored) < 2 && ts_now_ms() < deadline)
        ts_sleep_ms(1);
    cr_assert_eq(atomic_load(&stored), 2, "both jobs stored");
    pthread_mutex_lock(&f->h.mu);
    int most = f->h.most;
    pthread_mutex_unlock(&f->h.mu);
    fixture_free(f);
    job_free(a);
    job_free(b);
    return most;
}

Test(aggregate, durable_hands_on_the_next_batch_while_one_is_stored)
{
    cr_assert_eq(most_in_flight(fixture_new("{}")), 2);
}

Test(aggregate, buffered_keeps_one_batch_in_flight)
{
    cr_assert_eq(most_in_flight(fixture_new("{\"ack\": \"buffered\"}")), 1);
}
