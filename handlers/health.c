/* health.c - /healthz (the process serves) and /readyz (it can take jobs). */
#include "../queues/store.h"
#include "handlers.h"

void handle_healthz(http_req *req)
{
    http_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

void handle_readyz(http_req *req)
{
    jobd_t *ctx = req->ctx;
    jobd_error err;
    if (atomic_load(&ctx->shutting_down)) {
        jobd_fail(&err, 503, "unavailable", "the server is shutting down");
    } else {
        size_t i = 0;
        while (i < ctx->n_queues && store_ready(ctx->queues[i]))
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
