/* common.c - helpers shared by the resource handlers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../queues/pipeline.h"
#include "handlers.h"

#define PAGE_LIMIT_DEFAULT 100
#define PAGE_LIMIT_MAX 1000

queue_t *handlers_queue(http_req *req)
{
    return pipeline_queue(req->ctx, req->m.queue);
}

void handlers_reply(http_req *req, int status, json_t *body, const jobd_error *err)
{
    if (body)
        http_json(req, status, body);
    else if (err->code)
        http_error(req, err);
    else
        http_errorf(req, 500, "internal_error", "the store failed without saying why");
}

/* Strict: digits only ("10", not " 10", "+10", "1e1" or "10x"), 1..PAGE_LIMIT_MAX. */
static bool handlers_parse_limit(const char *s, size_t *limit)
{
    size_t digits = strspn(s, "0123456789");
    if (digits == 0 || digits > 4 || s[digits] != '\0')
        return false;
    unsigned long v = strtoul(s, NULL, 10);
    if (v < 1 || v > PAGE_LIMIT_MAX)
        return false;
    *limit = v;
    return true;
}

bool handlers_page(http_req *req, size_t *limit, const char **cursor)
{
    const char *s = http_query(req, "limit");
    *limit = PAGE_LIMIT_DEFAULT;
    *cursor = http_query(req, "cursor");
    if (s && !handlers_parse_limit(s, limit)) {
        jobd_error err;
        jobd_fail(&err, 400, "invalid_parameter", "limit must be an integer from 1 to %d",
                  PAGE_LIMIT_MAX);
        snprintf(err.field, sizeof err.field, "limit");
        http_error(req, &err);
        return false;
    }
    return true;
}
