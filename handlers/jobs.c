/* jobs.c - /queues/{queue}/jobs: submit (one job or a batch), list, get, cancel. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/exec.h"
#include "../queues/job.h"
#include "../queues/pipeline.h"
#include "../queues/store.h"
#include "../server/log.h"
#include "../server/metrics.h"
#include "handlers.h"

/* One job's outcome, written by the one done call for it. */
typedef struct submit_slot {
    char *text;       /* owned: the view as JSON text, when the store gave one */
    size_t text_len;
    json_t *view;     /* owned reference: the view, when the store gave no text */
    jobd_error *err;  /* owned, when refused */
    bool replayed;
} submit_slot;

/* One submission between pipeline_submit and its answer, in one allocation.
 * The atomic countdown and http_complete's lock publish the slots to the
 * HTTP thread that answers. */
typedef struct submit_state {
    http_req *req;
    const queue_cfg *qc; /* borrowed: the queue's config, for the metrics */
    bool batch;
    size_t n;
    job_t **jobs; /* n, in the same block; owned, borrowed by the pipeline until done */
    atomic_size_t remaining;
    submit_slot slots[]; /* n */
} submit_state;

static void submit_state_free(void *p)
{
    submit_state *st = p;
    for (size_t i = 0; i < st->n; i++) {
        job_free(st->jobs[i]);
        free(st->slots[i].text);
        json_decref(st->slots[i].view);
        free(st->slots[i].err);
    }
    free(st);
}

static submit_state *submit_state_new(http_req *req, size_t n, bool batch)
{
    /* The job pointers follow the slots, whose alignment suits them. */
    submit_state *st = calloc(1, sizeof *st + n * (sizeof(submit_slot) + sizeof(job_t *)));
    if (!st)
        return NULL;
    st->req = req;
    st->batch = batch;
    st->n = n;
    st->jobs = (job_t **)(void *)(st->slots + n);
    atomic_init(&st->remaining, n);
    return st;
}

/* The headers of a submission that apply to its jobs. */
typedef struct submit_headers {
    const char *idem_key;    /* borrowed, NULL = none */
    const char *traceparent; /* into tp, NULL = none: every job of the batch gets it */
    const char *tracestate;  /* into ts, NULL = none or too long */
    char tp[512]; /* room for a later version's extra fields; longer is taken as malformed */
    char ts[TRACE_STATE_MAX + 1];
} submit_headers;

/* Validates element i (obj) into st->jobs[i]. seen holds the ids of the
 * batch so far (NULL for a single job). 0, or -1 with err. */
