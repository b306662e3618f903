/* health.c - /healthz (the process serves) and /readyz (it can take jobs). */
#include "../queues/pipeline.h"
#include "handlers.h"

void handle_healthz(http_req *req)
{
    http_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* A store without a ready() (inline) is always ready. */
static bool health_queue_ready(queue_t *q)
{
    bool (*ready)(proc_t *) = q->store->ops->store->ready;
    return !ready || ready(q->store);
}

void handle_readyz(http_req *req)
{
    jobd_t *ctx = req->ctx;
    jobd_error err;
    if (atomic_load(&ctx->shutting_down)) {
        jobd_fail(&err, 503, "unavailable", "the server is shutting down");
    } else {
        size_t i = 0;
        while (i < ctx->n_queues && health_queue_ready(ctx->queues[i]))
            i++;
        if (i == ctx->n_queues) {
            http_json(req, 200, json_pack("{s:s}", "status", "ready"));
            return;
        }
        jobd_fail(&err, 503, "unavailable", "the store of queue \"%s\" cannot take jobs now",
                  ctx->queues[i]->cfg->name);
    }
    err.retry_after = 1;
    http_error(req, &err);
}
