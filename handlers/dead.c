/* dead.c - /queues/{queue}/dead: the jobs whose attempts ran out. */
#include "../queues/store.h"
#include "handlers.h"

void handle_dead_list(http_req *req)
{
    size_t limit;
    const char *cursor;
    if (!handlers_page(req, &limit, &cursor))
        return;
    jobd_error err = {0};
    handlers_reply(req, 200, store_dead_list(handlers_queue(req), limit, cursor, &err), &err);
}

void handle_dead_retry(http_req *req)
{
    jobd_error err = {0};
    handlers_reply(req, 200, store_dead_retry(handlers_queue(req), req->m.id, &err), &err);
}

void handle_dead_delete(http_req *req)
{
    jobd_error err = {0};
    if (store_dead_delete(handlers_queue(req), req->m.id, &err) == 0)
        http_json(req, 204, NULL);
    else
        handlers_reply(req, 0, NULL, &err);
}