static int submit_take(submit_state *st, size_t i, const json_t *obj, queue_t *q,
                       const submit_headers *h, json_t *seen, jobd_error *err)
{
    jobd_t *ctx = st->req->ctx;
    job_t *job = job_from_request(obj, q->cfg->name, h->idem_key, &ctx->ids, jobd_now_ms(), err);
    if (!job)
        return -1;
    st->jobs[i] = job;
    if (job_set_trace(job, h->traceparent, h->tracestate) != 0)
        return jobd_fail(err, 500, "internal_error", "out of memory");
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
    submit_headers h;
    h.idem_key = http_header(req, "Idempotency-Key");
    /* Several headers are one comma-joined list (RFC 9110): a doubled
     * traceparent is then malformed, and tracestates add up. */
    h.traceparent = http_header_join(req, "traceparent", h.tp, sizeof h.tp);
    h.tracestate = http_header_join(req, "tracestate", h.ts, sizeof h.ts);
    bool batch = json_is_array(root);
    if (batch && submit_check_batch(root, req->ctx->cfg->max_batch, h.idem_key, err) != 0)
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
        if (submit_take(st, i, obj, q, &h, seen, err) != 0) {
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

/* The pipeline's done callback: may run on any thread (often the store's
 * own, so it only keeps the view), before or after pipeline_submit returns.
 * The last one hands the request back to HTTP and must not touch st
 * afterwards (the answer may be sent and st freed). */
static void submit_done(void *done_ctx, size_t index, const outcome_t *out)
{
    submit_state *st = done_ctx;
    submit_slot *slot = &st->slots[index];
    if (out->kind == OUT_STORED || out->kind == OUT_REPLAYED) {
        /* The store's text is what it stored: the answer is the job as stored. */
        if (out->view_text && (slot->text = strdup(out->view_text)))
            slot->text_len = strlen(slot->text);
        else if (!out->view_text)
            slot->view = json_incref(out->view);
        slot->replayed = out->kind == OUT_REPLAYED;
        metrics_job_submitted(st->req->ctx->metrics, st->qc, slot->replayed);
    } else {
        slot->err = malloc(sizeof *slot->err);
        if (slot->err)
            *slot->err = out->err;
    }
    if (atomic_fetch_sub_explicit(&st->remaining, 1, memory_order_acq_rel) == 1)
        http_complete(st->req);
}

/* Gives each view that came as a tree its text: here, on the HTTP thread,
 * rather than on the store's thread in submit_done. */
static void submit_dump_views(submit_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        submit_slot *slot = &st->slots[i];
        if (slot->view && !slot->text && (slot->text = json_dumps(slot->view, JSON_COMPACT)))
            slot->text_len = strlen(slot->text);
    }
}

/* The refusal of the lowest index, or NULL when every job went in (with the
 * text of its view). */
static const jobd_error *submit_refusal(submit_state *st, jobd_error *oom)
{
    for (size_t i = 0; i < st->n; i++) {
        submit_slot *slot = &st->slots[i];
        if (slot->text)
            continue;
        if (!slot->err) {
            jobd_fail(oom, 500, "internal_error", "out of memory");
            return oom;
        }
        if (st->batch)
            slot->err->index = (long)i;
        return slot->err;
    }
    return NULL;
}

/* What a replayed job's view in a batch answer gets before its closing
 * brace, as if "replayed": true were set on the object. */
static const char submit_replayed[] = ",\"replayed\":true";

/* Appends the view of slot to p (a view is never the empty object). Returns
 * the new end. */
static char *submit_put_view(char *p, const submit_slot *slot)
{
    const char *v = slot->text;
    size_t len = slot->text_len;
    bool mark = slot->replayed && len >= 2 && v[len - 1] == '}';
    if (mark)
        len--;
    memcpy(p, v, len);
    p += len;
    if (mark) {
        memcpy(p, submit_replayed, sizeof submit_replayed - 1);
        p += sizeof submit_replayed - 1;
        *p++ = '}';
    }
    return p;
}

/* {"jobs":[view,...]} in input order, pasted from the view texts. New
 * memory, or NULL on OOM. */
static char *submit_batch_text(const submit_state *st)
{
    static const char head[] = "{\"jobs\":[", tail[] = "]}";
    size_t len = sizeof head - 1 + sizeof tail - 1;
    for (size_t i = 0; i < st->n; i++)
        len += st->slots[i].text_len + 1 +
               (st->slots[i].replayed ? sizeof submit_replayed - 1 : 0);
    char *text = malloc(len + 1);
    if (!text)
        return NULL;
    char *p = text;
    memcpy(p, head, sizeof head - 1);
    p += sizeof head - 1;
    for (size_t i = 0; i < st->n; i++) {
        if (i > 0)
            *p++ = ',';
        p = submit_put_view(p, &st->slots[i]);
    }
    memcpy(p, tail, sizeof tail);
    return text;
}

/* A debug line per job the submission stored or replayed, under the
 * request's id: what ties a job (and its trace) to the request that made it. */
static void submit_log(const submit_state *st)
{
    if (!log_enabled(LOG_DEBUG))
        return;
    for (size_t i = 0; i < st->n; i++)
        log_request(LOG_DEBUG, st->slots[i].replayed ? "job.replayed" : "job.submitted",
                    st->req->request_id, st->jobs[i], NULL);
}

/* Runs on the HTTP thread once every job has its outcome. */
static void submit_answer(http_req *req)
{
    submit_state *st = req->async;
    jobd_error oom;
    submit_dump_views(st);
    const jobd_error *refusal = submit_refusal(st, &oom);
    if (refusal) {
        http_error(req, refusal);
        return;
    }
    submit_log(st);
    if (st->batch) {
        http_json_raw(req, 202, submit_batch_text(st));
        return;
    }
    char *view = st->slots[0].text;
    st->slots[0].text = NULL; /* the answer takes it */
    if (st->slots[0].replayed) {
        http_json_raw(req, 200, view);
        return;
    }
    snprintf(req->location, sizeof req->location, "/queues/%s/jobs/%s", st->jobs[0]->queue,
             st->jobs[0]->id);
    http_json_raw(req, 202, view);
}

static void submit_unavailable(http_req *req, const char *msg)
{
    jobd_error err;
    jobd_fail(&err, 503, "unavailable", "%s", msg);
    err.retry_after = 1;
    http_error(req, &err);
}

/* The number of elements of body when it is a JSON array, counting no
 * further than stop (then stop + 1); 0 when it is not an array. Only the
 * commas at the array's own level are counted, strings skipped, so a batch
 * too large is refused before its tree exists: jansson spends about 230 bytes
 * on each `{}`, and a 1 MiB body of them cost ~80 MiB to parse. Malformed
 * text gives some count, and json_loadb says what is wrong with it. */
static size_t submit_count_batch(const char *body, size_t len, size_t stop)
{
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", body[i]))
        i++;
    if (i == len || body[i] != '[')
        return 0;
    size_t n = 0, depth = 0;
    bool in_string = false, any = false;
    for (; i < len && n <= stop; i++) {
        char ch = body[i];
        if (in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_string = false;
            continue;
        }
        if (ch == '"')
            in_string = true;
        else if (ch == '[' || ch == '{')
            depth++;
        else if (ch == ']' || ch == '}') {
            if (--depth == 0)
                break;
        } else if (ch == ',' && depth == 1)
            n++;
        if (depth >= 1 && !strchr(" \t\r\n[", ch))
            any = true;
    }
    return any ? n + 1 : 0;
}

void handle_jobs_submit(http_req *req)
{
    if (atomic_load(&req->ctx->shutting_down)) {
        submit_unavailable(req, JOBD_MSG_SHUTDOWN);
        return;
    }
    size_t max_batch = req->ctx->cfg->max_batch;
    if (submit_count_batch(req->body, req->body_len, max_batch) > max_batch) {
        http_errorf(req, 422, "batch_too_large", "a batch holds at most %zu jobs", max_batch);
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        http_errorf(req, 400, "invalid_json", "invalid JSON at line %d, column %d: %s",
                    jerr.line, jerr.column, jerr.text);
        return;
    }
    queue_t *q = handlers_queue(req);
    jobd_error err;
    submit_state *st = submit_prepare(req, q, root, &err);
    json_decref(root);
    if (!st) {
        http_error(req, &err);
        return;
    }
    st->qc = q->cfg;
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
    jobd_error err = {0};
    handlers_reply(req, 200, store_list(handlers_queue(req), state, limit, cursor, &err), &err);
}

void handle_job_get(http_req *req)
{
    jobd_error err = {0};
    handlers_reply(req, 200, store_get(handlers_queue(req), req->m.id, &err), &err);
}

void handle_job_cancel(http_req *req)
{
    jobd_error err = {0};
    queue_t *q = handlers_queue(req);
    json_t *view = store_cancel(q, req->m.id, &err);
    if (view)
        metrics_job_cancelled(req->ctx->metrics, q->cfg);
    handlers_reply(req, 200, view, &err);
}
