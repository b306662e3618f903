/* pipeline.c - builds a queue's chain of processors from its config, and the
 * retry decision shared by the stores. */
#include "pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"

static const proc_kind *const pipeline_kinds[] = {
    &proc_inline_kind,
    &proc_delayed_kind,
    &proc_redis_kind,
    &proc_aggregate_kind,
};

const proc_kind *pipeline_kind(const char *name)
{
    for (size_t i = 0; i < sizeof pipeline_kinds / sizeof pipeline_kinds[0]; i++)
        if (strcmp(pipeline_kinds[i]->name, name) == 0)
            return pipeline_kinds[i];
    return NULL;
}

queue_t *pipeline_queue(jobd_t *ctx, const char *name)
{
    for (size_t i = 0; name && i < ctx->n_queues; i++)
        if (strcmp(ctx->queues[i]->cfg->name, name) == 0)
            return ctx->queues[i];
    return NULL;
}

static int pipeline_check_proc(const char *name, const json_t *opts, bool *is_store, char *why,
                               size_t whylen)
{
    const proc_kind *kind = pipeline_kind(name);
    if (!kind) {
        snprintf(why, whylen, "unknown processor \"%s\"", name);
        return -1;
    }
    *is_store = kind->is_store;
    return kind->check ? kind->check(opts, why, whylen) : 0;
}

const config_checks pipeline_config_checks = {pipeline_check_proc, exec_check_handler};

proc_t *pipeline_proc_new(const proc_ops *ops, queue_t *q, proc_t *delegate)
{
    proc_t *p = calloc(1, sizeof *p);
    if (p) {
        p->ops = ops;
        p->queue = q;
        p->delegate = delegate;
    }
    return p;
}

json_t *pipeline_proc_stats(queue_t *q, const char *name)
{
    for (size_t i = 0; i < q->n_chain; i++) {
        const proc_ops *ops = q->chain[i]->ops;
        if (strcmp(ops->name, name) == 0)
            return ops->stats ? ops->stats(q->chain[i]) : NULL;
    }
    return NULL;
}

static void pipeline_proc_free(proc_t *p)
{
    if (p->ops->destroy)
        p->ops->destroy(p);
    free(p);
}

/* Wraps inner with entries[n-1], then entries[n-2], ... (last first), so that
 * entries[0] ends up outermost. On failure the processors made so far are
 * freed, inner included, and NULL is returned with err. */
static proc_t *pipeline_wrap(jobd_t *ctx, queue_t *q, const char *side, const proc_cfg *entries,
                             size_t n, proc_t *inner, char *err, size_t errlen)
{
    for (size_t i = n; i-- > 0;) {
        const proc_kind *k = pipeline_kind(entries[i].name);
        char perr[256] = "unknown processor";
        proc_t *p = k ? k->create(ctx, q, entries[i].opts, inner, perr, sizeof perr) : NULL;
        if (!p) {
            snprintf(err, errlen, "queues.%s.%s[%zu]: %s", q->cfg->name, side, i, perr);
            while (inner) {
                proc_t *next = inner->delegate;
                pipeline_proc_free(inner);
                inner = next;
            }
            return NULL;
        }
        inner = p;
    }
    return inner;
}

queue_t *pipeline_build(jobd_t *ctx, const queue_cfg *cfg, char *err, size_t errlen)
{
    queue_t *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->cfg = cfg;
    q->ctx = ctx;
    atomic_init(&q->running, 0);
    proc_t *exec = exec_proc_create(ctx, q);
    if (!exec) {
        snprintf(err, errlen, "out of memory");
        free(q);
        return NULL;
    }
    q->server = pipeline_wrap(ctx, q, "dequeue", cfg->dequeue, cfg->n_dequeue, exec, err, errlen);
    if (q->server)
        q->client = pipeline_wrap(ctx, q, "enqueue", cfg->enqueue, cfg->n_enqueue, q->server, err,
                                  errlen);
    if (!q->client) {
        free(q);
        return NULL;
    }
    for (proc_t *p = q->client; p; p = p->delegate)
        q->n_chain++;
    q->chain = calloc(q->n_chain, sizeof *q->chain);
    if (!q->chain) {
        q->n_chain = 0;
        snprintf(err, errlen, "out of memory");
        pipeline_free(q);
        return NULL;
    }
    size_t i = 0;
    for (proc_t *p = q->client; p; p = p->delegate) {
        q->chain[i++] = p;
        if (p->ops->store && !q->store)
            q->store = p;
    }
    if (!q->store) {
        /* config_parse refuses such queues; this guards direct callers. */
        snprintf(err, errlen, "queues.%s: needs exactly one store processor", cfg->name);
        pipeline_free(q);
        return NULL;
    }
    return q;
}

int pipeline_start(queue_t *q)
{
    for (size_t i = q->n_chain; i-- > 0;) {
        proc_t *p = q->chain[i];
        if (p->ops->start && p->ops->start(p) != 0)
            return -1;
    }
    return 0;
}

int pipeline_submit(queue_t *q, job_t *const *jobs, size_t n, proc_done_fn done, void *done_ctx)
{
    return q->client->ops->call(q->client, jobs, n, done, done_ctx);
}

void pipeline_stop(queue_t *q, int64_t deadline_ms)
{
    for (size_t i = 0; i < q->n_chain; i++)
        if (q->chain[i]->ops->stop)
            q->chain[i]->ops->stop(q->chain[i], deadline_ms);
}

void pipeline_free(queue_t *q)
{
    if (!q)
        return;
    if (q->chain) {
        for (size_t i = 0; i < q->n_chain; i++)
            pipeline_proc_free(q->chain[i]);
    } else {
        /* Built only partly: walk the delegates instead. */
        for (proc_t *p = q->client; p;) {
            proc_t *next = p->delegate;
            pipeline_proc_free(p);
            p = next;
        }
    }
    free(q->chain);
    free(q);
}

/* README, Jobs: min(max, base + factor * n^exponent) + random(0, jitter * n). */
static double pipeline_backoff(const backoff_cfg *b, int attempts)
{
    double n = attempts;
    double d = fmin(b->max, b->base + b->factor * pow(n, b->exponent));
    double r = (double)arc4random() / (double)UINT32_MAX;
    return d + r * b->jitter * n;
}

job_state pipeline_next_state(const queue_cfg *cfg, const job_t *job, const outcome_t *out,
                              double *delay)
{
    *delay = 0;
    if (out->kind == OUT_SUCCEEDED)
        return JOB_SUCCEEDED;
    int max = job->max_attempts > 0 ? job->max_attempts : cfg->max_attempts;
    if (out->kind == OUT_FAILED_PERMANENT || job->attempts >= max)
        return JOB_DEAD;
    if (out->interrupted)
        return JOB_ENQUEUED;
    *delay = out->retry_after >= 0 ? out->retry_after : pipeline_backoff(&cfg->backoff, job->attempts);
    return JOB_RETRYING;
}
