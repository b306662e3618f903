/* fuzz_router.c - a request line through the router and the store behind it.
 * Input: "METHOD url" (the method is what comes before the first space). The
 * path is percent-decoded as libmicrohttpd does (MHD_http_unescape), matched
 * by router_match, and a route of the queue "local" is answered by the world's
 * inline store with the query's state and cursor: every answer is a view, a
 * page, or one of the documented errors, and a page's next_cursor leads to a
 * page that shares no job with it. */
#include <microhttpd.h>
#include <string.h>

#include "../../server/router.h"
#include "fuzz.h"

typedef struct fuzz_query {
    char *state, *cursor; /* borrowed from the query copy, NULL = absent */
} fuzz_query;

/* Splits the query (modified in place) into the arguments the store reads. */
static void fuzz_query_parse(char *q, fuzz_query *out)
{
    for (char *arg = q; arg && *arg;) {
        char *next = strchr(arg, '&');
        if (next)
            *next++ = '\0';
        char *eq = strchr(arg, '=');
        char *val = eq ? eq + 1 : arg + strlen(arg);
        if (eq)
            *eq = '\0';
        MHD_http_unescape(arg);
        MHD_http_unescape(val);
        if (strcmp(arg, "state") == 0)
            out->state = val;
        else if (strcmp(arg, "cursor") == 0)
            out->cursor = val;
        arg = next;
    }
}

static void fuzz_check_status(const jobd_error *err, const char *what, int a, int b)
{
    FUZZ_CHECK(err->status == a || err->status == b, "%s: %d %s", what, err->status,
               err->message);
}

/* A page: {"jobs": [at most limit views], "next_cursor": string|null}. */
static void fuzz_check_page(proc_t *store, json_t *page, size_t limit, int state, bool dead)
{
    json_t *jobs = json_object_get(page, "jobs"), *next = json_object_get(page, "next_cursor");
    FUZZ_CHECK(json_is_array(jobs) && json_array_size(jobs) <= limit, "page of %zu for %zu",
               json_array_size(jobs), limit);
    FUZZ_CHECK(json_is_null(next) || json_is_string(next), "next_cursor");
    if (!json_is_string(next))
        return;
    jobd_error err = {0};
    const store_ops *ops = store->ops->store;
    json_t *more = dead ? ops->dead_list(store, limit, json_string_value(next), &err)
                        : ops->list(store, state, limit, json_string_value(next), &err);
    FUZZ_CHECK(more, "own cursor %s refused: %s", json_string_value(next), err.message);
    size_t i, j;
    json_t *a, *b;
    json_array_foreach(jobs, i, a) {
        json_array_foreach(json_object_get(more, "jobs"), j, b) {
            FUZZ_CHECK(!json_equal(json_object_get(a, "id"), json_object_get(b, "id")),
                       "job %s on two pages", json_string_value(json_object_get(a, "id")));
        }
    }
    json_decref(more);
}

/* Answers a route of the world's queue as its handler would. */
static void fuzz_route_store(fuzz_world *w, const route_match *m, const fuzz_query *q,
                             size_t limit)
{
    proc_t *store = w->local->store;
    const store_ops *ops = store->ops->store;
    jobd_error err = {0};
    json_t *res = NULL;
    int state = q->state ? job_state_parse(q->state) : -1;
    if (q->state && state < 0)
        return; /* the handler answers 400 before the store is asked */
    switch (m->route) {
    case ROUTE_JOBS_LIST:
        if ((res = ops->list(store, state, limit, q->cursor, &err)))
            fuzz_check_page(store, res, limit, state, false);
        else
            fuzz_check_status(&err, "list", 400, 400);
        break;
    case ROUTE_DEAD_LIST:
        if ((res = ops->dead_list(store, limit, q->cursor, &err)))
            fuzz_check_page(store, res, limit, -1, true);
        else
            fuzz_check_status(&err, "dead list", 400, 400);
        break;
    case ROUTE_JOB_GET:
    case ROUTE_JOB_CANCEL:
    case ROUTE_DEAD_RETRY:
        if (!m->id_ok)
            break;
        res = m->route == ROUTE_JOB_GET      ? ops->get(store, m->id, &err)
              : m->route == ROUTE_JOB_CANCEL ? ops->cancel(store, m->id, &err)
                                             : ops->dead_retry(store, m->id, &err);
        if (res) {
            job_t *job = job_from_view(res);
            FUZZ_CHECK(job && strcmp(job->id, m->id) == 0, "view of %s", m->id);
            job_free(job);
        } else {
            fuzz_check_status(&err, "job", 404, 409);
        }
        break;
    case ROUTE_DEAD_DELETE:
        if (m->id_ok && ops->dead_delete(store, m->id, &err) != 0)
            fuzz_check_status(&err, "dead delete", 404, 409);
        break;
    case ROUTE_QUEUE:
        res = ops->info(store, &err);
        FUZZ_CHECK(json_is_object(res), "info: %s", err.message);
        break;
    default:
        break;
    }
    json_decref(res);
}

int fuzz_router(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    char *sp = strchr(text, ' ');
    char *url = sp ? sp + 1 : text + strlen(text);
    if (sp)
        *sp = '\0';
    const char *method = sp ? text : "GET";
    char *query = strchr(url, '?');
    if (query)
        *query++ = '\0';
    MHD_http_unescape(url);
    route_match m;
    memset(&m, 0xA5, sizeof m); /* the router must fill what it reports */
    router_match(method, url, &m);
    FUZZ_CHECK(m.route < ROUTE_COUNT, "route %d", (int)m.route);
    FUZZ_CHECK(memchr(m.queue, '\0', sizeof m.queue) && memchr(m.id, '\0', sizeof m.id),
               "queue or id not terminated");
    if (m.route == ROUTE_METHOD_NOT_ALLOWED)
        FUZZ_CHECK(memchr(m.allow, '\0', sizeof m.allow) && m.allow[0], "405 without Allow");
    if (m.queue_ok)
        FUZZ_CHECK(name_queue_ok(m.queue), "queue \"%s\" called ok", m.queue);
    if (m.id_ok)
        FUZZ_CHECK(name_id_ok(m.id), "id \"%s\" called ok", m.id);
    fuzz_query q = {0};
    fuzz_query_parse(query, &q);
    if (m.queue_ok && strcmp(m.queue, "local") == 0)
        fuzz_route_store(fuzz_world_get(), &m, &q, 1 + size % 5);
    free(text);
    return 0;
}

FUZZ_ENTRY(fuzz_router)
