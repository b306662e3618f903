/* exec.c - the table of handlers by job type, and the executor: the innermost
 * pipeline stage, which runs each job on a reserved worker. */
#include "exec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/config.h"
#include "../server/log.h"
#include "../server/metrics.h"
#include "../util/utf8.h"
#include "job.h"
#include "pipeline.h"
#include "worker.h"

typedef struct exec_handler {
    char type[JOB_TYPE_MAX + 1];
    const exec_kind *kind;
    void *state;
} exec_handler;

struct exec_table {
    exec_handler *h;
    size_t n;
};

static const exec_kind *const exec_kinds[] = {
    &exec_builtin_kind,
    &exec_webhook_kind,
    &exec_command_kind,
};

const exec_kind *exec_kind_find(const char *name)
{
    for (size_t i = 0; i < sizeof exec_kinds / sizeof exec_kinds[0]; i++)
        if (strcmp(exec_kinds[i]->name, name) == 0)
            return exec_kinds[i];
    return NULL;
}

int exec_check_handler(const char *type, const json_t *opts, char *err, size_t errlen)
{
    const char *kind = json_string_value(json_object_get(opts, "kind"));
    if (!kind) {
        snprintf(err, errlen, "kind: must be a string");
        return -1;
    }
    const exec_kind *k = exec_kind_find(kind);
    if (!k) {
        snprintf(err, errlen, "kind: unknown handler kind \"%s\" (builtin, webhook or command)", kind);
        return -1;
    }
    return k->check(type, opts, err, errlen);
}

exec_table_t *exec_table_new(const config_t *cfg, char *err, size_t errlen)
{
    exec_table_t *t = calloc(1, sizeof *t);
    if (!t || !(t->h = calloc(cfg->n_handlers ? cfg->n_handlers : 1, sizeof *t->h))) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_handlers; i++) {
        const handler_cfg *hc = &cfg->handlers[i];
        exec_handler *h = &t->h[t->n];
        h->kind = exec_kind_find(hc->kind);
        char kerr[256] = "";
        h->state = h->kind ? h->kind->create(hc->type, hc->opts, kerr, sizeof kerr) : NULL;
        if (!h->state) {
            snprintf(err, errlen, "handlers.%s: %s", hc->type, kerr[0] ? kerr : "cannot be created");
            exec_table_free(t);
            return NULL;
        }
        snprintf(h->type, sizeof h->type, "%s", hc->type);
        t->n++;
    }
    return t;
}

static exec_handler *exec_table_find(const exec_table_t *t, const char *type)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->h[i].type, type) == 0)
            return &t->h[i];
    return NULL;
}

bool exec_table_has(const exec_table_t *t, const char *type)
{
    return exec_table_find(t, type) != NULL;
}

void exec_table_run(exec_table_t *t, const job_t *job, double queue_timeout,
                    const jobd_interrupt *intr, exec_result *res)
{
    *res = (exec_result){.status = EXEC_OK, .retry_after = -1};
    exec_handler *h = exec_table_find(t, job->type);
    if (!h) {
        /* Submit refuses unknown types; this is a job stored by a process
         * with another config. Retrying cannot help. */
        exec_fail(res, EXEC_PERMANENT, "no handler configured for type \"%s\"", job->type);
        return;
    }
    double timeout = job->timeout;
    if (timeout <= 0 && h->kind->timeout)
        timeout = h->kind->timeout(h->state);
    if (timeout <= 0)
        timeout = queue_timeout;
    exec_job ej = {.job = job, .timeout = timeout, .interrupt = intr};
    char *payload = job_payload(job, &ej.payload_len);
    if (!payload) {
        exec_fail(res, EXEC_RETRY, "out of memory building the payload");
        return;
    }
    ej.payload = payload;
    ej.deadline_ms = jobd_mono_ms() + (int64_t)(timeout * 1000.0);
    h->kind->run(h->state, &ej, res);
    free(payload);
}

void exec_table_kill_all(exec_table_t *t)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (t->h[i].kind->kill_all)
            t->h[i].kind->kill_all(t->h[i].state);
}

void exec_table_free(exec_table_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        t->h[i].kind->destroy(t->h[i].state);
    free(t->h);
    free(t);
}

void exec_fail(exec_result *res, exec_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
    res->status = status;
    /* Cut short: drop a UTF-8 sequence the cut split, so views stay valid JSON. */
    if (n >= (int)sizeof res->error)
        res->error[utf8_cut(res->error, sizeof res->error - 1)] = '\0';
}

/* --- the executor stage --- */

typedef struct exec_task {
    proc_t *self;
    job_t *job; /* borrowed from the caller until done */
    size_t index;
    proc_done_fn done;
    void *done_ctx;
} exec_task;

static void exec_task_run(void *arg)
{
    exec_task *t = arg;
    queue_t *q = t->self->queue;
    exec_result res;
    int64_t t0 = jobd_mono_us();
    /* Due: when it could first run (its schedule or retry time), else its creation. */
    int64_t due = t->job->run_at > 0 ? t->job->run_at : t->job->created_at;
    metrics_job_started(q->ctx->metrics, q->cfg, (double)(jobd_now_ms() - due) / 1000.0);
    exec_table_run(q->ctx->exec, t->job, q->cfg->timeout, &q->ctx->interrupt, &res);
    static const outcome_kind kinds[] = {
        [EXEC_OK] = OUT_SUCCEEDED, [EXEC_RETRY] = OUT_FAILED, [EXEC_PERMANENT] = OUT_FAILED_PERMANENT};
    outcome_t out = {
        .kind = kinds[res.status],
        .message = res.status == EXEC_OK ? NULL : res.error,
        .retry_after = res.retry_after,
        .duration = (double)(jobd_mono_us() - t0) / 1e6,
        .interrupted = res.status != EXEC_OK && res.interrupted,
    };
    metrics_job_ran(q->ctx->metrics, q->cfg, t->job->type, out.duration, res.status == EXEC_OK);
    t->done(t->done_ctx, t->index, &out);
    free(t);
}

static int exec_call(proc_t *self, job_t *const *jobs, size_t n, proc_done_fn done, void *done_ctx)
{
    for (size_t i = 0; i < n; i++) {
        exec_task *t = malloc(sizeof *t);
        if (!t) {
            /* The run never starts: give its slot back before reporting. */
            worker_pool_release(self->queue->ctx->pool, self->queue);
            outcome_t out = {.kind = OUT_FAILED, .message = "out of memory", .retry_after = -1};
            done(done_ctx, i, &out);
            continue;
        }
        *t = (exec_task){self, jobs[i], i, done, done_ctx};
        worker_pool_run(self->queue->ctx->pool, self->queue, exec_task_run, t);
    }
    return 0;
}

static const proc_ops exec_ops = {.name = "executor", .call = exec_call};

proc_t *exec_proc_create(jobd_t *ctx, queue_t *q)
{
    (void)ctx;
    return pipeline_proc_new(&exec_ops, q, NULL);
}
