/* periodic.c - /periodic: the schedules (GET) and enqueueing one now
 * outside its ticks (POST /periodic/{name}/trigger). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/job.h"
#include "../queues/periodic.h"
#include "../queues/pipeline.h"
#include "../server/metrics.h"
#include "handlers.h"

void handle_periodic(http_req *req)
{
    json_t *body = periodic_list(req->ctx->periodic);
    if (!body) {
        http_errorf(req, 500, "internal_error", "out of memory");
        return;
    }
    http_json(req, 200, body);
}

/* A trigger between pipeline_submit and its answer. */
typedef struct trigger_state {
    http_req *req;
    queue_t *q;     /* borrowed: the schedule's queue */
    job_t *job;     /* owned; borrowed by the pipeline until done */
    char *text;     /* owned: the view as stored, as JSON text */
    json_t *view;   /* owned reference: the view, when the store gave no text */
    jobd_error err; /* when refused */
    bool refused;
} trigger_state;

static void trigger_state_free(void *p)
{
    trigger_state *st = p;
    job_free(st->job);
    free(st->text);
    json_decref(st->view);
    free(st);
}

/* The pipeline's done callback (any thread): keeps the outcome and hands
 * the request back; st is not touched after http_complete. */
static void trigger_done(void *done_ctx, size_t index, const outcome_t *out)
{
    trigger_state *st = done_ctx;
    if (out->kind == OUT_STORED || out->kind == OUT_REPLAYED) {
        if (out->view_text)
            st->text = strdup(out->view_text);
        else
            st->view = json_incref(out->view);
        metrics_job_submitted(st->req->ctx->metrics, st->q->cfg, false);
    } else {
        st->err = out->err;
        st->refused = true;
    }
    http_complete(st->req);
}

static void trigger_answer(http_req *req)
{
    trigger_state *st = req->async;
    if (st->refused) {
        http_error(req, &st->err);
        return;
    }
    char *text = st->text ? st->text : st->view ? json_dumps(st->view, JSON_COMPACT) : NULL;
    st->text = NULL; /* the answer takes it */
    snprintf(req->location, sizeof req->location, "/queues/%s/jobs/%s", st->job->queue,
             st->job->id);
    http_json_raw(req, 202, text);
}

void handle_periodic_trigger(http_req *req)
{
    jobd_error err = {0};
    if (atomic_load(&req->ctx->shutting_down)) {
        jobd_fail(&err, 503, "unavailable", "%s", JOBD_MSG_SHUTDOWN);
        err.retry_after = 1;
        http_error(req, &err);
        return;
    }
    queue_t *q = NULL;
    job_t *job = NULL;
    if (!req->m.queue_ok) /* not a possible name: no such schedule either */
        jobd_fail(&err, 404, "unknown_periodic", "no periodic schedule of that name");
    else
        job = periodic_trigger_job(req->ctx->periodic, req->m.queue, &q, &err);
    trigger_state *st = job ? calloc(1, sizeof *st) : NULL;
    if (!st) {
        if (job)
            jobd_fail(&err, 500, "internal_error", "out of memory");
        job_free(job);
        http_error(req, &err);
        return;
    }
    st->req = req;
    st->q = q;
    st->job = job;
    req->async = st;
    req->async_free = trigger_state_free;
    if (pipeline_submit(q, &st->job, 1, trigger_done, st) != 0) {
        jobd_fail(&err, 503, "unavailable", "the queue cannot take jobs now");
        err.retry_after = 1;
        http_error(req, &err);
        return;
    }
    http_await(req, trigger_answer);
}
