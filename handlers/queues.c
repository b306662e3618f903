/* queues.c - /queues and /queues/{queue}: views, pause, resume. */
#include "../queues/store.h"
#include "handlers.h"

/* New reference: the processor names of one list, in config order. */
static json_t *queue_proc_names(const proc_cfg *procs, size_t n)
{
    json_t *names = json_array();
    for (size_t i = 0; names && i < n; i++)
        json_array_append_new(names, json_string(procs[i].name));
    return names;
}

/* counts.<name> of a store's info, or 0. */
static json_int_t queue_count(const json_t *info, const char *name)
{
    return json_integer_value(json_object_get(json_object_get(info, "counts"), name));
}

/* The view's "limits" (openapi.json, QueueLimits): the queue's flow limits
 * with the state they bound, or NULL when it has none. New reference. */
static json_t *queue_limits(const queue_cfg *qc, const json_t *info)
{
    if (qc->max_depth <= 0 && qc->max_running <= 0 && qc->rate.limit <= 0)
        return NULL;
    json_t *l = json_object();
    if (qc->max_depth > 0) {
        json_object_set_new(l, "max_depth", json_integer(qc->max_depth));
        json_object_set_new(l, "depth", json_integer(queue_count(info, "scheduled") +
                                                     queue_count(info, "enqueued") +
                                                     queue_count(info, "retrying")));
    }
    if (qc->max_running > 0) {
        json_object_set_new(l, "max_running", json_integer(qc->max_running));
        json_object_set_new(l, "running", json_integer(queue_count(info, "running")));
    }
    if (qc->rate.limit > 0)
        json_object_set_new(l, "rate", json_pack("{s:i, s:f, s:i}", "limit", qc->rate.limit, "per",
                                                 qc->rate.per, "burst", qc->rate.burst));
    return l;
}

/* The queue view of openapi.json (Queue): name and processor lists from the config, then
 * the store's info (paused, counts, totals). New reference, or NULL with err. */
static json_t *queue_view(queue_t *q, jobd_error *err)
{
    json_t *info = store_info(q, err);
    if (!info)
        return NULL;
    json_t *view = json_pack("{s:s, s:o, s:o}", "name", q->cfg->name, "enqueue",
                             queue_proc_names(q->cfg->enqueue, q->cfg->n_enqueue), "dequeue",
                             queue_proc_names(q->cfg->dequeue, q->cfg->n_dequeue));
    json_t *limits = queue_limits(q->cfg, info);
    if (limits && view)
        json_object_set(view, "limits", limits);
    json_decref(limits);
    if (!view || json_object_update(view, info) != 0) {
        json_decref(view);
        view = NULL;
        jobd_fail(err, 500, "internal_error", "out of memory");
    }
    json_decref(info);
    return view;
}

void handle_queues(http_req *req)
{
    jobd_t *ctx = req->ctx;
    jobd_error err = {0};
    json_t *views = json_array();
    for (size_t i = 0; views && i < ctx->n_queues; i++) {
        json_t *v = queue_view(ctx->queues[i], &err);
        if (!v || json_array_append_new(views, v) != 0) {
            json_decref(views);
            views = NULL;
        }
    }
    handlers_reply(req, 200, views ? json_pack("{s:o}", "queues", views) : NULL, &err);
}

void handle_queue(http_req *req)
{
    jobd_error err = {0};
    handlers_reply(req, 200, queue_view(handlers_queue(req), &err), &err);
}

static void queue_set_paused(http_req *req, bool paused)
{
    queue_t *q = handlers_queue(req);
    jobd_error err = {0};
    json_t *view = NULL;
    if (store_pause(q, paused, &err) == 0)
        view = queue_view(q, &err);
    handlers_reply(req, 200, view, &err);
}

void handle_queue_pause(http_req *req)
{
    queue_set_paused(req, true);
}

void handle_queue_resume(http_req *req)
{
    queue_set_paused(req, false);
}
