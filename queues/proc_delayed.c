/* proc_delayed.c - hands each call on to its delegate after a fixed delay
 * (async-job's Delayed), without ever blocking its caller: calls wait in a
 * FIFO, which is also due-time order because the delay is fixed. Outcomes come
 * from the delegate, so a submission through `delayed` is answered once the
 * store behind it has the job. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/log.h"
#include "pipeline.h"

/* How long the thread sleeps at most before it looks at shutting_down. */
#define DELAYED_SLICE_MS 100

typedef struct delayed_call {
    job_t **jobs; /* borrowed pointers, owned array */
    size_t n;
    proc_done_fn done;
    void *done_ctx;
    int64_t due_ms; /* monotonic */
    struct delayed_call *next;
} delayed_call;

typedef struct delayed {
    double delay; /* seconds */
    const atomic_bool *shutting_down; /* the server's: hand everything on at once */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    delayed_call *head, *tail;
    bool stopping;
    bool started;
    pthread_t thread;
} delayed;

static int delayed_check(const json_t *opts, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)opts, key, v) {
        if (strcmp(key, "delay") != 0) {
            snprintf(err, errlen, "unknown option \"%s\"", key);
            return -1;
        }
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 86400 * 365) {
            snprintf(err, errlen, "delay: must be a number of seconds >= 0");
            return -1;
        }
    }
    return 0;
}

static void delayed_forward(proc_t *self, delayed_call *c)
{
    self->delegate->ops->call(self->delegate, c->jobs, c->n, c->done, c->done_ctx);
    free(c->jobs);
    free(c);
}

static int delayed_call_fn(proc_t *self, job_t *const *jobs, size_t n, proc_done_fn done,
                           void *done_ctx)
{
    delayed *d = self->priv;
    delayed_call *c = calloc(1, sizeof *c);
    job_t **copy = c ? malloc(n * sizeof *copy) : NULL;
    if (!copy) {
        free(c);
        outcome_t out = {.kind = OUT_REFUSED};
        jobd_fail(&out.err, 503, "unavailable", "out of memory");
        for (size_t i = 0; i < n; i++)
            done(done_ctx, i, &out);
        return 0;
    }
    memcpy(copy, jobs, n * sizeof *copy);
    *c = (delayed_call){copy, n, done, done_ctx, jobd_mono_ms() + (int64_t)(d->delay * 1000), NULL};
    pthread_mutex_lock(&d->mu);
    if (d->stopping || atomic_load(d->shutting_down)) {
        /* Shutting down: whatever waits behind us (an aggregate flush, a
         * store's drain) must not wait out the delay. */
        pthread_mutex_unlock(&d->mu);
        delayed_forward(self, c);
        return 0;
    }
    if (d->tail)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

static void *delayed_main(void *arg)
{
    proc_t *self = arg;
    delayed *d = self->priv;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        delayed_call *c = d->head;
        if (!c && d->stopping)
            break;
        if (!c) {
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        int64_t now = jobd_mono_ms();
        if (!d->stopping && !atomic_load(d->shutting_down) && c->due_ms > now) {
            /* Short slices: SIGTERM sets shutting_down without a signal here. */
            int64_t until = c->due_ms < now + DELAYED_SLICE_MS ? c->due_ms : now + DELAYED_SLICE_MS;
            struct timespec ts = {until / 1000, (until % 1000) * 1000000L};
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
            continue;
        }
        d->head = c->next;
        if (!d->head)
            d->tail = NULL;
        pthread_mutex_unlock(&d->mu);
        delayed_forward(self, c);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static int delayed_start(proc_t *self)
{
    delayed *d = self->priv;
    if (pthread_create(&d->thread, NULL, delayed_main, self) != 0) {
        log_event(LOG_ERROR, "delayed.start_failed", NULL, "queue %s: cannot start thread",
                  self->queue->cfg->name);
        return -1;
    }
    d->started = true;
    return 0;
}

/* Everything still waiting is handed on at once: a shutdown must not lose it. */
static void delayed_stop(proc_t *self, int64_t deadline_ms)
{
    (void)deadline_ms;
    delayed *d = self->priv;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (d->started)
        pthread_join(d->thread, NULL);
    d->started = false;
    while (d->head) {
        delayed_call *c = d->head;
        d->head = c->next;
        delayed_forward(self, c);
    }
    d->tail = NULL;
}

static json_t *delayed_stats(proc_t *self)
{
    delayed *d = self->priv;
    size_t waiting = 0;
    pthread_mutex_lock(&d->mu);
    for (delayed_call *c = d->head; c; c = c->next)
        waiting += c->n;
    pthread_mutex_unlock(&d->mu);
    return json_pack("{s:f,s:I}", "delay", d->delay, "waiting", (json_int_t)waiting);
}

static void delayed_destroy(proc_t *self)
{
    delayed *d = self->priv;
    if (!d)
        return;
    if (d->started || d->head)
        delayed_stop(self, 0);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static const proc_ops delayed_ops = {
    .name = "delayed",
    .call = delayed_call_fn,
    .start = delayed_start,
    .stop = delayed_stop,
    .stats = delayed_stats,
    .destroy = delayed_destroy,
};

static proc_t *delayed_create(jobd_t *ctx, queue_t *q, const json_t *opts, proc_t *delegate,
                              char *err, size_t errlen)
{
    proc_t *p = pipeline_proc_new(&delayed_ops, q, delegate);
    delayed *d = p ? calloc(1, sizeof *d) : NULL;
    if (!d) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->delay = json_number_value(json_object_get(opts, "delay"));
    d->shutting_down = &ctx->shutting_down;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->priv = d;
    return p;
}

const proc_kind proc_delayed_kind = {"delayed", false, delayed_check, delayed_create};
