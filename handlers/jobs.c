/* jobs.c - /queues/{queue}/jobs: submit (one job or a batch), list, get, cancel. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/exec.h"
#include "../queues/job.h"
#include "../queues/pipeline.h"
#include "handlers.h"

/* One submission between pipeline_submit and its answer. Each slot is
 * written by the one done call for its job; the atomic countdown and
 * http_complete's lock publish them to the HTTP thread that answers. */
typedef struct submit_state {
    http_req *req;
    bool batch;
    size_t n;
    job_t **jobs;         /* owned; borrowed by the pipeline until done */
    json_t **views;       /* owned references, per job */
    jobd_error **errs;    /* owned, per refused job, else NULL */
    bool *replayed;
    atomic_size_t remaining;
} submit_state;

static void submit_state_free(void *p)
{
    submit_state *st = p;
    for (size_t i = 0; i < st->n; i++) {
        job_free(st->jobs[i]);
        json_decref(st->views[i]);
        free(st->errs[i]);
    }
    free(st->jobs);
    free(st->views);
    free(st->errs);
    free(st->replayed);
    free(st);
}

static submit_state *submit_state_new(http_req *req, size_t n, bool batch)
{
    submit_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->req = req;
    st->batch = batch;
    st->n = n;
    st->jobs = calloc(n, sizeof *st->jobs);
    st->views = calloc(n, sizeof *st->views);
    st->errs = calloc(n, sizeof *st->errs);
    st->replayed = calloc(n, sizeof *st->replayed);
    atomic_init(&st->remaining, n);
    if (!st->jobs || !st->views || !st->errs || !st->replayed) {
        submit_state_free(st);
        return NULL;
    }
    return st;
}

/* Validates element i (obj) into st->jobs[i]. seen holds the ids of the
 * batch so far (NULL for a single job). 0, or -1 with err. */
static int submit_take(submit_state *st, size_t i, const json_t *obj, queue_t *q,
                       const char *idem_key, json_t *seen, jobd_error *err)
{
    jobd_t *ctx = st->req->ctx;
    job_t *job = job_from_request(obj, q->cfg->name, idem_key, &ctx->ids, jobd_now_ms(), err);
    if (!job)
        return -1;
    st->jobs[i] = job;
    if (!exec_table_has(ctx->exec, job->type)) {
        jobd_fail(err, 422, "invalid_job", "unknown type \"%s\": no handler configured",
                  job->type);
        snprintf(err->field, sizeof err->field, "type");
        return -1;
    }
    if (seen && json_object_get(seen, job->id)) {
        jobd_fail(err, 422, "invalid_job", "id \"%s\" appears more than once in the batch",
                  job->id);
        snprintf(err->field, sizeof err->field, "id");
        return -1;
    }
    if (seen && json_object_set_new(seen, job->id, json_true()) != 0)
        return jobd_fail(err, 500, "internal_error", "out of memory");
    if (job->max_attempts == 0)
        job->max_attempts = q->cfg->max_attempts;
    return 0;
}

/* Checks the batch as a whole (size, Idempotency-Key). 0, or -1 with err. */
static int submit_check_batch(const json_t *root, size_t max_batch, const char *idem_key,
                              jobd_error *err)
{
    size_t n = json_array_size(root);
    if (n == 0)
        return jobd_fail(err, 422, "invalid_job", "a batch needs at least one job");
    if (n > max_batch)
        return jobd_fail(err, 422, "batch_too_large", "a batch holds at most %zu jobs, not %zu",
                         max_batch, n);
    if (idem_key)
        return jobd_fail(err, 422, "invalid_job",
                         "the Idempotency-Key header applies to a single job, not a batch");
    return 0;
}

/* Builds and validates every job of root (an object or an array) before any
 * is submitted: a batch is all-or-nothing. A new state, or NULL with err. */
static submit_state *submit_prepare(http_req *req, queue_t *q, const json_t *root,
                                    jobd_error *err)
{
    const char *idem_key = http_header(req, "Idempotency-Key");
    bool batch = json_is_array(root);
    if (batch && submit_check_batch(root, req->ctx->cfg->max_batch, idem_key, err) != 0)
        return NULL;
    size_t n = batch ? json_array_size(root) : 1;
    submit_state *st = submit_state_new(req, n, batch);
    json_t *seen = batch ? json_object() : NULL;
    if (!st || (batch && !seen)) {
        jobd_fail(err, 500, "internal_error", "out of memory");
        json_decref(seen);
        if (st)
            submit_state_free(st);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *obj = batch ? json_array_get(root, i) : root;
        if (submit_take(st, i, obj, q, idem_key, seen, err) != 0) {
            if (batch)
                err->index = (long)i;
            submit_state_free(st);
            st = NULL;
            break;
        }
    }
    json_decref(seen);
    return st;
}

