/* dead.c - /queues/{queue}/dead: the jobs whose attempts ran out. */
#include "../queues/pipeline.h"
#include "handlers.h"

void handle_dead_list(http_req *req)
{
    size_t limit;
    const char *cursor;
    if (!handlers_page(req, &limit, &cursor))
        return;
    proc_t *store = handlers_store(req);
    jobd_error err = {0};
    handlers_reply(req, 200, store->ops->store->dead_list(store, limit, cursor, &err), &err);
}

void handle_dead_retry(http_req *req)
{
    proc_t *store = handlers_store(req);
    jobd_error err = {0};
    handlers_reply(req, 200, store->ops->store->dead_retry(store, req->m.id, &err), &err);
}

void handle_dead_delete(http_req *req)
{
    proc_t *store = handlers_store(req);
    jobd_error err = {0};
    if (store->ops->store->dead_delete(store, req->m.id, &err) == 0)
        http_json(req, 204, NULL);
    else
        handlers_reply(req, 0, NULL, &err);
}