/* The pipeline's done callback: may run on any thread, before or after
 * pipeline_submit returns. The last one hands the request back to HTTP and
 * must not touch st afterwards (the answer may be sent and st freed). */
static void submit_done(void *done_ctx, size_t index, const outcome_t *out)
{
    submit_state *st = done_ctx;
    if (out->kind == OUT_STORED || out->kind == OUT_REPLAYED) {
        st->views[index] = json_incref(out->view);
        st->replayed[index] = out->kind == OUT_REPLAYED;
    } else {
        st->errs[index] = malloc(sizeof *st->errs[index]);
        if (st->errs[index])
            *st->errs[index] = out->err;
    }
    if (atomic_fetch_sub_explicit(&st->remaining, 1, memory_order_acq_rel) == 1)
        http_complete(st->req);
}

/* The refusal of the lowest index, or NULL when every job went in. */
static const jobd_error *submit_refusal(submit_state *st, jobd_error *oom)
{
    for (size_t i = 0; i < st->n; i++) {
        if (st->views[i])
            continue;
        if (!st->errs[i]) {
            jobd_fail(oom, 500, "internal_error", "out of memory");
            return oom;
        }
        if (st->batch)
            st->errs[i]->index = (long)i;
        return st->errs[i];
    }
    return NULL;
}

/* A batch element's view: replayed ones get "replayed": true on a copy (the
 * view may be the store's own record). New reference. */
static json_t *submit_batch_view(submit_state *st, size_t i)
{
    if (!st->replayed[i])
        return json_incref(st->views[i]);
    json_t *v = json_copy(st->views[i]);
    if (v)
        json_object_set_new(v, "replayed", json_true());
    return v;
}

static void submit_answer_batch(http_req *req, submit_state *st)
{
    json_t *jobs = json_array();
    for (size_t i = 0; jobs && i < st->n; i++)
        json_array_append_new(jobs, submit_batch_view(st, i));
    http_json(req, 202, jobs ? json_pack("{s:o}", "jobs", jobs) : NULL);
}

/* Runs on the HTTP thread once every job has its outcome. */
static void submit_answer(http_req *req)
{
    submit_state *st = req->async;
    jobd_error oom;
    const jobd_error *refusal = submit_refusal(st, &oom);
    if (refusal) {
        http_error(req, refusal);
        return;
    }
    if (st->batch) {
        submit_answer_batch(req, st);
        return;
    }
    if (st->replayed[0]) {
        http_json(req, 200, json_incref(st->views[0]));
        return;
    }
    snprintf(req->location, sizeof req->location, "/queues/%s/jobs/%s", st->jobs[0]->queue,
             st->jobs[0]->id);
    http_json(req, 202, json_incref(st->views[0]));
}

static void submit_unavailable(http_req *req, const char *msg)
{
    jobd_error err;
    jobd_fail(&err, 503, "unavailable", "%s", msg);
    err.retry_after = 1;
    http_error(req, &err);
}

void handle_jobs_submit(http_req *req)
{
    if (atomic_load(&req->ctx->shutting_down)) {
        submit_unavailable(req, "the server is shutting down");
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        http_errorf(req, 400, "invalid_json", "invalid JSON at line %d, column %d: %s",
                    jerr.line, jerr.column, jerr.text);
        return;
    }
    queue_t *q = jobd_queue(req->ctx, req->m.queue);
    jobd_error err;
    submit_state *st = submit_prepare(req, q, root, &err);
    json_decref(root);
    if (!st) {
        http_error(req, &err);
        return;
    }
    req->async = st;
    req->async_free = submit_state_free;
    if (pipeline_submit(q, st->jobs, st->n, submit_done, st) != 0) {
        submit_unavailable(req, "the queue cannot take jobs now");
        return;
    }
    http_await(req, submit_answer);
}

void handle_jobs_list(http_req *req)
{
    int state = -1;
    const char *s = http_query(req, "state");
    if (s && (state = job_state_parse(s)) < 0) {
        jobd_error err;
        jobd_fail(&err, 400, "invalid_parameter",
                  "state must be one of scheduled, enqueued, running, succeeded, retrying, "
                  "dead, cancelled");
        snprintf(err.field, sizeof err.field, "state");
        http_error(req, &err);
        return;
    }
    size_t limit;
    const char *cursor;
    if (!handlers_page(req, &limit, &cursor))
        return;
    proc_t *store = handlers_store(req);
    jobd_error err = {0};
    handlers_reply(req, 200, store->ops->store->list(store, state, limit, cursor, &err), &err);
}

void handle_job_get(http_req *req)
{
    proc_t *store = handlers_store(req);
    jobd_error err = {0};
    handlers_reply(req, 200, store->ops->store->get(store, req->m.id, &err), &err);
}

void handle_job_cancel(http_req *req)
{
    proc_t *store = handlers_store(req);
    jobd_error err = {0};
    handlers_reply(req, 200, store->ops->store->cancel(store, req->m.id, &err), &err);
}
